"""The checks run against a fresh clone of the sealed image (see stages.s7_clone)."""

from __future__ import annotations

from typing import Any

import pytest
from harness.stages.s7_clone import Clone


@pytest.fixture
def host(clone: Clone) -> Any:
    """testinfra host: the clone, as the seeded user (with passwordless sudo)."""
    return clone.host
