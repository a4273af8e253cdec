"""The embedded default backend: QEMU + OVMF (UEFI, Secure Boot) + qemu-img.

The Generation 2 equivalent: q35 with SMM and OVMF, Secure Boot on with Microsoft's
keys when the distro asks for it; the disk on virtio-scsi (like Gen2's SCSI
controller) with discard; the seed ISO as a SCSI CD; user-mode networking with SSH
forwarded from a free port on 127.0.0.1; the serial console captured to a file;
graceful power-off through QMP. KVM is used when a short real boot proves it works,
TCG otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.backends.base import VM
from harness.errors import HypervisorError, MissingToolError
from harness.host import cache as hostcache
from harness.host import tools as host

if TYPE_CHECKING:
    pass

# The NIC's PCI slot: fixed so that the guest's predictable name is fixed too.
NIC_SLOT = 3
# What Step 1's network config names (the predictable name on q35, with or without
# ACPI slot numbers); the Hyper-V stage renames the NIC to eth0 for good.
NIC_NAMES = (f"enp0s{NIC_SLOT}", f"ens{NIC_SLOT}")
_ACCEL_CACHE: dict[str, str] = {}


def _pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Let the kernel kill QEMU if the harness dies (not used when VMs are kept)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


def qemu_img(*args: str) -> str:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HypervisorError(f"qemu-img {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def image_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(qemu_img("info", "--output=json", str(path)))
    return info


def qemu_version() -> str:
    """The first line of ``qemu-system-x86_64 --version`` ("" when it cannot run)."""
    try:
        proc = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout.strip().splitlines() or [""])[0]


def probe_accel(workdir: Path, wanted: str = "auto", timeout: float = 25) -> str:
    """'kvm' when a short real boot of OVMF under KVM prints to the serial console
    and keeps running, else 'tcg'. Cached per process, and per host boot and qemu
    version in :mod:`harness.host.cache` (only the first run after a reboot pays the
    probe)."""
    if wanted in ("kvm", "tcg"):
        return wanted
    if "auto" in _ACCEL_CACHE:
        return _ACCEL_CACHE["auto"]
    result = "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        key = f"accel, {qemu_version()}"
        result = hostcache.remembered("accel", key) or ""
        if not result:
            result = "kvm" if _kvm_boots(workdir, timeout) else "tcg"
            hostcache.remember("accel", key, result)
    _ACCEL_CACHE["auto"] = result
    return result


def _kvm_boots(workdir: Path, timeout: float) -> bool:
    """A short real boot of OVMF under KVM: True when it prints to the serial console
    and is still running two seconds later (KVM errors come at run time)."""
    workdir.mkdir(parents=True, exist_ok=True)
    serial = workdir / "kvm-probe.serial"
    vars_fd = workdir / "kvm-probe-vars.fd"
    shutil.copyfile(ovmf("vars"), vars_fd)
    cmd = [
        "qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "q35",
        "-accel", "kvm", "-cpu", "host", "-m", "256",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf('code')}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
        "-chardev", f"file,id=ser0,path={serial}", "-serial", "chardev:ser0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if serial.exists() and serial.stat().st_size > 64:
                time.sleep(2)  # survive a little longer: KVM errors come at run time
                return proc.poll() is None
            time.sleep(0.5)
        return False
    finally:
        proc.kill()
        proc.wait()
        for f in (serial, vars_fd):
            f.unlink(missing_ok=True)


def remember_accel(accel: str) -> None:
    """Take the run's probe verdict (made once per run, maybe by another worker)."""
    _ACCEL_CACHE.setdefault("auto", accel)


