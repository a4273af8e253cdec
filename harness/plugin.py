"""The pytest plugin (loaded by the root conftest): options, settings, the distro
matrix, per-distro build and clone fixtures, result tracking for the export gate,
and reports.

Options come from :data:`harness.settings.SETTINGS`, so ``pytest --help`` lists them
all under "gmi-harness"; fixtures are documented for ``pytest --fixtures``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import getpass
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from harness import __version__
from harness import distro as distro_mod
from harness.archive import validate
from harness.backends import get_backend
from harness.build import Build
from harness.errors import GmiError, mask
from harness.host import file_lock
from harness.log import clean_console
from harness.report import allure, signoff
from harness.settings import SETTINGS, Settings, resolve

SETTINGS_KEY = pytest.StashKey[Settings]()
STATE_KEY = pytest.StashKey["RunState"]()


class RunState:
    """What the run knows across fixtures and hooks."""

    def __init__(self, settings: Settings, run_id: str, run_dir: Path) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_dir = run_dir
        self.builds: dict[str, Build] = {}
        # distro -> {nodeid: outcome}
        self.outcomes: dict[str, dict[str, str]] = {}
        # distro -> {nodeid: checklist item}, for every collected checklist test
        self.labels: dict[str, dict[str, str]] = {}
        self.summaries: list[dict[str, Any]] = []  # builds reported by xdist workers
        self.failed: dict[str, bool] = {}
        self.scratch: list[Path] = []
        # what the reports show (filled on the controller, from every worker's reports)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.tests: dict[str, dict[str, Any]] = {}  # nodeid -> one test's result
        self.signoff_page: Path | None = None
        self.report_error = ""  # why the sign-off page could not be written

    def keep(self, distro: str) -> bool:
        keep = self.settings.keep
        return keep == "always" or (keep == "on-failure" and self.failed.get(distro, False))

    def emergency_cleanup(self) -> None:
        """Last resort at interpreter exit: no orphaned qemu, no scratch left behind."""
        for name, build in self.builds.items():
            if not self.keep(name):
                for vm in build.vms:
                    vm.destroy()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gmi-harness", "GMI build and validation")
    for s in SETTINGS:
        if not s.cli:
            continue
        help_text = f"{s.help} (env {s.env}; default: {s.default!r})"
        if s.choices:
            help_text = f"{s.help}: {' | '.join(s.choices)} (env {s.env}; default: {s.default})"
        if s.flag:
            group.addoption(s.option, action="store_const", const=True, default=None,
                            dest=f"gmi_{s.name}", help=help_text)
        elif s.name == "signoff_from":  # --signoff-from DIR [DIR ...]
            group.addoption(s.option, action="extend", nargs="+", default=None,
                            dest=f"gmi_{s.name}", metavar="DIR", help=help_text)
        elif s.multiple:
            group.addoption(s.option, action="append", default=None, dest=f"gmi_{s.name}",
                            metavar=s.name.upper() if s.name != "distro" else "NAME", help=help_text)
        else:
            group.addoption(s.option, action="store", default=None, dest=f"gmi_{s.name}",
                            metavar=s.name.upper(), help=help_text)
    group.addoption("--harness-config", action="store", default=None, metavar="PATH",
                    help="settings file (TOML); default: $GMI_CONFIG, else gmi-harness.toml "
                         "in the rootdir when present. Precedence: command line > "
                         "environment (GMI_*) > this file > defaults")


class Hooks:
    """Hooks other parts of the harness (or a conftest) implement."""

    @pytest.hookspec
    def pytest_gmi_once_per_run(self, config: pytest.Config, settings: Settings,
                                scratch: Path) -> dict[str, Any] | None:
        """Work done once per run, not once per xdist worker (shared downloads, the ISO
        cache, host checks): the first worker to need it runs every implementation under
        a file lock keyed on the run id; the others wait and reuse the facts returned
        (JSON-able dicts, merged). ``scratch`` is a folder for the work, removed after.
        Raise :class:`harness.errors.GmiError` to fail every build with its message."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(Hooks)


