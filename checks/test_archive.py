"""Static checks of an existing GMI archive (``pytest --gmi PATH``): what vmgenie's
import looks at, each its own test. The archive is only ever read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest

from harness import checklist as item
from harness.archive import reader
from harness.archive.format import MANIFEST_KEYS
from harness.build import Build
from harness.distro import Distro
from harness.errors import GmiError
from harness.plugin.fixtures import fail_cleanly
from harness.plugin.matrix import checklist

pytestmark = [pytest.mark.archive]


@contextlib.contextmanager
def verdict() -> Iterator[None]:
    """What the archive gets wrong is the check's verdict, in one line."""
    try:
        yield
    except GmiError as exc:
        fail_cleanly(exc)


@checklist(item.ARCHIVE_NAME)
def test_archive_name_follows_vmgenie(build: Build, distro: Distro) -> None:
    assert build.archive is not None
    with verdict():
        names = reader.parse_name(build.archive)
    assert build.archive.name == names.archive
    assert (names.os, names.version) == (distro.vmgenie.os, distro.vmgenie.version)


@checklist(item.ARCHIVE_ENTRIES)
def test_zip_entries_are_safe(readable_archive: list[str]) -> None:
    """No absolute paths, no '..', no links, no bomb: unpacking stays in its folder
    (``readable_archive`` opened it as vmgenie does; an archive that cannot be opened
    stops here, and every other check of it says so in one line)."""
    assert readable_archive
    for name in readable_archive:
        assert not name.startswith("/") and ".." not in PurePosixPath(name).parts, name


@checklist(item.ARCHIVE_MANIFEST)
def test_manifest_has_vmgenies_keys(build: Build, readable_archive: list[str]) -> None:
    assert build.archive is not None
    names = reader.parse_name(build.archive)
    with verdict(), reader.open_archive(build.archive) as zf:
        manifest = reader.read_manifest(zf, names)
    extra = sorted(set(manifest) - set(MANIFEST_KEYS) - {"disk_only"})
    assert not extra, f"vmgenie's manifest loader refuses unknown keys: {extra}"
    assert manifest["vm_name"] == names.vm_name


@checklist(item.ARCHIVE_LAYOUT)
def test_one_vmcx_or_disk_only(build: Build, readable_archive: list[str]) -> None:
    assert build.archive is not None
    names = reader.parse_name(build.archive)
    with verdict(), reader.open_archive(build.archive) as zf:
        layout = reader.layout(zf, names, reader.read_manifest(zf, names))
    assert layout.vhdx_entry == names.vhdx_entry
    assert (layout.vmcx_entry is None) == layout.disk_only


@checklist(item.ARCHIVE_DISK)
def test_vhdx_matches_checksum_and_is_dynamic(sealed: Build) -> None:
    """The disk was extracted, hashed against checksum_sha256 and parsed as a VHDX."""
    info = sealed.record["vhdx_info"]
    assert sealed.vhdx is not None and sealed.vhdx.exists()
    assert not info["fixed"] and not info["differencing"]
    assert info["virtual_size"] >= 1 << 30
    assert sealed.record["vhdx_sha256"] == sealed.record["manifest"]["checksum_sha256"]


def test_expectations_are_named(build: Build, distro: Distro) -> None:
    """The report says whether the checks used the catalogue's or generic expectations."""
    kind = "generic" if distro.generic else f"catalogue ({distro.name})"
    print(f"expectations: {kind}")
    assert distro.generic or distro.vmgenie == reader.parse_name(build.archive)  # type: ignore[arg-type]
