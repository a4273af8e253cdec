"""What differs between the operating systems the harness runs on: Linux (both
backends) and Windows (the Hyper-V backend on the Hyper-V host itself). One method per
concern, on one object chosen once (:func:`current`); the rest of the harness is the
same code on both and asks this object.

The Windows branches are plain Python around the few calls only Windows has (``icacls``
and ``whoami``, kernel32, ``_winapi``); those calls are attributes of :class:`Windows`,
so the tests run the Windows branches on Linux with just those calls faked
(``tests/test_hostos.py``), and ``mypy --platform win32`` checks the rest.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock, lock_descriptor

from harness.errors import GmiError

APP = "gmi-harness"


class PrivacyError(GmiError):
    """A file for secrets could not be made private to the user."""


@dataclass(frozen=True)
class UserDirs:
    """The default folders of the settings that live outside the project."""

    scratch: str
    credentials: str
    iso_cache: str


PROC = Path("/proc")


def proc_stat(pid: int | str, proc: Path = PROC) -> list[str] | None:
    """Linux: the fields of ``/proc/PID/stat`` from field 3 on (``[0]`` is the state),
    or None when there is no such process. The command name (field 2) may hold spaces
    and parentheses: fields are counted after its last ``)``."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    return stat.rsplit(")", 1)[1].split()


def proc_start(pid: int, proc: Path = PROC) -> int | None:
    """Linux: field 22 of ``/proc/PID/stat`` (start time in clock ticks after boot), or
    None when there is no such process."""
    fields = proc_stat(pid, proc)
    return None if fields is None else int(fields[19])  # field 3 is fields[0]


def proc_boot_id(proc: Path = PROC) -> str:
    """Linux: the kernel's id of the current boot."""
    return (proc / "sys/kernel/random/boot_id").read_text().strip()


class HostOS(ABC):
    """One operating system's answers; :class:`Linux` and :class:`Windows`."""

    name: str
    linux: bool  # can run the Linux tools the QEMU backend drives

    @abstractmethod
    def user_dirs(self) -> UserDirs: ...

    @abstractmethod
    def folder_lock(self, folder: Path) -> contextlib.AbstractContextManager[None]: ...

    @abstractmethod
    def termination_signals(self) -> tuple[str, ...]: ...

    @abstractmethod
    def private_folder(self, path: Path) -> None: ...

    @abstractmethod
    def private_file(self, path: Path) -> TextIO: ...

    @abstractmethod
    def pid_alive(self, pid: int) -> bool: ...

    @abstractmethod
    def allocated_bytes(self, st: os.stat_result) -> int: ...

    @abstractmethod
    def point_link(self, link: Path, target: str) -> None: ...

    @abstractmethod
    def powershell_names(self) -> tuple[str, ...]: ...

    @abstractmethod
    def install_hint(self, tool: str, package: str) -> str: ...

    @abstractmethod
    def process_identity(self) -> tuple[int, str]: ...

    @abstractmethod
    def own_group(self) -> dict[str, Any]: ...

    @abstractmethod
    def kill_group(self, pid: int) -> None: ...

    def wait_group_gone(self, pid: int, timeout: float) -> None:  # noqa: B027 - optional
        """Until no process of the group led by ``pid`` is left (bounded by ``timeout``),
        where the OS can tell."""

    @abstractmethod
    def run_in_place(self, cmd: list[str], env: dict[str, str]) -> int:
        """Run ``cmd`` in this process's place to its end and return its exit status
        (``gmi`` starting Python again in UTF-8 mode): every signal that ends a run
        reaches it as it would have reached this process."""


