"""Promote (``--gmi GMI-Debian-12.zip --backend=hyperv --promote``) from end to end
against the fake PowerShell transport: a disk-only archive (as the QEMU backend writes
it) is read and verified, its VHDX uploaded and hash-checked on the "host", wrapped in
a Generation 2 VM with the wizard's settings, exported without booting, cloned the
vmgenie way for the checks, and written as a full archive (``.vmcx`` included) to
``promoted/`` beside the input.

No Windows host exists here: the host is :class:`hyperv_fake.FakePowerShell` replaying
hand-written recordings (``tests/hyperv_recordings/``), the ``.vmcx`` is placeholder
bytes, and the checklist itself (SSH into the clone) is not driven: its outcomes are
given, as the plugin would record them. What is proven: the order and parameters of the
host scripts (no boot before the export), the hash checks, the gate, the archive's
layout, manifest and record, and that the input is never written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from harness.stages.s6_promote import promote
from hyperv_fake import FakePowerShell, Seq, make_build, recorded

from harness.archive import reader, vhdx, writer
from harness.archive.format import MANIFEST_KEYS
from harness.archive.promote import blocked, promoted_path, write_promoted
from harness.archive.validate import import_archive
from harness.backends.hyperv import services_problems
from harness.checklist import ITEMS, SERVICES_RUNNING
from harness.errors import ConfigError, ExportError, GmiError, HypervisorError
from harness.media import seed
from harness.settings import resolve

FOLDER = "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"
UPLOADED = FOLDER + "\\GMI Debian 12.vhdx"
EXPORTED = FOLDER + "\\gmi\\Virtual Hard Disks\\GMI Debian 12.vhdx"
VMCX = b"placeholder .vmcx written by the recording, not by Hyper-V"
RECORD = {"harness": "0.1.0", "backend": "qemu", "distro": "debian-12", "built": "2026-11-20T10:00:00Z",
          "versions": {"kernel": "6.1.0-28-amd64", "cloud-init": "22.4.2-1"},
          "check_results": {"test_kvp_reports_guest_ip[debian-12]": "skipped"}, "disk_only": True}


def disk_bytes(tmp_path: Path) -> bytes:
    """A real dynamic VHDX when qemu-img is here (nothing boots), else stand-in bytes."""
    if shutil.which("qemu-img") is None:
        return b"vhdxfile" + b"\0" * 65536
    path = tmp_path / "made.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(path), "64M"], check=True)
    return path.read_bytes()


def disk_only_archive(tmp_path: Path, disk: bytes) -> Path:
    """GMI-Debian-12.zip as the QEMU backend's export writes it: no .vmcx, disk_only."""
    names = reader.parse_name("GMI-Debian-12.zip")
    folder = tmp_path / "release"
    folder.mkdir(parents=True)
    disk_path = tmp_path / "disk.vhdx"
    disk_path.write_bytes(disk)
    manifest = writer.manifest(names, checksum=hashlib.sha256(disk).hexdigest(), description="Debian 12",
                               maintainer="m", maintainer_email="m@example.org",
                               source_url="https://example.org", created=RECORD["built"],
                               extra={"disk_only": True})
    archive = writer.write_archive(folder, names, disk_path, manifest,
                                   writer.readme(names, RECORD, True), RECORD, force=False)
    disk_path.unlink()
    return archive


def fake_host(*, export_changes_disk: bool = False) -> FakePowerShell:
    ps = FakePowerShell()

    def file_hash(params: dict) -> dict:
        data = ps.files[params["Path"]]
        return {**recorded("file_hash_vhdx"), "Path": params["Path"], "Length": len(data),
                "Sha256": hashlib.sha256(data).hexdigest().upper()}

    def export_vm(params: dict) -> dict:
        # Export-VM copies the (never booted) VM's files; the disk as it is
        disk = ps.files[UPLOADED] + (b"changed" if export_changes_disk else b"")
        tree = recorded("export_tree")
        for f in tree["Files"]:
            content = disk if f["Path"].endswith(".vhdx") else (
                VMCX if f["Path"].endswith(".vmcx") else b"\0" * 16)
            f["Length"] = len(content)
            ps.files[params["Destination"] + "\\" + f["Path"]] = content
        tree.update(Root=params["Destination"], VhdxSha256=hashlib.sha256(disk).hexdigest(),
                    Vhdx=params["Destination"] + "\\Virtual Hard Disks\\GMI Debian 12.vhdx")
        return tree

    ps.replies.update({
        "file_hash": file_hash, "new_vm": recorded("new_vm_promote"), "export_vm": export_vm,
        "vm_status": Seq([recorded("vm_status_booting"), recorded("vm_status_kvp")]),
        "new_clone_vm": lambda p: {"Name": p["Name"], "Id": "c", "Vhdx": "v", "State": "Running"},
        "integration_services": recorded("integration_services"),
    })
    return ps


