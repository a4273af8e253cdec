"""Which install ISO to use, read from upstream at use time instead of pinned in a YAML.

A distro's ``iso:`` names the release folder, the checksum listing in it (Debian and
Ubuntu ``SHA256SUMS``, Fedora's and Rocky's ``CHECKSUM``, openSUSE's ``NAME.sha256``),
and a file-name pattern in which ``{version}`` stands for the point release. The
listing is fetched, its OpenPGP signature checked (:mod:`harness.media.signatures`), and the
newest file it lists that matches the pattern is taken, with its SHA-256 from that same
listing. ``--iso-version`` pins one point release instead.

When the folder is gone or no longer lists a match (a release past its end of life,
or a point release that has moved on), the archive locations are tried: ``archive``
(where the whole release lives after its end of life) and, for a pinned version,
``point_archive`` (where one superseded point release lives).

A listing whose own name carries the version (Fedora's
``Fedora-Server-44-1.7-x86_64-CHECKSUM``: the release's compose) is named with
``{version}`` too and found in the folder's index (the page a mirror serves for the
folder): the newest name there, or ``--iso-version``'s; the listing it names is then
read and its signature checked as any other. The index only chooses which signed
listing to read; nothing is taken from it unsigned.

The digest a listing gives is SHA-256 (64 hex digits) or SHA-512 (128: openSUSE Leap
16's ``NAME.sha512``); the download is verified by the one listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import GmiError
from harness.media import signatures

Fetch = Callable[[str], bytes]
Log = Callable[[str], None]
VERSION = r"\d+(?:[.-]\d+)*"  # 13.4.0, 24.04.5, 42-1.1, 10.1, 710.3, 20250520


class IsoError(GmiError):
    """An install image could not be fetched or did not verify."""


class ListingError(GmiError):
    """No checksum listing names an ISO for this distro (or none could be fetched)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable  # no listing could be fetched at all (offline?)


@dataclass(frozen=True)
class Resolved:
    """The ISO a build uses, and how it was found."""

    url: str
    filename: str
    digest: str  # SHA-256, or SHA-512 where the listing gives that (128 hex digits)
    version: str
    listing: str  # the checksum listing's URL
    signature: str  # how the listing was checked, in words

    def record(self) -> dict[str, str]:
        kind = "sha512" if len(self.digest) == 128 else "sha256"
        return {"file": self.filename, "url": self.url, kind: self.digest,
                "version": self.version, "listing": self.listing, "signature": self.signature}


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression: ``{version}`` a point release, the rest literal."""
    before, _, after = pattern.partition("{version}")
    return re.compile(re.escape(before) + f"(?P<version>{VERSION})" + re.escape(after))


def version_problem(spec: Any, version: str) -> str:
    """'' or why ``version`` (``--iso-version``) cannot be one of ``spec``'s point
    releases: what ``{version}`` in its pattern stands for, of its series."""
    if not re.fullmatch(VERSION, version):
        return (f"{version!r} is not a point release (numbers joined by '.' or '-', as in "
                f"{spec.pattern.replace('{version}', spec.series + '.N' if spec.series else '1.2')})")
    series = spec.series
    if series and version != series and not version.startswith((series + ".", series + "-")):
        return f"{version!r} is not a point release of {series} ({series}.N, as in {spec.pattern})"
    return ""


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.split(r"[.-]", version))


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def folders(spec: Any, version: str = "") -> list[str]:
    """Where to look, in order: the release folder, then (for a pinned version) the
    point release's archive folder, then the end-of-life archive."""
    out = [spec.folder]
    if version and spec.point_archive:
        out.append(spec.point_archive.replace("{version}", version))
    if spec.archive:
        out.append(spec.archive)
    return list(dict.fromkeys(out))


def matching(entries: dict[str, str], spec: Any, version: str = "") -> dict[str, tuple[str, str]]:
    """version -> (file name, sha256) of the listing's entries that match the pattern
    (and the pinned version)."""
    regex = pattern_regex(spec.pattern)
    found = {}
    for name, sha in entries.items():
        base = name.removeprefix("./").rsplit("/", 1)[-1]
        m = regex.fullmatch(base)
        v = m["version"] if m else ""
        if m and (not version or v == version) and (
                not spec.series or v == spec.series or v.startswith((spec.series + ".", spec.series + "-"))):
            found[v] = (base, sha)
    return found


