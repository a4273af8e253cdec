"""The run: its id, folder and state across fixtures and hooks, the keep policy at
exit, signals that end a run like Ctrl-C, and work done once per run (not once per
xdist worker) under a file lock."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.backends import backend_class
from harness.backends.base import PackageCache, keeps
from harness.build import Build
from harness.errors import GmiError
from harness.host import hostos
from harness.host.tools import HELD, file_lock, kill_running_groups
from harness.settings import Settings

# The run's package cache's port, for its xdist workers (they inherit the environment).
PACKAGE_PROXY_ENV = "GMI_RUN_PACKAGE_PROXY"
SETTINGS_KEY = pytest.StashKey[Settings]()
STATE_KEY = pytest.StashKey["RunState"]()


@dataclass(frozen=True)
class ExportInputs:
    """What a subject's export (its promotion, its index entry) is gated on, as the run
    knows it now: each checklist test's item and each test's outcome, by node id."""

    labels: Mapping[str, str]  # nodeid -> checklist item, every collected checklist test
    outcomes: Mapping[str, str]  # nodeid -> outcome, every test that ran

    @property
    def checklist(self) -> list[str]:
        """The subject's checklist tests (node ids)."""
        return list(self.labels)


@dataclass
class Stopped:
    """What stopped a subject: a session fixture every later test needs failed (its
    catalogue entry, the host check, a stage, the clone). ``failure`` is the exception
    pytest raises again for each of those tests; ``first`` the test whose report shows
    it in full (the others say in one line what failed and where that is)."""

    what: str
    failure: BaseException
    first: str = ""


class RunState:
    """What the run knows across fixtures and hooks. Its per-subject facts are written
    through its methods only (the stages and checks call :meth:`mark_failed`,
    :meth:`has_failed`, :meth:`keep` and :meth:`export_inputs`)."""

    def __init__(self, settings: Settings, run_id: str, run_dir: Path) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_dir = run_dir
        self.builds: dict[str, Build] = {}
        self._outcomes: dict[str, dict[str, str]] = {}  # subject -> {nodeid: outcome}
        self._labels: dict[str, dict[str, str]] = {}  # subject -> {nodeid: checklist item}
        self.summaries: list[dict[str, Any]] = []  # builds reported by xdist workers
        self._failed: set[str] = set()  # subjects with a failed stage or test
        self._stopped: dict[str, Stopped] = {}  # subject -> the failure later tests meet
        self.scratch: list[Path] = []
        # what the reports show (filled on the controller, from every worker's reports)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.tests: dict[str, dict[str, Any]] = {}  # nodeid -> one test's result
        self.signoff_page: Path | None = None
        self.package_cache: PackageCache | None = None  # started by the controller
        self.report_error = ""  # why the sign-off page could not be written

    def mark_failed(self, subject: str) -> None:
        """A stage or test of ``subject`` failed (``--keep=on-failure`` keeps its VMs)."""
        self._failed.add(subject)

    def has_failed(self, subject: str) -> bool:
        return subject in self._failed

    def stop(self, subject: str, what: str, failure: BaseException) -> None:
        """A session fixture of ``subject`` failed with ``failure``, which pytest raises
        again for every later test that needs it (:class:`Stopped`)."""
        self.mark_failed(subject)
        self._stopped[subject] = Stopped(what, failure)

    def stopped(self, subject: str) -> Stopped | None:
        """What stopped ``subject``, if anything did."""
        return self._stopped.get(subject)

    def keep(self, subject: str) -> bool:
        """Whether ``--keep`` keeps this subject's VMs and scratch (asked at its end)."""
        return keeps(self.settings.keep, self.has_failed(subject))

    def label(self, subject: str, nodeid: str, item: str) -> None:
        """A collected test of ``subject`` is labelled with checklist ``item``."""
        self._labels.setdefault(subject, {})[nodeid] = item

    def record_outcome(self, subject: str, nodeid: str, outcome: str) -> None:
        self._outcomes.setdefault(subject, {})[nodeid] = outcome

    def export_inputs(self, subject: str) -> ExportInputs:
        """``subject``'s checklist labels and outcomes so far (copies)."""
        return ExportInputs(dict(self._labels.get(subject, {})), dict(self._outcomes.get(subject, {})))

    def emergency_cleanup(self) -> None:
        """Last resort at interpreter exit: no orphaned qemu, no scratch left behind."""
        stop_package_cache(self)
        for name, build in self.builds.items():
            if not self.keep(name):
                for vm in build.vms:
                    vm.destroy()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


# From the first interrupt to a hard stop when the orderly end (fixtures tearing down:
# VMs destroyed, scratch removed) has not finished by then.
GRACE = 20.0


