"""Step 4: Hyper-V integration: daemons, drivers in the initramfs, the NIC named
eth0 (vmgenie's network-config matches it), and the removable-media boot path."""

from __future__ import annotations

import shlex

from harness.build import Build

from . import hv_from_source
from .shell import dq, grub_settings_script, running_kernel, set_initramfs_updates


def install_daemons(b: Build) -> tuple[str, ...]:
    """Install the distro's Hyper-V daemons; where the YAML says so, build them from
    the kernel's tools/hv instead (always, or when the package cannot be installed).
    Returns the units that run them."""
    d = b.distro
    pm, spec = d.package_manager(), d.hyperv_integration
    mode = spec.from_source.mode
    if mode == "never":
        b.sh(pm.install(spec.packages), what="install the Hyper-V daemons")
        return spec.services
    if mode == "fallback":
        installed = b.run(pm.install(spec.packages), check=False,
                          what="install the Hyper-V daemons")
        if installed.rc == 0:
            return spec.services
    kernel = b.sh(running_kernel(b.live), what="running kernel").strip()
    built = hv_from_source.plan(kernel, spec.from_source, pm.install(spec.from_source.build_packages))
    b.sh(built.script, what=f"build the Hyper-V daemons from linux-{built.kernel_version} tools/hv")
    b.record["hv_daemons_from_source"] = built.record()
    b.record["hv_services"] = list(built.enabled)
    return built.enabled


def enable_daemons(b: Build, services: tuple[str, ...]) -> None:
    """The daemons set to start on every clone: enabled (the procedure), or, where the
    distro's package starts them by a udev rule when Hyper-V's devices appear, that
    rule checked."""
    spec = b.distro.hyperv_integration
    units = " ".join(shlex.quote(u) for u in services)
    if spec.enable_services or services != spec.services:
        b.sh(f"systemctl enable {units}", what="enable the Hyper-V daemons")
    else:
        b.sh(f"for u in {units}; do grep -l \"${{u%.service}}\" {spec.udev_rule_glob}; done",
             what="a udev rule starts each Hyper-V daemon")
    b.sh(f"systemctl list-unit-files {units}", what="the daemons' units")


def hv_modules_in_initramfs(b: Build) -> None:
    """The hv drivers (a clone must find its disk, storvsc, and its NIC) and what the
    initramfs needs to mount the root (``initramfs_boot_modules``) listed in the
    initramfs configuration, named, not read from this machine's hardware; initramfs
    updates back on; the initramfs rebuilt, with every module in every one. In a
    chroot too: nothing in it reads the host."""
    d = b.distro
    spec = d.hyperv_integration
    modules = (*spec.initramfs_modules, *spec.initramfs_boot_modules)
    # one line per module: the module's name (initramfs-tools), or the distro's
    # template (dracut: add_drivers+=" hv_vmbus ")
    line = spec.initramfs_modules_line.replace("{module}", "$m")
    b.sh(f"f={shlex.quote(spec.initramfs_modules_file)}\n"
         f"for m in {' '.join(modules)}; do "
         f"grep -qx \"{dq(line)}\" \"$f\" || echo \"{dq(line)}\" >> \"$f\"; done", what="hv modules")
    if d.update.initramfs_conf:
        b.sh(set_initramfs_updates(d.update.initramfs_conf, "yes"),
             what="initramfs updates back on")
    b.sh(spec.initramfs_update, what="rebuild the initramfs")
    # (a module's file may spell its underscores as dashes: hid_hyperv is hid-hyperv.ko;
    # one built into that kernel (trixie's virtio_pci) is in modules.builtin instead)
    images = spec.initramfs_path.replace("{kernel}", "*")
    before, after = (shlex.quote(p) for p in spec.initramfs_path.split("{kernel}"))
    b.sh(f"for i in {images}; do l=$({spec.initramfs_list} \"$i\"); k=${{i#{before}}}; k=${{k%{after}}}; "
         "for m in " + " ".join(modules) + "; do p=\"/${m//_/[-_]}\\.ko\"; "
         "grep -q \"$p\" <<<\"$l\" || grep -qs \"$p\" \"/lib/modules/$k/modules.builtin\" || "
         "{ echo \"$m missing from $i\"; exit 1; }; done; done",
         what="hv modules are in every initramfs")
    b.record["initramfs_modules"] = ", ".join(spec.initramfs_modules)


