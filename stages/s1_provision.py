"""Step 1: Fresh VM install (the backend creates the VM and installs the OS)."""

from __future__ import annotations

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
    b.vm = b.backend.provision(b)
    with b.step("provision: boot to SSH"):
        b.connect()
    facts = b.sh(
        "cat /etc/machine-id; ip -o link show | awk -F': ' '$2!=\"lo\"{print $2; exit}'; "
        "uname -r", what="read machine-id, NIC and kernel").split()
    b.record["build_machine_id"], b.record["build_nic"], b.record["install_kernel"] = facts[:3]
    keys = b.sh("cat /etc/ssh/ssh_host_*_key.pub", what="read the SSH host keys", quiet=True)
    b.record["build_host_keys"] = sorted(" ".join(k.split()[:2]) for k in keys.splitlines())
