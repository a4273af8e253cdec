"""Promote (``--gmi ARCHIVE --backend=hyperv --promote``), the host side: a disk-only
GMI (built on the local QEMU backend, which cannot write Hyper-V's ``.vmcx``) becomes
a Hyper-V VM vmgenie can import, without a second build.

The archive's VHDX (extracted and verified by the validator first) is uploaded into the
run's folder on the host as ``GMI <Os> <Version>.vhdx`` and its SHA-256 compared there;
``new_vm.ps1 -UseVhdx`` makes a Generation 2 VM around it with the wizard settings a
Hyper-V build uses; ``export_vm.ps1`` exports it WITHOUT booting it (a boot would spend
the image's first boot: cloud-init, machine-id, host keys) and flattens the export for
vmgenie. The checks' clone is then made from that export (``HostState.sealed_vhdx``),
and :mod:`harness.archive.promote` writes the full archive when every check passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.archive.format import SNAP_DIR, VHD_DIR
from harness.backends.hyperv.backend import HostState, HyperVBackend, host_join
from harness.backends.hyperv.model import ExportResult, FileHash
from harness.errors import ConfigError, HypervisorError
from harness.host.tools import sha256_file

if TYPE_CHECKING:
    from harness.build import Build


def promote_disk(b: Build) -> None:
    """Upload ``b.vhdx``, wrap it in a Gen2 VM, export it unbooted; the exported tree's
    ``Virtual Machines/`` comes back under ``b.vm_tree``. The VHDX is fetched back only
    when Export-VM changed its bytes (it copies the disk; it should not)."""
    backend = b.backend
    if not isinstance(backend, HyperVBackend):
        raise ConfigError("--promote needs --backend=hyperv")
    assert b.vhdx is not None, "the archive's disk is extracted first"
    st: HostState = backend.state(b)
    s, names, hv = b.settings, b.distro.vmgenie, b.distro.hyperv
    local_sha = str(b.record.get("vhdx_sha256") or "")
    vm = backend._new_vm_handle(b, names.vm_name)  # (handle first: teardown knows it)
    folder = backend.folder(b)
    vm.owned.append(folder)
    target = host_join(folder, f"{names.vm_name}.vhdx")
    with b.step(f"promote: upload the VHDX ({b.vhdx.stat().st_size >> 20} MiB)"):
        st.ps.put(b.vhdx, target)
    with b.step("promote: verify the uploaded VHDX's SHA-256"):
        got = FileHash.parse(st.ps.run("file_hash", Path=target))
        if got.sha256 != local_sha:
            raise HypervisorError(f"the uploaded VHDX {target} on {st.host} has SHA-256 "
                                  f"{got.sha256}, the archive's disk {local_sha}: the upload "
                                  "broke; run again")
    with b.step("promote: create the Generation 2 VM around the disk"):
        vm.created = True
        reply = st.ps.run(
            "new_vm", Name=names.vm_name, Folder=folder, SwitchName=s.hyperv_switch,
            UseVhdx=target, MemoryMB=hv.memory_mb, DynamicMemory=hv.dynamic_memory,
            ProcessorCount=s.vm_cpus, SecureBoot=hv.secure_boot,
            SecureBootTemplate=hv.secure_boot_template, Notes=st.notes)
        b.record["hyperv_vm"] = {k: reply.get(k) for k in (
            "Id", "Generation", "SecureBoot", "SecureBootTemplate", "BootOrder", "State")}
    if reply.get("State") not in (None, "Off"):
        raise HypervisorError(f"the promoted VM {names.vm_name!r} is {reply.get('State')}, not Off: "
                              "it must be exported without booting")
    with b.step("promote: Export-VM (never booted) and flatten for vmgenie"):
        exported = ExportResult.parse(st.ps.run(
            "export_vm", Name=names.vm_name, Staging=host_join(folder, "export"),
            Destination=host_join(folder, "gmi"), Replace=True))
    st.sealed_vhdx, st.export_root = exported.vhdx, exported.root
    tree = b.workdir / "hyperv-export"
    with b.step("promote: fetch the exported VM"):
        fetched_disk = fetch_export(b, st, exported, tree, local_sha)
    b.vm_tree = tree
    b.record["promoted"] = {
        "from_archive": b.archive.name if b.archive else "",
        "from_vhdx_sha256": local_sha, "exported_vhdx_sha256": exported.vhdx_sha256,
        "disk_fetched_back": fetched_disk, "hyperv_host": st.host,
        "hyperv_host_name": b.record.get("hyperv_host_name", ""),
        "booted_before_export": False,
    }


def fetch_export(b: Build, st: HostState, exported: ExportResult, tree: Path,
                 local_sha: str) -> bool:
    """``Virtual Machines/`` (and ``Snapshots/``) under ``tree``; the disk only when its
    exported SHA-256 differs from what was uploaded (then into ``b.vhdx``, checked).
    Returns whether the disk was fetched."""
    assert b.vhdx is not None
    (tree / SNAP_DIR).mkdir(parents=True, exist_ok=True)
    disk = False
    for f in exported.files:
        remote = host_join(exported.root, *f.parts)
        if f.parts[0] == VHD_DIR:
            if f.parts[-1] != f"{b.distro.vmgenie.vm_name}.vhdx":
                raise HypervisorError(f"the export holds an unexpected disk {f.path}")
            disk = exported.vhdx_sha256 != local_sha
            if disk:
                b.log.info("Export-VM's VHDX (SHA-256 %s) differs from the uploaded one (%s): "
                           "fetching it", exported.vhdx_sha256, local_sha)
                st.ps.get(remote, b.vhdx)
        else:
            st.ps.get(remote, tree.joinpath(*f.parts))
    if disk:
        got = sha256_file(b.vhdx)
        if got != exported.vhdx_sha256:
            raise HypervisorError(f"the fetched VHDX's SHA-256 {got} differs from the host's "
                                  f"{exported.vhdx_sha256}: the copy broke; run again")
        b.record["vhdx_sha256"] = got
    return disk
