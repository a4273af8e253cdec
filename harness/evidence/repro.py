"""Are two builds the same? Two GMI archives (or VHDX files) compared file by file
inside their root filesystems, read offline: the VHDX as raw with ``qemu-img convert``,
the root partition found in its GPT (``sfdisk --json``), its ext4 tree copied out with
``debugfs rdump`` (e2fsprogs; no mount, no loop device, no root filesystem driver).

Every difference is listed with its kind (only in one, type, owner or mode, content,
mtime only) and its cause, from :data:`CAUSES` (the documented ones, docs/evidence.md);
one without a documented cause is "unexplained" and makes the command exit 1::

    python -m harness.evidence.repro A/GMI-Debian-12.zip B/GMI-Debian-12.zip [--json OUT]

Not compared: inode numbers, ctimes and birth times (never the same twice), extended
attributes (``debugfs rdump`` does not copy them), the ESP (vfat).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import GmiError, MissingToolError

LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # GPT type of a Linux filesystem
# The documented causes: (glob of the path, kinds it explains, cause). First match wins.
CAUSES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("etc/fstab", ("content",), "the root filesystem's UUID, new for every build (mkfs.ext4)"),
    ("boot/grub/grub.cfg", ("content",), "the root filesystem's UUID (search --fs-uuid, root=UUID=)"),
    ("boot/initrd.img-*", ("content",),
     "the initramfs, made during the build (update-initramfs): its cpio archive holds the time each file "
     "was copied in (update-initramfs in Debian 12 does not clamp them to SOURCE_DATE_EPOCH)"),
    ("var/cache/ldconfig/aux-cache", ("content",),
     "ldconfig's auxiliary cache: the inode numbers and ctimes of the libraries it read"),
    ("etc/shadow", ("content",),
     "the day each account was made or last changed (field 3, days since 1970): shadow's tools "
     "write SOURCE_DATE_EPOCH's day when it is set, else the build's; a Step 1 tree kept by "
     "--incremental has the day of the build that made it"),
    ("var/lib/systemd/timesync/clock", ("mtime",),
     "systemd-timesyncd touches it when it stops, at the seal's power-off"),
    ("var/lib/systemd/timers/*", ("mtime",), "systemd's timer stamps, touched when a timer ran"),
    ("var/log/journal", ("mtime",), "journald removes the build's journal files at the seal"),
    ("dev/*", ("mtime",), "under /dev: hidden at the seal by the running system's devtmpfs, out of "
                          "the clamp's reach; the time Step 1's tree was made (debootstrap, or the "
                          "kept tree's build)"),
    ("run/*", ("mtime",), "under /run: hidden at the seal by the running system's tmpfs, out of the "
                          "clamp's reach; the time Step 1's tree was made"),
)
# Only for builds made without SOURCE_DATE_EPOCH (their build records say so)
UNCLAMPED = ("*", ("mtime",), "written during the build, at the build's own time: built without "
                              "SOURCE_DATE_EPOCH (with it, the seal clamps every mtime to it)")
UNEXPLAINED = "unexplained"


class ReproError(GmiError):
    """An archive or disk cannot be read for the comparison."""


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link, other
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    digest: str  # a file's SHA-256, a link's target


@dataclass(frozen=True)
class Difference:
    path: str
    kind: str  # only-in-a, only-in-b, type, owner-or-mode, content, mtime
    cause: str
    a: str = ""
    b: str = ""


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise MissingToolError(name, package)
    return found


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise ReproError(f"{Path(cmd[0]).name} failed: {last}")
    return proc


def source_date_epoch(source: Path) -> int | None:
    """The SOURCE_DATE_EPOCH an archive was built with (its build record), or None."""
    if source.suffix.lower() == ".vhdx":
        return None
    from harness.archive import reader
    from harness.safeyaml import load

    with reader.open_archive(source) as zf:
        if "gmi-build-record.yml" not in zf.namelist():
            return None
        record = load(reader.read_text(zf, "gmi-build-record.yml", reader.Limits().max_text_size))
    epoch = record.get("source_date_epoch") if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) else None


def vhdx_of(source: Path, scratch: Path) -> Path:
    """The disk of ``source``: a VHDX as it is, or the one inside a GMI archive
    (extracted with the archive reader's checks: safe entries, its manifest's SHA-256)."""
    if source.suffix.lower() == ".vhdx":
        return source
    from harness.archive import reader

    names = reader.parse_name(source)
    with reader.open_archive(source) as zf:
        manifest = reader.read_manifest(zf, names)
        return reader.extract_vhdx(zf, names, scratch, manifest)


def root_partition(raw: Path) -> int:
    """The byte offset of the (largest) Linux filesystem partition in a GPT disk."""
    table = json.loads(_run([_tool("sfdisk", "fdisk"), "--json", str(raw)]).stdout)["partitiontable"]
    size = int(table.get("sectorsize", 512))
    parts = [p for p in table.get("partitions", []) if str(p.get("type", "")).upper() == LINUX_FS]
    if not parts:
        raise ReproError(f"{raw}: no Linux filesystem partition in its partition table")
    return int(max(parts, key=lambda p: int(p["size"]))["start"]) * size


def unpack(source: Path, into: Path) -> Path:
    """The root filesystem of ``source`` copied out into ``into``/root (offline)."""
    into.mkdir(parents=True, exist_ok=True)
    vhdx = vhdx_of(source, into)
    raw = into / "disk.raw"
    _run([_tool("qemu-img", "qemu-utils"), "convert", "-f", "vhdx", "-O", "raw", str(vhdx), str(raw)])
    if vhdx.parent == into:
        vhdx.unlink()
    offset = root_partition(raw)
    root = into / "root"
    root.mkdir()
    device = f"{raw}?offset={offset}"
    _run([_tool("debugfs", "e2fsprogs"), "-R", f"rdump / {root}", device])
    _link_times(root, device, into / "link-stats")
    raw.unlink()
    return root


def _link_times(root: Path, device: str, commands: Path) -> None:
    """``rdump`` makes symbolic links with the time it made them: their mtimes are read
    from the filesystem (one debugfs session) and set on the copies."""
    links = [Path(folder, n) for folder, dirs, files in os.walk(root) for n in [*dirs, *files]
             if Path(folder, n).is_symlink()]
    if not links:
        return
    rels = ["/" + p.relative_to(root).as_posix() for p in links]
    commands.write_text("".join(f'stat "{r}"\n' for r in rels if '"' not in r))
    out = _run([_tool("debugfs", "e2fsprogs"), "-f", str(commands), device]).stdout
    times: dict[str, int] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith('debugfs: stat "'):
            current = line[len('debugfs: stat "'):-1]
        elif line.strip().startswith("mtime: 0x") and current:
            times[current] = int(line.split("0x", 1)[1].split(":", 1)[0], 16)
            current = ""
    for path, rel in zip(links, rels, strict=True):
        if rel in times:
            os.utime(path, (times[rel], times[rel]), follow_symlinks=False)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def walk(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (relative) with what is compared of it."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                kind, digest = "link", os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                kind, digest = "dir", ""
            elif stat.S_ISREG(st.st_mode):
                kind, digest = "file", _sha256(path)
            else:
                kind, digest = "other", ""
            found[rel] = Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                               st.st_size if kind == "file" else 0, int(st.st_mtime), digest)
    found.pop("lost+found", None)
    return found


def cause_of(path: str, kind: str, clamped: bool = True) -> str:
    for pattern, kinds, cause in (CAUSES if clamped else (*CAUSES, UNCLAMPED)):
        if kind in kinds and fnmatch.fnmatchcase(path, pattern):
            return cause
    return UNEXPLAINED


def compare(a: dict[str, Entry], b: dict[str, Entry], clamped: bool = True) -> Iterator[Difference]:
    """The differences of two trees; ``clamped``: both builds had SOURCE_DATE_EPOCH."""
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x is None or y is None:
            kind = "only-in-b" if x is None else "only-in-a"
            yield Difference(path, kind, cause_of(path, kind))
            continue
        if x.kind != y.kind:
            yield Difference(path, "type", cause_of(path, "type"), x.kind, y.kind)
        elif (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid):
            yield Difference(path, "owner-or-mode", cause_of(path, "owner-or-mode"),
                             f"{x.mode:o} {x.uid}:{x.gid}", f"{y.mode:o} {y.uid}:{y.gid}")
        elif (x.digest, x.size) != (y.digest, y.size):
            yield Difference(path, "content", cause_of(path, "content"),
                             x.digest if x.kind == "link" else f"{x.size} bytes",
                             y.digest if y.kind == "link" else f"{y.size} bytes")
        elif x.mtime != y.mtime and x.kind != "dir":
            yield Difference(path, "mtime", cause_of(path, "mtime", clamped), str(x.mtime), str(y.mtime))


def report(diffs: list[Difference], counts: tuple[int, int]) -> dict[str, object]:
    by_kind: dict[str, int] = {}
    by_cause: dict[str, list[str]] = {}
    for d in diffs:
        by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
        by_cause.setdefault(d.cause, []).append(f"{d.kind}: {d.path}")
    return {"files": {"a": counts[0], "b": counts[1]}, "differences": len(diffs), "by_kind": by_kind,
            "unexplained": [asdict(d) for d in diffs if d.cause == UNEXPLAINED],
            "by_cause": {c: {"count": len(p), "examples": p[:10]} for c, p in by_cause.items()},
            "all": [asdict(d) for d in diffs]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.evidence.repro",
        description="Compare the root filesystems of two GMI archives (or VHDX files) file by file, "
                    "offline, and list every difference with its cause.")
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the two trees are copied out (about twice the used space)")
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    parser.add_argument("--keep", action="store_true", help="keep the copied-out trees")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="gmi-repro-", dir=args.scratch))
    try:
        epochs = [source_date_epoch(args.a), source_date_epoch(args.b)]
        trees = [walk(unpack(src, scratch / name)) for name, src in (("a", args.a), ("b", args.b))]
        diffs = list(compare(trees[0], trees[1], clamped=None not in epochs and epochs[0] == epochs[1]))
    except GmiError as exc:
        print(f"repro: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    doc = report(diffs, (len(trees[0]), len(trees[1])))
    doc["source_date_epoch"] = {"a": epochs[0], "b": epochs[1]}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(trees[0])} paths in a, {len(trees[1])} in b; {len(diffs)} differ: "
          + ", ".join(f"{n} {k}" for k, n in sorted(doc["by_kind"].items())))  # type: ignore[attr-defined]
    for cause, info in doc["by_cause"].items():  # type: ignore[attr-defined]
        print(f"- {info['count']} x {cause}")
        for example in info["examples"][: 3 if cause != UNEXPLAINED else 50]:
            print(f"    {example}")
    return 1 if doc["unexplained"] else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
