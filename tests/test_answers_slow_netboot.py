"""A real unattended install of debian-12 by the Debian installer (d-i), from the
netboot kernel and initrd in Debian's archive, driven by the rendered preseed, on the
local QEMU backend; then the installed disk booted as the build VM (Secure Boot on,
fresh UEFI variables) and checked over SSH.

Slow (30-90 minutes under TCG, 5-15 with KVM) and network-bound (packages from
deb.debian.org): skipped unless asked for with ``-m slow``:

    .venv/bin/python -m pytest tests/test_answers_slow_netboot.py -m slow -p no:cacheprovider -s -v

Settings come from the environment as for any run (GMI_ACCEL, GMI_SCRATCH, GMI_MIRROR,
GMI_INSTALL_TIMEOUT, GMI_OUT); logs and the installer's serial console go to
``<out>/runs/netboot-<time>/logs``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest
from harness.stages.s1_provision import provision

from harness import distro
from harness.backends.qemu.backend import QemuBackend
from harness.build import Build
from harness.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.vm]


@pytest.fixture
def netboot_build(request: pytest.FixtureRequest) -> Iterator[Build]:
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("a real d-i install (30-90 min under TCG): run it with -m slow")
    settings = resolve({"install_method": "netboot"}, env=os.environ)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    workdir = settings.scratch_dir / f"netboot-{run_id}-{os.getpid()}"
    logdir = settings.out_dir / "runs" / f"netboot-{run_id}" / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    b = Build(distro.load("debian-12"), settings, QemuBackend(), run_id, workdir, logdir)
    b.attach_logfile()
    b.backend.check_host(b)
    try:
        yield b
    finally:
        if b.guest is not None:
            b.guest.close()
        for vm in b.vms:
            vm.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
        b.detach_logfile()


def test_debian12_unattended_install_from_netboot_with_preseed(netboot_build: Build):
    b = netboot_build
    provision(b)  # credentials, the d-i install, the first boot of the disk, SSH as root
    assert str(b.record["installed_by"]).startswith("netboot: ")

    def sh(script: str) -> str:
        return b.sh(script, what=script).strip()

    assert sh(". /etc/os-release; echo $ID $VERSION_ID") == "debian 12"
    # the procedure's disk: one root partition for the whole disk plus the ESP, no LVM, no swap
    assert sh("findmnt -no FSTYPE /") == "ext4"
    assert sh("findmnt -no FSTYPE /boot/efi") == "vfat"
    assert sh("lsblk -nro TYPE | grep -c '^lvm$' || true") == "0"
    assert sh("swapon --noheadings --show") == ""
    assert sh("lsblk -nro TYPE /dev/sda | grep -c '^part$'") == "2"
    # the admin user with sudo, the SSH server and the Hyper-V daemons already installed
    for pkg in ("openssh-server", "sudo", "hyperv-daemons"):
        assert sh(f"dpkg-query -W -f='${{db:Status-Status}}' {pkg}") == "installed", pkg
    assert "sudo" in sh("id -nG gmiadmin").split()
    # passwords set from SHA-512 crypt hashes (checked in the guest: never printed)
    sh("getent shadow root gmiadmin | cut -d: -f2 | grep -c '^\\$6\\$' | grep -qx 2")
    # booted through the removable-media path with Secure Boot on and fresh variables
    sh("test -s /boot/efi/EFI/BOOT/BOOTX64.EFI")
    assert "Secure boot enabled" in sh("journalctl -k -b --no-pager -q | grep -i 'secure boot' || true")
