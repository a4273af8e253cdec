"""``pytest --gmi ARCHIVE`` end to end on small synthetic archives (no VM boots: only
the static checks run, ``-m archive``), and the hostile variants through the CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.archive import writer
from harness.distro import VmgenieNames
from harness.host.tools import sha256_file

REPO = Path(__file__).resolve().parent.parent


DEBIAN_12 = VmgenieNames("Debian", "12")


def make_archive(tmp: Path, names: VmgenieNames = DEBIAN_12,
                 checksum: str | None = None) -> Path:
    disk = tmp / "disk.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(disk), "2G"], check=True)
    manifest = writer.manifest(names, checksum=checksum or sha256_file(disk),
                                  description="t",
                                  maintainer="m", maintainer_email="m@x", source_url="u",
                                  extra={"disk_only": True})
    out = tmp / "out"
    return writer.write_archive(out, names, disk, manifest, "# t\n", {"versions": {}},
                                   force=True)


def run_checks(tmp: Path, archive: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "checks"), f"--gmi={archive}", "-m", "archive",
         "-p", "no:cacheprovider", f"--out={tmp / 'reports'}", f"--scratch={tmp / 'scratch'}",
         *extra], cwd=REPO, capture_output=True, text=True, timeout=300)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


needs_qemu_img = pytest.mark.skipif(
    subprocess.run(["which", "qemu-img"], capture_output=True).returncode != 0,
    reason="qemu-img not installed (make setup installs qemu-utils)")


@needs_qemu_img
def test_good_archive_passes_the_static_checks(tmp_path: Path):
    archive = make_archive(tmp_path)
    before = digest(archive)
    result = run_checks(tmp_path, archive, "-v")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "6 passed" in result.stdout, result.stdout[-2000:]
    assert "expectations: catalogue (debian-12)" in result.stdout or "PASSED" in result.stdout
    assert digest(archive) == before
    assert not list((tmp_path / "scratch").glob("*")), "scratch left behind"
    assert list((tmp_path / "reports" / "runs").glob("*/junit.xml"))


@needs_qemu_img
def test_uncatalogued_gmi_gets_generic_expectations(tmp_path: Path):
    archive = make_archive(tmp_path, VmgenieNames("Slackware", "15"))
    result = run_checks(tmp_path, archive, "-s")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "expectations: generic" in result.stdout


@needs_qemu_img
@pytest.mark.parametrize("damage, message", [
    ("truncate", "*not a zip file*"),
    ("checksum", "*differs from the manifest's checksum_sha256*"),
    ("traversal", "*'..'*"),
])
def test_hostile_archives_fail_with_a_clear_verdict(tmp_path: Path, damage: str, message: str):
    archive = make_archive(tmp_path, checksum="0" * 64 if damage == "checksum" else None)
    if damage == "truncate":
        data = archive.read_bytes()
        archive.write_bytes(data[: len(data) // 2])
    elif damage == "traversal":
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr("../evil.txt", "x")
    before = digest(archive)
    result = run_checks(tmp_path, archive)
    assert result.returncode == 1, result.stdout[-3000:]
    import fnmatch
    assert fnmatch.fnmatch(result.stdout.replace("\n", " "), message), result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    assert digest(archive) == before, "the archive was modified"
    assert not list((tmp_path / "scratch").glob("*")), "scratch left behind"
    assert not (tmp_path.parent / "evil.txt").exists()


def test_missing_archive_is_a_usage_error(tmp_path: Path):
    result = run_checks(tmp_path, tmp_path / "GMI-Debian-12.zip")
    assert result.returncode == 4
    assert "no such archive file" in result.stderr


def test_index_needs_an_url(tmp_path: Path):
    archive = tmp_path / "GMI-Debian-12.zip"
    archive.write_bytes(b"x")
    result = run_checks(tmp_path, archive, f"--index={tmp_path / 'i.yml'}")
    assert result.returncode == 4
    assert "--index needs --index-url" in result.stderr
