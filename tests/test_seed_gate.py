"""A fault of the seed (checks/test_seed.py) is reported in its own row and blocks the
export, the index entry and the sign-off verdict only with --seed-template-blocks-export."""

from __future__ import annotations

from pathlib import Path

from markupsafe import escape  # (Jinja's: ' is &#39;)

from harness import distro, settings
from harness.archive.export import export, gate
from harness.build import Build
from harness.checklist import ADVISORY_ITEMS, REQUIRED_ITEMS
from harness.checklist import SEED as SEED_ITEM
from harness.report import signoff

NODES = [f"checks/t.py::test_{i}[d]" for i in range(len(REQUIRED_ITEMS))]
pytest_plugins = ["pytester"]

SEED_NODE = "checks/test_seed.py::test_seed_user_data_passes_the_clones_cloud_init_schema[d]"
LABELS = {**dict(zip(NODES, REQUIRED_ITEMS, strict=True)), SEED_NODE: SEED_ITEM}
OUTCOMES = {**dict.fromkeys(NODES, "passed"), SEED_NODE: "failed"}


def test_a_seed_fault_blocks_only_when_the_setting_says_so():
    assert SEED_ITEM in ADVISORY_ITEMS
    assert gate([*NODES, SEED_NODE], OUTCOMES, LABELS) == []
    assert gate([*NODES, SEED_NODE], OUTCOMES, LABELS, advisory_blocks=True) == [SEED_NODE]
    # an image fault still blocks, whatever the setting
    assert NODES[0] in gate([*NODES, SEED_NODE], {**OUTCOMES, NODES[0]: "failed"}, LABELS)


class NoBackend:
    name = "qemu"


def test_export_goes_ahead_despite_a_seed_fault_unless_told(tmp_path: Path):
    import pytest

    from harness.errors import ExportError

    def build(**cli):
        s = settings.resolve({"out": str(tmp_path / "out"), **cli}, env={})
        b = Build(distro.load("debian-12"), s, NoBackend(), "run", tmp_path, tmp_path / "logs")  # type: ignore[arg-type]
        b.vhdx = tmp_path / "d.vhdx"
        return b

    with pytest.raises(ExportError, match=r"these checks did not pass: test_seed_user_data"):
        export(build(seed_template_blocks_export=True), [*NODES, SEED_NODE], OUTCOMES, LABELS)
    with pytest.raises(ExportError, match="the sealed VHDX is missing"):  # past the gate
        export(build(), [*NODES, SEED_NODE], OUTCOMES, LABELS)


def page_subject(blocks: bool) -> signoff.Subject:
    run = signoff.Run(id="r", folder=Path("."), settings=[
        "distro = debian-13  (command line)",
        f"seed_template_blocks_export = {blocks}  ({'command line' if blocks else 'default'})"])
    tests = [signoff.CheckResult("debian-13", n, i, "passed")
             for n, i in zip(NODES, REQUIRED_ITEMS, strict=True)]
    tests.append(signoff.CheckResult("debian-13", SEED_NODE, SEED_ITEM, "failed",
                                     "2 faults in the seed template /t (the seed's fault, not the image's): "
                                     "users.1.home (user-data line 7): error: unknown key 'home'"))
    return signoff.Subject("debian-13", run=run, tests=tests)


def test_signoff_page_shows_the_seed_row_and_a_verdict_by_the_setting(tmp_path: Path):
    s = page_subject(blocks=False)
    assert s.cell(SEED_ITEM).result == signoff.FAIL and s.verdict == signoff.PASS
    assert page_subject(blocks=True).verdict == signoff.FAIL
    html = signoff.render([s], tmp_path / "signoff.html").read_text()
    row = html[html.index(f'data-item="{escape(SEED_ITEM)}"'):]
    row = row[:row.index("</tr>")]
    assert "blocks the export only with --seed-template-blocks-export" in row
    assert 'data-result="fail"' in row and "users.1.home (user-data line 7)" in row, row
    assert 'id="verdict">READY TO SIGN' in html.replace("\n", "")


