"""The release evidence (harness/evidence): SBOMs judged by each format's own validator,
versions ordered as dpkg and rpm order them, vulnerability reports from data made here in
Debian's security tracker format and OSV's, the --vuln-gate refusing an export, signed
SHA256SUMS (OpenPGP and SSH keys made here) and the validator refusing what does not
verify, the provenance read back by the in-toto attestation framework's own bindings.
The real builds' evidence: docs/evidence.md."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import distro, settings
from harness.archive.export import export
from harness.build import Build
from harness.checklist import REQUIRED_ITEMS
from harness.errors import ExportError
from harness.evidence import inventory, licenses, provenance, sbom, signing, versions, vulns
from harness.evidence import release as evidence
from harness.host.tools import sha256_file
from tests import evidence_data
from tests.gpg_keys import make_key
from tests.host_tools import why_missing

D12 = distro.load("debian-12")
BUILT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IMAGE = sbom.Image("GMI Debian 12", "Debian GNU/Linux 12 (bookworm)", "12",
                   "Virtual Hard Disks/GMI Debian 12.vhdx", "ab" * 32, BUILT)


def debian_inventory(tmp_path: Path) -> inventory.Inventory:
    rec = evidence_data.dpkg_record(tmp_path / inventory.APT_RECORD)
    return inventory.read(rec, "apt", "debian", "12", "bookworm", evidence_data.KERNEL)


def spdx_problems(path: Path) -> list[str]:
    """spdx-tools' own parser and validator on a written file."""
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)), "SPDX-2.3")]


# ------------------------------------------------------------------------------ SBOMs


def test_a_debian_images_sboms_pass_their_validators_and_list_what_dpkg_has(tmp_path: Path):
    inv = debian_inventory(tmp_path)
    spdx = sbom.write_spdx(inv, IMAGE, tmp_path / "x.spdx.json")
    cdx = sbom.write_cyclonedx(inv, IMAGE, tmp_path / "x.cdx.json")
    assert spdx_problems(spdx) == []
    assert sbom.validate_cyclonedx(cdx.read_text()) is None

    installed = sorted(f"{n}:{a}" for n, _, a, _, _ in evidence_data.PACKAGES)
    assert sbom.listed(spdx) == installed == sbom.listed(cdx)  # config-files only: not there
    doc = json.loads(spdx.read_text())
    by_name = {p["name"]: p for p in doc["packages"]}
    image = by_name["GMI Debian 12"]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    assert {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image["SPDXID"]} in doc["relationships"]
    contained = {r["relatedSpdxElement"] for r in doc["relationships"]
                 if r["spdxElementId"] == image["SPDXID"] and r["relationshipType"] == "CONTAINS"}
    assert len(contained) == len(installed) + 1  # and the kernel
    assert by_name["Linux kernel"]["versionInfo"] == evidence_data.KERNEL
    libssl = by_name["libssl3"]
    assert libssl["externalRefs"][0]["referenceLocator"] == (
        "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
        "&upstream=openssl%403.0.15-1~deb12u1")
    assert libssl["licenseDeclared"] == "Apache-2.0 AND GPL-2.0-or-later"  # (debian/* is GPL-2+)
    assert "openssl 3.0.15-1~deb12u1" in libssl["sourceInfo"]
    assert by_name["bash"]["licenseDeclared"] == "GPL-2.0-or-later AND GPL-3.0-or-later"
    # a copyright file that is not machine-readable, or none at all: NOASSERTION
    assert by_name["base-files"]["licenseDeclared"] == "NOASSERTION"
    assert by_name["nolicence"]["licenseDeclared"] == "NOASSERTION"
    # a licence SPDX does not know is a LicenseRef the document defines
    assert "LicenseRef-public-domain" in by_name["tzdata"]["licenseDeclared"]
    assert "LicenseRef-public-domain" in {e["licenseId"] for e in doc["hasExtractedLicensingInfos"]}

    bom = json.loads(cdx.read_text())
    assert bom["specVersion"] == "1.5"
    top = bom["metadata"]["component"]
    assert (top["name"], top["hashes"]) == ("GMI Debian 12", [{"alg": "SHA-256", "content": "ab" * 32}])
    kernel_pkg = next(c for c in bom["components"] if c["name"].startswith("linux-image-"))
    assert kernel_pkg["components"][0]["version"] == evidence_data.KERNEL
    bash = next(c for c in bom["components"] if c["name"] == "bash")
    props = {p["name"]: p["value"] for p in bash["properties"]}
    assert (props["gmi-harness:source-package"], props["gmi-harness:source-version"]) == ("bash", "5.2.15-2")


