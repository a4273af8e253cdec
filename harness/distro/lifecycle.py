"""A release's support status on a given day, said out loud.

Every entry of our catalogue carries ``support.end_of_life``: the last day its makers
publish updates for it, with the page that says so (``support.source_url``). A release
is *end of life* on the days after that date; a run is judged on the day it started
(UTC: the run's date, the same for every xdist worker), never on the clock of the
moment a line is printed, and tests pass a fixed day.

An end-of-life release still builds (the run goes on): its ISO comes from the YAML's
``iso.archive`` once upstream has moved the release folder there, and the image gets
no security updates from upstream. The run says so in one line at its start (pytest's
header) and on the sign-off page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from harness.distro import Distro
from harness.host.clock import Now

SUPPORTED, END_OF_LIFE, ROLLING, UNKNOWN = "supported", "end of life", "rolling", "not stated"


@dataclass(frozen=True)
class Status:
    """One distro's support on one day."""

    distro: str
    state: str  # SUPPORTED | END_OF_LIFE | ROLLING | UNKNOWN
    as_of: str  # the day judged (YYYY-MM-DD)
    end_of_life: str = ""
    source_url: str = ""
    iso_archive: str = ""  # where the ISO comes from after the end of life ("" if nowhere)

    @property
    def ended(self) -> bool:
        return self.state == END_OF_LIFE

    def short(self) -> str:
        """A few words: 'supported until 2031-04-30', 'END OF LIFE since 2026-01-17'."""
        if self.state == SUPPORTED:
            return f"supported until {self.end_of_life}"
        if self.state == END_OF_LIFE:
            return f"END OF LIFE since {self.end_of_life}"
        if self.state == ROLLING:
            return "rolling release (no end of life)"
        return "end of life not stated in its YAML"

    def line(self) -> str:
        """The one line a run prints for this distro."""
        if self.state != END_OF_LIFE:
            source = f" ({self.source_url})" if self.source_url else ""
            return f"{self.distro}: {self.short()}{source}"
        archive = (f"; its install ISO now comes from the archive, {self.iso_archive}, once "
                   "the release folder is gone" if self.iso_archive else "")
        return (f"END OF LIFE: {self.distro} reached its end of life on {self.end_of_life} "
                f"({self.source_url}): upstream publishes no more updates for it, so the image "
                f"gets no security fixes{archive}. The run goes on.")

    def record(self) -> dict[str, str]:
        """JSON-able, for the sign-off page."""
        return {"state": self.state, "as_of": self.as_of, "end_of_life": self.end_of_life,
                "source_url": self.source_url, "iso_archive": self.iso_archive,
                "short": self.short(), "line": self.line()}


def run_date(now: Now) -> date:
    """The day a run started, in UTC (``now`` is the run's clock)."""
    return now().date()


def status(d: Distro, today: date) -> Status:
    """``d``'s support on ``today``: end of life on every day after ``end_of_life``."""
    spec = d.support
    archive = d.iso.archive if d.iso is not None else ""
    common = {"distro": d.name, "as_of": today.isoformat()}
    if spec is None or d.generic:
        return Status(state=UNKNOWN, **common)
    if spec.rolling:
        return Status(state=ROLLING, source_url=spec.source_url, **common)
    state = END_OF_LIFE if today > date.fromisoformat(spec.end_of_life) else SUPPORTED
    return Status(state=state, end_of_life=spec.end_of_life, source_url=spec.source_url,
                  iso_archive=archive, **common)


def iso_came_from_archive(s: Status, install_iso: dict[str, str]) -> str:
    """What a build's record says about where its ISO came from, for an end-of-life
    release: the archive's URL when the ISO was taken from it, else ""."""
    url = install_iso.get("url", "")
    if s.iso_archive and url.startswith(s.iso_archive):
        return url
    return ""
