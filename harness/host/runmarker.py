"""A run's claim on its scratch folder: ``gmi-run.json``, written when the folder is
made, says which process owns it (host, pid, that process's start time and the boot
it runs in). A janitor judges the folder by it: the run is alive only while that very
process is, i.e. the same pid with the same start time (a pid the kernel handed to
another process since does not count) on the same boot.

The start time is field 22 of ``/proc/PID/stat`` (clock ticks since boot), read again
at judging time; the wall-clock ``started`` is only shown to people. Reading it is the
OS seam's (:mod:`harness.host.hostos`): on Windows, where only the Hyper-V backend runs and
no janitor reads these markers, it is the process's creation time and no boot id.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.host import hostos
from harness.host.clock import Now, utc_now

MARKER = "gmi-run.json"
TAG = "gmi-harness"
PROC = hostos.PROC


@dataclass(frozen=True)
class Owner:
    """A process as the kernel knows it: pid, start time, boot."""

    pid: int
    start: int
    boot: str
    host: str = ""

    def alive(self, proc: Path = PROC) -> str:
        """'' when this very process still runs here, else why it does not."""
        if self.host and self.host != socket.gethostname():
            return f"it ran on {self.host}, not here"
        if self.boot != boot_id(proc):
            return "the machine has restarted since"
        start = process_start(self.pid, proc)
        if start is None:
            return f"its process (pid {self.pid}) is gone"
        if start != self.start:
            return f"pid {self.pid} is another process now (started at tick {start}, not {self.start})"
        return ""


def process_start(pid: int, proc: Path = PROC) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks after boot), or None
    when there is no such process (:func:`harness.host.hostos.proc_start`)."""
    return hostos.proc_start(pid, proc)


def boot_id(proc: Path = PROC) -> str:
    return hostos.proc_boot_id(proc)


def me() -> Owner:
    """This process, as the OS tells it apart from a later one with the same pid."""
    start, boot = hostos.current().process_identity()
    return Owner(os.getpid(), start, boot, socket.gethostname())


def write(folder: Path, clock: Now = utc_now, **fields: Any) -> Path:
    """Claim ``folder`` for this process (atomically: a reader sees the whole marker
    or none); ``fields`` say what the run is (run id, worker, subject, backend)."""
    owner = me()
    data = {"tag": TAG, **fields, "pid": owner.pid, "pstart": owner.start, "boot": owner.boot,
            "host": owner.host, "started": f"{clock():%Y-%m-%dT%H:%M:%SZ}"}
    path = folder / MARKER
    part = path.with_name(MARKER + ".part")
    part.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(part, path)
    return path


def read(folder: Path) -> tuple[dict[str, Any], Owner | None]:
    """The marker's fields and its owner; ({}, None) when there is none or it is not
    one of ours (a marker that cannot be read never makes a folder removable)."""
    try:
        data = json.loads((folder / MARKER).read_text())
        owner = Owner(int(data["pid"]), int(data["pstart"]), str(data["boot"]), str(data.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None
    if not isinstance(data, dict) or data.get("tag") != TAG:
        return {}, None
    return data, owner