def nic_eth0(b: Build) -> None:
    """eth0 on any hypervisor: the kernel names NICs (vmgenie's network-config matches
    eth0), ifupdown no longer bound to the install-time name (cloud-init writes the
    clone's network config); grub.cfg regenerated and checked."""
    d = b.distro
    spec, boot = d.hyperv_integration, d.boot
    if boot.grub_dropin_dir:
        b.put(f"{boot.grub_dropin_dir}/50-gmi-eth0.cfg",
              'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ' + " ".join(spec.kernel_cmdline) + '"\n')
    else:  # no drop-in folder: into /etc/default/grub itself
        b.sh(grub_settings_script(boot.grub_defaults_file, {}, spec.kernel_cmdline),
             what="kernel parameters for eth0")
    if spec.interfaces_file:
        b.put(spec.interfaces_file, spec.interfaces)
    update_grub(b)
    b.sh(f"grep -q 'net.ifnames=0' {boot.cmdline_glob}",
         what="the kernel command line names the NIC eth0")


def update_grub(b: Build) -> None:
    """GRUB's own update-grub (in a chroot, answered about the image's disk), and the
    image's root by its filesystem's UUID in what it wrote, when Step 1 named it."""
    boot = b.distro.boot
    b.sh(boot.grub_update, what="update-grub")
    uuid = b.record.get("root_uuid")
    if uuid:
        b.sh(f"grep -q 'root=UUID={uuid} ' {shlex.quote(boot.grub_cfg)}",
             what="grub.cfg boots the image's own root filesystem")


def efi_fallback(b: Build) -> None:
    """The Debian note: shim and GRUB on the removable-media path of the ESP (a new VM
    has no UEFI boot entries), and kept there by every later GRUB upgrade. In a chroot
    the ESP is the tree's folder, written into the disk's ESP with mtools."""
    d = b.distro
    pm, boot = d.package_manager(), d.boot
    esp = boot.esp_mount
    # (cp, not install: the ESP is vfat, where chmod fails)
    copies = "\n".join(
        f"mkdir -p {shlex.quote(f'{esp}/{dst}'.rsplit('/', 1)[0])}\n"
        f"cp {shlex.quote(f'{esp}/{boot.efi_vendor_dir}/{src}')} {shlex.quote(f'{esp}/{dst}')}"
        for dst, src in boot.efi_fallback.items())
    mounted = f"mountpoint -q {shlex.quote(esp)}" if b.live else f"test -d {shlex.quote(esp)}"
    b.sh(f"{mounted}\n{copies}", what="EFI fallback boot path")
    if boot.debconf:
        b.sh(pm.set_debconf(boot.debconf), what="keep the fallback path on GRUB upgrades")


def record_versions(b: Build) -> None:
    d = b.distro
    pm, spec = d.package_manager(), d.hyperv_integration
    b.record.setdefault("versions", {})["integration_services"] = ", ".join(
        f"{p} {b.sh(pm.version_of(p), what=f'{p} version').strip()}" for p in spec.packages
    ) if "hv_daemons_from_source" not in b.record else (
        f"built from {b.record['hv_daemons_from_source']['source_url']}")


def hyperv(b: Build) -> None:
    """Step 4, in the procedure's order."""
    services = install_daemons(b)
    enable_daemons(b, services)
    hv_modules_in_initramfs(b)
    nic_eth0(b)
    efi_fallback(b)
    record_versions(b)