def _default_to_loadgroup(config: pytest.Config) -> None:
    """With ``-n N`` and no ``--dist``, distribute by distro (``--dist loadgroup``):
    every test of one distro on one worker, so its build happens once."""
    args = config.invocation_params.args
    chosen = any(str(a) in ("--dist", "--distload", "-d") or str(a).startswith("--dist=")
                 for a in args)
    if chosen:
        return
    if hasattr(config, "workerinput"):
        # xdist workers tag each test with its group only when told loadgroup
        config.option.loadgroup = True
    elif getattr(config.option, "numprocesses", None):
        config.option.dist = "loadgroup"


def _check_dist_mode(config: pytest.Config) -> None:
    """Any other distribution would split one distro's build across workers."""
    dist = getattr(config.option, "dist", "no")
    if getattr(config.option, "numprocesses", None) and dist not in ("no", "loadgroup"):
        raise pytest.UsageError(
            f"--dist {dist} would split one distro's tests (and its build) across workers; "
            "use --dist loadgroup (the default with -n)")


def _terminate_as_interrupt() -> None:
    """SIGTERM/SIGHUP end the run like Ctrl-C: fixtures tear down, nothing is orphaned."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(sig, handler)


def _settings_from(config: pytest.Config) -> Settings:
    cli = {s.name: config.getoption(f"gmi_{s.name}") for s in SETTINGS if s.cli}
    cli = {k: v for k, v in cli.items() if v is not None}
    path = config.getoption("harness_config") or os.environ.get("GMI_CONFIG")
    config_file = Path(path) if path else None
    if config_file is None and (config.rootpath / "gmi-harness.toml").exists():
        config_file = config.rootpath / "gmi-harness.toml"
    settings = resolve(cli, config_file=config_file)
    names = list(settings.distro)
    known = distro_mod.known_distros()
    if "all" in names:
        names = known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(
            f"unknown distro {unknown[0]!r}; known distros: {', '.join(known)} (or 'all')")
    archives = []
    for raw in settings.gmi:
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--gmi {raw}: no such archive file")
        archives.append(str(path))
    if settings.index and not settings.index_url:
        raise pytest.UsageError(
            "--index needs --index-url: the http(s) URL vmgenie will download the archive "
            "from ({archive} is replaced by the archive's file name)")
    return settings.replace(distro=tuple(dict.fromkeys(names)), gmi=tuple(dict.fromkeys(archives)))


def subjects(settings: Settings) -> list[str]:
    """What the run validates: each --distro (built), then each --gmi (read)."""
    return [*settings.distro, *(validate.PREFIX + p for p in settings.gmi)]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _default_to_loadgroup(config)
    _check_dist_mode(config)
    _terminate_as_interrupt()
    try:
        settings = _settings_from(config)
    except GmiError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.backend not in ("qemu", "hyperv"):  # pragma: no cover - choices checked
        raise pytest.UsageError(f"unknown backend {settings.backend!r}")
    worker = getattr(config, "workerinput", None)
    run_id = os.environ.get("GMI_RUN_ID") if worker else None
    if not run_id:
        run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        os.environ["GMI_RUN_ID"] = run_id  # xdist workers inherit it
    run_dir = settings.out_dir / "runs" / run_id
    state = RunState(settings, run_id, run_dir)
    config.stash[SETTINGS_KEY] = settings
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(ResultCollector(state), f"gmi-results-{id(config)}")
    allure.register_masker()
    atexit.register(state.emergency_cleanup)
    inspecting = config.option.collectonly or getattr(config.option, "showfixtures", False)
    if worker is None and not inspecting and subjects(settings):
        run_dir.mkdir(parents=True, exist_ok=True)
        latest = settings.out_dir / "runs" / "latest"
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(run_id)
        # Reports land in the run folder unless the user chose otherwise.
        if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
            config.option.htmlpath = str(run_dir / "report.html")
            config.option.self_contained_html = True
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(run_dir / "junit.xml")
        (run_dir / "settings.txt").write_text("\n".join(settings.describe()) + "\n")
    if not inspecting and subjects(settings) and hasattr(config.option, "allure_report_dir") \
            and not config.option.allure_report_dir:
        # before allure-pytest's own pytest_configure reads it (this hook is tryfirst);
        # workers get the same folder (same run id): each writes its own result files
        config.option.allure_report_dir = str(run_dir / allure.RESULTS_DIR)


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
        lines.append(f"  (all settings: -v, or {state.run_dir / 'settings.txt'})")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "distro_name" in metafunc.fixturenames:
        names = subjects(metafunc.config.stash[SETTINGS_KEY])
        metafunc.parametrize("distro_name", names, indirect=True, scope="session",
                             ids=[validate.subject_id(n) for n in names])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE_KEY]
    needs_distro = [i for i in items if "distro_name" in getattr(i, "fixturenames", ())]
    if needs_distro and not subjects(state.settings):
        known = ", ".join(distro_mod.known_distros())
        raise pytest.UsageError(
            f"the checks need --distro NAME (repeatable, or 'all') or --gmi ARCHIVE; "
            f"known distros: {known}")
    keep, dropped = [], []
    for item in items:
        name = _distro_of(item)
        if name is not None and not _applies(item, name, state.settings):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    for item in items:
        name = _distro_of(item)
        if name is None:
            continue
        # Every test of one distro runs on one xdist worker (--dist loadgroup).
        item.add_marker(pytest.mark.xdist_group(name))
        mark = item.get_closest_marker("checklist")
        label = str(mark.args[0]) if mark else None
        if label is not None:
            state.labels.setdefault(name, {})[node_key(item.nodeid)] = label
        # The reports' grouping: JUnit properties (also how the xdist controller learns
        # each result's distro and item) and Allure labels.
        short = validate.subject_id(name)
        item.user_properties.append(("distro", short))
        if label is not None:
            item.user_properties.append(("checklist", label))
        for marker in allure.label_marks(short, label, getattr(item, "originalname", item.name)):
            item.add_marker(marker)


def _applies(item: pytest.Item, subject: str, settings: Settings) -> bool:
    """Static archive checks and the index entry are for archives; the export is for
    builds; the index entry only when --index names a file."""
    archive = validate.is_archive(subject)
    if item.get_closest_marker("archive") or item.get_closest_marker("index"):
        return archive and (not item.get_closest_marker("index") or bool(settings.index))
    if item.get_closest_marker("export"):
        return not archive
    return True


def node_key(nodeid: str) -> str:
    """A test's id without xdist's ``@group`` suffix (added after our collection hook)."""
    return nodeid.split("@", 1)[0]


def _distro_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get("distro_name")
    return str(value) if value is not None else None


@pytest.hookimpl(wrapper=True, trylast=True)  # innermost: masks before others read the report
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _mask_report(report)
    name = _distro_of(item)
    if name is None:
        return report
    state = item.config.stash[STATE_KEY]
    outcomes = state.outcomes.setdefault(name, {})
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcomes[node_key(item.nodeid)] = report.outcome
    if report.failed:
        state.failed[name] = True
        _attach_evidence(item, report, state.builds.get(name))
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _link_logs(report, state, name)
    return report


def _mask_report(report: pytest.TestReport) -> None:
    """No registered secret reaches a report (HTML, JUnit, Allure, sign-off): masked
    where it is known, in the process that ran the test (xdist workers included)."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        if mask(text) != text:
            report.longrepr = mask(text)
    report.sections = [(title, mask(content)) for title, content in report.sections]


