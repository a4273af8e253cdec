"""The Hyper-V backend against a MODEL of a Hyper-V host built from Microsoft's
documentation (tests/hyperv_model.py), NOT a real host: no Windows host exists on the
machines this harness is developed on.

Each test is a class of the review's findings (../shared/reference/hyperv-review.md,
docs/hyperv.md's table): a condition under which a real host, as Microsoft documents
it, refuses or misleads. They were written before their fixes and failed then
(docs/hyperv.md says how each failed). What they prove is the backend's behaviour on
the model; how faithful the model is to a real host is what its docstring says, and the
scripts themselves are stood in for by their Python twins (tests/hyperv_model_scripts.py,
held to each script's cmdlet calls by ``HostModel.check_twins`` after every test).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hyperv_fake import make_build
from hyperv_model import Guest, HostError, HostModel, key

from harness.backends.hyperv import HyperVBackend
from harness.build import Build
from harness.errors import ConfigError, GmiError, HypervisorError
from harness.media import seed

ISO = "D:\\iso\\debian-12.8.0-amd64-netinst.iso"
ISO_BYTES = b"the install ISO"
CANONICAL = "GMI Debian 12"


@pytest.fixture
def host() -> Iterator[HostModel]:
    h = HostModel("winserver2022-ps")
    yield h
    h.check_twins()


def on(h: HostModel, tmp_path: Path, **values: Any) -> Build:
    """A debian-12 build on the modelled host, installing from an ISO on the host."""
    if not h.exists(ISO):
        h.write(ISO, ISO_BYTES)
    values.setdefault("hyperv_install_sha256", hashlib.sha256(ISO_BYTES).hexdigest())
    return make_build(tmp_path, h, hyperv_install_iso=ISO, **values)  # type: ignore[arg-type]


def seed_iso(b: Build) -> Path:
    return seed.write_iso(seed.render(seed.SeedSpec(
        instance_id="i-1", hostname="gmi-check-debian-12", username="genie",
        ssh_public_key="ssh-ed25519 AAAA test", timezone="America/Chicago",
        locale="en_US.UTF-8", keyboard_layout="us", groups=("sudo",))), b.workdir / "clone-seed.iso")


def build_and_export(h: HostModel, b: Build) -> Any:
    """Step 1 to the export on the host; the guest-side stages run over SSH (not here):
    the seal's power-off is the guest turning the VM off."""
    backend = b.backend
    assert isinstance(backend, HyperVBackend)
    backend.check_host(b)
    b.vm = backend.provision(b)
    h.guest_powers_off(model_vm(h, b.vm))
    b.vhdx = b.workdir / f"{CANONICAL}.vhdx"
    exported = backend.export_disk(b, b.vhdx)
    b.vm_tree = exported.vm_tree
    return exported


def clone(b: Build) -> Any:
    assert b.vhdx is not None
    return b.backend.clone(b, b.vhdx, seed_iso(b), "clone")


def teardown(b: Build) -> None:
    """The end of the run, as the build fixture ends it (backends/base.py release)."""
    from harness.backends.base import release

    release(b.vms, False, print)


def exported_config(b: Build) -> dict[str, Any]:
    """The model's .vmcx as the harness fetched it (JSON: only Hyper-V writes the real one)."""
    assert b.vm_tree is not None
    (vmcx,) = (b.vm_tree / "Virtual Machines").glob("*.vmcx")
    data = vmcx.read_bytes()
    assert data.startswith(b"model-vmcx:")
    return json.loads(data[len(b"model-vmcx:"):])


def import_on(version: str, b: Build) -> list[dict[str, Any]]:
    """vmgenie's import on another modelled host: the archive's tree copied there,
    ``Import-VM -Path <vmcx> -Copy -GenerateNewId:$false``'s compatibility report."""
    assert b.vm_tree is not None and b.vhdx is not None
    consumer = HostModel(version, switches=("Default Switch",))
    root = "E:\\vmgenie\\tmp\\GMI-Debian-12"
    consumer.mkdir(f"{root}\\Virtual Machines")
    consumer.mkdir(f"{root}\\Virtual Hard Disks")
    for f in (b.vm_tree / "Virtual Machines").iterdir():
        consumer.write(f"{root}\\Virtual Machines\\{f.name}", f.read_bytes())
    consumer.write(f"{root}\\Virtual Hard Disks\\{CANONICAL}.vhdx", b.vhdx.read_bytes())
    (vmcx,) = (b.vm_tree / "Virtual Machines").glob("*.vmcx")
    return consumer.compatibility(f"{root}\\Virtual Machines\\{vmcx.name}", None, generate_new_id=False)