def test_each_validator_refuses_a_broken_document(tmp_path: Path):
    """The validators can fail: the tests above prove something."""
    inv = debian_inventory(tmp_path)
    spdx = sbom.write_spdx(inv, IMAGE, tmp_path / "x.spdx.json")
    doc = json.loads(spdx.read_text())
    doc["packages"][1]["SPDXID"] = "not-an-spdx-id"
    spdx.write_text(json.dumps(doc))
    assert any("SPDXRef" in m for m in spdx_problems(spdx))
    bom = json.loads(sbom.cyclonedx_json(inv, IMAGE))
    bom["components"][0]["type"] = "appliance"
    assert sbom.validate_cyclonedx(json.dumps(bom)) is not None
    with pytest.raises(sbom.SbomError, match=r"not valid SPDX 2\.3"):
        sbom.write_spdx(debian_inventory(tmp_path), dataclasses_replace(IMAGE, sha256="zz"),
                        tmp_path / "y.spdx.json")


def dataclasses_replace(image: sbom.Image, **changes: str) -> sbom.Image:
    import dataclasses

    return dataclasses.replace(image, **changes)


@pytest.mark.parametrize(("recorded", "os_id", "version", "kernel", "licence_of_bash"), [
    (evidence_data.FEDORA_42, "fedora", "42", "6.14.0-63.fc42.x86_64", "GPL-3.0-or-later"),
    # an older rpm License tag is no SPDX expression: NOASSERTION, the tag kept as the source
    (evidence_data.ROCKY_9, "rocky", "9.4", "5.14.0-427.13.1.el9_4.x86_64", "NOASSERTION"),
])
def test_rpm_families_from_recorded_rpm_qa(tmp_path: Path, recorded: str, os_id: str, version: str,
                                           kernel: str, licence_of_bash: str):
    rec = tmp_path / inventory.RPM_RECORD
    rec.write_text(recorded)
    inv = inventory.read(rec, "dnf", os_id, version, "", kernel)
    spdx = sbom.write_spdx(inv, IMAGE, tmp_path / "x.spdx.json")
    cdx = sbom.write_cyclonedx(inv, IMAGE, tmp_path / "x.cdx.json")
    assert spdx_problems(spdx) == [] and sbom.validate_cyclonedx(cdx.read_text()) is None
    assert len(sbom.listed(spdx)) == len(recorded.splitlines()) == len(sbom.listed(cdx))
    by_name = {p["name"]: p for p in json.loads(spdx.read_text())["packages"]}
    assert by_name["bash"]["licenseDeclared"] == licence_of_bash
    ssl = by_name["openssl-libs"]["externalRefs"][0]["referenceLocator"]
    assert ssl.startswith(f"pkg:rpm/{os_id}/openssl-libs@3.")
    assert "epoch=1" in ssl and "upstream=openssl%403." in ssl
    assert inv.kernel_package() is not None and inv.kernel_package().name == "kernel-core"  # type: ignore[union-attr]


def test_the_same_image_gives_the_same_sboms(tmp_path: Path):
    inv = debian_inventory(tmp_path)
    a = sbom.write_spdx(inv, IMAGE, tmp_path / "a.spdx.json").read_bytes()
    b = sbom.write_spdx(debian_inventory(tmp_path), IMAGE, tmp_path / "b.spdx.json").read_bytes()
    assert a == b
    assert sbom.cyclonedx_json(inv, IMAGE) == sbom.cyclonedx_json(inv, IMAGE)


def test_debian_short_names_as_spdx():
    assert licenses.synopsis_expression("GPL-2+ or Artistic") == "GPL-2.0-or-later OR Artistic-1.0"
    assert licenses.synopsis_expression("Expat") == "MIT"
    assert licenses.synopsis_expression("LGPL-2.1") == "LGPL-2.1-only"
    assert licenses.synopsis_expression("BSD-3-clause and GPL-3+") == "BSD-3-Clause AND GPL-3.0-or-later"
    assert licenses.synopsis_expression("GPL-2+ with OpenSSL exception") == \
        "LicenseRef-GPL-2-with-OpenSSL-exception"
    assert licenses.from_rpm_tag("GPLv2+", "t").expression == licenses.NOASSERTION
    assert licenses.from_rpm_tag("MIT OR Apache-2.0", "t").expression == "MIT OR Apache-2.0"


# --------------------------------------------------------------------------- versions


