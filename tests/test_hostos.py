"""The operating-system seam (harness/host/hostos.py): the Linux branches for real, the
Windows branches on Linux with only the calls Windows alone has faked (``whoami`` and
``icacls``, kernel32, ``_winapi``). No Windows machine exists where this is developed;
``mypy --platform win32`` (make lint / make test) checks the rest."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from harness.backends import backend_class, check_backend
from harness.build import Credentials
from harness.errors import ConfigError, MissingToolError
from harness.host import hostos
from harness.ssh import KeyPair

REPO = Path(__file__).resolve().parent.parent
SID = "S-1-5-21-1004336348-1177238915-682003330-1001"
LOCAL_APPDATA = r"C:\Users\builder\AppData\Local"


def known_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs' Windows answers, with the shell's known-folder call (ctypes, Windows
    only) answering as it would for user ``builder``."""
    import platformdirs.windows

    monkeypatch.setattr(platformdirs.windows, "get_win_folder", lambda name: LOCAL_APPDATA)


class FakeCommands:
    """``whoami`` and ``icacls`` as Windows answers them, recorded; ``seen`` holds, per
    call, the size of the credentials file at that moment (None: not there yet)."""

    def __init__(self, fail: str = "", whoami: str = f'"hv01\\builder","{SID}"\r\n') -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.whoami = whoami
        self.watch: Path | None = None
        self.seen: list[int | None] = []

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        assert kw.get("capture_output") and kw.get("timeout")
        self.calls.append(cmd)
        self.seen.append(self.watch.stat().st_size if self.watch and self.watch.exists() else None)
        if self.fail and self.fail in cmd:
            return subprocess.CompletedProcess(cmd, 5, "", f"{cmd[1]}: Access is denied.\r\n")
        out = self.whoami if cmd[0] == "whoami" else "processed file: x\r\nSuccessfully processed 1 files"
        return subprocess.CompletedProcess(cmd, 0, out, "")


@pytest.fixture
def windows(monkeypatch) -> Any:
    """Make the harness believe it runs on Windows, with fake Windows-only calls."""
    known_folders(monkeypatch)
    fake = hostos.Windows(run=FakeCommands())
    previous = hostos.use(fake)
    yield fake
    hostos.use(previous)


# --- which OS -----------------------------------------------------------------------------

def test_linux_is_linux():
    assert hostos.current().name == "linux" and hostos.current().linux
    assert isinstance(hostos.current(), hostos.Linux)


# --- folders ------------------------------------------------------------------------------

def test_linux_folders_are_the_ones_linux_users_had():
    """Literally today's paths (not platformdirs: $XDG_STATE_HOME would move them)."""
    from harness.media import isocache
    from harness.settings import BY_NAME

    assert BY_NAME["scratch"].default == "/var/tmp/gmi-harness"
    assert BY_NAME["credentials_dir"].default == "~/.local/state/gmi-harness/credentials"
    assert BY_NAME["iso_cache"].default == "~/.cache/gmi-harness/iso"
    assert isocache.CACHE_DIR == "~/.cache/gmi-harness/iso"


