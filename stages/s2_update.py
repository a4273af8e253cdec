"""Step 2: Update & minimize; sudo for the admin user (the Debian note)."""

from __future__ import annotations

import shlex

from harness.build import Build
from harness.pkgmgr import family


def update(b: Build) -> None:
    """Fully update the OS, drop what is not needed, and give the admin sudo."""
    pm, spec, user = family(b.distro.family), b.distro.update, b.distro.admin_user
    b.sh(pm.refresh(), what="refresh package lists")
    b.sh(pm.upgrade(), what="upgrade")
    if spec.remove_packages:
        b.sh(pm.remove(spec.remove_packages), what="remove unneeded packages")
    b.sh(pm.autoremove(), what="autoremove")
    b.sh(pm.install([spec.sudo_package]), what="install sudo")
    b.sh(f"usermod -aG {shlex.quote(spec.sudo_group)} {shlex.quote(user)}",
         what="admin user into the sudo group")
    # The procedure checks `sudo whoami` as the admin; without a terminal for its
    # password, ask sudo what the admin may run instead.
    b.sh(f"sudo -l -U {shlex.quote(user)} | grep -q '(ALL.*) ALL'", what="admin may sudo")
    b.sh(pm.clean(), what="clean package cache")