def _link_logs(report: pytest.TestReport, state: RunState, subject: str) -> None:
    """pytest-html extras on every test: links to its distro's logs (relative to
    report.html, which is in the run folder)."""
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover
        return
    logdir = state.run_dir / "logs" / validate.subject_id(subject)
    links = [extras.url(str(p.relative_to(state.run_dir)), name=p.name)
             for p in sorted(logdir.glob("*")) if p.is_file()]
    setattr(report, "extras", [*getattr(report, "extras", []), *links])  # noqa: B010


def _attach_evidence(item: pytest.Item, report: pytest.TestReport, build: Build | None) -> None:
    """On failure: the serial console(s) and the guest's cloud-init log."""
    if build is None:
        return
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover
        extras = None
    sections: list[tuple[str, str]] = []
    for log in sorted(build.logdir.glob("*.serial.log")):
        text = clean_console(log.read_bytes())
        sections.append((f"serial console {log.name}", "\n".join(text.splitlines()[-80:])))
    clone = build.clone_guest
    if clone is not None and clone.client is not None:
        try:
            out = clone.run("sudo tail -n 80 /var/log/cloud-init.log; "
                            "sudo cat /var/log/cloud-init-output.log | tail -n 40",
                            check=False, quiet=True, what="collect cloud-init logs").output
            sections.append(("guest cloud-init logs", out))
        except GmiError:
            pass
    for title, text in sections:
        report.sections.append((title, mask(text)))
        allure.attach_text(text, title)
        if extras is not None:
            current = getattr(report, "extras", [])
            setattr(report, "extras", [*current, extras.text(mask(text), name=title)])  # noqa: B010