def test_linux_folders_ignore_xdg(monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", "/elsewhere/state")
    monkeypatch.setenv("XDG_CACHE_HOME", "/elsewhere/cache")
    dirs = hostos.Linux().user_dirs()
    assert "/elsewhere" not in dirs.credentials + dirs.iso_cache


def test_windows_folders_are_the_users_own(monkeypatch):
    """platformdirs' Windows answers: scratch in the user's temp folder, state and cache
    in %LOCALAPPDATA%."""
    known_folders(monkeypatch)
    dirs = hostos.Windows().user_dirs()
    local = PureWindowsPath(r"C:\Users\builder\AppData\Local")
    assert PureWindowsPath(dirs.scratch) == local / "Temp" / "gmi-harness"
    assert PureWindowsPath(dirs.credentials) == local / "gmi-harness" / "credentials"
    assert PureWindowsPath(dirs.iso_cache) == local / "gmi-harness" / "Cache" / "iso"


def test_settings_defaults_come_from_the_seam(monkeypatch):
    """On Windows the settings' defaults are the Windows folders (settings.py asks the
    seam once, at import: re-imported here under the fake)."""
    import importlib

    import harness.settings as settings_mod

    known_folders(monkeypatch)
    previous = hostos.use(hostos.Windows())
    try:
        fresh = importlib.reload(settings_mod)
        assert PureWindowsPath(fresh.BY_NAME["scratch"].default) == PureWindowsPath(
            r"C:\Users\builder\AppData\Local\Temp\gmi-harness")
        assert "AppData" in fresh.BY_NAME["credentials_dir"].default
    finally:
        hostos.use(previous)
        importlib.reload(settings_mod)
    assert settings_mod.BY_NAME["scratch"].default == "/var/tmp/gmi-harness"


# --- locks --------------------------------------------------------------------------------

HOLD_AND_REPORT = """
import sys, time
from pathlib import Path
from harness.host import hostos
if sys.argv[2] == "windows":
    hostos.use(hostos.Windows())
from harness.host.tools import folder_lock
print("waiting", flush=True)
with folder_lock(Path(sys.argv[1])):
    print(time.monotonic(), flush=True)
"""


@pytest.mark.parametrize("kind", ["linux", "windows"])
def test_folder_lock_is_exclusive_across_processes(tmp_path, kind):
    """Two processes updating one index: the second waits for the first (Windows: a
    lock file in the folder, through filelock, since a folder cannot be opened)."""
    from harness.host.tools import folder_lock

    folder = tmp_path / "index"
    previous = hostos.use(hostos.Windows() if kind == "windows" else hostos.Linux())
    try:
        with folder_lock(folder):
            proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_REPORT, str(folder), kind],
                                    stdout=subprocess.PIPE, text=True, cwd=REPO)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "waiting"
            time.sleep(0.5)
            assert proc.poll() is None, "the second process did not wait for the lock"
            released = time.monotonic()
    finally:
        hostos.use(previous)
    assert float(proc.communicate(timeout=30)[0]) >= released
    if kind == "linux":
        assert list(folder.iterdir()) == []  # the folder itself was locked: no lock file
    else:
        assert [p.name for p in folder.iterdir()] in ([], [".gmi-harness.lock"])


