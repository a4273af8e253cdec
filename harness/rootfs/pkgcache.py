"""A package cache for repeat builds (``--package-cache``, on by default on the QEMU
backend): apt-cacher-ng, Debian's caching proxy for package archives, started by the
run on 127.0.0.1 and stopped with it. The build's apt goes through it during the build
only: debootstrap and Step 1's chroot by ``http_proxy`` and a build-only apt setting,
the stages by the same setting (``127.0.0.1`` in a chroot, QEMU's user-mode network
host address ``10.0.2.2`` in the build VM). That setting is one of the build-only
files the clean-up stage removes and the seal and a checklist check prove absent: a
clone's apt talks to the distro's own mirrors. What it fetched stays in
``~/.cache/gmi-harness/apt-cacher-ng`` for the next build.

(apt-cacher-ng 3.7 can neither listen on nor connect to a port above 32767: the port is
picked below it, and mirrors on such ports are not cached.)
The other families' equivalents are in docs/distros.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness.errors import GmiError

CACHE_DIR = Path("~/.cache/gmi-harness/apt-cacher-ng").expanduser()
PROXY_CONF = "/etc/apt/apt.conf.d/zz-gmi-build-proxy"
# The run's port, for its xdist workers (which inherit the controller's environment).
ENV = "GMI_RUN_PACKAGE_PROXY"
PORTS = (20000, 32767)  # apt-cacher-ng 3.7 fails to bind above 32767
START_TIMEOUT = 15.0


def proxy_conf(address: str, port: int) -> str:
    """The build-only apt setting: http through the cache (https goes direct)."""
    return ("// gmi-harness, during the build only: apt through the run's package cache\n"
            f'Acquire::http::Proxy "http://{address}:{port}/";\n')


@dataclass
class PackageCache:
    """A running apt-cacher-ng of the run's own."""

    proc: subprocess.Popen[bytes]
    port: int
    logdir: Path
    confdir: Path
    held: FileLock | None = None  # this run's claim on the cache folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 10) -> dict[str, int]:
        """Stop it (TERM, then KILL after ``grace`` s; KILL at once when 0), remove its
        folder in the temp folder; returns what it fetched and served."""
        if self.proc.poll() is None:
            if grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.confdir, ignore_errors=True)
        if self.held is not None:
            self.held.release()
        return traffic(self.logdir / "apt-cacher.log")


def traffic(log: Path) -> dict[str, int]:
    """From apt-cacher-ng's transfer log (``time|I or O|bytes|client|path``): bytes fetched
    from the mirrors (I) and served to the build (O), and how many files each."""
    sums = {"fetched_bytes": 0, "fetched_files": 0, "served_bytes": 0, "served_files": 0}
    if not log.is_file():
        return sums
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[1] in ("I", "O") and parts[2].isdigit():
            kind = "fetched" if parts[1] == "I" else "served"
            sums[f"{kind}_bytes"] += int(parts[2])
            sums[f"{kind}_files"] += 1
    return sums


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the harness's process dies, however it
    dies (Linux's PR_SET_PDEATHSIG), so no cache outlives its run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(rng: random.Random) -> int:
    for _ in range(50):
        port = rng.randint(*PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise GmiError(f"no free port between {PORTS[0]} and {PORTS[1]} on 127.0.0.1 for the package cache")


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(logdir: Path, cache_dir: Path | None = None,
          extra: dict[str, str] | None = None) -> PackageCache | None:
    """Start apt-cacher-ng on 127.0.0.1 with the cache in ``cache_dir`` and its logs in
    ``logdir``; ``extra``: more of its settings (``Name=value``). None when another run
    on this host has the cache folder (one apt-cacher-ng per folder): this run then
    fetches from the mirrors directly, and says so in ``logdir``."""
    if shutil.which("apt-cacher-ng") is None:
        raise GmiError("--package-cache=on needs apt-cacher-ng: apt-get install apt-cacher-ng "
                       "(make setup installs it), or run with --package-cache=off")
    cache_dir = cache_dir or CACHE_DIR
    cache_dir.mkdir(parents=True, exist_ok=True)
    logdir.mkdir(parents=True, exist_ok=True)
    held = FileLock(cache_dir / ".gmi-run.lock")
    try:
        held.acquire(timeout=0)
    except Timeout:
        (logdir / "not-started.txt").write_text(
            f"another run on this host uses the package cache {cache_dir}: this run fetched "
            "from the mirrors directly\n")
        return None
    rng = random.Random()
    last = ""
    for _ in range(3):  # (a port taken between the check and the bind: another one)
        port = free_port(rng)
        confdir = Path(tempfile.mkdtemp(prefix="gmi-acng-"))
        (confdir / "acng.conf").write_text("# gmi-harness: the run's own package cache\n")
        settings = {"ForeGround": "1", "Port": str(port), "BindAddress": "127.0.0.1",
                    "CacheDir": str(cache_dir), "LogDir": str(logdir),
                    "SocketPath": str(confdir / "socket"), "PidFile": str(confdir / "pid"),
                    "ReportPage": "", "ExThreshold": "14", **(extra or {})}
        out = (logdir / "apt-cacher-ng.out").open("ab")
        with out:
            proc = subprocess.Popen(
                ["apt-cacher-ng", "-c", str(confdir), *(f"{k}={v}" for k, v in settings.items())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        cache = PackageCache(proc, port, logdir, confdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None and not _answers(port):
            time.sleep(0.1)
        if proc.poll() is None and _answers(port):
            cache.held = held  # released by stop()
            return cache
        cache.stop()
        said = (logdir / "apt-cacher-ng.out").read_text(errors="replace").strip().splitlines()
        last = said[-1] if said else f"no answer on port {port} within {START_TIMEOUT:.0f} s"
    held.release()
    raise GmiError(f"the package cache (apt-cacher-ng) did not start: {last}; see {logdir} "
                   "(or run with --package-cache=off)")
