"""The Hyper-V backend, step by step, against a fake PowerShell transport.

No Windows host exists on the machines this harness is developed on: these tests check
which scripts (the real ``harness/backends/hyperv/scripts/*.ps1``) the backend runs, with which
parameters, how it reads the JSON replies (hand-written recordings in
``tests/hyperv_recordings/``) and the errors it raises. They do not prove that the
scripts behave on a real host.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hyperv_fake import FakeClock, FakePowerShell, Seq, make_build, recorded

from harness.backends.hyperv import HyperVVM, pick_host, services_problems
from harness.backends.hyperv.media import key_actions
from harness.backends.hyperv.model import IntegrationService, VmStatus
from harness.backends.hyperv.transport import ScriptError
from harness.errors import ConfigError, GmiError, GuestTimeoutError, HypervisorError

SHA = "a" * 64


def fresh_install_fake(**extra) -> FakePowerShell:
    return FakePowerShell({
        "file_hash": {"Path": "D:\\iso\\debian-12.8.0-amd64-netinst.iso", "Length": 661651456,
                      "Sha256": SHA.upper()},
        "new_vm": recorded("new_vm"),
        "finish_install": {"Name": "GMI Debian 12", "FirstBootDevice": "x"},
        "vm_status": Seq([recorded("vm_status_booting"), recorded("vm_status_kvp")]),
        **extra,
    })


# --- settings and the host --------------------------------------------------------


def test_check_host_asks_for_the_switch_and_records_the_host(tmp_path):
    ps = FakePowerShell()
    b = make_build(tmp_path, ps)
    b.backend.check_host(b)
    from harness.backends.hyperv.backend import SCRIPT_PARAMETERS

    assert ps.calls == [("host_info", {"SwitchName": "External", "Required": {
        k: list(v) for k, v in SCRIPT_PARAMETERS.items()}})]
    assert b.record["hyperv_host_name"] == "HV01" and b.record["hyperv_host"] == "hv01"
    assert b.record["hyperv_config_version"] == {
        "vm": "8.0", "host_default": "10.0", "host_supported": recorded("host_info")["SupportedVersions"],
        "imports_on": "Windows Server 2016, 2019, 2022 and 2025, Windows 10 1607 and newer, Windows 11"}
    b.backend.check_host(b)
    assert [n for n, _ in ps.calls] == ["host_info"]  # read once per host


@pytest.mark.parametrize(("values", "message"), [
    ({"hyperv_switch": ""}, "needs a virtual switch: --hyperv-switch"),
    ({"hyperv_host": ""}, "needs a host: --hyperv-host"),
    ({"hyperv_install_iso": ""}, "needs an install ISO: --hyperv-install-iso"),
    ({"hyperv_install_sha256": "abc"}, "needs its SHA-256"),
    ({"hyperv_base_vm": "GMI Debian 12"}, "need --hyperv-base-key"),
    ({"hyperv_base_vm": "x", "hyperv_base_vhdx": "y"}, "not both"),
])
def test_bad_settings_fail_before_touching_the_host(tmp_path, values, message):
    ps = FakePowerShell()
    b = make_build(tmp_path, ps, **values)
    with pytest.raises(ConfigError, match=message):
        b.backend.check_host(b)
    assert ps.calls == []


def test_by_default_the_install_media_come_from_the_catalogue(tmp_path):
    """Without --hyperv-install-iso the backend installs from the distro's official ISO
    (here --iso, a local file standing for the cached download) and checks its SHA-256."""
    import hashlib

    iso = tmp_path / "debian-12.iso"
    iso.write_bytes(b"not really an ISO")
    sha = hashlib.sha256(iso.read_bytes()).hexdigest()
    ps = FakePowerShell()
    b = make_build(tmp_path, ps, catalogue=True, hyperv_install_iso="", iso=str(iso), iso_sha256=sha)
    media = b.backend.media(b)
    assert (media.iso, media.sha256) == (str(iso), sha)
    b.backend.check_host(b)
    bad = make_build(tmp_path, ps, catalogue=True, hyperv_install_iso="", iso=str(iso),
                     iso_sha256="0" * 64)
    with pytest.raises(GmiError, match=r"SHA-256|sha256"):
        bad.backend.check_host(bad)


def test_a_missing_switch_on_the_host_is_the_scripts_one_line_error(tmp_path):
    ps = FakePowerShell({"host_info": ScriptError(
        "host_info.ps1 failed on hv01: no virtual switch named 'External' on HV01; switches: "
        "Default Switch")})
    b = make_build(tmp_path, ps)
    with pytest.raises(ScriptError, match="no virtual switch named 'External'") as err:
        b.backend.check_host(b)
    assert "\n" not in str(err.value)


def test_host_pool_spreads_xdist_workers(tmp_path):
    s = make_build(tmp_path, FakePowerShell(), hyperv_hosts="hv01,hv02,hv03").settings
    assert [pick_host(s, w) for w in ("", "gw0", "gw1", "gw2", "gw3", "gw4")] == [
        "hv01", "hv01", "hv02", "hv03", "hv01", "hv02"]


def test_each_worker_talks_to_its_own_host(tmp_path):
    opened = []
    b = make_build(tmp_path, FakePowerShell(), hyperv_hosts="hv01,hv02")
    b.worker = "gw1"  # (the plugin sets it from xdist)
    ps = FakePowerShell()
    b.backend.transport = lambda settings, host: opened.append(host) or ps  # type: ignore[method-assign]
    b.backend.check_host(b)
    assert opened == ["hv02"]
    assert b.backend.state(b).tag == "gmi-harness run=RUN worker=gw1"


# --- Step 1 -----------------------------------------------------------------------


def test_step1_creates_the_vm_with_the_wizards_settings(tmp_path):
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps)
    b.backend.check_host(b)
    vm = b.backend.provision(b)
    assert ps.names() == ["host_info", "new_run_folder", "file_hash", "new_vm", "start_vm",
                          "stop_vm", "finish_install", "start_vm", "vm_status", "vm_status"]
    p = ps.params("new_vm")
    folder = "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"
    assert p["Name"] == "GMI Debian 12 (gmi-harness RUN main)" and p["Folder"] == folder
    assert p["DiskName"] == "GMI Debian 12" and p["Version"] == "8.0"
    assert p["SizeBytes"] == 250 * 1024**3 and p["MemoryMB"] == 4096
    assert p["DynamicMemory"] is True and p["SwitchName"] == "External"
    assert p["SecureBoot"] is True and p["SecureBootTemplate"] == "MicrosoftUEFICertificateAuthority"
    assert p["BlockSizeMiB"] == 1 and p["InstallIso"].endswith("netinst.iso")
    assert b.record["installed_by"] == ("unattended install from debian-12.8.0-amd64-netinst.iso "
                                        f"(sha256 {SHA}) on Hyper-V")
    assert "AnswerIso" not in p and "BaseVhdx" not in p  # None parameters are not sent
    assert p["Notes"].startswith("gmi-harness run=RUN worker=main distro=debian-12 client=")
    assert ps.params("stop_vm")["WaitOnly"] is True  # the installer powers off by itself
    assert isinstance(vm, HyperVVM) and vm in b.vms
    assert (vm.ssh_host, vm.ssh_port, vm.address_source) == ("192.168.50.23", 22, "kvp")
    assert b.record["hyperv_vm"]["SecureBootTemplate"] == "MicrosoftUEFICertificateAuthority"
    assert b.record["hyperv_vm"]["BootOrder"] == ["Drive", "Drive"]  # the network entry is gone
    assert vm.id == "5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b"  # type: ignore[attr-defined]
    after_new_vm = ps.calls[ps.names().index("new_vm") + 1:]
    assert all(params.get("Id") == vm.id for _, params in after_new_vm)  # type: ignore[attr-defined]


def test_new_vm_script_sets_every_wizard_setting():
    from harness.backends.hyperv.transport import script_text

    text = script_text("new_vm")
    for needle in ("New-VM -Name $Name -Generation 2 -Version $Version", "New-VHD @vhdArgs",
                   "Dynamic = $true", "-DynamicMemoryEnabled $true", "-AutomaticCheckpointsEnabled $false",
                   "-CheckpointType Disabled -AutomaticStopAction ShutDown",
                   "-EnableSecureBoot On -SecureBootTemplate $SecureBootTemplate",
                   "-EnableSecureBoot Off", "TpmEnabled", "Add-VMDvdDrive -VM $vm -Path $InstallIso",
                   "Set-VMFirmware -BootOrder $bootOrder", "Set-VM -Notes $Notes"):
        assert needle in text, needle


@pytest.mark.parametrize("name", ["new_vm", "new_clone_vm"])
def test_the_run_tag_is_set_alone_right_after_new_vm_and_a_half_made_vm_is_removed(name):
    """If a later setting fails, the VM must not stay on the host untagged (clean-up and
    the janitor find VMs by their Notes): the tag goes on first, in a Set-VM of its own,
    and everything after it is rolled back on failure."""
    from harness.backends.hyperv.transport import script_text

    text = script_text(name)
    new_vm = text.index("New-VM -Name $Name")
    tag = text.index("$vm | Set-VM -Notes $Notes\n")
    body, rollback = text.index("try {", tag), text.index("} catch {", tag)
    assert new_vm < tag < body < text.index("-ProcessorCount $ProcessorCount", tag) < rollback
    between = text[new_vm:tag]
    assert "Set-" not in between and "Add-" not in between  # nothing can fail in between
    assert text.count("-Notes $Notes") == 1  # the tag is never set together with other settings
    catch = text[rollback:text.index("\n}\n", rollback)]
    assert catch.index("Stop-VM -VM $vm -TurnOff -Force -ErrorAction SilentlyContinue") \
        < catch.index("Remove-VM -VM $vm -Force -ErrorAction SilentlyContinue") \
        < catch.index("throw")
    for later in ("Set-VMFirmware", "Add-VMDvdDrive"):
        assert body < text.index(later) < rollback, later


def test_dynamic_memory_as_the_wizard_sets_it():
    from harness.backends.hyperv.transport import script_text

    text = script_text("new_vm")
    assert ("Set-VMMemory -DynamicMemoryEnabled $true -StartupBytes $memory -MinimumBytes 512MB "
            "-MaximumBytes 1TB") in text
    assert "-MaximumBytes $memory" not in text


def test_a_wrong_iso_checksum_stops_before_any_vm_exists(tmp_path):
    ps = fresh_install_fake(file_hash={"Path": "D:\\iso\\x.iso", "Length": 1, "Sha256": "b" * 64})
    b = make_build(tmp_path, ps)
    b.backend.check_host(b)
    with pytest.raises(HypervisorError, match=f"has SHA-256 {'b' * 64}, expected {'a' * 64}"):
        b.backend.provision(b)
    assert "new_vm" not in ps.names()
    b.vms[0].destroy()  # the run's folder still goes
    assert ps.params("remove_items")["Paths"] == [
        "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"]
    assert ps.params("remove_items")["VmIds"] == ps.params("remove_items")["VmNames"] == []


def test_local_isos_are_uploaded_and_the_answer_media_is_a_second_dvd(tmp_path):
    iso = tmp_path / "debian-12.8.0-amd64-netinst.iso"
    iso.write_bytes(b"iso")
    answer = tmp_path / "preseed.iso"
    answer.write_bytes(b"answer")
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps, hyperv_install_iso=str(iso), hyperv_answer_iso=str(answer),
                   hyperv_install_sha256=hashlib.sha256(b"iso").hexdigest())
    ps.replies["file_hash"] = {"Path": "x", "Length": 3, "Sha256": hashlib.sha256(b"iso").hexdigest()}
    b.backend.check_host(b)
    vm = b.backend.provision(b)
    folder = "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"
    assert ps.files[f"{folder}\\debian-12.8.0-amd64-netinst.iso"] == b"iso"
    assert ps.params("new_vm")["AnswerIso"] == f"{folder}\\preseed.iso"
    assert ps.params("file_hash")["Path"] == f"{folder}\\debian-12.8.0-amd64-netinst.iso"
    assert f"{folder}\\preseed.iso" in vm.owned  # type: ignore[attr-defined]


def test_boot_command_is_typed_right_after_power_on(tmp_path):
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps, hyperv_boot_command="<esc><wait2>auto url=http://10.0.0.5/p.cfg<enter>",
                   hyperv_boot_wait=3)
    b.backend.check_host(b)
    b.backend.provision(b)
    start = next(p for n, p in ps.calls if n == "start_vm")  # the first: the installer
    assert start["BootWaitMs"] == 3000
    assert start["Keys"] == [{"Kind": "key", "Value": 27}, {"Kind": "wait", "Value": 2000},
                             {"Kind": "text", "Value": "auto url=http://10.0.0.5/p.cfg"},
                             {"Kind": "key", "Value": 13}]


def test_key_actions_reject_unknown_keys():
    assert key_actions("") == []
    assert key_actions("<F6><wait>x") == [{"Kind": "key", "Value": 0x75},
                                          {"Kind": "wait", "Value": 1000},
                                          {"Kind": "text", "Value": "x"}]
    with pytest.raises(ConfigError, match="unknown key <ctrlx>"):
        key_actions("<ctrlx>")


def test_long_text_is_typed_in_runs_of_at_most_512_characters():
    """Msvm_Keyboard.TypeText takes at most 512 ASCII characters per call (Microsoft's
    WMI reference): a longer run of text becomes several text actions, in order."""
    from harness.backends.hyperv.media import TYPE_TEXT_MAX

    long = "".join(chr(ord("a") + i % 26) for i in range(1200))
    actions = key_actions(f"<esc>{long}<enter>x")
    texts = [a["Value"] for a in actions if a["Kind"] == "text"]
    assert [len(t) for t in texts] == [512, 512, 176, 1]
    assert "".join(texts[:3]) == long and texts[3] == "x"
    assert actions[0] == {"Kind": "key", "Value": 27} and actions[4] == {"Kind": "key", "Value": 13}
    assert TYPE_TEXT_MAX == 512
    assert [len(a["Value"]) for a in key_actions("y" * 512)] == [512]  # the limit itself: one call
    assert [len(a["Value"]) for a in key_actions("y" * 513)] == [512, 1]
    from harness.backends.hyperv.transport import script_text

    # a hand-run script refuses a longer run too
    assert "if ($text.Length -gt 512) { throw" in script_text("start_vm")


@pytest.mark.parametrize(("command", "where"), [
    ("auto locale=fr_FR priority=critical café", "'é' (U+00E9) at character 40"),
    ("<esc>ok<wait>\u2013x", "'\u2013' (U+2013) at character 14"),  # an en dash
])
def test_non_ascii_boot_text_is_refused_in_one_line(command, where):
    with pytest.raises(ConfigError, match=re.escape(where)) as caught:
        key_actions(command)
    message = str(caught.value)
    assert "\n" not in message and "TypeText types only ASCII" in message


def test_non_ascii_boot_command_fails_before_touching_the_host(tmp_path):
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps, hyperv_boot_command="<esc>preseed/url=http://h/ü.cfg<enter>")
    with pytest.raises(ConfigError, match=r"'ü' \(U\+00FC\).*not ASCII"):
        b.backend.check_host(b)
    assert ps.calls == []


def test_keyboard_script_uses_msvm_keyboard():
    from harness.backends.hyperv.transport import script_text

    text = script_text("start_vm")
    for method in ("TypeText", "TypeKey", "TypeScancodes", "Msvm_Keyboard", "Start-VM"):
        assert method in text


def test_an_install_that_never_powers_off_times_out_with_state_and_heartbeat(tmp_path):
    ps = fresh_install_fake(stop_vm={"Result": "running"},
                            vm_status=recorded("vm_status_booting"))
    b = make_build(tmp_path, ps, command_timeout=900)
    b.backend.check_host(b)
    with pytest.raises(GuestTimeoutError, match="did not power off within 900 s "
                       r"\(state Running, heartbeat No Contact\)"):
        b.backend.provision(b)
    assert "finish_install" not in ps.names()
    waits = [p["TimeoutSeconds"] for n, p in ps.calls if n == "stop_vm"]
    assert waits == [60] * 15  # 900 s in calls of a minute each


def test_a_static_address_skips_discovery(tmp_path):
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps, hyperv_guest_address="10.1.2.3")
    b.backend.check_host(b)
    vm = b.backend.provision(b)
    assert vm.ssh_host == "10.1.2.3" and "vm_status" not in ps.names()


def test_adopting_a_hand_made_vm_never_removes_it(tmp_path, monkeypatch):
    import harness.backends.hyperv.backend as backend_mod

    authorized: list[str] = []
    monkeypatch.setattr(backend_mod, "authorize_build_key",
                        lambda build, vm: authorized.append(vm.ssh_host))
    key = tmp_path / "id"
    adopted = recorded("adopt_vm")
    ps = FakePowerShell({"adopt_vm": adopted, "vm_status": recorded("vm_status_kvp")})
    progress: list[str] = []
    b = make_build(tmp_path, ps, hyperv_base_vm="debian 12 by hand", hyperv_base_key=str(key))
    b.progress = progress.append
    b.backend.check_host(b)
    vm = b.backend.provision(b)
    assert ps.names()[1:] == ["adopt_vm", "start_vm", "vm_status"]
    assert ps.params("adopt_vm") == {"Name": "debian 12 by hand", "DiskName": "GMI Debian 12",
                                     "MaxVersion": "8.0"}
    assert ps.params("start_vm") == {"Id": adopted["Id"]}
    assert authorized == ["192.168.50.23"]
    assert b.record["hyperv_adopted"]["checkpoints"] == adopted["Checkpoints"]
    assert any("has 1 checkpoints" in line and "merges them" in line for line in progress), progress
    vm.destroy()
    assert "remove_items" not in ps.names()  # stopped, not removed
    assert ps.names()[-1] == "stop_vm" and ps.params("stop_vm")["Id"] == adopted["Id"]


def test_adopting_by_id(tmp_path, monkeypatch):
    """--hyperv-base-vm takes the VM's Id too (names are not unique on Hyper-V)."""
    import harness.backends.hyperv.backend as backend_mod

    monkeypatch.setattr(backend_mod, "authorize_build_key", lambda build, vm: None)
    adopted = recorded("adopt_vm")
    ps = FakePowerShell({"adopt_vm": adopted, "vm_status": recorded("vm_status_kvp")})
    b = make_build(tmp_path, ps, hyperv_base_vm=adopted["Id"], hyperv_base_key="k")
    b.backend.check_host(b)
    b.backend.provision(b)
    assert ps.params("adopt_vm")["Id"] == adopted["Id"] and "Name" not in ps.params("adopt_vm")


