"""The build's speed levers (issue #14), checked without a VM: Step 1 applies the
updates as the installer does, dpkg runs without fsync only during the build, the build
VM's disk (never a clone's) has an unsafe write cache, the work of each stage is
accounted, and the benchmark reads a run's figures."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

from harness.stages.s5_cleanup import remove_build_only_files
from harness.stages.s6_seal import seal_script

from harness import distro, settings
from harness.backends.qemu import backend as qbackend
from harness.backends.qemu import vm as qvm
from harness.build import Build, Credentials
from harness.distro.pkgmgr import Apt, family
from harness.rootfs import debootstrap

D = distro.load("debian-12")
UNSAFE = next(iter(Apt.build_only_files))


def make_build(tmp_path: Path) -> Build:
    b = Build(D, settings.resolve({}, env={}), qbackend.QemuBackend(), "r", tmp_path, tmp_path / "logs")
    b.creds = Credentials.generate(D.admin_user, "c")
    return b


# --- Step 1 as the installer does it ------------------------------------------------


def test_step1_upgrades_then_keeps_only_the_newest_kernel(tmp_path: Path) -> None:
    # (what a build from scratch runs in the new system: the package work, then its own part)
    b = make_build(tmp_path)
    script = (debootstrap._packages_script(b)
              + debootstrap._per_build_script(b, keep_tree=False, fresh_ids=False))
    pm = Apt()
    order = [script.index(pm.refresh()), script.index(pm.upgrade()),
             script.index(pm.install(D.install.boot_packages)),
             script.index("newest=$(ls /boot/vmlinuz-*"),
             script.index("dpkg-divert --local --rename --remove /usr/sbin/update-grub")]
    assert order == sorted(order), "refresh, upgrade, boot packages, old kernels out, then undivert"
    assert "apt-get clean" not in script  # it would empty the host's package cache
    assert "autoclean" in script


def test_in_a_chroot_only_grub_install_stays_diverted(tmp_path: Path) -> None:
    """--prepare=chroot: update-grub is GRUB's own in the tree (the chroot's grub-probe
    answers for the image's disk), grub-install stays diverted until the disk is made
    (the ESP is a folder until then), and the disk's script puts it back."""
    b = make_build(tmp_path)
    script = debootstrap._per_build_script(b, keep_tree=True, fresh_ids=False)
    assert "dpkg-divert --local --rename --remove /usr/sbin/update-grub" in script
    assert "/usr/sbin/grub-install" not in script
    back = debootstrap.undivert_script([debootstrap.GRUB_INSTALL])
    assert "dpkg-divert --local --rename --remove /usr/sbin/grub-install" in back
    assert "update-grub" not in back


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


# --- dpkg without fsync: during the build only -----------------------------------------


def test_unsafe_io_is_an_apt_build_setting_only() -> None:
    assert Apt.build_only_files[UNSAFE].splitlines()[-1] == "force-unsafe-io"
    assert family("dnf").build_only_files == {} and family("zypper").build_only_files == {}


def test_cleanup_removes_the_build_only_files(tmp_path: Path) -> None:
    f = tmp_path / "zz-gmi-build-unsafe-io"
    f.write_text("force-unsafe-io\n")
    subprocess.run(["bash", "-euo", "pipefail", "-c", remove_build_only_files([str(f)])], check=True)
    assert not f.exists()
    subprocess.run(["bash", "-euo", "pipefail", "-c", remove_build_only_files([str(f)])], check=True)


def test_cleanup_fails_when_a_build_only_file_stays(tmp_path: Path) -> None:
    d = tmp_path / "a-folder"  # rm -f cannot remove it
    (d / "x").mkdir(parents=True)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", remove_build_only_files([str(d)])])
    assert proc.returncode != 0


def test_seal_fails_if_dpkg_would_still_skip_fsync(tmp_path: Path) -> None:
    script = seal_script(make_build(tmp_path))
    assert f"test ! -e {UNSAFE}" in script
    assert script.index(f"test ! -e {UNSAFE}") < script.index("gmi-seal: done")


# --- the build disk's write cache -------------------------------------------------------


def _vm(tmp_path: Path, **kw: Any) -> qvm.QemuVM:
    return qvm.QemuVM(name="v", workdir=tmp_path, disk=tmp_path / "d.raw", disk_format="raw",
                       vars_fd=tmp_path / "v.fd", secure_boot=False, accel="tcg", cpus=2,
                       memory_mb=2048, serial_log=tmp_path / "s.log", **kw)


def test_disk_cache_is_writeback_unless_asked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(qvm, "ovmf", lambda kind: Path(f"/ovmf/{kind}"))
    drive = next(a for a in _vm(tmp_path).command() if a.startswith("file="))
    assert "cache=writeback" in drive
    drive = next(a for a in _vm(tmp_path, disk_cache="unsafe").command() if a.startswith("file="))
    assert "cache=unsafe" in drive


def test_only_the_build_vm_gets_the_unsafe_cache(tmp_path: Path, monkeypatch) -> None:
    made: dict[str, str] = {}

    def new_vm(self: Any, build: Any, name: str, disk: Path, fmt: str, cdrom: Any = None,
               owned: Any = None, disk_cache: str = "writeback") -> str:
        made[name] = disk_cache
        return name

    monkeypatch.setattr(qbackend.QemuBackend, "new_vm", new_vm)
    monkeypatch.setattr(debootstrap.Debootstrap, "install_disk",
                        lambda self, build, nics: tmp_path / "build.raw")
    monkeypatch.setattr(qbackend, "qemu_img", lambda *a: "")
    b, backend = make_build(tmp_path), qbackend.QemuBackend()
    backend.provision(b)
    backend.clone(b, tmp_path / "x.vhdx", tmp_path / "seed.iso", "clone")
    assert made == {"build": "unsafe", "clone": "writeback"}
