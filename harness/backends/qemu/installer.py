"""Step 1 from the installer, on the local QEMU backend: the distro's own unattended
install (``install.method: iso``, or ``--install-method=iso|netboot``) instead of
debootstrap.

- ``iso``: the official ISO (downloaded once, verified) and its answer volume
  (``cidata``/``OEMDRV``) on virtio-scsi CD drives; the installer's kernel and initrd
  are taken from the ISO and booted directly with the distro's kernel arguments, so
  nothing has to be typed (a remastered ISO that needs no arguments boots as is).
- ``netboot`` (Debian): the installer's netboot kernel and initrd from the Debian
  archive, the preseed appended to the initrd; packages come from the mirror.

The installer VM runs with Secure Boot off (OVMF will not load a distro kernel
directly: only shim can), on OVMF with fresh variables, and ``-no-reboot``; the
answer files power it off when done. The wait is bounded (``install.timeout_min`` or
``--install-timeout``), with progress lines and the console's tail on failure. The
installed disk is then booted as a new VM, Secure Boot as the distro says, through
its removable-media path, like every clone.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.backends.qemu.vm import QemuVM, ovmf, probe_accel, qemu_img
from harness.errors import ConfigError, GuestTimeoutError
from harness.host import tools as host
from harness.media import answers, iso, isocache
from harness.media.install import install_media

if TYPE_CHECKING:
    from harness.build import Build
    from harness.distro import Distro
    from harness.settings import Settings

METHODS = ("debootstrap", "iso", "netboot")


def effective_method(b: Build) -> str:
    """The install method of this build (:func:`install_method`)."""
    return install_method(b.distro, b.settings)


def install_method(d: Distro, settings: Settings) -> str:
    """The install method of ``d``: the --install-method setting, or (auto) the distro's
    own, or iso when --iso names a local ISO; a method the distro cannot use is refused."""
    wanted = settings.install_method
    if wanted == "auto":
        wanted = "iso" if settings.iso else d.install.method
    if wanted == "debootstrap" and (not d.package_manager().debootstrap or not d.install.suite):
        raise ConfigError(f"{d.name} cannot be installed with debootstrap (its install.method is "
                          f"{d.install.method}); use --install-method=auto")
    if wanted == "iso" and (d.iso is None or not d.install.answer):
        raise ConfigError(f"{d.name} has no iso: section or install.answer in its YAML: it cannot "
                          "install from an ISO")
    if wanted == "netboot" and (d.netboot is None or d.install.answer != "preseed"):
        raise ConfigError(f"{d.name} has no netboot: section with a preseed answer: "
                          "--install-method=netboot is for the Debian installer")
    return wanted


def timeout_s(b: Build) -> int:
    minutes = b.settings.install_timeout or b.distro.install.timeout_min
    return int(minutes) * 60


def prepare_netboot(b: Build) -> tuple[list[str], str]:
    """The QEMU arguments of a d-i netboot install (kernel, initrd with the preseed)."""
    assert b.creds is not None and b.distro.netboot is not None
    kernel, initrd, origin = isocache.netboot_files(b.distro, b.settings, log=b.progress)
    files = answers.render(b.distro, b.creds, mirror=b.settings.mirror)
    b.record["answer_files"] = sorted(files)
    with_preseed = iso.append_to_initrd(initrd, files, b.workdir / "installer-initrd.gz")
    args = b.distro.netboot.kernel_args
    return ["-kernel", str(kernel), "-initrd", str(with_preseed), "-append", args], origin


def prepare_iso(b: Build) -> tuple[list[str], str]:
    """The QEMU arguments of an install from the ISO with its answer volume."""
    im = install_media(b)
    extra = ["-drive", f"file={im.install_iso},if=none,id=inst,media=cdrom,readonly=on",
             "-device", "scsi-cd,drive=inst,bus=scsi0.0,bootindex=0"]
    if im.answer_iso is not None:
        extra += ["-drive", f"file={im.answer_iso},if=none,id=answers,media=cdrom,readonly=on",
                  "-device", "scsi-cd,drive=answers,bus=scsi0.0"]
    if im.kernel:
        kernel = iso.extract(im.install_iso, im.kernel, b.workdir / "installer-kernel")
        initrd = iso.extract(im.install_iso, im.initrd, b.workdir / "installer-initrd")
        extra += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", im.kernel_args]
    b.record["install_iso_sha256"] = im.install_sha256
    return extra, f"{im.install_iso.name} (sha256 {im.install_sha256})"


def install_from_media(b: Build) -> Path:
    """Run the unattended install into a new qcow2 disk; returns the disk."""
    method = effective_method(b)
    d = b.distro
    host.require_space(b.workdir, d.install.scratch_min_gib * 2**30, "the install")
    disk = b.workdir / "build.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(disk), f"{d.hyperv.disk_gb}G")
    with b.step(f"provision: prepare the {method} install"):
        extra, source = prepare_netboot(b) if method == "netboot" else prepare_iso(b)
    vars_fd = b.workdir / "installer.vars.fd"
    shutil.copyfile(ovmf("vars"), vars_fd)
    vm = QemuVM(name="installer", workdir=b.workdir, disk=disk, disk_format="qcow2",
                vars_fd=vars_fd, secure_boot=False,
                accel=probe_accel(b.workdir, b.settings.accel),
                cpus=b.settings.vm_cpus,
                # (live installers unpack into RAM)
                memory_mb=max(b.settings.vm_memory_mb, 3072 if method == "iso" else 2048),
                extra=[*extra, "-no-reboot"], serial_log=b.logdir / "installer.serial.log")
    b.vms.append(vm)
    b.record["accel"] = vm.accel
    with b.step(f"provision: unattended {method} install ({vm.accel})"):
        vm.start()
        wait_for_poweroff(b, vm, timeout_s(b))
    vm.destroy()  # the disk stays: it is not the VM's to delete
    b.vms.remove(vm)
    b.record["installed_by"] = f"{method}: {source}"
    return disk


# d-i marks a dialog it shows at high or critical priority with "[!!]": in an automated
# install (priority=critical) that is a question the preseed did not answer or an error
# (a mirror that cannot be reached, say), and nothing will answer it.
DI_DIALOG = re.compile(r"\[!!\] (.+?)(?: +t?q{3,}|\s{2,}|$)", re.M)


def waiting_dialog(console: str) -> str:
    """The title of the last d-i dialog that waits for a person, if any."""
    found = DI_DIALOG.findall(console[-4000:])
    return found[-1].strip() if found else ""


def wait_for_poweroff(b: Build, vm: QemuVM, timeout: float, every: float = 60,
                      stuck_checks: int = 3) -> None:
    """Wait for the installer to power the VM off; a progress line each ``every``
    seconds (the console's last line); on timeout stop the VM and raise with the
    console's tail. An installer that shows the same waiting dialog for
    ``stuck_checks`` checks in a row is stopped at once, naming the dialog."""
    start = time.monotonic()
    dialog, seen = "", 0
    while not vm.wait_stopped(min(every, max(timeout - (time.monotonic() - start), 0.1))):
        current = waiting_dialog(vm.serial_tail(40))
        seen = seen + 1 if current and current == dialog else (1 if current else 0)
        dialog = current
        if seen >= stuck_checks:
            vm.kill()
            raise GuestTimeoutError(
                f"the installer waits for an answer nobody will give: '[!!] {dialog}' for "
                f"{seen * every / 60:.0f} min; see {vm.serial_log} (a mirror that lacks the "
                "installer's files, or a question the answer file does not answer)")
        waited = time.monotonic() - start
        if waited >= timeout:
            tail = vm.serial_tail(15)
            vm.kill()
            raise GuestTimeoutError(
                f"the installer did not power off within {timeout / 60:.0f} min; last console "
                f"lines: {' | '.join(ln.strip() for ln in tail.splitlines() if ln.strip())[-600:]}; "
                f"see {vm.serial_log} (more time: --install-timeout MINUTES)")
        last = next((ln.strip() for ln in reversed(vm.serial_tail(5).splitlines()) if ln.strip()), "")
        b.progress(f"[{b.label}] installing for {waited / 60:.0f} min: {last[:100]}")
