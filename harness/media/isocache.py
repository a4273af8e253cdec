"""Install ISOs (and netboot files): downloaded once into a cache, verified by SHA-256
(or the SHA-512 a listing gives instead) before every use.

- Which ISO: the newest one the distro's signed checksum listing names, or the point
  release ``--iso-version`` pins (:mod:`harness.media.isolisting`); what was used (URL, file,
  SHA-256, how the listing was checked) goes into the build record.
- Cache: ``~/.cache/gmi-harness/iso`` (on Windows in ``%LOCALAPPDATA%``; setting
  ``iso_cache``). Beside each file, its
  expected digest (``NAME.sha256``), taken at download time from that listing: SHA-256,
  or SHA-512 where the listing gives only that (openSUSE Leap 16); the SHA-256 the
  reports and the Hyper-V backend use is then computed from the verified file.
- Downloads resume with an HTTP Range request from ``NAME.part``, show a progress bar
  on a terminal, and hold a file lock, so parallel xdist workers download once.
- A mismatch is a one-line error and the bad file is never used: a fresh download is
  deleted, a cached copy is moved aside to ``NAME.bad``.
- ``--iso PATH`` uses a local file instead, still verified against the distro's
  checksum, or against ``--iso-sha256 HEX`` (a custom image).
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.distro import Distro
from harness.host import hostos
from harness.host.tools import file_lock, sha256_file
from harness.media import isolisting
from harness.media.isolisting import IsoError, Resolved

if TYPE_CHECKING:
    from harness.build import BuildFacts

CACHE_DIR = hostos.current().user_dirs().iso_cache
CHUNK = 1024 * 1024
TIMEOUT = 60
_HEX = re.compile(r"[0-9a-fA-F]{64}")
# "HEX  name", "HEX *name" (GNU) and "SHA256 (name) = HEX" (BSD, Fedora and Rocky), with
# SHA-256 (64 hex digits) or SHA-512 (128) digests.
_GNU = re.compile(r"^([0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s+\*?(?:\./)?(\S.*?)\s*$")
_BSD = re.compile(r"^SHA(?:256|512)\s*\((?:\./)?(.+?)\)\s*=\s*([0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s*$")
# A digest's algorithm, by its length in hex digits.
ALGORITHMS = {64: "sha256", 128: "sha512"}

Log = Callable[[str], None]


def checksum_entries(text: str) -> dict[str, str]:
    """name -> digest (SHA-256 or SHA-512) of every entry of a checksum file (GNU or BSD
    lines)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if m := _GNU.match(line.strip()):
            entries[m.group(2)] = m.group(1).lower()
        elif m := _BSD.match(line.strip()):
            entries[m.group(1)] = m.group(2).lower()
    return entries


def parse_checksums(text: str, filename: str) -> str:
    """The SHA-256 of ``filename`` (a path relative to the checksum file, or a base
    name) in a checksum file; a file of one entry (openSUSE's NAME.sha256, which
    names the build's own file) gives that entry."""
    entries = checksum_entries(text)
    want = filename.removeprefix("./")
    if want in entries:
        return entries[want]
    by_base = {k.rsplit("/", 1)[-1]: v for k, v in entries.items()}
    if "/" not in want and want in by_base:
        return by_base[want]
    if len(entries) == 1:
        return next(iter(entries.values()))
    raise IsoError(f"{filename} is not listed in the checksum file ({len(entries)} entries): "
                   "a newer release replaced it; update the distro YAML's url")


def cache_dir(settings: Any = None) -> Path:
    raw = getattr(settings, "iso_cache", "") if settings is not None else ""
    return Path(raw or CACHE_DIR).expanduser()


