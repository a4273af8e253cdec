"""The vocabularies the checks, the gate and the reports share, each held once: the
checklist items (harness/checklist.py, the archive's static checks included) and the
stages' names and order (stages.ORDER, which the sign-off page's timings follow)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import checklist
from harness.plugin.matrix import checklist as label
from harness.report.signoff import STAGE_ORDER

CHECKS = checklist.CHECKS_DIR


def _checklist_labels_in_source() -> dict[str, str]:
    """test function -> the decorator that labels it, read from the checks' code."""
    found = {}
    for path in sorted(CHECKS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and "checklist" in ast.unparse(deco.func):
                        found[f"{path.name}::{node.name}"] = ast.unparse(deco)
    return found


def test_every_check_is_labelled_through_the_validating_decorator():
    """No ``pytest.mark.checklist("...")`` written by hand: a typo there would be a new
    item nobody requires."""
    found = _checklist_labels_in_source()
    assert len(found) > 40
    by_hand = {name: deco for name, deco in found.items() if not deco.startswith("checklist(")}
    assert not by_hand, by_hand


def test_the_archive_checks_have_items_of_their_own():
    labels = checklist.labels_from_source()
    archive = {name: item for name, item in labels.items() if item in checklist.ARCHIVE_ITEMS}
    assert set(archive.values()) == set(checklist.ARCHIVE_ITEMS)
    assert archive["test_archive_name_follows_vmgenie"] == checklist.ARCHIVE_NAME
    assert set(labels.values()) <= set(checklist.ITEMS)
    assert set(checklist.REQUIRED_ITEMS) <= set(labels.values())


def test_a_label_outside_the_items_is_refused():
    assert label(checklist.ARCHIVE_DISK).args == (checklist.ARCHIVE_DISK,)
    with pytest.raises(ValueError, match="'archive: disks' is not a checklist item"):
        label("archive: disks")


def test_the_sign_off_page_orders_timings_as_the_stages_run():
    from harness.stages.s6_promote import promote
    from harness.stages.s7_clone import boot_clone

    from harness import stages
    from harness.archive.validate import import_archive

    ran = [f.__name__ for f in stages.ORDER]
    expected = [*ran, import_archive.__name__, promote.__name__,
                boot_clone.__defaults__[0], "export"]  # type: ignore[index]
    assert list(STAGE_ORDER) == expected
    export = (Path(CHECKS) / "test_export.py").read_text()
    assert 'sealed.step("export")' in export
