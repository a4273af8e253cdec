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
