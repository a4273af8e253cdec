"""The run's package cache (--package-cache): a real apt-cacher-ng in front of a local
HTTP "mirror"; the build-only proxy setting as each way of preparing reaches it."""

from __future__ import annotations

import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import harness.stages.s2_update as s2
import harness.stages.s5_cleanup as s5
import pytest
from harness.stages.s6_seal import seal_script
from host_tools import needs

from harness import distro, settings
from harness.backends.qemu.backend import QemuBackend
from harness.build import Build, Credentials
from harness.errors import GmiError
from harness.plugin import run
from harness.rootfs import pkgcache
from tests.test_distro_stages import RecordingGuest

DEB = "debian/pool/main/h/hello/hello_2.10-3_amd64.deb"


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[int, Path, http.server.ThreadingHTTPServer]]:
    root = tmp_path / "mirror"
    (root / DEB).parent.mkdir(parents=True)
    (root / DEB).write_bytes(os.urandom(200_000))
    (root / "debian/dists/bookworm").mkdir(parents=True)
    (root / "debian/dists/bookworm/InRelease").write_text("Suite: bookworm\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(root), **k)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    # (below 32768: apt-cacher-ng 3.7 cannot connect to a port above 32767 either)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", pkgcache.free_port(random.Random())), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], root, server
    finally:
        server.shutdown()
        server.server_close()


def fetch(proxy_port: int, url: str) -> bytes:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy_port}"}))
    with opener.open(url, timeout=30) as r:
        return bytes(r.read())


@needs("apt-cacher-ng")
def test_a_package_fetched_once_is_served_from_the_cache(tmp_path: Path, mirror):
    port, root, server = mirror
    cache = pkgcache.start(tmp_path / "logs", tmp_path / "cache", extra={"AllowUserPorts": str(port)})
    assert cache is not None
    # one apt-cacher-ng per cache folder: a second run on this host goes without
    assert pkgcache.start(tmp_path / "logs2", tmp_path / "cache") is None
    said = (tmp_path / "logs2/not-started.txt").read_text()
    assert "another run on this host uses the package cache" in said
    try:
        assert pkgcache.PORTS[0] <= cache.port <= pkgcache.PORTS[1]
        url = f"http://127.0.0.1:{port}/{DEB}"
        first = fetch(cache.port, url)
        assert first == (root / DEB).read_bytes()
        server.shutdown()  # the mirror is gone: the package still comes (from the cache)
        server.server_close()
        assert fetch(cache.port, url) == first
    finally:
        figures = cache.stop()
    assert cache.proc.poll() is not None and not cache.confdir.exists()
    # fetched from the mirror once, served twice
    assert figures["fetched_files"] == 1 and figures["served_files"] == 2
    assert figures["fetched_bytes"] >= 200_000 and figures["served_bytes"] >= 400_000
    assert any((tmp_path / "cache").rglob("hello_2.10-3_amd64.deb"))
    again = pkgcache.start(tmp_path / "logs3", tmp_path / "cache")  # released by stop()
    assert again is not None
    again.stop()


@needs("apt-cacher-ng")
def test_the_cache_dies_with_the_process_that_started_it(tmp_path: Path):
    """However the harness ends (SIGKILL included), its cache does not outlive it."""
    code = ("import sys, time; from pathlib import Path; from harness.rootfs import pkgcache; "
            f"c = pkgcache.start(Path({str(tmp_path / 'logs')!r}), Path({str(tmp_path / 'c')!r})); "
            "print(c.proc.pid, flush=True); time.sleep(60)")
    # (its own temp folder: the cache's folder a SIGKILLed run leaves is the janitor's,
    # tests/test_qemu_janitor.py, and this test's tmp_path is where it stays)
    (tmp_path / "tmp").mkdir()
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent,
                              env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # (reaped by init; a zombie counts as gone)
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("apt-cacher-ng outlived the process that started it")


def test_without_apt_cacher_ng_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(pkgcache.shutil, "which", lambda name: None)
    with pytest.raises(GmiError, match=r"apt-get install apt-cacher-ng .* or run with --package-cache=off"):
        pkgcache.start(tmp_path / "logs", tmp_path / "cache")


def test_traffic_reads_apt_cacher_ngs_transfer_log(tmp_path: Path):
    log = tmp_path / "apt-cacher.log"
    log.write_text("1|I|100|127.0.0.1|a\n1|O|100|127.0.0.1|a\n2|O|100|127.0.0.1|a\nnoise\n")
    assert pkgcache.traffic(log) == {"fetched_bytes": 100, "fetched_files": 1,
                                     "served_bytes": 200, "served_files": 2}
    assert pkgcache.traffic(tmp_path / "none")["served_files"] == 0


@needs("apt-cacher-ng")
def test_the_run_starts_one_cache_for_its_workers_and_stops_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(pkgcache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(run.PACKAGE_PROXY_ENV, raising=False)
    s = settings.resolve({"distro": ["debian-12"]}, env={})
    state = run.RunState(s, "r1", tmp_path / "run")
    run.start_package_cache(state)
    assert state.package_cache is not None
    assert run.package_proxy_port() == state.package_cache.port  # what the workers read
    run.stop_package_cache(state)
    assert run.package_proxy_port() == 0 and state.package_cache is None
    assert (tmp_path / "run/package-cache.json").is_file()
    off = run.RunState(settings.resolve({"package_cache": "off"}, env={}), "r2", tmp_path / "run2")
    run.start_package_cache(off)
    assert off.package_cache is None and run.package_proxy_port() == 0


@pytest.mark.parametrize("live, address", [(False, "127.0.0.1"), (True, "10.0.2.2")])
def test_the_proxy_setting_is_build_only_and_addressed_as_the_system_reaches_it(
        tmp_path: Path, live: bool, address: str):
    d = distro.load("debian-12")
    b = Build(d, settings.resolve({}, env={}), QemuBackend(), "r", tmp_path, tmp_path)
    b.creds = Credentials.generate(d.admin_user, "c")
    g = RecordingGuest(live=live)
    b.guest = g  # type: ignore[assignment]
    assert list(b.build_only_files()) == ["/etc/dpkg/dpkg.cfg.d/zz-gmi-build-unsafe-io"]
    b.package_proxy_port = 23456
    conf = "/etc/apt/apt.conf.d/zz-gmi-build-proxy"
    s2.update(b)
    assert f'Acquire::http::Proxy "http://{address}:23456/";' in g.files[conf]
    s5.cleanup(b)
    removal = next(c for c in g.commands if c.startswith("rm -f -- "))
    assert conf in removal and "zz-gmi-build-unsafe-io" in removal
    assert f"test ! -e {conf}" in seal_script(b)
