"""The wall clock, in one place. Code that judges age (how long ago a run started)
takes a :data:`Now` as a parameter, so tests give it a fixed time instead of today's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Now = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def fixed(at: datetime) -> Now:
    """A clock that always says ``at`` (for tests and replays)."""
    return lambda: at
