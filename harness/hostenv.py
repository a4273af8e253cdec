"""Facts about the machine the harness runs on: tools, free space, free ports."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from .errors import DiskSpaceError, MissingToolError

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

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_FILES = {
    "code_secboot": "OVMF_CODE_4M.secboot.fd",
    "vars_ms": "OVMF_VARS_4M.ms.fd",
    "code": "OVMF_CODE_4M.fd",
    "vars": "OVMF_VARS_4M.fd",
}


def require_tools(tools: list[str]) -> None:
    """Raise :class:`MissingToolError` for the first tool not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise MissingToolError(tool, TOOL_PACKAGES.get(tool, tool))


def ovmf(kind: str, directory: Path = OVMF_DIR) -> Path:
    """Path of an OVMF firmware file; missing means the ``ovmf`` package is missing."""
    path = directory / OVMF_FILES[kind]
    if not path.exists():
        raise MissingToolError(str(path), "ovmf")
    return path


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
