"""The ext4 journal of a powered-off build disk, given back to the host before the
VHDX is made.

A build writes gigabytes through the root filesystem, so its journal (1 GiB on a
250 GB ext4) has been written over; fstrim never discards it, and the VHDX would carry
it. After a clean power-off the journal is empty (its superblock says so: start 0, no
recovery needed), and what its log blocks hold is never read again: jbd2 writes the
next transaction over them. So on the host, on the raw disk, the log blocks are
punched out (they read as zeros, as after ``mkfs.ext4 -E lazy_journal_init=1`` on a new
sparse file, which is how Step 1 made them) and ``e2fsck -fn`` proves the filesystem
consistent afterwards. Anything unexpected (a filesystem that is not clean, a journal
that is not empty, an odd layout) leaves the disk as it is.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from harness.errors import HypervisorError

LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def root_offset(disk: Path) -> int | None:
    """Byte offset of the disk's (largest) Linux filesystem partition, from its GPT."""
    proc = _run("sfdisk", "--json", str(disk))
    if proc.returncode != 0:
        return None
    table = json.loads(proc.stdout).get("partitiontable", {})
    sector = int(table.get("sectorsize", 512))
    linux = [p for p in table.get("partitions", []) if str(p.get("type", "")).upper() == LINUX_FS]
    if not linux:
        return None
    return int(max(linux, key=lambda p: p["size"])["start"]) * sector


def log_extents(spec: str) -> tuple[list[tuple[int, int]], int] | None:
    """The journal's log blocks as (first, last) filesystem blocks, without its own
    superblock (logical block 0), and the block size; None unless the filesystem is
    clean and its journal empty."""
    head = _run("dumpe2fs", "-h", spec)
    if head.returncode != 0:
        return None
    text = head.stdout
    state = re.search(r"^Filesystem state:\s+(.+)$", text, re.M)
    features = re.search(r"^Filesystem features:\s+(.+)$", text, re.M)
    start = re.search(r"^Journal start:\s+(\d+)$", text, re.M)
    size = re.search(r"^Block size:\s+(\d+)$", text, re.M)
    inode = re.search(r"^Journal inode:\s+(\d+)$", text, re.M)
    if not (state and features and start and size and inode) or state[1].strip() != "clean" \
            or "needs_recovery" in features[1] or int(start[1]) != 0:
        return None
    stat = _run("debugfs", "-R", f"stat <{inode[1]}>", spec)
    if stat.returncode != 0 or "EXTENTS:" not in stat.stdout:
        return None
    extents = []
    for m in re.finditer(r"\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?", stat.stdout.split("EXTENTS:")[-1]):
        logical, phys, phys_end = int(m[1]), int(m[3]), int(m[4] or m[3])
        if logical == 0:
            phys += 1  # keep the journal's superblock
        if phys <= phys_end:
            extents.append((phys, phys_end))
    return extents, int(size[1])


def discard_journal(disk: Path) -> int:
    """Punch the empty journal's log blocks out of the raw ``disk``; returns the bytes
    the host file no longer allocates (0 when the disk was left as it is). Raises when
    the filesystem fails ``e2fsck -fn`` afterwards."""
    offset = root_offset(disk)
    if offset is None:
        return 0
    spec = f"{disk}?offset={offset}"
    found = log_extents(spec)
    if not found:
        return 0
    extents, block = found
    before = disk.stat().st_blocks * 512
    for first, last in extents:
        proc = _run("fallocate", "--punch-hole", "--keep-size", "--offset",
                    str(offset + first * block), "--length", str((last - first + 1) * block),
                    str(disk))
        if proc.returncode != 0:
            raise HypervisorError(f"fallocate --punch-hole on {disk} failed: {proc.stderr.strip()}")
    check = _run("e2fsck", "-fn", spec)
    if check.returncode != 0:
        last_line = (check.stdout + check.stderr).strip().splitlines()[-1:] or ["?"]
        raise HypervisorError(f"the root filesystem of {disk} fails e2fsck -fn after its journal "
                              f"was discarded: {last_line[0]}")
    return before - disk.stat().st_blocks * 512


def used_bytes(disk: Path) -> int | None:
    """What the root filesystem of the raw ``disk`` uses, as ``df`` in the booted
    image counts it (its blocks less the free ones and the metadata's overhead, which
    mkfs records); None when it cannot be read."""
    offset = root_offset(disk)
    head = _run("dumpe2fs", "-h", f"{disk}?offset={offset}") if offset is not None else None
    if head is None or head.returncode != 0:
        return None
    fields = {k: int(m[1]) for k in ("Block count", "Free blocks", "Overhead clusters", "Block size")
              if (m := re.search(rf"^{k}:\s+(\d+)$", head.stdout, re.M))}
    if len(fields) != 4:
        return None
    blocks = fields["Block count"] - fields["Free blocks"] - fields["Overhead clusters"]
    return blocks * fields["Block size"]
