"""Package-manager families (apt, dnf, zypper) and the Hyper-V daemons' build from
kernel source: the commands they produce, run through bash against fake tools."""

from __future__ import annotations

import subprocess

import pytest
from harness.stages import hv_from_source
from host_tools import needs

from harness import distro
from harness.distro import HvFromSource
from harness.distro.pkgmgr import Apt, Dnf, Zypper, family
from harness.errors import GmiError

METHODS = ("refresh", "upgrade", "autoremove", "clean", "install", "remove",
           "remove_other_kernels", "version_of", "list_installed", "set_debconf")


def bash(script: str) -> str:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("cls", [Apt, Dnf, Zypper])
def test_every_family_has_the_same_methods(cls):
    for m in METHODS:
        assert callable(getattr(cls, m)), f"{cls.__name__}.{m}"


def test_family_by_name_and_unknown_name():
    assert isinstance(family("apt"), Apt) and isinstance(family("dnf"), Dnf)
    assert family("zypper", ["x"]).keep == ("x",)
    with pytest.raises(GmiError, match="unknown package-manager family 'pacman'; known: apt, dnf, zypper"):
        family("pacman")


@pytest.mark.parametrize("name", distro.known_distros())
def test_every_catalogued_family_resolves(name: str):
    d = distro.load(name)
    pm = family(d.family, d.update.keep_packages)
    assert d.update.sudo_package in pm.install([d.update.sudo_package])


def test_dnf_commands():
    pm = Dnf()
    assert pm.upgrade() == "dnf -y -q upgrade --refresh"  # the Fedora & Rocky note
    assert pm.install(["hyperv-daemons", "a b"]) == "dnf -y -q install hyperv-daemons 'a b'"
    assert pm.autoremove() == "dnf -y -q autoremove"
    assert pm.clean() == "dnf clean all"
    assert pm.refresh() == "dnf -q makecache --refresh"
    with pytest.raises(GmiError, match="no debconf"):
        pm.set_debconf(["x"])


def test_dnf_removes_every_kernel_but_the_newest():
    fake = ("dnf() { if [ \"$2\" = repoquery ]; then echo kernel-core-6.14.1-300.fc42.x86_64; "
            "else echo DNF \"$@\"; fi; }\n")
    assert bash(fake + Dnf().remove_other_kernels()).strip() == \
        "DNF -y -q remove kernel-core-6.14.1-300.fc42.x86_64"
    none = "dnf() { if [ \"$2\" = repoquery ]; then :; else echo DNF \"$@\"; fi; }\n"
    assert bash(none + Dnf().remove_other_kernels()).strip() == ""


@pytest.mark.parametrize("cls", [Dnf, Zypper])
def test_rpm_version_of(cls):
    fake = ("rpm() { if [ \"$1\" = -q ] && [ \"$2\" = --quiet ]; then [ \"$3\" = cloud-init ]; "
            "else echo 24.4-1.fc42; fi; }\n")
    assert bash(fake + cls().version_of("cloud-init")).strip() == "24.4-1.fc42"
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", fake + cls().version_of("nope")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stdout == ""


ORPHANED = """\
S  | Repository | Name                 | Version        | Arch
---+------------+----------------------+----------------+-------
i  | @System    | openSUSE-release-dvd | 15.6-lp156.1.1 | x86_64
i+ | @System    | old-tool             | 1.0-1.1        | x86_64
i  | @System    | other-lib            | 2.0-1.1        | noarch
"""


def fake_zypper(tmp_path, listing: str) -> str:
    (tmp_path / "orphaned").write_text(listing)
    return (f"zypper() {{ if [ \"$3\" = packages ]; then cat {tmp_path}/orphaned; "
            "else echo ZYPPER \"$@\"; fi; }\n")


def test_zypper_autoremove_keeps_the_release_dvd_package(tmp_path):
    """The openSUSE note: remove orphaned packages, never openSUSE-release-dvd."""
    pm = Zypper(keep=["openSUSE-release-dvd"])
    fake = fake_zypper(tmp_path, ORPHANED)
    out = bash(fake + pm.autoremove()).strip()
    assert out.startswith("ZYPPER --non-interactive remove --clean-deps")
    assert "old-tool other-lib" in out and "openSUSE-release-dvd" not in out


def test_zypper_autoremove_with_nothing_orphaned_removes_nothing(tmp_path):
    pm = Zypper(keep=["openSUSE-release-dvd"])
    fake = fake_zypper(tmp_path, "\n".join(ORPHANED.splitlines()[:3]) + "\n")
    assert bash(fake + pm.autoremove()).strip() == ""


