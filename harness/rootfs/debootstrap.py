"""Step 1 for the apt family: a fresh Debian-family install from the archive.

No mounts and no loop devices: debootstrap into a folder; the boot packages are
installed in a private mount namespace with ``grub-install``/``update-grub`` diverted
(run in a chroot they would probe the *host's* disks); the root filesystem is written
straight into the disk file at its partition's offset with ``mkfs.ext4 -d``; the ESP is
the tree's ``/boot/efi`` folder (what ``grub-install`` writes there), made into a FAT
image with ``mkfs.vfat`` + mtools and copied in.

It leaves what a fresh minimal install from the official installer leaves: the base
system, a kernel, the SSH server, GRUB + shim on the ESP, root and the admin user
with generated passwords, DHCP on the NIC. Everything after that is done by the
stages: over SSH in the booted disk (``--prepare=vm``), or (``--prepare=chroot``, the
default here) in the root tree, seal included, before the disk is made
(:meth:`Debootstrap.disk_from_tree`): the image first boots as the checks' clone.
There, ``update-grub`` is GRUB's own, answered about the image's disk by a
``grub-probe`` of the chroot's (:mod:`harness.rootfs.chroot`); only ``grub-install``
stays diverted (the ESP is a folder until the disk is made).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.distro.pkgmgr import Apt
from harness.errors import GmiError, HypervisorError
from harness.host import tools as host
from harness.host.tools import file_lock
from harness.rootfs import treecache
from harness.rootfs.chroot import ChrootShell, ImageDisk, chroot_wrapper

if TYPE_CHECKING:
    from harness.build import Build

MiB = 1024 * 1024
CACHE_DIR = Path("~/.cache/gmi-harness/debootstrap").expanduser()
SHIM_DIR = "usr/lib/shim"
GRUB_SIGNED = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
GRUB_INSTALL, UPDATE_GRUB = "/usr/sbin/grub-install", "/usr/sbin/update-grub"
DIVERTED = (GRUB_INSTALL, UPDATE_GRUB)
ROOTFS = "rootfs"  # the new system's root tree, in the build's scratch folder
ESP_DIR = "boot/efi"  # (the ESP's mount point: in the tree, the ESP's files until the disk)


class Debootstrap:
    """The apt family's bootstrapper (:class:`harness.rootfs.Bootstrapper`)."""

    method = "debootstrap"

    def host_tools(self, build: Build) -> list[str]:
        trees = ["zstd"] if build.settings.incremental == "on" else []  # (Step 1's kept trees)
        return ["debootstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "mmd", "sfdisk", "unshare",
                "chroot", *trees]

    def install_disk(self, build: Build, nic_names: Sequence[str]) -> Path:
        return install(build, nic_names)

    def install_tree(self, build: Build, nic_names: Sequence[str]) -> ChrootShell:
        root = install(build, nic_names, keep_tree=True)
        image = ImageDisk.write(build.record["root_uuid"], build.workdir)
        return ChrootShell(root, logger=build.log, timer=build.account, image=image)

    def disk_from_tree(self, build: Build) -> Path:
        return disk_from_tree(build)


