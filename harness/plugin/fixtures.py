"""The fixtures every check builds on: the run's settings, the subject (distro or
archive), its catalogue entry and its build context; and the stage runner the stage
fixtures use."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import xdist

from harness import __version__
from harness import distro as distro_mod
from harness.archive import validate
from harness.archive.reader import open_archive
from harness.backends import get_backend
from harness.backends.base import release
from harness.build import Build
from harness.errors import GmiError
from harness.host import runmarker
from harness.host import tools as host
from harness.plugin.matrix import archive_path, is_archive, subject_id
from harness.plugin.run import (
    SETTINGS_KEY,
    STATE_KEY,
    RunState,
    host_facts,
    package_proxy_port,
)
from harness.report import allure
from harness.settings import Settings


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
def distro(request: pytest.FixtureRequest, distro_name: str,
           gmi_settings: Settings) -> distro_mod.Distro:
    """The distro's catalogue entry (``distros/<name>.yml``), typed and frozen; for an
    archive, the entry matching its name, or generic expectations (``distro.generic``).
    ``--distros`` folders are searched first."""
    try:
        if is_archive(distro_name):
            return validate.distro_for(archive_path(distro_name), extra=gmi_settings.distros)
        return distro_mod.load(distro_name, extra=gmi_settings.distros)
    except GmiError as exc:
        fail_subject(request, distro_name, "its catalogue entry", exc)


@pytest.fixture(scope="session")
def readable_archive(request: pytest.FixtureRequest, build: Build) -> list[str]:
    """``--gmi``: the archive opens as vmgenie's import opens it (a zip, every entry
    safe: no absolute path, no ``..``, no link, no bomb); its entries' names. An archive
    that does not stops every test of it (the first one says why, in full)."""
    assert build.archive is not None, "for --gmi archives only"
    try:
        with open_archive(build.archive) as zf:
            return zf.namelist()
    except GmiError as exc:
        fail_subject(request, build.subject, "opening the archive", exc)


def fail_cleanly(exc: GmiError) -> NoReturn:
    """Report a harness error as one line, without a traceback (and without the
    chained exception: the error is re-raised outside its ``except`` block)."""
    message = str(exc)
    exc.__traceback__ = None
    raise pytest.fail.Exception(message, pytrace=False) from None


def fail_subject(request: pytest.FixtureRequest, subject: str, what: str, exc: GmiError) -> NoReturn:
    """A session fixture of ``subject`` failed (``what``: its catalogue entry, the host
    check, a stage, the clone): pytest raises the same failure again for every later test
    that needs it. The first test's report shows it in full; every other one says in one
    line what failed and where the full error is (:mod:`harness.plugin.results`)."""
    state: RunState = request.config.stash[STATE_KEY]
    message = f"{what}: {exc}"
    exc.__traceback__ = None
    failure = pytest.fail.Exception(message, pytrace=False)
    state.stop(subject, what, failure)
    raise failure from None


@pytest.fixture(scope="session")
def build(request: pytest.FixtureRequest, distro: distro_mod.Distro,
          gmi_settings: Settings) -> Iterator[Build]:
    """The distro's build context: scratch folder, logs, backend, and what the
    stages make. Its VMs and scratch are removed at the end unless ``--keep`` says
    otherwise."""
    state: RunState = request.config.stash[STATE_KEY]
    subject: str = request.getfixturevalue("distro_name")
    try:
        backend = get_backend(gmi_settings.backend)
    except GmiError as exc:
        fail_subject(request, subject, "the backend", exc)
    short = subject_id(subject)
    worker = xdist.get_xdist_worker_id(request)
    worker = "" if worker == "master" else worker
    workdir = gmi_settings.scratch_dir / "-".join(filter(None, (state.run_id, worker, short)))
    b = Build(distro, gmi_settings, backend, state.run_id, workdir,
              state.run_dir / "logs" / short, subject=subject, worker=worker)
    if is_archive(subject):
        b.archive = archive_path(subject)
    b.progress = _progress_writer(request.config, state)
    b.step_listeners.append(allure.step)
    b.record.update({"harness": __version__, "backend": backend.name, "distro": distro.name})
    b.package_proxy_port = package_proxy_port()
    b.record["package_cache"] = (f"apt-cacher-ng on 127.0.0.1:{b.package_proxy_port}"
                                 if b.package_proxy_port else "none")
    try:
        host_facts(request.config)
        backend.check_host(b)
    except GmiError as exc:
        fail_subject(request, subject, "the host check", exc)
    with contextlib.ExitStack() as holding:
        if b.archive is None:  # one run at a time writes an archive into an --out
            archive = gmi_settings.out_dir / distro.vmgenie.archive
            try:
                holding.enter_context(host.claim(
                    archive.with_name(f".{archive.name}.lock"),
                    f"pid {os.getpid()} on {socket.gethostname()} (run {state.run_id})", str(archive)))
            except GmiError as exc:
                fail_subject(request, subject, "the archive's lock", exc)
        workdir.mkdir(parents=True, exist_ok=True)
        runmarker.write(workdir, run=state.run_id, worker=worker, subject=subject, backend=backend.name)
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
                # (flushed: on a pipe, `gmi ... | tee build.txt` or a CI runner's log,
                # stdout is block-buffered and the line would wait for kilobytes more)
                reporter.write_line(line)
                reporter.flush()

    return emit


def _finish(b: Build, state: RunState) -> None:
    keep = state.keep(b.subject)
    if b.guest is not None:
        b.guest.close()
    _forget_credentials(b)
    release(b.vms, keep, lambda line: b.progress(f"[{b.label}] {line}"))
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


def _forget_credentials(b: Build) -> None:
    """A build that ended before its disk existed (no VM was ever made for it: Step 1
    failed in its download, debootstrap, or the chroot) removes its credentials file:
    no system has those passwords."""
    path = b.record.get("credentials_file")
    if path and b.vm is None and not b.vms:
        Path(path).unlink(missing_ok=True)
        del b.record["credentials_file"]
        b.progress(f"[{b.label}] credentials file removed: the build ended before its disk existed")


def run_stage(request: pytest.FixtureRequest, b: Build, stage: Any) -> Build:
    """Run one stage function; a harness error fails every test that needs it: the
    first in full, the others in one line (:func:`fail_subject`)."""
    name = stage.__name__
    try:
        with b.step(name):
            stage(b)
    except GmiError as exc:
        fail_subject(request, b.subject, f"stage {name}", exc)
    finally:
        b.record["stage_durations"] = dict(b.timings)
        b.record["scratch_peak_bytes"] = max(
            b.record.get("scratch_peak_bytes", 0),
            sum(host.allocated_bytes(p) for p in b.workdir.glob("*") if p.is_file()))
    return b