def promoting_build(tmp_path: Path, ps: FakePowerShell, archive: Path, **values):
    b = make_build(tmp_path, ps, gmi=str(archive), promote=True, **values)
    b.archive = archive
    b.subject = f"gmi:{archive}"
    return b


def passing_outcomes(archive: Path) -> tuple[dict[str, str], dict[str, str]]:
    """What the plugin would have recorded for an archive whose every check passed:
    its static checks, and one test per checklist item (the Hyper-V-only one included)."""
    sid = archive.name
    labels = {f"checks/test_checklist.py::test_{i}[{sid}]": item for i, item in enumerate(ITEMS)}
    outcomes = dict.fromkeys(labels, "passed")
    outcomes[f"checks/test_archive.py::test_manifest[{sid}]"] = "passed"
    return outcomes, labels


def test_a_disk_only_gmi_is_promoted_end_to_end(tmp_path):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    before = (archive.read_bytes(), archive.stat().st_mtime_ns)
    ps = fake_host()
    b = promoting_build(tmp_path, ps, archive)
    backend = b.backend

    backend.check_host(b)
    import_archive(b)  # the validator: static checks, disk extracted and verified
    promote(b)         # upload, VM, export (never booted), fetch the VM's files
    assert b.vm_tree is not None and (b.vm_tree / "Virtual Machines").is_dir()

    iso = seed.write_iso(seed.render(seed.SeedSpec(
        instance_id="i-1", hostname="gmi-check-debian-12", username="genie",
        ssh_public_key="ssh-ed25519 AAAA test", timezone="America/Chicago",
        locale="en_US.UTF-8", keyboard_layout="us", groups=("sudo",))),
        b.workdir / "clone-seed.iso")
    assert b.vhdx is not None
    clone = backend.clone(b, b.vhdx, iso, "clone")
    assert clone.ssh_host in backend.kvp_addresses(clone)          # KVP reports the IP
    assert services_problems(backend.integration_services(clone)) == []  # Get-VMIntegrationService
    clone.destroy()

    outcomes, labels = passing_outcomes(archive)
    promoted = write_promoted(b, outcomes, labels)
    for vm in b.vms:
        vm.destroy()

    assert ps.names() == [
        "host_info",                          # check_host: the switch exists
        "new_run_folder", "put", "file_hash",  # the run's folder; upload; SHA-256 on the host
        "new_vm",                             # the wizard's settings around the disk
        "export_vm",                          # Export-VM, never started before
        "import_check",                       # Compare-VM: would the export import?
        *["get"] * 3,                         # the exported VM's files (not the disk)
        "put", "new_clone_vm",                # the seed; the clone from the export
        "vm_status", "vm_status",             # its address: not yet, then KVP
        "vm_status", "integration_services",  # KVP and the host's view of its services
        "remove_items", "remove_items",       # the clone; the promoted VM and the run's folder
    ]
    assert "start_vm" not in ps.names()  # the image's first boot is the clone's, not ours
    assert ps.files[UPLOADED] == disk
    vm = ps.params("new_vm")
    assert vm["UseVhdx"] == UPLOADED and vm["Folder"] == FOLDER
    assert (vm["Name"], vm["DiskName"], vm["Version"]) == ("GMI Debian 12 (gmi-harness RUN main)",
                                                           "GMI Debian 12", "8.0")
    assert ps.params("export_vm")["ExportName"] == "GMI Debian 12"
    assert (vm["MemoryMB"], vm["DynamicMemory"], vm["SecureBoot"], vm["SecureBootTemplate"]) == (
        b.distro.hyperv.memory_mb, b.distro.hyperv.dynamic_memory, True,
        "MicrosoftUEFICertificateAuthority")
    assert not {"InstallIso", "AnswerIso", "BaseVhdx", "SizeBytes"} & set(vm)
    assert ps.params("new_clone_vm")["SourceVhdx"] == EXPORTED
    assert [p["remote"] for n, p in ps.calls if n == "get"] == [
        FOLDER + "\\gmi\\Virtual Machines\\5F0E6A0C-3B7E-4C55-9A57-1C2D3E4F5A6B." + ext
        for ext in ("vmcx", "vmgs", "VMRS")]

    # The full archive, beside the input, never over it.
    assert promoted == archive.parent / "promoted" / "GMI-Debian-12.zip" == promoted_path(archive)
    assert (archive.read_bytes(), archive.stat().st_mtime_ns) == before
    names = b.distro.vmgenie
    with reader.open_archive(promoted) as zf:
        manifest = reader.read_manifest(zf, names, strict_keys=True)
        lay = reader.layout(zf, names, manifest)
        record = yaml.safe_load(zf.read("gmi-build-record.yml"))
        assert zf.read(lay.vmcx_entry or "") == VMCX
        assert zf.read(names.vhdx_entry) == disk
        readme = zf.read("GMI-Debian-12.md").decode()
    assert tuple(manifest) == MANIFEST_KEYS  # vmgenie's keys exactly: no disk_only
    assert manifest["checksum_sha256"] == hashlib.sha256(disk).hexdigest()
    assert manifest["created"] == RECORD["built"] and manifest["updated"] >= manifest["created"]
    assert not lay.disk_only and lay.snapshots_dir
    assert "Disk-only archive" not in readme
    assert record["disk_only"] is False and record["backend"] == "qemu"
    assert record["build_check_results"] == RECORD["check_results"]
    assert record["check_items"][f"test_4[{archive.name}]"] == SERVICES_RUNNING
    assert record["promoted"]["from_archive"] == "GMI-Debian-12.zip"
    assert record["promoted"]["booted_before_export"] is False
    assert record["promoted"]["disk_fetched_back"] is False
    assert record["hyperv_vm"]["BootOrder"] == ["Drive"]  # Set-VMFirmware -BootOrder <disk>
    sidecar = promoted.with_name("GMI-Debian-12.zip.sha256").read_text()
    assert sidecar.split()[0] == hashlib.sha256(promoted.read_bytes()).hexdigest()
    if shutil.which("qemu-img"):
        extracted = tmp_path / "check.vhdx"
        extracted.write_bytes(disk)
        vhdx.require_dynamic(vhdx.inspect(extracted))