def run(cmd: Sequence[str], build: Build, *, what: str, input: str | None = None,
        env: dict[str, str] | None = None) -> None:
    """Run a host command; its output goes to build.log; failure is one line. The
    command runs in a process group of its own: when the run is interrupted, the whole
    group is killed (debootstrap's dpkg and wget too, not just the script)."""
    build.log.info("$ %s", shlex.join(cmd) if input is None else f"{cmd[0]} ... (stdin)")
    with build.working("tools"):
        returncode, stdout, stderr = host.run_group(cmd, input=input, env={**os.environ, **(env or {})})
    for line in (stdout + stderr).splitlines():
        build.log.info("  %s", line)
    if returncode != 0:
        last = (stderr or stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise HypervisorError(f"{what} failed (exit {returncode}): {last[0]}; "
                              f"see {build.logdir / 'build.log'}")


def install(build: Build, nic_names: Sequence[str], *, keep_tree: bool = False) -> Path:
    """Build the disk of a freshly installed system; returns the raw disk's path. With
    ``keep_tree``: the installed root tree instead, for the stages to prepare in a
    chroot (grub-install diverted, the host's resolv.conf in place) until
    :func:`disk_from_tree` makes the disk from it."""
    d, spec = build.distro, build.distro.install
    assert build.creds is not None
    host.require_space(build.workdir, spec.scratch_min_gib * 2**30, "the build")
    root = build.workdir / ROOTFS
    disk = build.workdir / "build.raw"
    done = False
    try:
        with build.working("tools"):  # (the mirror's InRelease files, read for the key)
            key = _incremental_key(build)
        reused = False
        if key is not None:
            with build.step("provision: Step 1's cached tree"), build.working("tools"):
                reused = treecache.restore(build, root, spec.suite, key)
        if not reused:
            # dpkg without fsync from the first package on (debootstrap's own dpkg reads it)
            for path, content in Apt.build_only_files.items():
                (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                (root / path.lstrip("/")).write_text(content)
            with build.step("provision: debootstrap"):
                _debootstrap(build, root)
            with build.step("provision: updates and boot packages"):
                _install_packages(build, root)
            if key is not None:
                with build.step("provision: keep the tree for the next build"), build.working("tools"):
                    treecache.store(build, root, spec.suite, key)
        build.record["step1_tree"] = ("reused (incremental)" if reused else
                                      "made, and kept for the next build" if key else "made")
        with build.step("provision: users"):
            _per_build(build, root, keep_tree=keep_tree, fresh_ids=reused)
        root_uuid, esp_serial = str(uuid.uuid4()), uuid.uuid4().hex[:8].upper()
        _write_config(build, root, root_uuid, esp_serial, nic_names)
        build.record["installed_by"] = (f"debootstrap {spec.suite} ({d.name}), with the updates "
                                        "and security suites applied")
        if keep_tree:
            done = True
            return root
        with build.step("provision: disk"):
            _assemble_disk(build, root, disk, root_uuid, esp_serial)
        done = True
    finally:
        if root.exists() and not (keep_tree and done):
            _remove_tree(build, root)
    return disk


def disk_from_tree(build: Build) -> Path:
    """The image's disk made from the root tree the stages prepared and sealed in a
    chroot: grub-install back, the stages' resolv.conf gone, the ESP from the tree's
    ``/boot/efi``; the tree removed. Returns the raw disk's path. Nothing is left to do
    at a first boot: the initramfs and grub.cfg were made in the tree for the image's
    own disk, and the disk is written sparse (nothing for fstrim to give back)."""
    root, disk = build.workdir / ROOTFS, build.workdir / "build.raw"
    try:
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c", chroot_wrapper(root)],
            build, what="putting grub-install back in the new system",
            input=undivert_script([GRUB_INSTALL]))
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        root_uuid, esp_uuid = build.record["root_uuid"], build.record["esp_uuid"]
        with build.step("seal: assemble the disk"):
            _assemble_disk(build, root, disk, root_uuid, esp_uuid.replace("-", ""))
    finally:
        if root.exists():
            with build.step("seal: remove the tree"):
                _remove_tree(build, root)
    return disk


def _remove_tree(build: Build, root: Path) -> None:
    _refuse_mounted(root)
    build.record["scratch_peak_bytes"] = max(
        build.record.get("scratch_peak_bytes", 0), host.tree_allocated_bytes(build.workdir))
    shutil.rmtree(root, ignore_errors=True)


def _refuse_mounted(root: Path) -> None:
    """Never delete a tree with something mounted inside it (a host's /dev, say)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        inside = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    if inside:
        raise GmiError(f"{inside[0]} is still mounted: unmount it, then delete {root}")


def _debootstrap(build: Build, root: Path) -> None:
    spec = build.distro.install
    cache = CACHE_DIR / spec.suite
    cache.mkdir(parents=True, exist_ok=True)
    # In a private mount namespace: whatever debootstrap mounts in the target (proc,
    # sys) vanishes with it, even when it is interrupted. One debootstrap per cache at a
    # time (xdist workers, two runs): other suites' caches stay parallel.
    with file_lock(cache.with_name(f"{spec.suite}.lock")):
        run(["unshare", "--mount", "--propagation", "private",
             "debootstrap", "--arch=amd64", f"--cache-dir={cache}",
             f"--include={','.join(spec.include)}", spec.suite, str(root), build.settings.mirror],
            build, what="debootstrap", env=_proxy_env(build))


def _proxy_env(build: Build) -> dict[str, str]:
    """debootstrap's downloads (wget) through the run's package cache, when there is one."""
    if not build.package_proxy_port:
        return {}
    return {"http_proxy": f"http://127.0.0.1:{build.package_proxy_port}/"}


def divert_script() -> str:
    """grub-install and update-grub replaced by no-ops (run in a chroot, they would
    write the host's root device into grub.cfg)."""
    return "\n".join(
        f"dpkg-divert --local --rename --add {p}\nprintf '#!/bin/sh\\nexit 0\\n' > {p}\n"
        f"chmod 755 {p}" for p in DIVERTED)


def undivert_script(paths: Sequence[str] = DIVERTED) -> str:
    """GRUB's own tools back in place."""
    return "set -eu\n" + "\n".join(f"rm -f {p}\ndpkg-divert --local --rename --remove {p}"
                                    for p in paths) + "\n"


def _sources(build: Build) -> str:
    spec = build.distro.install
    return spec.apt_sources.format(mirror=build.settings.mirror, security_mirror=spec.security_mirror)


def _packages_script(build: Build) -> str:
    """Step 1's package work in the new system (what the tree cache keeps)."""
    spec = build.distro.install
    pm = Apt()
    # As the installer does: the updates and security suites (in sources.list already)
    # are applied during the install, so the first boot is current and Step 2 finds no
    # second kernel to boot. The installer leaves one kernel: the newest.
    return f"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
{divert_script()}
{pm.refresh()}
{pm.upgrade()}
{pm.install(spec.boot_packages)}
{pm.remove_kernels_but_newest()}
"""


def _per_build_script(build: Build, keep_tree: bool, fresh_ids: bool) -> str:
    """What each build does to the tree itself: GRUB's tools back (grub-install stays
    diverted while the stages run in the chroot: the ESP is a folder until the disk is
    made), new SSH host keys and machine-id for a reused tree (as a fresh install makes
    them), the admin user."""
    ids = ("rm -f /etc/ssh/ssh_host_*\nssh-keygen -A\n"
           "rm -f /etc/machine-id\nsystemd-machine-id-setup\n") if fresh_ids else ""
    return f"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
{undivert_script([UPDATE_GRUB] if keep_tree else DIVERTED)}
{ids}adduser --disabled-password --gecos "" {shlex.quote(build.distro.admin_user)}
apt-get -q autoclean
"""


def _incremental_key(build: Build) -> str | None:
    """The tree cache's key for this build's Step 1, or None: --incremental=off, or
    the mirror's InRelease files cannot be read (then Step 1 runs from scratch and
    says why in build.log)."""
    spec = build.distro.install
    if build.settings.incremental != "on":
        return None
    sources = _sources(build)
    try:
        state = treecache.archive_state(sources)
    except OSError as exc:
        build.log.info("incremental: the archive's state could not be read (%s): Step 1 from scratch",
                       exc)
        return None
    rc, version, _ = host.run_group(["debootstrap", "--version"])
    return treecache.tree_key(
        [spec.suite, build.settings.mirror, sources, ",".join(spec.include), _packages_script(build),
         repr(sorted(Apt.build_only_files.items())), version.strip() if rc == 0 else "?"], state)


def _in_chroot(build: Build, root: Path, script: str, what: str) -> None:
    """``script`` in the new system with the host's apt package cache for the suite
    bound over its own: in a private mount namespace, proc, sys and dev exist only for
    the chroot's package scripts and vanish with the namespace, and so does the bind
    (the new system's own cache stays empty; the host's is kept for the next build)."""
    cache = CACHE_DIR.with_name("apt") / build.distro.install.suite
    cache.mkdir(parents=True, exist_ok=True)
    wrapper = chroot_wrapper(root, apt_cache=cache)
    with file_lock(cache.with_name(f"{build.distro.install.suite}.lock")):
        run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper], build,
            what=what, input=script)


