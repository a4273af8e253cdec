"""Step 7: export and document, gated on the checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

from harness.archive import writer
from harness.build import Build, BuildFacts
from harness.checklist import ADVISORY_ITEMS, REQUIRED_ITEMS
from harness.errors import ExportError
from harness.evidence import release as evidence
from harness.host.tools import sha256_file


def gate(checklist: list[str], outcomes: Mapping[str, str],
         labels: Mapping[str, str] | None = None, advisory_blocks: bool = False) -> list[str]:
    """What blocks the export: checklist tests that failed, errored or never ran, and
    (given each test's checklist item in ``labels``) required items with no test that
    passed. Skipped tests (each with its reason) do not block it, nor do the failures of
    an advisory item (:data:`ADVISORY_ITEMS`) unless ``advisory_blocks``."""
    advisory = {n for n in checklist if not advisory_blocks and labels is not None
                and labels.get(n) in ADVISORY_ITEMS}
    blocked = [node for node in checklist
               if outcomes.get(node) not in ("passed", "skipped") and node not in advisory]
    if labels is not None:
        passed = {labels[n] for n in checklist if outcomes.get(n) == "passed" and n in labels}
        blocked += [f"'{item}' (no test of it passed)" for item in REQUIRED_ITEMS
                    if item not in passed]
    return blocked


def public_record(b: Build, results: Mapping[str, str],
                  items: Mapping[str, str] | None = None) -> BuildFacts:
    """The build record that goes into the archive (no internal handles, no secrets: not
    even where the credentials file is). ``items``: each check's checklist item (the
    next release's diff compares by item)."""
    record = cast(BuildFacts, {k: v for k, v in b.record.items()
                               if not k.startswith("_") and k != "credentials_file"})
    record["check_results"] = dict(results)
    record["check_items"] = dict(items or {})
    record["stage_durations"] = dict(b.timings)
    return record


def export(b: Build, checklist: list[str], outcomes: Mapping[str, str],
           labels: Mapping[str, str] | None = None) -> Path:
    """Write the vmgenie archive for ``b`` when every checklist item passed."""
    not_passed = gate(checklist, outcomes, labels, b.settings.seed_template_blocks_export)
    if not checklist:
        raise ExportError("no checklist item ran for this distro; nothing vouches for "
                          "the image, so it is not exported")
    if not_passed:
        failed = ", ".join(n.split("::")[-1] for n in not_passed)
        raise ExportError(f"export refused: these checks did not pass: {failed}")
    if b.vhdx is None or not b.vhdx.exists():
        raise ExportError("the sealed VHDX is missing; the seal stage did not finish")
    evidence.gate(b)  # --vuln-gate
    names = b.distro.vmgenie
    checksum = sha256_file(b.vhdx)
    results = {n.split("::")[-1]: outcomes[n] for n in checklist}
    items = {n.split("::")[-1]: labels[n] for n in checklist if labels and n in labels}
    record = public_record(b, results, items)
    record["built"] = writer.utc_now()
    disk_only = b.vm_tree is None
    # vmgenie reads the manifest with YamlDotNet, which refuses keys it does not know:
    # the manifest holds its keys exactly; our facts go into the build record. The one
    # exception is `disk_only` on archives vmgenie cannot import anyway (no .vmcx).
    extra = {"disk_only": True} if disk_only else {}
    record["disk_only"] = disk_only
    s = b.settings
    manifest = writer.manifest(
        names, checksum=checksum, description=b.distro.description,
        maintainer=s.maintainer, maintainer_email=s.maintainer_email,
        source_url=s.source_url, created=record["built"], extra=extra)
    record["manifest"] = dict(manifest)
    if b.vm_tree is not None and not b.vm_tree.is_dir():
        raise ExportError(f"the exported VM (with its .vmcx) is missing from {b.vm_tree}")
    members = evidence.archive_members(b)  # the SBOMs
    key = evidence.signing_key(s.sign_key)
    archive = writer.write_archive(
        s.out_dir, names, b.vhdx, manifest, writer.readme(names, record, disk_only),
        record, force=s.force, vm_tree=b.vm_tree, members=members)
    evidence.beside_archive(b, archive, key)  # SBOM copies, provenance, SHA256SUMS (signed)
    return archive
