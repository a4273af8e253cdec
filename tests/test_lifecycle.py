"""End of life, said out loud: each distro's support judged on the run's date (fixed
clocks here), the line a run prints at its start, and the sign-off page; end to end
through the plugin with pytester (no VM: a stand-in check)."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import matrix_project
import pytest

from harness import distro
from harness.distro import lifecycle
from harness.host import clock
from harness.plugin import lifecycle as plugin_lifecycle
from harness.plugin.run import RunState
from harness.report import signoff
from harness.settings import resolve as settings_of

pytest_plugins = ["pytester"]

# The day the catalogue was brought up to date; end-of-life releases stay so for good.
UPDATED = date(2026, 12, 7)
ENDED = ("fedora-42", "opensuse-leap-15.6", "ubuntu-25.04")


def test_the_end_of_life_day_is_the_last_supported_one():
    d = distro.load("ubuntu-25.04")
    assert not lifecycle.status(d, date(2026, 1, 17)).ended
    after = lifecycle.status(d, date(2026, 1, 18))
    assert after.ended and after.as_of == "2026-01-18" and after.short() == "END OF LIFE since 2026-01-17"


def test_the_run_is_judged_on_the_day_it_started_in_utc():
    late = clock.fixed(datetime(2026, 1, 17, 23, 59, tzinfo=UTC))
    assert lifecycle.run_date(late) == date(2026, 1, 17)
    assert not lifecycle.status(distro.load("ubuntu-25.04"), lifecycle.run_date(late)).ended


def test_an_end_of_life_line_names_the_date_the_source_and_the_archive():
    d = distro.load("ubuntu-25.04")
    line = lifecycle.status(d, UPDATED).line()
    assert line.startswith("END OF LIFE: ubuntu-25.04 reached its end of life on 2026-01-17 "
                           "(https://endoflife.date/ubuntu)")
    assert "its install ISO now comes from the archive, https://old-releases.ubuntu.com/releases/25.04/" \
        in line
    assert line.endswith("The run goes on.") and "\n" not in line


def test_rolling_unknown_and_generic_releases():
    assert lifecycle.status(distro.load("opensuse-tumbleweed"), UPDATED).state == lifecycle.ROLLING
    d = distro.load("debian-13")
    assert lifecycle.status(dataclasses.replace(d, support=None), UPDATED).state == lifecycle.UNKNOWN
    # an archive not in the catalogue borrows debian-12's expectations, not its dates
    generic = dataclasses.replace(distro.load("debian-12"), generic=True)
    assert lifecycle.status(generic, date(2099, 1, 1)).state == lifecycle.UNKNOWN


def state_on(day: date, names: list[str], tmp_path: Path) -> RunState:
    state = RunState(settings_of({"distro": names}, env={}), "r1", tmp_path / "runs" / "r1")
    state.started_at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)  # the run's clock
    return state


def test_the_runs_lines_on_the_day_the_catalogue_was_updated(tmp_path: Path):
    lines = plugin_lifecycle.lines(state_on(UPDATED, distro.known_distros(), tmp_path))
    ended = [ln for ln in lines if ln.startswith("END OF LIFE:")]
    assert [ln.split()[3] for ln in ended] == list(ENDED)  # one line each, catalogue order
    assert lines[-1].startswith("distro support on 2026-12-07 (the run's date): debian-12 supported "
                                "until 2028-06-30;")
    for supported in ("ubuntu-26.04 supported until 2031-04-30", "fedora-44 supported until 2027-06-02",
                      "fedora-45 supported until 2027-12-08", "opensuse-leap-16.0 supported until 2027-10-31",
                      "opensuse-tumbleweed rolling release (no end of life)"):
        assert supported in lines[-1]
    assert len(lines) == len(ENDED) + 1


def test_a_year_later_more_releases_have_ended(tmp_path: Path):
    lines = plugin_lifecycle.lines(state_on(date(2027, 12, 9), ["fedora-44", "fedora-45"], tmp_path))
    assert [ln.split()[3] for ln in lines] == ["fedora-44", "fedora-45"]


def test_the_sign_off_data_carries_each_distros_support(tmp_path: Path):
    state = state_on(UPDATED, ["ubuntu-25.04", "ubuntu-26.04", "fedora-42"], tmp_path)
    iso = {"url": "https://old-releases.ubuntu.com/releases/25.04/ubuntu-25.04-live-server-amd64.iso"}
    built = plugin_lifecycle.with_support([{"subject": "ubuntu-25.04", "install_iso": iso},
                                          {"subject": "ubuntu-26.04"}], state)
    by = {s["subject"]: s["support"] for s in built}
    assert by["ubuntu-25.04"]["state"] == lifecycle.END_OF_LIFE
    assert by["ubuntu-25.04"]["iso_from_archive"] == iso["url"]
    assert by["ubuntu-26.04"]["state"] == lifecycle.SUPPORTED and "iso_from_archive" not in by["ubuntu-26.04"]
    assert by["fedora-42"]["state"] == lifecycle.END_OF_LIFE  # built nothing: still on the page


def test_the_sign_off_page_shows_it(tmp_path: Path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    ended = lifecycle.status(distro.load("ubuntu-25.04"), UPDATED).record()
    ended["iso_from_archive"] = "https://old-releases.ubuntu.com/releases/25.04/x.iso"
    current = lifecycle.status(distro.load("ubuntu-26.04"), UPDATED).record()
    signoff.write_data(run, signoff.run_data({"id": "r1"}, [
        {"subject": "ubuntu-25.04", "support": ended}, {"subject": "ubuntu-26.04", "support": current},
        {"subject": "debian-12", "support": "junk"}], []))
    loaded = signoff.load_data(run / signoff.DATA_FILE)
    assert loaded[2].support == {}
    html = signoff.render(loaded, tmp_path / "signoff.html").read_text()
    assert html.count('class="card eol"') == 1 and 'id="eol-ubuntu-25.04"' in html
    assert ended["line"] in html and "came from the archive" in html
    assert "supported until 2031-04-30" in html and "END OF LIFE since 2026-01-17" in html


# --- end to end: the real plugin, a stand-in check (no VM) ---------------------------------


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("GMI_ACCEL", "tcg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(matrix_project.ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    pytester.makepyfile(test_checks="def test_item(distro_name):\n    pass\n")
    return pytester


def test_a_run_for_an_end_of_life_release_says_so_and_goes_on(project: pytest.Pytester, tmp_path: Path):
    """The run's real date (an end of life in the past stays past): the line at the
    start, the run passing, the sign-off page saying it."""
    result = project.runpytest("--distro=ubuntu-25.04", f"--out={tmp_path}", "-p", "no:cacheprovider")
    assert result.ret == 0
    header = result.stdout.lines[:result.stdout.lines.index(next(
        ln for ln in result.stdout.lines if ln.startswith("collected")))]
    eol = [ln for ln in header if ln.startswith("END OF LIFE: ubuntu-25.04 reached its end of life on "
                                                "2026-01-17")]
    assert len(eol) == 1
    run = next((tmp_path / "runs").glob("2*"))
    data = json.loads((run / signoff.DATA_FILE).read_text())
    support = {s["subject"]: s.get("support", {}) for s in data["subjects"]}["ubuntu-25.04"]
    assert support["state"] == lifecycle.END_OF_LIFE and support["line"] == eol[0]
    page = (run / signoff.PAGE_FILE).read_text()
    assert 'id="eol-ubuntu-25.04"' in page and "reached its end of life on 2026-01-17" in page
    assert result.stdout.lines.count(eol[0]) == 2  # and again at the end of the run


def test_quiet_collection_still_names_the_end_of_life_releases(project: pytest.Pytester, tmp_path: Path):
    result = project.runpytest("--distro=all", "--collect-only", "-q", f"--out={tmp_path}",
                               "-p", "no:cacheprovider")
    assert result.ret == 0
    for name in ENDED:
        assert sum(ln.startswith(f"END OF LIFE: {name} ") for ln in result.stdout.lines) == 1, name
    assert any(ln.startswith("distro support on ") for ln in result.stdout.lines)
    assert not (tmp_path / "runs").exists()  # collecting writes nothing
