"""The second way to reach the new system: its root tree on this host, entered with
``chroot`` in a private mount namespace (``--prepare=chroot``).

mkosi builds images this way: the package managers run natively on the host, into
the image, and nothing boots until the image is done. Here stages 2-6 run through the
same stage functions as over SSH, and the image's first boot is the checks' clone.
What would read this host instead of the image is answered for the image
(:class:`ImageDisk`): GRUB's ``grub-probe`` is replaced, inside the namespace only, by
one that describes the image's own disk, and /dev is the chroot's own, naming only
the image's root filesystem, so ``update-grub`` (the stages' and every kernel
package's) writes the grub.cfg the booted image would write; the firmware's folder in
/sys is hidden, so nothing learns this host's UEFI.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
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


DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# grub-probe as the booted image answers it about its own root (one ext4 on the second
# GPT partition, /boot on it): no hints (they name the hypervisor's disk controller;
# the search by UUID is what finds the root), the UUID the root filesystem is made with.
GRUB_PROBE = """#!/bin/sh
# gmi-harness: grub-probe for the image's own disk (bound over the real one, in the
# build's chroot only)
target=device
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--target) target=$2; shift 2;;
    --target=*) target=${1#--target=}; shift;;
    -d|--device|-0|-v|--verbose) shift;;
    -m|--device-map) shift 2;;
    --device-map=*) shift;;
    *) shift;;
  esac
done
case "$target" in
  device) echo /dev/sda2;;
  fs) echo ext2;;
  fs_uuid) echo {uuid};;
  fs_label) echo root;;
  partmap) echo gpt;;
  abstraction|hints_string|cryptodisk_uuid) echo;;
  compatibility_hint) echo hd0,gpt2;;
  drive) echo '(hd0)';;
  disk) echo /dev/sda;;
  *) echo "grub-probe (gmi-harness): no answer for --target=$target" >&2; exit 1;;
esac
"""


def grub_probe_script(root_uuid: str) -> str:
    """The chroot's grub-probe for an image whose root filesystem has ``root_uuid``."""
    return GRUB_PROBE.replace("{uuid}", root_uuid)


@dataclass(frozen=True)
class ImageDisk:
    """What the chroot's tools are told of the image's disk: the root filesystem's UUID
    (also as /dev/disk/by-uuid/, which GRUB's 10_linux asks for before it writes
    root=UUID=), and the grub-probe file (on this host) that answers for it."""

    root_uuid: str
    grub_probe: Path

    @classmethod
    def write(cls, root_uuid: str, folder: Path) -> ImageDisk:
        probe = folder / "grub-probe"
        probe.write_text(grub_probe_script(root_uuid))
        probe.chmod(0o755)
        return cls(root_uuid, probe)

    def mounts(self) -> str:
        """Inside the namespace: grub-probe bound over the new system's (once it has
        one); a /dev of the chroot's own (a tmpfs with this host's null, zero, full,
        random, urandom and tty bound in, its own pts and shm) that has no disk of
        this host's, only the image's root filesystem under /dev/disk/by-uuid/."""
        uuid = shlex.quote(self.root_uuid)
        nodes = " ".join(DEV_NODES)
        return (f"if [ -f \"$R/usr/sbin/grub-probe\" ]; then mount --bind "
                f"{shlex.quote(str(self.grub_probe))} \"$R/usr/sbin/grub-probe\"; fi; "
                "umount -l \"$R/dev\"; mount -t tmpfs -o mode=755,size=1m none \"$R/dev\"; "
                f"for n in {nodes}; do : > \"$R/dev/$n\"; mount --bind \"/dev/$n\" \"$R/dev/$n\"; done; "
                "mkdir \"$R/dev/pts\" \"$R/dev/shm\" \"$R/dev/disk\" \"$R/dev/disk/by-uuid\"; "
                "mount -t devpts -o newinstance,ptmxmode=0666 devpts \"$R/dev/pts\"; "
                "ln -s pts/ptmx \"$R/dev/ptmx\"; mount -t tmpfs -o mode=1777 none \"$R/dev/shm\"; "
                "ln -s /proc/self/fd \"$R/dev/fd\"; for i in 0 1 2; do "
                "ln -s /proc/self/fd/$i \"$R/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i+1)))\"; done; "
                f": > \"$R/dev/disk/by-uuid/\"{uuid}; ")


def chroot_wrapper(root: Path, apt_cache: Path | None = None, shell: str = "/bin/sh",
                   image: ImageDisk | None = None) -> str:
    """The sh script that runs stdin with ``shell`` in ``root``: in a private mount
    namespace, so proc, sys and dev exist only for the chroot's package scripts and
    vanish with it (and so does ``apt_cache``, bound over the new system's package
    cache when given, and what ``image`` mounts). This host's firmware folder is
    hidden under an empty tmpfs. ``$R`` is always quoted: the scratch path may hold
    spaces or glob characters."""
    cache = (f"mount --bind {shlex.quote(str(apt_cache))} \"$R/var/cache/apt/archives\"; "
             if apt_cache is not None else "")
    probe = image.mounts() if image is not None else ""
    return (f"set -eu; R={shlex.quote(str(root))}; mount -t proc proc \"$R/proc\"; "
            "mount --rbind /sys \"$R/sys\"; mount --rbind /dev \"$R/dev\"; "
            "if [ -d \"$R/sys/firmware\" ]; then mount -t tmpfs -o ro,size=4k none \"$R/sys/firmware\"; fi; "
            f"{cache}{probe}chroot \"$R\" {shlex.quote(shell)} -s")


class ChrootShell:
    """Runs scripts as root in ``root`` (bash, ``set -euo pipefail``, output combined
    and logged with secrets masked), as :class:`harness.ssh.Guest` does over SSH."""

    live = False  # nothing runs there: no services, no network, no disk to trim

    def __init__(self, root: Path, *, logger: logging.Logger,
                 timer: Callable[[str, float], None] | None = None,
                 image: ImageDisk | None = None) -> None:
        self.root, self.log, self.timer, self.image = root, logger, timer, image
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
        wrapper = chroot_wrapper(self.root, shell="/bin/bash", image=self.image) + " 2>&1"
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

