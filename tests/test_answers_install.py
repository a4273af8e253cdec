"""The install-from-media path without booting anything: which method a build uses,
the media a backend gets (install_media), the QEMU arguments of an ISO or netboot
install, and the bounded wait for the installer's power-off."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
from pathlib import Path

import pytest
from host_tools import needs

from harness import distro
from harness.backends.hyperv.media import hyperv_media
from harness.backends.qemu import installer
from harness.backends.qemu.backend import installer_tools
from harness.backends.qemu.vm import QemuVM
from harness.build import Build, Credentials
from harness.errors import ConfigError, GuestTimeoutError
from harness.media import iso as volumes
from harness.media.install import install_media
from harness.settings import resolve

needs_xorriso = needs("xorriso")


def make_build(tmp_path: Path, name: str, **settings: str) -> Build:
    s = resolve({"iso_cache": str(tmp_path / "cache"), **settings}, env={})
    d = distro.load(name)
    workdir, logdir = tmp_path / "work", tmp_path / "logs"
    workdir.mkdir(exist_ok=True)
    logdir.mkdir(exist_ok=True)
    b = Build(d, s, object(), "r1", workdir, logdir)  # type: ignore[arg-type]
    b.creds = Credentials.generate(d.admin_user, "gmi-build-r1")
    b.progress = lambda line: None
    return b


def fake_iso(tmp_path: Path, label: str, files: dict[str, bytes]) -> tuple[Path, str]:
    src = tmp_path / f"src-{label}"
    for inside, data in files.items():
        (src / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (src / inside.lstrip("/")).write_bytes(data)
    iso = tmp_path / f"{label}.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-r", "-J", "-V", label, "-o", str(iso), str(src)],
                   check=True, capture_output=True)
    return iso, hashlib.sha256(iso.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, settings, expected", [
    ("debian-12", {}, "debootstrap"),
    ("debian-13", {}, "debootstrap"),
    ("debian-12", {"install_method": "netboot"}, "netboot"),
    ("debian-12", {"install_method": "iso"}, "iso"),
    ("debian-12", {"iso": "/x/debian.iso"}, "iso"),  # a local ISO given: install from it
    ("fedora-42", {}, "iso"),
    ("ubuntu-24.04", {}, "iso"),
    ("opensuse-tumbleweed", {}, "iso"),
])
def test_effective_method(tmp_path: Path, name, settings, expected):
    assert installer.effective_method(make_build(tmp_path, name, **settings)) == expected


@pytest.mark.parametrize("name, method, message", [
    ("fedora-42", "debootstrap", "fedora-42 cannot be installed with debootstrap"),
    ("ubuntu-24.04", "debootstrap", "ubuntu-24.04 cannot be installed with debootstrap"),
    ("rocky-9", "netboot", "--install-method=netboot is for the Debian installer"),
])
def test_impossible_methods_are_refused(tmp_path: Path, name, method, message):
    with pytest.raises(ConfigError, match=message):
        installer.effective_method(make_build(tmp_path, name, install_method=method))


def test_host_tools_follow_the_method(tmp_path: Path):
    assert "debootstrap" in installer_tools(make_build(tmp_path, "debian-12"))
    assert installer_tools(make_build(tmp_path, "debian-12", install_method="netboot")) == []
    assert installer_tools(make_build(tmp_path, "fedora-42")) == []
    assert installer_tools(make_build(tmp_path, "debian-12", install_method="iso")) == ["xorriso"]


def test_timeout_from_yaml_or_setting(tmp_path: Path):
    assert installer.timeout_s(make_build(tmp_path, "fedora-42")) == 180 * 60
    assert installer.timeout_s(make_build(tmp_path, "fedora-42", install_timeout="7")) == 7 * 60


def test_netboot_arguments_carry_the_preseed_in_the_initrd(tmp_path: Path):
    b = make_build(tmp_path, "debian-12", install_method="netboot")
    cache = tmp_path / "cache" / "debian-12-netboot"
    cache.mkdir(parents=True)
    for name, data in (("linux", b"kernel"), ("initrd.gz", b"\x1f\x8b installer initrd")):
        (cache / name).write_bytes(data)
        (cache / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest())
    args, source = installer.prepare_netboot(b)
    assert args[:2] == ["-kernel", str(cache / "linux")]
    initrd = Path(args[args.index("-initrd") + 1])
    assert initrd.read_bytes().startswith(b"\x1f\x8b installer initrd")
    appended = gzip.decompress(initrd.read_bytes()[len(b"\x1f\x8b installer initrd"):])
    assert b"preseed.cfg" in appended and b"passwd/root-password-crypted" in appended
    assert args[args.index("-append") + 1].startswith("auto=true priority=critical")
    assert source.startswith("http://deb.debian.org/debian/dists/bookworm/main/installer-amd64")
    assert b.record["answer_files"] == ["preseed.cfg"]


@needs_xorriso
def test_install_media_for_kickstart_with_a_local_iso(tmp_path: Path):
    iso, sha = fake_iso(tmp_path, "Fedora-S-dvd-x86_64-42",
                        {"/images/pxeboot/vmlinuz": b"k", "/images/pxeboot/initrd.img": b"i"})
    b = make_build(tmp_path, "fedora-42", iso=str(iso), iso_sha256=sha)
    im = install_media(b)
    assert (im.install_iso, im.install_sha256, im.answer_label) == (iso, sha, "OEMDRV")
    assert im.official_sha256 == sha
    assert im.boot_command == ""  # Anaconda finds OEMDRV by itself
    assert im.answer_iso is not None
    label, files = volumes.read_volume(im.answer_iso)
    assert label == "OEMDRV" and list(files) == ["ks.cfg"]
    assert "inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-42" in im.kernel_args
    assert "inst.ks=hd:LABEL=OEMDRV:/ks.cfg" in im.kernel_args
    args, _ = installer.prepare_iso(b)
    assert f"file={iso},if=none,id=inst,media=cdrom,readonly=on" in args
    assert f"file={im.answer_iso},if=none,id=answers,media=cdrom,readonly=on" in args
    assert Path(args[args.index("-kernel") + 1]).read_bytes() == b"k"
    assert Path(args[args.index("-initrd") + 1]).read_bytes() == b"i"


@needs_xorriso
def test_install_media_for_ubuntu_gives_a_boot_command_and_a_cidata_seed(tmp_path: Path):
    iso, sha = fake_iso(tmp_path, "Ubuntu-Server 24.04.3 LTS amd64",
                        {"/casper/vmlinuz": b"k", "/casper/initrd": b"i"})
    im = install_media(make_build(tmp_path, "ubuntu-24.04", iso=str(iso), iso_sha256=sha))
    assert "autoinstall" in im.boot_command and im.boot_command.endswith("boot<enter>")
    assert im.answer_iso is not None and volumes.read_volume(im.answer_iso)[0] == "cidata"
    assert im.kernel_args.startswith("autoinstall")


@needs_xorriso
def test_install_media_for_debian_remasters_the_iso(tmp_path: Path):
    iso, sha = fake_iso(tmp_path, "Debian 12.12.0 amd64 n",
                        {"/boot/grub/grub.cfg": b"menuentry 'Install' {}\n", "/install.amd/vmlinuz": b"k"})
    b = make_build(tmp_path, "debian-12", iso=str(iso), iso_sha256=sha)
    im = install_media(b)
    assert im.answer_iso is None and im.install_iso != iso and im.official_sha256 == sha
    assert im.install_sha256 == hashlib.sha256(im.install_iso.read_bytes()).hexdigest() != sha
    volumes.extract(im.install_iso, "/preseed.cfg", tmp_path / "p")
    assert "passwd/root-password-crypted" in (tmp_path / "p").read_text()
    assert im.boot_command == ""


def test_install_media_refuses_a_build_without_credentials(tmp_path: Path):
    b = make_build(tmp_path, "fedora-42")
    b.creds = None
    with pytest.raises(Exception, match="no credentials yet"):
        install_media(b)


def _vm(tmp_path: Path, argv: list[str]) -> QemuVM:
    vm = QemuVM(name="installer", workdir=tmp_path, disk=tmp_path / "d.qcow2", disk_format="qcow2",
                vars_fd=tmp_path / "v.fd", secure_boot=False, accel="tcg", cpus=1, memory_mb=512,
                extra=["-no-reboot"], serial_log=tmp_path / "installer.serial.log")
    vm.serial_log.write_text("d-i: Installing the base system\nSelect and install software: 42%\n")
    vm.proc = subprocess.Popen(argv)
    return vm


def test_wait_for_poweroff_returns_when_the_installer_powers_off(tmp_path: Path):
    b = make_build(tmp_path, "debian-12")
    vm = _vm(tmp_path, ["true"])
    installer.wait_for_poweroff(b, vm, timeout=300, every=0.2)  # returns as soon as it is off
    assert not vm.is_running()


def test_wait_for_poweroff_times_out_with_the_console_tail(tmp_path: Path):
    b = make_build(tmp_path, "debian-12")
    lines: list[str] = []
    b.progress = lines.append
    vm = _vm(tmp_path, ["sleep", "60"])
    with pytest.raises(GuestTimeoutError) as exc:
        installer.wait_for_poweroff(b, vm, timeout=0.6, every=0.2)
    message = str(exc.value)
    assert "did not power off within" in message and "Select and install software: 42%" in message
    assert "--install-timeout" in message and "\n" not in message
    assert not vm.is_running()  # stopped, not left behind
    assert lines and "installing for 0 min: Select and install software: 42%" in lines[0]


def test_extra_qemu_arguments_come_last(tmp_path: Path):
    vm = _vm(tmp_path, ["true"])
    vm.proc.wait()  # type: ignore[union-attr]
    cmd = vm.command()
    assert cmd[-1] == "-no-reboot"
    assert "OVMF_CODE_4M.fd" in " ".join(cmd) and "secure,value=on" not in " ".join(cmd)


@pytest.mark.parametrize("name", [n for n in distro.known_distros() if distro.load(n).install.boot_command])
def test_boot_commands_are_what_the_hyperv_backend_can_type(name: str):
    from harness.backends.hyperv.media import key_actions

    actions = key_actions(distro.load(name).install.boot_command)
    assert actions[0] == {"Kind": "text", "Value": "c"}  # GRUB's command line
    assert actions[1] == {"Kind": "wait", "Value": 1000}
    assert actions[-1] == {"Kind": "key", "Value": 0x0D}  # <enter>
    assert {"Kind": "text", "Value": "boot"} in actions  # linux ..., initrd ..., boot


@needs_xorriso
def test_hyperv_media_from_the_catalogue(tmp_path: Path):
    """HyperVBackend.media = hyperv_media: the ISO at check time, then the ISO,
    its SHA-256, the answer volume and the boot command at provisioning."""
    iso, sha = fake_iso(tmp_path, "Ubuntu-Server 24.04.3 LTS amd64",
                        {"/casper/vmlinuz": b"k", "/casper/initrd": b"i"})
    b = make_build(tmp_path, "ubuntu-24.04", iso=str(iso), iso_sha256=sha)
    creds, b.creds = b.creds, None
    early = hyperv_media(b)
    early.check()  # what HyperVBackend.check_host asks
    assert (early.iso, early.sha256, early.answer_iso) == (str(iso), sha, "")
    b.creds = creds
    m = hyperv_media(b)
    m.check()
    assert (m.iso, m.sha256) == (str(iso), sha)
    assert volumes.read_volume(Path(m.answer_iso))[0] == "cidata"
    assert m.boot_command == b.distro.install.boot_command and m.powers_off


def test_hyperv_settings_still_win(tmp_path: Path):
    b = make_build(tmp_path, "ubuntu-24.04", hyperv_install_iso="D:\\iso\\u.iso",
                   hyperv_install_sha256="a" * 64)
    m = hyperv_media(b)
    assert m.iso == "D:\\iso\\u.iso" and m.sha256 == "a" * 64


def test_wait_for_poweroff_stops_an_installer_stuck_at_a_dialog(tmp_path: Path):
    """Seen here: d-i at a mirror that serves no .udeb files waits at this dialog forever."""
    b = make_build(tmp_path, "debian-12")
    vm = _vm(tmp_path, ["sleep", "60"])
    vm.serial_log.write_text(  # type: ignore[union-attr]
        " lqqqqqqqqqqqqqqqqqu [!!] Download installer components tqqqqqqqqqqqqqqqqqqkx\n"
        " x The installer failed to download a file from the mirror. x\n")
    with pytest.raises(GuestTimeoutError) as exc:
        installer.wait_for_poweroff(b, vm, timeout=30, every=0.1)
    assert "'[!!] Download installer components'" in str(exc.value)
    assert not vm.is_running()


def test_a_passing_installer_screen_is_not_a_dialog():
    assert installer.waiting_dialog("Select and install software: 42%\n") == ""
    assert installer.waiting_dialog("[!!] Partition disks   \n") == "Partition disks"