def fetch_bytes(url: str, hint: str = "or pass --iso PATH with --iso-sha256 HEX") -> bytes:
    """A small file (a checksum file, a package index) whole; a one-line error that
    ends with ``hint`` when it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return bytes(r.read())
    except (urllib.error.URLError, OSError) as exc:
        raise IsoError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}; check the network, "
                       f"{hint}") from None


def fetch_text(url: str) -> str:
    return fetch_bytes(url).decode("utf-8", "replace")


class Progress:
    """One live line on a terminal; a line per 10 % otherwise."""

    def __init__(self, name: str, total: int | None, log: Log, stream: Any = None) -> None:
        self.name, self.total, self.log = name, total, log
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start, self.last_decile, self.last_draw = time.monotonic(), -1, 0.0

    def update(self, done: int, resumed_from: int = 0) -> None:
        rate = (done - resumed_from) / max(time.monotonic() - self.start, 1e-3) / 2**20
        if self.total:
            pct = done * 100 // self.total
            bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
            text = (f"{self.name} [{bar}] {pct:3d}% {done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB "
                    f"{rate:.1f} MiB/s")
        else:
            pct, text = -1, f"{self.name} {done / 2**20:,.0f} MiB {rate:.1f} MiB/s"
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw > 0.2 or (self.total and done >= self.total):
                self.stream.write("\r" + text)
                self.stream.flush()
                self.last_draw = now
        elif pct // 10 > self.last_decile:
            self.last_decile = pct // 10
            self.log(text)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def download(url: str, dest: Path, log: Log) -> None:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with a Range request."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is whole
            os.replace(part, dest)
            return
        raise IsoError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise IsoError(f"cannot download {url}: {getattr(exc, 'reason', exc)}; the partial file "
                       "is kept and the next run resumes it") from None
    with resp:
        resumed = resp.status == 206
        if not resumed:
            have = 0  # the server sent the whole file
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else None
        progress = Progress(dest.name, total, log)
        if resumed:
            log(f"{dest.name}: resuming at {have / 2**20:,.0f} MiB")
        try:
            with part.open("ab" if resumed else "wb") as f:
                done = have
                while block := resp.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    progress.update(done, have)
        except (OSError, urllib.error.URLError) as exc:
            raise IsoError(f"download of {url} broke off ({exc}); the next run resumes it") from None
        finally:
            progress.finish()
    if total is not None and part.stat().st_size != total:
        raise IsoError(f"download of {url} ended early ({part.stat().st_size} of {total} bytes); "
                       "the next run resumes it")
    os.replace(part, dest)


def digest_file(path: Path, algorithm: str) -> str:
    if algorithm == "sha256":
        return sha256_file(path)
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        while block := f.read(CHUNK * 4):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise when ``path``'s SHA-256 (or SHA-512, for a 128-digit ``expected``) is not
    ``expected``."""
    algorithm = ALGORITHMS.get(len(expected), "sha256")
    got = digest_file(path, algorithm)
    if got != expected.lower():
        raise IsoError(f"{path.name}: {algorithm.upper().replace('SHA', 'SHA-')} {got[:16]}... "
                       f"but expected {expected[:16]}...")


def as_sha256(path: Path, digest: str, facts: dict[str, str] | None = None) -> str:
    """The SHA-256 of a file just verified by ``digest``: the digest itself, or, for a
    SHA-512 one, computed from the file (recorded in ``facts`` as ``sha512``)."""
    if len(digest) != 128:
        return digest
    if facts is not None:
        facts["sha512"] = digest
    return sha256_file(path)


def cached(url: str, expected: str | Callable[[], str], directory: Path, log: Log,
           filename: str = "", recheck: bool = False) -> tuple[Path, str]:
    """``url``'s file from the cache (downloaded once, under a lock), verified by
    SHA-256 now. ``expected`` is the hash, or a function that finds it (called only
    when nothing is cached yet, unless ``recheck``: then on every use, so that a file
    that moves on upstream under the same name (Rocky's -latest, Tumbleweed's Current)
    is downloaded anew; offline, the cached copy is used)."""
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    dest, recorded = directory / name, directory / f"{name}.sha256"
    with file_lock(directory / f"{name}.lock"):
        if recheck and callable(expected) and dest.exists() and recorded.exists():
            try:
                upstream = expected().lower()
            except IsoError as exc:
                log(f"cannot check {name} upstream ({exc}); using the cached copy")
            else:
                if upstream != recorded.read_text().strip():
                    log(f"{name} has changed upstream: downloading the new one")
                    dest.unlink()
                    recorded.unlink()
        if dest.exists() and recorded.exists():
            sha = recorded.read_text().strip()
            try:
                verify(dest, sha)
            except IsoError as exc:
                bad = dest.with_name(dest.name + ".bad")
                os.replace(dest, bad)
                raise IsoError(f"cached {exc}: moved aside to {bad.name}; run again to download "
                               "it anew") from None
            return dest, sha
        sha = expected() if callable(expected) else expected.lower()
        if dest.exists():  # put there by hand, without a recorded hash: verify it first
            try:
                verify(dest, sha)
            except IsoError:
                os.replace(dest, dest.with_name(dest.name + ".bad"))
            else:
                recorded.write_text(sha + "\n")
                return dest, sha
        log(f"downloading {url} into {directory}")
        download(url, dest, log)
        try:
            verify(dest, sha)
        except IsoError as exc:
            dest.unlink(missing_ok=True)
            raise IsoError(f"downloaded {exc}: deleted; check the mirror and the checksum file, "
                           "then run again") from None
        recorded.write_text(sha + "\n")
        return dest, sha