def model_vm(h: HostModel, handle: Any) -> Any:
    """The modelled VM behind a backend's VM handle (by its Id; by its name before the
    handles had one)."""
    ident = getattr(handle, "id", "")
    if ident:
        return h.vms[ident]
    (vm,) = h.vm_named(handle.name)
    return vm


def touched(h: HostModel, vm_id: str) -> list[str]:
    """The cmdlets (other than Get-VM) a script passed this VM to."""
    return [c for s, c, _ in h.calls if s and c != "Get-VM" and vm_id in h.vm_args.get((s, c), set())]


# --- 2: a host that also runs vmgenie ------------------------------------------------


def test_a_host_that_runs_vmgenie_builds_beside_its_base_vm_and_never_touches_it(host, tmp_path):
    """vmgenie's ImportGmi leaves its base VM registered as 'GMI Debian 12' (its name,
    no Notes). The build runs under a name of its own, addresses its VMs by Id, is
    'GMI Debian 12' only around Export-VM, and never passes vmgenie's VM to a cmdlet."""
    base = host.add_vm(CANONICAL)
    before = (base.name, base.notes, base.state, [d.path for d in base.drives], base.boot_order[:])
    base_disk = host.read(base.drives[0].path)
    b = on(host, tmp_path)
    build_and_export(host, b)
    c = clone(b)
    assert c.ssh_host == "192.168.50.23"
    teardown(b)
    assert host.vms[base.id] is base and host.vm_named(CANONICAL) == [base]
    assert (base.name, base.notes, base.state, [d.path for d in base.drives], base.boot_order) == before
    assert host.read(base.drives[0].path) == base_disk
    assert touched(host, base.id) == []
    assert exported_config(b)["Name"] == CANONICAL  # what vmgenie imports and looks up
    made = host.params("new_vm")["Name"]
    assert made != CANONICAL and made.startswith(CANONICAL)  # unique, and still says what it is
    by_name = [n for n, p in host.scripts_run
               if "Name" in p and n not in ("new_vm", "new_clone_vm", "new_run_folder")]
    assert by_name == [], f"scripts that looked a VM up by name: {by_name}"
    assert len(host.vms) == 1  # everything the run made is gone


def test_adopting_by_a_name_two_vms_share_is_refused_with_their_ids(host, tmp_path):
    person = host.add_vm(CANONICAL)
    vmgenies = host.add_vm(CANONICAL)
    b = on(host, tmp_path, hyperv_base_vm=CANONICAL, hyperv_base_key=str(tmp_path / "k"))
    b.backend.check_host(b)
    with pytest.raises(HypervisorError, match="2 VMs are named 'GMI Debian 12'") as err:
        b.backend.provision(b)
    assert person.id in str(err.value) and vmgenies.id in str(err.value)
    assert touched(host, person.id) == touched(host, vmgenies.id) == []


def test_promote_on_a_vmgenie_host(host, tmp_path):
    """--promote wraps the disk in a VM of its own name too, beside vmgenie's base VM."""
    from harness.stages.s6_promote import promote
    from test_hyperv_promote import disk_bytes, disk_only_archive, promoting_build

    from harness.archive.validate import import_archive

    base = host.add_vm(CANONICAL)
    archive = disk_only_archive(tmp_path, disk_bytes(tmp_path))
    b = promoting_build(tmp_path, host, archive)  # type: ignore[arg-type]
    b.backend.check_host(b)
    import_archive(b)
    promote(b)
    assert exported_config(b)["Name"] == CANONICAL
    assert exported_config(b)["Version"] == "8.0"
    assert host.params("new_vm")["Name"] != CANONICAL
    teardown(b)
    assert host.vm_named(CANONICAL) == [base] and touched(host, base.id) == []


# --- 3: the configuration version ----------------------------------------------------


@pytest.mark.parametrize("consumer", ["winserver2016-ps", "winserver2019-ps", "winserver2022-ps",
                                      "winserver2025-ps"])
