"""The QEMU janitor: find, list and remove what local runs that died left behind:
their scratch folders (build trees, disks, overlays, UEFI variables), the qemu
processes that still use them, QMP sockets nobody listens on any more, and package-cache
folders (apt-cacher-ng's settings and socket, in the temp folder) no apt-cacher-ng uses.

A folder belongs to a dead run when its ``gmi-run.json`` marker (harness/host/runmarker.py)
names a process that no longer runs: gone, a pid the kernel gave to another process
since (its start time differs), or a boot ago. A folder without a readable marker is
never touched, nor is anything of a run that is still alive. A qemu process belongs
to a folder when its command line names a file in it (its disk, its UEFI variables).
A run that ended with ``--keep`` counts as ended too: what it kept is listed, and
removed on ``remove``.

    pytest --backend=qemu --janitor=list        # or =remove; --scratch DIR as for builds
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import GmiError
from harness.host import runmarker
from harness.settings import Settings

QEMU = "qemu-system-x86_64"
QMP_SOCKET = re.compile(r"gmi-\d+-[0-9a-f]+\.qmp")
PACKAGE_CACHE = "apt-cacher-ng"
CACHE_FOLDER = re.compile(r"gmi-acng-[A-Za-z0-9_]+")  # (harness/rootfs/pkgcache.py's mkdtemp)
# A package-cache folder younger than this is left alone even when no apt-cacher-ng uses
# it yet: a live run makes it just before it starts apt-cacher-ng on it.
CACHE_FOLDER_AGE = 60.0
Out = Callable[[str], None]


@dataclass
class Leftover:
    kind: str  # "folder", "qemu", "socket" or "package-cache folder"
    path: Path  # the folder or socket; for qemu, the folder it uses
    dead: bool
    why: str
    pid: int = 0  # qemu: the process and its start time (checked again before a kill)
    start: int = 0
    run: str = ""
    qemus: list[Leftover] = field(default_factory=list)

    def line(self) -> str:
        what = f"qemu pid {self.pid} ({self.path.name})" if self.kind == "qemu" else \
            f"{self.kind} {str(self.path)!r}"
        return f"{what}: {'DEAD' if self.dead else 'kept'} ({self.why})"


def processes(name: str, proc: Path = runmarker.PROC) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process of program ``name`` on this machine."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] and os.path.basename(argv[0].decode(errors="replace")) == name:
            found.append((int(entry.name), [a.decode(errors="replace") for a in argv if a]))
    return found


def _uses(argv: list[str], folder: Path) -> bool:
    prefix = str(folder) + "/"
    return any(prefix in arg for arg in argv)


def find(scratch: Path, *, proc: Path = runmarker.PROC, tmp: Path | None = None) -> list[Leftover]:
    """Every harness folder in ``scratch`` (with the qemu processes using it), and every
    stale QMP socket and package-cache folder in ``tmp``, each judged dead or kept."""
    tmp = tmp or Path(tempfile.gettempdir())
    qemus = processes(QEMU, proc)
    found: list[Leftover] = []
    folders = sorted(p for p in scratch.iterdir() if p.is_dir() and p.name != "runs") \
        if scratch.is_dir() else []
    for folder in folders:
        fields, owner = runmarker.read(folder)
        if owner is None:
            item = Leftover("folder", folder, False, f"no readable {runmarker.MARKER} marker: left alone")
        else:
            gone = owner.alive(proc)
            run = str(fields.get("run", "?"))
            why = (f"run {run} started {fields.get('started', '?')}: {gone}" if gone
                   else f"run {run} is alive (pid {owner.pid})")
            item = Leftover("folder", folder, bool(gone), why, run=run)
        for pid, argv in qemus:
            if _uses(argv, folder):
                start = runmarker.process_start(pid, proc) or 0
                item.qemus.append(Leftover("qemu", folder, item.dead, f"its VM ({item.why})" if
                                           item.dead else item.why, pid=pid, start=start, run=item.run))
        found += [item, *item.qemus]
    listened = {arg for _, argv in qemus for arg in argv}
    for sock in sorted(tmp.glob("gmi-*.qmp")) if tmp.is_dir() else []:
        if QMP_SOCKET.fullmatch(sock.name) and not any(str(sock) in arg for arg in listened):
            found.append(Leftover("socket", sock, True, "a QMP socket no qemu listens on"))
    return found + _cache_folders(tmp, proc)


def _cache_folders(tmp: Path, proc: Path) -> list[Leftover]:
    """The package caches' folders in ``tmp`` that no apt-cacher-ng uses (its ``-c``
    and socket name them): their run was SIGKILLed, or stopped before it could stop
    its cache."""
    used = [arg for _, argv in processes(PACKAGE_CACHE, proc) for arg in argv]
    found = []
    for folder in sorted(tmp.glob("gmi-acng-*")) if tmp.is_dir() else []:
        with contextlib.suppress(OSError):
            if (CACHE_FOLDER.fullmatch(folder.name) and folder.is_dir()
                    and time.time() - folder.stat().st_mtime > CACHE_FOLDER_AGE
                    and str(folder) not in used and not _uses(used, folder)):
                found.append(Leftover("package-cache folder", folder, True, "no apt-cacher-ng uses it"))
    return found


def stop_qemu(item: Leftover, proc: Path = runmarker.PROC, grace: float = 10) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` s; only while the pid is still the qemu
    that was found (same start time). True when it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if runmarker.process_start(item.pid, proc) != item.start:
            return True  # exited (or the pid is someone else's now): nothing to stop
        with contextlib.suppress(ProcessLookupError):
            os.kill(item.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and runmarker.process_start(item.pid, proc) == item.start:
            time.sleep(0.1)
    return runmarker.process_start(item.pid, proc) != item.start


def _mounted_inside(folder: Path, proc: Path) -> str:
    prefix = str(folder.resolve()) + "/"
    with contextlib.suppress(OSError):
        for line in (proc / "self/mounts").read_text().splitlines():
            if line.split()[1].startswith(prefix):
                return line.split()[1]
    return ""


def sweep(items: list[Leftover], out: Out, proc: Path = runmarker.PROC) -> list[str]:
    """Remove the dead ones: stop their qemu processes first, then remove sockets and
    folders. Returns what was removed; what could not be is said, not raised."""
    removed: list[str] = []
    for item in items:
        if item.dead and item.kind == "qemu":
            if stop_qemu(item, proc):
                removed.append(f"qemu pid {item.pid}")
            else:
                out(f"qemu pid {item.pid} did not stop: its folder {item.path} is left alone")
    for item in items:
        if not item.dead or item.kind == "qemu":
            continue
        if item.kind == "folder" and any(q.dead and runmarker.process_start(q.pid, proc) == q.start
                                         for q in item.qemus):
            continue  # (said above)
        if item.kind == "folder" and (mount := _mounted_inside(item.path, proc)):
            out(f"{mount} is still mounted: unmount it, then run the janitor again")
            continue
        try:
            if item.kind in ("folder", "package-cache folder"):
                shutil.rmtree(item.path)
            else:
                item.path.unlink(missing_ok=True)
        except OSError as exc:
            out(f"cannot remove {item.path}: {exc.strerror or exc}")
            continue
        removed.append(str(item.path))
    return removed


def run(settings: Settings, mode: str, out: Out = print, *, proc: Path = runmarker.PROC,
        tmp: Path | None = None) -> int:
    """List (``mode='list'``) or remove (``'remove'``) what dead local runs left."""
    if mode not in ("list", "remove"):
        raise GmiError(f"janitor: mode must be list or remove, got {mode!r}")
    scratch = settings.scratch_dir
    items = find(scratch, proc=proc, tmp=tmp)
    for item in items:
        out(item.line())
    if not items:
        out(f"nothing left by gmi-harness runs in {scratch}")
    if mode == "remove":
        for what in sweep(items, out, proc):
            out(f"removed {what}")
    return 0