def test_a_base_vhdx_is_copied_instead_of_installing(tmp_path, monkeypatch):
    import harness.backends.hyperv.backend as backend_mod

    monkeypatch.setattr(backend_mod, "authorize_build_key", lambda build, vm: None)
    ps = fresh_install_fake()
    b = make_build(tmp_path, ps, hyperv_base_vhdx="E:\\golden\\debian.vhdx", hyperv_base_key="k",
                   hyperv_install_iso="")
    b.backend.check_host(b)
    b.backend.provision(b)
    assert ps.params("new_vm")["BaseVhdx"] == "E:\\golden\\debian.vhdx"
    assert "InstallIso" not in ps.params("new_vm")
    assert "file_hash" not in ps.names() and "finish_install" not in ps.names()


# --- the guest's address -------------------------------------------------------------


def vm_with(ps: FakePowerShell, clock: FakeClock) -> HyperVVM:
    from harness.backends.hyperv.backend import Clock

    return HyperVVM(name="GMI Debian 12 (gmi-harness RUN main)", ps=ps,
                    tag="gmi-harness run=RUN worker=main", clock=Clock(clock.monotonic, clock.sleep),
                    id="5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b")


def test_kvp_link_local_addresses_are_skipped_and_the_neighbour_table_is_the_fallback():
    clock = FakeClock()
    ps = FakePowerShell({"vm_status": Seq([recorded("vm_status_booting"),
                                           recorded("vm_status_linklocal"),
                                           recorded("vm_status_neighbour")])})
    vm = vm_with(ps, clock)
    assert vm.wait_address(600) == "192.168.50.23"
    assert vm.address_source == "neighbour" and clock.now == 10