DPKG_PAIRS = [("1.0", "1.0-1"), ("1:1.0", "2.0"), ("1.0~rc1", "1.0"), ("1.0+b1", "1.0"),
              ("3.0.15-1~deb12u1", "3.0.15-1~deb12u2"), ("2.36-9+deb12u9", "2.36-9+deb12u10"),
              ("1.0a", "1.0+"), ("6.1.119-1", "6.1.119-1"), ("0:5", "5")]


@pytest.mark.parametrize(("a", "b"), DPKG_PAIRS)
def test_dpkg_order_matches_dpkg(a: str, b: str):
    if reason := why_missing("dpkg"):
        pytest.skip(reason)
    want = next(r for r, op in ((-1, "lt"), (0, "eq"), (1, "gt"))
                if subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0)
    assert versions.dpkg_compare(a, b) == want


# (rpm's own test suite, tests/rpmvercmp.at)
RPM_CASES = [("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0.1", "2.0.1a", -1), ("5.5p1", "5.5p10", -1),
             ("10xyz", "10.1xyz", -1), ("xyz10", "xyz10.1", -1), ("1.0aa", "1.0a", 1),
             ("20101122", "20101121", 1), ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1),
             ("1.0^", "1.0", 1), ("1.0^git1", "1.0.1", -1), ("1.0^git1", "1.0^git2", -1),
             ("1.0~rc1^git1", "1.0~rc1", 1), ("a", "1", -1), ("1.0", "1.0.0", -1)]


@pytest.mark.parametrize(("a", "b", "want"), RPM_CASES)
def test_rpmvercmp_as_rpms_test_suite(a: str, b: str, want: int):
    assert versions.rpmvercmp(a, b) == want
    assert versions.rpmvercmp(b, a) == -want


def test_rpm_epoch_and_release():
    assert versions.rpm_compare("1:3.0.7-27.el9", "3.0.8-1.el9") == 1
    assert versions.rpm_compare("3.0.7-27.el9", "3.0.7-28.el9_4") == -1


# --------------------------------------------------------------------- vulnerabilities


def tracker_data() -> dict:
    """A few entries in the security tracker's JSON format, for the packages above."""
    def rel(status: str, fixed: str = "", urgency: str = "not yet assigned", **repos: str) -> dict:
        entry: dict = {"status": status, "urgency": urgency, "repositories": repos}
        if fixed:
            entry["fixed_version"] = fixed
        return {"releases": {"bookworm": entry}, "description": "made in the test"}

    return {
        "openssl": {
            "CVE-2099-0001": rel("resolved", "3.0.15-1~deb12u2", "high", bookworm="3.0.15-1~deb12u1",
                                 **{"bookworm-security": "3.0.15-1~deb12u2"}),
            "CVE-2099-0002": rel("resolved", "3.0.11-1", "medium", bookworm="3.0.15-1~deb12u1"),
            "CVE-2099-0003": rel("open", urgency="low", bookworm="3.0.15-1~deb12u1"),
        },
        "glibc": {
            "CVE-2099-0004": rel("resolved", "2.36-9+deb12u10", "medium", bookworm="2.36-9+deb12u9"),
            "CVE-2099-0005": rel("resolved", "0", "unimportant"),
        },
        "bash": {"CVE-2099-0006": {"releases": {"trixie": {"status": "open"}}}},
        # the signed kernel's package is linux-signed-amd64's; its CVEs are linux's
        "linux": {"CVE-2099-0007": rel("resolved", "6.1.123-1", "medium", bookworm="6.1.123-1")},
    }


def installed(tmp_path: Path) -> list[vulns.Installed]:
    cdx = sbom.write_cyclonedx(debian_inventory(tmp_path), IMAGE, tmp_path / "x.cdx.json")
    return vulns.installed_from_sbom(sbom.components(cdx))


