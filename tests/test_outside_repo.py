"""Another repository using the harness (examples/outside-repo/), as its users would: a
copy of the folder outside our tree, the harness installed into a fresh virtualenv with
pip from our source tree, then ``pytest --distro=acme-debian-12 --distros=./distros``
(collection only: no VM boots). The new virtualenv takes the other dependencies from
this project's .venv through a .pth file, so nothing but the build backend (setuptools,
from the configured index) is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "outside-repo"


def run(cmd: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GMI_", "PYTEST_", "PIP_REQUIRE"))}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the other repository's folder, its virtualenv's python) with the harness installed."""
    top = tmp_path_factory.mktemp("outside")
    assert not top.resolve().is_relative_to(ROOT)
    repo = top / "acme"
    shutil.copytree(EXAMPLE, repo)
    venv = top / "venv"
    made = run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv], top)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       top).stdout.strip())
    (purelib / "_gmi_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # (from a copy of the source tree: pip's in-tree build would leave build/ in ours)
    source = top / "gmi-harness"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", "build", "reports", "*.egg-info", "__pycache__", ".*_cache"))
    pip = run([sys.executable, "-m", "pip", "--python", python, "install", "-q", source], top, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return repo, python


def uses_entry_points(python: Path, cwd: Path) -> None:
    """The plugin and the stage fixtures come in through the pytest11 entry points."""
    probe = run([python, "-c", "from importlib.metadata import entry_points; "
                 "print(sorted(e.value for e in entry_points(group='pytest11') "
                 "if e.value.startswith(('harness', 'stages'))))"], cwd)
    assert probe.stdout.split() == ["['harness.plugin',", "'harness.stages.fixtures']"], probe.stdout


def test_pip_install_puts_the_harness_its_checklist_and_catalogue_in_the_venv(outside):
    repo, python = outside
    where = run([python, "-c", "import harness, pathlib; p = pathlib.Path(harness.__file__).parent; "
                 "print(p); print(sorted(x.name for x in (p / 'checks').glob('test_*.py'))); "
                 "print(len(list((p / 'distros').glob('*.yml')))); "
                 "print(sorted(x.name for x in p.parent.iterdir() "
                 "if x.name in ('checks', 'distros', 'stages')))"], repo)
    site, checks, distros, generic = where.stdout.splitlines()
    assert Path(site).is_relative_to(python.parents[1]), f"harness imported from {site}, not the new venv"
    assert generic == "[]", f"generic top-level names installed into site-packages: {generic}"
    assert "test_checklist.py" in checks and "test_seed.py" in checks
    assert int(distros) == len(list((ROOT / "distros").glob("*.yml")))


def test_other_repository_runs_its_own_distro_with_the_harness_checklist(outside):
    repo, python = outside
    uses_entry_points(python, repo)
    got = run([python, "-m", "pytest", "--distro=acme-debian-12", "--distros=./distros",
               "--collect-only", "-q"], repo)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-2000:]
    ids = [line for line in got.stdout.splitlines() if "::" in line]
    assert ids and all(line.endswith("[acme-debian-12]") for line in ids), ids[:5]
    # the harness's own checklist, as installed (no test path given; the repository has no tests)
    assert not list(repo.rglob("test_*.py"))
    assert "test_checklist.py::test_cloud_init_status_done[acme-debian-12]" in ids
    assert any("test_seed.py::test_seed_user_data_passes_the_clones_cloud_init_schema" in i
               for i in ids)
    assert "test_export.py::test_export_gmi_archive[acme-debian-12]" in ids
    # without its folder the name is unknown: the run above found it through --distros
    unknown = run([python, "-m", "pytest", "--distro=acme-debian-12", "--collect-only", "-q"], repo)
    assert unknown.returncode != 0
    assert "unknown distro 'acme-debian-12'" in unknown.stdout + unknown.stderr
