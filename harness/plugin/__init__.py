"""The gmi-harness pytest plugin (registered as a ``pytest11`` entry point, so its
options are known before pytest looks for tests): options, settings, the run's
configuration and header, and the commands that replace a test run
(``--signoff-from``, ``--janitor``). Its parts, one concern each, are the modules
listed in ``pytest_plugins`` below.

Options come from :data:`harness.settings.SETTINGS`, so ``pytest --help`` lists them,
grouped by section; fixtures are documented for ``pytest --fixtures``.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness.backends import backend_class
from harness.errors import GmiError
from harness.evidence import release as evidence
from harness.host import hostos
from harness.plugin import fixtures, hooks, lifecycle, matrix, preflight, results, run, summary
from harness.plugin.matrix import check_dist_mode, default_to_loadgroup, subjects
from harness.plugin.results import ResultCollector
from harness.plugin.run import SETTINGS_KEY, STATE_KEY, RunState, terminate_as_interrupt
from harness.report import allure, signoff
from harness.settings import SETTINGS, Settings

CONFIG_NAME = "gmi-harness.toml"  # read from the folder a run starts in (or the rootdir)
# The plugin's parts, registered with it (see pytest_addhooks).
PARTS = (run, matrix, results, summary, fixtures, lifecycle)
MAIN_GROUP = ("gmi-harness", "GMI build and validation")


def option_specs() -> Iterator[tuple[tuple[str, str], str, dict[str, Any]]]:
    """Every option of the harness: ((its --help group, the group's title), the option,
    its argparse keyword arguments). One group per settings section (the Hyper-V
    backend's own, say); ``gmi --help`` prints the same."""
    yield MAIN_GROUP, "--harness-config", {
        "action": "store", "default": None, "metavar": "PATH", "dest": "harness_config",
        "help": f"settings file (TOML); default: $GMI_CONFIG, else {CONFIG_NAME} in the folder "
                "the run starts in (or the rootdir) when present. Precedence: command line > "
                "environment (GMI_*) > this file > defaults"}
    for s in SETTINGS:
        if not s.cli:
            continue
        group = (f"gmi-harness: {s.section}", "") if s.section else MAIN_GROUP
        help_text = f"{s.help} (env {s.env}; default: {s.default!r})"
        if s.choices:
            help_text = f"{s.help}: {' | '.join(s.choices)} (env {s.env}; default: {s.default})"
        kw: dict[str, Any] = {"dest": f"gmi_{s.name}", "default": None, "help": help_text}
        if s.flag:
            kw.update(action="store_const", const=True)
        elif s.name == "signoff_from":  # --signoff-from DIR [DIR ...]
            kw.update(action="extend", nargs="+", metavar="DIR")
        elif s.multiple:
            kw.update(action="append", metavar=s.name.upper() if s.name != "distro" else "NAME")
        else:
            kw.update(action="store", metavar=s.name.upper())
        yield group, s.option, kw
def pytest_addoption(parser: pytest.Parser) -> None:
    """The harness's options, one ``--help`` group per settings section."""
    for (name, title), option, kw in option_specs():
        parser.getgroup(name, title).addoption(option, **kw)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Our hook specifications, and the plugin's parts as plugins of their own
    (registered directly: ``pytest_plugins`` would re-import modules this package
    already imported, which pytest warns about)."""
    pluginmanager.add_hookspecs(hooks)
    for part in PARTS:
        if not pluginmanager.is_registered(part):
            pluginmanager.register(part, part.__name__)


# The harness's markers, registered by the plugin itself (a repository that installs the
# harness has none of our pyproject.toml's ini lines).
MARKERS = (
    "vm: boots a real virtual machine (slow: minutes under TCG)",
    "slow: a real unattended OS install (tens of minutes under TCG); skipped unless run with -m slow",
    "checklist(item): an item of the procedure's validation checklist (section 5)",
    "export: writes the GMI archive; runs only after every checklist item of its distro passed",
    "archive: a static check of an existing archive (--gmi)",
    "index: writes a vmgenie repository index entry (--gmi with --index)",
    "promote: writes the promoted full archive (--gmi with --promote on Hyper-V)",
)
# ... and the warning filters, for the same reason: testinfra's paramiko backend warns
# for every unknown host key of a fresh clone; the clone's keys are new by design (we
# check that they differ from the build's).
WARNING_FILTERS = (
    "ignore:Unknown ssh-ed25519 host key:UserWarning",
    "ignore:Unknown ecdsa-sha2-nistp256 host key:UserWarning",
    "ignore:Unknown ssh-rsa host key:UserWarning",
)


def installed_checklist_wanted(config: pytest.Config) -> bool:
    """Another repository that installed the harness runs ``pytest --distro=NAME``: no
    test path, no testpaths and no conftest.py of its own. Its tests are then the
    harness's checklist, installed beside it (a source checkout's checks/, under our own
    conftest.py, runs from the checkout instead)."""
    return (config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR
            and not (config.rootpath / "conftest.py").exists()
            and not (signoff.CHECKS_DIR.parent / "conftest.py").exists())


def config_file(config: pytest.Config) -> Path | None:
    """The settings file: ``--harness-config``, ``$GMI_CONFIG``, else ``gmi-harness.toml``
    in the folder the run was started from (``gmi`` from any folder), else in the
    rootdir (``pytest`` from a project's subfolder)."""
    path = config.getoption("harness_config") or os.environ.get("GMI_CONFIG")
    if path:
        return Path(path)
    for folder in (config.invocation_params.dir, config.rootpath):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def checked_settings(config: pytest.Config, deep: bool = True) -> Settings:
    """The run's settings, after every check of what they ask for
    (:mod:`harness.plugin.preflight`); every problem found is one line of one usage error
    (exit status 4), raised before anything is made."""
    cli = {s.name: config.getoption(f"gmi_{s.name}") for s in SETTINGS if s.cli}
    cli = {k: v for k, v in cli.items() if v is not None}
    run = preflight.check(cli, config_file(config), deep=deep)
    if run.problems:
        raise pytest.UsageError(*dict.fromkeys(run.problems))
    return run.settings


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The run's configuration, in named steps: the markers; the checks that refuse bad
    input (the distribution mode, then every setting and what it asks for); then the
    run, its folder, its reports' paths and its package cache (nothing is made before
    every check passed)."""
    register_markers(config)
    check_distribution(config)
    terminate_as_interrupt()
    worker = getattr(config, "workerinput", None)
    settings = checked_settings(config, deep=worker is None)
    if worker is None:
        say_what_was_verified(settings)
    state = start_run(config, settings)
    if worker is None and subjects(settings) and not inspecting(config):
        make_run_folder(config, state)
        point_reports(config, state)
        start_the_package_cache(state)
    point_allure(config, state)


def say_what_was_verified(settings: Settings) -> None:
    """Release evidence checked at start (``--sign-key`` can sign; with ``--verify-key``
    each archive's signed SHA256SUMS verifies): what was verified, one line each; a
    failure is a usage error, one line."""
    try:
        lines = evidence.check_at_start(settings)
    except GmiError as exc:
        raise pytest.UsageError(str(exc)) from None
    for line in lines:
        print(f"gmi-harness: {line}", file=sys.stderr)


def register_markers(config: pytest.Config) -> None:
    """The harness's markers and warning filters (a wheel's run has no ini file)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    for line in WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)


