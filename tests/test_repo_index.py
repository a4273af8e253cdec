"""vmgenie's repository index: new, updated in place, appended, and malformed left alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.archive import index, writer
from harness.archive.crc64 import crc64nvme, s3_checksum
from harness.archive.errors import ArchiveError, RepoIndexError
from harness.distro import VmgenieNames

BASE = "https://gmi.example.org/"
STAMP = "2025-07-30T18:09:36Z"


def make_archive(folder: Path, names: VmgenieNames, payload: bytes = b"zip bytes") -> tuple[Path, dict]:
    """A stand-in archive (the index only needs its bytes) and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / names.archive
    archive.write_bytes(payload)
    os.utime(archive, (1_753_898_976, 1_753_898_976))  # 2025-07-30T18:09:36Z
    manifest = writer.manifest(names, checksum="ab" * 32, description=f"The {names.vm_name} image.",
                                  maintainer="Maint", maintainer_email="m@example.org",
                                  source_url="https://example.org/src")
    return archive, manifest


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_new_index(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    index_path = tmp_path / "idx" / index.INDEX_NAME
    out = index.update_index(index_path, archive, m, BASE + archive.name)
    assert load(index_path) == out
    assert list(out) == ["Debian-12"]
    (entry,) = out["Debian-12"]
    assert tuple(entry) == index.ENTRY_KEYS
    assert entry == {
        "name": "GMI Debian 12", "version": "12", "url": BASE + "GMI-Debian-12.zip",
        "crc64nvme": s3_checksum(crc64nvme(b"zip bytes")), "last_modified": STAMP,
        "maintainer": "Maint", "maintainer_email": "m@example.org",
        "source_url": "https://example.org/src", "description": "The GMI Debian 12 image.",
        "hyperv_generation": 2,
    }


def test_versions_and_timestamps_stay_strings_in_the_yaml(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Ubuntu", "24.04"))
    index_path = tmp_path / index.INDEX_NAME
    index.update_index(index_path, archive, m, BASE + archive.name)
    text = index_path.read_text()
    assert "version: '24.04'" in text and f"last_modified: '{STAMP}'" in text
    assert load(index_path)["Ubuntu-24.04"][0]["version"] == "24.04"


def test_update_in_place(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    index_path = tmp_path / index.INDEX_NAME
    index.update_index(index_path, archive, m, BASE + archive.name)
    archive.write_bytes(b"rebuilt zip bytes")
    out = index.update_index(index_path, archive, m, BASE.upper()[:8] + BASE[8:] + archive.name,
                                  last_modified="2025-08-01T00:00:00Z")
    assert len(out["Debian-12"]) == 1  # same URL (ignoring case, as vmgenie): replaced, not added
    entry = out["Debian-12"][0]
    assert entry["crc64nvme"] == s3_checksum(crc64nvme(b"rebuilt zip bytes"))
    assert entry["last_modified"] == "2025-08-01T00:00:00Z"
    assert load(index_path) == out


def test_second_version_appended_and_others_kept(tmp_path: Path):
    index_path = tmp_path / index.INDEX_NAME
    index_path.write_text(
        'Fedora-40:\n  - name: "GMI Fedora 40"\n    version: "40"\n    url: "https://x/GMI-Fedora-40.zip"\n'
        '    crc64nvme: "t9cYGBuOZLg="\n    last_modified: "2025-07-30T18:09:36+00:00"\n'
        '    maintainer: "J"\n    maintainer_email: "j@x"\n    source_url: "https://x"\n'
        '    description: "d"\n    hyperv_generation: 2\n')
    a12, m12 = make_archive(tmp_path / "a", VmgenieNames("Debian", "12"))
    a13, m13 = make_archive(tmp_path / "b", VmgenieNames("Debian", "13"), b"other")
    index.update_index(index_path, a12, m12, BASE + a12.name)
    out = index.update_index(index_path, a13, m13, BASE + a13.name)
    assert list(out) == ["Fedora-40", "Debian-12", "Debian-13"]
    assert out["Fedora-40"][0]["last_modified"] == "2025-07-30T18:09:36+00:00"  # untouched
    assert out["Debian-13"][0]["crc64nvme"] == s3_checksum(crc64nvme(b"other"))


def test_second_url_for_the_same_key_is_appended_after_the_first(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    index_path = tmp_path / index.INDEX_NAME
    index.update_index(index_path, archive, m, BASE + archive.name)
    out = index.update_index(index_path, archive, m, "https://mirror.example.net/" + archive.name)
    # vmgenie's FindByOsAndVersion takes the FIRST entry of a key.
    assert [e["url"] for e in out["Debian-12"]] == [BASE + archive.name,
                                                    "https://mirror.example.net/" + archive.name]


@pytest.mark.parametrize("text", [
    "Debian-12: [unclosed\n",
    "- just\n- a list\n",
    "Debian-12: not-a-list\n",
    "Debian-12:\n  - just a string\n",
    "12: []\n",
])
def test_malformed_index_is_an_error_and_left_untouched(tmp_path: Path, text: str):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    index_path = tmp_path / index.INDEX_NAME
    index_path.write_text(text)
    before = index_path.stat().st_mtime_ns
    match = r"index .* (is not valid YAML|is malformed).*left untouched"
    with pytest.raises(RepoIndexError, match=match) as e:
        index.update_index(index_path, archive, m, BASE + archive.name)
    assert "\n" not in str(e.value)
    assert index_path.read_text() == text and index_path.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, index_path.name])


def test_empty_index_file_starts_empty(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Rocky", "9"))
    index_path = tmp_path / index.INDEX_NAME
    index_path.write_text("")
    assert list(index.update_index(index_path, archive, m, BASE + archive.name)) == ["Rocky-9"]


@pytest.mark.parametrize(("url", "match"), [
    ("ftp://x/GMI-Debian-12.zip", "is not an http"),
    ("GMI-Debian-12.zip", "is not an http"),
    ("https://x/other.zip", "ends in 'other.zip', not 'GMI-Debian-12.zip'"),
])
def test_bad_url(tmp_path: Path, url: str, match: str):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    with pytest.raises(RepoIndexError, match=match):
        index.update_index(tmp_path / index.INDEX_NAME, archive, m, url)
    assert not (tmp_path / index.INDEX_NAME).exists()


def test_url_with_query_and_escapes(tmp_path: Path):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    out = index.update_index(tmp_path / index.INDEX_NAME, archive, m,
                                  "https://x/GMI%2DDebian-12.zip?versionId=3")
    assert out["Debian-12"][0]["url"].endswith("?versionId=3")


def test_manifest_must_belong_to_the_archive(tmp_path: Path):
    archive, _ = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    _, other = make_archive(tmp_path / "o", VmgenieNames("Debian", "13"))
    match = r"manifest is for Debian 13, but the archive is GMI-Debian-12\.zip"
    with pytest.raises(RepoIndexError, match=match):
        index.update_index(tmp_path / index.INDEX_NAME, archive, other, BASE + archive.name)


def test_write_failure_keeps_the_old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive, m = make_archive(tmp_path, VmgenieNames("Debian", "12"))
    index_path = tmp_path / index.INDEX_NAME
    index.update_index(index_path, archive, m, BASE + archive.name)
    before = index_path.read_text()

    def fail(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index.os, "replace", fail)
    archive.write_bytes(b"new")
    with pytest.raises(RepoIndexError, match=r"cannot write index .*No space left on device"):
        index.update_index(index_path, archive, m, BASE + archive.name)
    assert index_path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, index_path.name])


def test_errors_are_archive_errors():
    assert issubclass(RepoIndexError, ArchiveError)


def test_concurrent_updates_keep_every_entry(tmp_path: Path):
    """xdist workers validating several archives write one index side by side."""
    import threading

    index_path = tmp_path / "idx" / index.INDEX_NAME
    jobs = [make_archive(tmp_path / f"a{i}", VmgenieNames("Debian", str(10 + i))) for i in range(8)]
    threads = [threading.Thread(target=index.update_index,
                                args=(index_path, archive, m, BASE + archive.name))
               for archive, m in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(load(index_path)) == [f"Debian-{10 + i}" for i in range(8)]
    assert os.listdir(index_path.parent) == [index.INDEX_NAME]  # no lock file left
