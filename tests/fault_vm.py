"""A blank VM for the fault tests: a 64 MiB raw disk with nothing on it in the build's
work folder (the firmware finds nothing to boot, so the guest never comes up). Used by
tests/test_faults.py and by the throw-away projects it runs (their PYTHONPATH is the
repository), so every fault starts from the same VM."""

from __future__ import annotations

import os
from typing import Any


def blank_vm(build: Any, name: str, *, owned: bool = True) -> Any:
    """A running VM ``name`` of ``build``'s backend on ``<name>.raw``; with ``owned``
    the disk goes when the VM is destroyed."""
    disk = build.workdir / f"{name}.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 64 * 2**20)
    return build.backend.new_vm(build, name, disk, "raw", owned=[disk] if owned else [])
