"""Incremental Step 1 (mkosi's ``Incremental=``): the installed root tree after its
package work (debootstrap, the updates and security suites, the boot packages) kept
on this host and reused while everything it was made from is the same.

The key covers the archive's state (the SHA-256 of each suite's ``InRelease``, read
from the mirror before every build: a new package anywhere in those suites makes a
new key), the sources, debootstrap's package set and version, the package script and
the build-only dpkg setting. Nothing of a build is in the tree: users, passwords, the
build's SSH key and the per-build files are written after it is restored; SSH host
keys and the machine-id are made anew for each build, as a fresh install makes them.
The tree is kept without them (:data:`EXCLUDED`). One tree per suite is kept
(``~/.cache/gmi-harness/trees/<suite>-<key>.tar.zst``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from harness.host import tools as host
from harness.host.tools import file_lock

if TYPE_CHECKING:
    from harness.build import Build

TREES = Path("~/.cache/gmi-harness/trees").expanduser()
FORMAT = "2"  # bumped when what a cached tree holds changes
# What a kept tree never holds: the SSH host keys and the machine-id of the build that
# made it (each build that reuses the tree makes its own, as a fresh install does).
EXCLUDED = ("./etc/ssh/ssh_host_*", "./etc/machine-id", "./var/lib/dbus/machine-id")
# tar keeps owners by number, modes, hard links, symlinks, device nodes and extended
# attributes (file capabilities: ping's cap_net_raw) as mkfs.ext4 -d then copies them
TAR = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3"]
_DEB = re.compile(r"^deb\s+(?:\[[^]]*\]\s+)?(?P<url>\S+)\s+(?P<suite>\S+)", re.M)


def release_urls(sources: str) -> list[str]:
    """The ``InRelease`` file of each suite a sources.list names."""
    return [f"{m['url'].rstrip('/')}/dists/{m['suite']}/InRelease" for m in _DEB.finditer(sources)]


def archive_state(sources: str, timeout: float = 30) -> str:
    """One hash of every suite's InRelease as the mirror serves it now (OSError when one
    cannot be read)."""
    h = hashlib.sha256()
    for url in release_urls(sources):
        with urllib.request.urlopen(url, timeout=timeout) as r:
            h.update(url.encode() + b"\0" + hashlib.sha256(r.read()).digest())
    return h.hexdigest()


def tree_key(parts: list[str], state: str) -> str:
    h = hashlib.sha256(FORMAT.encode())
    for part in [*parts, state]:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def path_for(suite: str, key: str) -> Path:
    return TREES / f"{suite}-{key}.tar.zst"


def restore(build: Build, root: Path, suite: str, key: str) -> bool:
    """Unpack the cached tree for ``key`` into the empty ``root``; False when there is
    none (or it cannot be read: then it is set aside and the build starts from scratch)."""
    cached = path_for(suite, key)
    with file_lock(TREES / f"{suite}.lock"):
        if not cached.is_file():
            return False
        root.mkdir(parents=True, exist_ok=True)
        rc, _, err = host.run_group([*TAR, "-xpf", str(cached), "-C", str(root)])
    if rc != 0:
        build.log.info("the cached tree %s could not be unpacked (%s): removed, Step 1 from scratch",
                       cached, err.strip().splitlines()[-1:] or "no message")
        cached.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        return False
    return True


def store(build: Build, root: Path, suite: str, key: str) -> None:
    """Keep ``root`` as the tree for ``key``, replacing the suite's older trees; written
    beside and renamed, so a reader never sees half a tree. A failure only costs the
    next build its reuse."""
    cached = path_for(suite, key)
    part = cached.with_name(cached.name + ".part")
    TREES.mkdir(parents=True, exist_ok=True)
    with file_lock(TREES / f"{suite}.lock"):
        rc, _, err = host.run_group([*TAR, *(f"--exclude={x}" for x in EXCLUDED),
                                     "-cf", str(part), "-C", str(root), "."])
        if rc != 0:
            part.unlink(missing_ok=True)
            build.log.info("the tree was not cached (tar: %s)", err.strip().splitlines()[-1:])
            return
        part.rename(cached)
        for old in TREES.glob(f"{suite}-*.tar.zst"):
            if old != cached:
                old.unlink(missing_ok=True)
    build.log.info("Step 1's tree cached: %s (%d MB)", cached, cached.stat().st_size // 10**6)