if sys.platform != "win32":  # (so mypy --platform win32 skips what cannot run there)

    class Linux(HostOS):
        """Linux (the harness's home; nothing here changes what Linux users had)."""

        name = "linux"
        linux = True

        def user_dirs(self) -> UserDirs:
            """Today's paths, spelled as before (``~`` expanded when used). Not from
            platformdirs: it would move them wherever ``$XDG_STATE_HOME`` or
            ``$XDG_CACHE_HOME`` is set, and its scratch-like folder (the runtime dir,
            ``/run/user/UID``) is a small tmpfs, not a place for 6 GiB disks."""
            return UserDirs(scratch="/var/tmp/gmi-harness",
                            credentials="~/.local/state/gmi-harness/credentials",
                            iso_cache="~/.cache/gmi-harness/iso")

        @contextlib.contextmanager
        def folder_lock(self, folder: Path) -> Iterator[None]:
            """An exclusive lock on the folder itself (no lock file is left in it)."""
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                lock_descriptor(fd)
                yield
            finally:
                os.close(fd)  # releases the lock

        def termination_signals(self) -> tuple[str, ...]:
            """Signals that end a run like Ctrl-C: a kill, and the terminal going away."""
            return ("SIGTERM", "SIGHUP")

        def private_folder(self, path: Path) -> None:
            """Create ``path`` (mode 0700) for files only this user may read."""
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)

        def private_file(self, path: Path) -> TextIO:
            """``path`` opened for writing, readable by this user alone (0600) before
            anything is written to it."""
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.chmod(path, 0o600)  # a file left by an earlier run keeps its mode otherwise
            return os.fdopen(fd, "w", encoding="utf-8")

        def pid_alive(self, pid: int) -> bool:
            """Whether a process with this id exists on this machine."""
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True

        def allocated_bytes(self, st: os.stat_result) -> int:
            """Bytes a (sparse) file really occupies on disk."""
            return st.st_blocks * 512

        def point_link(self, link: Path, target: str) -> None:
            """Make ``link`` point at the sibling folder ``target`` (``runs/latest``),
            replacing an earlier link but never a real folder or file."""
            if link.is_symlink() or not link.exists():
                link.unlink(missing_ok=True)
                link.symlink_to(target)

        def powershell_names(self) -> tuple[str, ...]:
            """What ``--hyperv-local`` looks for on PATH, in order."""
            return ("pwsh", "powershell.exe", "powershell")

        def install_hint(self, tool: str, package: str) -> str:
            """How to get a missing tool (``package``: the Debian package that ships it)."""
            return f"install it with 'apt-get install -y {package}' (or run 'make setup')"

        def process_identity(self) -> tuple[int, str]:
            """This process's start time and boot (harness/host/runmarker.py): what tells it
            apart from a later process given the same pid."""
            start = proc_start(os.getpid())
            assert start is not None  # this very process
            return start, proc_boot_id()

        def own_group(self) -> dict[str, Any]:
            """``subprocess.Popen`` arguments that start a child in a process group of its
            own (a new session), so its grandchildren can be killed with it."""
            return {"start_new_session": True}

        def kill_group(self, pid: int) -> None:
            """SIGKILL the process group led by ``pid`` (started with :meth:`own_group`);
            a group already gone is not an error."""
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

        def wait_group_gone(self, pid: int, timeout: float) -> None:
            """SIGKILLed members of a group go at once, but one in the middle of a disk
            write (debootstrap's dpkg) can take a moment: until /proc shows none of the
            group but zombies (dead, waiting for init to reap them)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._group_running(pid):
                time.sleep(0.05)

        @staticmethod
        def _group_running(pgid: int) -> bool:
            """A process of group ``pgid`` (field 5) that is not a zombie (state Z)."""
            return any(fields is not None and int(fields[2]) == pgid and fields[0] != "Z"
                       for fields in (proc_stat(e.name) for e in PROC.iterdir() if e.name.isdigit()))

        def run_in_place(self, cmd: list[str], env: dict[str, str]) -> int:
            """exec: the same process (its pid, its signals) runs ``cmd``."""
            os.execve(cmd[0], cmd, env)


# Windows constants (kernel32 and the reparse tag of a junction).
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_ACCESS_DENIED = 5
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003


def _kernel32() -> Any:  # pragma: no cover - exists only on Windows
    import ctypes
    from ctypes import wintypes

    k32 = getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)  # noqa: B009 - not in Linux stubs
    k32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    k32.OpenProcess.restype = wintypes.HANDLE  # None for a null handle
    k32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    k32.GetExitCodeProcess.restype = wintypes.BOOL
    k32.CloseHandle.argtypes = (wintypes.HANDLE,)
    k32.GetCurrentProcess.restype = wintypes.HANDLE
    k32.GetProcessTimes.argtypes = (wintypes.HANDLE, *(ctypes.POINTER(wintypes.FILETIME),) * 4)
    k32.GetProcessTimes.restype = wintypes.BOOL
    return k32


def _last_error() -> int:  # pragma: no cover - exists only on Windows
    import ctypes

    return int(getattr(ctypes, "get_last_error")())  # noqa: B009 - not in Linux stubs


def _create_junction(target: str, link: str) -> None:  # pragma: no cover - Windows only
    import _winapi

    getattr(_winapi, "CreateJunction")(target, link)  # noqa: B009 - not in Linux stubs


class Windows(HostOS):
    """Windows (the Hyper-V host itself, with ``--backend=hyperv --hyperv-local``)."""

    name = "windows"
    linux = False

    def __init__(self, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                 kernel32: Callable[[], Any] = _kernel32,
                 last_error: Callable[[], int] = _last_error,
                 create_junction: Callable[[str, str], None] = _create_junction,
                 popen: Callable[..., Any] = subprocess.Popen) -> None:
        self.run = run
        self.popen = popen
        self.kernel32 = kernel32
        self.last_error = last_error
        self.create_junction = create_junction

    def user_dirs(self) -> UserDirs:
        r"""The user's own folders, from platformdirs: scratch in the user's temp
        folder (``%LOCALAPPDATA%\Temp\gmi-harness``), the credentials in
        ``%LOCALAPPDATA%\gmi-harness\credentials``, the ISO cache in
        ``%LOCALAPPDATA%\gmi-harness\Cache\iso``."""
        from platformdirs.windows import Windows as Dirs

        dirs = Dirs(APP, appauthor=False)
        return UserDirs(scratch=dirs.user_runtime_dir,
                        credentials=str(Path(dirs.user_state_dir) / "credentials"),
                        iso_cache=str(Path(dirs.user_cache_dir) / "iso"))

    @contextlib.contextmanager
    def folder_lock(self, folder: Path) -> Iterator[None]:
        """A folder cannot be opened (and so not locked) on Windows: a lock file in it,
        which filelock's Windows lock removes again on release."""
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(folder / f".{APP}.lock"):
            yield

    def termination_signals(self) -> tuple[str, ...]:
        """No SIGHUP on Windows; Ctrl-Break (which a CI runner may send when it cancels
        a job, after Ctrl-C) is SIGBREAK."""
        return ("SIGTERM", "SIGBREAK")

    def private_folder(self, path: Path) -> None:
        r"""Create ``path`` with an explicit ACL: inheritance removed, full control for
        this user alone (the way 0700 reads on Windows). Explicit rather than trusting
        the profile folder's ACL, because ``--credentials-dir`` may be anywhere (on
        ``C:\`` the inherited ACL lets every user read)."""
        path.mkdir(parents=True, exist_ok=True)
        self._restrict(path, "(OI)(CI)F")

    def private_file(self, path: Path) -> TextIO:
        """The file is created empty, given this user's ACL alone, and only then
        opened for the secrets."""
        with open(path, "w", encoding="utf-8"):
            pass
        self._restrict(path, "F")
        return open(path, "w", encoding="utf-8")

    def _restrict(self, path: Path, rights: str) -> None:
        sid = self._user_sid()
        self._icacls(str(path), "/reset")  # drops explicit ACEs an earlier owner added
        self._icacls(str(path), "/inheritance:r", "/grant:r", f"*{sid}:{rights}")

    def _user_sid(self) -> str:
        out = self._call(["whoami", "/user", "/fo", "csv", "/nh"])
        rows = [r for r in csv.reader(io.StringIO(out)) if len(r) >= 2]
        if not rows or not rows[0][1].startswith("S-1-"):
            raise PrivacyError(f"whoami /user did not name this user's SID: {out.strip()[:200]!r}")
        return rows[0][1]

    def _icacls(self, *args: str) -> None:
        self._call(["icacls", *args])

    def _call(self, cmd: list[str]) -> str:
        try:
            proc = self.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrivacyError(f"{cmd[0]} failed ({exc}): the credentials file cannot be made "
                               "private, so nothing was written") from None
        if proc.returncode != 0:
            why = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise PrivacyError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}): "
                               f"{why[0] if why else 'no message'}; the credentials file cannot "
                               "be made private, so nothing was written")
        return str(proc.stdout)

    def pid_alive(self, pid: int) -> bool:
        """Asked of kernel32: ``os.kill(pid, 0)`` on Windows does not ask, it sends
        Ctrl-C (signal 0 is CTRL_C_EVENT) to a process group."""
        k32 = self.kernel32()
        handle = k32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return self.last_error() == ERROR_ACCESS_DENIED  # exists, belongs to another user
        try:
            import ctypes

            code = ctypes.c_ulong(0)  # a DWORD
            if not k32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True  # there, but its state unreadable: do not call it dead
            return code.value == STILL_ACTIVE
        finally:
            k32.CloseHandle(handle)

    def allocated_bytes(self, st: os.stat_result) -> int:
        """Windows' stat has no block count; the files the Hyper-V backend measures
        here (answer ISOs, the fetched export) are written whole, not sparse, so their
        size is what they occupy."""
        return st.st_size

    def point_link(self, link: Path, target: str) -> None:
        """A symlink needs Developer Mode or an administrator; without one, a junction
        (which needs neither, and takes an absolute path)."""
        if self._is_link(link):
            os.rmdir(link)  # removes a directory symlink or junction, never its target
        elif link.exists():
            return
        try:
            link.symlink_to(target, target_is_directory=True)
        except OSError:
            self.create_junction(str(link.parent / target), str(link))

    @staticmethod
    def _is_link(path: Path) -> bool:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        return path.is_symlink() or getattr(st, "st_reparse_tag", 0) == IO_REPARSE_TAG_MOUNT_POINT

    def powershell_names(self) -> tuple[str, ...]:
        """Windows PowerShell 5.1, the engine of every remote session too (one engine to
        keep the scripts right for; on Server 2016 the Hyper-V module is not PowerShell 7
        compatible), from PATH or System32 where PATH was trimmed; PowerShell 7 only where
        5.1 is gone."""
        system = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return ("powershell.exe",
                str(Path(system, "System32", "WindowsPowerShell", "v1.0", "powershell.exe")),
                "pwsh.exe")

    def install_hint(self, tool: str, package: str) -> str:
        """Windows has no package manager the harness could name; the one tool the
        Hyper-V path may need is xorriso (Debian's install ISO is remastered)."""
        return f"put a Windows build of {tool} ({tool}.exe) on PATH: Windows does not ship it"

    def process_identity(self) -> tuple[int, str]:
        """This process's creation time (100 ns units since 1601, from kernel32's
        GetProcessTimes) and no boot id: on Windows the run markers are only written
        (the QEMU janitor, their reader, is Linux's)."""
        import ctypes
        from ctypes import wintypes

        k32 = self.kernel32()
        created, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
        if not k32.GetProcessTimes(k32.GetCurrentProcess(), ctypes.byref(created),
                                   ctypes.byref(exited), ctypes.byref(kernel), ctypes.byref(user)):
            return 0, ""
        return (created.dwHighDateTime << 32) | created.dwLowDateTime, ""

    def own_group(self) -> dict[str, Any]:
        """A new process group (Windows has no sessions to start; Ctrl-C then does not
        reach the child straight from the console, the run ends it)."""
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}

    def run_in_place(self, cmd: list[str], env: dict[str, str]) -> int:
        """Windows has no exec (``os.exec*`` starts a new process and ends this one: the
        console's prompt would come back while the run goes on), so the child runs while
        this process waits for it. Ctrl-C and Ctrl-Break reach every process of the
        console, the child too: here they are ignored while it runs, the child ends the
        run as pytest does, and its exit status is returned."""
        names = ("SIGINT", "SIGBREAK")
        signals = [getattr(signal, n) for n in names if hasattr(signal, n)]
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
        try:
            return int(self.popen(cmd, env=env).wait())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def kill_group(self, pid: int) -> None:
        """End ``pid`` and every process it started (``taskkill /T /F``: Windows has no
        signal for a group); one already gone is not an error."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True, text=True,
                     check=False, timeout=30)


_CURRENT: HostOS
if sys.platform == "win32":
    _CURRENT = Windows()
else:
    _CURRENT = Linux()


def current() -> HostOS:
    """The operating system the harness runs on."""
    return _CURRENT


def use(os_: HostOS) -> HostOS:
    """Make ``os_`` the current one (tests: the Windows branches on Linux); returns
    the previous one."""
    global _CURRENT
    previous, _CURRENT = _CURRENT, os_
    return previous