def test_kvp_wins_over_the_neighbour_table():
    status = VmStatus.parse({**recorded("vm_status_kvp"),
                             "Neighbours": [{"IPAddress": "192.168.50.99",
                                             "LinkLayerAddress": "00-15-5D-01-02-03",
                                             "State": "Reachable"}]})
    assert status.address() == ("192.168.50.23", "kvp")
    assert status.kvp_addresses() == ["192.168.50.23"]


def test_the_address_wait_is_bounded_and_says_what_the_vm_is_doing():
    clock = FakeClock()
    ps = FakePowerShell({"vm_status": recorded("vm_status_linklocal")})
    with pytest.raises(GuestTimeoutError) as err:
        vm_with(ps, clock).wait_address(60)
    message = str(err.value)
    assert "after 60 s (state Running, heartbeat OK; KVP reported ['169.254.12.7'" in message
    assert "--hyperv-guest-address" in message
    assert 60 <= clock.now <= 65


def test_a_reply_without_its_fields_is_a_script_error():
    with pytest.raises(ScriptError, match=r"vm_status\.ps1 returned no valid 'State'"):
        VmStatus.parse({"Name": "x"})
    with pytest.raises(ScriptError, match="returned list, expected an object"):
        VmStatus.parse([])


# --- power --------------------------------------------------------------------------