def test_a_gmi_built_on_server_2025_imports_on_every_supported_host(tmp_path, consumer):
    h = HostModel("winserver2025-ps")  # its default configuration version is 12.0
    b = on(h, tmp_path)
    build_and_export(h, b)
    assert exported_config(b)["Version"] == "8.0"
    assert import_on(consumer, b) == []
    record = b.record["hyperv_config_version"]
    assert record["vm"] == "8.0" and record["host_default"] == "12.0"
    assert "8.0" in record["host_supported"] and "Windows Server 2016" in record["imports_on"]
    h.check_twins()


def test_the_vm_version_is_an_option_checked_against_the_host_read_once(host, tmp_path):
    b = on(host, tmp_path, hyperv_vm_version="9.0")
    build_and_export(host, b)
    assert exported_config(b)["Version"] == "9.0"
    assert import_on("winserver2019-ps", b) == []
    with pytest.raises(HostError, match=r"configuration version 9\.0 is not supported"):
        import_on("winserver2016-ps", b)
    second = on(host, tmp_path / "2", hyperv_vm_version="9.0")
    second.backend = b.backend  # the same worker: the host's versions are known already
    second.backend.check_host(second)
    assert host.names_run().count("host_info") == 1  # the host's versions read once for both
    bad = on(host, tmp_path / "3", hyperv_vm_version="12.0")
    with pytest.raises(ConfigError, match=r"^--hyperv-vm-version 12\.0: hv01 \(HV01\) supports "
                                          r"8\.0, .*10\.0$"):
        bad.backend.check_host(bad)
    with pytest.raises(ConfigError, match="hyperv_vm_version"):
        on(host, tmp_path / "4", hyperv_vm_version="eight")


# --- 4: the export is proven importable -------------------------------------------------


def test_compare_vm_runs_after_export_and_registers_nothing(host, tmp_path):
    b = on(host, tmp_path)
    build_and_export(host, b)
    report = b.record["hyperv_import_check"]
    assert report["incompatibilities"] == [] and report["vmcx"].endswith(".vmcx")
    assert report["vmcx"].startswith(host.params("export_vm")["Destination"])
    assert host.names_run().index("import_check") == host.names_run().index("export_vm") + 1
    assert not host.exists(host.params("import_check")["Scratch"])  # the scratch folder went
    assert sum(1 for v in host.vms.values()) == 1  # Compare-VM registered nothing


def test_an_incompatibility_fails_the_checklist_item_in_hyperv_s_words(host, tmp_path):
    import importlib.util

    from harness import shipped

    path = shipped("checks") / "test_checklist.py"
    spec = importlib.util.spec_from_file_location("gmi_test_checklist", path)
    assert spec is not None and spec.loader is not None
    test_checklist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_checklist)
    real = host.compatibility
    host.compatibility = lambda *a, **k: [*real(*a, **k), {  # type: ignore[method-assign]
        "MessageId": 33012, "Message": "Could not find Ethernet switch 'Production'."}]
    b = on(host, tmp_path)
    build_and_export(host, b)
    with pytest.raises(AssertionError, match=r"33012: Could not find Ethernet switch 'Production'\."):
        test_checklist.test_exported_vm_imports_on_hyperv(b)


# --- 1: Windows Server 2016 -------------------------------------------------------------


def test_a_server_2016_host_builds(tmp_path):
    h = HostModel("winserver2016-ps")
    b = on(h, tmp_path)
    build_and_export(h, b)
    clone(b)
    teardown(b)
    assert b.record["hyperv_config_version"]["vm"] == "8.0"
    h.check_twins()


# --- 8: vmgenie's VM shape ----------------------------------------------------------------


def test_the_clone_is_vmgenies_vm(host, tmp_path):
    b = on(host, tmp_path)
    build_and_export(host, b)
    c = clone(b)
    vm = model_vm(host, c)
    assert (vm.processors, vm.memory_startup, vm.dynamic_memory) == (1, 512 << 20, False)
    assert (vm.secure_boot, vm.template) == ("On", "MicrosoftUEFICertificateAuthority")
    assert b.record["clone_shape"]["memory_mb"] == 512
    build_vm = model_vm(host, b.vm)
    assert (build_vm.processors, build_vm.memory_startup) == (2, 4096 << 20)  # its own size


