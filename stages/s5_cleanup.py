"""Step 5: Clean-up: journal, GRUB timeout, caches and artifacts, free space."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from harness.build import Build
from harness.evidence import provenance

from .s4_hyperv import update_grub
from .shell import grub_settings_script

# The build's own boot records, which virt-sysprep's random-seed and logfiles operations
# remove: systemd's random seed (every clone of the image would start from the same seed
# file) and wtmp (the build's boots and shutdowns). Their writers each write once more
# when they stop (the seed saved, the shutdown recorded), so on a running system they are
# stopped first; nothing recreates either file before the seal powers off (glibc appends
# to wtmp only when it exists; systemd-tmpfiles makes it at the next boot, the clone's).
# Where systemd is built without utmp (Debian 13) wtmp's successor is wtmpdb's database,
# written at boot by wtmpdb-update-boot when the wtmpdb package is installed; a writer the
# image does not have is not stopped (systemctl would fail: "Unit ... not loaded").
BOOT_RECORDS = ("/var/lib/systemd/random-seed", "/var/log/wtmp", "/var/lib/wtmpdb/wtmp.db")
BOOT_RECORD_WRITERS = ("systemd-random-seed.service", "systemd-update-utmp.service",
                       "wtmpdb-update-boot.service")


def remove_build_only_files(files: Iterable[str]) -> str:
    """Remove the files that sped the build up (dpkg without fsync); fail if one stays."""
    quoted = " ".join(shlex.quote(f) for f in files)
    return f"rm -f -- {quoted}\nfor f in {quoted}; do test ! -e \"$f\"; done"


def remove_boot_records(live: bool) -> str:
    """Remove :data:`BOOT_RECORDS` (their writers stopped first on a running system); fail
    if one stays."""
    files = " ".join(shlex.quote(f) for f in BOOT_RECORDS)
    writers = " ".join(BOOT_RECORD_WRITERS)
    stop = (f"for unit in {writers}; do\n"
            "  if systemctl cat -- \"$unit\" >/dev/null 2>&1; then systemctl stop -- \"$unit\"; fi\n"
            "done\n") if live else ""
    return f"{stop}rm -f -- {files}\nfor f in {files}; do test ! -e \"$f\"; done"


def cleanup(b: Build) -> None:
    d = b.distro
    pm, spec, boot = d.package_manager(), d.cleanup, d.boot
    b.sh(f"journalctl --vacuum-time={shlex.quote(spec.journal_vacuum)}", what="vacuum the journal")
    b.sh(grub_settings_script(boot.grub_defaults_file, dict(boot.grub_settings),
                              boot.kernel_cmdline), what="GRUB: no menu, serial console")
    update_grub(b)
    b.sh(f"grep -q '^ *set timeout=0' {shlex.quote(boot.grub_cfg)}", what="grub.cfg timeout 0")
    b.sh(pm.autoremove(), what="autoremove")
    # (the provenance's materials: the repositories' signed metadata, before it goes)
    b.record["repository_metadata"] = provenance.repository_metadata(
        b.sh(provenance.REPOSITORY_METADATA_SCRIPT, what="the package repositories' metadata hashes"))
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
    b.sh(remove_boot_records(live=b.live), what="remove the build's random seed and wtmp")
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
