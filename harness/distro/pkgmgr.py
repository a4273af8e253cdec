"""Package-manager families: the commands that differ between apt, dnf and zypper.

A distro names its family in its YAML; stages ask the family for shell commands and
never branch on the distro's name.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import ClassVar

from harness.errors import GmiError


def _q(items: Iterable[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


class Apt:
    """Debian and Ubuntu."""

    # What the family can do (asked by the catalogue's loader and Step 1, never its name):
    debootstrap: ClassVar[bool] = True  # debootstrap builds a root tree of it from its archive
    debconf: ClassVar[bool] = True  # answers preseeded with debconf-set-selections

    def __init__(self, keep: Iterable[str] = ()) -> None:
        # apt's autoremove only removes what was installed automatically: nothing to keep.
        self.keep = tuple(keep)

    package_format = "deb"  # what the release evidence reads: dpkg's database, purls pkg:deb
    env = "DEBIAN_FRONTEND=noninteractive"
    opts = "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
    # Build time only: dpkg unpacks without an fsync per file (a throwaway build VM;
    # the seal's sync and power-off make the image durable). Written by Steps 1-2,
    # removed by the clean-up stage, checked absent by the seal and the checks.
    build_only_files: dict[str, str] = {
        "/etc/dpkg/dpkg.cfg.d/zz-gmi-build-unsafe-io":
            "# gmi-harness, during the build only: no fsync per unpacked file\nforce-unsafe-io\n",
    }
    proxy_file = "/etc/apt/apt.conf.d/zz-gmi-build-proxy"

    def proxy_files(self, url: str) -> dict[str, str]:
        """Build time only: apt's http through the run's package cache at ``url`` (https
        goes direct); removed with the other build-only files."""
        return {self.proxy_file: "// gmi-harness, during the build only: the run's package "
                                 f'cache\nAcquire::http::Proxy "{url}";\n'}

    def refresh(self) -> str:
        return f"{self.env} apt-get -q update"

    def upgrade(self) -> str:
        # `apt-get upgrade` keeps back a kernel whose ABI changed; --with-new-pkgs
        # installs it, as the procedure's `apt upgrade` does.
        return f"{self.env} apt-get {self.opts} --with-new-pkgs upgrade"

    def autoremove(self) -> str:
        return f"{self.env} apt-get {self.opts} --purge autoremove"

    def clean(self) -> str:
        return "apt-get clean"

    def install(self, packages: Iterable[str]) -> str:
        return f"{self.env} apt-get {self.opts} install {_q(packages)}"

    def remove(self, packages: Iterable[str]) -> str:
        return f"{self.env} apt-get {self.opts} purge {_q(packages)}"

    def remove_other_kernels(self) -> str:
        """Purge every kernel image but the running one (apt's autoremove keeps the
        previous kernel on purpose; a GMI has no use for it)."""
        return (
            "running=$(uname -r); old=$(dpkg-query -W -f='${db:Status-Status} ${Package}\\n' "
            "'linux-image-[0-9]*' | awk -v r=\"linux-image-$running\" "
            "'$1==\"installed\" && $2!=r {print $2}' || true); "
            f"if [ -n \"$old\" ]; then {self.env} apt-get {self.opts} purge $old; fi"
        )

    def remove_kernels_but_newest(self, boot: str = "/boot") -> str:
        """Purge every kernel image but the newest installed one (in a chroot, where
        ``uname -r`` is the host's kernel)."""
        b = shlex.quote(boot)
        return (
            f"newest=$(ls {b}/vmlinuz-* | sed 's|^.*/vmlinuz-||' | sort -V | tail -n1); "
            "old=$(dpkg-query -W -f='${db:Status-Status} ${Package}\\n' 'linux-image-[0-9]*' | "
            "awk -v k=\"linux-image-$newest\" '$1==\"installed\" && $2!=k {print $2}' || true); "
            f"if [ -n \"$old\" ]; then {self.env} apt-get {self.opts} purge $old; fi"
        )

    def version_of(self, package: str) -> str:
        """Prints the installed version, or nothing (exit 1) when not installed."""
        return (
            f"dpkg-query -W -f='${{db:Status-Status}} ${{Version}}\\n' {shlex.quote(package)}"
            " 2>/dev/null | awk '$1==\"installed\"{print $2; f=1} END{exit !f}'"
        )

    def list_installed(self) -> str:
        return "dpkg-query -W -f='${db:Status-Status} ${Package} ${Version}\\n' | " \
               "awk '$1==\"installed\"{print $2, $3}'"

    def set_debconf(self, lines: Iterable[str]) -> str:
        body = "\n".join(lines)
        return f"printf '%s\\n' {shlex.quote(body)} | debconf-set-selections"


class _Rpm:
    """What dnf and zypper distros share: rpm queries; no debconf."""

    debootstrap: ClassVar[bool] = False
    debconf: ClassVar[bool] = False
    package_format = "rpm"  # rpm's database (rpm -qa), purls pkg:rpm
    # rpm has no per-file fsync switch that dnf or zypper expose: nothing to undo.
    build_only_files: dict[str, str] = {}

    def proxy_files(self, url: str) -> dict[str, str]:
        """No package cache for dnf and zypper yet (docs/distros.md: their equivalents)."""
        return {}

    def __init__(self, keep: Iterable[str] = ()) -> None:
        self.keep = tuple(keep)

    def version_of(self, package: str) -> str:
        """Prints the installed version, or nothing (exit 1) when not installed."""
        q = shlex.quote(package)
        return f"rpm -q --quiet {q} && rpm -q --qf '%{{VERSION}}-%{{RELEASE}}\\n' {q} | tail -n1"

    def list_installed(self) -> str:
        return "rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' | LC_ALL=C sort"

    def set_debconf(self, lines: Iterable[str]) -> str:
        raise GmiError(f"{type(self).__name__.lower()} distros have no debconf: "
                       "remove boot.debconf from the distro's YAML")

    def _refuse_kept(self, packages: Iterable[str]) -> None:
        kept = [p for p in packages if p in self.keep]
        if kept:
            raise GmiError(f"refusing to remove {kept[0]}: the distro's update.keep_packages "
                           "protects it (the procedure says removing it breaks the system)")


class Dnf(_Rpm):
    """Fedora, Rocky (dnf 4 and dnf 5 take the same commands here)."""

    opts = "-y -q"

    def refresh(self) -> str:
        return "dnf -q makecache --refresh"

    def upgrade(self) -> str:
        # The Fedora & Rocky note: dnf upgrade --refresh.
        return f"dnf {self.opts} upgrade --refresh"

    def autoremove(self) -> str:
        return f"dnf {self.opts} autoremove"

    def clean(self) -> str:
        return "dnf clean all"

    def install(self, packages: Iterable[str]) -> str:
        return f"dnf {self.opts} install {_q(packages)}"

    def remove(self, packages: Iterable[str]) -> str:
        packages = list(packages)
        self._refuse_kept(packages)
        return f"dnf {self.opts} remove {_q(packages)}"

    def remove_other_kernels(self) -> str:
        """Every install-only package (kernels) but the newest, which the update stage
        has just booted."""
        return ("old=$(dnf -q repoquery --installonly --latest-limit=-1); "
                f"if [ -n \"$old\" ]; then dnf {self.opts} remove $old; fi")

    remove_kernels_but_newest = remove_other_kernels


class Zypper(_Rpm):
    """openSUSE Leap and Tumbleweed."""

    zy = "zypper --non-interactive"

    def refresh(self) -> str:
        return f"{self.zy} refresh"

    def upgrade(self) -> str:
        return f"{self.zy} update --auto-agree-with-licenses"

    def orphans(self) -> str:
        """Names of orphaned packages (installed, in no enabled repository), minus the
        protected ones."""
        keep = "".join(f" -e {shlex.quote(k)}" for k in self.keep)
        drop = f" | grep -vxF{keep}" if keep else ""
        return (f"{self.zy} --quiet packages --orphaned | "
                "awk -F'|' '$1 ~ /^ *i/ {n=$3; gsub(/^[ \\t]+|[ \\t]+$/, \"\", n); print n}'"
                f"{drop} | LC_ALL=C sort -u")

    def autoremove(self) -> str:
        """The openSUSE note: remove orphaned packages, never the protected ones (the
        orphaned openSUSE-release-dvd)."""
        return (f"orphans=$({self.orphans()} || true); "
                f"if [ -n \"$orphans\" ]; then {self.zy} remove --clean-deps $orphans; fi")

    def clean(self) -> str:
        return f"{self.zy} clean --all"

    def install(self, packages: Iterable[str]) -> str:
        return f"{self.zy} install --auto-agree-with-licenses {_q(packages)}"

    def remove(self, packages: Iterable[str]) -> str:
        packages = list(packages)
        self._refuse_kept(packages)
        return f"{self.zy} remove --clean-deps {_q(packages)}"

    def remove_other_kernels(self) -> str:
        # zypp.conf's multiversion.kernels (latest, running) says which ones stay.
        return f"{self.zy} purge-kernels"

    remove_kernels_but_newest = remove_other_kernels


PackageManager = Apt | Dnf | Zypper
FAMILIES: dict[str, type[Apt] | type[Dnf] | type[Zypper]] = {"apt": Apt, "dnf": Dnf, "zypper": Zypper}


def family(name: str, keep: Iterable[str] = ()) -> PackageManager:
    """The package-manager family called ``name`` (see distros/*.yml ``family``);
    ``keep`` names packages its autoremove and remove must never touch."""
    try:
        cls = FAMILIES[name]
    except KeyError:
        raise GmiError(f"unknown package-manager family {name!r}; known: {', '.join(FAMILIES)}") from None
    return cls(keep)


def is_deb(family: str) -> bool:
    """Whether the family's packages are .debs (dpkg's database) rather than rpms."""
    return FAMILIES[family].package_format == "deb"
