"""Step 5: Clean-up: journal, GRUB timeout, caches and artifacts, free space."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from harness.build import Build

from .s4_hyperv import update_grub
from .shell import grub_settings_script


def remove_build_only_files(files: Iterable[str]) -> str:
    """Remove the files that sped the build up (dpkg without fsync); fail if one stays."""
    quoted = " ".join(shlex.quote(f) for f in files)
    return f"rm -f -- {quoted}\nfor f in {quoted}; do test ! -e \"$f\"; done"


def cleanup(b: Build) -> None:
    d = b.distro
    pm, spec, boot = d.package_manager(), d.cleanup, d.boot
    b.sh(f"journalctl --vacuum-time={shlex.quote(spec.journal_vacuum)}", what="vacuum the journal")
    b.sh(grub_settings_script(boot.grub_defaults_file, dict(boot.grub_settings),
                              boot.kernel_cmdline), what="GRUB: no menu, serial console")
    update_grub(b)
    b.sh(f"grep -q '^ *set timeout=0' {shlex.quote(boot.grub_cfg)}", what="grub.cfg timeout 0")
    b.sh(pm.autoremove(), what="autoremove")
    b.sh(pm.clean(), what="clean package cache")
    build_only = b.build_only_files()
    if build_only:
        b.sh(remove_build_only_files(build_only),
             what="remove the build-only package manager settings")
    b.sh("shopt -s nullglob\nrm -rf -- " + " ".join(spec.remove_paths),
         what="remove caches, histories, leases, temp files")
    b.sh("find /var/log -type f \\( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \\) -delete\n"
         "find /var/log -type f ! -path '/var/log/journal/*' -exec truncate -s 0 {} +",
         what="truncate logs")
    if b.live:  # (a root tree becomes a sparse disk: nothing to give back)
        trim(b)


def trim(b: Build) -> None:
    """Free space back to the host, with the disk's allocation before and after."""
    before = b.vm.disk_allocated() if b.vm else None
    out = b.sh("sync; fstrim -av", what="fstrim (free space back to the host)")
    after = b.vm.disk_allocated() if b.vm else None
    b.record["fstrim"] = out.strip()
    if before is not None and after is not None:
        b.record["disk_allocated_before_trim"] = before
        b.record["disk_allocated_after_trim"] = after
        b.log.info("fstrim: disk allocation %d -> %d bytes", before, after)