def build_summary(build: Build, run_dir: Path | None = None) -> dict[str, Any]:
    """What the reports show of one build or validated archive (JSON-able, so xdist
    workers can send it to the controller, which writes the reports)."""
    archive = str(build.archive or build.record.get("archive", ""))
    logs = sorted(p for p in build.logdir.glob("*") if p.is_file()) if build.logdir.is_dir() else []
    return {
        "title": build.distro.vmgenie.vm_name, "subject": build.label,
        "backend": build.backend.name, "accel": str(build.record.get("accel", "?")),
        "host": build.settings.hyperv_host or socket.gethostname(),
        "expectations": "generic (not in the catalogue)" if build.distro.generic else "catalogue",
        "archive": archive, "sha256": _archive_sha256(Path(archive)) if archive else "",
        "timings": dict(build.timings), "versions": dict(build.record.get("versions", {})),
        "sizes": dict(build.record.get("sizes", {})),
        "logs": [str(p.relative_to(run_dir)) if run_dir and p.is_relative_to(run_dir) else str(p)
                 for p in logs],
    }


def _archive_sha256(archive: Path) -> str:
    """The archive's SHA-256: from the ``.sha256`` file the export writes beside it,
    else hashed (once per archive and version of it: the reports ask several times)."""
    sidecar = archive.with_name(archive.name + ".sha256")
    if sidecar.is_file():
        return sidecar.read_text().split()[0]
    if archive.is_file():
        st = archive.stat()
        return _hash_file(str(archive), st.st_size, st.st_mtime_ns)
    return ""


@functools.lru_cache(maxsize=32)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    from harness.host import sha256_file

    return sha256_file(Path(path))


