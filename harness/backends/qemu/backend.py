"""The embedded default backend: QEMU + OVMF (UEFI, Secure Boot) + qemu-img.

Step 1 by the distro family's bootstrapper (:mod:`harness.rootfs`: a root tree on
this host, made into a disk) or the distro's own installer (``installer.py``); every
VM is a :class:`~harness.backends.qemu.vm.QemuVM`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import rootfs
from harness.backends.base import VM, Backend, CloneShape, ExportedDisk
from harness.backends.qemu import janitor
from harness.backends.qemu.installer import effective_method, install_from_media, install_method
from harness.backends.qemu.vm import (
    NIC_NAMES,
    QemuVM,
    image_info,
    ovmf,
    probe_accel,
    qemu_img,
    remember_accel,
)
from harness.errors import ConfigError, GmiError
from harness.host import tools as host
from harness.rootfs import journal, pkgcache
from harness.settings import prepare_mode

if TYPE_CHECKING:
    from harness.build import Build
    from harness.distro import Distro
    from harness.settings import Settings
    from harness.ssh import Shell

# The Hyper-V Secure Boot template OVMF's Microsoft keys stand for on this backend
OVMF_TEMPLATE = "MicrosoftUEFICertificateAuthority"


class QemuBackend(Backend):
    name = "qemu"
    prepares_in_chroot = True  # debootstrap's tree, stages 2-5 in a chroot (--prepare=chroot)
    tools = ["qemu-system-x86_64", "qemu-img"]
    host_from_guest = "10.0.2.2"  # QEMU's user-mode network: the host's loopback

    @classmethod
    def start_package_cache(cls, settings: Settings, logdir: Path) -> pkgcache.PackageCache | None:
        # (without apt-cacher-ng every build fails its host check, naming the package)
        if settings.package_cache != "on" or shutil.which("apt-cacher-ng") is None:
            return None
        return pkgcache.start(logdir)

    @classmethod
    def settings_problems(cls, settings: Settings, distros: Sequence[Distro],
                          janitor: bool = False) -> list[str]:
        """Each build's install method and ``--prepare`` mode, ``--iso``; root where Step 1
        needs it (debootstrap and the chroot)."""
        problems = []
        as_root = []
        for d in distros:
            try:
                method = install_method(d, settings)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            boot = rootfs.bootstrapper(d.family)
            tree = boot is not None and method == boot.method
            if prepare_mode(settings.prepare, d.name) == "chroot" and not tree:
                problems.append(no_tree(d.name, method))
            if tree:
                as_root.append(d.name)
        if settings.iso and not Path(settings.iso).expanduser().is_file() and distros:
            problems.append(f"{settings.where('iso')}: iso: {settings.iso}: no such file")
        if as_root and os.geteuid() != 0:
            problems.append(f"building {', '.join(as_root)} on the qemu backend needs root (debootstrap "
                            "and the chroot of Step 1): run the same command as root (sudo -E, or "
                            "a root shell)")
        return problems

    @classmethod
    def installs_instead_of_the_iso(cls, settings: Settings, distro: Distro) -> str:
        try:
            method = install_method(distro, settings)
        except ConfigError:
            return ""  # (the method's own problem is said by settings_problems)
        return ("installs with debootstrap from the archive" if method == "debootstrap" else
                "installs from the netboot files" if method == "netboot" else
                f"installs from --iso {settings.iso}" if settings.iso else "")

    @classmethod
    def prepare_host(cls, settings: Settings, scratch: Path) -> dict[str, Any]:
        """QEMU's tools, and the accelerator: KVM only when a short real boot proves it."""
        host.require_tools(list(cls.tools))
        return {"accel": probe_accel(scratch, settings.accel)}

    @classmethod
    def janitor(cls, settings: Settings, mode: str) -> int:
        """What local runs that died left in --scratch: folders, qemu, QMP sockets."""
        return janitor.run(settings, mode)

    @classmethod
    def use_host_facts(cls, facts: dict[str, Any]) -> None:
        if facts.get("accel"):
            remember_accel(facts["accel"])

    def check_host(self, build: Build) -> None:
        building = build.archive is None
        cache = ["apt-cacher-ng"] if building and build.settings.package_cache == "on" else []
        host.require_tools(self.tools + installer_tools(build) + cache)
        ovmf("code_secboot")
        ovmf("vars_ms")
        shape = CloneShape.of(build.settings)
        if shape.secure_boot and shape.secure_boot_template != OVMF_TEMPLATE:
            raise ConfigError(f"--clone-secure-boot-template={shape.secure_boot_template}: the qemu "
                              f"backend's Secure Boot keys (OVMF's Microsoft keys) stand for "
                              f"{OVMF_TEMPLATE} only; use --backend=hyperv for another template")

    def new_vm(self, build: Build, name: str, disk: Path, disk_format: str,
               cdrom: Path | None = None, owned: list[Path] | None = None,
               disk_cache: str = "writeback", shape: CloneShape | None = None) -> QemuVM:
        """A new VM: the build VM's size and the distro's Secure Boot, or ``shape``'s
        (the checklist's clone)."""
        s = build.settings
        secure = shape.secure_boot if shape else build.distro.hyperv.secure_boot
        vars_fd = build.workdir / f"{name}.vars.fd"
        # A new VM: fresh UEFI variables (Microsoft keys enrolled when Secure Boot is on)
        shutil.copyfile(ovmf("vars_ms" if secure else "vars"), vars_fd)
        vm = QemuVM(
            name=name, workdir=build.workdir, disk=disk, disk_format=disk_format,
            vars_fd=vars_fd, secure_boot=secure,
            accel=probe_accel(build.workdir, build.settings.accel),
            cpus=shape.cpus if shape else s.vm_cpus,
            memory_mb=shape.memory_mb if shape else s.vm_memory_mb,
            cdrom=cdrom, detach=build.settings.keep != "never", owned=owned or [],
            serial_log=build.logdir / f"{name}.serial.log", disk_cache=disk_cache,
        )
        build.record["accel"] = vm.accel
        build.vms.append(vm)  # before start: whatever happens, teardown knows it
        with build.working("boot"):
            vm.start()
        return vm

    def provision(self, build: Build) -> VM:
        boot = bootstrapper(build)
        if boot is None:
            # The distro's own installer from its ISO (or d-i netboot), with an answer file.
            disk = install_from_media(build)
            return self.new_vm(build, "build", disk, "qcow2", owned=[disk], disk_cache="unsafe")
        disk = boot.install_disk(build, NIC_NAMES)
        return self.new_vm(build, "build", disk, "raw", owned=[disk], disk_cache="unsafe")

    def prepare_in_chroot(self, build: Build) -> Shell | None:
        mode = prepare_mode(build.settings.prepare, build.distro.name)
        boot = bootstrapper(build)
        if mode == "vm" or (mode == "auto" and boot is None):
            return None
        if boot is None:
            raise ConfigError(no_tree(build.distro.name, effective_method(build)))
        return boot.install_tree(build, NIC_NAMES)

    def export_tree(self, build: Build, vhdx: Path) -> ExportedDisk:
        boot = bootstrapper(build)
        if boot is None:
            raise GmiError(f"{build.distro.name}: no root tree to make a disk from")
        with build.step("seal: the disk from the tree"):
            disk = boot.disk_from_tree(build)
        try:
            used = journal.used_bytes(disk)
            if used is not None:
                build.record["fs_used_bytes"] = used
            # (made by mkfs from the tree: its journal was never written, nothing to discard)
            return self._vhdx(build, disk, "raw", vhdx, booted=False)
        finally:
            disk.unlink(missing_ok=True)

    def export_disk(self, build: Build, vhdx: Path) -> ExportedDisk:
        assert isinstance(build.vm, QemuVM)
        return self._vhdx(build, build.vm.disk, build.vm.disk_format, vhdx, booted=True)

    def _vhdx(self, build: Build, src: Path, disk_format: str, vhdx: Path, *,
              booted: bool) -> ExportedDisk:
        sizes = {"build_disk_allocated": host.allocated_bytes(src)}
        if booted and disk_format == "raw":  # (Step 1's disk; an installer's qcow2 keeps its own)
            with build.step("seal: discard the empty journal"):
                sizes["journal_discarded"] = journal.discard_journal(src)
        tmp = vhdx.with_suffix(".vhdx.part")
        block = build.distro.hyperv.vhdx_block_size_mib
        qemu_img("convert", "-f", disk_format, "-O", "vhdx",
                 "-o", f"subformat=dynamic,block_size={block}M", str(src), str(tmp))
        tmp.rename(vhdx)
        info = image_info(vhdx)
        sizes.update(vhdx_bytes=vhdx.stat().st_size, virtual_size=int(info["virtual-size"]))
        return ExportedDisk(sizes)

    def clone(self, build: Build, vhdx: Path, seed_iso: Path, name: str) -> VM:
        overlay = build.workdir / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(vhdx), "-F", "vhdx", str(overlay))
        shape = CloneShape.of(build.settings)
        # QEMU's memory is static; OVMF's Microsoft keys (Windows Production CA and the UEFI
        # CA in db) stand for the template, so a shim signed by the UEFI CA boots as there.
        build.record["clone_shape"] = shape.record(
            secure_boot_keys="OVMF's Microsoft keys" if shape.secure_boot else "")
        return self.new_vm(build, name, overlay, "qcow2", cdrom=seed_iso, owned=[overlay],
                           shape=shape)


def bootstrapper(build: Build) -> rootfs.Bootstrapper | None:
    """The family's bootstrapper when this build installs with it (else None: the
    distro's installer)."""
    boot = rootfs.bootstrapper(build.distro.family)
    return boot if boot is not None and effective_method(build) == boot.method else None


def no_tree(name: str, method: str) -> str:
    return (f"--prepare=chroot: {name} installs with {method}, which leaves no root tree to "
            "prepare; use --prepare=vm or --install-method=auto")


def installer_tools(build: Build) -> list[str]:
    boot = bootstrapper(build) if build.archive is None else None
    if boot is not None:
        return boot.host_tools(build)
    if build.archive is None and effective_method(build) == "iso" and build.distro.install.remaster_grub_cfg:
        return ["xorriso"]  # the ISO is remastered with the answer file
    return []
