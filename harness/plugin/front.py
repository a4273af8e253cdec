"""The plugin of ``gmi``'s own runs (harness/cli.py starts pytest with ``-p
harness.plugin.front``): pytest's usage line and its errors say ``gmi``; ``gmi --help``
lists the harness's options only, grouped as ``pytest --help`` groups them, and points at
``gmi --help-all`` for pytest's own."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from harness.plugin import option_specs

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


def short_help() -> str:
    """Our options only, grouped as ``pytest --help`` groups them."""
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.prog = PROG  # (pytest's usage line and its errors)
    parser.getgroup("general").addoption(
        "--help-all", action="store_true", default=False, dest="gmi_help_all",
        help="gmi: with --help, pytest's own options too")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``gmi --help``: ours only (``--help-all``: pytest's whole help, as ``pytest --help``)."""
    if config.option.help and not config.option.gmi_help_all:
        try:
            print(short_help())
        except BrokenPipeError:  # (gmi --help | head)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return None