def test_security_tracker_data_against_the_sbom(tmp_path: Path):
    data = json.dumps(tracker_data()).encode()
    report = vulns.scan("tracker.json", installed(tmp_path), family="apt", os_id="debian",
                        os_version="12", codename="bookworm", data=data)
    rows = {f.id: f for f in report.findings}
    assert sorted(rows) == ["CVE-2099-0001", "CVE-2099-0003", "CVE-2099-0004", "CVE-2099-0007"]
    kernel = rows["CVE-2099-0007"]
    assert (kernel.package, kernel.installed, kernel.fix_in_archive) == ("linux", "6.1.119-1", True)
    first = rows["CVE-2099-0001"]
    assert (first.package, first.binaries, first.installed, first.fixed) == (
        "openssl", ("libssl3", "openssl"), "3.0.15-1~deb12u1", "3.0.15-1~deb12u2")
    assert first.fix_in_archive and first.high
    assert not rows["CVE-2099-0003"].fix_in_archive and rows["CVE-2099-0003"].fixed == ""
    assert not rows["CVE-2099-0004"].fix_in_archive  # no suite carries the fixed version yet
    assert [f.id for f in report.blocking("fixable")] == ["CVE-2099-0007", "CVE-2099-0001"]
    assert [f.id for f in report.blocking("high")] == ["CVE-2099-0001"]
    assert report.blocking("off") == []
    # gzip, as the tracker serves it compressed
    again = vulns.scan("t.json.gz", installed(tmp_path), family="apt", os_id="debian", os_version="12",
                       codename="bookworm", data=gzip.compress(data))
    assert [f.id for f in again.findings] == [f.id for f in report.findings]