class ResultCollector:
    """Each test's end, for the sign-off page (registered per run in pytest_configure).
    On the xdist controller it sees every worker's reports: the distro and checklist
    item travel with them as user properties."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "distro" not in props:
            return
        nodeid = node_key(report.nodeid)
        test = self.state.tests.setdefault(nodeid, {
            "subject": str(props["distro"]), "name": nodeid.rsplit("::", 1)[-1],
            "item": str(props.get("checklist", "")), "outcome": "passed", "reason": "",
            "duration": 0.0})
        if report.when == "call":  # (the first test's setup is the whole build: see the stages)
            test["duration"] = round(report.duration, 2)
        if report.when != "call" and report.outcome == "passed":
            return
        if report.when == "teardown" and test["outcome"] != "passed":
            return  # the first failure says what went wrong
        test["outcome"] = "error" if report.failed and report.when != "call" else report.outcome
        test["reason"] = _reason(report)


def _reason(report: pytest.TestReport) -> str:
    """A skip's reason or a failure's one-line message (masked, short)."""
    longrepr = report.longrepr
    if longrepr is None or report.passed:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: why")
        text = str(longrepr[2]).removeprefix("Skipped: ")
    elif getattr(longrepr, "reprcrash", None) is not None:
        text = longrepr.reprcrash.message  # type: ignore[union-attr]
    else:
        lines = [ln for ln in str(longrepr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E ")]
        text = (errors or lines or [""])[0].removeprefix("E").strip()
    return mask(" ".join(text.split()).removeprefix("Failed: "))[:400]


def run_facts(config: pytest.Config, state: RunState) -> dict[str, Any]:
    """Who ran the run, where, when, with which harness revision and settings."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return {
        "id": state.run_id, "user": user, "host": socket.gethostname(),
        "started": state.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall_seconds": round(time.monotonic() - state.started, 1),
        "harness_version": __version__, "git_revision": git_revision(Path(__file__).resolve().parent),
        "command": "pytest " + shlex.join(mask(str(a)) for a in config.invocation_params.args),
        "settings": state.settings.describe(),
    }


def git_revision(where: Path) -> str:
    """``git describe --always --dirty`` of the harness, or "unknown" outside git."""
    try:
        out = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _summaries(state: RunState) -> list[dict[str, Any]]:
    """Every build of the run: this process's and those the xdist workers sent."""
    found = [build_summary(b, state.run_dir) for b in state.builds.values()] + state.summaries
    order = subjects(state.settings)  # as asked for, not as the workers finished
    return sorted(found, key=lambda s: order.index(s["subject"]) if s["subject"] in order else len(order))


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if workeroutput is not None:
        workeroutput["gmi_summaries"] = json.dumps(
            [build_summary(b, state.run_dir) for b in state.builds.values()])
        return
    _remove_once_folder(state)
    if not state.run_dir.is_dir():
        return  # nothing ran (--collect-only, --fixtures, no subject)
    try:
        facts = run_facts(session.config, state)
        doc = signoff.run_data(facts, _summaries(state), state.tests.values())
        signoff.write_data(state.run_dir, doc)
        state.signoff_page = signoff.render(signoff.load_data(state.run_dir / signoff.DATA_FILE),
                                            state.run_dir / signoff.PAGE_FILE)
        results = getattr(session.config.option, "allure_report_dir", None)
        if results:
            _allure_files(Path(results), facts, state)
    except Exception as exc:  # a report must never cost a long run its other results
        state.report_error = mask(f"{type(exc).__name__}: {exc}")


