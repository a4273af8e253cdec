"""The stages driven by each distro's YAML, against a recording fake guest (no VM):
the procedure's per-OS quirks show up as the commands the stages send."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import harness.stages.s2_update as s2
import harness.stages.s3_cloud_init as s3
import harness.stages.s4_hyperv as s4
import harness.stages.s5_cleanup as s5
import pytest
from harness.stages.s6_seal import seal_script

from harness import distro, settings
from harness.build import Build, Credentials
from harness.ssh import Result

KERNEL = "6.14.0-27-generic"


class RecordingGuest:
    """Answers every command with success (or a chosen failure) and records it.
    ``live``: a running VM (False: a chroot of the root tree, ``--prepare=chroot``)."""

    where = "recording"

    def __init__(self, fail: str = "", live: bool = True) -> None:
        self.live = live
        self.commands: list[str] = []
        self.files: dict[str, str] = {}
        self.fail = fail
        self.missing_unit = ""

    def run(self, script: str, check: bool = True, timeout: float = 0, what: str = "",
            quiet: bool = False) -> Result:
        self.commands.append(script)
        if self.fail and self.fail in script:
            assert not check, f"a failing command was run with check=True: {script}"
            return Result(1, "No provider of 'hyper-v' found.")
        if "list-unit-files --no-legend \"$u\"" in script:  # every unit the YAML names exists, unless told
            return Result(0, self.missing_unit)
        return Result(0, KERNEL if script == "uname -r" or script.startswith("ls /boot/vmlinuz")
                      else "1.0")

    def put(self, path: str, content: str, mode: int = 0o644) -> None:
        self.files[path] = content

    def close(self) -> None:
        pass


def run_stages(tmp_path: Path, name: str, fail: str = "") -> tuple[Build, RecordingGuest, str]:
    d = distro.load(name)
    b = Build(d, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.creds = Credentials.generate(d.admin_user, "c")
    g = RecordingGuest(fail)
    b.guest = g  # type: ignore[assignment]
    for stage in (s2.update, s3.cloud_init, s4.hyperv, s5.cleanup):
        stage(b)
    return b, g, seal_script(b)


def sent(g: RecordingGuest) -> str:
    return "\n".join(g.commands)


@pytest.mark.parametrize("name", distro.known_distros())
def test_every_distro_runs_through_the_stages(tmp_path: Path, name: str):
    b, g, seal = run_stages(tmp_path, name)
    text = sent(g)
    d = b.distro
    assert f"usermod -aG {d.update.sudo_group} {d.admin_user}" in text
    assert d.boot.grub_update in text and d.hyperv_integration.initramfs_update in text
    assert d.cloud_init.datasource_file in g.files
    assert seal.rstrip().endswith("systemctl poweroff")
    subprocess.run(["bash", "-n", "-c", seal], check=True)
    for script in g.commands:
        subprocess.run(["bash", "-n", "-c", script], check=True)  # every command is valid bash


@pytest.mark.parametrize("name", ["fedora-42", "fedora-44", "fedora-45", "rocky-9", "rocky-10"])
def test_fedora_rocky_quirks_reach_the_guest(tmp_path: Path, name: str):
    _, g, seal = run_stages(tmp_path, name)
    text = sent(g)
    assert "dnf -y -q upgrade --refresh" in g.commands
    assert "/etc/ssh/sshd_config.d/50-cloud-init.conf" in text
    assert "dnf -y -q install hyperv-daemons" in g.commands
    assert "grub2-mkconfig -o /boot/grub2/grub.cfg" in text
    assert "grep -q 'net.ifnames=0' /boot/loader/entries/*.conf" in g.commands
    assert "for i in /boot/initramfs-*.img; do l=$(lsinitrd" in text
    assert "debconf" not in text and "update-initramfs" not in text and "locale-gen" not in text
    assert not any(p.startswith("/etc/default/grub.d") for p in g.files)  # no drop-in folder there
    # the NIC's kernel parameters go into /etc/default/grub itself
    assert any(c.startswith("f=/etc/default/grub") and "net.ifnames=0" in c for c in g.commands)
    assert "/var/lib/NetworkManager/*.lease" in seal


def test_dracut_module_lines_are_written_once(tmp_path: Path):
    _, g, _ = run_stages(tmp_path, "fedora-42")
    script = next(c for c in g.commands if c.startswith("f=/etc/dracut.conf.d/"))
    conf = tmp_path / "90-gmi-hyperv.conf"
    local = script.replace("/etc/dracut.conf.d/90-gmi-hyperv.conf", str(conf))
    for _ in range(2):
        subprocess.run(["bash", "-euo", "pipefail", "-c", local], check=True)
    lines = conf.read_text().splitlines()
    assert lines[0] == 'add_drivers+=" hv_vmbus "' and len(lines) == 7


@pytest.mark.parametrize("name", ["opensuse-leap-15.6", "opensuse-leap-16.0", "opensuse-tumbleweed"])
def test_opensuse_quirks_reach_the_guest(tmp_path: Path, name: str):
    _, g, _ = run_stages(tmp_path, name)
    text = sent(g)
    autoremove = [c for c in g.commands if "packages --orphaned" in c]
    assert autoremove and all("grep -vxF -e openSUSE-release-dvd" in c for c in autoremove)
    first = [g.commands.index(c) for c in ("cloud-init init", "cloud-init modules --mode=config",
                                           "cloud-init modules --mode=final")]
    enable = next(i for i, c in enumerate(g.commands) if c.startswith("systemctl enable") and "cloud" in c)
    assert first == sorted(first) and first[-1] < enable
    assert "systemctl enable hv_kvp_daemon.service hv_vss_daemon.service" in g.commands
    assert "for i in /boot/initrd-*; do l=$(lsinitrd" in text
    if name == "opensuse-tumbleweed":
        assert "zypper --non-interactive dist-upgrade --auto-agree-with-licenses" in g.commands


def test_opensuse_builds_hv_daemons_from_source_when_no_package(tmp_path: Path):
    """The procedure's fallback: the package cannot be installed, so the daemons are
    built from the running kernel's tools/hv; the build record says how."""
    b, g, _ = run_stages(tmp_path, "opensuse-tumbleweed", fail="install --auto-agree-with-licenses hyper-v")
    built = b.record["hv_daemons_from_source"]
    assert built["kernel_version"] == "6.14"
    assert built["source_url"] == "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.14.tar.xz"
    assert "hv_fcopy_uio_daemon" in built["daemons"]
    assert any("make -C /usr/src/linux-6.14/tools/hv" in c for c in g.commands)
    assert "systemctl enable hv-kvp-daemon.service hv-vss-daemon.service" in g.commands
    assert b.record["hv_services"] == ["hv-kvp-daemon.service", "hv-vss-daemon.service"]
    assert b.record["versions"]["integration_services"].startswith("built from https://cdn.kernel.org/")