def test_osv_records_for_an_rpm_family(tmp_path: Path):
    rec = tmp_path / inventory.RPM_RECORD
    rec.write_text(evidence_data.ROCKY_9)
    inv = inventory.read(rec, "dnf", "rocky", "9.4", "", "")
    packages = vulns.installed_from_sbom(sbom.components(
        sbom.write_cyclonedx(inv, IMAGE, tmp_path / "r.cdx.json")))

    def record(rid: str, ecosystem: str, name: str, fixed: str, severity: str) -> dict:
        return {"id": rid, "aliases": [rid.replace("RLSA", "CVE")], "summary": "made in the test",
                "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                              "ranges": [{"type": "ECOSYSTEM",
                                          "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                              "ecosystem_specific": {"severity": severity}}]}

    records = [record("RLSA-2099-1", "Rocky Linux:9", "openssl-libs", "1:3.0.7-28.el9_4", "Important"),
               record("RLSA-2099-2", "Rocky Linux:9", "openssl-libs", "1:3.0.7-20.el9", "Moderate"),
               record("RLSA-2099-3", "Rocky Linux:8", "bash", "0:9.0-1.el8", "Low"),
               record("RLSA-2099-4", "Rocky Linux:9", "openssl", "1:3.0.7-28.el9_4", "Low")]  # by source
    report = vulns.scan("osv.json", packages, family="dnf", os_id="rocky", os_version="9.4", codename="",
                        data=json.dumps(records).encode())
    assert report.release == "Rocky Linux:9"
    assert [(f.id, f.package, f.fixed, f.high) for f in report.findings] == [
        ("CVE-2099-4", "openssl", "1:3.0.7-28.el9_4", False),
        ("CVE-2099-1", "openssl-libs", "1:3.0.7-28.el9_4", True)]
    assert all(f.fix_in_archive for f in report.findings)


def test_vuln_db_is_read_from_a_url(tmp_path: Path):
    from tests.http_server import serving

    with serving({"/tracker.json": json.dumps(tracker_data()).encode()}) as server:
        report = vulns.scan(f"{server.url}/tracker.json", installed(tmp_path), family="apt", os_id="debian",
                            os_version="12", codename="bookworm")
    assert len(report.findings) == 4
    with pytest.raises(vulns.VulnDbError, match="cannot be read"):
        vulns.read_bytes("http://127.0.0.1:9/none.json", timeout=5)


def test_vuln_settings_are_checked_at_start(tmp_path: Path):
    with pytest.raises(Exception, match="no such file"):
        settings.resolve({"vuln_db": str(tmp_path / "missing.json")}, env={})
    with pytest.raises(Exception, match="needs the data"):
        settings.resolve({"vuln_gate": "fixable"}, env={})


# ------------------------------------------------------------------ export and gate


class NoBackend:
    name = "qemu"


CHECKS = [f"checks/test_checklist.py::test_{i}[debian-12]" for i in range(len(REQUIRED_ITEMS))]
LABELS = dict(zip(CHECKS, REQUIRED_ITEMS, strict=True))


def sealed_build(tmp_path: Path, **cli: str) -> Build:
    """A build as the seal leaves it (its package database recorded, a VHDX), without a VM."""
    (tmp_path / "tracker.json").write_text(json.dumps(tracker_data()))
    s = settings.resolve({"out": str(tmp_path / "out"), **cli}, env={})
    b = Build(D12, s, NoBackend(), "20261201-120000-1", tmp_path / "work", tmp_path / "logs")  # type: ignore[arg-type]
    folder = inventory.evidence_dir(b)
    folder.mkdir(parents=True)
    evidence_data.dpkg_record(folder / inventory.APT_RECORD)
    b.vhdx = tmp_path / "work" / "GMI Debian 12.vhdx"
    b.vhdx.write_bytes(b"vhdx" * 1000)
    b.record.update(versions={"os": "Debian GNU/Linux 12 (bookworm)", "kernel": evidence_data.KERNEL},
                    repository_metadata=[{"name": "deb.debian.org_debian_dists_bookworm_InRelease",
                                          "uri": "http://deb.debian.org/debian/dists/bookworm/InRelease",
                                          "sha256": "1" * 64}])
    b.logdir.mkdir(parents=True)
    (b.logdir / "clone-seed-user-data").write_text("#cloud-config\n")
    evidence.after_seal(b)
    return b


def test_vuln_gate_blocks_the_export(tmp_path: Path):
    b = sealed_build(tmp_path, vuln_db=str(tmp_path / "tracker.json"), vuln_gate="fixable")
    assert (b.logdir / vulns.REPORT_FILE).is_file()
    with pytest.raises(ExportError, match=r"export refused by --vuln-gate=fixable: 2 known vulnerabilities "
                                          r"with a fix in the archive: CVE-2099-0007 \(linux\), "
                                          r"CVE-2099-0001 \(openssl\)"):
        export(b, CHECKS, dict.fromkeys(CHECKS, "passed"), LABELS)
    assert not (tmp_path / "out").exists()  # nothing written


def test_export_writes_the_evidence_in_and_beside_the_archive(tmp_path: Path):
    import zipfile

    b = sealed_build(tmp_path, vuln_db=str(tmp_path / "tracker.json"))  # report only
    assert b.record[evidence.VULN_KEY]["counts"] == {"total": 4, "fixable": 2, "high": 1}
    archive = export(b, CHECKS, dict.fromkeys(CHECKS, "passed"), LABELS)
    out = archive.parent
    with zipfile.ZipFile(archive) as zf:
        assert {"GMI-Debian-12.spdx.json", "GMI-Debian-12.cdx.json"} <= set(zf.namelist())
    files = sorted(p.name for p in out.iterdir())
    assert files == ["GMI-Debian-12.SHA256SUMS", "GMI-Debian-12.cdx.json", "GMI-Debian-12.intoto.jsonl",
                     "GMI-Debian-12.spdx.json", "GMI-Debian-12.zip", "GMI-Debian-12.zip.sha256"]
    listing = (out / "GMI-Debian-12.SHA256SUMS").read_text()
    assert subprocess.run(["sha256sum", "-c", "--strict", "-"], input=listing.encode(), cwd=out,
                          capture_output=True).returncode == 0
    assert len(listing.splitlines()) == 4  # archive, both SBOMs, provenance
    assert spdx_problems(out / "GMI-Debian-12.spdx.json") == []


# ------------------------------------------------------------------------ provenance


def test_provenance_parses_with_the_in_toto_attestation_bindings(tmp_path: Path):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    b = sealed_build(tmp_path)
    archive = export(b, CHECKS, dict.fromkeys(CHECKS, "passed"), LABELS)
    stmt, env = provenance.read(archive.with_name("GMI-Debian-12.intoto.jsonl"))
    assert env.payload_type == "application/vnd.in-toto+json" and env.signatures == {}
    pb = json_format.ParseDict(stmt, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()  # in-toto's own rules for a Statement v1
    prov = json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance())  # SLSA v1's fields only
    assert pb.predicate_type == "https://slsa.dev/provenance/v1"
    assert [s.name for s in pb.subject] == ["GMI-Debian-12.zip", "Virtual Hard Disks/GMI Debian 12.vhdx"]
    assert pb.subject[0].digest["sha256"] == sha256_file(archive)
    assert pb.subject[1].digest["sha256"] == sha256_file(b.vhdx)  # type: ignore[arg-type]
    materials = {m.name: m for m in prov.build_definition.resolved_dependencies}
    assert set(materials) == {"distro debian-12",
                              "package repository deb.debian.org_debian_dists_bookworm_InRelease",
                              "seed (the harness's own) clone-seed-user-data"}
    assert materials["distro debian-12"].digest["sha256"] == sha256_file(D12.source)
    assert prov.run_details.builder.id == "urn:gmi-harness:builder:qemu"
    assert prov.run_details.builder.version["gmi-harness"]
    assert prov.build_definition.external_parameters["settings"]["backend"].startswith("qemu")


def test_provenance_masks_secrets():
    stmt = provenance.statement([("a.zip", "0" * 64)], builder_id="urn:x", revision="r", distro="d",
                                backend="hyperv", settings={"hyperv_password": "***"}, internal={},
                                materials=[], invocation="i", started="", finished="")
    external = stmt["predicate"]["buildDefinition"]["externalParameters"]
    assert external["settings"] == {"hyperv_password": "***"}
    s = settings.resolve({}, env={"GMI_HYPERV_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in "\n".join(s.describe())


# --------------------------------------------------------------------------- signing


def ssh_key(tmp_path: Path, name: str) -> Path:
    if reason := why_missing("ssh-keygen"):
        pytest.skip(reason)
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


@pytest.fixture
def gpg_keys(tmp_path: Path):
    keys = [make_key("builder"), make_key("someone-else")]
    files = []
    for k in keys:
        secret = tmp_path / f"{k.name}.sec.asc"
        secret.write_bytes(k.gpg("--armor", "--export-secret-keys", k.fingerprint))
        public = tmp_path / f"{k.name}.pub.asc"
        public.write_bytes(k.public())
        files.append((secret, public))
    yield files
    for k in keys:
        k.close()


def signed_archive(tmp_path: Path, key: str) -> Path:
    b = sealed_build(tmp_path, sign_key=key)
    return export(b, CHECKS, dict.fromkeys(CHECKS, "passed"), LABELS)


def untouched(archive: Path) -> tuple[str, int]:
    return sha256_file(archive), archive.stat().st_mtime_ns


@pytest.mark.parametrize("kind", ["ssh", "openpgp"])
def test_signed_archive_verifies_and_a_change_or_another_key_is_refused(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest):
    if kind == "ssh":
        sign, other = ssh_key(tmp_path, "builder"), ssh_key(tmp_path, "someone-else")
        public, other_public = Path(f"{sign}.pub"), Path(f"{other}.pub")
    else:
        (sign, public), (_, other_public) = request.getfixturevalue("gpg_keys")
    archive = signed_archive(tmp_path, str(sign))
    sig = archive.with_name("GMI-Debian-12.SHA256SUMS" + signing.SIG_SUFFIX[kind])
    assert sig.is_file()
    assert "verified" in signing.verify_archive(archive, str(public))
    # the provenance's envelope carries the same key's signature over DSSE's PAE
    _, env = provenance.read(archive.with_name("GMI-Debian-12.intoto.jsonl"))
    (_keyid, signature), = env.signatures.items()
    signing.verify_bytes(signing.verifying_key(str(public)), env.pae(), bytes.fromhex(signature.signature),
                         "provenance")

    before = untouched(archive)
    with pytest.raises(signing.SigningError, match=r"does not verify|not by the given key") as other_key:
        signing.verify_archive(archive, str(other_public))
    assert "\n" not in str(other_key.value)
    # a changed byte in the archive: the signature holds, the listing does not
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed = archive.with_name("changed")
    changed.write_bytes(bytes(data))
    os.replace(changed, archive)
    with pytest.raises(signing.SigningError, match="changed since it was signed"):
        signing.verify_archive(archive, str(public))
    # a changed byte in the signed listing: the signature fails
    sums = archive.with_name("GMI-Debian-12.SHA256SUMS")
    text = sums.read_text()
    sums.write_text(("0" if text[0] != "0" else "1") + text[1:])
    with pytest.raises(signing.SigningError):
        signing.verify_archive(archive, str(public))
    assert untouched(archive)[0] != before[0]  # (the one we changed on purpose)


def test_the_validator_refuses_an_archive_whose_signature_fails_in_one_line(tmp_path: Path):
    """``gmi --gmi X --verify-key K``: the signature first, exit status 4 (a usage error:
    refused at start), one line, the archive untouched; with the right key it goes on."""
    key, other = ssh_key(tmp_path, "builder"), ssh_key(tmp_path, "someone-else")
    archive = signed_archive(tmp_path, str(key))
    before = untouched(archive)
    env = {**os.environ, "GMI_SCRATCH": str(tmp_path / "scratch")}
    run = [sys.executable, "-m", "harness", f"--gmi={archive}", "--collect-only", "-q",
           "-p", "no:cacheprovider", f"--out={tmp_path / 'reports'}"]
    bad = subprocess.run([*run, f"--verify-key={other}.pub"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert bad.returncode == 4, bad.stderr
    errors = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "GMI-Debian-12.SHA256SUMS.sig" in errors[0], bad.stderr
    assert untouched(archive) == before
    good = subprocess.run([*run, f"--verify-key={key}.pub"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    assert "signature by builder.pub verified" in good.stderr
    assert untouched(archive) == before


def test_a_signing_key_that_cannot_sign_is_refused_at_start(tmp_path: Path):
    key = ssh_key(tmp_path, "builder")
    with pytest.raises(signing.SigningError, match="not an OpenSSH private key"):
        signing.signing_key(f"{key}.pub")
    with pytest.raises(signing.SigningError, match="not an OpenPGP key id"):
        signing.signing_key(str(tmp_path / "missing key"))
    garbage = tmp_path / "garbage"
    garbage.write_text("hello")
    with pytest.raises(signing.SigningError, match="neither an OpenPGP key nor an OpenSSH key"):
        signing.signing_key(str(garbage))


# --------------------------------------------------------------------- reproducibility


def disk(tmp_path: Path, name: str, files: dict[str, str], mtime: int = 1_700_000_000) -> Path:
    """A GPT disk with one ext4 partition holding ``files``, as a dynamic VHDX: made the
    way the build makes its disk (mkfs.ext4 -d at the partition's offset, sfdisk)."""
    if reason := why_missing("mkfs.ext4", "sfdisk", "qemu-img", "debugfs"):
        pytest.skip(reason)
    tree = tmp_path / f"{name}-tree"
    for rel, text in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (mtime, mtime))
    link = tree / "usr/bin/alias"  # a link's own time (rdump does not keep it: read back)
    link.symlink_to("tool")
    os.utime(link, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    raw = tmp_path / f"{name}.raw"
    subprocess.run(["truncate", "-s", "64M", str(raw)], check=True)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: gpt\nstart=2048, size=100000, "
                   "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", text=True, check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", "-d", str(tree), str(raw),
                    "48M"], check=True)
    vhdx = tmp_path / f"{name}.vhdx"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic",
                    str(raw), str(vhdx)], check=True)
    return vhdx


def test_repro_lists_every_difference_with_its_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from harness.evidence import repro

    same = {"usr/bin/tool": "binary", "etc/hostname": "localhost\n"}
    a = disk(tmp_path, "a", {**same, "etc/fstab": "UUID=aaaa / ext4\n", "var/old": "x"})
    b = disk(tmp_path, "b", {**same, "etc/fstab": "UUID=bbbb / ext4\n", "var/new": "x",
                             "usr/bin/tool": "binary"}, mtime=1_700_000_100)
    out = tmp_path / "repro.json"
    assert repro.main([str(a), str(b), "--json", str(out), "--scratch", str(tmp_path)]) == 1
    doc = json.loads(out.read_text())
    kinds = {(d["path"], d["kind"]): d["cause"] for d in doc["all"]}
    assert kinds[("etc/fstab", "content")].startswith("the root filesystem's UUID")
    assert kinds[("var/old", "only-in-a")] == repro.UNEXPLAINED
    assert kinds[("var/new", "only-in-b")] == repro.UNEXPLAINED
    # VHDX files carry no build record: no SOURCE_DATE_EPOCH known, so a later mtime is the
    # build's own time
    assert "without SOURCE_DATE_EPOCH" in kinds[("usr/bin/tool", "mtime")]
    assert ("etc/hostname", "content") not in kinds
    printed = capsys.readouterr().out
    assert "var/new" in printed and "differ" in printed
    assert not list(tmp_path.glob("gmi-repro-*"))  # the copied-out trees are gone
    # the same disk twice: nothing differs; a link keeps its own mtime in the copy
    keep = tmp_path / "kept"
    keep.mkdir()
    assert repro.main([str(a), str(a), "--scratch", str(keep), "--keep"]) == 0
    (copy,) = keep.glob("gmi-repro-*/a/root/usr/bin/alias")
    assert copy.is_symlink() and copy.lstat().st_mtime == 1_600_000_000


# ------------------------------------------------------------------ what the seal runs


def test_the_seals_package_script_reads_a_root_tree(tmp_path: Path):
    """inventory.APT_SCRIPT, run by bash on a root tree made here (the seal runs it in the
    build VM with ``cd /``): dpkg's status and every copyright file, a doc folder that is a
    link to another package's and a copyright file reached twice included."""
    root = tmp_path / "root"
    evidence_data.dpkg_record(tmp_path / "made.tar.gz")
    import tarfile

    with tarfile.open(tmp_path / "made.tar.gz") as tar:
        # (filter= from Python 3.11.4; Debian 12's is 3.11.2: the tar is the test's own)
        tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    # libssl3's doc folder is a link to openssl's, as multi-binary sources often do
    shutil.rmtree(root / "usr/share/doc/libssl3")
    (root / "usr/share/doc/libssl3").symlink_to("openssl")
    script = inventory.APT_SCRIPT.replace("cd /\n", f"cd {root}\n", 1)
    out = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], capture_output=True,
                         text=True, check=True).stdout
    recorded = tmp_path / inventory.APT_RECORD
    import base64

    recorded.write_bytes(base64.b64decode("".join(out.split())))
    inv = inventory.read(recorded, "apt", "debian", "12", "bookworm", evidence_data.KERNEL)
    licences = {p.name: p.licence.expression for p in inv.packages}
    assert licences["libssl3"] == licences["openssl"] == "Apache-2.0 AND GPL-2.0-or-later"
    assert licences["base-files"] == licenses.NOASSERTION
    assert len(inv.packages) == len(evidence_data.PACKAGES)


def test_the_seal_clamps_mtimes_only_with_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from harness.stages import s6_seal

    b = Build(D12, settings.resolve({}, env={}), NoBackend(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert "touch -h" not in s6_seal.seal_script(b)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")
    script = s6_seal.seal_script(b)
    clamp = "find / -xdev -newermt @1764547200 -exec touch -h -d @1764547200 {} + || true"
    assert clamp in script
    assert script.index(clamp) < script.index("\nsync\n") < script.rindex("systemctl poweroff")


def test_the_signoff_page_shows_the_vulnerabilities_and_links_the_evidence(tmp_path: Path):
    """The page from a run's signoff.json (the xdist controller's path, and --signoff-from's):
    the report's rows, the gate's verdict, links to the files beside the archive."""
    from html.parser import HTMLParser

    from harness.report import signoff

    b = sealed_build(tmp_path, vuln_db=str(tmp_path / "tracker.json"), sign_key=str(ssh_key(tmp_path, "k")))
    archive = export(b, CHECKS, dict.fromkeys(CHECKS, "passed"), LABELS)
    run = tmp_path / "out" / "runs" / "r1"
    run.mkdir(parents=True)
    subject = {"subject": "debian-12", "title": "GMI Debian 12", "archive": str(archive),
               "vulnerabilities": b.record[evidence.VULN_KEY], "evidence": b.record[evidence.EVIDENCE_KEY]}
    signoff.write_data(run, signoff.run_data({"id": "r1"}, [subject], []))
    page = signoff.render(signoff.collect([run]), run / "signoff.html")

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cves: list[str] = []
            self.links: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "tr" and a.get("data-cve"):
                self.cves.append(str(a["data-cve"]))
            if tag == "a" and a.get("data-evidence"):
                self.links[str(a["data-evidence"])] = str(a["href"])

    rows = Rows()
    rows.feed(page.read_text())
    assert sorted(rows.cves) == ["CVE-2099-0001", "CVE-2099-0003", "CVE-2099-0004", "CVE-2099-0007"]
    assert set(rows.links) == {"spdx", "cyclonedx", "provenance", "sums", "signature"}
    for href in rows.links.values():
        assert (page.parent / href).resolve().is_file()
    assert "report only (--vuln-gate=off)" in page.read_text()
    # a CI artifact's signoff.json is not trusted: no link outside the archive's folder
    doc = json.loads((run / "signoff.json").read_text())
    doc["subjects"][0]["evidence"]["spdx"] = "../../../etc/passwd"
    (run / "signoff.json").write_text(json.dumps(doc))
    (subject_again,) = signoff.collect([run])
    assert subject_again.evidence_link("spdx") == ""


def test_an_openpgp_key_id_from_the_users_keyring_signs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key = make_key("keyring-user")
    try:
        monkeypatch.setenv("GNUPGHOME", key.home)  # (the user's own keyring)
        signer = signing.signing_key(key.fingerprint)
        assert signer.in_keyring and signer.keyid == key.fingerprint.upper()
        listing = tmp_path / "SUMS"
        listing.write_text("0" * 64 + "  a.zip\n")
        sig = signing.sign_file(signer, listing)
        public = tmp_path / "pub.asc"
        public.write_bytes(key.public())
        signing.verify_bytes(signing.verifying_key(str(public)), listing.read_bytes(), sig.read_bytes(), "t")
        with pytest.raises(signing.SigningError, match="no such secret key"):
            signing.signing_key("0123456789ABCDEF")
    finally:
        key.close()