def _install_packages(build: Build, root: Path) -> None:
    (root / "etc/apt/sources.list").write_text(_sources(build))
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    # (the package cache's setting, addressed from here: apt in the chroot is on this host)
    proxy = {p: c for p, c in build.build_only_files().items() if p not in Apt.build_only_files}
    for path, content in proxy.items():
        (root / path.lstrip("/")).write_text(content)
    try:
        _in_chroot(build, root, _packages_script(build),
                   "installing the updates and the boot loader packages in the new system")
    finally:
        # (neither is ever kept in a cached tree; the stages write the proxy setting again)
        for path in ["/etc/resolv.conf", *proxy]:
            (root / path.lstrip("/")).unlink(missing_ok=True)


def _per_build(build: Build, root: Path, keep_tree: bool, fresh_ids: bool) -> None:
    assert build.creds is not None
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    _in_chroot(build, root, _per_build_script(build, keep_tree, fresh_ids),
               "the admin user and the build's own files in the new system")
    # Passwords go through chpasswd's standard input: never on a command line.
    c = build.creds
    run(["chroot", str(root), "chpasswd"], build, what="setting the build passwords",
        input=f"root:{c.root_password}\n{c.admin_user}:{c.admin_password}\n")
    if not keep_tree:  # (the stages in the chroot still need to resolve the mirror)
        (root / "etc/resolv.conf").unlink()