def _allure_files(results: Path, facts: dict[str, Any], state: RunState) -> None:
    props: dict[str, Any] = {
        "run": facts["id"], "harness": f"{facts['harness_version']} ({facts['git_revision']})",
        "host": facts["host"], "user": facts["user"], "python": sys.version.split()[0],
        "pytest": pytest.__version__, "distros": ", ".join(subjects(state.settings)) or "(none)"}
    for line in state.settings.describe():
        name, _, value = line.partition(" = ")
        props[f"setting.{name}"] = value
    allure.write_environment(results, {k: mask(str(v)) for k, v in props.items()})
    allure.write_categories(results)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: collect what each worker built, for the report."""
    data = getattr(node, "workeroutput", {}).get("gmi_summaries")
    state = node.config.stash.get(STATE_KEY, None)
    if data and state is not None:
        state.summaries.extend(json.loads(data))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A short table per distro: stages and their durations, archive, result."""
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput") or not state.run_dir.is_dir():
        return
    tests: dict[str, list[dict[str, Any]]] = {}
    for t in state.tests.values():
        tests.setdefault(t["subject"], []).append(t)
    builds = {s["subject"]: s for s in _summaries(state)}
    names = list(dict.fromkeys([*builds, *tests]))
    if not names:
        return
    tr = terminalreporter
    tr.write_sep("=", "GMI builds")
    for name in names:
        mine, build = tests.get(name, []), builds.get(name, {})
        counts = {o: sum(t["outcome"] == o for t in mine) for o in ("passed", "failed", "error", "skipped")}
        result = "FAILED" if counts["failed"] or counts["error"] else "passed" if mine else "no tests"
        stages = {k: v for k, v in build.get("timings", {}).items() if ":" not in k}
        tr.write_line(f"{name:<14} {result:<8} " + ", ".join(f"{k}={v:.0f}" for k, v in counts.items() if v)
                      + f"  ({signoff.human_seconds(sum(stages.values()))} in stages)",
                      red=result == "FAILED", green=result == "passed")
        if stages:
            tr.write_line(" " * 15 + "  ".join(f"{k} {signoff.human_seconds(v)}" for k, v in stages.items()))
        tr.write_line(" " * 15 + f"archive: {build.get('archive') or 'not exported'}")
    wall = signoff.human_seconds(time.monotonic() - state.started)
    tr.write_line(f"run {state.run_id}: wall time {wall}; reports in {state.run_dir}")
    if state.signoff_page is not None:
        tr.write_line(f"sign-off page: {state.signoff_page}")
    if state.report_error:
        tr.write_line(f"sign-off page NOT written: {state.report_error}", red=True)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(2, '<th class="sortable" data-column-type="distro">Distro</th>')
    cells.insert(3, '<th class="sortable" data-column-type="checklist">Checklist item</th>')


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    import html

    props = dict(report.user_properties)
    cells.insert(2, f'<td class="col-distro">{html.escape(str(props.get("distro", "")))}</td>')
    cells.insert(3, f'<td class="col-checklist">{html.escape(str(props.get("checklist", "")))}</td>')


def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    """Stage durations, versions and sizes per distro at the top of the HTML report."""
    state = session.config.stash.get(STATE_KEY, None)
    if state is None:
        return
    import html

    def table(head: str, rows: dict[str, Any], fmt: str) -> str:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(fmt.format(v))}</td></tr>"
                       for k, v in rows.items())
        return f"<table><tr><th>{head}</th><th></th></tr>{body}</table>"

    if state.run_dir.is_dir():
        postfix.append(f'<p>Sign-off page: <a href="{signoff.PAGE_FILE}">{signoff.PAGE_FILE}</a>; '
                       f'Allure results: {allure.RESULTS_DIR}/</p>')
    for item in _summaries(state):
        archive = f" - archive {item['archive']}" if item["archive"] else ""
        sha = f" (SHA-256 {item['sha256']})" if item.get("sha256") else ""
        logs = ", ".join(f'<a href="{html.escape(rel)}">{html.escape(Path(rel).name)}</a>'
                         for rel in item.get("logs", []))
        postfix.append(
            f"<h3>{html.escape(item['title'])} ({html.escape(item['subject'])}, backend "
            f"{html.escape(item['backend'])}, accel {html.escape(item['accel'])}, host "
            f"{html.escape(item.get('host', '?'))})</h3>"
            f"<p>expectations: {html.escape(item['expectations'] + archive + sha)}</p>"
            + (f"<p>logs: {logs}</p>" if logs else "")
            + table("stage", item["timings"], "{:.0f} s")
            + table("component", item["versions"], "{}")
            + table("size", item["sizes"], "{:,} bytes"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--signoff-from=DIR ...``: write one sign-off page from those runs' results
    (run folders or CI artifacts) and stop; nothing is collected or built.

    Spell it ``--signoff-from=DIR`` (repeatable, or DIR,DIR) when the folders are outside
    the repository: pytest reads bare words after an option it does not know yet as
    test paths, and would then not find the repository's conftest (and this plugin)."""
    if not config.getoption("gmi_signoff_from", None) and not os.environ.get("GMI_SIGNOFF_FROM"):
        return None
    settings = _settings_from(config)
    if not settings.signoff_from:
        return None
    folder = settings.out_dir / "runs" / (datetime.now(UTC).strftime("signoff-%Y%m%d-%H%M%S")
                                          + f"-{os.getpid()}")
    folders = [Path(p).expanduser() for raw in settings.signoff_from for p in raw.split(",") if p]
    try:
        page = signoff.render(signoff.collect(folders), folder / signoff.PAGE_FILE)
    except GmiError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"sign-off page: {page}")
    return 0


# ------------------------------------------------------------------ once per run


def once_per_run(config: pytest.Config, key: str, work: Callable[[Path], Any]) -> Any:
    """Run ``work(scratch)`` once per run, whichever worker gets here first; the
    others block on the lock, then get the JSON-able result it left (or its error).
    The lock and result live under ``<scratch>/runs/<run id>/``, so two runs never
    share them and a later run never reuses a stale result."""
    state: RunState = config.stash[STATE_KEY]
    folder = _once_folder(state)
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"{key}.json"
    with file_lock(folder / f"{key}.lock"):
        if done.exists():
            data = json.loads(done.read_text())
        else:
            scratch = folder / key
            scratch.mkdir(exist_ok=True)
            try:
                data = {"value": work(scratch), "error": None}
            except GmiError as exc:
                data = {"value": None, "error": str(exc)}
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            tmp = done.with_name(done.name + ".part")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, done)
    if data["error"]:
        raise GmiError(data["error"])
    return data["value"]