def test_an_archive_that_fails_the_static_checks_is_refused_untouched(tmp_path):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    # the manifest's checksum no longer matches the disk: what vmgenie's import refuses
    broken = tmp_path / "broken" / "GMI-Debian-12.zip"
    broken.parent.mkdir()
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "GMI-Debian-12.yml":
                data = data.replace(hashlib.sha256(disk).hexdigest().encode(), b"0" * 64)
            dst.writestr(info, data)
    before = (broken.read_bytes(), broken.stat().st_mtime_ns)
    ps = fake_host()
    b = promoting_build(tmp_path, ps, broken)
    b.backend.check_host(b)
    with pytest.raises(GmiError, match=r"SHA-256|checksum"):
        import_archive(b)
    assert ps.names() == ["host_info"]  # nothing uploaded, no VM
    assert (broken.read_bytes(), broken.stat().st_mtime_ns) == before
    assert not (broken.parent / "promoted").exists()


def test_a_full_archive_is_not_promoted_again(tmp_path):
    ps = fake_host()
    b = promoting_build(tmp_path, ps, tmp_path / "GMI-Debian-12.zip")
    b.record["layout"] = {"disk_only": False,
                          "vmcx_entry": "Virtual Machines/5F0E6A0C-3B7E-4C55-9A57-1C2D3E4F5A6B.vmcx"}
    with pytest.raises(GmiError, match=r"already holds a \.vmcx .* nothing to promote"):
        promote(b)
    assert ps.names() == []


def test_a_broken_upload_stops_before_any_vm_exists(tmp_path):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    ps = fake_host()
    real_put = ps.put

    def truncating_put(local: Path, remote: str) -> None:
        real_put(local, remote)
        ps.files[remote] = ps.files[remote][:-1]

    ps.put = truncating_put  # type: ignore[method-assign]
    b = promoting_build(tmp_path, ps, archive)
    b.backend.check_host(b)
    import_archive(b)
    with pytest.raises(HypervisorError, match=r"the uploaded VHDX .* the upload broke; run again"):
        promote(b)
    assert "new_vm" not in ps.names()
    for vm in b.vms:  # teardown still removes the run's folder with the upload
        vm.destroy()
    assert ps.params("remove_items")["Paths"] == [FOLDER] and ps.params("remove_items")["VmNames"] == []


def test_a_disk_that_export_vm_changed_is_fetched_back_and_archived_as_exported(tmp_path):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    ps = fake_host(export_changes_disk=True)
    b = promoting_build(tmp_path, ps, archive)
    b.backend.check_host(b)
    import_archive(b)
    promote(b)
    assert b.record["promoted"]["disk_fetched_back"] is True
    assert EXPORTED in [p["remote"] for n, p in ps.calls if n == "get"]
    outcomes, labels = passing_outcomes(archive)
    promoted = write_promoted(b, outcomes, labels)
    with reader.open_archive(promoted) as zf:
        manifest = reader.read_manifest(zf, b.distro.vmgenie)
    assert manifest["checksum_sha256"] == hashlib.sha256(disk + b"changed").hexdigest()


