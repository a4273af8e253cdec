"""Step 2: Update & minimize; sudo for the admin user (the Debian note)."""

from __future__ import annotations

import shlex

from harness.build import Build

from .shell import NEWEST_KERNEL, running_kernel, set_initramfs_updates


def update(b: Build) -> None:
    """Fully update the OS, drop what is not needed, and give the admin sudo."""
    spec, user = b.distro.update, b.distro.admin_user
    pm = b.distro.package_manager()
    for path, content in b.build_only_files().items():  # (Step 1 may have written them)
        b.put(path, content)
    if spec.initramfs_conf:
        b.sh(set_initramfs_updates(spec.initramfs_conf, "no"),
             what="defer initramfs updates to the Hyper-V stage")
    if spec.initramfs_settings_file:
        b.put(spec.initramfs_settings_file, spec.initramfs_settings + "\n")
    b.sh(pm.refresh(), what="refresh package lists")
    b.sh(spec.upgrade or pm.upgrade(), what="upgrade")
    if spec.remove_packages:
        b.sh(pm.remove(spec.remove_packages), what="remove unneeded packages")
    running = b.sh(running_kernel(b.live), what="running kernel").strip()
    newest = b.sh(NEWEST_KERNEL, what="newest installed kernel").strip()
    if not b.live:
        # A root tree: the first boot starts the newest kernel; the others go now.
        b.sh(pm.remove_kernels_but_newest(), what="remove the older kernels")
    elif newest != running:
        # Boot the new kernel (as a person would after an upgrade), so that the old one
        # can go and the initramfs is rebuilt only for the kernel the image keeps.
        with b.step("update: restart into the new kernel"):
            b.restart()
        b.sh(f"test \"$(uname -r)\" = {shlex.quote(newest)}", what="running the new kernel")
        b.sh(pm.remove_other_kernels(), what="remove the old kernel")
    b.sh(pm.autoremove(), what="autoremove")
    b.sh(pm.install([spec.sudo_package]), what="install sudo")
    b.sh(f"usermod -aG {shlex.quote(spec.sudo_group)} {shlex.quote(user)}",
         what="admin user into the sudo group")
    if spec.sudoers_file:
        b.put(spec.sudoers_file, spec.sudoers, mode=0o440)
        b.sh(f"visudo -cf {shlex.quote(spec.sudoers_file)}", what="sudoers drop-in is valid")
    # The procedure checks `sudo whoami` as the admin; without a terminal for its
    # password, ask sudo what the admin may run instead.
    # (grep without -q: with pipefail, an early exit would fail the pipeline)
    # (and with their own password: "targetpw" would ask for root's, locked by the seal)
    b.sh(f"out=$(sudo -l -U {shlex.quote(user)}); echo \"$out\" | grep '(ALL.*) ALL' >/dev/null && "
         "[ \"$(echo \"$out\" | grep -oE '!?targetpw' | tail -n1)\" != targetpw ]", what="admin may sudo")
    b.sh(pm.clean(), what="clean package cache")
