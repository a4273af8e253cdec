"""The image's installed packages, read from the image itself at the seal: dpkg's status
file and each package's copyright file (apt family), or ``rpm -qa`` (dnf and zypper
families). Never the host's: the seal runs these in the build VM, on either backend, and
keeps what they printed in the build's evidence folder; the SBOMs are written from that.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.distro.pkgmgr import is_deb
from harness.errors import GmiError
from harness.evidence import licenses
from harness.evidence.licenses import Licence

if TYPE_CHECKING:
    from harness.build import Build

# Recorded at the seal, in the build's evidence folder.
APT_RECORD = "dpkg-status-and-copyright.tar.gz"
RPM_RECORD = "rpm-qa.tsv"
RPM_FIELDS = ("NAME", "EPOCHNUM", "VERSION", "RELEASE", "ARCH", "SOURCERPM", "LICENSE")
DPKG_STATUS = "var/lib/dpkg/status"

# What the build VM runs. apt: dpkg's status file and every package's copyright file
# (dereferenced: a package's doc folder may be a link to another's), as a gzipped tar in
# base64 lines. rpm: one tab-separated line per package (gpg-pubkey entries are the
# keys rpm trusts, not software: left out).
APT_SCRIPT = (
    "cd /\n"
    "{ printf '%s\\0' " + DPKG_STATUS + "; "
    "find -L usr/share/doc -mindepth 2 -maxdepth 2 -name copyright -type f -print0 2>/dev/null; } "
    "| tar --dereference --null -T - -czf - | base64 -w 120"
)
RPM_SCRIPT = (
    "rpm -qa --qf '" + "\\t".join(f"%{{{f}}}" for f in RPM_FIELDS) + "\\n' "
    "| grep -v '^gpg-pubkey\t' | LC_ALL=C sort"
)


# What the clone has installed, one ``name:arch`` a line (the SBOM check compares).
CLONE_LISTING = {
    "deb": "dpkg-query -W -f='${db:Status-Status} ${Package}:${Architecture}\\n' "
           "| awk '$1 == \"installed\" {print $2}'",
    "rpm": "rpm -qa --qf '%{NAME}:%{ARCH}\\n' | grep -v '^gpg-pubkey:'",
}


def clone_listing(family: str) -> str:
    return CLONE_LISTING["deb" if is_deb(family) else "rpm"]


class InventoryError(GmiError):
    """The image's package list cannot be read."""


@dataclass(frozen=True)
class Package:
    """One installed package as its package manager knows it."""

    name: str
    version: str  # as the package manager prints it (deb: [epoch:]upstream[-revision]; rpm: V-R)
    arch: str
    source: str  # the source package's name
    source_version: str
    licence: Licence = field(default_factory=Licence)
    epoch: str = ""  # rpm's epoch (deb keeps it inside the version)
    # deb's Built-Using: the sources a package was built from besides its own (a signed
    # kernel or boot loader is the signing template's package, built from linux, grub2, shim)
    built_using: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name}:{self.arch}"


@dataclass(frozen=True)
class Inventory:
    """What the image holds: its packages and its kernel, with the distro's names."""

    family: str  # apt | dnf | zypper
    os_id: str  # os-release ID (debian, fedora, rocky, opensuse-leap)
    os_version: str  # os-release VERSION_ID ("" for a rolling release)
    codename: str
    packages: tuple[Package, ...]
    kernel: str  # the kernel release the image boots (uname -r)

    @property
    def purl_type(self) -> str:
        return "deb" if is_deb(self.family) else "rpm"

    @property
    def distro_qualifier(self) -> str:
        return f"{self.os_id}-{self.os_version}" if self.os_version else self.os_id

    def kernel_package(self) -> Package | None:
        """The package that ships the kernel the image boots."""
        for p in self.packages:
            if p.name in (f"linux-image-{self.kernel}", f"linux-image-{self.kernel}-unsigned"):
                return p
            if p.name.startswith("kernel") and f"{p.version}.{p.arch}" == self.kernel:
                return p
        return None


def script_for(family: str) -> str:
    return APT_SCRIPT if is_deb(family) else RPM_SCRIPT


def record_name(family: str) -> str:
    return APT_RECORD if is_deb(family) else RPM_RECORD


def evidence_dir(b: Build) -> Path:
    """The build's own evidence folder (scratch; what the export writes comes from it)."""
    return b.workdir / "evidence"


