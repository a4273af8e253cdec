"""The seed check: the user-data the clone was booted with (the harness's own seed, or
the template given with --seed-template) against the clone's own cloud-init schema.
A fault here is the seed's, not the image's: it is reported in its own row and blocks
the export only with --seed-template-blocks-export."""

from __future__ import annotations

import shlex

import pytest

from harness.build import Build
from harness.checklist import SEED as SEED_ITEM
from harness.media import seed_schema
from stages.s7_clone import Clone

pytestmark = pytest.mark.vm


@pytest.mark.checklist(SEED_ITEM)
def test_seed_user_data_passes_the_clones_cloud_init_schema(clone: Clone, build: Build) -> None:
    path = f"/tmp/gmi-seed-user-data-{build.run_id}"

    def validate(text: str) -> tuple[int, str]:
        clone.guest.put(path, text)
        result = clone.guest.run(f"cloud-init schema -c {shlex.quote(path)}; rc=$?; "
                                 f"rm -f {shlex.quote(path)}; exit $rc", check=False,
                                 what="cloud-init schema -c (the seed's user-data)")
        return result.rc, result.output

    found = seed_schema.check(clone.seed_files["user-data"], validate)
    whose = (f"the seed template {clone.template}" if clone.template is not None
             else "the harness's own seed")
    if found:
        blocks = build.settings.seed_template_blocks_export
        pytest.fail(seed_schema.describe(found, whose)
                    + ("" if blocks else " [does not block the export: "
                       "--seed-template-blocks-export is off]"), pytrace=False)