def _write_config(build: Build, root: Path, root_uuid: str, esp_serial: str,
                  nic_names: Sequence[str]) -> None:
    d, spec = build.distro, build.distro.install
    assert build.creds is not None
    esp_uuid = f"{esp_serial[:4]}-{esp_serial[4:]}"
    hostname = d.name.replace(".", "-")
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n" + d.cleanup.hosts.split("\n", 1)[1])
    (root / "etc/fstab").write_text(
        f"UUID={root_uuid}\t/\t{spec.root_fs}\terrors=remount-ro\t0\t1\n"
        f"UUID={esp_uuid}\t{d.boot.esp_mount}\tvfat\tumask=0077\t0\t1\n")
    (root / d.boot.esp_mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    # The installer configures the NIC it detected; here that is the NIC's
    # predictable name on the local hypervisor (it has two possible spellings).
    interfaces = spec.interfaces.split("allow-hotplug")[0]
    for nic in nic_names:
        interfaces += f"allow-hotplug {nic}\niface {nic} inet dhcp\n\n"
    (root / "etc/network/interfaces").write_text(interfaces)
    (root / "etc/default").mkdir(exist_ok=True)
    (root / d.boot.grub_defaults_file.lstrip("/")).write_text(spec.grub_defaults)
    # The build's SSH key, so the stages can log in (removed again by the seal stage).
    for home in ("root", f"home/{d.admin_user}"):
        ssh = root / home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(build.creds.key.public_openssh + "\n")
        (ssh / "authorized_keys").chmod(0o600)
    uid = gid = _ids(root, d.admin_user)
    for p in (root / f"home/{d.admin_user}/.ssh", root / f"home/{d.admin_user}/.ssh/authorized_keys"):
        os.chown(p, uid, gid)
    # Record what the build's SSH host keys are: the build pins them, the checks
    # prove the clones no longer have them.
    build.record["build_host_keys"] = sorted(
        " ".join(p.read_text().split()[:2]) for p in (root / "etc/ssh").glob("ssh_host_*_key.pub"))
    _write_grub_cfg(build, root, root_uuid)
    _stage_esp(build, root, root_uuid)
    build.record["esp_uuid"], build.record["root_uuid"] = esp_uuid, root_uuid


def _write_grub_cfg(build: Build, root: Path, root_uuid: str) -> None:
    """The installer runs update-grub in the installed system; at this point ours
    cannot (it would probe the host), so it writes the equivalent for the newest kernel,
    for the build VM's boot (``--prepare=vm``). The stages run update-grub: in the
    booted VM, or in the chroot answered about the image's disk."""
    kernels = sorted((p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*")),
                     key=_version_key)
    if not kernels:
        raise GmiError("the new system has no kernel in /boot: check install.include")
    kver = kernels[-1]
    cmdline = f"root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200n8 quiet"
    (root / "boot/grub").mkdir(parents=True, exist_ok=True)
    (root / build.distro.boot.grub_cfg.lstrip("/")).write_text(
        f"set default=0\nset timeout=5\n"
        f"menuentry '{build.distro.description}' {{\n"
        f"  search --no-floppy --fs-uuid --set=root {root_uuid}\n"
        f"  linux /boot/vmlinuz-{kver} {cmdline}\n"
        f"  initrd /boot/initrd.img-{kver}\n}}\n")


def _version_key(version: str) -> list[tuple[int, str]]:
    """Sorts kernel versions as ``sort -V`` does for them (6.1.0-9 before 6.1.0-10)."""
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", version) if p]


def _ids(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    raise GmiError(f"user {user} was not created in the new system")


def ext4_extended(offset: int) -> str:
    """``mkfs.ext4 -E`` for the root filesystem written in place at ``offset`` bytes into
    the sparse disk. Inode tables are marked zeroed now (holes in a new sparse file), so
    the guest never lazily zeroes 250 GB; the journal needs no zeroing either: a new
    sparse file reads as zeros already. The block groups' bitmaps and inode tables are
    packed at the start of the filesystem (packed_meta_blocks), not spread over 250 GB:
    an empty one then touches 33 MiB of a 1 MiB-block VHDX instead of 155 MiB."""
    return f"offset={offset},lazy_itable_init=0,lazy_journal_init=1,packed_meta_blocks=1"


def _assemble_disk(build: Build, root: Path, disk: Path, root_uuid: str,
                   esp_serial: str) -> None:
    d = build.distro
    esp_mib = d.install.esp_size_mib
    size = d.hyperv.disk_gb * 1024 * MiB
    root_start_mib = 1 + esp_mib
    root_mib = size // MiB - root_start_mib - 1  # 1 MiB for the backup GPT
    disk.unlink(missing_ok=True)
    with disk.open("wb") as f:
        f.truncate(size)  # sparse: a 250 GB disk costs what is written into it
    layout = (
        "label: gpt\n"
        f"start=1MiB, size={esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI\n"
        f"start={root_start_mib}MiB, size={root_mib}MiB, "
        "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n"
    )
    run(["sfdisk", "--quiet", str(disk)], build, what="partitioning the disk", input=layout)
    # The ESP's files go to the FAT image; the root filesystem keeps the empty mount point.
    staged = build.workdir / "esp"
    shutil.rmtree(staged, ignore_errors=True)
    (root / ESP_DIR).rename(staged)
    (root / ESP_DIR).mkdir()
    run(["mkfs.ext4", "-q", "-F", "-d", str(root), "-U", root_uuid, "-L", "root",
         "-E", ext4_extended(root_start_mib * MiB),
         str(disk), f"{root_mib}M"], build, what="mkfs.ext4 of the root filesystem")
    esp = build.workdir / "esp.img"
    esp.unlink(missing_ok=True)
    run(["mkfs.vfat", "-F", "32", "-n", "EFI", "-i", esp_serial, "-C", str(esp),
         str(esp_mib * 1024)], build, what="mkfs.vfat of the ESP")
    _write_esp(build, staged, esp)
    shutil.rmtree(staged)
    run(["dd", f"if={esp}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc,sparse",
         "status=none"], build, what="copying the ESP into the disk")
    esp.unlink()


def _stage_esp(build: Build, root: Path, root_uuid: str) -> None:
    """What grub-install --uefi-secure-boot writes to the ESP, plus the removable-media
    path that a VM with empty UEFI variables boots from, into the tree's ``/boot/efi``
    (the ESP until the disk is made: the stages' copies to the fallback path land there
    too, as on a mounted ESP)."""
    vendor = build.distro.boot.efi_vendor_dir
    shim = root / SHIM_DIR
    files = {
        f"{vendor}/shimx64.efi": shim / "shimx64.efi.signed",
        f"{vendor}/grubx64.efi": root / GRUB_SIGNED,
        f"{vendor}/mmx64.efi": shim / "mmx64.efi.signed",
    }
    csv = shim / "BOOTX64.CSV"
    if csv.exists():
        files[f"{vendor}/BOOTX64.CSV"] = csv
    for target, source in build.distro.boot.efi_fallback.items():
        files[target] = files[f"{vendor}/{source}"]
    stub = (f"search.fs_uuid {root_uuid} root\nset prefix=($root)'/boot/grub'\n"
            "configfile $prefix/grub.cfg\n")
    esp = root / ESP_DIR
    for target, src in files.items():
        if not src.exists():
            raise GmiError(f"{src.relative_to(root)} is missing in the new system: "
                           "check install.boot_packages")
        (esp / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, esp / target)
    for target in (f"{vendor}/grub.cfg", "EFI/BOOT/grub.cfg"):
        (esp / target).write_text(stub)


def _write_esp(build: Build, staged: Path, esp: Path) -> None:
    """The ESP's files (a folder) into the FAT image, with mtools (nothing mounted)."""
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for folder in sorted((p for p in staged.rglob("*") if p.is_dir()), key=lambda p: len(p.parts)):
        run(["mmd", "-D", "s", "-i", str(esp), f"::/{folder.relative_to(staged).as_posix()}"],
            build, env=env, what=f"creating {folder.relative_to(staged)} on the ESP")
    files = sorted(p for p in staged.rglob("*") if p.is_file())
    for src in files:
        target = src.relative_to(staged).as_posix()
        run(["mcopy", "-o", "-i", str(esp), str(src), f"::/{target}"], build, env=env,
            what=f"copying {target} to the ESP")
