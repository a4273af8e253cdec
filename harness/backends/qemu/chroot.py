"""The second way to reach the new system on the QEMU backend: its root tree on this
host, entered with ``chroot`` in a private mount namespace (``--prepare=chroot``).

mkosi builds images this way: the package managers run natively on the host, into
the image, and nothing boots until the image is done. Here the stages 2-5 run
through the same stage functions as over SSH; what needs a running system (the
mounted ESP, the initramfs built for the VM's hardware, ``update-grub`` probing the
real disk, ``fstrim``) is queued by :meth:`harness.build.Build.when_live` and runs in
the one boot that follows (:func:`harness.backends.qemu.debootstrap.first_boot`).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import GuestCommandError, mask
from harness.host import tools as host
from harness.ssh import Result, put_script

# The environment the chroot's commands see: none of the host's (its locale, its
# pytest and CI variables), only what a root login shell in the guest would have.
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
# Carried over when set: how this host reaches the archive.
PASSED = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def chroot_wrapper(root: Path, apt_cache: Path | None = None, shell: str = "/bin/sh") -> str:
    """The sh script that runs stdin with ``shell`` in ``root``: in a private mount
    namespace, so proc, sys and dev exist only for the chroot's package scripts and
    vanish with it (and so does ``apt_cache``, bound over the new system's package
    cache when given). ``$R`` is always quoted: the scratch path may hold spaces or
    glob characters."""
    cache = (f"mount --bind {shlex.quote(str(apt_cache))} \"$R/var/cache/apt/archives\"; "
             if apt_cache is not None else "")
    return (f"set -eu; R={shlex.quote(str(root))}; mount -t proc proc \"$R/proc\"; "
            "mount --rbind /sys \"$R/sys\"; mount --rbind /dev \"$R/dev\"; "
            f"{cache}chroot \"$R\" {shlex.quote(shell)} -s")


class ChrootShell:
    """Runs scripts as root in ``root`` (bash, ``set -euo pipefail``, output combined
    and logged with secrets masked), as :class:`harness.ssh.Guest` does over SSH."""

    live = False  # nothing runs there: no services, no mounted ESP, no disk to trim

    def __init__(self, root: Path, *, logger: logging.Logger,
                 timer: Callable[[str, float], None] | None = None) -> None:
        self.root, self.log, self.timer = root, logger, timer
        self.env = {**ENV, **{k: os.environ[k] for k in PASSED if k in os.environ}}

    @property
    def where(self) -> str:
        return f"chroot {self.root}"

    def run(self, script: str, *, check: bool = True, timeout: float = 1800, what: str = "",
            quiet: bool = False) -> Result:
        if not (self.root / "bin/bash").exists():
            raise GuestCommandError(f"{self.where} is gone (the new system was booted or removed)")
        label = what or script.strip().splitlines()[0][:80]
        self.log.info("$ %s", mask(label))
        wrapper = chroot_wrapper(self.root, shell="/bin/bash") + " 2>&1"
        start = time.monotonic()
        try:
            rc, out, _ = host.run_group(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper],
                input="set -euo pipefail\n" + script + "\n", env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GuestCommandError(
                f"'{mask(label)}' did not finish in {timeout:.0f} s in {self.where} "
                "(--command-timeout bounds this)") from None
        finally:
            if self.timer is not None:
                self.timer("guest", time.monotonic() - start)
        lines = out.splitlines()
        if not quiet:
            for line in lines:
                self.log.info("  %s", mask(line))
        if check and rc != 0:
            tail = mask(next((ln for ln in reversed(lines) if ln.strip()), ""))
            raise GuestCommandError(
                f"'{mask(label)}' failed in {self.where} with exit code {rc}: {tail}")
        return Result(rc, "\n".join(lines))

    def put(self, path: str, content: str, mode: int = 0o644) -> None:
        """Written by the chroot's own ``cat``: a symlink inside the tree resolves
        inside it, never to the host's file of that name."""
        self.run(put_script(path, content, mode), what=f"write {path}")

    def close(self) -> None:
        """Nothing stays open between commands."""