def record(b: Build) -> Path:
    """At the seal: read the package database from the build VM and keep it."""
    family = b.distro.family
    out = b.sh(script_for(family), what="the image's packages and their copyright files (SBOM)",
               quiet=True)
    folder = evidence_dir(b)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / record_name(family)
    if is_deb(family):
        try:
            path.write_bytes(base64.b64decode("".join(out.split()), validate=True))
        except binascii.Error as exc:
            raise InventoryError(f"the image's dpkg status came back garbled ({exc})") from None
    else:
        path.write_text(out.strip() + "\n")
    return path


def load(b: Build) -> Inventory:
    """The inventory :func:`record` kept for this build."""
    d = b.distro
    path = evidence_dir(b) / record_name(d.family)
    kernel = str(b.record.get("versions", {}).get("kernel", ""))
    return read(path, d.family, d.os_release.id, d.os_release.version_id,
                d.os_release.codename, kernel)


def read(path: Path, family: str, os_id: str, os_version: str, codename: str,
         kernel: str) -> Inventory:
    packages = from_dpkg(*_untar(path)) if is_deb(family) else from_rpm_qa(path.read_text())
    if not packages:
        raise InventoryError(f"{path}: no installed package in the image's package database")
    return Inventory(family, os_id, os_version, codename, tuple(packages), kernel)


def _untar(path: Path) -> tuple[str, dict[str, str]]:
    """dpkg's status text and {package: copyright text} from the recorded tar."""
    status, copyrights = "", {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not (member.isfile() or member.islnk()) or member.size > 8 << 20:
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                text = f.read().decode("utf-8", "replace")
                name = member.name.lstrip("./")
                if name == DPKG_STATUS:
                    status = text
                elif name.startswith("usr/share/doc/") and name.endswith("/copyright"):
                    copyrights[name.split("/")[3]] = text
    except (OSError, tarfile.TarError) as exc:
        raise InventoryError(f"{path}: not the recorded package database ({exc})") from None
    if not status:
        raise InventoryError(f"{path}: holds no {DPKG_STATUS}")
    return status, copyrights


def from_dpkg(status: str, copyrights: Mapping[str, str]) -> list[Package]:
    """The installed packages of a dpkg status file; each licence from the package's own
    copyright file (``/usr/share/doc/<name>/copyright``)."""
    from debian.deb822 import Deb822

    packages = []
    for para in Deb822.iter_paragraphs(io.StringIO(status)):
        state = para.get("Status", "").split()
        if len(state) != 3 or state[2] != "installed":
            continue
        name, version = para["Package"], para.get("Version", "")
        source, _, rest = para.get("Source", name).partition(" ")
        source_version = rest.strip("() ") or version
        text = copyrights.get(name)
        where = f"/usr/share/doc/{name}/copyright"
        licence = (licenses.from_debian_copyright(text, where) if text is not None
                   else Licence(source=f"{where} missing"))
        built_using = tuple((m[1], m[2]) for m in re.finditer(
            r"([a-z0-9][a-z0-9+.-]+)\s*\(\s*=\s*([^)\s]+)\s*\)", para.get("Built-Using", "")))
        packages.append(Package(name, version, para.get("Architecture", ""), source,
                                source_version, licence, built_using=built_using))
    return sorted(packages, key=lambda p: (p.name, p.arch))


def _source_of(srpm: str, name: str) -> tuple[str, str]:
    """``bash-5.2.26-3.fc42.src.rpm`` -> (bash, 5.2.26-3.fc42)."""
    stem = srpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    if not stem or stem == "(none)":
        return name, ""
    rest, _, release = stem.rpartition("-")
    source, _, version = rest.rpartition("-")
    return (source, f"{version}-{release}") if source and version else (stem, "")


def from_rpm_qa(text: str) -> list[Package]:
    """The packages of ``rpm -qa --qf`` with :data:`RPM_FIELDS`, tab-separated."""
    packages = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(RPM_FIELDS):
            raise InventoryError(f"rpm -qa line with {len(cols)} fields, expected "
                                 f"{len(RPM_FIELDS)}: {line[:120]!r}")
        name, epoch, version, release, arch, srpm, tag = cols
        source, source_version = _source_of(srpm, name)
        packages.append(Package(
            name, f"{version}-{release}", arch, source, source_version,
            licenses.from_rpm_tag(tag, "rpm License tag"),
            "" if epoch in ("0", "(none)", "") else epoch))
    return sorted(packages, key=lambda p: (p.name, p.arch))


def keys(packages: Iterable[Package]) -> list[str]:
    return sorted(p.key for p in packages)
