"""What changed since the previous release: the sign-off page's release diff.

A release is a GMI archive; its facts come from the ``gmi-build-record.yml`` inside it
(packages, kernel, cloud-init and integration-service versions, VHDX size, check
results and their checklist items) and from the zip itself (its size, the disk
entry's size). The previous release of a distro is, in this order:

- ``--previous PATH_OR_URL`` (repeatable; each is matched to a distro by the archive
  it names): a local ``GMI-<Os>-<Version>.zip``; an http(s) URL of one (read with HTTP
  range requests: the central directory and the build record only, never the disk);
  or a vmgenie repository index (``gmi-repository.dist.yml``, a local file or a URL),
  whose first entry for the distro's key is followed to its archive, as vmgenie does;
- else the newest archive of that distro under ``--out`` (subfolders included, the run
  folders left out) other than the one this run wrote or validated, built before it.

The plugin calls :func:`attach_diffs` on the build summaries before it writes
``signoff.json``; the page renders each summary's ``release_diff``.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness import checklist
from harness.archive import reader
from harness.archive.errors import ArchiveError
from harness.archive.format import RECORD_ENTRY
from harness.distro import VmgenieNames
from harness.errors import GmiError
from harness.names import INDEX_SUFFIXES, is_url

# The versions the page compares, in its order, with their labels.
VERSIONS = (("os", "OS"), ("kernel", "kernel"), ("cloud-init", "cloud-init"),
            ("integration_services", "integration services"))


class ReleaseError(GmiError):
    """The previous release cannot be found or read."""


# ----------------------------------------------------------------------- one release


@dataclass
class Release:
    """The facts of one archive that a release diff compares."""

    source: str  # the path or URL it was read from
    archive: str  # its file name
    built: str = ""
    distro: str = ""
    zip_bytes: int | None = None
    vhdx_bytes: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)  # name -> version
    checks: dict[str, str] = field(default_factory=dict)  # test (no distro parameter) -> outcome
    items: dict[str, str] = field(default_factory=dict)  # test -> checklist item

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str, archive: str, *,
                    zip_bytes: int | None, vhdx_entry_bytes: int | None) -> Release:
        distro = str(record.get("distro", ""))
        sizes = _mapping(record.get("sizes"))
        vhdx = sizes.get("vhdx_bytes")
        checks = {_test_name(str(k), distro): str(v)
                  for k, v in _mapping(record.get("check_results")).items()}
        items = {_test_name(str(k), distro): str(v)
                 for k, v in _mapping(record.get("check_items")).items()}
        if not items and checks:  # records written before check_items: the checks' source
            labels = checklist.labels_from_source()
            items = {t: labels[t.split("[")[0]] for t in checks if t.split("[")[0] in labels}
        return cls(
            source=source, archive=archive, built=str(record.get("built", "")), distro=distro,
            zip_bytes=zip_bytes,
            vhdx_bytes=vhdx if isinstance(vhdx, int) and not isinstance(vhdx, bool) else vhdx_entry_bytes,
            versions={str(k): str(v) for k, v in _mapping(record.get("versions")).items()},
            packages=_packages(record.get("packages")), checks=checks, items=items)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _packages(value: Any) -> dict[str, str]:
    """``["name version", ...]`` (what the seal records) as {name: version}."""
    found: dict[str, str] = {}
    for line in value if isinstance(value, list) else []:
        name, _, version = str(line).strip().partition(" ")
        if name:
            found[name] = version.strip()
    return found


def _test_name(name: str, distro: str) -> str:
    """A test's name without the distro's parameter (``test_x[debian-12]`` -> ``test_x``;
    ``test_y[debian-12-eth0]`` -> ``test_y[eth0]``): comparable across builds."""
    if distro:
        name = name.replace(f"[{distro}]", "").replace(f"[{distro}-", "[").replace(f"-{distro}]", "]")
    return name


def _record(zf: zipfile.ZipFile, where: str) -> dict[str, Any]:
    try:
        data = reader.build_record(zf)
    except ArchiveError as exc:
        raise ReleaseError(f"{where}: {exc}") from None
    if data is None:
        raise ReleaseError(f"{where} holds no {RECORD_ENTRY}: nothing to compare with")
    return data


def _vhdx_entry_bytes(zf: zipfile.ZipFile, names: VmgenieNames) -> int | None:
    try:
        return zf.getinfo(names.vhdx_entry).file_size
    except KeyError:
        return None


def read_archive(path: Path) -> Release:
    """The release facts of a local archive (only read: entries checked, no extraction)."""
    names = reader.parse_name(path)
    with reader.open_archive(path) as zf:
        record = _record(zf, path.name)
        return Release.from_record(record, str(path), path.name, zip_bytes=path.stat().st_size,
                                   vhdx_entry_bytes=_vhdx_entry_bytes(zf, names))


class HttpRangeFile(io.RawIOBase):
    """A remote file read with HTTP range requests: zipfile seeks to the central
    directory and the one entry it needs, so a multi-gigabyte archive costs a few
    requests of kilobytes."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        self.url, self.timeout, self.pos = url, timeout, 0
        self.requests = 0
        status, headers, _ = self._get(0, 0)
        total = re.fullmatch(r"bytes \d+-\d+/(\d+)", headers.get("Content-Range", ""))
        if status != 206 or total is None:
            raise ReleaseError(f"{url}: the server does not answer HTTP range requests (status "
                               f"{status}); download the archive and pass its path to --previous")
        self.size = int(total[1])

    def _get(self, start: int, end: int) -> tuple[int, Mapping[str, str], bytes]:
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}"})
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                # (a server that ignores Range would send the whole file: read a little only)
                body = reply.read(end - start + 1)
                return reply.status, dict(reply.headers.items()), body
        except urllib.error.HTTPError as exc:
            raise ReleaseError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReleaseError(f"{self.url}: cannot read it ({reason})") from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        status, _, body = self._get(self.pos, self.pos + want - 1)
        if status != 206 or len(body) != want:
            raise ReleaseError(f"{self.url}: a range request returned {len(body)} bytes "
                               f"(status {status}), expected {want}")
        buffer[:want] = body
        self.pos += want
        return want


