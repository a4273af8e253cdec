"""Faults: a guest that never comes up, SSH breaking mid-command, Ctrl-C mid-build.
These boot real QEMU (OVMF with an empty disk): seconds, not minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from harness import distro, host, settings
from harness.backends.qemu import vm
from harness.backends.qemu.backend import QemuBackend
from harness.build import Build
from harness.errors import GuestCommandError, GuestTimeoutError
from harness.ssh import Guest, KeyPair

REPO = Path(__file__).resolve().parent.parent
needs_qemu = pytest.mark.skipif(
    not Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd").exists()
    or subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode,
    reason="QEMU/OVMF not installed (make setup installs them)")


def qemu_pids(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64.*{marker}"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_for(condition: Callable[[], bool], bound: float, every: float = 0.2) -> bool:
    """True as soon as ``condition`` holds; False after ``bound`` seconds (a guard
    against a hang, never a timing the test relies on)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def blank_build(tmp_path: Path) -> Build:
    s = settings.resolve({"scratch": str(tmp_path), "out": str(tmp_path / "out"),
                        "accel": "tcg", "vm_cpus": 1, "vm_memory_mb": 512}, env={})
    b = Build(distro.load("debian-12"), s, QemuBackend(), "fault", tmp_path / "work",
              tmp_path / "logs")
    b.workdir.mkdir(parents=True)
    b.logdir.mkdir(parents=True)
    return b


@pytest.mark.vm
@needs_qemu
def test_guest_that_never_comes_up_times_out_with_console_tail(tmp_path: Path):
    b = blank_build(tmp_path)
    disk = b.workdir / "blank.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 64 * 2**20)
    vm = b.backend.new_vm(b, "never", disk, "raw", owned=[disk])  # type: ignore[attr-defined]
    try:
        # The firmware's first console lines, however loaded the machine (this bound only
        # keeps a broken QEMU from hanging the test), so that the wait below has a tail.
        assert wait_for(lambda: vm.serial_tail() != "(no serial console captured)"
                        and bool(vm.serial_tail().strip()), 300), "OVMF printed nothing"
        guest = Guest(vm.ssh_host, vm.ssh_port, "root", KeyPair.generate("t"),
                      alive=vm.is_running, console=vm.serial_tail)
        start = time.monotonic()
        with pytest.raises(GuestTimeoutError) as exc:
            guest.wait(25, "the test VM's SSH")
        took = time.monotonic() - start
    finally:
        vm.destroy()
    message = str(exc.value)
    assert "\n" not in message
    assert "did not answer within 25 s" in message
    assert "last console lines:" in message and "nothing on the serial" not in message
    assert took < 60
    assert not qemu_pids(str(b.workdir)), "qemu left running"
    assert not disk.exists()


class _DroppingServer(paramiko.ServerInterface):
    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.dropped = True
        return True


def test_ssh_breaking_mid_command_is_one_line(tmp_path: Path):
    """A fake at the SSH seam: a paramiko server that accepts the command, then drops
    the connection before answering (as a guest does when it crashes)."""
    import socket

    host_key = paramiko.Ed25519Key.from_private_key(
        __import__("io").StringIO(KeyPair.generate("h").private_openssh))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        t = paramiko.Transport(conn)
        t.add_server_key(host_key)
        t.start_server(server=_DroppingServer())
        chan = t.accept(120)
        time.sleep(0.5)
        if chan is not None:
            t.close()
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    guest = Guest("127.0.0.1", port, "root", KeyPair.generate("c"))
    guest.wait(120)
    with pytest.raises(GuestCommandError) as exc:
        guest.run("apt-get -y upgrade", what="upgrade", timeout=120)
    assert str(exc.value).startswith(f"SSH to root@127.0.0.1:{port} broke during 'upgrade'")
    assert "\n" not in str(exc.value)
    listener.close()


INTERRUPT_TEST = """
import time
from harness.backends.qemu import QemuBackend

def test_long_build(build):
    disk = build.workdir / "blank.raw"
    disk.write_bytes(b"")
    import os
    os.truncate(disk, 64 * 2**20)
    vm = build.backend.new_vm(build, "interrupted", disk, "raw")
    build.vm = vm
    print("VM-STARTED", flush=True)
    time.sleep(120)
"""


