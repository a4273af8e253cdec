"""Verdicts about this host that hold until it reboots (or its tools change), kept in
a small JSON file so that only the first run after a boot pays for them: whether KVM
really works, proved by a short real boot, costs ~25 s on a host where it does not.

Each verdict is stored with its key (the kernel's boot id plus whatever else it depends
on, such as the qemu version); a different key is a miss, and the next verdict
replaces the old one. A missing, unreadable or foreign file is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_FILE = Path("~/.cache/gmi-harness/host-verdicts.json").expanduser()
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the host's kernel ("" when the kernel does not say)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(name: str, key: str, path: Path | None = None) -> str | None:
    """The verdict ``name`` stored under ``key`` in this boot, else None."""
    boot = boot_id()
    if not boot:
        return None
    entry = _load(path or CACHE_FILE).get(name)
    if (isinstance(entry, dict) and entry.get("boot_id") == boot and entry.get("key") == key
            and isinstance(entry.get("value"), str)):
        return str(entry["value"])
    return None


def remember(name: str, key: str, value: str, path: Path | None = None) -> None:
    """Store the verdict (atomically: a reader sees the old file or the new one).
    A cache that cannot be written is no error: the next run probes again."""
    boot = boot_id()
    if not boot:
        return
    path = path or CACHE_FILE
    data = _load(path)
    data[name] = {"boot_id": boot, "key": key, "value": value}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
