"""The release evidence in a build's life: what the seal records and writes, what an
existing archive brings, what the export puts in and beside the archive.

- at the seal (:func:`record_inventory` while the build VM runs, :func:`after_seal` once
  the VHDX exists): the image's package database, both SBOMs, the vulnerability report;
- ``--gmi`` (:func:`from_archive`): the SBOMs an archive holds, and its vulnerability
  report against today's data;
- the export (:func:`gate`, :func:`archive_members`, :func:`beside_archive`): the
  ``--vuln-gate`` rule, the SBOMs inside the zip, and beside it their copies, the
  provenance, ``SHA256SUMS`` and its signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from harness import git_revision
from harness.errors import ExportError
from harness.evidence import inventory, provenance, sbom, signing, vulns
from harness.host.tools import sha256_file

if TYPE_CHECKING:
    from harness.build import Build

# Build-record keys (a leading "_" keeps them out of the archive's record: the report is
# about today's data, not about the image).
SBOM_KEY: Final = "sbom"
VULN_KEY: Final = "_vulnerabilities"
EVIDENCE_KEY: Final = "evidence_files"
MAX_SBOM_BYTES = 64 << 20


def names(b: Build) -> dict[str, str]:
    """The evidence files' names, beside the archive and (the SBOMs) inside it."""
    stem = b.distro.vmgenie.stem
    return {"spdx": stem + sbom.SPDX_SUFFIX, "cyclonedx": stem + sbom.CYCLONEDX_SUFFIX,
            "provenance": stem + provenance.SUFFIX, "sums": stem + signing.SUMS_SUFFIX}


def source_date_epoch() -> str:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org) when set to a time, else ""."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return epoch if epoch.isdigit() else ""


def clamp_mtimes_script() -> list[str]:
    """With ``SOURCE_DATE_EPOCH``: the seal's last touch of the root filesystem, every
    file written after that time set back to it (as mkosi and other reproducible image
    builders do), so two builds from the same mirror state differ in fewer files. Best
    effort: a file that vanishes meanwhile fails no seal (the repro command shows what is
    left)."""
    epoch = source_date_epoch()
    return [f"find / -xdev -newermt @{epoch} -exec touch -h -d @{epoch} {{}} + || true"] if epoch else []