def _once_folder(state: RunState) -> Path:
    return state.settings.scratch_dir / "runs" / state.run_id


def _remove_once_folder(state: RunState) -> None:
    """At the end of the run (on the controller, after every worker finished)."""
    folder = _once_folder(state)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when no other run uses it


def host_facts(config: pytest.Config) -> dict[str, Any]:
    """The run's once-per-run work (every ``pytest_gmi_once_per_run``), merged."""
    settings = config.stash[SETTINGS_KEY]

    def work(scratch: Path) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for part in config.hook.pytest_gmi_once_per_run(config=config, settings=settings,
                                                        scratch=scratch):
            facts.update(part or {})
        return facts

    facts: dict[str, Any] = once_per_run(config, "host", work)
    if facts.get("accel") and settings.backend == "qemu":
        from harness.backends.qemu import vm

        vm._ACCEL_CACHE.setdefault("auto", facts["accel"])  # every worker: no second probe
    return facts


@pytest.hookimpl(trylast=True)
def pytest_gmi_once_per_run(config: pytest.Config, settings: Settings, scratch: Path) -> dict[str, Any]:
    """The host checks every build needs: the backend's tools, and for QEMU the
    accelerator probe (a short real boot under KVM)."""
    if settings.backend != "qemu":
        return {}
    from harness import host
    from harness.backends.qemu import QemuBackend, vm

    host.require_tools(list(QemuBackend.tools))
    return {"accel": vm.probe_accel(scratch, settings.accel)}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def gmi_settings(request: pytest.FixtureRequest) -> Settings:
    """The run's effective settings (frozen): command line > GMI_* environment >
    config file > defaults."""
    return request.config.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def distro_name(request: pytest.FixtureRequest) -> str:
    """The subject under test: a distro name (``--distro``, built) or ``gmi:<path>``
    (``--gmi``, an existing archive); tests using it are parametrized by both."""
    return str(request.param)


@pytest.fixture(scope="session")
def distro(distro_name: str) -> distro_mod.Distro:
    """The distro's catalogue entry (``distros/<name>.yml``), typed and frozen; for an
    archive, the entry matching its name, or generic expectations (``distro.generic``)."""
    try:
        if validate.is_archive(distro_name):
            return validate.distro_for(validate.archive_path(distro_name))
        return distro_mod.load(distro_name)
    except GmiError as exc:
        fail_cleanly(exc)