def expected_sha256(url: str, pinned: str, checksum_url: str, directory: Path) -> str:
    """The pinned SHA-256, else the one the checksum file lists for ``url``'s file
    (the file's path relative to the checksum file's folder, or its name)."""
    if pinned:
        return pinned.lower()
    text = fetch_text(checksum_url)
    base = checksum_url.rsplit("/", 1)[0] + "/"
    relative = url[len(base):] if url.startswith(base) else url.rsplit("/", 1)[-1]
    return parse_checksums(text, relative)


def listed(d: Distro, settings: Any = None, log: Log = print) -> Resolved:
    """The ISO distro ``d``'s signed checksum listing names (the newest, or the
    ``iso_version`` setting's), found in its release folder or archive."""
    assert d.iso is not None
    return isolisting.resolve(
        d.name, d.iso, version=str(getattr(settings, "iso_version", "") or ""),
        verify=getattr(settings, "iso_signatures", "verify") != "off",
        keys_dir=cache_dir(settings) / "keys", fetch=fetch_bytes, entries_of=checksum_entries, log=log)


def cached_fallback(d: Distro, directory: Path, version: str) -> Path | None:
    """The newest ISO of ``d`` already in the cache with its recorded hash (for a run
    that cannot reach upstream)."""
    assert d.iso is not None
    found = isolisting.matching({p.name: "" for p in directory.glob("*.iso")
                                 if p.with_name(p.name + ".sha256").is_file()}, d.iso, version)
    if not found:
        return None
    return directory / found[max(found, key=isolisting.version_key)][0]


def resolve(d: Distro, settings: Any = None, *, iso: Path | None = None, iso_sha256: str = "",
            log: Log = print, record: BuildFacts | None = None) -> tuple[Path, str]:
    """The verified install ISO of distro ``d``: ``iso`` (or the ``iso`` setting) when
    given, else the cached official download of the ISO its signed checksum listing
    names. Returns (path, sha256); what was used goes into ``record["install_iso"]``."""
    if d.iso is None:
        raise IsoError(f"{d.name} has no iso: section in its YAML: it cannot install from an ISO")
    iso = iso or (Path(settings.iso).expanduser() if getattr(settings, "iso", "") else None)
    iso_sha256 = (iso_sha256 or getattr(settings, "iso_sha256", "") or "").lower()
    directory = cache_dir(settings)
    facts: dict[str, str]
    if iso is not None:
        sha, facts = _local_iso(d, settings, iso, iso_sha256, log)
        if record is not None:
            record["install_iso"] = facts
        return iso, sha
    try:
        found = listed(d, settings, log)
    except isolisting.ListingError as exc:
        fallback = cached_fallback(d, directory, str(getattr(settings, "iso_version", "") or ""))
        if not exc.unreachable or fallback is None:
            raise
        log(f"cannot reach upstream ({exc}); using the cached {fallback.name}")
        path, sha = cached(fallback.name, "", directory, log)
        facts = {"file": path.name, "source": "the cache (upstream unreachable)"}
        sha = facts["sha256"] = as_sha256(path, sha, facts)
    else:
        wanted = iso_sha256 or found.digest
        # (a name the listing now gives another hash, a respin: downloaded anew)
        path, sha = cached(found.url, lambda: wanted, directory, log, recheck=True)
        facts = found.record()
        sha = facts["sha256"] = as_sha256(path, sha, facts)
        if iso_sha256:
            facts["source"] = "--iso-sha256"
    if record is not None:
        record["install_iso"] = facts
    return path, sha


