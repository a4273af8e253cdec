"""Step 1: Fresh VM install (the backend creates the VM and installs the OS)."""

from __future__ import annotations

from pathlib import Path

from harness.build import Build, Credentials

from .shell import running_kernel


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
    if shell is not None:  # stages 2-6 in the root tree; its first boot is the clone
        b.guest = shell
        b.record["prepared_in"] = "chroot"
        _read_facts(b)
        return
    b.record["prepared_in"] = "vm"
    b.vm = b.backend.provision(b)
    with b.step("provision: boot to SSH"):
        b.connect()
    _read_facts(b)


def _read_facts(b: Build) -> None:
    """What the fresh install is: machine-id, kernel (the one it boots), SSH host keys,
    and the booted build VM's NIC."""
    machine_id, kernel = b.sh(f"cat /etc/machine-id; {running_kernel(b.live)}",
                              what="read machine-id and kernel").split()[:2]
    b.record["build_machine_id"], b.record["install_kernel"] = machine_id, kernel
    if b.live:
        b.record["build_nic"] = b.sh("ip -o link show | awk -F': ' '$2!=\"lo\"{print $2; exit}'",
                                     what="read the NIC").strip()
    keys = b.sh("cat /etc/ssh/ssh_host_*_key.pub", what="read the SSH host keys", quiet=True)
    b.record["build_host_keys"] = sorted(" ".join(k.split()[:2]) for k in keys.splitlines())