def test_shutdown_turns_off_after_the_bound_with_a_warning():
    warnings: list[str] = []
    ps = FakePowerShell({"stop_vm": {"Name": "GMI Debian 12", "Result": "turned-off"}})
    vm = vm_with(ps, FakeClock())
    vm.warn = warnings.append
    vm.shutdown(90)
    assert ps.params("stop_vm") == {"Id": vm.id, "TimeoutSeconds": 90}
    assert warnings == ["VM 'GMI Debian 12 (gmi-harness RUN main)' did not shut down within 90 s: "
                        "turned off"]


def test_stop_script_turns_off_only_after_the_bound():
    from harness.backends.hyperv.transport import script_text

    text = script_text("stop_vm")
    assert text.index("Stop-VM -VM $vm -Force -AsJob") < text.index("Stop-VM -VM $vm -TurnOff")


def test_vm_not_found_is_a_one_line_script_error():
    ps = FakePowerShell({"vm_status": ScriptError(
        "vm_status.ps1 failed on hv01: no VM named 'GMI Debian 12' on this host")})
    with pytest.raises(ScriptError, match="no VM named 'GMI Debian 12'"):
        vm_with(ps, FakeClock()).is_running()


def test_destroy_removes_only_tagged_vms_and_owned_paths():
    ps = FakePowerShell()
    vm = vm_with(ps, FakeClock())
    vm.created, vm.owned = True, ["D:\\run"]
    vm.destroy()
    vm.destroy()  # idempotent: the second call has nothing left to remove
    assert ps.names() == ["remove_items"]
    assert ps.params("remove_items") == {"VmIds": [vm.id], "VmNames": [], "Paths": ["D:\\run"],
                                         "Tag": "gmi-harness run=RUN worker=main"}
    # a VM whose Id never came back (the session broke during new_vm): by its run-unique name
    nameless = vm_with(ps, FakeClock())
    nameless.id, nameless.created = "", True
    nameless.destroy()
    assert ps.params("remove_items")["VmNames"] == ["GMI Debian 12 (gmi-harness RUN main)"]
    from harness.backends.hyperv.transport import script_text

    text = script_text("remove_items")
    assert "StartsWith($Tag)" not in text  # worker=gw1 would match worker=gw10
    assert '$notes -ceq $Tag -or $notes.StartsWith("$Tag ", [StringComparison]::Ordinal)' in text


