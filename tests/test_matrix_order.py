"""The plugin's collection (plugin/matrix.py), end to end with pytester: each subject's
export (and promotion, index entry) runs after every other test of that subject because
of its marker, not because of its file's name; and the markers deselect what does not
apply to a subject."""

from __future__ import annotations

import os
from pathlib import Path

import matrix_project
import pytest

pytest_plugins = ["pytester"]

CONFTEST = '''
import os
import pytest

pytest_plugins = ["harness.plugin"]

@pytest.fixture(scope="session")
def sealed(distro_name):
    with open(os.environ["ORDER_OUT"], "a") as f:
        f.write(f"setup {distro_name}\\n")
    return distro_name
'''
# Named so that the file sorts first: its tests still run last for each subject.
EXPORT = '''
import os
import pytest

def _ran(what, subject):
    with open(os.environ["ORDER_OUT"], "a") as f:
        f.write(f"{what} {subject}\\n")

@pytest.mark.export
def test_export(sealed, distro_name):
    _ran("export", distro_name)

@pytest.mark.promote
def test_promoted(sealed, distro_name):
    _ran("promote", distro_name)

@pytest.mark.index
def test_index(sealed, distro_name):
    _ran("index", distro_name)
'''
CHECKS = '''
import os
import pytest

@pytest.mark.checklist("boots with no errors")
@pytest.mark.parametrize("n", [1, 2])
def test_check(sealed, distro_name, n):
    with open(os.environ["ORDER_OUT"], "a") as f:
        f.write(f"check{n} {distro_name}\\n")
'''


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GMI_ACCEL", "tcg")  # (no KVM probe: nothing boots)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(matrix_project.ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    out = tmp_path / "order.txt"
    monkeypatch.setenv("ORDER_OUT", str(out))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a_export=EXPORT, test_b_checks=CHECKS)
    return out


def test_the_export_runs_after_every_other_test_of_its_subject(pytester: pytest.Pytester, project: Path,
                                                                 tmp_path: Path):
    result = pytester.runpytest("--distro=debian-12", "--distro=debian-13", f"--out={tmp_path / 'out'}",
                                "--package-cache=off", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)  # (promote and index: deselected for builds)
    assert project.read_text().splitlines() == [
        "setup debian-12", "check1 debian-12", "check2 debian-12", "export debian-12",
        "setup debian-13", "check1 debian-13", "check2 debian-13", "export debian-13"]


def test_under_xdist_too(pytester: pytest.Pytester, project: Path, tmp_path: Path):
    """Two workers, one subject each (--dist loadgroup): each worker's order holds."""
    result = pytester.runpytest_subprocess("--distro=debian-12", "--distro=debian-13", "-n", "2",
                                           f"--out={tmp_path / 'out'}", "--package-cache=off",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    lines = project.read_text().splitlines()
    for subject in ("debian-12", "debian-13"):
        mine = [line.split()[0] for line in lines if line.endswith(f" {subject}")]
        assert mine[0] == "setup" and mine[-1] == "export" and sorted(mine[1:3]) == ["check1", "check2"]
        assert len(mine) == 4, mine


def test_the_promoted_archive_is_deselected_without_promote(pytester: pytest.Pytester, project: Path,
                                                            tmp_path: Path):
    """(Its marker, read by the plugin: checks/conftest.py holds no collection policy.)"""
    archive = matrix_project.ROOT / "tests" / "data" / "GMI-Debian-12.zip"
    if not archive.exists():
        archive = tmp_path / "GMI-Debian-12.zip"
        archive.write_bytes(b"")
    collected = pytester.runpytest("--collect-only", "-q", f"--gmi={archive}", f"--out={tmp_path / 'out'}",
                                   "-p", "no:cacheprovider")
    ids = "\n".join(collected.outlines)
    assert "test_check[GMI-Debian-12.zip-1]" in ids
    assert "test_promoted" not in ids and "test_export" not in ids
    assert "test_index" not in ids  # (no --index)