def test_debian_never_builds_from_source_even_when_the_package_fails(tmp_path: Path):
    with pytest.raises(AssertionError, match="check=True"):
        run_stages(tmp_path, "debian-12", fail="install hyperv-daemons")


@pytest.mark.parametrize("name", ["ubuntu-24.04", "ubuntu-25.04", "ubuntu-26.04"])
def test_ubuntu_quirks_reach_the_guest(tmp_path: Path, name: str):
    b, g, _ = run_stages(tmp_path, name)
    removal = next(c for c in g.commands if c.startswith("rm -fv "))
    for leftover in ("/etc/cloud/cloud-init.disabled", "/etc/cloud/cloud.cfg.d/99-installer.cfg",
                     "/etc/cloud/cloud.cfg.d/subiquity-disable-cloudinit-networking.cfg"):
        assert leftover in removal
    assert "locale-gen en_US.UTF-8" in g.commands
    assert not any("locale.gen" in c for c in g.commands)
    units = next(c for c in g.commands if c.startswith("systemctl enable") and "cloud" in c)
    assert all(u in units for u in b.distro.cloud_init.units)
    assert "/etc/network/interfaces" not in g.files  # netplan, not ifupdown
    assert re.search(r"systemctl enable hv-kvp-daemon\.service hv-vss-daemon\.service", sent(g))


