from pathlib import Path

import pytest

from harness import distro, settings
from harness.archive.export import export, gate, public_record
from harness.build import Build
from harness.errors import ExportError

ITEMS = ["checks/t.py::test_a[debian-12]", "checks/t.py::test_b[debian-12]",
         "checks/t.py::test_c[debian-12]"]


def test_gate_passes_when_all_passed_or_skipped():
    assert gate(ITEMS, dict.fromkeys(ITEMS[:2], "passed") | {ITEMS[2]: "skipped"}) == []


def test_gate_names_failed_and_missing():
    outcomes = {ITEMS[0]: "passed", ITEMS[1]: "failed"}
    assert gate(ITEMS, outcomes) == ITEMS[1:]


class NoBackend:
    name = "qemu"


def make_build(tmp_path: Path) -> Build:
    s = settings.resolve({"out": str(tmp_path / "out")}, env={})
    return Build(distro.load("debian-12"), s, NoBackend(), "run", tmp_path, tmp_path / "logs")  # type: ignore[arg-type]


def test_export_refuses_naming_failed_checks_and_writes_nothing(tmp_path: Path):
    b = make_build(tmp_path)
    b.vhdx = tmp_path / "d.vhdx"
    b.vhdx.write_bytes(b"x")
    with pytest.raises(ExportError, match=r"these checks did not pass: test_b\[debian-12\], "
                                          r"test_c\[debian-12\]"):
        export(b, ITEMS, {ITEMS[0]: "passed", ITEMS[1]: "failed"})
    assert not (tmp_path / "out").exists()


def test_export_refuses_when_no_check_ran(tmp_path: Path):
    with pytest.raises(ExportError, match="no checklist item ran"):
        export(make_build(tmp_path), [], {})


def test_public_record_drops_internals(tmp_path: Path):
    b = make_build(tmp_path)
    b.record.update(_hyperv=object(), credentials_file="/secret/path", versions={})
    rec = public_record(b, {"t": "passed"})
    assert "_hyperv" not in rec and "credentials_file" not in rec
    assert rec["check_results"] == {"t": "passed"}


def test_gate_requires_every_checklist_item_to_have_passed_somewhere():
    from harness.checklist import REQUIRED_ITEMS

    nodes = [f"checks/t.py::test_{i}[d]" for i in range(len(REQUIRED_ITEMS))]
    labels = dict(zip(nodes, REQUIRED_ITEMS, strict=True))
    outcomes = dict.fromkeys(nodes, "passed")
    assert gate(nodes, outcomes, labels) == []
    # selecting one test file (or one test) leaves items out: refused, naming them
    blocked = gate(nodes[:1], outcomes, labels)
    assert len(blocked) == len(REQUIRED_ITEMS) - 1
    assert all("no test of it passed" in b for b in blocked)
    # an item whose only tests were skipped does not count as checked
    assert gate(nodes, {**outcomes, nodes[1]: "skipped"}, labels) == [
        f"'{REQUIRED_ITEMS[1]}' (no test of it passed)"]


def test_an_export_with_a_vmcx_needs_hyperv_to_have_imported_it(tmp_path: Path):
    """Where the export holds a .vmcx (Hyper-V builds, promotions), the Compare-VM item
    must have a passing test: skipped or failed, nothing is written. A disk-only export
    (QEMU) has nothing to import and does not need it."""
    from harness.checklist import IMPORTS, REQUIRED_ITEMS, required_items

    nodes = [f"checks/t.py::test_{i}[d]" for i in range(len(REQUIRED_ITEMS) + 1)]
    labels = dict(zip(nodes, (*REQUIRED_ITEMS, IMPORTS), strict=True))
    outcomes = dict.fromkeys(nodes, "passed") | {nodes[-1]: "skipped"}
    assert gate(nodes, outcomes, labels) == []  # disk-only: the skip is fine
    assert gate(nodes, outcomes, labels, required=required_items(exports_vmcx=True)) == [
        f"'{IMPORTS}' (no test of it passed)"]
    b = make_build(tmp_path)
    b.vhdx = tmp_path / "d.vhdx"
    b.vhdx.write_bytes(b"x")
    b.vm_tree = tmp_path / "tree"
    with pytest.raises(ExportError, match=r"Compare-VM\)' \(no test of it passed\)"):
        export(b, nodes, outcomes, labels)
    assert not (tmp_path / "out").exists()