# --- 18: no Save, no start with the host, no checkpoints -----------------------------------


def test_build_and_clone_vms_do_not_save_start_with_the_host_or_checkpoint(host, tmp_path):
    b = on(host, tmp_path)
    build_and_export(host, b)
    c = clone(b)
    for vm in (model_vm(host, b.vm), model_vm(host, c)):
        assert (vm.automatic_stop_action, vm.automatic_start_action, vm.checkpoint_type) == (
            "ShutDown", "Nothing", "Disabled"), vm.name


# --- 20: the boot order Microsoft documents ----------------------------------------------


def test_the_recorded_boot_order_is_what_set_vmfirmware_leaves(host, tmp_path):
    """Set-VMFirmware -BootOrder DVD,disk removes the network entry (example 3)."""
    b = on(host, tmp_path)
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    assert b.record["hyperv_vm"]["BootOrder"] == ["Drive", "Drive"]


# --- 6: uploads -------------------------------------------------------------------------------


def provision_from_a_local_iso(host: HostModel, tmp_path: Path) -> tuple[Path, str]:
    """Step 1 with a local install ISO (256 KiB: several chunks), uploaded into the run's
    folder; the ISO and that folder."""
    iso = tmp_path / "debian-12.8.0-amd64-netinst.iso"
    iso.write_bytes(bytes(range(256)) * 1024)
    b = make_build(tmp_path, host, hyperv_install_iso=str(iso),  # type: ignore[arg-type]
                   hyperv_install_sha256=hashlib.sha256(iso.read_bytes()).hexdigest())
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    folder = b.backend.folder(b)  # type: ignore[attr-defined]
    assert host.read(f"{folder}\\{iso.name}") == iso.read_bytes()
    return iso, folder


def test_an_upload_that_breaks_resumes_inside_the_run_folder_and_is_verified(host, tmp_path):
    host.break_upload_at = 100_000
    iso, folder = provision_from_a_local_iso(host, tmp_path)
    outside = [p for p in host.files if not p.startswith(key(folder)) and p.endswith((".tmp", ".part"))]
    assert outside == [] and not host.exists(f"{folder}\\{iso.name}.part")


def test_an_upload_whose_checksum_differs_is_removed_and_sent_again(host, tmp_path):
    host.corrupt_next_chunk = True
    provision_from_a_local_iso(host, tmp_path)
    assert host.names_run().count("finish_upload") == 2  # refused once, then the good copy


def test_the_janitor_lists_a_dead_runs_partial_upload(host, tmp_path):
    from harness.backends.hyperv import janitor

    folder = f"{host.vhd_root}\\gmi-harness-OLD-gw0-debian-12"
    host.mkdir(folder)
    host.write(f"{folder}\\gmi-run.json", json.dumps({"notes": (
        "gmi-harness run=OLD worker=gw0 distro=debian-12 client=elsewhere pid=1 "
        "started=2020-01-01T00:00:00Z")}).encode())
    host.write(f"{folder}\\GMI Debian 12.vhdx.part", b"x" * 5000)
    lines: list[str] = []
    b = on(host, tmp_path)
    janitor.run(b.settings, "list", out=lines.append, transport=lambda s, name: host)
    assert any("GMI Debian 12.vhdx.part" in line and "5000 bytes" in line for line in lines), lines


# --- 10: errors are not hidden -------------------------------------------------------------


def test_access_denied_is_not_reported_as_a_missing_vm(host, tmp_path):
    b = on(host, tmp_path)
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    host.permission_denied = True
    with pytest.raises(GmiError, match="required permission") as err:
        b.vm.is_running()
    assert "no VM" not in str(err.value)


# --- 11: an adopted VM's media and checkpoints --------------------------------------------


