"""The machine the harness runs on: its tools, free space and ports, file hashes, and
host-wide locks for work that xdist workers or two runs must not do at once."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from harness.errors import BusyError, DiskSpaceError, MissingToolError
from harness.host import hostos

# host tool -> the Debian package that ships it
TOOL_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "sfdisk": "fdisk",
    "unshare": "util-linux",
    "chroot": "coreutils",
}

def require_tools(tools: list[str]) -> None:
    """Raise :class:`MissingToolError` for the first tool not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            package = TOOL_PACKAGES.get(tool, tool)
            raise MissingToolError(tool, package, hostos.current().install_hint(tool, package))


def require_space(path: Path, needed_bytes: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` when ``path``'s filesystem has too little room."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise DiskSpaceError(
            f"not enough free space for {what} in {path}: {free / 2**30:.1f} GiB free, "
            f"{needed_bytes / 2**30:.1f} GiB needed; free some space or point --scratch "
            f"elsewhere"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def allocated_bytes(path: Path) -> int:
    """Bytes a (sparse) file really occupies on disk."""
    return hostos.current().allocated_bytes(path.stat())


def tree_allocated_bytes(path: Path) -> int:
    """Bytes a folder tree occupies on disk (0 when it does not exist)."""
    if not path.exists():
        return 0
    occupied = hostos.current().allocated_bytes
    return sum(occupied(p.lstat()) for p in path.rglob("*")) + occupied(path.lstat())


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block;
    released by the OS even when the process dies (filelock: flock on Linux,
    LockFileEx on Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def folder_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the folder (on Linux the folder itself, so no lock file
    is left in it): for a read-modify-write of a file there that xdist workers share
    (the repository index)."""
    return hostos.current().folder_lock(folder)


@contextlib.contextmanager
def claim(path: Path, owner: str, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the ``with`` block without waiting for it: when
    another process holds it, raise :class:`BusyError` naming that holder (``owner`` is
    what this process writes beside it, in ``path.owner``: its pid, host and run).
    Released by the OS even when the process dies; the lock file stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    told = path.with_name(path.name + ".owner")
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = told.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            holder = "another process"
        raise BusyError(f"{what} is being written by {holder}; wait for that run to end, "
                        "or choose another --out") from None
    try:
        told.write_text(owner, encoding="utf-8")
        yield
    finally:
        told.unlink(missing_ok=True)
        lock.release()


# Process groups of host commands running now (debootstrap with its dpkg and wget): the
# interrupt watchdog kills them when a run has to stop hard.
RUNNING_GROUPS: set[int] = set()


class HeldInterrupts:
    """While ``depth`` > 0 (a child is being started), the run's interrupt handler
    only notes the signal in ``pending``; :func:`run_group` raises it once it can kill
    what it started. (Blocking the signal would not do: it is a per-thread mask, and
    the kernel hands the signal to another thread.)"""

    depth = 0
    pending = 0


HELD = HeldInterrupts()


GROUP_GONE_TIMEOUT = 10.0  # seconds a killed group's members may take to be gone


def run_group(cmd: Sequence[str], *, input: str | None = None,
              env: Mapping[str, str] | None = None,
              timeout: float | None = None) -> tuple[int, str, str]:
    """Run ``cmd`` in a process group of its own; (exit status, stdout, stderr). When
    anything stops the wait (Ctrl-C, ``timeout`` seconds passing: then
    :class:`subprocess.TimeoutExpired`), the whole group is killed, grandchildren too;
    an interrupt that comes while the child is being started waits until it can be."""
    os_ = hostos.current()
    HELD.depth += 1
    try:
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(env) if env is not None else None, **os_.own_group())
    finally:
        HELD.depth -= 1
    RUNNING_GROUPS.add(proc.pid)
    killed = False
    try:
        with proc:
            try:
                if HELD.pending and not HELD.depth:
                    signum, HELD.pending = HELD.pending, 0
                    raise KeyboardInterrupt(signal.Signals(signum).name)
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except BaseException:
                os_.kill_group(proc.pid)
                killed = True
                raise
            finally:
                RUNNING_GROUPS.discard(proc.pid)
    finally:
        # (the leader reaped by ``with proc``; its group's other members, such as
        # debootstrap's subshells, may still be dying: the run ends after them)
        if killed:
            os_.wait_group_gone(proc.pid, GROUP_GONE_TIMEOUT)
    return proc.returncode, stdout, stderr


def kill_running_groups() -> None:
    """Kill every process group :func:`run_group` has running (any thread may call it)."""
    for pid in list(RUNNING_GROUPS):
        hostos.current().kill_group(pid)
