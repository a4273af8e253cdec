"""The machine the harness runs on: its tools, free space and ports, file hashes, and
host-wide locks for work that xdist workers or two runs must not do at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

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
            raise MissingToolError(tool, TOOL_PACKAGES.get(tool, tool))


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
    return path.stat().st_blocks * 512


def tree_allocated_bytes(path: Path) -> int:
    """Bytes a folder tree occupies on disk (0 when it does not exist)."""
    if not path.exists():
        return 0
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) + path.lstat().st_blocks * 512


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block;
    released by the kernel even when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder itself (no lock file is left in it): for a
    read-modify-write of a file there that xdist workers share (the repository index)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