def _local_iso(d: Distro, settings: Any, iso: Path, iso_sha256: str,
               log: Log) -> tuple[str, dict[str, str]]:
    """``--iso``: verified against ``iso_sha256``, else against the distro's listing;
    its SHA-256 and what the record says of it."""
    if not iso.is_file():
        raise IsoError(f"--iso {iso}: no such file")
    found = None if iso_sha256 else listed(d, settings, log)
    sha = iso_sha256 or (found.digest if found else "")
    try:
        verify(iso, sha)
    except IsoError as exc:
        raise IsoError(f"--iso {exc} (the listing's {found.filename if found else ''}): not used; "
                       "pass --iso-version for another point release, or --iso-sha256 HEX for "
                       "a custom image") from None
    facts = {"file": iso.name, "path": str(iso), "source": "--iso with --iso-sha256"}
    sha = facts["sha256"] = as_sha256(iso, sha, facts)
    if found:
        facts |= {"source": f"--iso, as listed for {found.url}", "version": found.version,
                  "listing": found.listing, "signature": found.signature}
    return sha, facts


def netboot_files(d: Distro, settings: Any = None, log: Log = print) -> tuple[Path, Path, str]:
    """The installer's netboot kernel and initrd, cached and verified (their hashes
    from the netboot checksum file), and where they came from. When the images folder
    cannot be had, the same files from the archive's netboot package (``package``)."""
    if d.netboot is None:
        raise IsoError(f"{d.name} has no netboot: section in its YAML")
    nb = d.netboot
    directory = cache_dir(settings) / f"{d.name}-netboot"
    out = []
    try:
        for url in (nb.kernel_url, nb.initrd_url):
            path, _ = cached(url, lambda u=url: expected_sha256(u, "", nb.checksum_url, directory),  # type: ignore[misc]
                             directory, log)
            out.append(path)
    except IsoError as exc:
        if not nb.package:
            raise
        log(f"{exc}; taking the installer from the {nb.package} package instead")
        return netboot_from_package(nb, directory, log)
    return out[0], out[1], nb.kernel_url.rsplit("/images/", 1)[0]


def package_stanza(index: str, package: str) -> dict[str, str]:
    """The newest stanza of ``package`` in a Debian Packages index."""
    found: list[dict[str, str]] = []
    for block in index.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(" "))
        if fields.get("Package") == package:
            found.append(fields)
    if not found:
        raise IsoError(f"{package} is not in the archive's package index: check the mirror, or "
                       "the YAML's netboot.package")
    if len(found) > 1:  # dpkg's ordering for the versions a mirror may list side by side
        found.sort(key=functools.cmp_to_key(
            lambda a, b: -1 if subprocess.run(["dpkg", "--compare-versions", a["Version"], "lt",
                                                b["Version"]]).returncode == 0 else 1))
    return found[-1]


def netboot_from_package(nb: Any, directory: Path, log: Log) -> tuple[Path, Path, str]:
    """The kernel and initrd out of the archive's netboot package: its .deb verified by
    the SHA-256 the package index lists, the two files extracted into the cache (with
    their hashes recorded, so later runs verify them like any cached download)."""
    raw = fetch_bytes(nb.packages_url, hint="or --mirror")
    index = (lzma.decompress(raw) if nb.packages_url.endswith(".xz") else raw).decode("utf-8", "replace")
    stanza = package_stanza(index, nb.package)
    base = nb.packages_url.split("/dists/", 1)[0] + "/"
    deb, _ = cached(base + stanza["Filename"], stanza["SHA256"], directory, log)
    wanted = {f"{nb.package_dir.strip('/')}/{url.rsplit('/', 1)[-1]}": directory / url.rsplit("/", 1)[-1]
              for url in (nb.kernel_url, nb.initrd_url)}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                dest = wanted.get(member.name.removeprefix("./"))
                source = tar.extractfile(member) if dest is not None else None
                if dest is None or source is None:
                    continue
                part = dest.with_name(dest.name + ".part")
                with part.open("wb") as f:
                    shutil.copyfileobj(source, f)
                os.replace(part, dest)
                dest.with_name(dest.name + ".sha256").write_text(sha256_file(dest) + "\n")
    missing = [str(p.name) for p in wanted.values() if not p.with_name(p.name + ".sha256").exists()]
    if proc.returncode != 0 or missing:
        raise IsoError(f"{deb.name}: cannot extract {', '.join(missing) or 'it'} (dpkg-deb exit "
                       f"{proc.returncode}); the YAML's netboot.package_dir may be out of date")
    deb.unlink()  # the two files are what is kept
    kernel, initrd = wanted.values()
    return kernel, initrd, f"{nb.package} {stanza['Version']} ({base})"


def is_sha256(text: str) -> bool:
    return bool(_HEX.fullmatch(text))
