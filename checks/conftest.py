"""The checks run against a fresh clone of the sealed image (see stages.s7_clone)."""

from __future__ import annotations

from typing import Any

import pytest
from harness.stages.s7_clone import Clone


@pytest.fixture
def host(clone: Clone) -> Any:
    """testinfra host: the clone, as the seeded user (with passwordless sudo)."""
    return clone.host


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The promoted archive is written only for --gmi archives and only with --promote:
    elsewhere that test is deselected, not skipped."""
    from harness.plugin.matrix import is_archive
    from harness.plugin.run import SETTINGS_KEY

    settings = config.stash.get(SETTINGS_KEY, None)
    promoting = bool(settings is not None and settings.promote)
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        subject = str(callspec.params.get("distro_name", "")) if callspec else ""
        if item.get_closest_marker("promote") and not (promoting and is_archive(subject)):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