# ---------------------------------------- a template's fault through the real plugin

SEED_CHECKS = '''
import pytest
from harness.checklist import SEED

@pytest.mark.checklist("boots with no errors")
def test_boots(sealed):
    pass

@pytest.mark.checklist(SEED)
def test_seed(sealed):
    pytest.xfail("1 fault in the seed template /t (the seed's fault, not the image's): "
                 "users.1.home (user-data line 7): error: not valid")
'''


def test_a_template_fault_is_reported_without_failing_the_run(pytester, tmp_path, monkeypatch):
    """The seed check's verdict on a template (pytest.xfail) leaves the exit status 0 and
    shows as the seed row's failure, with its finding, on the sign-off page, in its data,
    in JUnit (read back as the page's --signoff-from does) and in the release item."""
    import json

    from harness.report.release import item_result
    from tests import matrix_project

    matrix_project.make(pytester, monkeypatch, tmp_path)
    pytester.makepyfile(test_checks=SEED_CHECKS)
    result = matrix_project.run(pytester, tmp_path, distros=("debian-12",), workers=0)
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == 0
    folder = next((tmp_path / "runs").glob("2*"))
    doc = json.loads((folder / "signoff.json").read_text())
    seed = [t for t in doc["tests"] if t["item"] == SEED_ITEM]
    assert [(t["outcome"], t["reason"].split(":")[0]) for t in seed] == [
        ("xfailed", "1 fault in the seed template /t (the seed's fault, not the image's)")]
    assert "users.1.home (user-data line 7)" in seed[0]["reason"]
    (subject,) = signoff.load_data(folder / "signoff.json")
    # the finding does not make the verdict a fail (it is "not run": this fake has one item)
    assert subject.cell(SEED_ITEM).result == signoff.FAIL and subject.verdict == signoff.NOT_RUN
    from_junit = {t.name.split("[")[0]: t for s in signoff.load_junit(folder) for t in s.tests}
    assert from_junit["test_seed"].outcome == "xfailed"
    assert "users.1.home (user-data line 7)" in from_junit["test_seed"].reason
    html = (folder / "signoff.html").read_text()
    row = html[html.index(f'data-item="{escape(SEED_ITEM)}"'):]
    assert 'data-result="fail"' in row[:row.index("</tr>")]
    assert item_result(["xfailed"]) == "fail"
    assert "xfailed=1" in result.stdout.str()  # the GMI builds summary counts it


def test_the_page_shows_each_finding_of_the_seed_row_on_a_line_of_its_own(tmp_path: Path):
    """vmgenie's Debian 13 template has two faults; both keys are on the page, however
    long the first one's message."""
    long = "error: not valid here: " + "x" * 300
    reason = ("2 faults in the seed template /t (the seed's fault, not the image's): "
              f"users.1.home (user-data line 7): {long}; users.1.ssh-authorized-keys "
              "(user-data line 10): deprecated: Use **ssh_authorized_keys** instead. "
              "[does not block the export: --seed-template-blocks-export is off]")
    assert signoff.why_lines(reason)[1:] == [f"users.1.home (user-data line 7): {long}",
                                              reason[reason.index("users.1.ssh"):]]
    assert signoff.why_lines("cloud-init did not run; see the log") == ["cloud-init did not run; see the log"]
    s = page_subject(blocks=False)
    s.tests[-1] = signoff.CheckResult("debian-13", SEED_NODE, SEED_ITEM, "xfailed", reason)
    html = signoff.render([s], tmp_path / "signoff.html").read_text()
    row = html[html.index(f'data-item="{escape(SEED_ITEM)}"'):]
    row = row[:row.index("</tr>")]
    assert "users.1.home (user-data line 7)" in row
    assert "users.1.ssh-authorized-keys (user-data line 10)" in row