def test_file_lock_is_filelock_and_released_when_the_holder_dies(tmp_path):
    """A holder that is killed does not keep the lock (the OS releases it)."""
    from harness.host.tools import file_lock

    lock = tmp_path / "x.lock"
    code = ("import sys, time; from pathlib import Path; from harness.host.tools import file_lock\n"
            "with file_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    start = time.monotonic()
    with file_lock(lock):
        assert time.monotonic() - start < 5


# --- the credentials file -----------------------------------------------------------------

def _creds() -> Credentials:
    return Credentials("gmiadmin", "Root-Pw-123456", "Admin-Pw-654321", KeyPair.generate("t"))


def test_linux_credentials_are_0600_in_0700(tmp_path):
    folder = tmp_path / "creds"
    old = folder / "GMI-Debian-12-run.txt"
    folder.mkdir()
    old.write_text("left by an earlier run")
    old.chmod(0o644)
    path = _creds().record(folder, "GMI Debian 12 run")
    assert path == old
    assert folder.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600  # even a file that was there before
    assert "Root-Pw-123456" in path.read_text()


def test_windows_credentials_get_an_acl_for_this_user_alone_before_the_secrets(tmp_path, windows):
    """The folder and then the file get an explicit ACL (inheritance removed, full
    control for the user's SID alone) from icacls; the file is empty until then."""
    run: FakeCommands = windows.run
    folder = tmp_path / "creds"
    run.watch = folder / "GMI-Debian-12-run.txt"
    path = _creds().record(folder, "GMI Debian 12 run")
    assert path == run.watch
    assert run.calls == [
        ["whoami", "/user", "/fo", "csv", "/nh"],
        ["icacls", str(folder), "/reset"],
        ["icacls", str(folder), "/inheritance:r", "/grant:r", f"*{SID}:(OI)(CI)F"],
        ["whoami", "/user", "/fo", "csv", "/nh"],
        ["icacls", str(path), "/reset"],
        ["icacls", str(path), "/inheritance:r", "/grant:r", f"*{SID}:F"],
    ]
    assert run.seen[:3] == [None, None, None]  # the folder was private before the file existed
    assert run.seen[3:] == [0, 0, 0]  # the file was empty while it was made private
    assert "Admin-Pw-654321" in path.read_text()


@pytest.mark.parametrize("fail, whoami, message", [
    ("/grant:r", None, r"icacls .* failed \(exit 5\): .*: Access is denied\.; the credentials "
                       r"file cannot be made private, so nothing was written"),
    ("", "INFO: no user\r\n", r"whoami /user did not name this user's SID"),
])
def test_windows_credentials_are_not_written_when_they_cannot_be_private(
        tmp_path, windows, fail, whoami, message):
    windows.run = FakeCommands(fail=fail, **({"whoami": whoami} if whoami else {}))
    with pytest.raises(hostos.PrivacyError, match=message):
        _creds().record(tmp_path / "creds", "GMI Debian 12 run")
    written = list((tmp_path / "creds").glob("*.txt"))
    assert all(p.read_text() == "" for p in written)


def test_windows_privacy_tool_missing_is_one_line(tmp_path):
    def missing(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "The system cannot find the file specified", cmd[0])

    with pytest.raises(hostos.PrivacyError, match=r"^whoami failed \(.*\): the credentials file "
                                                  r"cannot be made private"):
        hostos.Windows(run=missing).private_folder(tmp_path / "c")


# --- signals ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, wanted", [("linux", {"SIGINT", "SIGTERM", "SIGHUP"}),
                                          ("windows", {"SIGINT", "SIGTERM", "SIGBREAK"})])
def test_signals_that_end_a_run_exist_on_that_os(monkeypatch, kind, wanted):
    from harness.plugin import run

    installed: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.append(sig))
    # (as a terminal's session starts it: none ignored; under nohup SIGHUP is, and the
    # harness leaves it so: test_a_signal_started_ignored_stays_ignored)
    monkeypatch.setattr(signal, "getsignal", lambda sig: signal.SIG_DFL)
    if kind == "windows":
        monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)  # Windows' number for it
    previous = hostos.use(hostos.Windows() if kind == "windows" else hostos.Linux())
    try:
        run.terminate_as_interrupt()
    finally:
        hostos.use(previous)
    assert set(installed) == {getattr(signal, name) for name in wanted}
    if kind == "windows":
        assert signal.SIGHUP not in installed


def test_a_signal_this_interpreter_lacks_is_skipped(monkeypatch, windows):
    """Windows' list on an interpreter without SIGBREAK: Ctrl-C and SIGTERM, no error."""
    from harness.plugin import run

    installed: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.append(sig))
    # (as a terminal's session starts it: none ignored; under nohup SIGHUP is, and the
    # harness leaves it so: test_a_signal_started_ignored_stays_ignored)
    monkeypatch.setattr(signal, "getsignal", lambda sig: signal.SIG_DFL)
    monkeypatch.delattr(signal, "SIGBREAK", raising=False)
    run.terminate_as_interrupt()
    assert installed == [signal.SIGINT, signal.SIGTERM]


# --- is the run that made a VM still alive? -----------------------------------------------

