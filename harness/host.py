"""The machine the harness runs on: its tools, free space and ports, file hashes, and
host-wide locks for work that xdist workers or two runs must not do at once."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from harness import hostos
from harness.errors import DiskSpaceError, MissingToolError

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