def test_zypper_refuses_to_remove_a_kept_package():
    with pytest.raises(GmiError, match="refusing to remove openSUSE-release-dvd"):
        Zypper(keep=["openSUSE-release-dvd"]).remove(["vim", "openSUSE-release-dvd"])
    assert Zypper().upgrade() == "zypper --non-interactive update --auto-agree-with-licenses"
    assert Zypper().remove_other_kernels() == "zypper --non-interactive purge-kernels"


@pytest.mark.parametrize("release, kver, fcopy", [
    ("6.1.0-13-amd64", "6.1", "hv_fcopy_daemon"),
    ("6.14.0-27-generic", "6.14", "hv_fcopy_uio_daemon"),
    ("6.12.48+deb13-amd64", "6.12.48", "hv_fcopy_uio_daemon"),
    ("6.4.0-150600.23.25-default", "6.4", "hv_fcopy_daemon"),
    ("6.9.12-200.fc40.x86_64", "6.9.12", "hv_fcopy_daemon"),
    ("6.10.0-1-default", "6.10", "hv_fcopy_uio_daemon"),
])
def test_kernel_version_and_fcopy_daemon(release, kver, fcopy):
    """The procedure: KVER from uname -r with a trailing .0 dropped; hv_fcopy_daemon
    became hv_fcopy_uio_daemon in newer kernels."""
    assert hv_from_source.kernel_version(release) == kver
    assert hv_from_source.fcopy_daemon(kver, HvFromSource()) == fcopy


def test_kernel_version_refuses_nonsense():
    with pytest.raises(GmiError, match=r"cannot tell the kernel\.org version"):
        hv_from_source.kernel_version("weird")


def test_build_from_source_plan_is_recorded_and_valid_shell():
    built = hv_from_source.plan("6.14.0-27-generic", HvFromSource(), "zypper install -y gcc make")
    assert built.source_url == "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.14.tar.xz"
    assert built.daemons == ("hv_kvp_daemon", "hv_vss_daemon", "hv_fcopy_uio_daemon")
    script = built.script
    assert "make -C /usr/src/linux-6.14/tools/hv" in script
    assert "ExecStart=/usr/local/sbin/hv_fcopy_uio_daemon -n" in script
    assert "systemctl enable hv-kvp-daemon.service hv-vss-daemon.service" in script
    assert script.rstrip().endswith("rm -rf /usr/src/linux-6.14 /usr/src/linux-6.14.tar.xz")
    subprocess.run(["bash", "-n", "-c", script], check=True)
    rec = built.record()
    assert rec["kernel_version"] == "6.14" and rec["steps"][0] == "zypper install -y gcc make"
    assert rec["enabled"] == ["hv-kvp-daemon.service", "hv-vss-daemon.service"]


def test_build_from_source_units_are_written_where_systemd_reads_them(tmp_path):
    """Run the unit-writing steps for real into a temp root."""
    built = hv_from_source.plan("6.1.0-13-amd64", HvFromSource(), "true")
    units = [s for s in built.steps if s.startswith("cat > /etc/systemd/system/")]
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    bash("\n".join(u.replace("/etc/", f"{tmp_path}/etc/") for u in units))
    kvp = (tmp_path / "etc/systemd/system/hv-kvp-daemon.service").read_text()
    assert "ExecStart=/usr/local/sbin/hv_kvp_daemon -n" in kvp and "WantedBy=multi-user.target" in kvp
    # off Hyper-V (the QEMU clone) the unit is skipped, not restart-looped into "failed"
    assert "ConditionVirtualization=microsoft" in kvp and "Restart=on-failure" in kvp
    assert "hv_fcopy_daemon -n" in (tmp_path / "etc/systemd/system/hv-fcopy-daemon.service").read_text()


@needs("systemd-analyze")
def test_build_from_source_units_pass_systemds_own_verify(tmp_path):
    built = hv_from_source.plan("6.1.0-13-amd64", HvFromSource(), "true")
    units = [s for s in built.steps if s.startswith("cat > /etc/systemd/system/")]
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    bash("\n".join(u.replace("/etc/", f"{tmp_path}/etc/") for u in units))
    check = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            str(tmp_path / "etc/systemd/system/hv-kvp-daemon.service")],
                           capture_output=True, text=True)
    assert "Unknown key" not in check.stderr and "Unknown section" not in check.stderr, check.stderr