def interrupt_signals() -> tuple[int, ...]:
    """Ctrl-C, and what this OS sends to end a run (SIGTERM; SIGHUP on Linux, SIGBREAK
    on Windows)."""
    names = ("SIGINT", *hostos.current().termination_signals())
    return tuple(int(getattr(signal, n)) for n in names if hasattr(signal, n))


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP (SIGBREAK on Windows) end the run like Ctrl-C
    (KeyboardInterrupt: fixtures tear down, nothing is orphaned), within a bound whatever
    the main thread is doing.

    The signal's number also reaches a watchdog thread through ``signal.set_wakeup_fd``
    (a socket pair: what Windows accepts too) at once, even while the main thread is
    stuck in a call. When the run still runs
    :data:`GRACE` seconds later, or at a second signal, the watchdog stops every VM not
    kept hard (``VM.stop_now``), removes the scratch not kept, says so in one line and
    exits with pytest's "interrupted" status (2)."""

    def __init__(self) -> None:
        self.states: list[RunState] = []
        self.signum = 0
        self.signals: tuple[int, ...] = ()
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def install(self) -> None:
        # A signal this process was started ignoring stays ignored, as Python leaves it:
        # nohup's SIGHUP, the SIGINT a shell gives a job it starts in the background.
        self.signals = tuple(s for s in interrupt_signals() if signal.getsignal(s) != signal.SIG_IGN)
        try:
            for sig in self.signals:
                signal.signal(sig, self._handler)
        except ValueError:  # not the main thread (an in-process run): Python's defaults
            return
        if self._pair is None:
            reader, writer = socket.socketpair()
            writer.setblocking(False)
            self._pair = (reader, writer)
            threading.Thread(target=self._watch, name="gmi-interrupt-watchdog", daemon=True).start()
        signal.set_wakeup_fd(self._pair[1].fileno(), warn_on_full_buffer=False)

    def _handler(self, signum: int, frame: Any) -> None:
        if not self._busy():  # nothing built or validated: Ctrl-C as Python does it
            raise KeyboardInterrupt(signal.Signals(signum).name)
        if self.signum:
            return  # a second one is the watchdog's (it stops everything at once)
        self.signum = signum
        if HELD.depth:  # a host command is being started: raised once it can be killed
            HELD.pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def _watch(self) -> None:
        assert self._pair is not None
        reader = self._pair[0]
        first = 0.0
        while True:
            reader.settimeout(max(0.01, first + GRACE - time.monotonic()) if first else None)
            try:
                signum = reader.recv(1)[0]
            except TimeoutError:
                return self.stop_hard(f"did not end within {GRACE:.0f} s")
            if signum not in self.signals or not self._guarding(signum):
                continue
            if first:
                return self.stop_hard("was interrupted a second time")
            first = time.monotonic()

    def _guarding(self, signum: int) -> bool:
        """Whether this signal is the watchdog's to bound: a run with something to
        build or validate is going on (not the harness's own test session, whose tests
        may send themselves a Ctrl-C), and the signal still reaches our handler."""
        return self._busy() and signal.getsignal(signum) == self._handler

    def _busy(self) -> bool:
        return any(state.settings.distro or state.settings.gmi for state in self.states)

    def stop_hard(self, why: str) -> None:
        """Stop the VMs not kept, remove the scratch not kept, exit now."""
        name = signal.Signals(self.signum).name if self.signum else "a signal"
        kill_running_groups()  # host tools (debootstrap) first: they may be writing in scratch
        for state in self.states:
            for subject, build in list(state.builds.items()):
                if state.keep(subject):
                    continue
                for vm in list(build.vms):
                    with contextlib.suppress(Exception):
                        vm.stop_now()
                shutil.rmtree(build.workdir, ignore_errors=True)
            remove_once_folder(state)
            cache, state.package_cache = state.package_cache, None
            if cache is not None:  # (its folder in the temp folder goes with it)
                cache.stop(grace=0)
        with contextlib.suppress(OSError):
            os.write(2, f"\ngmi-harness: the run {why} after {name}: its VMs were stopped hard "
                        "and its scratch removed (what --keep keeps is left)\n".encode())
        os._exit(2)


INTERRUPT = Interrupts()


def terminate_as_interrupt() -> None:
    """Ctrl-C, SIGTERM and the terminal going away (SIGHUP; Ctrl-Break's SIGBREAK on
    Windows) end the run like Ctrl-C, bounded (:class:`Interrupts`)."""
    INTERRUPT.install()


def start_package_cache(state: RunState) -> None:
    """The backend's package cache for the run (``--package-cache``); its port goes to
    the xdist workers in the environment they inherit."""
    cache = backend_class(state.settings.backend).start_package_cache(
        state.settings, state.run_dir / "logs" / "package-cache")
    if cache is not None:
        state.package_cache = cache
        os.environ[PACKAGE_PROXY_ENV] = str(cache.port)


def stop_package_cache(state: RunState) -> None:
    """Stopped at the end of the run; what it fetched and served in the run folder."""
    cache, state.package_cache = state.package_cache, None
    if cache is None:
        return
    os.environ.pop(PACKAGE_PROXY_ENV, None)
    figures = cache.stop()
    with contextlib.suppress(OSError):
        (state.run_dir / "package-cache.json").write_text(json.dumps(figures, indent=1) + "\n")


def package_proxy_port() -> int:
    """The run's package cache's port in this process (0: none)."""
    value = os.environ.get(PACKAGE_PROXY_ENV, "")
    return int(value) if value.isdigit() else 0


def pytest_unconfigure(config: pytest.Config) -> None:
    """An interrupted run says in one line how it ended; the run is no longer one the
    watchdog guards (an in-process run ends before its caller does); the controller
    stops the run's package cache."""
    state = config.stash.get(STATE_KEY, None)
    if state is not None and not hasattr(config, "workerinput"):
        stop_package_cache(state)
    if state in INTERRUPT.states:
        INTERRUPT.states.remove(state)
    signum = INTERRUPT.signum
    if not INTERRUPT.states:
        INTERRUPT.signum = 0
    if state is None or not signum or hasattr(config, "workerinput"):
        return
    name = signal.Signals(signum).name
    kept = [str(b.workdir) for s, b in state.builds.items() if state.keep(s)]
    running = [vm.name for s, b in state.builds.items() if not state.keep(s)
               for vm in b.vms if vm.is_running()]
    end = (f"VMs still running: {', '.join(running)}" if running else
           f"kept as --keep={state.settings.keep} says: {', '.join(kept)}" if kept else
           "its VMs were stopped and its scratch removed")
    print(f"gmi-harness: run {state.run_id} interrupted by {name}: {end}", file=sys.stderr)


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