def test_a_cloud_init_unit_the_guest_lacks_is_named_in_one_line(tmp_path: Path):
    """cloud-init 24.3 renamed its units and some distros patch that back out: a name
    the installed cloud-init lacks fails the stage naming the YAML and the unit."""
    import pytest

    from harness.errors import GmiError

    d = distro.load("ubuntu-25.04")
    b = Build(d, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    g = RecordingGuest()
    g.missing_unit = "cloud-init-main.service"
    b.guest = g  # type: ignore[assignment]
    with pytest.raises(GmiError, match=r"ubuntu-25\.04\.yml: cloud_init\.units lists "
                                        r"cloud-init-main\.service, which this cloud-init does not have"):
        s3.cloud_init(b)
    assert not any(c.startswith("systemctl enable") for c in g.commands)


# What a running system has and a root tree on the build host does not: the chroot's
# commands never ask for these (the host's kernel, a mounted ESP, a disk to trim, the
# host's DHCP client or journald).
LIVE_ONLY = ("uname -r", "mountpoint -q", "fstrim", "pkill", "journalctl --relinquish-var")


@pytest.mark.parametrize("name", ["debian-12", "debian-13"])
def test_in_a_chroot_every_step_runs_in_the_tree(tmp_path: Path, name: str):
    """--prepare=chroot: stages 2-6 run every step in the tree, in the stages' order
    (no first boot: the initramfs, update-grub and the EFI fallback copy happen there),
    and send nothing that needs a running system; the initramfs is configured by
    name (MODULES=list), never from the host's hardware (MODULES=dep)."""
    d = distro.load(name)
    b = Build(d, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b.creds = Credentials.generate(d.admin_user, "c")
    b.record["root_uuid"] = "0d7c3f52-1111-4222-8333-944455556666"
    g = RecordingGuest(live=False)
    b.guest = g  # type: ignore[assignment]
    for stage in (s2.update, s3.cloud_init, s4.hyperv, s5.cleanup):
        stage(b)
    offline = list(g.commands)
    for needs_live in LIVE_ONLY:
        assert not [c for c in offline if needs_live in c], needs_live
    # the kernels but the newest go in the tree (no restart: nothing runs there)
    assert any('linux-image-$newest' in c for c in offline)
    firsts = [next(i for i, c in enumerate(offline) if word in c)
              for word in ("update_initramfs=yes", "update-initramfs -u", "lsinitramfs",
                           "update-grub", "root=UUID=0d7c3f52-1111-4222-8333-944455556666 ",
                           "net.ifnames=0' /boot/grub/grub.cfg", "test -d /boot/efi",
                           "set timeout=0")]
    assert firsts == sorted(firsts)
    settings_file = g.files[d.update.initramfs_settings_file]
    assert "MODULES=list" in settings_file and "MODULES=dep" not in settings_file
    assert not any("MODULES=dep" in c for c in [*offline, *g.files.values()])
    modules = next(c for c in offline if d.hyperv_integration.initramfs_modules_file in c)
    assert all(m in modules for m in ("hv_vmbus", "hv_storvsc", "sd_mod", "ext4", "virtio_scsi"))
    # the build's random seed and wtmp: removed in the tree (nothing runs there to write
    # them again; the clone's boot makes its own)
    assert s5.remove_boot_records(live=False) in offline

    # Both paths send the same commands, but for the kernel lines (the chroot has no
    # running kernel to compare with) and what only a running system has.
    vm = RecordingGuest()
    b2 = Build(d, settings.resolve({}, env={}), object(), "r", tmp_path, tmp_path)  # type: ignore[arg-type]
    b2.creds, b2.guest = b.creds, vm  # type: ignore[assignment]
    b2.record["root_uuid"] = b.record["root_uuid"]
    for stage in (s2.update, s3.cloud_init, s4.hyperv, s5.cleanup):
        stage(b2)

    def same(commands: list[str]) -> list[str]:
        # (the boot records: a chroot has no writers to stop, a VM stops them first)
        return sorted({c for c in commands if "uname -r" not in c and "vmlinuz" not in c
                       and "fstrim" not in c and "/boot/efi" not in c
                       and c not in (s5.remove_boot_records(live=False), s5.remove_boot_records(live=True))})

    assert same(g.commands) == same(vm.commands)
    assert sum(c == d.boot.grub_update for c in g.commands) == 2
    assert sum(c == d.boot.grub_update for c in vm.commands) == 2