@pytest.mark.parametrize(("change", "reason"), [
    ({"checks/test_checklist.py::test_1[GMI-Debian-12.zip]": "failed"}, "test_1"),
    ({"checks/test_checklist.py::test_4[GMI-Debian-12.zip]": "skipped"},
     "'integration services running (Hyper-V)' (no test of it passed)"),
    ({"checks/test_archive.py::test_manifest[GMI-Debian-12.zip]": "failed"}, "test_manifest"),
])
def test_nothing_is_written_unless_every_check_passed(tmp_path, change, reason):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    ps = fake_host()
    b = promoting_build(tmp_path, ps, archive)
    b.backend.check_host(b)
    import_archive(b)
    promote(b)
    outcomes, labels = passing_outcomes(archive)
    assert blocked(outcomes, labels) == []
    outcomes.update(change)
    with pytest.raises(ExportError, match=r"^promotion refused: these checks did not pass: .*"
                                          + reason.replace("(", r"\(").replace(")", r"\)")):
        write_promoted(b, outcomes, labels)
    assert not promoted_path(archive).exists()


def test_an_existing_promoted_archive_is_replaced_only_with_force(tmp_path):
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    target = promoted_path(archive)
    target.parent.mkdir()
    target.write_bytes(b"an earlier promotion")
    ps = fake_host()
    b = promoting_build(tmp_path, ps, archive)
    b.backend.check_host(b)
    import_archive(b)
    promote(b)
    outcomes, labels = passing_outcomes(archive)
    with pytest.raises(ExportError, match="already exists; pass --force"):
        write_promoted(b, outcomes, labels)
    assert target.read_bytes() == b"an earlier promotion"


@pytest.mark.parametrize(("values", "message"), [
    ({"promote": True, "gmi": "x.zip"}, r"--promote needs a backend that writes the \.vmcx vmgenie imports; "
     r"the qemu backend writes disk-only archives \(one that can: --backend=hyperv\)"),
    ({"promote": True, "backend": "hyperv"}, "--promote takes the disk-only archives to promote with --gmi"),
])
def test_promote_settings_are_checked_first(values, message):
    """(Where the backend is chosen: a class fact of it, writes_vmcx.)"""
    from harness.backends import choose

    with pytest.raises(ConfigError, match=message):
        choose(resolve(values, env={}))


def test_the_new_vm_script_attaches_the_disk_as_it_is():
    from harness.backends.hyperv.transport import script_text

    text = script_text("new_vm")
    use = text.index("if ($UseVhdx) {")
    assert use < text.index("} elseif ($BaseVhdx) {") < text.index("New-VHD @vhdArgs")
    assert "if ([IO.Path]::GetFullPath($UseVhdx) -ne $vhdx) { throw" in text  # named after the GMI
    assert "Start-VM" not in text  # never started here


def test_promoting_in_a_pytest_run_deselects_the_export_of_builds(tmp_path):
    """The plugin's collection with --promote: the promoted-archive test is collected for
    the archive, the build export is not; without --promote it is deselected."""
    disk = disk_bytes(tmp_path)
    archive = disk_only_archive(tmp_path, disk)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}

    def collect(*extra: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "checks", "--collect-only", "-q",
             f"--gmi={archive}", f"--out={tmp_path / 'out'}", "-p", "no:cacheprovider", *extra],
            cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False).stdout

    promoting = collect("--backend=hyperv", "--promote", "--hyperv-host=hv01", "--hyperv-user=me",
                        "--hyperv-switch=X")
    assert "test_export.py::test_promoted_gmi_archive[GMI-Debian-12.zip]" in promoting
    assert "test_export_gmi_archive" not in promoting
    plain = collect()
    assert "test_archive_name_follows_vmgenie[GMI-Debian-12.zip]" in plain  # it did collect
    assert "test_promoted_gmi_archive" not in plain


def test_promote_is_the_backends_own_capability_and_qemu_refuses_it(tmp_path):
    """The stage asks ``Backend.promote``; a backend that writes no .vmcx refuses in one
    line. The stage knows no backend: of ``harness.backends`` it may import only
    ``base`` (here: nothing at all)."""
    import ast

    from harness.stages import s6_promote

    from harness import distro as distro_mod
    from harness.backends.qemu.backend import QemuBackend
    from harness.build import Build

    source = Path(s6_promote.__file__).read_text()
    nodes = list(ast.walk(ast.parse(source)))
    imported = {n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    backends = {m for m in imported if m.startswith("harness.backends")}
    assert backends <= {"harness.backends.base"}, backends
    assert "isinstance" not in source
    b = Build(distro_mod.load("debian-12"), resolve({}, env={}), QemuBackend(), "r", tmp_path,
              tmp_path / "logs")
    b.record["layout"] = {"disk_only": True, "vmcx_entry": None}
    with pytest.raises(ConfigError, match=r"^--promote needs a backend that writes the \.vmcx .* "
                                          r"the qemu backend cannot$"):
        promote(b)
