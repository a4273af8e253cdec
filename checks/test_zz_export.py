"""The export: only when every checklist item of the distro passed (collected last)."""

from __future__ import annotations

import pytest

from harness.build import Build
from harness.errors import GmiError
from harness.export import export
from harness.plugin import STATE_KEY, fail_cleanly


@pytest.mark.vm
@pytest.mark.export
def test_export_gmi_archive(request: pytest.FixtureRequest, sealed: Build, distro_name: str) -> None:
    """Write GMI-<Os>-<Version>.zip (vmgenie's layout) with its .sha256."""
    state = request.config.stash[STATE_KEY]
    try:
        with sealed.step("export"):
            archive = export(sealed, state.checklist.get(distro_name, []),
                             state.outcomes.get(distro_name, {}))
    except GmiError as exc:
        fail_cleanly(exc)
    sealed.record["archive"] = str(archive)
    print(f"\n[{distro_name}] wrote {archive}")
    assert archive.exists()