class FakeKernel32:
    def __init__(self, exists: bool = True, denied: bool = False, code: int = hostos.STILL_ACTIVE):
        self.exists, self.denied, self.code = exists, denied, code
        self.opened: list[tuple[int, bool, int]] = []
        self.closed: list[int] = []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        self.opened.append((access, inherit, pid))
        return 0 if (self.denied or not self.exists) else 1234

    def GetExitCodeProcess(self, handle: int, ref: Any) -> int:
        ref._obj.value = self.code
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.closed.append(handle)
        return 1


@pytest.mark.parametrize("k32, last_error, alive", [
    (FakeKernel32(), 0, True),
    (FakeKernel32(code=0), 0, False),  # exited, handle still around
    (FakeKernel32(exists=False), 87, False),  # ERROR_INVALID_PARAMETER: no such process
    (FakeKernel32(denied=True), 5, True),  # another user's process
])
def test_windows_pid_check_asks_kernel32_and_sends_nothing(k32, last_error, alive):
    win = hostos.Windows(kernel32=lambda: k32, last_error=lambda: last_error)
    assert win.pid_alive(4242) is alive
    assert k32.opened == [(hostos.PROCESS_QUERY_LIMITED_INFORMATION, False, 4242)]
    assert k32.closed == ([1234] if k32.exists and not k32.denied else [])


def test_linux_pid_check():
    linux = hostos.Linux()
    assert linux.pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not linux.pid_alive(proc.pid)


def test_the_janitor_asks_the_seam(windows):
    from harness.backends.hyperv import janitor

    windows.kernel32 = lambda: FakeKernel32(code=0)
    windows.last_error = lambda: 0
    assert janitor.pid_alive(4242) is False


# --- disk allocation and runs/latest ------------------------------------------------------

def test_allocation_of_a_sparse_file(tmp_path):
    sparse = tmp_path / "disk.raw"
    with sparse.open("wb") as f:
        f.truncate(1 << 30)
    st = sparse.stat()
    assert hostos.Linux().allocated_bytes(st) < 1 << 20  # Linux: what it occupies
    assert hostos.Windows().allocated_bytes(st) == 1 << 30  # Windows: stat has no blocks


def test_linux_latest_is_a_relative_symlink(tmp_path):
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-2").mkdir()
    latest = tmp_path / "latest"
    hostos.Linux().point_link(latest, "run-1")
    hostos.Linux().point_link(latest, "run-2")
    assert os.readlink(latest) == "run-2"


def test_windows_latest_falls_back_to_a_junction(tmp_path, monkeypatch):
    """Without Developer Mode or an administrator a symlink is refused (WinError 1314):
    a junction, to the absolute path, needs neither."""
    (tmp_path / "run-1").mkdir()
    made: list[tuple[str, str]] = []
    win = hostos.Windows(create_junction=lambda target, link: made.append((target, link)))

    def refused(self: Path, target: str, target_is_directory: bool = False) -> None:
        assert target_is_directory
        raise OSError(22, "A required privilege is not held by the client", str(self), None, 1314)

    monkeypatch.setattr(Path, "symlink_to", refused)
    win.point_link(tmp_path / "latest", "run-1")
    assert made == [(str(tmp_path / "run-1"), str(tmp_path / "latest"))]


def test_windows_latest_leaves_a_real_folder_alone(tmp_path):
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "mine.txt").write_text("x")
    hostos.Windows(create_junction=lambda t, lnk: pytest.fail("made a junction")).point_link(
        tmp_path / "latest", "run-1")
    assert (tmp_path / "latest" / "mine.txt").exists()


# --- QEMU on Windows ----------------------------------------------------------------------

def test_qemu_is_refused_off_linux_in_one_line(windows):
    with pytest.raises(ConfigError) as err:
        backend_class("qemu")
    message = str(err.value)
    assert message == ("the qemu backend needs Linux (qemu-system-x86_64, qemu-img, debootstrap "
                       "and mkfs.ext4); on this Windows machine use --backend=hyperv (with "
                       "--hyperv-local on the Hyper-V host itself)")
    assert check_backend("hyperv") and backend_class("hyperv").__name__ == "HyperVBackend"


