"""The harness's own tests. Fast ones need no VM; those marked ``vm`` boot QEMU."""

from __future__ import annotations

import pytest
from hypothesis import settings

# Property-based tests: no per-example deadline (a loaded 2-core machine misses any
# deadline by accident), no example database written into the checkout.
settings.register_profile("gmi", deadline=None, database=None, print_blob=True)
settings.load_profile("gmi")


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code under test reads PYTEST_XDIST_WORKER (VM names, the Hyper-V host pool):
    each test sees the environment of a plain run, also when this suite runs with -n."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
