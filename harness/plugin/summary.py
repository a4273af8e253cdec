"""What a person reads at the end of a run: the terminal summary per distro and the
pytest-html columns and header tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.plugin.results import blocked, summaries
from harness.plugin.run import STATE_KEY
from harness.report import allure, signoff

# pytest's outcome words as the results record them ("xfailed": a seed template's fault)
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The tests a failure stopped, one line each; a short table per distro: stages and
    their durations, archive, result."""
    stopped = terminalreporter.stats.get("blocked", [])
    if stopped and not hasattr(config, "workerinput"):
        terminalreporter.write_sep("=", f"blocked: {len(stopped)} tests did not run")
        for report in stopped:
            terminalreporter.write_line(f"BLOCKED {report.nodeid} - {blocked(report)}", yellow=True)
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput") or not state.run_dir.is_dir():
        return
    tests: dict[str, list[dict[str, Any]]] = {}
    for t in state.tests.values():
        tests.setdefault(t["subject"], []).append(t)
    builds = {s["subject"]: s for s in summaries(state)}
    names = list(dict.fromkeys([*builds, *tests]))
    if not names:
        return
    tr = terminalreporter
    tr.write_sep("=", "GMI builds")
    for name in names:
        mine, build = tests.get(name, []), builds.get(name, {})
        counts = {o: sum(t["outcome"] == o for t in mine) for o in OUTCOMES}
        result = "FAILED" if counts["failed"] or counts["error"] else "passed" if mine else "no tests"
        stages = {k: v for k, v in build.get("timings", {}).items() if ":" not in k}
        tr.write_line(f"{name:<14} {result:<8} " + ", ".join(f"{k}={v:.0f}" for k, v in counts.items() if v)
                      + f"  ({signoff.human_seconds(sum(stages.values()))} in stages)",
                      red=result == "FAILED", green=result == "passed")
        if stages:
            where = {"chroot": "  (stages 2-6 in a chroot of its root tree)",
                     "vm": "  (stages 2-6 in the build VM)"}.get(build.get("prepared_in", ""), "")
            tr.write_line(" " * 15 + "  ".join(f"{k} {signoff.human_seconds(v)}" for k, v in stages.items())
                          + where)
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
    for item in summaries(state):
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


