"""The whole catalogue: every entry loads, carries what the issue asks of it, and the
quirks the procedure names are there as data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import distro
from harness.errors import DistroError

ALL = distro.known_distros()
EXPECTED = {
    "debian-12": ("Debian", "12", "apt", "debootstrap", "preseed"),
    "debian-13": ("Debian", "13", "apt", "debootstrap", "preseed"),
    "ubuntu-24.04": ("Ubuntu", "24.04", "apt", "iso", "autoinstall"),
    "ubuntu-25.04": ("Ubuntu", "25.04", "apt", "iso", "autoinstall"),
    "ubuntu-26.04": ("Ubuntu", "26.04", "apt", "iso", "autoinstall"),
    "fedora-42": ("Fedora", "42", "dnf", "iso", "kickstart"),
    "fedora-44": ("Fedora", "44", "dnf", "iso", "kickstart"),
    "fedora-45": ("Fedora", "45", "dnf", "iso", "kickstart"),
    "rocky-9": ("Rocky", "9", "dnf", "iso", "kickstart"),
    "rocky-10": ("Rocky", "10", "dnf", "iso", "kickstart"),
    "opensuse-leap-15.6": ("OpenSUSE", "15.6", "zypper", "iso", "autoyast"),
    "opensuse-leap-16.0": ("OpenSUSE", "16.Beta", "zypper", "iso", "agama"),
    "opensuse-tumbleweed": ("OpenSUSE", "Tumbleweed", "zypper", "iso", "autoyast"),
}
# Past their end of life on the day this catalogue was brought up to date (2026-12-07).
ENDED = {"ubuntu-25.04": "2026-01-17", "fedora-42": "2026-05-28", "opensuse-leap-15.6": "2026-04-30"}


def test_catalogue_is_complete():
    assert sorted(EXPECTED) == ALL


@pytest.mark.parametrize("name", ALL)
def test_entry_names_family_method_and_answer(name: str):
    d = distro.load(name)
    os_, version, fam, method, answer = EXPECTED[name]
    assert (d.vmgenie.os, d.vmgenie.version) == (os_, version)
    assert d.vmgenie.archive == f"GMI-{os_}-{version}.zip"
    assert (d.family, d.install.method, d.install.answer) == (fam, method, answer)
    assert d.hyperv.generation == 2 and d.hyperv.secure_boot
    assert d.hyperv.secure_boot_template == "MicrosoftUEFICertificateAuthority"
    assert not d.hyperv.procedure_turns_secure_boot_off


@pytest.mark.parametrize("name", ALL)
def test_entry_finds_its_official_iso_in_a_signed_listing(name: str):
    d = distro.load(name)
    assert d.iso is not None
    # No pinned file names or invented hashes: a release folder, a pattern, a listing.
    assert d.iso.folder.startswith("https://") and d.iso.pattern.endswith(".iso")
    assert "{version}" in d.iso.pattern and d.iso.checksums
    host = d.iso.folder.split("/")[2]
    assert host in {"cdimage.debian.org", "releases.ubuntu.com", "download.fedoraproject.org",
                    "download.rockylinux.org", "download.opensuse.org"}, host
    # Every listing is signed, or the YAML says why upstream publishes no signature.
    assert (d.iso.signature and d.iso.fingerprints and (d.iso.keyrings or d.iso.key_url)) or d.iso.unsigned
    assert d.iso.fingerprints and d.iso.key_source.startswith("https://")


@pytest.mark.parametrize("name", ALL)
def test_answer_file_installs_ssh_sudo_and_hyperv_daemons(name: str):
    d = distro.load(name)
    pkgs = set(d.install.packages)
    assert pkgs & {"openssh-server", "openssh"}
    assert d.update.sudo_package in pkgs
    assert set(d.hyperv_integration.packages) <= pkgs


@pytest.mark.parametrize("name", [n for n in ALL if distro.load(n).install.method == "iso"])
def test_iso_installs_boot_the_installer_kernel_directly_on_qemu(name: str):
    d = distro.load(name)
    assert d.install.kernel.startswith("/") and d.install.initrd.startswith("/")
    assert d.install.kernel_args
    assert d.install.boot_command or d.install.answer == "kickstart"


@pytest.mark.parametrize("name", ALL)
def test_entry_says_when_its_release_ends_and_where_that_is_published(name: str):
    """Every entry carries its end of life with a source (Tumbleweed: rolling); the
    releases past it, and only those, were so on the day the catalogue was updated."""
    from datetime import date

    from harness.distro import lifecycle

    d = distro.load(name)
    assert d.support is not None and d.support.source_url.startswith("https://")
    assert d.support.rolling == (name == "opensuse-tumbleweed")
    updated = lifecycle.status(d, date(2026, 12, 7))
    assert updated.ended == (name in ENDED)
    if name in ENDED:
        assert d.support.end_of_life == ENDED[name]
        assert d.iso is not None and d.iso.archive  # where its ISO goes after the end


def test_ubuntu_quirks():
    for name in ("ubuntu-24.04", "ubuntu-25.04", "ubuntu-26.04"):
        ci = distro.load(name).cloud_init
        assert {"cloud-init-local.service", "cloud-config.service", "cloud-final.service"} <= set(ci.units)
        assert "/etc/cloud/cloud-init.disabled" in ci.remove_files
        assert "/etc/cloud/cloud.cfg.d/99-installer.cfg" in ci.remove_files
        # our file must sort after 99-installer.cfg
        name_ = ci.datasource_file.rsplit("/", 1)[1]
        assert sorted(["99-installer.cfg", "99-gmi.cfg", name_])[-1] == name_
        assert "autoinstall" in distro.load(name).install.kernel_args


@pytest.mark.parametrize("name", ["fedora-42", "fedora-44", "fedora-45", "rocky-9", "rocky-10"])
def test_fedora_rocky_quirks(name: str):
    d = distro.load(name)
    assert d.family == "dnf" and "hyperv-daemons" in d.hyperv_integration.packages
    assert "/etc/ssh/sshd_config.d/50-cloud-init.conf" in d.cloud_init.remove_files
    assert d.boot.grub_update.startswith("grub2-mkconfig -o /boot/grub2/grub.cfg")
    assert d.hyperv_integration.initramfs_list == "lsinitrd"
    assert d.hyperv_integration.initramfs_update.startswith("dracut")
    assert d.update.initramfs_conf == ""  # no initramfs-tools
    assert "wheel" in d.checks.seed.groups and d.update.sudo_group == "wheel"
    assert d.install.answer_label == "OEMDRV"


@pytest.mark.parametrize("name", ["opensuse-leap-15.6", "opensuse-leap-16.0", "opensuse-tumbleweed"])
def test_opensuse_quirks(name: str):
    d = distro.load(name)
    assert "openSUSE-release-dvd" in d.update.keep_packages
    assert d.hyperv_integration.services[:2] == ("hv_kvp_daemon.service", "hv_vss_daemon.service")
    assert d.cloud_init.first_run[0] == "cloud-init init"
    assert any(c.startswith("cloud-init modules --mode=config") for c in d.cloud_init.first_run)
    assert d.hyperv_integration.from_source.mode == "fallback"
    assert d.boot.grub_settings["GRUB_TIMEOUT"] == "0"


def test_debian_keeps_its_behaviour_fields():
    """What the stages read today for Debian is unchanged by the schema additions."""
    for name in ("debian-12", "debian-13"):
        d = distro.load(name)
        assert d.install.method == "debootstrap" and d.install.suite
        assert d.hyperv_integration.initramfs_modules_line == "{module}"
        assert d.hyperv_integration.initramfs_path == "/boot/initrd.img-{kernel}"
        assert d.boot.cmdline_glob == "/boot/grub/grub.cfg"
        assert d.cleanup.seal_remove_paths == () and d.update.keep_packages == ()
        assert d.update.upgrade == "" and d.cloud_init.first_run == ()
        assert d.hyperv_integration.from_source.mode == "never"
        assert d.checks.seed.upgrade_command == ("apt update -y", "apt upgrade -y")
        assert d.checks.locale_file == "/etc/default/locale"
        assert d.netboot is not None and d.netboot.checksum_url.endswith("/images/SHA256SUMS")


def _variant(tmp_path: Path, name: str, change) -> Path:
    data = yaml.safe_load((distro.DISTROS_DIR / f"{name}.yml").read_text())
    change(data)
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name, change, message", [
    ("fedora-42", lambda d: d.pop("iso"), r"key 'iso': missing \(install.method iso"),
    ("fedora-42", lambda d: d["install"].__setitem__("method", "pxe"), r"unknown install method 'pxe'"),
    ("fedora-42", lambda d: d["install"].__setitem__("answer_label", "cidata"),
     r"install.answer_label': kickstart is read from a volume labelled 'OEMDRV'"),
    ("fedora-42", lambda d: d["install"].__setitem__("answer", "unattend"), r"unknown answer file kind"),
    ("fedora-42", lambda d: d["iso"].pop("checksums"), r"key 'iso.checksums': missing"),
    ("fedora-42", lambda d: d["iso"].__setitem__("pattern", "Fedora.iso"), r"iso.pattern': a file name "
     r"with \{version\} once"),
    ("fedora-42", lambda d: d["iso"].__setitem__("folder", "ftp://x/"), r"iso.folder': expected an http"),
    ("fedora-42", lambda d: d["iso"].pop("signature"), r"iso.signature': missing: .* iso.unsigned"),
    ("fedora-42", lambda d: d["iso"].__setitem__("fingerprints", ["B0F4 9504"]),
     r"iso.fingerprints': expected 40 hex digits"),
    ("fedora-42", lambda d: d["iso"].__setitem__("url", "https://x/y.iso"), r"key 'iso.url': unknown key"),
    ("fedora-42", lambda d: d["install"].__setitem__("answer_rules", "autoyast-tumbleweed"),
     r"install.answer_rules': a kickstart file is checked by pykickstart-"),
    ("fedora-42", lambda d: d["install"].__setitem__("method", "debootstrap"),
     r"debootstrap cannot install the dnf family"),
    ("fedora-42", lambda d: d["boot"].__setitem__("debconf", ["x y z"]), r"the dnf family has no debconf"),
    ("fedora-42", lambda d: d["hyperv_integration"].pop("udev_rule_glob"),
     r"udev_rule_glob': missing \(enable_services false"),
    ("opensuse-leap-15.6", lambda d: d["hyperv_integration"]["from_source"].__setitem__("mode", "maybe"),
     r"from_source.mode': expected one of never, fallback, always"),
    ("opensuse-leap-15.6", lambda d: d["hyperv_integration"].__setitem__("initramfs_modules_line", "x"),
     r"must contain \{module\}"),
    ("fedora-42", lambda d: d["install"].__setitem__("kernel_args", "inst.ks={ks_label}"),
     r"install.kernel_args': unknown placeholder \{ks_label\}"),
    ("debian-12", lambda d: d["install"].pop("apt_sources"),
     r"install.apt_sources': missing \(install.method"),
    ("debian-12", lambda d: d.__setitem__("iso", "https://x"), r"key 'iso': expected a mapping, got str"),
    ("ubuntu-24.04", lambda d: d["iso"].__setitem__("mirror", "x"), r"key 'iso.mirror': unknown key"),
    ("fedora-42", lambda d: d["support"].__setitem__("end_of_life", "May 2026"),
     r"support.end_of_life': expected a date YYYY-MM-DD, got 'May 2026'"),
    ("opensuse-tumbleweed", lambda d: d["support"].__setitem__("end_of_life", "2030-01-01"),
     r"support.end_of_life': a date \(YYYY-MM-DD\), or rolling: true .* not both"),
    ("ubuntu-24.04", lambda d: d["support"].pop("source_url"), r"support.source_url': missing"),
    ("opensuse-leap-16.0", lambda d: d["iso"].__setitem__("signature", "{name}.asc"),
     r"iso.signature': the only placeholder is \{listing\}"),
    ("fedora-44", lambda d: d["iso"].__setitem__("checksums", "F-{version}-{version}-CHECKSUM"),
     r"iso.checksums': \{version\} at most once"),
])
def test_bad_entries_fail_with_file_and_key(tmp_path: Path, name, change, message):
    path = _variant(tmp_path, name, change)
    with pytest.raises(DistroError, match=message) as exc:
        distro.load_file(path)
    assert str(path) in str(exc.value)


def test_collect_only_with_all_lists_every_distro(tmp_path: Path):
    """The issue's "done when": pytest --distro=all --collect-only lists every distro."""
    root = distro.DISTROS_DIR.parent
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "--distro=all", "--collect-only", "-q",
         "-p", "no:cacheprovider", f"--out={tmp_path}"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "GMI_SCRATCH": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ALL:
        assert f"test_os_release_matches_the_distro[{name}]" in proc.stdout, name
    assert not (tmp_path / "runs").exists()  # collecting writes nothing


def test_the_catalogue_has_one_reference_profile(tmp_path: Path):
    """A GMI not in the catalogue is judged by the profile whose YAML says so (a fact of
    the catalogue, not a distro name in the validator's code)."""
    from harness.archive import validate

    assert distro.reference_profile().name == "debian-12"
    assert [n for n in ALL if distro.load(n).reference] == ["debian-12"]
    generic = validate.distro_for(tmp_path / "GMI-Slackware-15.zip")
    assert generic.generic and generic.reference and generic.vmgenie.os == "Slackware"
    for text, count in (("", "0 distros"), ("reference: true\n", "2 distros")):
        folder = tmp_path / count.replace(" ", "-")
        folder.mkdir()
        for name in ("debian-12", "debian-13"):
            source = (distro.DISTROS_DIR / f"{name}.yml").read_text().replace("reference: true\n", "")
            (folder / f"{name}.yml").write_text(source + text)
        with pytest.raises(DistroError, match=f"{count} say 'reference: true'.*exactly one must"):
            distro.reference_profile(folder)
