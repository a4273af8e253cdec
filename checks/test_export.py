"""The export: only when every checklist item of the subject passed (run after its other
tests: plugin/matrix.py orders them by their markers, export, promote and index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.archive.export import export
from harness.build import Build
from harness.errors import GmiError
from harness.plugin.fixtures import fail_cleanly
from harness.plugin.run import STATE_KEY


@pytest.mark.vm
@pytest.mark.export
def test_export_gmi_archive(request: pytest.FixtureRequest, sealed: Build, distro_name: str) -> None:
    """Write GMI-<Os>-<Version>.zip (vmgenie's layout) with its .sha256."""
    state = request.config.stash[STATE_KEY]
    try:
        with sealed.step("export"):
            inputs = state.export_inputs(distro_name)
            archive = export(sealed, inputs.checklist, inputs.outcomes, inputs.labels)
    except GmiError as exc:
        fail_cleanly(exc)
    sealed.record["archive"] = str(archive)
    print(f"\n[{distro_name}] wrote {archive}")
    assert archive.exists()


@pytest.mark.vm
@pytest.mark.promote
def test_promoted_gmi_archive(request: pytest.FixtureRequest, sealed: Build, distro_name: str) -> None:
    """With --promote: write the full archive (.vmcx included) to promoted/ beside the
    disk-only input, only when every check of it passed (the Hyper-V-only ones too)."""
    from harness.archive.promote import write_promoted

    state = request.config.stash[STATE_KEY]
    try:
        with sealed.step("export: the promoted archive"):
            inputs = state.export_inputs(distro_name)
            archive = write_promoted(sealed, inputs.outcomes, inputs.labels, request.node.nodeid)
    except GmiError as exc:
        fail_cleanly(exc)
    sealed.record["promoted_archive"] = str(archive)
    print(f"\n[{distro_name}] wrote {archive}")
    assert archive.exists() and archive != sealed.archive


@pytest.mark.vm
@pytest.mark.index
def test_index_entry(request: pytest.FixtureRequest, sealed: Build, distro_name: str) -> None:
    """With --index FILE: add or update the archive's entry in vmgenie's repository
    index, only when every check of that archive passed."""
    from harness.archive.export import gate
    from harness.archive.index import update_index

    state = request.config.stash[STATE_KEY]
    inputs = state.export_inputs(distro_name)
    failed = gate(inputs.checklist, inputs.outcomes, inputs.labels,
                  sealed.settings.seed_template_blocks_export)
    if failed or not inputs.checklist:
        fail_cleanly(GmiError("no index entry: these checks did not pass: "
                              + (", ".join(n.split("::")[-1] for n in failed) or "(none ran)")))
    s = sealed.settings
    assert sealed.archive is not None
    url = s.index_url.replace("{archive}", sealed.archive.name)
    try:
        update_index(Path(s.index).expanduser(), sealed.archive, sealed.record["manifest"], url)
    except GmiError as exc:
        fail_cleanly(exc)
