"""Step 6 (and Step 7's facts): record what was built, reset cloud-init, lock and
scrub the build-time accounts and artifacts, power off cleanly, and compact the disk
into a dynamic VHDX on the host."""

from __future__ import annotations

import shlex
import time

from harness.build import Build
from harness.errors import HypervisorError
from harness.evidence import release as evidence

from .shell import NEWEST_KERNEL

SEAL_DONE = "gmi-seal: done"
SEAL_FAILED = "gmi-seal: failed"


SEAL_TIMEOUT = 300  # seconds for the seal to power the VM off


def scrub_lines(b: Build, live: bool) -> list[str]:
    """Cloud-init reset, the build's accounts locked and its artifacts removed: the
    same in the booted build VM and in a root tree (``live``: also what only a running
    system has, its DHCP client and journald's open files)."""
    d = b.distro
    users = ("root", d.admin_user)
    homes = ("/root", f"/home/{d.admin_user}")
    return [
        "cloud-init clean --logs",
        # Build-time passwords are never used by derived VMs: no hash stays behind.
        *(f"usermod -p '!' {shlex.quote(u)}" for u in users),
        # usermod keeps the previous files as *-: they still hold the build's hashes.
        "rm -f /etc/shadow- /etc/gshadow- /etc/passwd- /etc/group- /var/backups/*.bak",
        "if grep -q ':\\$' /etc/shadow; then false; fi  # no hash left (false: ERR trap)",
        *(f"rm -rf {shlex.quote(h)}/.ssh {shlex.quote(h)}/.bash_history "
          f"{shlex.quote(h)}/.lesshst {shlex.quote(h)}/.viminfo {shlex.quote(h)}/.wget-hsts"
          for h in homes),
        f"echo {shlex.quote(d.cleanup.hostname)} > /etc/hostname",
        f"cat > /etc/hosts <<'__GMI_EOF__'\n{d.cleanup.hosts.rstrip()}\n__GMI_EOF__",
        "truncate -s 0 /etc/machine-id",
        "rm -f /var/lib/dbus/machine-id",
        *(["pkill -x dhclient || true"] if live else []),
        "rm -f /var/lib/dhcp/*.lease* /var/lib/dhcpcd/*.lease* /etc/ssh/ssh_host_*",
        # (the distro's own leases and the like; nothing for Debian)
        *([f"rm -rf -- {' '.join(d.cleanup.seal_remove_paths)}"] if d.cleanup.seal_remove_paths else []),
        # journald moves to /run first: deleting files it still has open makes it
        # recreate them, and the build's last logs would ship in the image.
        *(["journalctl --relinquish-var"] if live else []),
        "rm -rf /var/log/journal/*",
        "find /var/log -type f ! -path '/var/log/journal/*' -exec truncate -s 0 {} +",
        "rm -rf /tmp/* /var/tmp/*",
        # The build-only settings (dpkg without fsync) are gone: an image never has them.
        *(f"test ! -e {shlex.quote(f)}" for f in b.build_only_files()),
        *evidence.clamp_mtimes_script(),  # (with SOURCE_DATE_EPOCH: reproducible builds)
    ]


def seal_script(b: Build, console: bool = True) -> str:
    """The last thing that runs in the build VM, detached from the SSH session (which
    it ends by removing the host keys and powering off). ``console``: the harness
    reads the VM's serial console (QEMU); without one (Hyper-V) a failed seal leaves
    the VM running, which is how the harness learns of it."""
    on_failure = "; systemctl poweroff --no-block" if console else ""
    return "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        # On failure: say where on the console, and (with a console) power off anyway.
        # The console the harness reads: /dev/ttyS0 when the VM has one (the kernel's
        # console= may not be there yet), else the kernel log.
        "say() { echo \"$1\" > /dev/ttyS0 2>/dev/null || echo \"<2>$1\" > /dev/kmsg; }",
        f"trap 'say \"{SEAL_FAILED} at line $LINENO: $BASH_COMMAND\"{on_failure}' ERR",
        "sleep 2  # let the SSH session that started us close",
        *scrub_lines(b, live=True),
        "sync",
        "fstrim -a",
        f"say '{SEAL_DONE}'",
        "systemctl poweroff",
    ]) + "\n"


