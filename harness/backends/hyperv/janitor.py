"""The janitor: find, list and remove what harness runs that died left on a Hyper-V
host (VMs whose Notes carry the harness's tag, run folders with their marker file).

A run counts as dead when it ran on this machine and its process is gone, or, for a
run of another machine, when it started more than ``hyperv_janitor_hours`` ago.

    gmi --backend=hyperv --hyperv-host HOST --hyperv-user ME --janitor=list   # or =remove

(``pytest --janitor=...`` is the same; the settings also come from ``GMI_*`` and the
config file, as for a run.)
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.backends.hyperv.model import as_list
from harness.backends.hyperv.transport import TAG, PowerShell, make_transport
from harness.errors import GmiError
from harness.host import hostos
from harness.host.clock import Now, utc_now
from harness.settings import Settings


@dataclass(frozen=True)
class Leftover:
    kind: str  # "vm" or "folder"
    name: str  # VM name or host path
    fields: dict[str, str]
    dead: bool
    why: str
    id: str = ""  # a VM's Id (what removal goes by: names are not unique on Hyper-V)
    partial: tuple[tuple[str, int], ...] = ()  # a folder's partial uploads (path, bytes)

    @property
    def tag(self) -> str:
        return f"{TAG} run={self.fields.get('run', '?')} worker={self.fields.get('worker', '?')}"


def parse_notes(notes: str) -> dict[str, str]:
    """``gmi-harness run=R worker=W distro=D client=C pid=P started=T`` as a dict."""
    if not notes.startswith(TAG + " "):
        return {}
    return dict(tok.split("=", 1) for tok in notes.split()[1:] if "=" in tok)


def pid_alive(pid: int) -> bool:
    return hostos.current().pid_alive(pid)


def judge(fields: dict[str, str], *, now: datetime, max_age_hours: float, hostname: str,
          alive: Callable[[int], bool] = pid_alive) -> tuple[bool, str]:
    """(dead?, why) for one run's tag fields."""
    pid = fields.get("pid", "")
    if fields.get("client") == hostname and pid.isdigit():
        if alive(int(pid)):
            return False, f"run {fields.get('run')} is alive here (pid {pid})"
        return True, f"its process (pid {pid} on {hostname}) is gone"
    try:
        started = datetime.strptime(fields.get("started", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return True, "its tag has no start time"
    hours = (now - started).total_seconds() / 3600
    if hours > max_age_hours:
        return True, f"started {hours:.0f} h ago on {fields.get('client', '?')} (limit {max_age_hours:g} h)"
    return False, f"started {hours:.1f} h ago on {fields.get('client', '?')}: may still run"


def read_marker(raw: Any) -> dict[str, Any]:
    """A run folder's ``gmi-run.json`` as listed by ``list_leftovers.ps1`` (``{}`` when
    unreadable). Windows PowerShell 5.1's ``Get-Content`` string serializes as an object
    (``{"value": "...", "PSPath": ...}``): its ``value`` is the text."""
    if isinstance(raw, dict):
        raw = raw.get("value")
    try:
        marker = json.loads(raw or "{}")
    except (json.JSONDecodeError, TypeError):
        return {}
    return marker if isinstance(marker, dict) else {}


def find(ps: PowerShell, roots: list[str], *, now: datetime, max_age_hours: float,
         hostname: str, alive: Callable[[int], bool] = pid_alive) -> list[Leftover]:
    reply: Any = ps.run("list_leftovers", Roots=roots or None) or {}
    found = []
    for vm in as_list(reply.get("Vms")):
        fields = parse_notes(str(vm.get("Notes", "")))
        dead, why = judge(fields, now=now, max_age_hours=max_age_hours, hostname=hostname,
                          alive=alive)
        found.append(Leftover("vm", str(vm.get("Name")), fields, dead, why, id=str(vm.get("Id") or "")))
    for folder in as_list(reply.get("Folders")):
        marker = read_marker(folder.get("Marker"))
        fields = parse_notes(str(marker.get("notes", "")))
        if fields:
            dead, why = judge(fields, now=now, max_age_hours=max_age_hours, hostname=hostname,
                              alive=alive)
        else:
            dead, why = False, "no readable gmi-run.json marker: left alone"
        partial = tuple((str(f.get("Path")), int(f.get("Length") or 0))
                        for f in as_list(folder.get("Partial")) if isinstance(f, dict))
        found.append(Leftover("folder", str(folder.get("Path")), fields, dead, why, partial=partial))
    return found


def sweep(ps: PowerShell, leftovers: list[Leftover]) -> list[str]:
    """Remove the dead runs' VMs (first) and folders; returns what was removed."""
    removed: list[str] = []
    by_tag: dict[str, list[Leftover]] = {}
    for item in leftovers:
        if item.dead:
            by_tag.setdefault(item.tag, []).append(item)
    for tag, items in by_tag.items():
        reply = ps.run("remove_items", VmIds=[i.id for i in items if i.kind == "vm" and i.id],
                       VmNames=[i.name for i in items if i.kind == "vm" and not i.id],
                       Paths=[i.name for i in items if i.kind == "folder"], Tag=tag) or {}
        removed += [str(r) for r in as_list(reply.get("Removed"))]
    return removed


def run(settings: Settings, mode: str, out: Callable[[str], None] = print,
        transport: Callable[[Settings, str], PowerShell] = make_transport,
        clock: Now = utc_now) -> int:
    """List (``mode='list'``) or remove (``'remove'``) leftovers on every configured host.
    ``clock`` is what a run's age is judged against (tests give a fixed one)."""
    hosts = ["localhost"] if settings.hyperv_local else (
        list(settings.hyperv_hosts) or [settings.hyperv_host])
    if not any(hosts):
        raise GmiError("the janitor needs a host: --hyperv-host NAME (or --hyperv-hosts, or "
                       "--hyperv-local)")
    roots = [settings.hyperv_vhd_path] if settings.hyperv_vhd_path else []
    now, me = clock(), socket.gethostname()
    for host in hosts:
        ps = transport(settings, host)
        try:
            items = find(ps, roots, now=now, max_age_hours=settings.hyperv_janitor_hours,
                         hostname=me)
            for i in items:
                out(f"{host}: {i.kind} {i.name!r}: {'DEAD' if i.dead else 'kept'} ({i.why})")
                for path, size in i.partial:
                    out(f"{host}:   a partial upload in it: {path} ({size} bytes), removed with the folder")
            if not items:
                out(f"{host}: nothing left by gmi-harness runs")
            if mode == "remove":
                for r in sweep(ps, items):
                    out(f"{host}: removed {r}")
        finally:
            ps.close()
    return 0