def listing_names(index: str, spec: Any, version: str = "") -> dict[str, str]:
    """version -> name of the checksum listings a folder index (HTML, as a mirror serves
    it) links to whose name matches ``spec.checksums`` (``{version}`` in it), of the
    release's own versions (and the pinned one)."""
    regex = pattern_regex(spec.checksums)
    found = {}
    for link in re.findall(r'href="([^"?#]+)"', index):
        m = regex.fullmatch(link.removeprefix("./").rsplit("/", 1)[-1])
        v = m["version"] if m else ""
        if m and (not version or v == version) and (
                not spec.series or v == spec.series or v.startswith((spec.series + ".", spec.series + "-"))):
            found[v] = m.group(0)
    return found


def listing_name(spec: Any, folder: str, version: str, fetch: Fetch) -> str:
    """The checksum listing's file name in ``folder``: ``spec.checksums``, or for a name
    with ``{version}`` the newest one the folder's index links to ("" when none)."""
    if "{version}" not in spec.checksums:
        return str(spec.checksums)
    names = listing_names(fetch(folder).decode("utf-8", "replace"), spec, version)
    return names[max(names, key=version_key)] if names else ""


def signed_listing(spec: Any, folder: str, listing_url: str, data: bytes, verify: bool,
                   keys_dir: Path, fetch: Fetch, log: Log) -> tuple[str, str]:
    """The listing's text as its signature covers it, and how it was checked."""
    text = data.decode("utf-8", "replace")
    if not spec.signature:
        return text, f"none published upstream ({spec.unsigned})"
    if not verify:
        return text, "not checked (--iso-signatures=off)"
    ring = signatures.keyring(spec.fingerprints, spec.keyrings, spec.key_url, keys_dir, fetch, log)
    if spec.signature == "inline":
        signed = signatures.verify(data, None, ring, listing_url)
        how = "inline (clearsigned)"
    else:
        # ("{listing}": the listing's own name, for listings named per version)
        how = spec.signature.replace("{listing}", listing_url.rsplit("/", 1)[-1])
        signed = signatures.verify(data, fetch(join(folder, how)), ring, f"{listing_url} ({how})")
    return signed.decode("utf-8", "replace"), (f"verified with gpgv: {how}, key "
                                                f"{' '.join(ring.fingerprints)} from {ring.source}")


def resolve(name: str, spec: Any, *, version: str = "", verify: bool = True, keys_dir: Path,
            fetch: Fetch, entries_of: Callable[[str], dict[str, str]], log: Log) -> Resolved:
    """The newest ISO of ``spec`` (or the pinned ``version``) that a signed listing
    names, looking in the release folder first and then in the archives."""
    tried, fetched = [], 0
    for folder in folders(spec, version):
        listing_url = join(folder, spec.checksums)
        try:
            listed_as = listing_name(spec, folder, version, fetch)
            if not listed_as:
                fetched += 1
                tried.append(f"{folder} (its index links no {spec.checksums}"
                             f"{' of version ' + version if version else ''})")
                continue
            listing_url = join(folder, listed_as)
            data = fetch(listing_url)
        except IsoError as exc:
            tried.append(f"{listing_url} ({str(exc).split(';')[0].rsplit(': ', 1)[-1]})")
            continue
        fetched += 1
        text, how = signed_listing(spec, folder, listing_url, data, verify, keys_dir, fetch, log)
        found = matching(entries_of(text), spec, version)
        if not found:
            tried.append(f"{listing_url} (lists no {spec.pattern}"
                         f"{' of version ' + version if version else ''})")
            continue
        best = max(found, key=version_key)
        filename, sha = found[best]
        if folder != spec.folder:
            log(f"{name}: {spec.folder} has no {spec.pattern}{' ' + version if version else ''}; "
                f"using {folder}")
        return Resolved(join(folder, filename), filename, sha, best, listing_url, how)
    hint = ("pin another with --iso-version, or update the YAML's iso.folder / iso.archive"
            if version else "check the network, or the YAML's iso.folder / iso.pattern / iso.archive")
    raise ListingError(f"{name}: no install ISO found{' for version ' + version if version else ''}: "
                       f"tried {'; '.join(tried)}; {hint}", unreachable=fetched == 0)
