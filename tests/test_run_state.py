"""RunState behind methods: what the run knows of each subject (failed, checklist labels,
outcomes) is written by the plugin through RunState's methods, and the stages and checks
only call those methods (they write none of its dicts)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.plugin.run import RunState
from harness.settings import resolve

ROOT = Path(__file__).resolve().parent.parent
# What the stages and checks may ask of the run.
FOR_STAGES_AND_CHECKS = {"mark_failed", "has_failed", "keep", "export_inputs"}


def test_failed_and_keep(tmp_path: Path):
    state = RunState(resolve({"keep": "on-failure"}, env={}), "run", tmp_path)
    assert not state.has_failed("debian-12") and not state.keep("debian-12")
    state.mark_failed("debian-12")
    assert state.has_failed("debian-12") and state.keep("debian-12")
    assert not state.has_failed("debian-13") and not state.keep("debian-13")


def test_export_inputs_are_the_subjects_own_and_a_copy(tmp_path: Path):
    state = RunState(resolve({}, env={}), "run", tmp_path)
    state.label("debian-12", "t.py::a[debian-12]", "boots with no errors")
    state.label("debian-13", "t.py::a[debian-13]", "boots with no errors")
    state.record_outcome("debian-12", "t.py::a[debian-12]", "passed")
    state.record_outcome("debian-12", "t.py::other[debian-12]", "failed")
    inputs = state.export_inputs("debian-12")
    assert inputs.checklist == ["t.py::a[debian-12]"]
    assert inputs.outcomes == {"t.py::a[debian-12]": "passed", "t.py::other[debian-12]": "failed"}
    state.record_outcome("debian-12", "t.py::a[debian-12]", "failed")
    assert inputs.outcomes["t.py::a[debian-12]"] == "passed"  # a snapshot
    assert state.export_inputs("debian-14").checklist == []


def run_state_uses(root: Path) -> list[str]:
    """Every use of the run's state in stages/ and checks/ that is not a call of one of
    :data:`FOR_STAGES_AND_CHECKS` (the state: what ``config.stash[STATE_KEY]`` gave)."""
    found = []
    for pkg in ("stages", "checks"):
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                     and "STATE_KEY" in ast.unparse(node.value) for t in node.targets
                     if isinstance(t, ast.Name)}
            calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id in names]
            for node in uses:
                if node.attr not in FOR_STAGES_AND_CHECKS or id(node) not in calls:
                    rel = path.relative_to(root).as_posix()
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_stages_and_checks_only_call_the_run_states_methods():
    assert run_state_uses(ROOT) == []
    assert all(callable(getattr(RunState, m)) for m in FOR_STAGES_AND_CHECKS)


@pytest.mark.parametrize("line", [
    "state.failed[b.subject] = True",
    "labels = state._labels.get(distro_name, {})",
    "f = state.has_failed",
])
def test_a_write_or_a_read_of_its_dicts_is_found(tmp_path: Path, line: str):
    (tmp_path / "stages").mkdir()
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks/test_x.py").write_text(
        f"def test_x(request, b, distro_name):\n    state = request.config.stash[STATE_KEY]\n    {line}\n")
    assert [f.split(": ")[0] for f in run_state_uses(tmp_path)] == ["checks/test_x.py:3"]
