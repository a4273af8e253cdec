"""The janitor against a fake PowerShell transport and a recorded listing (no Windows
host exists on the machines this harness is developed on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hyperv_fake import FakePowerShell, hyperv_settings, recorded

from harness.backends.hyperv import janitor
from harness.errors import GmiError
from harness.host.clock import fixed

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def test_notes_are_parsed_and_other_notes_ignored():
    assert janitor.parse_notes("gmi-harness run=R worker=gw0 pid=12") == {
        "run": "R", "worker": "gw0", "pid": "12"}
    assert janitor.parse_notes("my own VM, hands off") == {}


def test_runs_of_this_machine_are_dead_when_their_process_is():
    fields = {"run": "R", "client": "me", "pid": "4242", "started": "2026-11-26T06:59:00Z"}
    assert janitor.judge(fields, now=NOW, max_age_hours=24, hostname="me",
                         alive=lambda pid: False) == (True, "its process (pid 4242 on me) is gone")
    dead, why = janitor.judge(fields, now=NOW, max_age_hours=24, hostname="me",
                              alive=lambda pid: True)
    assert not dead and "alive here" in why


def test_runs_of_other_machines_die_of_age():
    fields = {"run": "R", "client": "ci", "pid": "1", "started": "2026-11-20T01:00:00Z"}
    assert janitor.judge(fields, now=NOW, max_age_hours=24, hostname="me")[0] is True
    young = {**fields, "started": "2026-11-26T06:40:00Z"}
    assert janitor.judge(young, now=NOW, max_age_hours=24, hostname="me")[0] is False


def test_find_and_sweep_remove_only_dead_runs():
    ps = FakePowerShell({"list_leftovers": recorded("list_leftovers")})
    items = janitor.find(ps, ["D:\\Hyper-V\\Virtual Hard Disks"], now=NOW, max_age_hours=24,
                         hostname="laptop")
    assert [(i.kind, i.dead) for i in items] == [
        ("vm", True), ("folder", True), ("folder", False), ("folder", False)]
    assert "no readable gmi-run.json marker" in items[3].why
    removed = janitor.sweep(ps, items)
    vm_id = recorded("list_leftovers")["Vms"][0]["Id"]
    assert ps.params("remove_items") == {  # the VM by its Id: names are not unique on Hyper-V
        "VmIds": [vm_id], "VmNames": [],
        "Paths": ["D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-20261120-0100-gw0-debian-12"],
        "Tag": "gmi-harness run=20261120-0100 worker=gw0"}
    assert removed == [vm_id, "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-20261120-0100-gw0-debian-12"]
    assert items[1].partial == (("D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-20261120-0100-gw0-"
                                 "debian-12\\GMI Debian 12.vhdx.part", 41943040),)
    assert ps.names().count("remove_items") == 1


def test_list_mode_removes_nothing(tmp_path):
    ps = FakePowerShell({"list_leftovers": recorded("list_leftovers")})
    lines: list[str] = []
    settings = hyperv_settings(tmp_path, janitor="list", hyperv_hosts="hv01,hv02")
    assert janitor.run(settings, "list", lines.append, transport=lambda s, h: ps,
                       clock=fixed(NOW)) == 0
    assert "remove_items" not in ps.names() and ps.closed
    assert sum("DEAD" in ln for ln in lines) == 4  # two hosts (the same fake), two dead each
    assert lines[0].startswith("hv01: vm 'GMI Debian 12 (gmi-harness 20261120-0100 gw0)': DEAD (started ")
    assert lines[2] == ("hv01:   a partial upload in it: D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-"
                        "20261120-0100-gw0-debian-12\\GMI Debian 12.vhdx.part (41943040 bytes), removed "
                        "with the folder")


def test_age_is_judged_by_the_clock_given_not_the_real_one(tmp_path):
    """The same listing a month later: the young run of another machine is dead too."""
    ps = FakePowerShell({"list_leftovers": recorded("list_leftovers")})
    lines: list[str] = []
    janitor.run(hyperv_settings(tmp_path), "list", lines.append, transport=lambda s, h: ps,
                clock=fixed(NOW + timedelta(days=30)))
    assert sum("DEAD" in ln for ln in lines) == 3, lines


def test_remove_mode_and_no_host(tmp_path):
    ps = FakePowerShell({"list_leftovers": {"Vms": None, "Folders": None}})
    lines: list[str] = []
    janitor.run(hyperv_settings(tmp_path), "remove", lines.append, transport=lambda s, h: ps,
                clock=fixed(NOW))
    assert lines == ["hv01: nothing left by gmi-harness runs"]
    with pytest.raises(GmiError, match="the janitor needs a host"):
        janitor.run(hyperv_settings(tmp_path, hyperv_host=""), "list", lines.append,
                    transport=lambda s, h: ps, clock=fixed(NOW))


def test_the_pytest_option_runs_the_janitor_instead_of_tests(pytester: pytest.Pytester, monkeypatch):
    # the subprocess imports this tree's harness (not an installed copy)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    pytester.makepyfile(test_never="def test_never():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("--janitor=list", "--backend=hyperv", "--hyperv-host=",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # what it needs, all in one line
    result.stderr.fnmatch_lines(["ERROR: --backend=hyperv needs --hyperv-host NAME* and "
                                 "--hyperv-user ACCOUNT*"])
    assert "--hyperv-switch" not in result.stderr.str()  # (the janitor needs no switch)
    result = pytester.runpytest_subprocess("--janitor=sweep", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --janitor: janitor must be one of off, list, remove, "
                                 "got 'sweep'"])


pytest_plugins = ["pytester"]


def test_a_marker_written_as_an_object_by_powershell_51_does_not_crash_the_janitor():
    """Windows PowerShell 5.1: Get-Content's string has NoteProperties, ConvertTo-Json
    writes Marker as an object. The janitor reads its value (and never crashes)."""
    ps = FakePowerShell({"list_leftovers": recorded("list_leftovers_ps51")})
    items = janitor.find(ps, [], now=NOW, max_age_hours=24, hostname="laptop")
    folders = [i for i in items if i.kind == "folder"]
    assert folders[0].dead and folders[0].fields["run"] == "20261120-0100"
    assert not folders[-1].dead and "no readable gmi-run.json marker" in folders[-1].why


def test_list_leftovers_reads_the_marker_as_plain_text():
    from harness.backends.hyperv.transport import script_text

    text = script_text("list_leftovers")
    assert "[IO.File]::ReadAllText($marker)" in text and "Get-Content -LiteralPath" not in text


@pytest.mark.parametrize("raw", [None, "", "not json", "[1, 2]", 42, {"value": None}, {"x": 1}])
def test_odd_markers_are_unreadable_not_fatal(raw):
    assert janitor.read_marker(raw) == {}