def check_distribution(config: pytest.Config) -> None:
    """``-n N``: every test of one distro on one worker (``--dist loadgroup``)."""
    default_to_loadgroup(config)
    check_dist_mode(config)


def inspecting(config: pytest.Config) -> bool:
    """``--collect-only`` or ``--fixtures``: nothing is built, nothing written."""
    return bool(config.option.collectonly or getattr(config.option, "showfixtures", False))


def start_run(config: pytest.Config, settings: Settings) -> RunState:
    """The run's id (one for the controller and its xdist workers) and its state, known
    to the interrupt handling, the result collector and the exit clean-up. Nothing is
    written yet."""
    worker = getattr(config, "workerinput", None)
    if worker is None and subjects(settings) and installed_checklist_wanted(config):
        config.args[:] = [str(signoff.CHECKS_DIR)]
    run_id = os.environ.get("GMI_RUN_ID") if worker else None
    if not run_id:
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        os.environ["GMI_RUN_ID"] = run_id  # xdist workers inherit it
    state = RunState(settings, run_id, settings.out_dir / "runs" / run_id)
    run.INTERRUPT.states.append(state)
    config.stash[SETTINGS_KEY] = settings
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(ResultCollector(state), f"gmi-results-{id(config)}")
    allure.register_masker()
    atexit.register(state.emergency_cleanup)
    return state


