"""Package-manager families: the commands that differ between apt, dnf and zypper.

A distro names its family in its YAML; stages ask the family for shell commands and
never branch on the distro's name.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def _q(items: Iterable[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


class Apt:
    """Debian and Ubuntu."""

    env = "DEBIAN_FRONTEND=noninteractive"
    opts = "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

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


FAMILIES = {"apt": Apt}


def family(name: str) -> Apt:
    """The package-manager family called ``name`` (see distros/*.yml ``family``)."""
    return FAMILIES[name]()
