"""Secrets never leave the credentials file: prove it on a finished run.

``scan OUT`` searches every file under a run's ``--out`` folder (build.log, serial
consoles, report.html, junit.xml, Allure results, the sign-off page, settings, the
index) and every member of every archive there, the VHDX included: its payload is the
build disk's allocated blocks, so a password that ever touched the disk and was not
trimmed away shows up. It looks for the build passwords of the runs in ``OUT/runs/``
(read from their credentials files), plain, base64 (at every alignment) and
URL-quoted, and for any private key (PEM or OpenSSH). A hit names the secret's kind,
the file and the offset, never the secret.

``watch REPORT`` samples every process's command line (``/proc/*/cmdline``) while a
build runs, and checks each against the passwords of credentials files written since
it started; it keeps no command line, only hits (pid and program). Stop it with
SIGINT or SIGTERM; ``scan OUT --watch REPORT`` then fails on any hit it recorded.

    python -m harness.report.leaks watch OUT/cmdline-watch.txt &     # around the build
    python -m harness.report.leaks scan OUT --watch OUT/cmdline-watch.txt
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import sys
import time
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.host import hostos

CHUNK = 8 << 20
CREDENTIAL_LINE = re.compile(r"^  ([a-z_][a-z0-9_-]*): +(.+)$")  # build.Credentials.record
# A private key: a PEM header (BEGIN, the kind: RSA, OPENSSH, EC or none, then KEY_TAIL,
# between runs of five dashes) followed by a key's base64 body. The header alone is no key: every system
# carries it as a constant in ssh, libssl and Python (70 such places in a debian-12
# image, measured). In reports and logs any key is a leak; in a disk image only the
# build's own keys are (the build key, the build-time host keys: their public halves are
# in the archive's build record), because shipped software holds keys of its own
# (libgnutls's self-test keys, say), which are counted, not failed.
# Written in two parts so that this source is not itself taken for a key by secret
# scanners (this one included, and the repository's).
KEY_TAIL = b"PRIVATE" + b" KEY-----"
KEY_MARKS = {KEY_TAIL: "a private key (PEM)"}
KEY_BODY = re.compile(KEY_TAIL + rb"\r?\n(?:[A-Za-z0-9+/=]{40,}\r?\n){2}")
KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)" + KEY_TAIL + rb"\r?\n[A-Za-z0-9+/=\r\n]+?"
                       rb"-----END \1" + KEY_TAIL)
LOOK_AHEAD = 16 << 10  # bytes after a key header that hold its body (RSA 4096 is ~3.3 KiB)
LOOK_BEHIND = 64  # bytes before it that hold "-----BEGIN ... "


@dataclass(frozen=True)
class Hit:
    what: str  # "root password (base64)", "a private key (PEM)"
    where: str  # the file, or "archive!member"
    offset: int

    def line(self) -> str:
        return f"{self.what} in {self.where} at byte {self.offset}"


def forms(secret: str) -> dict[bytes, str]:
    """The byte strings a secret shows up as: plain, URL-quoted, and base64 at each of
    the three alignments it can have inside a longer encoded text (the characters
    that depend on its neighbours left out)."""
    raw = secret.encode()
    found = {raw: "plain"}
    for quoted in (urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
        found.setdefault(quoted.encode(), "URL-quoted")
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        start = (shift * 4 + 2) // 3  # characters that also carry the prefix's bits
        end = ((shift + len(raw)) // 3) * 4  # the last full group that is only ours
        if end - start >= 8:
            found.setdefault(encoded[start:end], "base64")
    return found


def read_credentials(path: Path) -> dict[str, str]:
    """'<account> password of <file>' -> password, from one credentials file."""
    return {f"{m.group(1)} password of {path.name}": m.group(2)
            for line in path.read_text(errors="replace").splitlines()
            if (m := CREDENTIAL_LINE.match(line))}


def credentials(directory: Path, run_ids: Iterable[str]) -> dict[str, str]:
    """The passwords of the credentials files of ``run_ids`` (``...-<run id>.txt``)."""
    ids = tuple(f"-{r}" for r in run_ids)
    directory = directory.expanduser()
    files = sorted(directory.glob("*.txt")) if directory.is_dir() and ids else []
    return {k: v for path in files if path.stem.endswith(ids) for k, v in read_credentials(path).items()}


def needles(secrets: dict[str, str]) -> dict[bytes, str]:
    out = {b: f"{name} ({kind})" for name, pw in secrets.items() for b, kind in forms(pw).items()}
    return {**out, **KEY_MARKS}


def public_half(block: bytes) -> str:
    """'type base64' of a PEM or OpenSSH private key block; '' when it cannot be read
    (encrypted, or not a key at all)."""
    from cryptography.hazmat.primitives import serialization

    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (DSA keys are deprecated: still keys)
                key = load(block, password=None)
                public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                       serialization.PublicFormat.OpenSSH)
        except Exception:  # whatever a key cannot be read for (GOST, DH, encrypted, ...)
            continue
        return " ".join(public.decode().split()[:2])
    return ""


@dataclass
class Disk:
    """How keys found in a disk image are judged: a hit only when theirs is one of
    ``build_keys`` (public halves); the others are counted."""

    build_keys: set[str]
    other_keys: int = 0


def scan_stream(stream: IO[bytes], where: str, marks: dict[bytes, str],
                disk: Disk | None = None) -> Iterator[Hit]:
    """Every mark in ``stream`` (read in chunks that overlap by the longest mark and
    the key look-ahead); with ``disk``, keys are judged as :class:`Disk` says."""
    keep = LOOK_BEHIND  # a key's "-----BEGIN" before its mark (the look-ahead covers the rest)
    ahead = LOOK_AHEAD + max(map(len, marks))
    tail, base = b"", 0
    block = stream.read(CHUNK)
    while block:
        following = stream.read(CHUNK)
        while len(following) < ahead and (more := stream.read(CHUNK)):
            following += more
        data = tail + block + following[:ahead]
        end = len(tail) + len(block)  # matches starting beyond are the next round's
        for mark, what in marks.items():
            at = data.find(mark, len(tail))  # (those starting before: the last round's)
            while at != -1 and at < end:
                if mark not in KEY_MARKS:
                    yield Hit(what, where, base - len(tail) + at)
                elif KEY_BODY.match(data, at) and _judge_key(data, at, disk):
                    yield Hit(what if disk is None else f"{what} of this build", where,
                              base - len(tail) + at)
                at = data.find(mark, at + 1)
        tail = (tail + block)[-keep:]
        base += len(block)
        block = following


def _judge_key(data: bytes, at: int, disk: Disk | None) -> bool:
    if disk is None:
        return True
    block = KEY_BLOCK.search(data, max(0, at - LOOK_BEHIND), at + LOOK_AHEAD)
    public = public_half(block.group(0)) if block else ""
    if public and public in disk.build_keys:
        return True
    disk.other_keys += 1
    return False


def build_keys(zf: zipfile.ZipFile) -> set[str]:
    """The public halves of the build's keys, from an archive's build record (none when
    it has no readable one)."""
    from harness.archive import reader
    from harness.archive.errors import ArchiveError

    try:
        record = reader.build_record(zf) or {}
    except ArchiveError:
        return set()
    keys = [*(record.get("build_host_keys") or []), record.get("build_public_key") or ""]
    return {" ".join(str(k).split()[:2]) for k in keys if k}


def scan_tree(out: Path, marks: dict[bytes, str]) -> tuple[list[Hit], int]:
    """Every file under ``out``, and every member of each zip there (a disk image's
    keys judged by the archive's build record). Returns the hits and how many private
    keys of other software the disk images hold."""
    hits: list[Hit] = []
    others = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = str(path.relative_to(out))
        with path.open("rb") as f:  # (a zip's own bytes: compressed, its text entries stored)
            hits += scan_stream(f, rel, marks, Disk(set()) if zipfile.is_zipfile(path) else None)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                keys = build_keys(zf)
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    disk = Disk(keys) if info.filename.lower().endswith(".vhdx") else None
                    with zf.open(info) as member:
                        hits += scan_stream(member, f"{rel}!{info.filename}", marks, disk)
                    others += disk.other_keys if disk else 0
    return hits, others


# --- process command lines, while a build runs --------------------------------------

def cmdlines(proc: Path = Path("/proc")) -> Iterator[tuple[int, bytes]]:
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:
                continue


def watch(report: Path, credentials_dir: Path, every: float = 0.2,
          proc: Path = Path("/proc")) -> int:
    """Sample command lines until SIGINT/SIGTERM; write what was checked and any hits."""
    stop = False

    def finish(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    started = time.time()
    marks: dict[bytes, str] = {}
    seen_files: set[Path] = set()
    hits: dict[tuple[int, str], str] = {}
    samples = 0
    pids: set[int] = set()
    while not stop:
        directory = credentials_dir.expanduser()
        for path in directory.glob("*.txt") if directory.is_dir() else []:
            if path not in seen_files and path.stat().st_mtime >= started - 1:
                seen_files.add(path)
                marks.update({b: w for b, w in needles(read_credentials(path)).items()
                              if b not in KEY_MARKS})
        for pid, line in cmdlines(proc):
            pids.add(pid)
            for mark, what in marks.items():
                if mark in line:
                    program = os.path.basename(line.split(b"\0", 1)[0].decode(errors="replace"))
                    hits[(pid, what)] = program
        samples += 1
        _write_report(report, samples, len(pids), len(seen_files), hits)  # (as it goes)
        time.sleep(every)
    return 0


def _write_report(report: Path, samples: int, processes: int, files: int,
                  hits: dict[tuple[int, str], str]) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    part = report.with_name(report.name + ".part")
    part.write_text(json.dumps({
        "samples": samples, "processes": processes, "credentials_files": files,
        "hits": [{"pid": pid, "program": prog, "what": what} for (pid, what), prog in hits.items()],
    }, indent=1) + "\n")
    os.replace(part, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.leaks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="search a finished run's --out folder")
    s.add_argument("out", type=Path)
    s.add_argument("--watch", type=Path, help="a report of 'watch' to check as well")
    w = sub.add_parser("watch", help="sample /proc/*/cmdline until SIGINT/SIGTERM")
    w.add_argument("report", type=Path)
    for p in (s, w):
        p.add_argument("--credentials-dir", type=Path,
                       default=Path(os.environ.get("GMI_CREDENTIALS_DIR",
                                                   hostos.current().user_dirs().credentials)))
    args = parser.parse_args(argv)
    if args.command == "watch":
        return watch(args.report, args.credentials_dir)
    runs = sorted(p.name for p in (args.out / "runs").glob("*") if p.is_dir() and not p.is_symlink())
    secrets = credentials(args.credentials_dir, runs)
    if not secrets:
        print(f"leaks: no credentials file in {args.credentials_dir} for the runs in {args.out / 'runs'} "
              f"({', '.join(runs) or 'none'}): nothing to search for", file=sys.stderr)
        return 2
    hits, others = scan_tree(args.out, needles(secrets))
    lines = [f"leak: {h.line()}" for h in hits]
    if args.watch is not None:
        data = json.loads(args.watch.read_text())
        lines += [f"leak: {h['what']} on the command line of pid {h['pid']} ({h['program']})"
                  for h in data["hits"]]
        if not data["credentials_files"]:
            lines.append(f"leak: the command-line watch saw no credentials file appear "
                         f"({args.watch}): it checked nothing")
    for line in lines:
        print(line)
    files = sum(1 for p in args.out.rglob("*") if p.is_file())
    print(f"leaks: {len(secrets)} passwords of {len(runs)} run(s) (plain, base64, URL-quoted) and "
          f"private keys searched in {files} files (and their zip members) under {args.out}"
          + (", and the command lines sampled during the build" if args.watch else "")
          + f": {len(lines)} hits"
          + (f" ({others} private keys of shipped software in the disk images: not the build's)"
             if others else ""))
    return 1 if lines else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