def make_run_folder(config: pytest.Config, state: RunState) -> None:
    """``runs/<id>/`` with the effective settings, and ``runs/latest`` pointing at it."""
    state.run_dir.mkdir(parents=True, exist_ok=True)
    hostos.current().point_link(state.settings.out_dir / "runs" / "latest", state.run_id)
    (state.run_dir / "settings.txt").write_text("\n".join(state.settings.describe()) + "\n")


def point_reports(config: pytest.Config, state: RunState) -> None:
    """pytest-html's and JUnit's reports land in the run folder unless the user chose."""
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(state.run_dir / "report.html")
        config.option.self_contained_html = True
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(state.run_dir / "junit.xml")


def point_allure(config: pytest.Config, state: RunState) -> None:
    """Allure's results in the run folder, before allure-pytest's own configure reads the
    option (this hook is tryfirst); xdist workers get the same folder (same run id) and
    each writes its own files."""
    if not inspecting(config) and subjects(state.settings) and \
            hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(state.run_dir / allure.RESULTS_DIR)


def start_the_package_cache(state: RunState) -> None:
    """Builds: the run's package cache, started by the controller for every worker."""
    if state.settings.distro:
        try:
            run.start_package_cache(state)
        except GmiError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return []
    state = config.stash[STATE_KEY]
    verbose = config.get_verbosity() > 0
    lines = [f"gmi-harness {__version__}, run {state.run_id}: "
             + ("effective settings" if verbose else "settings not at their defaults")
             + " (command line > environment > config file > default):"]
    lines += [f"  {line}" for line in settings.describe(changed_only=not verbose)]
    if not verbose:
        saved = f", or {state.run_dir / 'settings.txt'}" if state.run_dir.is_dir() else ""
        lines.append(f"  (all settings: -v{saved})")
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Commands that replace a test run (nothing is collected or built):

    - ``--janitor=list|remove``: the chosen backend's janitor finds (and removes) what
      runs that died left behind;
    - ``--signoff-from=DIR ...``: one sign-off page from those runs' results (run
      folders or CI artifacts)."""
    janitor = config.getoption("gmi_janitor", None) or os.environ.get("GMI_JANITOR", "off")
    signoff_from = config.getoption("gmi_signoff_from", None) or os.environ.get("GMI_SIGNOFF_FROM")
    if janitor == "off" and not signoff_from:
        return None
    settings = checked_settings(config, deep=False)
    if settings.janitor != "off":
        return _janitor(settings)
    if settings.signoff_from:
        return _signoff_from(settings)
    return None


def _janitor(settings: Settings) -> int:
    """The chosen backend's janitor: what it needs is checked first (a usage error, one
    line); what goes wrong on the host is one line too (exit status 2)."""
    try:
        problems = backend_class(settings.backend).settings_problems(settings, [], janitor=True)
    except GmiError as exc:
        problems = [str(exc)]
    if problems:
        raise pytest.UsageError(*problems)
    try:
        return backend_class(settings.backend).janitor(settings, settings.janitor)
    except GmiError as exc:
        print(f"janitor: {exc}", file=sys.stderr)
        return 2


def _signoff_from(settings: Settings) -> int:
    folder = settings.out_dir / "runs" / (datetime.now(UTC).strftime("signoff-%Y%m%d-%H%M%S")
                                          + f"-{os.getpid()}")
    folders = [Path(p).expanduser() for raw in settings.signoff_from for p in raw.split(",") if p]
    try:
        page = signoff.render(signoff.collect(folders), folder / signoff.PAGE_FILE)
    except GmiError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"sign-off page: {page}")
    return 0
