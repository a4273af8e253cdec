"""Step 1: Fresh VM install (the backend creates the VM and installs the OS)."""

from __future__ import annotations

import shlex
from pathlib import Path

from harness.build import Build, Credentials


def provision(b: Build) -> None:
    """Create the build VM with a fresh install, then log in over SSH as root."""
    d = b.distro
    b.creds = Credentials.generate(d.admin_user, f"gmi-build-{b.run_id}")
    # The procedure: record the credentials at once, somewhere private and outside
    # the VM and the repo.
    b.record["credentials_file"] = str(
        b.creds.record(Path(b.settings.credentials_dir), b.title))
    b.record["admin_user"] = d.admin_user
    b.record["build_public_key"] = b.creds.key.public_openssh  # public: the checks look for it
    # In scratch (deleted with it unless --keep), so a kept VM can be reached.
    b.creds.key.write_private(b.workdir / "build.key")
    shell = b.backend.prepare_in_chroot(b)
    if shell is not None:  # stages 2-5 in the root tree; first_boot boots it
        b.guest = shell
        b.record["prepared_in"] = "chroot"
        return
    b.record["prepared_in"] = "vm"
    b.vm = b.backend.provision(b)
    with b.step("provision: boot to SSH"):
        b.connect()
    _read_facts(b)


def first_boot(b: Build) -> None:
    """After stages 2-5 ran in the root tree (``--prepare=chroot``): the disk made from
    it, its one boot, the first-boot-only settings gone, and the steps that needed a
    running system, in the order the stages queued them."""
    b.vm = b.backend.first_boot(b)
    with b.step("first_boot: boot to SSH"):
        b.connect()
    _read_facts(b)
    only = b.record.get("first_boot_only", {})
    if only.get("files"):
        b.sh("rm -f -- " + " ".join(shlex.quote(f) for f in only["files"]),
             what="remove the first boot's own settings")
    b.run_live_steps()
    grub_cfg = shlex.quote(b.distro.boot.grub_cfg)
    for param in only.get("kernel_cmdline", ()):
        b.sh(f"if grep -q -- {shlex.quote(param)} {grub_cfg}; then echo '{param} is still in "
             f"{b.distro.boot.grub_cfg}'; exit 1; fi", what=f"{param} was for the first boot only")


def _read_facts(b: Build) -> None:
    """What the booted build VM is: machine-id, NIC, kernel, SSH host keys."""
    facts = b.sh(
        "cat /etc/machine-id; ip -o link show | awk -F': ' '$2!=\"lo\"{print $2; exit}'; "
        "uname -r", what="read machine-id, NIC and kernel").split()
    b.record["build_machine_id"], b.record["build_nic"], b.record["install_kernel"] = facts[:3]
    keys = b.sh("cat /etc/ssh/ssh_host_*_key.pub", what="read the SSH host keys", quiet=True)
    b.record["build_host_keys"] = sorted(" ".join(k.split()[:2]) for k in keys.splitlines())
