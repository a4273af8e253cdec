"""A complete ``--backend=hyperv`` build of debian-12, every host-side step in order,
against the fake PowerShell transport, ending in the vmgenie archive.

No Windows host exists on the machines this harness is developed on. The "host" here
is :class:`hyperv_fake.FakePowerShell` replaying hand-written recordings, and the
export tree is the recorded file list of an ``Export-VM`` of ``GMI Debian 12`` (its
``.vmcx``/``.vmgs``/``.VMRS`` are placeholder bytes: only Hyper-V can write real ones).

The boundary: the guest-side steps (Steps 2 to 5, the seal script, the checks inside
the clone) run over SSH and are the same for both backends; they are proven on QEMU
and are not driven here. What this test proves is the host side: the order of the
scripts, their parameters, the fetch of the export, the archive's layout and manifest,
and that everything the run created on the host is removed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from evidence_data import dpkg_record
from hyperv_fake import FakePowerShell, Seq, make_build, recorded

from harness.archive import export, reader, vhdx, writer
from harness.archive.format import MANIFEST_KEYS
from harness.backends.hyperv import HyperVBackend, HyperVVM, services_problems
from harness.checklist import REQUIRED_ITEMS
from harness.evidence import inventory
from harness.evidence import release as evidence
from harness.media import seed

FOLDER = "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"
EXPORT_ROOT = FOLDER + "\\gmi"
VMCX = b"placeholder .vmcx written by the recording, not by Hyper-V"


def disk_bytes(tmp_path: Path) -> bytes:
    """A real dynamic VHDX when qemu-img is here (no VM is booted), else stand-in bytes."""
    if shutil.which("qemu-img") is None:
        return b"vhdxfile" + b"\0" * 65536
    path = tmp_path / "made.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(path), "64M"], check=True)
    return path.read_bytes()


def fake_host(tmp_path: Path) -> FakePowerShell:
    disk = disk_bytes(tmp_path)
    ps = FakePowerShell()

    def export_vm(params: dict) -> dict:
        tree = recorded("export_tree")
        for f in tree["Files"]:
            content = disk if f["Path"].endswith(".vhdx") else (
                VMCX if f["Path"].endswith(".vmcx") else b"\0" * 16)
            f["Length"] = len(content)
            ps.files[params["Destination"] + "\\" + f["Path"]] = content
        tree["VhdxSha256"] = hashlib.sha256(disk).hexdigest()
        tree["Root"] = params["Destination"]  # the recording's, moved where it was asked
        tree["Vhdx"] = params["Destination"] + "\\Virtual Hard Disks\\GMI Debian 12.vhdx"
        return tree

    ps.replies.update({
        "file_hash": {"Path": "x", "Length": 1, "Sha256": "a" * 64},
        "new_vm": recorded("new_vm"),
        "finish_install": {"Name": "GMI Debian 12"},
        "vm_status": Seq([recorded("vm_status_booting"), recorded("vm_status_kvp")]),
        "compact_disk": recorded("compact_disk"),
        "export_vm": export_vm,
        "new_clone_vm": lambda p: {"Name": p["Name"], "Id": "c", "Vhdx": "v", "State": "Running"},
        "integration_services": recorded("integration_services"),
    })
    return ps


def test_debian12_hyperv_build_end_to_end_with_a_fake_host(tmp_path):
    ps = fake_host(tmp_path)
    b = make_build(tmp_path, ps)
    backend = b.backend
    assert isinstance(backend, HyperVBackend)

    # Step 1 (host side): check the host, create the VM, install, find the address.
    backend.check_host(b)
    b.vm = backend.provision(b)
    assert b.vm.ssh_host == "192.168.50.23"
    # Steps 2-5 and the seal script run in the guest over SSH (as on QEMU): not here.
    # The seal script powers the VM off; seal() waits for that, then Step 6 on the host.
    assert b.vm.wait_stopped(5)
    b.vhdx = b.workdir / "GMI Debian 12.vhdx"
    exported = backend.export_disk(b, b.vhdx)
    b.record["sizes"], b.vm_tree = exported.sizes, exported.vm_tree
    # ... and its last step: the SBOMs, from the package database the guest printed at the
    # seal (recorded here)
    inventory.evidence_dir(b).mkdir(parents=True)
    dpkg_record(inventory.evidence_dir(b) / inventory.APT_RECORD)
    b.record["versions"] = {"kernel": "6.1.0-28-amd64"}
    evidence.after_seal(b)
    assert b.record["sizes"] == {"build_disk_allocated": 2818572288, "vhdx_bytes": 1140850688,
                                 "virtual_size": 268435456000}

    # The checks' clone, made the vmgenie way, and the host's view of it.
    iso = seed.write_iso(seed.render(seed.SeedSpec(
        instance_id="i-1", hostname="gmi-check-debian-12", username="genie",
        ssh_public_key="ssh-ed25519 AAAA test", timezone="America/Chicago",
        locale="en_US.UTF-8", keyboard_layout="us", groups=("sudo",))),
        b.workdir / "clone-seed.iso")
    clone = backend.clone(b, b.vhdx, iso, "clone")
    assert clone.ssh_host in backend.kvp_addresses(clone)
    assert services_problems(backend.integration_services(clone)) == []
    clone.destroy()

    # Step 7: the archive, gated on the checks (all passed here).
    checklist = [f"checks/test_checklist.py::test_{i}[debian-12]" for i in range(5)]
    labels = dict(zip(checklist, REQUIRED_ITEMS, strict=True))
    archive = export.export(b, checklist, dict.fromkeys(checklist, "passed"), labels)

    # The end of the run: every VM the build made goes, with the run's folder.
    for vm in b.vms:
        vm.destroy()

    clone_name = "gmi-clone debian-12 RUN"
    assert ps.names() == [
        "host_info",                       # check_host: the switch exists
        "new_run_folder", "file_hash",     # the run's folder; the ISO's SHA-256
        "new_vm",                          # Step 1's wizard settings
        "start_vm",                        # the installer (boot command, if any)
        "stop_vm",                         # wait for the unattended install to power off
        "finish_install", "start_vm",      # empty the DVDs, boot from disk
        "vm_status", "vm_status",          # address: KVP not yet, then KVP
        "stop_vm",                         # the seal powered it off
        "stop_vm",                         # export_disk: is it off?
        "compact_disk", "export_vm",       # merge + Optimize-VHD; Export-VM + flatten
        *["get"] * 4,                      # fetch the flattened export
        "put", "new_clone_vm", "vm_status",  # seed ISO, the clone, its address
        "vm_status", "integration_services",  # KVP and Get-VMIntegrationService
        "remove_items",                    # the clone
        "remove_items",                    # the build VM with the run's folder
    ]
    assert ps.params("new_clone_vm")["SourceVhdx"] == EXPORT_ROOT + "\\Virtual Hard Disks\\GMI Debian 12.vhdx"
    assert ps.params("new_clone_vm")["SecureBootTemplate"] == "MicrosoftUEFICertificateAuthority"
    assert ps.params("new_clone_vm")["SeedIso"] == FOLDER + "\\clone-seed.iso"
    removed = [p for n, p in ps.calls if n == "remove_items"]
    assert removed[0]["VmNames"] == [clone_name]
    assert removed[1]["VmNames"] == ["GMI Debian 12"] and removed[1]["Paths"] == [FOLDER]
    assert all(r["Tag"] == "gmi-harness run=RUN worker=main" for r in removed)

    # The archive vmgenie imports.
    assert archive == tmp_path / "out" / "GMI-Debian-12.zip"
    with reader.open_archive(archive) as zf:
        names = b.distro.vmgenie
        manifest = reader.read_manifest(zf, names, strict_keys=True)
        lay = reader.layout(zf, names, manifest)
        entries = zf.namelist()
        disk = zf.read("Virtual Hard Disks/GMI Debian 12.vhdx")
        vmcx = zf.read(lay.vmcx_entry or "")
    assert tuple(manifest) == MANIFEST_KEYS  # exactly vmgenie's keys, no extra
    assert manifest["vm_name"] == "GMI Debian 12" and manifest["hyperv_generation"] == 2
    assert manifest["checksum_sha256"] == hashlib.sha256(disk).hexdigest()
    assert lay.vmcx_entry == "Virtual Machines/5F0E6A0C-3B7E-4C55-9A57-1C2D3E4F5A6B.vmcx"
    assert vmcx == VMCX and not lay.disk_only and lay.snapshots_dir
    assert sorted(e for e in entries if e.startswith("Virtual Machines/") and not e.endswith("/")) == [
        f"Virtual Machines/5F0E6A0C-3B7E-4C55-9A57-1C2D3E4F5A6B.{ext}" for ext in ("VMRS", "vmcx", "vmgs")]
    assert {"GMI-Debian-12.yml", "GMI-Debian-12.md", "Snapshots/"} <= set(entries)
    assert "Disk-only archive" not in zipfile.ZipFile(archive).read("GMI-Debian-12.md").decode()
    sidecar = archive.with_name("GMI-Debian-12.zip.sha256").read_text()
    assert sidecar.split()[0] == hashlib.sha256(archive.read_bytes()).hexdigest()
    if shutil.which("qemu-img"):
        extracted = tmp_path / "check.vhdx"
        extracted.write_bytes(disk)
        vhdx.require_dynamic(vhdx.inspect(extracted))


def test_a_broken_fetch_is_caught_by_the_checksum(tmp_path):
    ps = fake_host(tmp_path)
    b = make_build(tmp_path, ps)
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    real_get = ps.get

    def corrupt(remote: str, local: Path) -> None:
        real_get(remote, local)
        if remote.endswith(".vhdx"):
            local.write_bytes(b"truncated")

    ps.get = corrupt  # type: ignore[method-assign]
    with pytest.raises(Exception, match=r"fetched VHDX.s SHA-256 \w+ differs from the host.s"):
        b.backend.export_disk(b, b.workdir / "GMI Debian 12.vhdx")


def test_export_refuses_a_hyperv_build_without_its_vmcx_tree(tmp_path):
    from harness.errors import ExportError

    b = make_build(tmp_path, FakePowerShell())
    b.vhdx = b.workdir / "GMI Debian 12.vhdx"
    b.vhdx.write_bytes(b"disk")
    b.vm_tree = b.workdir / "hyperv-export"  # what export_disk named, never fetched
    checklist = ["n"]
    with pytest.raises(ExportError, match=r"the exported VM \(with its .vmcx\) is missing"):
        export.export(b, checklist, {"n": "passed"})
    assert not (tmp_path / "out" / "GMI-Debian-12.zip").exists()


def test_packaging_refuses_an_export_with_two_vmcx(tmp_path):
    from harness.errors import ExportError

    tree = tmp_path / "tree"
    (tree / "Virtual Machines").mkdir(parents=True)
    for n in ("a", "b"):
        (tree / "Virtual Machines" / f"{n}.vmcx").write_bytes(b"x")
    with pytest.raises(ExportError, match=r"holds 2 \.vmcx files"):
        writer.vm_tree_files(tree)


def test_the_build_vm_handle_exists_before_the_vm_does(tmp_path):
    """If New-VM fails half-way, teardown still knows the VM and the folder."""
    from harness.backends.hyperv.transport import ScriptError

    ps = fake_host(tmp_path)
    ps.replies["new_vm"] = ScriptError("new_vm.ps1 failed on hv01: the disk is full")
    b = make_build(tmp_path, ps)
    b.backend.check_host(b)
    with pytest.raises(ScriptError, match="the disk is full"):
        b.backend.provision(b)
    assert len(b.vms) == 1 and isinstance(b.vms[0], HyperVVM)
    b.vms[0].destroy()
    assert ps.params("remove_items")["VmNames"] == ["GMI Debian 12"]
    assert ps.params("remove_items")["Paths"] == [FOLDER]


@pytest.mark.parametrize(("values", "root", "replace"), [
    ({}, FOLDER + "\\gmi", True),
    ({"hyperv_export_dir": "E:\\GMI"}, "E:\\GMI\\GMI-Debian-12", False),
    ({"hyperv_export_dir": "E:\\GMI", "force": True}, "E:\\GMI\\GMI-Debian-12", True),
])
def test_the_export_goes_to_the_runs_folder_or_a_subfolder_of_the_users(tmp_path, values, root,
                                                                        replace):
    ps = fake_host(tmp_path)
    b = make_build(tmp_path, ps, **values)
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    b.backend.export_disk(b, b.workdir / "GMI Debian 12.vhdx")
    p = ps.params("export_vm")
    assert (p["Destination"], p["Replace"], p["Staging"]) == (root, replace, FOLDER + "\\export")
    assert b.record["hyperv_export"]["kept_on_host"] is bool(values)


def test_the_record_says_which_optimize_vhd_mode_really_ran(tmp_path):
    """Optimize-VHD -Mode Full on a VHDX that is not attached read-only runs as
    Prezeroed: the record and the step's name must not claim Full then."""
    steps: list[str] = []
    ps = fake_host(tmp_path)
    ps.replies["compact_disk"] = {**recorded("compact_disk"), "OptimizeMode": "Prezeroed",
                                  "MountError": "Mount-VHD : Access is denied."}
    b = make_build(tmp_path, ps)
    real_step = b.step

    def step(name: str):  # type: ignore[no-untyped-def]
        steps.append(name)
        return real_step(name)

    b.step = step  # type: ignore[method-assign]
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    b.backend.export_disk(b, b.workdir / "GMI Debian 12.vhdx")
    assert b.record["hyperv_export"]["optimize_mode"] == "Prezeroed"
    assert not any("Full" in name for name in steps)
    full = make_build(tmp_path / "full", fake_host(tmp_path))
    full.backend.check_host(full)
    full.vm = full.backend.provision(full)
    full.backend.export_disk(full, full.workdir / "GMI Debian 12.vhdx")
    assert full.record["hyperv_export"]["optimize_mode"] == "Full"


def test_compact_script_attaches_read_only_so_full_is_full():
    from harness.backends.hyperv.transport import script_text

    text = script_text("compact_disk")
    mount = text.index("Mount-VHD -Path $path -ReadOnly -NoDriveLetter")
    optimize = text.index("Optimize-VHD -Path $path -Mode $mode")
    dismount = text.index("if ($mode -eq 'Full') { Dismount-VHD -Path $path }")
    after = text.index("} finally {", optimize)
    assert mount < text.index("$mode = 'Prezeroed'") < optimize < after < dismount
    assert "Optimize-VHD -Path $path -Mode Full" not in text
    assert "OptimizeMode = $mode" in text


def test_compact_script_waits_for_the_merge_to_finish_really():
    from harness.backends.hyperv.transport import script_text

    text = script_text("compact_disk")
    remove = text.index("$checkpoints | Remove-VMSnapshot -Confirm:$false")
    loop = text[text.index("do {", remove):text.index("Merge-VHD")]
    assert loop.index("Start-Sleep -Seconds 2") < loop.index("$current = Get-VM -Name $Name")
    assert "} while ($merging -or $path -like '*.avhdx')" in loop
    assert "Merge-VHD -Path $path -DestinationPath $parent -Confirm:$false" in text
