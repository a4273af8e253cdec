"""Another repository using the harness (examples/outside-repo/), as its users would: a
copy of the folder outside our tree, the harness installed into a fresh virtualenv with
pip (tests/outside_repo.py), then ``gmi`` in that folder. Here: what is installed, the
tests it collects, its settings read from its own gmi-harness.toml, its seed template and
its workflow. The real build of its distro is one of ``make test``'s two builds (the
Makefile runs the same tests/outside_repo.py, then the README's command)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import distro as distro_mod
from harness.media import seed_template
from tests import outside_repo
from tests.outside_repo import DISTRO, EXAMPLE, ROOT, run
from tests.test_ci_example import actionlint


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the other repository's folder, its virtualenv's python) with the harness installed."""
    return outside_repo.install(tmp_path_factory.mktemp("outside"))


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
    probe = run([python, "-c", "from importlib.metadata import entry_points; "
                 "print(sorted(e.value for e in entry_points(group='pytest11') "
                 "if e.value.startswith(('harness', 'stages'))))"], repo)
    assert probe.stdout.split() == ["['harness.plugin',", "'harness.stages.fixtures']"], probe.stdout


def test_gmi_in_the_repository_runs_its_distro_with_the_harness_checklist(outside):
    """The README's command, as written: its gmi-harness.toml names the catalogue folder."""
    repo, python = outside
    gmi = python.parent / "gmi"
    got = run([gmi, f"--distro={DISTRO}", "--collect-only", "-q", "-W", "error"], repo)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-2000:]
    ids = [line for line in got.stdout.splitlines() if "::" in line]
    assert ids and all(line.endswith(f"[{DISTRO}]") for line in ids), ids[:5]
    # the harness's own checklist, as installed (no test path given; the repository has no tests)
    assert not list(repo.rglob("test_*.py"))
    assert f"checks/test_checklist.py::test_cloud_init_status_done[{DISTRO}]" in ids
    assert f"checks/test_seed.py::test_seed_user_data_passes_the_clones_cloud_init_schema[{DISTRO}]" in ids
    assert f"checks/test_export.py::test_export_gmi_archive[{DISTRO}]" in ids
    assert not (repo / "reports").exists()  # (collection writes nothing)
    # its settings, with where they came from: the repository's own file
    header = run([gmi, f"--distro={DISTRO}", "--collect-only"], repo).stdout.splitlines()
    assert f"  distros = ./distros  (config file {repo / 'gmi-harness.toml'})" in header, header[:12]


def test_without_its_settings_file_the_distro_is_unknown(outside, tmp_path):
    _, python = outside
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = run([python.parent / "gmi", f"--distro={DISTRO}", "--collect-only", "-q"], elsewhere)
    assert got.returncode == 4
    assert f"ERROR: unknown distro '{DISTRO}'; known distros: debian-12" in got.stderr


def test_its_distro_is_the_harness_debian_13_with_its_own_name_and_seed():
    """The example's YAML stays the harness's debian-13 but for what makes it ACME's (so
    a change to debian-13.yml reaches it: make test builds it)."""
    acme = distro_mod.load_file(EXAMPLE / "distros" / f"{DISTRO}.yml")
    ours = distro_mod.load("debian-13")
    differ = {f.name for f in dataclasses.fields(acme)
              if f.compare and getattr(acme, f.name) != getattr(ours, f.name)}
    assert differ == {"name", "description", "seed_template"}, differ


def test_its_seed_template_renders_a_placeholder_in_a_comment_is_text():
    folder = EXAMPLE / "seed-data" / DISTRO
    template, problems = seed_template.read(folder)
    assert problems == [] and template is not None
    assert "{{ NAME }}" in template.files["user-data"].splitlines()[2]  # in a comment: text


def test_its_workflow_passes_actionlint_and_installs_what_the_defaults_need():
    workflow = EXAMPLE / ".github" / "workflows" / "gmi.yml"
    result = run([actionlint(), "-no-color", "-oneline", "-config-file",
                  EXAMPLE / ".github" / "actionlint.yaml", workflow], EXAMPLE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    from tests.test_ci_example import packages_the_defaults_need

    installed = set(workflow.read_text().replace("\\\n", " ").split("apt-get install", 1)[1]
                    .split("\n", 1)[0].split())
    missing = packages_the_defaults_need() - installed
    assert not missing, f"the workflow does not install {sorted(missing)}"
    assert f"gmi --distro={DISTRO}" in workflow.read_text()