def record_facts(b: Build) -> None:
    """Step 7's metadata: OS, kernel, cloud-init, integration services, packages."""
    pm = b.distro.package_manager()
    v = b.record.setdefault("versions", {})
    v["os"] = b.sh(". /etc/os-release; echo \"$PRETTY_NAME\"", what="OS name").strip()
    v["kernel"] = b.sh(NEWEST_KERNEL, what="newest kernel").strip()
    b.record["packages"] = sorted(b.sh(pm.list_installed(), what="package list",
                                       quiet=True).splitlines())
    if b.live:  # (a root tree's: read from the disk made from it, by the backend)
        b.record["fs_used_bytes"] = int(b.sh("df -B1 --output=used / | tail -n1",
                                             what="used bytes").strip())
    evidence.record_inventory(b)  # (the SBOMs' source: the image's package database)


def _wait_powered_off(b: Build, has_console: bool) -> None:
    """Until the seal script powers the VM off (or fails, or runs out of time)."""
    assert b.vm is not None
    deadline = time.monotonic() + SEAL_TIMEOUT
    while not b.vm.wait_stopped(5):
        if SEAL_FAILED in b.vm.serial_tail(50) or time.monotonic() > deadline:
            b.vm.shutdown(60)
            if not has_console:
                raise HypervisorError(
                    f"sealing did not finish: the VM did not power itself off within "
                    f"{SEAL_TIMEOUT} s (a failed seal leaves it running on a backend without a "
                    "serial console); rerun with --keep=on-failure and read "
                    "'journalctl -u gmi-seal' in the VM")
            return


def seal_tree(b: Build) -> None:
    """After ``--prepare=chroot``: the same scrub in the root tree, then the image's
    disk made from it and compacted into the VHDX. The image has never booted."""
    assert b.guest is not None
    b.sh("\n".join(scrub_lines(b, live=False)), what="seal: reset, lock and scrub the tree")
    b.guest.close()
    b.guest = None
    b.vhdx = b.workdir / f"{b.distro.vmgenie.vm_name}.vhdx"
    with b.step("seal: the disk and its dynamic VHDX"), b.working("tools"):
        exported = b.backend.export_tree(b, b.vhdx)
        b.record["sizes"], b.vm_tree = exported.sizes, exported.vm_tree


def seal(b: Build) -> None:
    assert b.guest is not None
    record_facts(b)
    if b.live:
        seal_vm(b)
    else:
        seal_tree(b)
    with b.step("seal: SBOMs"):
        evidence.after_seal(b)


def seal_vm(b: Build) -> None:
    """The seal script in the running build VM (which powers it off), then its disk
    compacted into the VHDX."""
    assert b.vm is not None and b.guest is not None
    has_console = b.vm.serial_log is not None
    b.put("/run/gmi-seal.sh", seal_script(b, console=has_console), mode=0o700)
    # (bash explicitly: /run is mounted noexec)
    b.sh("systemd-run --unit=gmi-seal --no-block /bin/bash /run/gmi-seal.sh", what="seal and power off")
    b.guest.close()
    b.guest = None
    with b.working("guest"):
        _wait_powered_off(b, has_console)
    console = b.vm.serial_tail(200)
    if has_console and SEAL_DONE not in console:
        failed = [ln for ln in console.splitlines() if SEAL_FAILED in ln]
        raise HypervisorError(
            f"sealing did not finish: {failed[-1].strip() if failed else 'no done marker'}; "
            f"see {b.vm.serial_log}")
    b.vhdx = b.workdir / f"{b.distro.vmgenie.vm_name}.vhdx"
    with b.step("seal: compact into a dynamic VHDX"), b.working("tools"):
        exported = b.backend.export_disk(b, b.vhdx)
        b.record["sizes"], b.vm_tree = exported.sizes, exported.vm_tree
