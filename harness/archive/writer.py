"""The vmgenie archive: ``GMI-<Os>-<Version>.zip`` with the manifest, a README, the
disk under ``Virtual Hard Disks/`` and the build record; a ``.sha256`` beside it.

Writing is atomic: the zip is written to a temporary file in the same folder and
renamed over the target only when complete, so no partial archive is ever left and
an existing archive is replaced only when ``force`` says so.
"""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from harness.archive import deflate
from harness.archive.format import RECORD_ENTRY, SNAP_DIR, VM_DIR
from harness.distro import VmgenieNames
from harness.errors import ExportError
from harness.host.tools import sha256_file


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# vmgenie's names for one distro (vm_name, stem, archive, vhdx_entry).
Names = VmgenieNames


def manifest(names: Names, *, checksum: str, description: str, maintainer: str,
             maintainer_email: str, source_url: str, created: str | None = None,
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """vmgenie's manifest (its keys exactly), then our extra keys."""
    now = created or utc_now()
    data: dict[str, Any] = {
        "gmi_version": "1.0", "os": names.os, "version": str(names.version),
        "created": now, "updated": now, "vm_name": names.vm_name, "hyperv_generation": 2,
        "maintainer": maintainer, "maintainer_email": maintainer_email,
        "source_url": source_url, "description": description, "checksum_sha256": checksum,
    }
    clash = set(extra or {}) & set(data)
    if clash:
        raise ValueError(f"extra manifest keys clash with vmgenie's: {sorted(clash)}")
    data.update(extra or {})
    return data


class _PlainDumper(yaml.SafeDumper):
    """Never an anchor or alias (an object the record holds twice is written twice): the
    reader takes plain data only (harness.safeyaml)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)


def readme(names: Names, record: Mapping[str, Any], disk_only: bool) -> str:
    """The archive's README (``GMI-<Os>-<Version>.md``)."""
    v = record.get("versions", {})
    lines = [
        f"# {names.vm_name}",
        "",
        "A GMI (Genie Machine Image): a cloud-init-ready Hyper-V Generation 2 image, "
        "cleaned, compacted and validated, for vmgenie.",
        "",
        f"- OS: {v.get('os', '?')}",
        f"- Kernel: {v.get('kernel', '?')}",
        f"- cloud-init: {v.get('cloud-init', '?')} (datasources: NoCloud, None)",
        f"- Integration services: {v.get('integration_services', '?')}",
        "- Default user: none with a password. Users come from the seed ISO's user-data; "
        f"the build-time accounts (root, {record.get('admin_user', '?')}) are locked.",
        f"- Locale: {record.get('locales', '?')} generated; keyboard and timezone come "
        "from the seed.",
        "- Network: the first NIC is named eth0 (net.ifnames=0); DHCPv4 via cloud-init.",
        "- Boot: UEFI, Secure Boot with the MicrosoftUEFICertificateAuthority template; "
        "shim and GRUB at the removable-media path EFI/BOOT/BOOTX64.EFI.",
        f"- Built: {record.get('built', '?')} by gmi-harness {record.get('harness', '?')} "
        f"on the {record.get('backend', '?')} backend",
        "",
        "## Caveats",
        "",
    ]
    if disk_only:
        lines += [
            "- **Disk-only archive.** It was built on the local QEMU backend, which cannot "
            "write Hyper-V's `.vmcx`: `Virtual Machines/` is empty. vmgenie's `Import-VM` "
            "needs the `.vmcx`: promote it on a Hyper-V host (`pytest --gmi=<this archive> "
            "--backend=hyperv --promote`: a Generation 2 VM named "
            f"`{names.vm_name}` around this VHDX, exported unbooted and checked), or attach "
            "the VHDX to a new Generation 2 VM by hand.",
        ]
    lines += [
        "- The Hyper-V daemons (KVP, VSS) start only on Hyper-V; the checks that need a "
        "running KVP daemon ran only where the build's backend is Hyper-V.",
        "",
        "The build record (`gmi-build-record.yml`) lists every package, version, stage "
        "timing and check result.",
        f"`{names.stem}.spdx.json` (SPDX 2.3) and `{names.stem}.cdx.json` (CycloneDX 1.5) are "
        "its software bill of materials: every installed package with its version, "
        "architecture, source package, purl and licence, the kernel, and this VHDX's SHA-256.",
        "",
    ]
    return "\n".join(lines)


def vm_tree_files(vm_tree: Path) -> list[tuple[Path, str]]:
    """A Hyper-V export's ``Virtual Machines/`` and ``Snapshots/`` files as (path, zip
    entry); exactly one ``.vmcx``, as vmgenie demands."""
    files = [(p, p.relative_to(vm_tree).as_posix())
             for folder in (VM_DIR, SNAP_DIR) for p in sorted((vm_tree / folder).rglob("*"))
             if p.is_file()]
    vmcx = [e for _, e in files if e.lower().endswith(".vmcx")]
    if len(vmcx) != 1:
        raise ExportError(f"the Hyper-V export in {vm_tree} holds {len(vmcx)} .vmcx files under "
                          f"'{VM_DIR}/'; vmgenie imports exactly one: export again")
    return files


def write_archive(out_dir: Path, names: Names, vhdx: Path, manifest_data: Mapping[str, Any],
                  readme_text: str, record: Mapping[str, Any], *, force: bool,
                  vm_tree: Path | None = None, members: Sequence[tuple[Path, str]] = ()) -> Path:
    """Write ``<out_dir>/GMI-<Os>-<Version>.zip`` and its ``.sha256``; atomic. With
    ``vm_tree`` (a Hyper-V export), its ``.vmcx`` and the rest go in beside the disk;
    ``members`` (file, entry) at the archive's root (the SBOMs)."""
    target = out_dir / names.archive
    if target.exists() and not force:
        raise ExportError(f"{target} already exists; pass --force to replace it")
    extra_files = vm_tree_files(vm_tree) if vm_tree is not None else []
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{names.archive}.{os.getpid()}.part"
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True,
                             compresslevel=6) as zf:
            zf.writestr(f"{names.stem}.yml", dump_yaml(manifest_data))
            zf.writestr(f"{names.stem}.md", readme_text)
            zf.writestr(RECORD_ENTRY, dump_yaml(record))
            for path, entry in members:
                zf.write(path, entry)
            for folder in (VM_DIR, SNAP_DIR):
                zf.writestr(zipfile.ZipInfo(folder + "/"), "")
            for path, entry in extra_files:
                zf.write(path, entry)
            deflate.write(zf, vhdx, names.vhdx_entry, level=6)  # (on every core)
        digest = sha256_file(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(out_dir).free
            raise ExportError(f"{out_dir} filled up while {names.archive} was being written "
                              f"({free / 2**20:.0f} MiB free after removing the partial file); "
                              "nothing was replaced: free some space or choose another --out") from None
        raise
    sidecar = target.with_name(target.name + ".sha256")
    side_tmp = sidecar.with_name(sidecar.name + ".part")
    side_tmp.write_text(f"{digest}  {target.name}\n")
    os.replace(side_tmp, sidecar)
    return target