def read_url(url: str) -> Release:
    """The release facts of an archive at an http(s) URL, without downloading its disk."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    names = reader.parse_name(urllib.request.url2pathname(name))
    raw = HttpRangeFile(url)
    with io.BufferedReader(raw, buffer_size=64 * 1024) as remote:
        try:
            zf = zipfile.ZipFile(remote)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise ReleaseError(f"{url} is not a readable zip ({exc})") from None
        with zf:
            reader.check_entries(zf, reader.Limits())
            record = _record(zf, url)
            return Release.from_record(record, url, names.archive, zip_bytes=raw.size,
                                       vhdx_entry_bytes=_vhdx_entry_bytes(zf, names))


def _index_text(source: str) -> str:
    if not is_url(source):
        return Path(source).read_text(encoding="utf-8")
    try:
        with urllib.request.urlopen(source, timeout=60) as reply:
            return str(reply.read(4 << 20).decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ReleaseError(f"{source}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{source}: cannot read the index ({getattr(exc, 'reason', exc)})") from None


def index_entry_url(source: str, names: VmgenieNames) -> str:
    """The archive URL of the distro's entry in a vmgenie repository index (its first
    entry under ``<Os>-<Version>``, the one vmgenie takes)."""
    try:
        data = yaml.safe_load(_index_text(source))
    except yaml.YAMLError as exc:
        raise ReleaseError(f"{source}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    key = f"{names.os}-{names.version}"
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise ReleaseError(f"{source}: no entry for {key} in this repository index")
    url = str(entries[0].get("url", ""))
    if not is_url(url):
        raise ReleaseError(f"{source}: the {key} entry's url {url!r} is not an http(s) URL")
    return url


def is_index(source: str) -> bool:
    path = urlsplit(source).path if is_url(source) else source
    return path.lower().endswith(INDEX_SUFFIXES)


def names_of(source: str) -> VmgenieNames | None:
    """The distro an archive source is for (None for an index: it serves every distro)."""
    if is_index(source):
        return None
    name = urlsplit(source).path.rsplit("/", 1)[-1] if is_url(source) else Path(source).name
    try:
        return reader.parse_name(urllib.request.url2pathname(name) if is_url(source) else name)
    except ArchiveError:
        return None


def read_source(source: str, names: VmgenieNames) -> Release:
    """The previous release of ``names`` from one ``--previous`` value."""
    if is_index(source):
        url = index_entry_url(source, names)
        release = read_url(url)
        release.source = f"{url} (the {names.os}-{names.version} entry of {source})"
        return release
    return read_url(source) if is_url(source) else read_archive(Path(source))


def newest_in(out_dir: Path, names: VmgenieNames, current: Release | None,
              exclude: Iterable[Path] = ()) -> Release | None:
    """The newest archive of ``names`` under ``out_dir`` (run folders left out) that is
    not ``exclude`` and was built before ``current``. Unreadable candidates are skipped."""
    skip = {p.resolve() for p in exclude}
    found: list[Release] = []
    runs = (out_dir / "runs").resolve()
    for path in out_dir.rglob(names.archive) if out_dir.is_dir() else []:
        real = path.resolve()
        if real in skip or real.is_relative_to(runs) or not path.is_file():
            continue
        try:
            release = read_archive(path)
        except GmiError:
            continue
        if current is not None and current.built and release.built >= current.built:
            continue  # (UTC stamps YYYY-MM-DDTHH:MM:SSZ sort as text)
        found.append(release)
    return max(found, key=lambda r: (r.built, r.source), default=None)


# ----------------------------------------------------------------------- the diff


def _order(c: str) -> int:
    return -1 if c == "~" else 0 if c.isdigit() else ord(c) if c.isalpha() else ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of one version part: non-digit runs character by character
    (``~`` before everything, even the end; letters before other characters), digit
    runs numerically."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first = 0
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            first = first or (ord(a[i]) - ord(b[j]))
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first:
            return -1 if first < 0 else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0, 1 as Debian compares package versions (epoch, upstream, revision). RPM's
    rpmvercmp orders ordinary versions the same way; its ``~``/``^`` corner cases may
    differ (an upgrade would then show as a downgrade, with both versions)."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return (int(epoch) if epoch.isdigit() else 0, upstream, revision)

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def item_result(outcomes: Sequence[str]) -> str:
    """One checklist item's result from its tests' outcomes (as the page's matrix)."""
    if not outcomes:
        return "not run"
    if any(o in ("failed", "error", "xfailed") for o in outcomes):
        return "fail"
    return "pass" if "passed" in outcomes else "skipped"


def _delta(before: int | None, after: int | None) -> dict[str, int | None]:
    delta = after - before if before is not None and after is not None else None
    return {"from": before, "to": after, "delta": delta}


def diff(previous: Release, current: Release) -> dict[str, Any]:
    """What changed from ``previous`` to ``current`` (JSON-able, for signoff.json)."""
    old, new = previous.packages, current.packages
    upgraded: list[dict[str, str]] = []
    downgraded: list[dict[str, str]] = []
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            change = {"name": name, "from": old[name], "to": new[name]}
            (downgraded if compare_versions(old[name], new[name]) > 0 else upgraded).append(change)
    versions = [{"name": label, "key": key, "from": previous.versions.get(key, ""),
                 "to": current.versions.get(key, ""),
                 "changed": previous.versions.get(key, "") != current.versions.get(key, "")}
                for key, label in VERSIONS]
    items: dict[str, dict[str, list[str]]] = {}
    tests: dict[str, list[dict[str, str]]] = {}
    for test in sorted(set(previous.checks) | set(current.checks)):
        item = current.items.get(test) or previous.items.get(test) or "other checks"
        slot = items.setdefault(item, {"from": [], "to": []})
        before, after = previous.checks.get(test), current.checks.get(test)
        if before is not None:
            slot["from"].append(before)
        if after is not None:
            slot["to"].append(after)
        if before != after:
            tests.setdefault(item, []).append({"name": test, "from": before or "not run",
                                               "to": after or "not run"})
    checks = [{"item": item, "from": item_result(v["from"]), "to": item_result(v["to"]),
               "tests": tests.get(item, [])}
              for item, v in items.items()
              if item_result(v["from"]) != item_result(v["to"]) or tests.get(item)]
    return {
        "previous": {"source": previous.source, "archive": previous.archive,
                     "built": previous.built},
        "current": {"archive": current.archive, "built": current.built},
        "packages": {
            "added": [{"name": n, "version": new[n]} for n in sorted(set(new) - set(old))],
            "removed": [{"name": n, "version": old[n]} for n in sorted(set(old) - set(new))],
            "upgraded": upgraded, "downgraded": downgraded,
            "unchanged": sum(1 for n in set(old) & set(new) if old[n] == new[n]),
        },
        "versions": versions,
        "sizes": {"vhdx": _delta(previous.vhdx_bytes, current.vhdx_bytes),
                  "zip": _delta(previous.zip_bytes, current.zip_bytes)},
        "checks": checks,
    }


# ----------------------------------------------------------------------- the run


def release_diff(archive: Path, out_dir: Path, sources: Sequence[str]) -> dict[str, Any]:
    """The ``release_diff`` of one archive this run wrote or validated: the diff, or
    ``{"none": why}`` when there is no previous release, or ``{"error": why}``."""
    try:
        current = read_archive(archive)
        names = reader.parse_name(archive)
        chosen = [s for s in sources if names_of(s) in (None, names)]
        mine = [s for s in chosen if not is_index(s)] or chosen  # an archive beats an index
        if mine:
            previous = read_source(mine[0], names)
        else:
            found = newest_in(out_dir, names, current, exclude=[archive])
            if found is None:
                return {"none": f"no earlier {names.archive} under {out_dir} (give one with "
                                "--previous PATH_OR_URL)"}
            previous = found
        if previous.distro and current.distro and previous.distro != current.distro:
            raise ReleaseError(f"the previous release {previous.archive} is of "
                               f"{previous.distro}, this one of {current.distro}")
        return diff(previous, current)
    except GmiError as exc:
        return {"error": " ".join(str(exc).split())}


def attach_diffs(summaries: Sequence[dict[str, Any]], out_dir: Path, sources: Sequence[str]) -> None:
    """Give each build summary with an archive its ``release_diff`` (the plugin calls this
    on the controller before it writes signoff.json). Never raises for a bad previous
    release: the page shows the one-line reason instead."""
    for summary in summaries:
        archive = summary.get("archive")
        if archive and Path(archive).is_file():
            summary["release_diff"] = release_diff(Path(archive), out_dir, sources)


# ----------------------------------------------------------------------- reading it back


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _n(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rows(value: Any, keys: Sequence[str]) -> list[dict[str, str]]:
    return [{k: _s(row.get(k)) for k in keys} for row in value if isinstance(row, Mapping)] \
        if isinstance(value, list) else []


def clean(value: Any) -> dict[str, Any]:
    """A ``release_diff`` read from a signoff.json (CI artifacts are not trusted): every
    field of the expected type, anything else dropped."""
    if not isinstance(value, Mapping):
        return {}
    if "error" in value or "none" in value:
        key = "error" if "error" in value else "none"
        return {key: _s(value[key])}
    pk = _mapping(value.get("packages"))
    sizes = _mapping(value.get("sizes"))
    return {
        "previous": {k: _s(_mapping(value.get("previous")).get(k)) for k in ("source", "archive", "built")},
        "current": {k: _s(_mapping(value.get("current")).get(k)) for k in ("archive", "built")},
        "packages": {
            "added": _rows(pk.get("added"), ("name", "version")),
            "removed": _rows(pk.get("removed"), ("name", "version")),
            "upgraded": _rows(pk.get("upgraded"), ("name", "from", "to")),
            "downgraded": _rows(pk.get("downgraded"), ("name", "from", "to")),
            "unchanged": _n(pk.get("unchanged")) or 0,
        },
        "versions": [{**{k: _s(v.get(k)) for k in ("name", "key", "from", "to")},
                      "changed": v.get("changed") is True}
                     for v in value.get("versions") or [] if isinstance(v, Mapping)],
        "sizes": {k: {p: _n(_mapping(sizes.get(k)).get(p)) for p in ("from", "to", "delta")}
                  for k in ("vhdx", "zip")},
        "checks": [{**{k: _s(c.get(k)) for k in ("item", "from", "to")},
                    "tests": _rows(c.get("tests"), ("name", "from", "to"))}
                   for c in value.get("checks") or [] if isinstance(c, Mapping)],
    }