def test_qemu_is_refused_before_the_run_starts(tmp_path):
    """What a Windows user sees from ``pytest checks --distro=debian-12`` (the default
    backend is qemu): one line, no traceback, nothing built or written."""
    code = ("import sys, pytest\nimport platformdirs.windows\nfrom harness.host import hostos\n"
            f"platformdirs.windows.get_win_folder = lambda name: {LOCAL_APPDATA!r}\n"
            "hostos.use(hostos.Windows())\nsys.exit(pytest.main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "checks", "--distro=debian-12",
                           f"--out={tmp_path / 'out'}", f"--scratch={tmp_path / 'scratch'}", "-q"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 4  # usage error
    assert proc.stderr.strip().splitlines() == [
        "ERROR: the qemu backend needs Linux (qemu-system-x86_64, qemu-img, debootstrap and "
        "mkfs.ext4); on this Windows machine use --backend=hyperv (with --hyperv-local on the "
        "Hyper-V host itself)"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "scratch").exists()


def test_ctypes_pointer_fake_matches_ctypes():
    """The kernel32 fake writes through ``byref(...)._obj`` as the real call writes
    through the pointer: guard that this is still how ctypes exposes it."""
    code = ctypes.c_ulong(0)
    ctypes.byref(code)._obj.value = 7  # type: ignore[attr-defined]
    assert code.value == 7


def test_windows_latest_replaces_the_previous_link(tmp_path, monkeypatch):
    """The previous run's link goes with os.rmdir (on Windows: the link, never the
    folder it points to)."""
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-2").mkdir()
    (tmp_path / "run-1" / "report.html").write_text("kept")
    latest = tmp_path / "latest"
    latest.symlink_to("run-1")
    removed: list[Path] = []

    def rmdir(path: Any) -> None:  # what RemoveDirectoryW does to a reparse point
        removed.append(Path(path))
        Path(path).unlink()

    monkeypatch.setattr(os, "rmdir", rmdir)
    hostos.Windows().point_link(latest, "run-2")
    assert removed == [latest] and os.readlink(latest) == "run-2"
    assert (tmp_path / "run-1" / "report.html").read_text() == "kept"


def test_a_missing_tool_says_how_to_get_it_on_this_os(windows, monkeypatch, tmp_path):
    """Debian's install ISO is remastered with xorriso, on Hyper-V too: on Windows the
    message cannot name a Debian package."""
    from harness.host import tools as host
    from harness.media import iso

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError) as err:
        iso.remaster(tmp_path / "a.iso", tmp_path / "b.iso", {}, "")
    assert str(err.value) == ("xorriso not found on this host: put a Windows build of xorriso "
                              "(xorriso.exe) on PATH: Windows does not ship it")
    hostos.use(hostos.Linux())
    with pytest.raises(MissingToolError) as err:
        host.require_tools(["mkfs.ext4"])
    assert str(err.value) == ("mkfs.ext4 not found on this host: install it with 'apt-get install "
                              "-y e2fsprogs' (or run 'make setup')")


@pytest.mark.parametrize("kind", ["linux", "windows"])
def test_the_build_key_is_private_too(tmp_path, monkeypatch, kind):
    """The build's SSH key (written for the clone's testinfra) goes through the same
    seam as the passwords."""
    key = KeyPair.generate("t")
    if kind == "linux":
        path = key.write_private(tmp_path / "build.key")
        assert path.stat().st_mode & 0o777 == 0o600
    else:
        known_folders(monkeypatch)
        run = FakeCommands()
        run.watch = tmp_path / "build.key"
        previous = hostos.use(hostos.Windows(run=run))
        try:
            path = key.write_private(tmp_path / "build.key")
        finally:
            hostos.use(previous)
        assert run.calls[-1] == ["icacls", str(path), "/inheritance:r", "/grant:r", f"*{SID}:F"]
        assert run.seen == [0, 0, 0]  # empty while it was made private
    assert path.read_text() == key.private_openssh


