"""Validating an existing GMI archive (``pytest --gmi PATH``): the archive stands in
for the build stages. It is only ever read; its disk is extracted into scratch, checked
against the manifest's checksum and the VHDX format, and then booted like any build."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness import distro as distro_mod
from harness import safeyaml
from harness.archive import reader, vhdx
from harness.build import Build
from harness.errors import GmiError
from harness.evidence import release as evidence
from harness.host.tools import sha256_file

RECORD_ENTRY = "gmi-build-record.yml"
# Facts an archive's build record may carry that sharpen the checks (else generic).
RECORD_FACTS = ("build_host_keys", "build_machine_id", "build_public_key", "admin_user",
                "hv_services")


def distro_for(path: Path, directory: Path = distro_mod.DISTROS_DIR,
               extra: Sequence[str | Path] = ()) -> distro_mod.Distro:
    """The catalogue entry (``extra`` folders included) whose vmgenie names match the
    archive's name, or, for a GMI not in the catalogue, the reference profile (debian-12)
    with the archive's names, marked ``generic`` so that reports say the expectations
    were generic."""
    names = reader.parse_name(path)
    for file in distro_mod.catalogue(extra, directory).values():
        d = distro_mod.load_file(file)
        if (d.vmgenie.os, d.vmgenie.version) == (names.os, names.version):
            return d
    reference = distro_mod.load("debian-12", directory)
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
        record = _build_record(zf)
        b.vhdx = reader.extract_vhdx(zf, names, b.workdir, manifest)
        evidence.from_archive(b, zf)  # its SBOMs, and their known vulnerabilities
    info = vhdx.inspect(b.vhdx)
    b.record.update(
        manifest=dict(manifest), layout=dataclasses.asdict(layout),
        vhdx_info=dataclasses.asdict(info), vhdx_sha256=sha256_file(b.vhdx),
        archived_record=bool(record), expectations="generic" if b.distro.generic else "catalogue",
    )
    for key in RECORD_FACTS:
        if key in record:
            b.record[key] = record[key]
    for key in ("versions", "sizes", "stage_durations", "accel"):
        if key in record:
            b.record[f"archived_{key}"] = record[key]


def _build_record(zf: Any) -> dict[str, Any]:
    if RECORD_ENTRY not in zf.namelist():
        return {}
    text = reader.read_text(zf, RECORD_ENTRY, reader.Limits().max_text_size)
    try:
        data = safeyaml.load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}