class Qmp:
    """A minimal QMP client over the VM's unix socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, name: str, timeout: float = 10) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.path))
            f = s.makefile("rwb")
            json.loads(f.readline())  # greeting
            for cmd in ("qmp_capabilities", name):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:
                    reply: dict[str, Any] = json.loads(f.readline())
                    if "return" in reply or "error" in reply:
                        break
            return reply


@dataclass
class QemuVM(VM):
    """One QEMU process. Disks listed in ``owned`` are deleted by :meth:`destroy`."""

    name: str
    workdir: Path
    disk: Path
    disk_format: str
    vars_fd: Path
    secure_boot: bool
    accel: str
    cpus: int
    memory_mb: int
    cdrom: Path | None = None
    detach: bool = False
    owned: list[Path] = field(default_factory=list)
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 0
    serial_log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)  # more QEMU arguments (the installer's)
    # The host's write cache for the disk: "unsafe" (guest flushes ignored) for the
    # throwaway build VM, whose disk is only read again after QEMU exits; "writeback"
    # (flushes honoured) for everything else.
    disk_cache: str = "writeback"

    @property
    def emulated_cpu(self) -> bool:
        return self.accel == "tcg"

    qmp_path: Path = field(default_factory=lambda: Path(
        tempfile.gettempdir()) / f"gmi-{os.getpid()}-{uuid.uuid4().hex[:8]}.qmp")
    """Unix sockets have a 108-byte path limit: keep this one short, outside workdir."""

    def command(self) -> list[str]:
        code = ovmf("code_secboot" if self.secure_boot else "code")
        machine = "q35,smm=on" if self.secure_boot else "q35"
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else [
            "-accel", "tcg,thread=multi", "-cpu", "max"]
        cmd = [
            "qemu-system-x86_64", "-name", self.name, "-nodefaults", "-display", "none",
            "-machine", machine, *accel, "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.vars_fd}",
            "-device", "virtio-scsi-pci,id=scsi0,addr=0x4",
            "-drive", (f"file={self.disk},if=none,id=disk0,format={self.disk_format},"
                       f"discard=unmap,detect-zeroes=unmap,cache={self.disk_cache}"),
            "-device", "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=net0,addr={NIC_SLOT:#x}",
            "-device", "virtio-rng-pci",
            "-chardev", f"file,id=ser0,path={self.serial_log},append=on",
            "-serial", "chardev:ser0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]
        if self.secure_boot:
            cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        if self.cdrom is not None:
            cmd += ["-drive", f"file={self.cdrom},if=none,id=cd0,media=cdrom,readonly=on",
                    "-device", "scsi-cd,drive=cd0,bus=scsi0.0"]
        return cmd + self.extra

    def start(self) -> None:
        """Start QEMU with SSH forwarded from a free port (retried if the port is taken)."""
        self.serial_log = self.serial_log or self.workdir / f"{self.name}.serial.log"
        for _attempt in range(5):
            self.ssh_port = host.free_port()
            errlog = self.workdir / f"{self.name}.qemu.log"
            with errlog.open("wb") as err:
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    preexec_fn=None if self.detach else _pdeathsig,
                    start_new_session=self.detach,
                )
            time.sleep(1.5)
            if self.proc.poll() is None:
                return
            message = errlog.read_text(errors="replace").strip()
            if "hostfwd" not in message and "forwarding" not in message:
                raise HypervisorError(f"QEMU failed to start VM {self.name!r}: {message}")
        raise HypervisorError(f"QEMU could not forward SSH for {self.name!r}: {message}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_stopped(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def shutdown(self, timeout: float = 120) -> None:
        if not self.is_running():
            return
        with contextlib.suppress(OSError, ValueError):
            Qmp(self.qmp_path).command("system_powerdown")
        if not self.wait_stopped(timeout):
            self.kill()

    def kill(self) -> None:
        if self.is_running():
            assert self.proc is not None
            with contextlib.suppress(OSError, ValueError):
                Qmp(self.qmp_path).command("quit", timeout=3)
            if not self.wait_stopped(5):
                self.proc.kill()
                self.proc.wait()
        self.qmp_path.unlink(missing_ok=True)

    def stop_now(self) -> None:
        """SIGKILL, nothing asked first (the QMP socket goes too)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.qmp_path.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.kill()
        for path in self.owned:
            path.unlink(missing_ok=True)
        self.vars_fd.unlink(missing_ok=True)

    def disk_allocated(self) -> int | None:
        return host.allocated_bytes(self.disk)

    def describe(self) -> str:
        pid = self.proc.pid if self.proc else "?"
        key = self.workdir / f"{self.name}.key"
        login = (f"ssh -i {key} -p {self.ssh_port} root@{self.ssh_host}" if key.exists()
                 else f"SSH on {self.ssh_host}:{self.ssh_port}")
        return f"VM {self.name!r} kept running (qemu pid {pid}); {login}; disk {self.disk}"


OVMF_DIR = Path("/usr/share/OVMF")
OVMF_FILES = {
    "code_secboot": "OVMF_CODE_4M.secboot.fd",
    "vars_ms": "OVMF_VARS_4M.ms.fd",
    "code": "OVMF_CODE_4M.fd",
    "vars": "OVMF_VARS_4M.fd",
}


def ovmf(kind: str, directory: Path = OVMF_DIR) -> Path:
    """Path of an OVMF firmware file; missing means the ``ovmf`` package is missing."""
    path = directory / OVMF_FILES[kind]
    if not path.exists():
        raise MissingToolError(str(path), "ovmf")
    return path
