"""Benchmark: where a GMI's VHDX bytes go, against the guest filesystem's used bytes.

    .venv/bin/python benchmarks/vhdx_overhead.py reports/GMI-Debian-12.zip

Reads the archive's VHDX (never changes it): converts a copy to a sparse raw disk in
scratch, finds the root partition in its GPT, and sorts every non-zero 4 KiB block of
it by what ext4 uses it for (dumpe2fs's layout, debugfs's journal extents): file data
and directories, the journal, the filesystem's own metadata (superblocks, group
descriptors, bitmaps, inode tables), or blocks that are free in the filesystem but were
never discarded. What the VHDX holds beyond those is its block granularity (a
``block_size`` block is stored whole once any byte of it is written) and its own
headers and block table. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

MiB = 1024 * 1024
FREE, DATA, JOURNAL, META = 0, 1, 2, 3
NAMES = {DATA: "file data, directories, inodes in use", JOURNAL: "journal",
         META: "ext4 metadata (superblocks, descriptors, bitmaps, inode tables)",
         FREE: "free in ext4 but not discarded"}


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


def data_extents(path: Path) -> Iterator[tuple[int, int]]:
    """(offset, length) of the file's data (not its holes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                return
            end = os.lseek(fd, start, os.SEEK_HOLE)
            yield start, end - start
            pos = end
    finally:
        os.close(fd)


def ranges(text: str) -> Iterator[tuple[int, int]]:
    """'1-5, 9, 12-13' -> (1, 5), (9, 9), (12, 13)."""
    for part in text.split(","):
        part = part.strip()
        if part:
            a, _, b = part.partition("-")
            yield int(a), int(b or a)


def classify(raw: Path, offset: int, blocks: int) -> tuple[bytearray, int]:
    """A category per filesystem block (bytearray), and the block size."""
    spec = f"{raw}?offset={offset}"
    dump = sh("dumpe2fs", spec)
    block_size = int(re.search(r"^Block size:\s+(\d+)", dump, re.M)[1])  # type: ignore[index]
    cat = bytearray([DATA]) * blocks
    for m in re.finditer(r"(?:superblock at|Group descriptors at|Reserved GDT blocks at|"
                         r"bitmap at|Inode table at) (\d+)(?:-(\d+))?", dump):
        a, b = int(m[1]), int(m[2] or m[1])
        cat[a:b + 1] = bytes([META]) * (b + 1 - a)
    for m in re.finditer(r"^\s+Free blocks: (.+)$", dump, re.M):
        for a, b in ranges(m[1]):
            cat[a:b + 1] = bytes([FREE]) * (b + 1 - a)
    journal = sh("debugfs", "-R", "stat <8>", spec)
    for m in re.finditer(r"\(\d+(?:-\d+)?\):(\d+)(?:-(\d+))?", journal.split("EXTENTS:")[-1]):
        a, b = int(m[1]), int(m[2] or m[1])
        cat[a:b + 1] = bytes([JOURNAL]) * (b + 1 - a)
    return cat, block_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path, help="a GMI archive (.zip) or a .vhdx")
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        work = Path(tmp)
        vhdx = args.image
        if args.image.suffix == ".zip":
            with zipfile.ZipFile(args.image) as zf:
                entry = next(n for n in zf.namelist() if n.endswith(".vhdx"))
                vhdx = Path(zf.extract(entry, work))
        info = json.loads(sh("qemu-img", "info", "--output=json", str(vhdx)))
        raw = work / "disk.raw"
        sh("qemu-img", "convert", "-O", "raw", str(vhdx), str(raw))
        nonzero = list(data_extents(raw))
        parts = json.loads(sh("sfdisk", "--json", str(raw)))["partitiontable"]
        sector = int(parts.get("sectorsize", 512))
        root = max(parts["partitions"], key=lambda p: p["size"])
        r_off, r_len = root["start"] * sector, root["size"] * sector
        cat, bs = classify(raw, r_off, r_len // 4096)
        by_cat = dict.fromkeys((DATA, JOURNAL, META, FREE), 0)
        outside = 0
        # 1 MiB blocks (VHDX's): which categories each one holds
        mib_blocks: dict[int, set[int]] = {}
        for start, length in nonzero:
            for off in range(start, start + length, bs):
                n = min(bs, start + length - off)
                if r_off <= off < r_off + r_len:
                    c = cat[(off - r_off) // bs]
                    by_cat[c] += n
                    mib_blocks.setdefault(off // MiB, set()).add(c)
                else:
                    outside += n
                    mib_blocks.setdefault(off // MiB, set()).add(-1)
        only = {c: sum(1 for s in mib_blocks.values() if s == {c}) for c in (*by_cat, -1)}
        total_nonzero = sum(by_cat.values()) + outside
        size = vhdx.stat().st_size
        # (qemu-img map cannot tell a VHDX's stored blocks; qemu-img convert stores a
        # 1 MiB block exactly when it holds a non-zero byte, so they are counted here)
        payload = len(mib_blocks) * MiB
        print(f"VHDX {size / 1e9:.3f} GB; virtual {info['virtual-size'] / 1e9:.0f} GB")
        print(f"  1 MiB blocks holding data:       {payload / 1e9:.3f} GB ({len(mib_blocks)} blocks)")
        print(f"  VHDX headers, log, block table:  {(size - payload) / 1e9:.3f} GB")
        print(f"  non-zero bytes in the disk:      {total_nonzero / 1e9:.3f} GB")
        print(f"  block granularity (zeros kept):  {(payload - total_nonzero) / 1e9:.3f} GB")
        print("non-zero bytes by what ext4 uses them for "
              "(and 1 MiB blocks holding nothing else):")
        for c, n in by_cat.items():
            print(f"  {NAMES[c]:<66} {n / 1e9:7.3f} GB  {only[c]:6d} blocks")
        print(f"  {'outside the root filesystem (GPT, ESP)':<66} {outside / 1e9:7.3f} GB  "
              f"{only[-1]:6d} blocks")
        mixed = sum(1 for s in mib_blocks.values() if len(s) > 1)
        print(f"  1 MiB blocks holding more than one kind: {mixed}")


if __name__ == "__main__":
    main()
