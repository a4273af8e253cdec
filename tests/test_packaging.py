import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml

from harness.archive import writer
from harness.archive.format import MANIFEST_KEYS
from harness.errors import ExportError
from harness.host.tools import sha256_file

NAMES = writer.Names("Debian", "12")


def make_vhdx(tmp_path: Path, data: bytes = b"vhdxfile" + b"\0" * 4096) -> Path:
    p = tmp_path / "disk.vhdx"
    p.write_bytes(data)
    return p


def manifest(checksum: str) -> dict:
    return writer.manifest(NAMES, checksum=checksum, description="d", maintainer="m",
                              maintainer_email="m@x", source_url="u",
                              extra={"disk_only": True})


def test_names_follow_vmgenie():
    assert NAMES.archive == "GMI-Debian-12.zip"
    assert NAMES.vm_name == "GMI Debian 12"
    assert NAMES.vhdx_entry == "Virtual Hard Disks/GMI Debian 12.vhdx"


def test_manifest_has_vmgenie_keys_first_and_exactly():
    m = manifest("ab" * 32)
    assert tuple(m)[: len(MANIFEST_KEYS)] == MANIFEST_KEYS
    assert m["gmi_version"] == "1.0" and m["version"] == "12" and m["hyperv_generation"] == 2
    assert m["vm_name"] == "GMI Debian 12"
    assert m["created"].endswith("Z") and len(m["created"]) == 20


def test_extra_keys_may_not_shadow_vmgenies():
    with pytest.raises(ValueError, match="clash"):
        writer.manifest(NAMES, checksum="x", description="d", maintainer="m",
                           maintainer_email="e", source_url="u", extra={"os": "x"})


def test_archive_layout_and_checksums(tmp_path: Path):
    vhdx = make_vhdx(tmp_path)
    digest = sha256_file(vhdx)
    out = tmp_path / "out"
    archive = writer.write_archive(out, NAMES, vhdx, manifest(digest), "# readme\n",
                                      {"k": "v"}, force=False)
    assert archive == out / "GMI-Debian-12.zip"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert names == {"GMI-Debian-12.yml", "GMI-Debian-12.md", "gmi-build-record.yml",
                         "Virtual Machines/", "Snapshots/",
                         "Virtual Hard Disks/GMI Debian 12.vhdx"}
        m = yaml.safe_load(zf.read("GMI-Debian-12.yml"))
        assert m["checksum_sha256"] == hashlib.sha256(
            zf.read("Virtual Hard Disks/GMI Debian 12.vhdx")).hexdigest()
    side = (out / "GMI-Debian-12.zip.sha256").read_text().split()
    assert side == [hashlib.sha256(archive.read_bytes()).hexdigest(), "GMI-Debian-12.zip"]
    assert not list(out.glob(".*part"))


def test_existing_archive_kept_without_force(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "GMI-Debian-12.zip"
    existing.write_bytes(b"the good archive")
    vhdx = make_vhdx(tmp_path)
    with pytest.raises(ExportError, match="already exists; pass --force"):
        writer.write_archive(out, NAMES, vhdx, manifest("x"), "", {}, force=False)
    assert existing.read_bytes() == b"the good archive"
    writer.write_archive(out, NAMES, vhdx, manifest("x"), "", {}, force=True)
    assert zipfile.is_zipfile(existing)


def test_failed_write_leaves_no_partial_and_keeps_old(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "GMI-Debian-12.zip"
    existing.write_bytes(b"the good archive")
    with pytest.raises(FileNotFoundError):
        writer.write_archive(out, NAMES, tmp_path / "missing.vhdx", manifest("x"), "", {},
                                force=True)
    assert existing.read_bytes() == b"the good archive"
    assert sorted(p.name for p in out.iterdir()) == ["GMI-Debian-12.zip"]


def test_readme_says_disk_only(tmp_path: Path):
    text = writer.readme(NAMES, {"versions": {"kernel": "6.1.0-x"}}, disk_only=True)
    assert "Disk-only archive" in text and "6.1.0-x" in text
    assert "Disk-only" not in writer.readme(NAMES, {}, disk_only=False)


def test_readme_names_the_configuration_version_the_import_check_and_the_clone_shape():
    """A Hyper-V export's README says which hosts import it (its configuration version),
    that Compare-VM found nothing, and the VM the checklist ran on."""
    from harness.backends.base import CloneShape
    from harness.settings import resolve

    record = {"hyperv_config_version": {"vm": "8.0", "host_default": "10.0",
                                        "imports_on": "Windows Server 2016, 2019, 2022 and 2025"},
              "hyperv_import_check": {"incompatibilities": []},
              "clone_shape": CloneShape.of(resolve({}, env={})).record()}
    text = writer.readme(NAMES, record, disk_only=False)
    assert ("- Hyper-V configuration version: 8.0: imports on Windows Server 2016, 2019, 2022 and "
            "2025 (the build host's default was 10.0)") in text
    assert "Compare-VM -Copy on the exported .vmcx found no incompatibility" in text
    assert ("Checked on a clone of 1 vCPU, 512 MB static memory, Secure Boot on "
            "(MicrosoftUEFICertificateAuthority): vmgenie's VM by default") in text
    bare = writer.readme(NAMES, {}, disk_only=True)
    assert "configuration version" not in bare and "Compare-VM" not in bare
    record["hyperv_import_check"] = {"incompatibilities": [{"MessageId": 1, "Message": "x"}]}
    assert "Compare-VM" not in writer.readme(NAMES, record, disk_only=False)
