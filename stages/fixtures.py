"""The build stages as session-scoped fixtures, one per step, each requesting the one
before it. A test that needs a sealed image asks for ``sealed``; pytest runs the
chain once per distro and reuses it."""

from __future__ import annotations

import pytest

from harness.archive.validate import import_archive
from harness.build import Build
from harness.plugin import run_stage

from . import cleanup, cloud_init, hyperv, provision, seal, update


@pytest.fixture(scope="session")
def provisioned(request: pytest.FixtureRequest, build: Build) -> Build:
    """Step 1: the build VM exists with a fresh install and answers SSH."""
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
    """Step 5: journal vacuumed, GRUB timeout 0, caches and artifacts gone, trimmed."""
    return run_stage(request, hyperv_integrated, cleanup)


@pytest.fixture(scope="session")
def sealed(request: pytest.FixtureRequest, build: Build) -> Build:
    """Step 6: cloud-init reset, accounts locked, scrubbed, powered off, compacted
    into a dynamic VHDX (``build.vhdx``). With ``--gmi``: the archive's disk instead,
    extracted and verified (checksum, VHDX format); no stage runs."""
    if build.archive is not None:
        return run_stage(request, build, import_archive)
    return run_stage(request, request.getfixturevalue("cleaned"), seal)