def test_an_adopted_vms_iso_stays_out_of_the_export_and_its_checkpoints_are_named(host, tmp_path,
                                                                                   monkeypatch):
    import harness.backends.hyperv.backend as backend_mod

    monkeypatch.setattr(backend_mod, "authorize_build_key", lambda build, vm: None)
    person = host.add_vm("debian by hand", dvd=ISO, checkpoints=2, state="Running", version="8.0",
                         disk="D:\\Hyper-V\\debian by hand\\GMI Debian 12.vhdx")
    host.write(ISO, ISO_BYTES)
    b = on(host, tmp_path, hyperv_base_vm="debian by hand", hyperv_base_key=str(tmp_path / "k"))
    warnings: list[str] = []
    b.progress = warnings.append
    build_and_export(host, b)
    assert exported_config(b)["DvdPaths"] == [None]
    assert import_on("winserver2019-ps", b) == []  # no ISO path the importing host lacks
    assert [d.path for d in person.dvds()] == [ISO]  # the person's VM gets its ISO back
    assert any("2 checkpoints" in w for w in warnings), warnings
    assert len(b.record["hyperv_adopted"]["checkpoints"]) == 2
    teardown(b)
    assert person.id in host.vms  # adopted: stopped, never removed


def test_an_adopted_vm_newer_than_the_asked_version_or_with_a_disk_named_otherwise_is_refused(
        host, tmp_path):
    """An adopted VM keeps its configuration version and its disk's file name (vmgenie
    finds the disk by it): both are checked before anything is changed."""
    newer = host.add_vm("newer", version="10.0", disk="D:\\Hyper-V\\newer\\GMI Debian 12.vhdx")
    b = on(host, tmp_path, hyperv_base_vm="newer", hyperv_base_key=str(tmp_path / "k"))
    b.backend.check_host(b)
    with pytest.raises(GmiError, match=r"configuration version 10\.0, newer than "
                                       r"--hyperv-vm-version 8\.0: .* New-VM -Version 8\.0"):
        b.backend.provision(b)
    other = host.add_vm("other disk", version="8.0")
    b = on(host, tmp_path / "2", hyperv_base_vm="other disk", hyperv_base_key=str(tmp_path / "k"))
    b.backend.check_host(b)
    with pytest.raises(GmiError, match=r"its disk is 'other disk.vhdx'; .* 'GMI Debian 12.vhdx'"):
        b.backend.provision(b)
    for vm in (newer, other):  # read, never changed
        assert set(touched(host, vm.id)) <= {"Get-VMHardDiskDrive"}, touched(host, vm.id)
        assert vm.automatic_checkpoints is True and vm.state == "Off"


# --- 12: right after power-off the disk is still in use -------------------------------------


def test_a_disk_still_in_use_after_power_off_is_waited_for(host, tmp_path):
    host.held_after_off = 2
    b = on(host, tmp_path)
    build_and_export(host, b)
    assert b.record["hyperv_export"]["optimize_mode"] == "Full"
    c = clone(b)
    host.turn_off(model_vm(host, c))
    teardown(b)  # Remove-Item of a disk held a moment longer
    assert len(host.vms) == 0


# --- 14: a session that broke during Export-VM ---------------------------------------------


def test_clean_up_after_a_broken_export_waits_for_it(host, tmp_path):
    b = on(host, tmp_path)
    b.backend.check_host(b)
    b.vm = b.backend.provision(b)
    vm = model_vm(host, b.vm)
    host.guest_powers_off(vm)
    host.break_session["export_vm"] = lambda: setattr(vm, "status", ["Exporting"] * 3)
    with pytest.raises(GmiError, match="broke"):
        b.backend.export_disk(b, b.workdir / "x.vhdx")
    teardown(b)
    assert len(host.vms) == 0 and not host.exists(b.backend.folder(b))  # type: ignore[attr-defined]


# --- 15: a folder mounted on the same drive letter ---------------------------------------


def test_an_export_dir_on_a_volume_mounted_in_a_folder_is_copied(tmp_path):
    h = HostModel("winserver2022-ps", volumes=("C:\\", "D:\\", "D:\\Mounts\\Export"))
    h.mkdir("D:\\Mounts\\Export")
    b = on(h, tmp_path, hyperv_export_dir="D:\\Mounts\\Export")
    build_and_export(h, b)
    assert h.exists("D:\\Mounts\\Export\\GMI-Debian-12\\Virtual Hard Disks\\GMI Debian 12.vhdx")
    h.check_twins()


# --- 16: forward slashes ---------------------------------------------------------------------