def test_remove_items_judges_each_vm_alone_and_hides_no_error():
    """VMs are found by Id (each judged by its own tag), never with ``-ErrorAction
    SilentlyContinue`` (it hides access denied too: review finding 10)."""
    from harness.backends.hyperv.transport import script_text

    text = script_text("remove_items")
    assert "foreach ($vm in $vms) {" in text and "$vms += Get-VM -Id $id" in text
    assert "Get-VM -Name" not in text and "SilentlyContinue" not in text.split("foreach ($vm in $vms)")[0]
    for name in ("vm_status", "stop_vm", "start_vm", "compact_disk", "export_vm", "finish_install",
                 "integration_services", "new_vm", "new_clone_vm"):
        assert "Get-VM -Name" not in script_text(name), name


def test_stop_vm_removes_its_job_and_start_vm_asks_for_its_own_vm_only():
    from harness.backends.hyperv.transport import script_text

    stop = script_text("stop_vm")
    stopped = stop[stop.index("$result = 'stopped'"):stop.index("} elseif ($WaitOnly)")]
    assert "if ($job) { Remove-Job -Job $job -Force }" in stopped
    start = script_text("start_vm")
    assert "-Filter \"Name = '$($vm.Id.ToString().ToUpperInvariant())'\"" in start
    assert "Where-Object { $_.Name -eq" not in start


