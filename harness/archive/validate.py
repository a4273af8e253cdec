"""Validating an existing GMI archive (``pytest --gmi PATH``): the archive stands in
for the build stages. It is only ever read; its disk is extracted into scratch, checked
against the manifest's checksum and the VHDX format, and then booted like any build."""

from __future__ import annotations

import dataclasses
import typing
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from harness import distro as distro_mod
from harness.archive import reader, vhdx
from harness.archive.errors import ArchiveError
from harness.build import Build
from harness.errors import GmiError
from harness.evidence import release as evidence
from harness.host.tools import sha256_file

# Facts an archive's build record may carry that sharpen the checks (else generic).
RecordFact = Literal["build_host_keys", "build_machine_id", "build_public_key", "admin_user",
                     "hv_services"]
RECORD_FACTS: tuple[RecordFact, ...] = typing.get_args(RecordFact)
# What the archived record says of its build, kept beside this run's own figures.
ARCHIVED: tuple[tuple[str, Literal["archived_versions", "archived_sizes",
                                   "archived_stage_durations", "archived_accel"]], ...] = (
    ("versions", "archived_versions"), ("sizes", "archived_sizes"),
    ("stage_durations", "archived_stage_durations"), ("accel", "archived_accel"))


def distro_for(path: Path, directory: Path = distro_mod.DISTROS_DIR,
               extra: Sequence[str | Path] = ()) -> distro_mod.Distro:
    """The catalogue entry (``extra`` folders included) whose vmgenie names match the
    archive's name, or, for a GMI not in the catalogue, the catalogue's reference profile
    (``reference: true``) with the archive's names, marked ``generic`` so that reports
    say the expectations were generic."""
    names = reader.parse_name(path)
    for file in distro_mod.catalogue(extra, directory).values():
        d = distro_mod.load_file(file)
        if (d.vmgenie.os, d.vmgenie.version) == (names.os, names.version):
            return d
    reference = distro_mod.reference_profile(directory)
    return dataclasses.replace(reference, vmgenie=names, generic=True,
                               description=f"{names.vm_name} (not in the catalogue)")


def import_archive(b: Build) -> None:
    """Stand-in for the build stages: read and verify the archive, extract its disk."""
    assert b.archive is not None
    if not b.archive.is_file():
        raise GmiError(f"{b.archive}: no such archive")
    names = reader.parse_name(b.archive)
    with reader.open_archive(b.archive) as zf:
        manifest = reader.read_manifest(zf, names)
        layout = reader.layout(zf, names, manifest)
        record = _archived_record(zf, b)
        b.vhdx = reader.extract_vhdx(zf, names, b.workdir, manifest)
        # its SBOMs, and their known vulnerabilities
        evidence.from_archive(b, lambda entry, limit: reader.read_text(zf, entry, limit)
                              if entry in zf.namelist() else None)
    info = vhdx.inspect(b.vhdx)
    b.record.update({
        "manifest": dict(manifest), "layout": dataclasses.asdict(layout),
        "vhdx_info": dataclasses.asdict(info), "vhdx_sha256": sha256_file(b.vhdx),
        "archived_record": bool(record),
        "expectations": "generic" if b.distro.generic else "catalogue",
    })
    for key in RECORD_FACTS:
        if key in record:
            b.record[key] = record[key]
    for theirs, ours in ARCHIVED:
        if theirs in record:
            b.record[ours] = record[theirs]


def _archived_record(zf: zipfile.ZipFile, b: Build) -> dict[str, Any]:
    """The archive's build record, for the facts that sharpen the checks; one that cannot
    be read sharpens nothing (vmgenie needs none): said in the build log, not fatal."""
    try:
        return reader.build_record(zf) or {}
    except ArchiveError as exc:
        b.log.warning("the archive's build record is not used: %s", exc)
        return {}
