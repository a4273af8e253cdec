"""Each distro's end of life, said at the start of a run and on its sign-off page
(:mod:`harness.distro.lifecycle` judges it on the run's date).

At the start: pytest's header names every distro of the run with its support status,
and a release past its end of life gets its own line (the run goes on). With ``-q``
the header is not shown, so the same lines follow the collection instead; the end of a
run repeats the end-of-life lines (under ``-q -n N`` they are the only ones). The
sign-off page carries each distro's status and, for an end-of-life release, where its
install ISO came from."""

from __future__ import annotations

from typing import Any

import pytest

from harness import distro as distro_mod
from harness.distro import lifecycle
from harness.errors import GmiError
from harness.plugin.run import STATE_KEY, RunState


def statuses(state: RunState) -> list[lifecycle.Status]:
    """The support status of every distro the run builds, on the run's date."""
    today = state.started_at.date()
    found = []
    for name in state.settings.distro:
        try:
            d = distro_mod.load(name, extra=state.settings.distros)
        except GmiError:
            continue  # (the distro fixture reports it, once, in one line)
        found.append(lifecycle.status(d, today))
    return found


def lines(state: RunState) -> list[str]:
    """One line per end-of-life distro, then one for the others together."""
    found = statuses(state)
    if not found:
        return []
    ended = [s.line() for s in found if s.ended]
    others = [f"{s.distro} {s.short()}" for s in found if not s.ended]
    summary = (f"distro support on {found[0].as_of} (the run's date): " + "; ".join(others)
               if others else "")
    return [*ended, *([summary] if summary else [])]


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE_KEY, None)
    return lines(state) if state is not None else []


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """With ``-q`` there is no header: the lines come after the collection instead."""
    state = config.stash.get(STATE_KEY, None)
    if state is None or config.get_verbosity() >= 0:
        return []
    return lines(state)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput") or config.option.collectonly:
        return
    for status in statuses(state):
        if status.ended:
            terminalreporter.write_line(status.line(), yellow=True)


def with_support(built: list[dict[str, Any]], state: RunState) -> list[dict[str, Any]]:
    """The run's build summaries with each distro's support status (``support``), and a
    summary of its own for a distro that built nothing (its page still says it)."""
    by_subject = {s["subject"]: s for s in built}
    out = list(built)
    for status in statuses(state):
        record = status.record()
        summary = by_subject.get(status.distro)
        if summary is None:
            summary = {"subject": status.distro}
            out.append(summary)
        archived = lifecycle.iso_came_from_archive(status, summary.get("install_iso") or {})
        if archived:
            record["iso_from_archive"] = archived
        summary["support"] = record
    return out