def test_forward_slashes_in_the_vhd_path(host, tmp_path):
    """--hyperv-vhd-path D:/VMs: Join-Path on the host keeps the '/', Python's Windows
    paths do not; promote's disk must still be found as the one named after the VM."""
    from harness.stages.s6_promote import promote
    from test_hyperv_promote import disk_bytes, disk_only_archive, promoting_build

    from harness.archive.validate import import_archive

    host.mkdir("D:\\VMs")
    archive = disk_only_archive(tmp_path, disk_bytes(tmp_path))
    b = promoting_build(tmp_path, host, archive, hyperv_vhd_path="D:/VMs")  # type: ignore[arg-type]
    b.backend.check_host(b)
    import_archive(b)
    promote(b)
    assert key(b.record["hyperv_vm"]["Vhdx"]).startswith("d:\\vms\\gmi-harness-")


# --- 17: a file the account may not read ----------------------------------------------------


def test_an_unreadable_iso_says_access_denied_not_missing(host, tmp_path):
    host.write(ISO, ISO_BYTES)
    host.denied.add(ISO)
    b = on(host, tmp_path)
    b.backend.check_host(b)
    with pytest.raises(GmiError, match="is denied") as err:
        b.backend.provision(b)
    assert "no such file" not in str(err.value)


# --- 9: typing the boot command -----------------------------------------------------------------


def test_typing_is_paced_and_4096_means_started(host, tmp_path):
    host.keyboard_return = 4096  # "job started" (Msvm_Keyboard)
    host.keyboard_drops = True   # unpaced long runs lose keys (hashicorp/packer#5291)
    text = "auto url=http://10.0.0.5/preseed.cfg priority=critical locale=en_US.UTF-8"
    b = on(host, tmp_path, hyperv_boot_command=f"<esc><wait>{text}<enter>")
    b.backend.check_host(b)
    b.backend.provision(b)
    typed = "".join(t for t in host.typed if not t.startswith("<"))
    assert typed == text


# --- 7 and the preflight: rights on the VHD folder, the module's parameters -------------------


def test_a_vhd_folder_the_account_cannot_change_fails_before_anything_is_made(tmp_path):
    h = HostModel("winserver2022-ps", admin=False, inherited_modify=False)
    b = on(h, tmp_path)
    with pytest.raises(HypervisorError, match=r"icacls .*\(OI\)\(CI\)M") as err:
        b.backend.check_host(b)
    assert "\n" not in str(err.value)
    assert h.vms == {} and not any("gmi-harness" in p for p in h.dirs)
    h.check_twins()


def test_a_module_without_a_parameter_the_scripts_use_fails_in_one_line(tmp_path, monkeypatch):
    import hyperv_model

    monkeypatch.setattr(hyperv_model, "ABSENT", {*hyperv_model.ABSENT,
                                                 ("winserver2022-ps", "compare-vm", "generatenewid")})
    h = HostModel("winserver2022-ps")
    b = on(h, tmp_path)
    with pytest.raises(HypervisorError, match=r"Compare-VM -GenerateNewId") as err:
        b.backend.check_host(b)
    assert "\n" not in str(err.value) and h.vms == {}
    h.check_twins()


def test_a_vhd_folder_that_does_not_exist_is_named_as_such(host, tmp_path):
    b = on(host, tmp_path, hyperv_vhd_path="E:\\VMs")
    with pytest.raises(HypervisorError, match=r"the VHD folder E:\\VMs does not exist on HV01"):
        b.backend.check_host(b)


def test_a_healthy_host_preflight_leaves_nothing_behind(host, tmp_path):
    b = on(host, tmp_path)
    b.backend.check_host(b)
    assert not any("preflight" in p for p in [*host.dirs, *host.files])
    assert b.record["hyperv_host_os"]["build"] == 20348


# --- the guest model's own sanity ------------------------------------------------------------


def test_the_model_refuses_what_a_host_refuses(host):
    with pytest.raises(Exception, match="A parameter cannot be found"):
        host.cmd("Get-VM", Identifier="x")
    vm = host.add_vm("a")
    host.add_vm("a")
    assert len(host.cmd("Get-VM", Name="a")) == 2  # duplicate names are allowed
    with pytest.raises(Exception, match="unable to find a virtual machine with ID"):
        host.cmd("Get-VM", Id="00000000-0000-0000-0000-000000000000")
    host.cmd("Set-VMFirmware", VM=vm, BootOrder=[vm.drives[0]])
    assert vm.boot_order == [vm.drives[0]]  # replaced, not merged
    assert Guest().address == "192.168.50.23"