# --- integration services --------------------------------------------------------------


def test_integration_services_from_the_recording_are_all_ok():
    services = IntegrationService.parse_all(recorded("integration_services"))
    assert {s.name for s in services} >= {"Heartbeat", "VSS", "Key-Value Pair Exchange"}
    assert services_problems(services) == []  # Guest Service Interface is off: not required


def test_a_service_not_ok_or_missing_is_reported():
    services = IntegrationService.parse_all(recorded("integration_services"))
    bad = [IntegrationService(s.name, s.enabled, "Lost Communication" if s.name == "VSS"
                              else s.status, "") for s in services if s.name != "Shutdown"]
    assert services_problems(bad) == ["VSS: enabled=True status=Lost Communication",
                                      "Shutdown: not reported"]
    one = IntegrationService.parse_all(recorded("integration_services")[1])  # unwrapped list
    assert [s.name for s in one] == ["Heartbeat"]


def test_a_german_hosts_integration_services_are_recognised_by_their_guids():
    services = IntegrationService.parse_all(recorded("integration_services_de"))
    assert {s.display_name for s in services} >= {"Takt", "Herunterfahren", "Zeitsynchronisierung"}
    assert {s.name for s in services} == {"Heartbeat", "Key-Value Pair Exchange", "VSS",
                                          "Shutdown", "Time Synchronization",
                                          "Guest Service Interface"}
    assert services_problems(services) == []
    lost = [IntegrationService(s.name, s.enabled, "Keine Kommunikation", "", s.display_name,
                               "LostCommunication") if s.name == "Shutdown" else s
            for s in services]
    assert services_problems(lost) == ["Shutdown: enabled=True status=Keine Kommunikation"]


