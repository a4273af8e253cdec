"""The build stages as session-scoped fixtures, one per step, each requesting the one
before it, and the clone the checks run against. A test that needs a sealed image asks
for ``sealed``; pytest runs the chain once per distro and reuses it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from harness.archive.validate import import_archive
from harness.backends.base import kept
from harness.build import Build
from harness.errors import GmiError
from harness.plugin.fixtures import fail_subject, run_stage
from harness.plugin.run import STATE_KEY

from . import cleanup, cloud_init, hyperv, provision, seal, update
from .s6_promote import promote
from .s7_clone import CHECK_USER, Clone, boot_clone, check_template, collect_logs


def _check_template(request: pytest.FixtureRequest, build: Build) -> None:
    try:
        check_template(build)
    except GmiError as exc:
        fail_subject(request, build.subject, "seed template", exc)


@pytest.fixture(scope="session")
def provisioned(request: pytest.FixtureRequest, build: Build) -> Build:
    """Step 1: the build VM exists with a fresh install and answers SSH; with
    ``--prepare=chroot``: the fresh install's root tree, entered by a chroot shell
    (stages 2-6 run there; the image's first boot is the clone's)."""
    _check_template(request, build)
    return run_stage(request, build, provision)


@pytest.fixture(scope="session")
def updated(request: pytest.FixtureRequest, provisioned: Build) -> Build:
    """Step 2: fully updated, autoremoved, cleaned; the admin user has sudo."""
    return run_stage(request, provisioned, update)


@pytest.fixture(scope="session")
def cloud_init_prepared(request: pytest.FixtureRequest, updated: Build) -> Build:
    """Step 3: cloud-init installed, restricted to NoCloud and None, reset."""
    return run_stage(request, updated, cloud_init)


@pytest.fixture(scope="session")
def hyperv_integrated(request: pytest.FixtureRequest, cloud_init_prepared: Build) -> Build:
    """Step 4: Hyper-V daemons, hv modules in the initramfs, eth0, EFI fallback path."""
    return run_stage(request, cloud_init_prepared, hyperv)


@pytest.fixture(scope="session")
def cleaned(request: pytest.FixtureRequest, hyperv_integrated: Build) -> Build:
    """Step 5: journal vacuumed, GRUB timeout 0, caches and artifacts gone, trimmed
    (a root tree needs no trim: it becomes a sparse disk)."""
    return run_stage(request, hyperv_integrated, cleanup)


@pytest.fixture(scope="session")
def sealed(request: pytest.FixtureRequest, build: Build) -> Build:
    """Step 6: cloud-init reset, accounts locked, scrubbed, powered off, compacted
    into a dynamic VHDX (``build.vhdx``). With ``--gmi``: the archive's disk instead,
    extracted and verified (checksum, VHDX format); no build stage runs. With
    ``--promote`` too: that disk in a new Hyper-V VM, exported without booting."""
    if build.archive is not None:
        request.getfixturevalue("readable_archive")  # (an unreadable one: said once)
        _check_template(request, build)
        run_stage(request, build, import_archive)
        if build.settings.promote:  # wrapped in a Hyper-V VM, exported unbooted
            run_stage(request, build, promote)
        return build
    return run_stage(request, request.getfixturevalue("cleaned"), seal)


@pytest.fixture(scope="session")
def clone(request: pytest.FixtureRequest, sealed: Build) -> Iterator[Clone]:
    """A fresh clone of the sealed image booted with a new NoCloud seed ISO, after
    ``cloud-init status --wait``. Destroyed at the end unless ``--keep`` says so."""
    state = request.config.stash[STATE_KEY]
    b = sealed
    try:
        c = boot_clone(b)
    except GmiError as exc:
        fail_subject(request, b.subject, "clone", exc)
    b.clone_guest = c.guest
    b.record["clone_boot_seconds"] = round(c.boot_seconds, 1)

    def say(line: str) -> None:
        b.progress(f"[{b.label}] {line}")

    # Released (destroyed unless --keep says otherwise) once its logs are collected,
    # and dropped from the build's VMs so that nothing destroys it a second time.
    with kept(c.vm, b.settings.keep, lambda: state.has_failed(b.subject), say, owner=b.vms):
        try:
            yield c
        finally:
            collect_logs(b, c)
            b.clone_guest = None
            c.guest.close()
            with contextlib.suppress(Exception):
                c.host.backend.client.close()
            if state.keep(b.subject):
                say(f"clone: ssh -i {c.key_path} -p {c.vm.ssh_port} {CHECK_USER}@{c.vm.ssh_host}")
