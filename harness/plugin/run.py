"""The run: its id, folder and state across fixtures and hooks, the keep policy at
exit, signals that end a run like Ctrl-C, and work done once per run (not once per
xdist worker) under a file lock."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import hostos
from harness.backends import backend_class
from harness.backends.base import keeps
from harness.build import Build
from harness.errors import GmiError
from harness.host import file_lock
from harness.settings import Settings

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

    def keep(self, subject: str) -> bool:
        """Whether ``--keep`` keeps this subject's VMs and scratch (asked at its end)."""
        return keeps(self.settings.keep, self.failed.get(subject, False))

    def emergency_cleanup(self) -> None:
        """Last resort at interpreter exit: no orphaned qemu, no scratch left behind."""
        for name, build in self.builds.items():
            if not self.keep(name):
                for vm in build.vms:
                    vm.destroy()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def terminate_as_interrupt() -> None:
    """SIGTERM and the terminal going away (SIGHUP; Ctrl-Break's SIGBREAK on Windows)
    end the run like Ctrl-C: fixtures tear down, nothing is orphaned."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for name in hostos.current().termination_signals():
        with contextlib.suppress(ValueError, AttributeError):  # not in the main thread
            signal.signal(getattr(signal, name), handler)


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


def remove_once_folder(state: RunState) -> None:
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
    backend_class(settings.backend).use_host_facts(facts)  # every worker: no second probe
    return facts


@pytest.hookimpl(trylast=True)
def pytest_gmi_once_per_run(config: pytest.Config, settings: Settings, scratch: Path) -> dict[str, Any]:
    """The host checks every build needs, as the chosen backend knows them (QEMU: its
    tools and the accelerator probe, a short real boot under KVM)."""
    return backend_class(settings.backend).prepare_host(settings, scratch)

