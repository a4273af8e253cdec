"""Each test's result: masked reports, evidence attached to failures, the outcomes the
export gate reads, build summaries (sent by xdist workers to the controller), and the
sign-off page and Allure files written at the end of the run."""

from __future__ import annotations

import functools
import getpass
import json
import os
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import __version__, git_revision
from harness.build import Build
from harness.errors import GmiError, mask
from harness.evidence import release as evidence
from harness.log import clean_console
from harness.plugin import lifecycle
from harness.plugin.matrix import node_key, subject_id, subject_of, subjects
from harness.plugin.run import STATE_KEY, RunState, remove_once_folder
from harness.report import allure, release, signoff


@pytest.hookimpl(wrapper=True, trylast=True)  # innermost: masks before others read the report
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _mask_report(report)
    name = subject_of(item)
    if name is None:
        return report
    state = item.config.stash[STATE_KEY]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        state.record_outcome(name, node_key(item.nodeid), outcome_of(report))
    if report.when == "setup" and report.failed and call.excinfo is not None:
        _say_once(report, call.excinfo.value, state, name)
    if report.failed and not blocked(report):
        state.mark_failed(name)
        _attach_evidence(item, report, state.builds.get(name))
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _link_logs(report, state, name)
    return report


BLOCKED = "gmi_blocked"  # a report's attribute: why it did not run (travels with xdist)


def blocked(report: pytest.TestReport) -> str:
    """'' or the one line that says which failure of its subject stopped this test."""
    return str(getattr(report, BLOCKED, "") or "")


def _say_once(report: pytest.TestReport, error: BaseException, state: RunState, subject: str) -> None:
    """A failure that stopped the subject (a stage, the clone, its host check; see
    ``fixtures.fail_subject``) is raised again for every test that needs it: the first
    of them shows it in full, with the build log's last lines; every other one says in
    one line what failed and where the full error is, and is counted as blocked."""
    stopped = state.stopped(subject)
    if stopped is None or error is not stopped.failure:
        return
    log = state.run_dir / "logs" / subject_id(subject) / "build.log"
    if not stopped.first:
        stopped.first = node_key(report.nodeid)
        tail = log.read_text(errors="replace").splitlines()[-40:] if log.is_file() else []
        if tail:
            report.sections.append(("build.log (its last 40 lines)", mask("\n".join(tail))))
        return
    where = f", {log.relative_to(state.run_dir)}" if log.is_file() else ""
    line = f"{stopped.what} failed; the error: {stopped.first.rpartition('::')[2]}{where}"
    report.longrepr = line
    setattr(report, BLOCKED, line)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """A test its subject's failure stopped is "blocked", not one more error: it is not
    repeated under ERRORS (the first test shows the error), and its line is in the
    "blocked" summary (``harness.plugin.summary``); the run still fails."""
    if report.when == "setup" and blocked(report):
        return "blocked", "b", ("BLOCKED", {"yellow": True})
    return None


def outcome_of(report: pytest.TestReport) -> str:
    """pytest's outcome word, with an expected failure told apart from a skip
    ("xfailed": a fault that is reported but not the image's, e.g. a seed template's)."""
    if report.skipped and getattr(report, "wasxfail", None) is not None:
        return "xfailed"
    return report.outcome


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
    logdir = state.run_dir / "logs" / subject_id(subject)
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
    # (a promoted archive is what the run made of the --gmi input)
    archive = str(build.record.get("promoted_archive") or build.archive or build.record.get("archive", ""))
    logs = sorted(p for p in build.logdir.glob("*") if p.is_file()) if build.logdir.is_dir() else []
    return {
        "title": build.distro.vmgenie.vm_name, "subject": build.label,
        "backend": build.backend.name, "accel": str(build.record.get("accel", "?")),
        "prepared_in": str(build.record.get("prepared_in", "")),
        "host": build.backend.host_label(build),
        "expectations": "generic (not in the catalogue)" if build.distro.generic else "catalogue",
        "archive": archive, "sha256": _archive_sha256(Path(archive)) if archive else "",
        "timings": dict(build.timings), "versions": dict(build.record.get("versions", {})),
        "sizes": dict(build.record.get("sizes", {})),
        "install_iso": dict(build.record.get("install_iso", {})),
        "clone_shape": {str(k): str(v) for k, v in dict(build.record.get("clone_shape") or {}).items()},
        "vulnerabilities": dict(build.record.get(evidence.VULN_KEY, {})),
        "evidence": dict(build.record.get(evidence.EVIDENCE_KEY, {})),
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
    from harness.host.tools import sha256_file

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
        test["outcome"] = "error" if report.failed and report.when != "call" else outcome_of(report)
        test["reason"] = _reason(report)


def _reason(report: pytest.TestReport) -> str:
    """A skip's reason or a failure's one-line message (masked, short)."""
    longrepr = report.longrepr
    if longrepr is None or report.passed:
        return ""
    if outcome_of(report) == "xfailed":
        return mask(" ".join(str(report.wasxfail).split()))[:1200]  # each finding (the seed check)
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


def summaries(state: RunState) -> list[dict[str, Any]]:
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
    remove_once_folder(state)
    if not state.run_dir.is_dir():
        return  # nothing ran (--collect-only, --fixtures, no subject)
    try:
        facts = run_facts(session.config, state)
        built = lifecycle.with_support(summaries(state), state)
        release.attach_diffs(built, state.settings.out_dir, state.settings.previous)
        doc = signoff.run_data(facts, built, state.tests.values())
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


