"""vmgenie's repository index, ``gmi-repository.dist.yml``.

A mapping keyed ``"<Os>-<Version>"``; each value is a list of entries with exactly the
keys of vmgenie's ``GmiPackage``: name, version, url, crc64nvme (base64 of the zip's
CRC-64/NVME, as S3 reports ``ChecksumCRC64NVME``), last_modified, maintainer,
maintainer_email, source_url, description, hyperv_generation.

vmgenie reads it with YamlDotNet into ``Dictionary<string, List<GmiPackage>>``: unknown
keys in an entry break its loader, so entries carry these keys only. It looks a
package up by key and takes the list's FIRST entry; it matches URLs ignoring case.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from harness import safeyaml
from harness.archive.crc64 import crc64nvme_file, s3_checksum
from harness.archive.errors import RepoIndexError
from harness.archive.reader import parse_name
from harness.host.tools import folder_lock

INDEX_NAME = "gmi-repository.dist.yml"
ENTRY_KEYS = ("name", "version", "url", "crc64nvme", "last_modified", "maintainer",
              "maintainer_email", "source_url", "description", "hyperv_generation")

Index = dict[str, list[dict[str, Any]]]


def load_index(index_path: Path) -> Index:
    """The index at ``index_path``; empty when the file does not exist (or is empty)."""
    path = Path(index_path)
    if not path.exists():
        return {}
    try:
        data = safeyaml.load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RepoIndexError(f"index {path} is not valid YAML ({_first_line(e)}); fix or remove it "
                             "(it was left untouched)") from e
    except OSError as e:
        raise RepoIndexError(f"cannot read index {path}: {e.strerror or e}; check its permissions") from e
    if data is None:
        return {}
    problem = _shape_problem(data)
    if problem:
        raise RepoIndexError(f"index {path} is malformed: {problem}; fix or remove it "
                             "(it was left untouched)")
    return data


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _shape_problem(data: Any) -> str | None:
    """Why ``data`` is not ``{str: [mapping, ...]}``, or None."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not a mapping of '<Os>-<Version>' keys"
    for key, entries in data.items():
        if not isinstance(key, str):
            return f"key {key!r} is not a string"
        if not isinstance(entries, list):
            return f"'{key}' holds a {type(entries).__name__}, not a list of entries"
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return f"entry {n} of '{key}' is a {type(entry).__name__}, not a mapping"
    return None


def utc_stamp(ts: float) -> str:
    """A POSIX time as UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_url(url: str, archive_path: Path) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RepoIndexError(f"url {url!r} is not an http(s) URL; give the archive's download URL")
    base = unquote(parts.path.rsplit("/", 1)[-1])
    if base != archive_path.name:
        raise RepoIndexError(f"url {url!r} ends in {base!r}, not {archive_path.name!r}; vmgenie names "
                             "the download after the URL: point it at the archive itself")


def make_entry(archive_path: Path, manifest: Mapping[str, Any], url: str,
               last_modified: str | None = None) -> dict[str, Any]:
    """The index entry for ``archive_path`` (its CRC-64/NVME is computed here)."""
    archive_path = Path(archive_path)
    names = parse_name(archive_path)
    if (manifest.get("os"), manifest.get("version")) != (names.os, names.version):
        raise RepoIndexError(f"manifest is for {manifest.get('os')} {manifest.get('version')}, but "
                             f"the archive is {archive_path.name}; pass the archive's own manifest")
    _check_url(url, archive_path)
    return {
        "name": names.vm_name,
        "version": names.version,
        "url": url,
        "crc64nvme": s3_checksum(crc64nvme_file(archive_path)),
        "last_modified": last_modified or utc_stamp(archive_path.stat().st_mtime),
        "maintainer": str(manifest.get("maintainer", "")),
        "maintainer_email": str(manifest.get("maintainer_email", "")),
        "source_url": str(manifest.get("source_url", "")),
        "description": str(manifest.get("description", "")),
        "hyperv_generation": int(manifest.get("hyperv_generation", 2)),
    }


def merge_entry(index: Index, key: str, entry: dict[str, Any]) -> Index:
    """A new index with ``entry`` under ``key``: it replaces every entry with the same url
    (compared ignoring case, as vmgenie does), in place when that entry was under ``key``;
    otherwise it is appended to ``key``'s list. Keys left empty are dropped."""
    url = str(entry["url"]).lower()
    out: Index = {}
    placed = False
    for k, entries in index.items():
        kept: list[dict[str, Any]] = []
        for e in entries:
            if str(e.get("url", "")).lower() != url:
                kept.append(e)
            elif k == key and not placed:
                kept.append(entry)
                placed = True
        if kept:
            out[k] = kept
    if not placed:
        out.setdefault(key, []).append(entry)
    return out


def dump_index(index: Mapping[str, Any]) -> str:
    """YAML text for the index, keys in order, strings that look like numbers quoted."""
    return yaml.safe_dump(dict(index), sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=4096)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def update_index(index_path: Path, archive_path: Path, manifest: Mapping[str, Any], url: str,
                 *, last_modified: str | None = None) -> Index:
    """Add or replace the entry for ``archive_path`` in the index and write it atomically.

    A malformed index is an error and is left as it was. ``last_modified`` defaults to
    the archive's modification time in UTC. Returns the index as written.
    """
    index_path = Path(index_path)
    entry = make_entry(Path(archive_path), manifest, url, last_modified)
    key = f"{manifest['os']}-{manifest['version']}"
    try:
        # xdist workers validating several archives add their entries to one index.
        with folder_lock(index_path.parent):
            new = merge_entry(load_index(index_path), key, entry)
            write_atomic(index_path, dump_index(new))
    except OSError as e:
        raise RepoIndexError(f"cannot write index {index_path}: {e.strerror or e}; check the folder "
                             "and free space (the old index is unchanged)") from e
    return new