def source_date(default: datetime | None = None) -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else ``default`` or now."""
    epoch = source_date_epoch()
    return datetime.fromtimestamp(int(epoch), UTC) if epoch else default or datetime.now(UTC)


# ----------------------------------------------------------------------- at start


def check_at_start(settings: Any) -> list[str]:
    """Before anything is built or read: ``--sign-key`` can sign, and with
    ``--verify-key`` each ``--gmi`` archive's signed SHA256SUMS verifies and lists it
    unchanged. Returns what was verified; a failure raises a one-line error."""
    if settings.sign_key:
        signing_key(settings.sign_key)
    if not settings.verify_key:
        return []
    return [signing.verify_archive(Path(a), settings.verify_key) for a in settings.gmi]


# ----------------------------------------------------------------------- the seal


def record_inventory(b: Build) -> None:
    """In the running build VM, before it is sealed: its package database."""
    inventory.record(b)
    if source_date_epoch():
        b.record["source_date_epoch"] = int(source_date_epoch())


def after_seal(b: Build) -> None:
    """Once the VHDX exists: both SBOMs from the recorded package database (each checked
    by its format's validator as it is written), then the vulnerability report."""
    assert b.vhdx is not None
    inv = inventory.load(b)
    folder = inventory.evidence_dir(b)
    n = names(b)
    vhdx_sha256 = sha256_file(b.vhdx)
    image = sbom.Image(b.distro.vmgenie.vm_name, str(b.record.get("versions", {}).get("os", "")),
                       b.distro.os_release.version_id, b.distro.vmgenie.vhdx_entry,
                       vhdx_sha256, source_date())
    sbom.write_spdx(inv, image, folder / n["spdx"])
    sbom.write_cyclonedx(inv, image, folder / n["cyclonedx"])
    b.record[SBOM_KEY] = {
        "packages": len(inv.packages), "kernel": inv.kernel, "formats": ["SPDX-2.3", "CycloneDX-1.5"],
        "licences_noassertion": sum(p.licence.expression == "NOASSERTION" for p in inv.packages),
        "files": [n["spdx"], n["cyclonedx"]], "vhdx_sha256": vhdx_sha256}
    scan(b)


def scan(b: Build) -> None:
    """The vulnerability report of the SBOM against ``--vuln-db`` (none without it), in
    the build's logs (linked from the sign-off page) and its record."""
    s = b.settings
    cdx = inventory.evidence_dir(b) / names(b)["cyclonedx"]
    if not s.vuln_db:
        b.record[VULN_KEY] = {"none": "not checked: no --vuln-db given", "gate": s.vuln_gate}
        return
    if not cdx.is_file():
        b.record[VULN_KEY] = {"none": "not checked: the archive holds no CycloneDX SBOM",
                              "gate": s.vuln_gate}
        return
    d = b.distro
    with b.step("seal: known vulnerabilities" if not b.archive else "import_archive: known vulnerabilities"):
        report = vulns.scan(s.vuln_db, vulns.installed_from_sbom(sbom.components(cdx)),
                            family=d.family, os_id=d.os_release.id, os_version=d.os_release.version_id,
                            codename=d.os_release.codename, gate=s.vuln_gate)
        vulns.write(report, b.logdir / vulns.REPORT_FILE)
    b.record[VULN_KEY] = report.to_dict()
    b.log.info("known vulnerabilities: %d (%d with a fix in the archive, %d high); %s",
               len(report.findings), len(report.fixable), len(report.high), report.verdict())


# ----------------------------------------------------------------------- --gmi


def from_archive(b: Build, read: Callable[[str, int], str | None]) -> None:
    """An existing archive's SBOMs into the evidence folder (for the checks), then its
    vulnerability report against ``--vuln-db``. ``read(entry, limit)``: an entry's text
    as the archive reader reads it (None when the archive has no such entry)."""
    folder = inventory.evidence_dir(b)
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for kind, name in names(b).items():
        if kind in ("spdx", "cyclonedx") and (text := read(name, MAX_SBOM_BYTES)) is not None:
            (folder / name).write_text(text)
            found.append(name)
    if found:
        b.record[SBOM_KEY] = {"files": found, "from_archive": True}
    scan(b)


# ----------------------------------------------------------------------- the export


def gate(b: Build) -> None:
    """``--vuln-gate``: refuse the export when the report meets the rule."""
    rule = b.settings.vuln_gate
    report = b.record.get(VULN_KEY) or {}
    if rule != "off" and report.get("blocked"):
        raise ExportError(f"export refused by {report.get('verdict', rule)}")


def signing_key(value: str) -> signing.Key | None:
    """The ``--sign-key`` (checked), or None when none is given."""
    return signing.signing_key(value) if value else None


def archive_members(b: Build) -> list[tuple[Path, str]]:
    """(file, zip entry) for the evidence that goes inside the archive: both SBOMs."""
    folder = inventory.evidence_dir(b)
    n = names(b)
    members = [(folder / n[k], n[k]) for k in ("spdx", "cyclonedx")]
    missing = [e for p, e in members if not p.is_file()]
    if missing:
        raise ExportError(f"the SBOMs were not written at the seal ({', '.join(missing)} missing): "
                          "the seal stage did not finish")
    return members


def _materials(b: Build) -> list[provenance.Material]:
    found = [provenance.file_material(f"distro {b.distro.name}", b.distro.source)]
    for item in b.record.get("repository_metadata", []):
        found.append(provenance.Material(f"package repository {item['name']}", item["uri"],
                                         item["sha256"]))
    iso = b.record.get("install_iso") or {}
    if b.record.get("install_iso_sha256") or iso.get("sha256"):
        found.append(provenance.Material(
            f"install ISO {iso.get('file', '')}".strip(), str(iso.get("url") or iso.get("file") or ""),
            str(b.record.get("install_iso_sha256") or iso.get("sha256"))))
    template = b.record.get("seed_template")
    seed_files = sorted(Path(template).rglob("*")) if template else sorted(
        b.logdir.glob("clone-seed-*"))
    for path in (p for p in seed_files if p.is_file()):
        what = "seed template" if template else "seed (the harness's own)"
        found.append(provenance.file_material(f"{what} {path.name}", path))
    return found


def beside_archive(b: Build, archive: Path, key: signing.Key | None) -> dict[str, str]:
    """Beside the written archive: the SBOMs' copies, the provenance (a DSSE envelope,
    signed with ``key``), ``SHA256SUMS`` of all of them and its signature. Returns the
    files written (kind -> name). A failure removes what it wrote; the archive stays."""
    n = names(b)
    out = archive.parent
    written: list[Path] = []
    try:
        for kind in ("spdx", "cyclonedx"):
            target = out / n[kind]
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes((inventory.evidence_dir(b) / n[kind]).read_bytes())
            tmp.replace(target)
            written.append(target)
        written.append(_write_provenance(b, archive, out / n["provenance"], key))
        sums = signing.write_sums([archive, *written], out / n["sums"])
        written.append(sums)
        files = {kind: n[kind] for kind in ("spdx", "cyclonedx", "provenance", "sums")}
        if key is not None:
            sig = signing.sign_file(key, sums)
            written.append(sig)
            files["signature"] = sig.name
            files["key"] = key.keyid
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    b.record[EVIDENCE_KEY] = files
    return files


def _write_provenance(b: Build, archive: Path, target: Path, key: signing.Key | None) -> Path:
    s = b.settings
    vhdx_sha = str(b.record.get(SBOM_KEY, {}).get("vhdx_sha256") or sha256_file(b.vhdx))  # type: ignore[arg-type]
    try:  # the run id begins with the run's start (UTC)
        started = datetime.strptime(b.run_id[:15], "%Y%m%d-%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        started = ""
    stmt = provenance.statement(
        [(archive.name, sha256_file(archive)), (b.distro.vmgenie.vhdx_entry, vhdx_sha)],
        builder_id=f"urn:gmi-harness:builder:{s.backend}", revision=git_revision(),
        distro=b.distro.name, backend=s.backend,
        settings={line.split(" = ", 1)[0]: line.split(" = ", 1)[1] for line in s.describe()},
        internal={k: b.record[k] for k in ("accel", "prepared_in", "installed_by", "step1_tree",
                                           "source_date_epoch") if k in b.record},
        materials=_materials(b), invocation=b.run_id, started=started,
        finished=str(b.record.get("built") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        byproducts=[(p.name, sha256_file(p)) for p in
                    (inventory.evidence_dir(b) / names(b)[k] for k in ("spdx", "cyclonedx"))])
    signer = None
    if key is not None:
        def signer(pae: bytes) -> tuple[str, bytes]:
            return key.keyid, signing.sign_bytes(key, pae)
    return provenance.write(provenance.envelope(stmt, signer), target)