def test_the_operational_status_decides_not_the_localized_description():
    ok = IntegrationService("VSS", True, "Funktioniert", "", "VSS", "Ok")
    assert ok.ok and not IntegrationService("VSS", True, "OK", "", "VSS", "NoContact").ok
    assert IntegrationService("VSS", True, "OK", "").ok  # an older listing without it


def test_integration_services_script_keys_on_the_guid():
    from harness.backends.hyperv.model import SERVICE_IDS
    from harness.backends.hyperv.transport import script_text

    text = script_text("integration_services")
    assert "$ids[([string]$_.Id -split '\\\\')[-1].ToUpperInvariant()]" in text
    for guid, name in SERVICE_IDS.items():
        assert f"'{guid}' = '{name}'" in text
    assert "PrimaryOperationalStatus" in text


def test_a_restarted_vm_finds_its_address_again():
    clock = FakeClock()
    ps = FakePowerShell({"vm_status": Seq([recorded("vm_status_kvp"), recorded("vm_status_booting"),
                                           {**recorded("vm_status_kvp"), "Adapters": [{
                                               "MacAddress": "00-15-5D-01-02-03",
                                               "IPAddresses": ["192.168.50.77"]}]}])})
    vm = vm_with(ps, clock)
    vm.wait_address(60)
    vm.start()  # as Build.restart does after the guest powered off
    assert vm.ssh_host == "192.168.50.77"
    assert ps.names() == ["vm_status", "start_vm", "vm_status", "vm_status"]


