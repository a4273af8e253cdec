"""Incremental Step 1 (harness/backends/qemu/treecache.py): the key follows the
archive's state and the inputs; a tree comes back as it went in (owners, modes, links,
device nodes, extended attributes); a broken cache entry costs only the reuse."""

from __future__ import annotations

import http.server
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from host_tools import needs

from harness.rootfs import treecache


@pytest.fixture
def trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "trees"
    monkeypatch.setattr(treecache, "TREES", folder)
    return folder


@pytest.fixture
def build(tmp_path: Path) -> SimpleNamespace:
    log = logging.getLogger("test.treecache")
    return SimpleNamespace(log=log)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP mirror serving tmp_path/mirror."""
    root = tmp_path / "mirror"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(root), **k)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_the_suites_release_files_are_read_from_the_sources():
    sources = ("deb http://deb.debian.org/debian bookworm main\n"
               "deb [signed-by=/k.gpg] http://deb.debian.org/debian/ bookworm-updates main\n"
               "# deb http://example.org/x sid main\n"
               "deb http://deb.debian.org/debian-security bookworm-security main\n")
    assert treecache.release_urls(sources) == [
        "http://deb.debian.org/debian/dists/bookworm/InRelease",
        "http://deb.debian.org/debian/dists/bookworm-updates/InRelease",
        "http://deb.debian.org/debian-security/dists/bookworm-security/InRelease"]


def test_the_key_changes_with_the_archive_and_with_every_input(mirror: tuple[str, Path]):
    url, root = mirror
    for suite in ("bookworm", "bookworm-updates"):
        (root / "dists" / suite).mkdir(parents=True)
        (root / "dists" / suite / "InRelease").write_text(f"{suite} 1\n")
    sources = f"deb {url} bookworm main\ndeb {url} bookworm-updates main\n"
    state = treecache.archive_state(sources)
    assert treecache.archive_state(sources) == state  # the same archive: the same state
    parts = ["bookworm", "script", "include"]
    key = treecache.tree_key(parts, state)
    assert treecache.tree_key(list(parts), state) == key
    assert treecache.tree_key(["bookworm", "script 2", "include"], state) != key
    # a new package in the updates suite: a new InRelease, a new key
    (root / "dists/bookworm-updates/InRelease").write_text("bookworm-updates 2\n")
    assert treecache.tree_key(parts, treecache.archive_state(sources)) != key
    # a suite the mirror does not have: no state (the build then starts from scratch)
    with pytest.raises(OSError):
        treecache.archive_state(f"deb {url} trixie main\n")


@needs("zstd")
@pytest.mark.skipif(os.geteuid() != 0, reason="owners and device nodes need root")
def test_a_tree_comes_back_as_it_was_kept(tmp_path: Path, trees: Path, build: SimpleNamespace):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    ping = root / "usr/bin/ping"
    ping.write_bytes(b"\x7fELF")
    os.chown(ping, 1234, 5678)  # (before chmod: chown clears the setuid bit)
    ping.chmod(0o4755)
    os.setxattr(ping, "user.gmi", b"kept")
    os.link(ping, root / "usr/bin/ping-hardlink")
    (root / "bin").symlink_to("usr/bin")
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("the build's host key")
    (root / "etc/ssh/sshd_config").write_text("kept")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    treecache.store(build, root, "bookworm", "k1")  # type: ignore[arg-type]
    assert [p.name for p in trees.glob("*.tar.zst")] == ["bookworm-k1.tar.zst"]

    back = tmp_path / "back"
    assert treecache.restore(build, back, "bookworm", "k1")  # type: ignore[arg-type]
    p = back / "usr/bin/ping"
    st = p.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
    assert os.getxattr(p, "user.gmi") == b"kept"
    assert st.st_ino == (back / "usr/bin/ping-hardlink").stat().st_ino
    assert os.readlink(back / "bin") == "usr/bin"
    assert stat.S_ISCHR((back / "dev/null").lstat().st_mode)
    # never kept: the making build's host keys and machine-id
    assert (back / "etc/ssh/sshd_config").exists() and not (back / "etc/ssh/ssh_host_ed25519_key").exists()
    assert not (back / "etc/machine-id").exists()

    # a newer key of the suite replaces the older tree; other suites' trees stay
    treecache.store(build, root, "trixie", "t1")  # type: ignore[arg-type]
    treecache.store(build, root, "bookworm", "k2")  # type: ignore[arg-type]
    assert sorted(p.name for p in trees.glob("*.tar.zst")) == ["bookworm-k2.tar.zst", "trixie-t1.tar.zst"]
    assert not list(trees.glob("*.part"))


def test_no_tree_for_the_key_means_from_scratch(tmp_path: Path, trees: Path, build: SimpleNamespace):
    assert not treecache.restore(build, tmp_path / "root", "bookworm", "nope")  # type: ignore[arg-type]
    assert not (tmp_path / "root").exists()


def test_a_broken_cached_tree_is_dropped_and_costs_only_the_reuse(tmp_path: Path, trees: Path,
                                                                   build: SimpleNamespace):
    trees.mkdir()
    bad = treecache.path_for("bookworm", "k1")
    bad.write_bytes(b"not a zstd tar")
    root = tmp_path / "root"
    assert not treecache.restore(build, root, "bookworm", "k1")  # type: ignore[arg-type]
    assert not bad.exists() and not root.exists()
