"""``gmi`` (or ``python -m harness``): what ``make gmi`` does, without make.

``gmi --distro=debian-12 [pytest options]`` runs pytest on the checks that ship with the
harness, with the options given; it installs and sets up nothing. The checks (and the
distro catalogue) are installed as the top-level packages ``checks`` and ``distros``
beside ``harness`` (pyproject.toml), so they are found the same way from a source
checkout (``pip install -e .``) and from a wheel (``pip install .``): the folder next to
the ``harness`` package. The run is the one ``make gmi`` makes: the same folder of
checks, the same rootdir (so the same test ids in every report), and the options the
checkout's pytest configuration adds (no ``.pytest_cache``, the short summary).

pytest runs as ``python -m pytest`` in a process of its own, as under make. On Windows
it runs in Python's UTF-8 mode (the harness's files, logs and reports are UTF-8;
Windows' default is the ANSI code page), and so do xdist's workers.
"""

from __future__ import annotations

import locale
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import shipped

# What pyproject.toml's addopts give a run in a checkout, for runs from a wheel (which
# has no pytest configuration): no cache folder in site-packages, the short summary.
PYTEST_ARGS = ("-p", "no:cacheprovider", "-ra")


def checks_dir() -> Path:
    """The installed checks (the sign-off page reads the same folder). Found without
    importing the rest of the harness: pytest imports its plugin itself, and rewrites
    its asserts only when it is first."""
    return shipped("checks")


def pytest_args(args: Sequence[str], checks: Path) -> list[str]:
    """pytest's command line for ``gmi ARGS``."""
    return [*PYTEST_ARGS, f"--rootdir={checks.parent}", str(checks), *args]


def needs_utf8_mode(utf8_mode: int | None = None, encoding: str | None = None) -> bool:
    """Whether this interpreter (its UTF-8 mode flag and locale encoding) would read and
    write text in a legacy code page (Windows: cp1252 and the like; Linux: never, a C
    or POSIX locale already turns UTF-8 mode on)."""
    utf8_mode = sys.flags.utf8_mode if utf8_mode is None else utf8_mode
    encoding = locale.getencoding() if encoding is None else encoding
    return not utf8_mode and encoding.lower().replace("-", "").replace("_", "") != "utf8"


def run(cmd: list[str], env: dict[str, str]) -> int:
    """``cmd`` to its end. Ctrl-C reaches the child as well (same terminal or console);
    this process waits for it to tear its VMs down instead of killing it."""
    proc = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    checks = checks_dir()
    if not (checks / "test_checklist.py").is_file():
        print(f"gmi: the checks are not installed beside the harness ({checks}): install "
              "gmi-harness from its source folder (pip install .)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if needs_utf8_mode():
        env["PYTHONUTF8"] = "1"  # xdist's workers inherit it too
    return run([sys.executable, "-m", "pytest", *pytest_args(args, checks)], env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
