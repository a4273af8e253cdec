"""The harness's own hook specifications (xdist's ``newhooks.py`` idiom)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.settings import Settings


@pytest.hookspec
def pytest_gmi_once_per_run(config: pytest.Config, settings: Settings,
                        scratch: Path) -> dict[str, Any] | None:
    """Work done once per run, not once per xdist worker (shared downloads, the ISO
    cache, host checks): the first worker to need it runs every implementation under
    a file lock keyed on the run id; the others wait and reuse the facts returned
    (JSON-able dicts, merged). ``scratch`` is a folder for the work, removed after.
    Raise :class:`harness.errors.GmiError` to fail every build with its message."""