# --- a run's claim on its scratch folder (harness/host/runmarker.py) ----------------------------

def test_linux_process_identity_is_proc_start_and_boot():
    start, boot = hostos.Linux().process_identity()
    assert start == hostos.proc_start(os.getpid()) and len(boot) == 36


def test_windows_run_marker_carries_the_creation_time(tmp_path, windows):
    """Every backend's build writes a run marker; on Windows there is no /proc: the
    marker gets the process's creation time from kernel32 (and no boot id)."""
    from harness.host import runmarker

    class K32(FakeKernel32):
        def GetCurrentProcess(self) -> int:
            return -1  # the pseudo-handle

        def GetProcessTimes(self, handle: int, *times: Any) -> int:
            assert handle == -1 and len(times) == 4
            times[0]._obj.dwHighDateTime, times[0]._obj.dwLowDateTime = 0x01DB4A2B, 0x5C3E8000
            return 1

    windows.kernel32 = K32
    runmarker.write(tmp_path, run="R", worker="", subject="debian-12", backend="hyperv")
    fields, owner = runmarker.read(tmp_path)
    assert owner is not None and owner.pid == os.getpid()
    assert owner.start == 0x01DB4A2B5C3E8000 and owner.boot == ""
    assert fields["backend"] == "hyperv"


def test_linux_host_command_grandchildren_die_with_their_group():
    """A host command (debootstrap and the dpkg it starts) is killed whole: its own
    group, SIGKILLed by the seam, grandchildren too."""
    os_ = hostos.Linux()
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE,
                            text=True, **os_.own_group())
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    os_.kill_group(proc.pid)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    for _ in range(300):  # reaped by init once killed; gone from the table soon after
        if not os_.pid_alive(grandchild) or _zombie(grandchild):
            break
        time.sleep(0.1)
    assert not os_.pid_alive(grandchild) or _zombie(grandchild)
    os_.kill_group(proc.pid)  # a group already gone is not an error
    proc.stdout.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_windows_host_command_group_is_a_new_group_ended_by_taskkill_tree(windows):
    """Windows has no signal for a group: the child starts in a new process group and is
    ended with its children by ``taskkill /T /F`` (run through the seam's command runner)."""
    os_ = hostos.current()
    assert os_.own_group() == {"creationflags": 0x200}  # CREATE_NEW_PROCESS_GROUP
    os_.kill_group(4242)
    assert windows.run.calls[-1] == ["taskkill", "/T", "/F", "/PID", "4242"]


def test_a_signal_started_ignored_stays_ignored(monkeypatch):
    """nohup's SIGHUP (and the SIGINT a shell gives a background job) stay ignored: the
    run does not take them over."""
    from harness.plugin import run

    installed: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.append(sig))
    monkeypatch.setattr(signal, "getsignal",
                        lambda sig: signal.SIG_IGN if sig == signal.SIGHUP else signal.SIG_DFL)
    previous = hostos.use(hostos.Linux())
    try:
        run.terminate_as_interrupt()
    finally:
        hostos.use(previous)
    assert set(installed) == {signal.SIGINT, signal.SIGTERM}


def test_a_killed_host_command_s_group_is_gone_when_the_run_goes_on():
    """run_group kills the whole group on an interrupt (here its timeout) and returns
    only once no member runs: the shell's subshells (as debootstrap's are) included."""
    from harness.host import tools

    marker = f"300.{os.getpid()}"  # (a sleep of its own, found by its argument)
    with pytest.raises(subprocess.TimeoutExpired):
        tools.run_group(["sh", "-c", f"(sleep {marker}; :) & (sleep {marker}; :) & wait"], timeout=1)
    running = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd:
                running.append(p.name)
    assert running == []
