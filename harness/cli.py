"""``gmi`` (or ``python -m harness``): the front door. What ``make gmi`` does, without make.

``gmi --distro=debian-12 [pytest options]`` runs pytest on the checks that ship with the
harness, with the options given; it installs and sets up nothing. The checks and the
distro catalogue are installed inside the ``harness`` package (pyproject.toml), and found
the same way from a source checkout (``pip install -e .``) and from a wheel (``pip install
.``). The run is the one ``make gmi`` makes: the same folder of checks, the same rootdir
(so the same test ids in every report), the options the checkout's pytest configuration
adds (no ``.pytest_cache``, the short summary). Settings come from the command line,
``GMI_*`` variables and ``./gmi-harness.toml`` of the folder ``gmi`` runs in (the plugin
reads them, as for ``pytest``).

pytest runs in this process's place (:meth:`harness.host.hostos.HostOS.run_in_place`):
on Linux ``gmi`` execs it, so the process a user, a CI runner or ``systemctl`` signals is
the run itself, and every signal that ends a pytest run (Ctrl-C, SIGTERM, SIGHUP) ends a
``gmi`` run the same way; on Windows (no exec) it is a child that the console's Ctrl-C
and Ctrl-Break reach directly while ``gmi`` waits for it. Python runs in UTF-8 mode where
its default would be a legacy code page (Windows). This module imports neither pytest
nor the plugin: a fresh interpreter starts pytest, which loads the plugin itself (and
rewrites its modules' asserts); ``-p harness.plugin.front`` makes its usage line and
``--help`` the ``gmi`` command's.

``gmi --help`` lists the harness's options only (``gmi --help-all``: pytest's too);
``gmi --version`` says the harness's version and pytest's.
"""

from __future__ import annotations

import locale
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from harness import __version__, shipped
from harness.host import hostos

# What pyproject.toml's addopts give a run in a checkout, for runs from a wheel (which
# has no pytest configuration): no cache folder in site-packages, the short summary.
PYTEST_ARGS = ("-p", "no:cacheprovider", "-ra")
# The plugin of gmi's own runs: pytest's usage line says gmi; gmi --help is ours.
FRONT = ("-p", "harness.plugin.front")
PROG = "gmi"


def checks_dir() -> Path:
    """The installed checks (the sign-off page reads the same folder)."""
    return shipped("checks")


def pytest_args(args: Sequence[str], checks: Path) -> list[str]:
    """pytest's command line for ``gmi ARGS``."""
    return [*PYTEST_ARGS, *FRONT, f"--rootdir={checks.parent}", str(checks), *args]


def needs_utf8_mode(utf8_mode: int | None = None, encoding: str | None = None) -> bool:
    """Whether this interpreter (its UTF-8 mode flag and locale encoding) would read and
    write text in a legacy code page (Windows: cp1252 and the like; Linux: never, a C
    or POSIX locale already turns UTF-8 mode on)."""
    utf8_mode = sys.flags.utf8_mode if utf8_mode is None else utf8_mode
    encoding = locale.getencoding() if encoding is None else encoding
    return not utf8_mode and encoding.lower().replace("-", "").replace("_", "") != "utf8"


def version() -> str:
    return (f"gmi-harness {__version__} (pytest {metadata.version('pytest')}, Python "
            f"{platform.python_version()}, {Path(__file__).resolve().parent})")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args or "-V" in args:
        print(version())
        return 0
    if "--help-all" in args and not {"-h", "--help"} & set(args):
        args.append("--help")  # (pytest's whole help: harness.plugin.front leaves it alone)
    checks = checks_dir()
    if not (checks / "test_checklist.py").is_file():
        print(f"{PROG}: the checks are not installed beside the harness ({checks}): install "
              "gmi-harness from its source folder (pip install .)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if needs_utf8_mode():
        env["PYTHONUTF8"] = "1"  # xdist's workers inherit it too
    return run([sys.executable, "-m", "pytest", *pytest_args(args, checks)], env)


def run(cmd: list[str], env: dict[str, str]) -> int:
    """pytest in this process's place (exec on Linux; a waited-for child on Windows)."""
    sys.stdout.flush()
    sys.stderr.flush()
    return hostos.current().run_in_place(cmd, env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