def fail_cleanly(exc: GmiError) -> NoReturn:
    """Report a harness error as one line, without a traceback (and without the
    chained exception: the error is re-raised outside its ``except`` block)."""
    message = str(exc)
    exc.__traceback__ = None
    raise pytest.fail.Exception(message, pytrace=False) from None


@pytest.fixture(scope="session")
def build(request: pytest.FixtureRequest, distro: distro_mod.Distro,
          gmi_settings: Settings) -> Iterator[Build]:
    """The distro's build context: scratch folder, logs, backend, and what the
    stages make. Its VMs and scratch are removed at the end unless ``--keep`` says
    otherwise."""
    state: RunState = request.config.stash[STATE_KEY]
    try:
        backend = get_backend(gmi_settings.backend)
    except GmiError as exc:
        fail_cleanly(exc)
    subject: str = request.getfixturevalue("distro_name")
    short = validate.subject_id(subject)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workdir = gmi_settings.scratch_dir / "-".join(filter(None, (state.run_id, worker, short)))
    b = Build(distro, gmi_settings, backend, state.run_id, workdir,
              state.run_dir / "logs" / short, subject=subject)
    if validate.is_archive(subject):
        b.archive = validate.archive_path(subject)
    b.progress = _progress_writer(request.config, state)
    b.record.update(harness=__version__, backend=backend.name, distro=distro.name)
    try:
        host_facts(request.config)
        backend.check_host(b)
    except GmiError as exc:
        fail_cleanly(exc)
    workdir.mkdir(parents=True, exist_ok=True)
    b.attach_logfile()
    state.builds[subject] = b
    state.scratch.append(workdir)
    try:
        yield b
    finally:
        _finish(b, state)


def _progress_writer(config: pytest.Config, state: RunState) -> Any:
    """Live progress lines on the terminal, past pytest's output capture, each with
    the run's elapsed time (two distros' lines interleave under ``-n``)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def emit(line: str) -> None:
        elapsed = int(time.monotonic() - state.started)
        line = f"[{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {line}"
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if reporter is None or hasattr(config, "workerinput"):
                # an xdist worker: its stderr is the controller's terminal
                print(line, file=sys.stderr, flush=True)
            else:
                reporter.write_line(line)

    return emit


def _finish(b: Build, state: RunState) -> None:
    keep = state.keep(b.subject)
    if b.guest is not None:
        b.guest.close()
    for vm in b.vms:
        if not keep:
            vm.destroy()
        elif vm.is_running():
            b.progress(f"[{b.label}] {vm.describe()}")
    if keep:
        b.progress(f"[{b.label}] scratch kept: {b.workdir}")
        state.scratch.remove(b.workdir)
    else:
        shutil.rmtree(b.workdir, ignore_errors=True)
        state.scratch.remove(b.workdir)
    b.detach_logfile()
    # Allure: the evidence goes into the build fixture's tear-down, shown with every
    # test of the distro (the serial consoles, the clone's logs, seed files, manifest).
    allure.attach_logs(b.logdir, b.record.get("manifest"))


def run_stage(request: pytest.FixtureRequest, b: Build, stage: Any) -> Build:
    """Run one stage function; a harness error fails every test that needs it with
    the same one-line message (pytest caches session fixtures' errors)."""
    state: RunState = request.config.stash[STATE_KEY]
    name = stage.__name__
    try:
        with b.step(name):
            stage(b)
    except GmiError as exc:
        state.failed[b.subject] = True
        fail_cleanly(GmiError(f"stage {name}: {exc}"))
    finally:
        b.record["stage_durations"] = dict(b.timings)
        b.record["scratch_peak_bytes"] = max(
            b.record.get("scratch_peak_bytes", 0),
            sum(p.stat().st_blocks * 512 for p in b.workdir.glob("*") if p.is_file()))
    return b
