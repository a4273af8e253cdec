"""``gmi`` (or ``python -m harness``): the front door. What ``make gmi`` does, without make.

``gmi --distro=debian-12 [pytest options]`` runs pytest, in this process, on the checks
that ship with the harness, with the options given; it installs and sets up nothing.
The checks and the distro catalogue are installed inside the ``harness`` package
(pyproject.toml), and found the same way from a source checkout (``pip install -e .``)
and from a wheel (``pip install .``). The run is the one ``make gmi`` makes: the same
folder of checks, the same rootdir (so the same test ids in every report), the options
the checkout's pytest configuration adds (no ``.pytest_cache``, the short summary).
Settings come from the command line, ``GMI_*`` variables and ``./gmi-harness.toml`` of
the folder ``gmi`` runs in (the plugin reads them, as for ``pytest``).

pytest runs in this process, so a signal that ends a pytest run (Ctrl-C, SIGTERM,
SIGHUP; Ctrl-Break on Windows) ends a ``gmi`` run the same way: the harness's own
handlers get it. Where Python would read and write text in a legacy code page (Windows'
default), Python starts again in UTF-8 mode in this process's place
(:meth:`harness.host.hostos.HostOS.run_in_place`: exec on Linux; on Windows a child the
console's Ctrl-C and Ctrl-Break reach directly while this process waits).

``gmi --help`` lists the harness's options only (``gmi --help-all``: pytest's too);
``gmi --version`` says the harness's version and pytest's.
"""

from __future__ import annotations

import locale
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__, shipped

# What pyproject.toml's addopts give a run in a checkout, for runs from a wheel (which
# has no pytest configuration): no cache folder in site-packages, the short summary.
PYTEST_ARGS = ("-p", "no:cacheprovider", "-ra")
PROG = "gmi"
USAGE = f"""\
usage: {PROG} --distro=NAME [--distro=NAME ...] [options] [pytest options]   build, check, export
       {PROG} --gmi=ARCHIVE [--gmi=ARCHIVE ...] [options]                    check an existing GMI
       {PROG} --janitor=list|remove [--backend=...]      what runs that died left behind
       {PROG} --signoff-from=DIR [DIR ...]               one sign-off page from several runs"""
HELP_TAIL = f"""\
Every option is also a GMI_<NAME> variable and a key of ./gmi-harness.toml (or
--harness-config PATH): command line > environment > config file > default. A run's
settings and their sources are printed at its start (all of them with -v).

pytest's own options work as well: -k EXPR, -x, -v, -n N (distros in parallel),
--collect-only, --html=PATH, --junitxml=PATH. All of them: {PROG} --help-all"""


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


def version() -> str:
    import pytest

    return (f"gmi-harness {__version__} (pytest {pytest.__version__}, Python "
            f"{platform.python_version()}, {Path(__file__).resolve().parent})")


def short_help() -> str:
    """Our options only, grouped as ``pytest --help`` groups them."""
    import argparse

    from harness.plugin import option_specs

    parser = argparse.ArgumentParser(prog=PROG, usage=USAGE.removeprefix("usage: "), add_help=False,
                                     description="gmi-harness: builds GMIs (cloud-init-ready Hyper-V "
                                     "Generation 2 images for vmgenie) with pytest, runs the procedure's "
                                     "checklist on a fresh clone, and exports the archive only when "
                                     "every check passed.", epilog=HELP_TAIL,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for (name, title), option, kw in option_specs():
        if name not in groups:
            groups[name] = parser.add_argument_group(title or name)
        groups[name].add_argument(option, **kw)
    return parser.format_help()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return front_door(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # (gmi --help | head): the rest of the output goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def front_door(args: list[str]) -> int:
    if "--version" in args or "-V" in args:
        print(version())
        return 0
    if "-h" in args or "--help" in args:
        print(short_help())
        return 0
    if "--help-all" in args:
        args = [a for a in args if a != "--help-all"] + ["--help"]
    checks = checks_dir()
    if not (checks / "test_checklist.py").is_file():
        print(f"{PROG}: the checks are not installed beside the harness ({checks}): install "
              "gmi-harness from its source folder (pip install .)", file=sys.stderr)
        return 2
    if needs_utf8_mode():
        from harness.host import hostos

        env = {**os.environ, "PYTHONUTF8": "1"}  # xdist's workers inherit it too
        return hostos.current().run_in_place([sys.executable, "-m", "harness", *args], env)
    return run(pytest_args(args, checks))


class FrontDoor:
    """A plugin of ``gmi``'s own runs: pytest's usage line and errors say ``gmi``."""

    def pytest_addoption(self, parser: object) -> None:
        parser.prog = PROG  # type: ignore[attr-defined]


def run(args: list[str]) -> int:
    """pytest, in this process (its signal handling is the run's own)."""
    import pytest

    return int(pytest.main(args, plugins=[FrontDoor()]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
