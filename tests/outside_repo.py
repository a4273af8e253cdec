"""examples/outside-repo as its users have it: a copy of the folder outside our tree, and
the harness installed with pip into a new virtualenv from (a copy of) our source tree.
The new virtualenv takes the harness's dependencies from this project's .venv through a
.pth file, and the build backend too (``--no-build-isolation``): nothing is downloaded.

Used by ``tests/test_outside_repo.py`` (collection, settings) and by ``make test``, which
builds the example's distro for real with it::

    python tests/outside_repo.py DIR     # DIR/acme: the repository; DIR/venv/bin/gmi
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "outside-repo"
DISTRO = "acme-debian-13"


def run(cmd: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command as a user of the example runs it: none of our GMI_* or pytest settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GMI_", "PYTEST_", "PIP_REQUIRE", "PYTHONPATH"))}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def install(top: Path) -> tuple[Path, Path]:
    """(the other repository's folder, its virtualenv's python), under ``top``."""
    if top.resolve().is_relative_to(ROOT):
        raise SystemExit(f"{top} is inside the harness's tree: the example must stand outside it")
    repo = top / "acme"
    shutil.copytree(EXAMPLE, repo)
    venv = top / "venv"
    made = run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv], top)
    if made.returncode:
        raise SystemExit(made.stderr)
    python = venv / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       top).stdout.strip())
    (purelib / "_gmi_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # (from a copy of the source tree: pip's in-tree build would leave build/ in ours)
    source = top / "gmi-harness"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", "build", "reports", "*.egg-info", "__pycache__", ".*_cache"))
    pip = run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
               "--no-build-isolation", "--no-index", source], top, timeout=600)
    if pip.returncode:
        raise SystemExit(pip.stdout + pip.stderr)
    shutil.rmtree(source)
    return repo, python


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/outside_repo.py DIR")
    install(Path(sys.argv[1]))
