"""Promote (``--gmi ARCHIVE --backend=hyperv --promote``), instead of Steps 1 to 6: the
archive's disk, already extracted and verified, becomes a VM of the backend's hypervisor
that is exported without ever booting (``Backend.promote``; a backend that cannot
refuses; docs/hyperv.md, "Promoting a disk-only GMI")."""

from __future__ import annotations

from harness.build import Build
from harness.errors import GmiError


def promote(b: Build) -> None:
    layout = b.record.get("layout") or {}
    if not layout.get("disk_only") or layout.get("vmcx_entry"):
        raise GmiError(f"{b.label} already holds a .vmcx ({layout.get('vmcx_entry')}): it is a "
                       "full GMI, there is nothing to promote")
    b.backend.promote(b)
