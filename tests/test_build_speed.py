"""The build's speed levers (issue #14), checked without a VM: Step 1 applies the
updates as the installer does, dpkg runs without fsync only during the build, the build
VM's disk (never a clone's) has an unsafe write cache, the work of each stage is
accounted, and the benchmark reads a run's figures."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from harness import config, debootstrap, distro, qemu
from harness.build import Build, Credentials
from harness.pkgmgr import Apt

D = distro.load("debian-12")


def make_build(tmp_path: Path) -> Build:
    b = Build(D, config.resolve({}, env={}), qemu.QemuBackend(), "r", tmp_path, tmp_path / "logs")
    b.creds = Credentials.generate(D.admin_user, "c")
    return b


# --- Step 1 as the installer does it ------------------------------------------------


def test_step1_upgrades_then_keeps_only_the_newest_kernel(tmp_path: Path) -> None:
    script = debootstrap._chroot_script(make_build(tmp_path))
    pm = Apt()
    order = [script.index(pm.refresh()), script.index(pm.upgrade()),
             script.index(pm.install(D.install.boot_packages)),
             script.index("newest=$(ls /boot/vmlinuz-*"),
             script.index("dpkg-divert --local --rename --remove /usr/sbin/update-grub")]
    assert order == sorted(order), "refresh, upgrade, boot packages, old kernels out, then undivert"
    assert "apt-get clean" not in script  # it would empty the host's package cache
    assert "autoclean" in script and "rm -f /var/cache/apt/*.bin" in script


def _fake_tools(tmp_path: Path, installed: list[str]) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dpkg = bin_dir / "dpkg-query"
    dpkg.write_text("#!/bin/sh\n" + "".join(f"echo 'installed {p}'\n" for p in installed))
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'apt.args'}\n")
    for f in (dpkg, apt):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_old_kernels_are_purged_by_version_not_by_name(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    for k in ("6.1.0-9-amd64", "6.1.0-37-amd64"):  # by name, 9 sorts last
        (boot / f"vmlinuz-{k}").write_text("")
    env = _fake_tools(tmp_path, ["linux-image-6.1.0-9-amd64", "linux-image-6.1.0-37-amd64"])
    subprocess.run(["sh", "-euc", Apt().remove_kernels_but_newest(str(boot))], check=True, env=env)
    args = (tmp_path / "apt.args").read_text().split()
    assert "purge" in args and args[-1] == "linux-image-6.1.0-9-amd64"
    assert "linux-image-6.1.0-37-amd64" not in args


def test_a_single_kernel_purges_nothing(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz-6.1.0-37-amd64").write_text("")
    env = _fake_tools(tmp_path, ["linux-image-6.1.0-37-amd64"])
    subprocess.run(["sh", "-euc", Apt().remove_kernels_but_newest(str(boot))], check=True, env=env)
    assert not (tmp_path / "apt.args").exists()