def test_the_export_leaves_the_run_tag_out_of_the_image():
    from harness.backends.hyperv.transport import script_text

    text = script_text("export_vm")
    clear, export, restore = (text.index("Set-VM -Notes ''"), text.index("Export-VM -VM $vm"),
                              text.index("Set-VM -Notes $notes"))
    assert clear < export < restore and "finally" in text[export:restore]


def test_the_export_flattens_across_volumes_by_copying():
    """Move-Item cannot move a folder to another volume or a share in 5.1: the export
    to --hyperv-export-dir elsewhere copies (and cleans up the staging copy)."""
    from harness.backends.hyperv.transport import script_text

    text = script_text("export_vm")
    flatten = text.index("foreach ($sub in 'Virtual Machines', 'Virtual Hard Disks') {")
    branch = text[flatten:]
    move, copy = (branch.index("Move-Item -LiteralPath $from -Destination $to"),
                  branch.index("Copy-Item -LiteralPath $from -Destination $to -Recurse"))
    assert move < branch.index("} catch {") < copy  # tried, then copied where it cannot
    assert text.count("Move-Item -") == 1  # never a folder move outside that branch
    cleanup = text.index("} finally {", flatten)
    assert "Remove-Item -LiteralPath $exported -Recurse -Force" in text[cleanup:]


def test_the_export_carries_no_switch_name_and_the_build_vm_gets_it_back():
    from harness.backends.hyperv.transport import script_text

    text = script_text("export_vm")
    body, restore = text.index("try {"), text.index("} finally {")
    disconnect = text.index("Disconnect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter")
    assert body < disconnect < text.index("Export-VM -VM $vm -Path $Staging") < restore
    tail = text[restore:]
    # the tag comes back first: a failing reconnect must not leave the VM untagged
    assert tail.index("Set-VM -Notes $notes") < tail.index(
        "Connect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter -SwitchName $c.SwitchName")


def test_the_export_starts_from_a_clean_staging_folder_and_keeps_null_notes_a_string():
    from harness.backends.hyperv.transport import script_text

    text = script_text("export_vm")
    leftover = text.index("if (Test-Path -LiteralPath $exported) { Remove-Item -LiteralPath "
                          "$exported -Recurse -Force }")
    assert leftover < text.index("Export-VM -VM $vm")
    assert "$notes = [string]$vm.Notes" in text
