"""Promote, the archive side: the full GMI (``.vmcx`` included) written from a disk-only
one once the promoted VM's clone passed every check (see
:mod:`harness.backends.hyperv.promote` for the host side).

The new archive goes to ``promoted/`` beside the input, under the same name (vmgenie
derives the VM name from it), never over the input; an existing one is replaced only
with ``--force``. Its manifest holds vmgenie's keys exactly (no ``disk_only``) with the
SHA-256 of the VHDX as exported; ``created`` stays the original build's, ``updated`` is
now. Its build record is the input's, with this run's check results (the Hyper-V-only
items included), the original ones kept as ``build_check_results``, and a
``promoted`` section saying where and from what.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.archive import reader, writer
from harness.archive.errors import ArchiveError
from harness.archive.export import gate
from harness.build import Build
from harness.checklist import SERVICES_RUNNING
from harness.errors import ExportError
from harness.host.tools import sha256_file

PROMOTED_DIR = "promoted"


def promoted_path(archive: Path) -> Path:
    """Where the promoted archive of ``archive`` goes."""
    return archive.parent / PROMOTED_DIR / archive.name


def blocked(outcomes: Mapping[str, str], labels: Mapping[str, str]) -> list[str]:
    """What blocks a promotion: what blocks an export (a checklist test that did not
    pass, a required item with no passing test), any other test of the archive that
    failed (its static checks), and the Hyper-V-only item without a passing test: on
    Hyper-V it must run, not be skipped."""
    found = gate(list(labels), outcomes, labels)
    found += [n for n, o in outcomes.items() if o not in ("passed", "skipped") and n not in labels]
    passed = {labels[n] for n, o in outcomes.items() if o == "passed" and n in labels}
    if SERVICES_RUNNING not in passed:
        found.append(f"'{SERVICES_RUNNING}' (no test of it passed)")
    return list(dict.fromkeys(found))


def input_record(archive: Path) -> dict[str, Any]:
    """The input's build record (empty when it holds none); one that cannot be read
    refuses the promotion: the promoted archive would carry a record without its build."""
    with reader.open_archive(archive) as zf:
        try:
            return reader.build_record(zf) or {}
        except ArchiveError as exc:
            raise ExportError(f"{archive.name}: {exc}; promote an archive the harness wrote") from None


def write_promoted(b: Build, outcomes: Mapping[str, str], labels: Mapping[str, str],
                   this_test: str = "") -> Path:
    """Write the full archive for the promoted ``b`` (gated on every check); its path."""
    if b.archive is None:
        raise ExportError("--promote promotes archives given with --gmi")
    if not labels:
        raise ExportError("no checklist item ran for this archive; nothing vouches for the "
                          "promoted image, so it is not written")
    refused = blocked({n: o for n, o in outcomes.items() if n != this_test}, labels)
    if refused:
        raise ExportError("promotion refused: these checks did not pass: "
                          + ", ".join(n.split("::")[-1] for n in refused))
    promoted = b.record.get("promoted")
    if b.vm_tree is None or not b.vm_tree.is_dir() or not promoted or b.vhdx is None:
        raise ExportError("the promoted VM's export is missing; the promote stage did not finish")
    checksum = sha256_file(b.vhdx)
    if checksum != promoted["exported_vhdx_sha256"]:
        raise ExportError(f"the VHDX to archive has SHA-256 {checksum}, the exported one "
                          f"{promoted['exported_vhdx_sha256']}: run again")
    names = b.distro.vmgenie
    old_manifest: Mapping[str, Any] = b.record.get("manifest") or {}
    record = input_record(b.archive)
    now = writer.utc_now()
    results = {n.split("::")[-1]: outcomes[n] for n in labels}
    record.update(
        build_check_results=record.get("check_results", {}),
        check_results=results,
        check_items={n.split("::")[-1]: labels[n] for n in labels},
        disk_only=False,
        hyperv_vm=b.record.get("hyperv_vm", {}),
        promoted={**promoted, "at": now, "run": b.run_id, "from_manifest_created":
                  str(old_manifest.get("created", ""))},
    )
    s = b.settings
    manifest = writer.manifest(
        names, checksum=checksum,
        description=str(old_manifest.get("description") or b.distro.description),
        maintainer=str(old_manifest.get("maintainer") or s.maintainer),
        maintainer_email=str(old_manifest.get("maintainer_email") or s.maintainer_email),
        source_url=str(old_manifest.get("source_url") or s.source_url),
        created=str(old_manifest.get("created") or now))
    manifest["updated"] = now
    record["manifest"] = dict(manifest)
    target = promoted_path(b.archive)
    if target.resolve() == b.archive.resolve():  # pragma: no cover - a subfolder by construction
        raise ExportError(f"{target} is the input archive; it is never overwritten")
    return writer.write_archive(target.parent, names, b.vhdx, manifest,
                                writer.readme(names, record, disk_only=False), record,
                                force=s.force, vm_tree=b.vm_tree)