def inner_run(tmp_path: Path, test_body: str, *args: str) -> tuple[list[str], dict, Path]:
    """A throw-away project using the plugin, with one test file: returns the pytest
    command line, its environment and its scratch folder."""
    proj = tmp_path / "proj"
    proj.mkdir()
    # SIGINT as a terminal delivers it: a shell that starts a job in the background
    # (make under `cmd &`, CI wrappers) makes it ignore SIGINT, the ignore is inherited
    # through exec, and Python then installs no KeyboardInterrupt handler (seen: the
    # interrupted run slept on and passed after 122 s).
    (proj / "conftest.py").write_text(
        'import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n'
        'pytest_plugins = ["harness.plugin"]\n')
    (proj / "test_inner.py").write_text(test_body)
    scratch = tmp_path / "scratch"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GMI_ACCEL": "tcg"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--distro=debian-12",
           f"--scratch={scratch}", f"--out={tmp_path / 'out'}", "--vm-memory-mb=512",
           f"--rootdir={proj}", str(proj / "test_inner.py"), *args]
    return cmd, env, scratch


@pytest.mark.vm
@needs_qemu
def test_ctrl_c_mid_build_leaves_no_qemu_and_no_scratch(tmp_path: Path):
    cmd, env, scratch = inner_run(tmp_path, INTERRUPT_TEST, "-s")
    proc = subprocess.Popen(cmd, cwd=tmp_path / "proj", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "VM-STARTED" in line:
            break
    assert qemu_pids(str(scratch)), "the test VM did not start:\n" + "".join(seen)
    proc.send_signal(signal.SIGINT)
    # A hang guard, not the promise's bound: it returns as soon as the run ends (the
    # bounded interrupt path with its own test under load is issue #11's branch work).
    out = proc.communicate(timeout=300)[0]
    time.sleep(1)
    assert "KeyboardInterrupt" in out or "Interrupted" in out or proc.returncode == 2, out
    assert not qemu_pids(str(scratch)), "qemu survived Ctrl-C"
    assert not list(scratch.glob("*")), f"scratch left behind: {list(scratch.glob('*'))}"


def test_no_free_space_is_one_line(tmp_path: Path):
    from harness.errors import DiskSpaceError

    with pytest.raises(DiskSpaceError, match=r"not enough free space for the build in .*"
                                             r"GiB free, .* GiB needed; free some space"):
        host.require_space(tmp_path / "deeper" / "dir", 2**60, "the build")


def test_missing_tool_names_the_package(monkeypatch):
    from harness.errors import MissingToolError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match=r"debootstrap not found on this host: install "
                                               r"it with 'apt-get install -y debootstrap'"):
        host.require_tools(["debootstrap"])


def test_missing_ovmf_names_the_package(tmp_path: Path):
    from harness.errors import MissingToolError

    with pytest.raises(MissingToolError, match="apt-get install -y ovmf"):
        vm.ovmf("code_secboot", tmp_path)


FAILING_TEST = """
import os

def test_fails_with_a_vm(build):
    disk = build.workdir / "blank.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 64 * 2**20)
    build.vm = build.backend.new_vm(build, "failing", disk, "raw", owned=[disk])
    assert False, "a check failed"
"""


@pytest.mark.vm
@needs_qemu
@pytest.mark.parametrize("keep, kept", [("never", False), ("on-failure", True), ("always", True)])
def test_keep_policy_on_failure(tmp_path: Path, keep: str, kept: bool):
    cmd, env, scratch = inner_run(tmp_path, FAILING_TEST, f"--keep={keep}")
    proc = subprocess.run(cmd, cwd=tmp_path / "proj", env=env, capture_output=True, text=True,
                          timeout=600)  # a hang guard: the run ends as soon as the test fails
    pids = qemu_pids(str(scratch))
    try:
        assert proc.returncode == 1, proc.stdout
        if kept:
            assert pids, "the VM should have been kept running"
            assert "kept running" in proc.stdout + proc.stderr
            assert list(scratch.glob("*")), "scratch should be kept"
        else:
            assert not pids, "qemu left running"
            assert not list(scratch.glob("*")), "scratch left behind"
    finally:
        for pid in pids:  # the kept VMs: stop them and remove their QMP sockets
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            os.kill(pid, signal.SIGKILL)
            for arg in args:
                if arg.startswith(b"unix:") and b".qmp" in arg:
                    Path(arg[5:].split(b",")[0].decode()).unlink(missing_ok=True)
