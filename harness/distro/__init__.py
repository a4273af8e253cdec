"""The distro catalogue: ``distros/<name>.yml`` loaded into typed, frozen objects.

A malformed file fails with the file, the key's path and what is wrong.

Size: the catalogue's schema is the dataclasses here, one per YAML section, and the
loader that checks them; splitting them would split one schema over files.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from harness import names, safeyaml, shipped
from harness.archive.format import VHD_DIR
from harness.distro import pkgmgr
from harness.errors import DistroError

DISTROS_DIR = shipped("distros")


@dataclass(frozen=True)
class VmgenieNames:
    os: str
    version: str

    @property
    def vm_name(self) -> str:
        return f"GMI {self.os} {self.version}"

    @property
    def stem(self) -> str:
        return f"GMI-{self.os}-{self.version}"

    @property
    def archive(self) -> str:
        return f"{self.stem}.zip"

    @property
    def vhdx_entry(self) -> str:
        return f"{VHD_DIR}/{self.vm_name}.vhdx"


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str
    codename: str = ""


@dataclass(frozen=True)
class HyperVSettings:
    generation: int
    secure_boot: bool
    secure_boot_template: str
    memory_mb: int
    dynamic_memory: bool
    disk_gb: int
    vhdx_block_size_mib: int = 32  # Hyper-V's default
    # The procedure: "some Linux distros may be better off turning off secure boot".
    # True when it (or a distro note) says so for this one; vmgenie turns it on anyway.
    procedure_turns_secure_boot_off: bool = False


@dataclass(frozen=True)
class IsoSpec:
    """The official install ISO, found at use time, never pinned (harness/media/isolisting.py):
    the newest file in ``folder``'s checksum listing ``checksums`` whose name matches
    ``pattern`` (``{version}``: the point release), with its digest from that listing.
    ``series`` keeps only that release's versions. A ``checksums`` name with ``{version}``
    (Fedora's compose, a Leap 16 build) is found in the folder's index. ``archive``: the
    release's folder after its end of life; ``point_archive``: where a superseded point
    release lives (``{version}``), for ``--iso-version``.

    The listing's OpenPGP signature: ``signature`` is the detached signature's file name
    in the same folder (``{listing}``: the listing's own name), ``inline`` for a
    clearsigned listing, or "" when upstream publishes none (then ``unsigned`` says so,
    with its source). ``fingerprints`` are the signing keys accepted (published facts;
    ``key_source`` says where); the keys come from ``keyrings`` (host keyring package
    files) or ``key_url``."""

    folder: str
    pattern: str
    checksums: str
    # Only versions of this release ("24.04": 24.04 and 24.04.N), where a folder may
    # also hold another release's files ("" for any).
    series: str = ""
    archive: str = ""
    point_archive: str = ""
    signature: str = ""
    unsigned: str = ""
    fingerprints: tuple[str, ...] = ()
    keyrings: tuple[str, ...] = ()
    key_url: str = ""
    key_source: str = ""


@dataclass(frozen=True)
class NetbootSpec:
    """The installer's network-boot kernel and initrd (direct kernel boot on the local
    backend). Their SHA-256 come from ``checksum_url`` (paths relative to it)."""

    kernel_url: str
    initrd_url: str
    checksum_url: str
    signing_key: str = ""
    # Where the images folder is not served (some mirrors and proxies carry only pool/
    # and the indices): the same files from the archive's netboot package, found in
    # ``packages_url`` (a Packages.xz index; the .deb's SHA-256 is taken from it).
    package: str = ""
    packages_url: str = ""
    package_dir: str = ""  # the folder inside the .deb that holds the kernel and initrd
    # The preseed travels inside the initrd (/preseed.cfg), which d-i reads by itself.
    kernel_args: str = "auto=true priority=critical console=ttyS0,115200n8"


@dataclass(frozen=True)
class InstallSpec:
    """Step 1. ``method`` debootstrap (Debian family, from the archive, local backend)
    uses the apt fields; ``iso`` installs from ``Distro.iso`` with an ``answer`` file."""

    method: str
    esp_size_mib: int
    root_fs: str
    scratch_min_gib: int
    suite: str = ""
    include: tuple[str, ...] = ()
    boot_packages: tuple[str, ...] = ()
    apt_sources: str = ""
    security_mirror: str = ""
    interfaces: str = ""
    grub_defaults: str = ""
    # Unattended install from the ISO (or netboot files): the answer file's kind,
    # the volume label of the medium it travels on, and what it installs besides the
    # base system (SSH server, Hyper-V daemons, sudo).
    answer: str = ""
    answer_label: str = ""
    # The rules its installer checks it against: debconf (preseed), subiquity-<series>,
    # autoyast-<branch> and agama-<branch> (the schema folders in shared/schemas),
    # pykickstart-<syntax>.
    answer_rules: str = ""
    packages: tuple[str, ...] = ()
    # Lines added to the answer file as they are (a kickstart's repositories, say).
    answer_extra: str = ""
    timezone: str = "Etc/UTC"
    locale: str = "en_US.UTF-8"
    keyboard: str = "us"
    # Direct kernel boot of the installer (local backend): paths on the ISO and the
    # kernel arguments ({iso_label}, {answer_label} are filled in).
    kernel: str = ""
    initrd: str = ""
    kernel_args: str = ""
    # What a backend without direct kernel boot (Hyper-V) types at the ISO's boot menu,
    # "" when nothing is needed. <enter>, <wait>, <esc>, <f10>, <up>, <down> are keys.
    boot_command: str = ""
    # When set, the ISO is remastered instead: the answer file at the ISO's root and
    # this GRUB config as boot/grub/grub.cfg (no typing needed).
    remaster_grub_cfg: str = ""
    # Bound on the unattended install (the installer powers the VM off when done).
    timeout_min: int = 180


@dataclass(frozen=True)
class UpdateSpec:
    remove_packages: tuple[str, ...]
    sudo_package: str
    sudo_group: str
    # A sudoers drop-in (path, line) for distros whose sudoers does not grant the group
    # (openSUSE: %wheel commented out, and "Defaults targetpw" asks for root's password,
    # which the seal locks).
    sudoers_file: str = ""
    sudoers: str = ""
    # The upgrade command when the family's default is not the procedure's (openSUSE
    # Tumbleweed: zypper dist-upgrade); "" means the family's.
    upgrade: str = ""
    # Packages the family's autoremove must never remove (openSUSE's orphaned
    # openSUSE-release-dvd: removing it "breaks everything").
    keep_packages: tuple[str, ...] = ()
    initramfs_conf: str = ""
    initramfs_settings_file: str = ""
    initramfs_settings: str = ""


@dataclass(frozen=True)
class CloudInitSpec:
    packages: tuple[str, ...]
    datasource_list: tuple[str, ...]
    datasource_file: str
    units: tuple[str, ...]
    remove_files: tuple[str, ...]
    locales: tuple[str, ...]
    locale_gen_file: str = ""  # "" where locales are not listed in a file (Fedora)
    locale_gen_command: str = ""  # "" where nothing has to be generated
    extra_config: str = ""
    # Commands run once after configuring (openSUSE: cloud-init init, then modules).
    first_run: tuple[str, ...] = ()


@dataclass(frozen=True)
class HvFromSource:
    """The procedure's fallback: build hv_kvp/vss/fcopy daemons from the running
    kernel's ``tools/hv`` when no package provides them. ``mode``: never | fallback
    (when installing ``packages`` fails) | always."""

    mode: str = "never"
    build_packages: tuple[str, ...] = ()
    source_url: str = "https://cdn.kernel.org/pub/linux/kernel/v{major}.x/linux-{kver}.tar.xz"
    prefix: str = "/usr/local/sbin"
    # hv_fcopy_daemon became hv_fcopy_uio_daemon (uio-based) in Linux 6.10.
    fcopy_uio_since: str = "6.10"


@dataclass(frozen=True)
class HyperVIntegrationSpec:
    packages: tuple[str, ...]
    services: tuple[str, ...]
    optional_services: tuple[str, ...]
    enable_services: bool
    initramfs_modules: tuple[str, ...]
    initramfs_modules_file: str
    initramfs_update: str
    initramfs_list: str
    kernel_cmdline: tuple[str, ...]
    udev_rule_glob: str = ""  # where a udev rule (not enablement) starts the daemons
    interfaces_file: str = ""  # "" where no ifupdown file needs rewriting
    interfaces: str = ""
    # One line per module in initramfs_modules_file ({module} is replaced); dracut:
    # 'add_drivers+=" {module} "'.
    initramfs_modules_line: str = "{module}"
    # The initramfs of kernel {kernel}.
    initramfs_path: str = "/boot/initrd.img-{kernel}"
    from_source: HvFromSource = HvFromSource()
    # What else the initramfs needs to mount the root, listed beside the hv modules
    # where the initramfs holds only what is listed (initramfs-tools' MODULES=list):
    # the disk driver, the root filesystem, the local backend's virtio-scsi.
    initramfs_boot_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootSpec:
    grub_defaults_file: str
    grub_update: str
    grub_cfg: str
    esp_mount: str
    efi_vendor_dir: str
    efi_fallback: dict[str, str]
    grub_settings: dict[str, str]
    kernel_cmdline: tuple[str, ...]
    # "" where /etc/default/grub has no drop-in folder: parameters go into the file.
    grub_dropin_dir: str = ""
    debconf: tuple[str, ...] = ()
    # Where the kernel command line ends up (a glob); "" means grub_cfg. BLS systems
    # (Fedora, Rocky) keep it in /boot/loader/entries/*.conf.
    cmdline_files: str = ""

    @property
    def cmdline_glob(self) -> str:
        return self.cmdline_files or self.grub_cfg


@dataclass(frozen=True)
class CleanupSpec:
    journal_vacuum: str
    remove_paths: tuple[str, ...]
    hostname: str
    hosts: str
    # Removed by the seal, at the very end (leases a network daemon rewrites until then).
    seal_remove_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeedExpectations:
    timezone: str
    locale: str
    keyboard_layout: str
    groups: tuple[str, ...]
    # The seed's runcmd (vmgenie's seeds end by upgrading packages).
    upgrade_command: tuple[str, ...] = ("apt update -y", "apt upgrade -y")


@dataclass(frozen=True)
class ChecksSpec:
    seed: SeedExpectations
    journal_error_allowlist: tuple[str, ...] = ()
    # Where cloud-init's rendered network config lands (any of them, first found).
    network_config_files: tuple[str, ...] = ("/etc/network/interfaces.d/50-cloud-init",
                                             "/etc/netplan/50-cloud-init.yaml")
    locale_file: str = "/etc/default/locale"
    keyboard_file: str = "/etc/default/keyboard"
    # A regular expression ({layout} is replaced) the keyboard file must match.
    keyboard_pattern: str = '^XKBLAYOUT="{layout}"'


@dataclass(frozen=True)
class SupportSpec:
    """The release's life upstream: ``end_of_life`` is the last day its makers publish
    updates for it (YYYY-MM-DD), as ``source_url`` says; a rolling release has none
    (``rolling: true``). A run after that day says so (harness/distro/lifecycle.py)."""

    source_url: str
    end_of_life: str = ""
    rolling: bool = False
    # What else the source says (the end of regular support before an LTS, say).
    note: str = ""


@dataclass(frozen=True)
class Distro:
    """Everything distro-specific, as data."""

    name: str
    description: str
    vmgenie: VmgenieNames
    family: str
    os_release: OsRelease
    hyperv: HyperVSettings
    install: InstallSpec
    admin_user: str
    update: UpdateSpec
    cloud_init: CloudInitSpec
    hyperv_integration: HyperVIntegrationSpec
    boot: BootSpec
    cleanup: CleanupSpec
    checks: ChecksSpec
    iso: IsoSpec | None = None
    netboot: NetbootSpec | None = None
    # The seed template the clone boots with (vmgenie's seed-data folder), relative to
    # this file; "" means the harness's own seed. --seed-template overrides it.
    seed_template: str = ""
    # The catalogue's reference profile: a GMI not in the catalogue is judged by its
    # expectations (exactly one distro of the harness's own catalogue says so).
    reference: bool = False
    # The release's end of life (every entry of ours has one; another catalogue's may not).
    support: SupportSpec | None = None
    generic: bool = False  # expectations borrowed for a GMI not in the catalogue
    source: Path = field(default=Path(), compare=False)

    def package_manager(self) -> pkgmgr.PackageManager:
        """The distro's package-manager family, keeping what its YAML says to keep (the
        distro names its package manager; the package manager knows no distro)."""
        return pkgmgr.family(self.family, self.update.keep_packages)


# The package-manager families are declared once, in harness/distro/pkgmgr.py.
FAMILIES = tuple(pkgmgr.FAMILIES)
METHODS = ("debootstrap", "iso")
ANSWERS = {"preseed": "", "autoinstall": "cidata", "kickstart": "OEMDRV", "autoyast": "OEMDRV",
           "agama": "OEMDRV"}
# What install.answer_rules starts with, per answer kind.
ANSWER_RULES = {"preseed": "debconf", "autoinstall": "subiquity-", "kickstart": "pykickstart-",
                "autoyast": "autoyast-", "agama": "agama-"}
HV_SOURCE_MODES = ("never", "fallback", "always")


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"


def _convert(tp: Any, value: Any, where: str, fname: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it."""

    def bad(expected: str) -> DistroError:
        return DistroError(f"{fname}: key '{where}': expected {expected}, got {_describe(value)}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(inner[0], value, where, fname)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad("a mapping")
        return _build(tp, value, where, fname)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad("a string")
        return str(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            raise bad("a mapping of strings")
        return types.MappingProxyType({k: str(v) for k, v in value.items()})
    raise TypeError(f"unsupported annotation {tp!r}")  # pragma: no cover - programming error


def _build(cls: Any, data: dict[str, Any], prefix: str, fname: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("source", "generic")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise DistroError(f"{fname}: key '{key}': unknown key (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DistroError(f"{fname}: key '{key}': missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], key, fname)
    return cls(**kwargs)


def catalogue(extra: Sequence[str | Path] = (), directory: Path = DISTROS_DIR) -> dict[str, Path]:
    """Every distro file of the catalogue by name: the ``extra`` folders (``--distros``)
    first, in the order given, then ``directory`` (ours). A name defined in two places is
    an error that names both files; a folder given twice counts once."""
    folders: list[Path] = []
    for raw in extra:
        folder = Path(raw).expanduser().resolve()
        if not folder.is_dir():
            raise DistroError(f"--distros {raw}: no such folder")
        folders.append(folder)
    folders.append(directory.resolve())
    found: dict[str, Path] = {}
    for folder in dict.fromkeys(folders):
        for path in sorted(folder.glob("*.yml")):
            if path.stem in found:
                raise DistroError(
                    f"distro {path.stem!r} is defined twice: {found[path.stem]} and {path}; "
                    "rename one (a distro's name is its file name)")
            found[path.stem] = path
    return found


def known_distros(directory: Path = DISTROS_DIR, extra: Sequence[str | Path] = ()) -> list[str]:
    """Names of the catalogued distros (the YAML files' stems), sorted."""
    return sorted(catalogue(extra, directory))


def load_file(path: Path) -> Distro:
    """Load and validate one distro file."""
    try:
        data = safeyaml.load(path.read_text())
    except FileNotFoundError:
        raise DistroError(f"{path}: no such distro file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise DistroError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise DistroError(f"{path}: expected a mapping at the top level, got {_describe(data)}")
    distro: Distro = _build(Distro, data, "", str(path))
    if distro.name != path.stem:
        raise DistroError(f"{path}: key 'name': must equal the file name {path.stem!r}")
    if distro.family not in FAMILIES:
        raise DistroError(
            f"{path}: key 'family': unknown package-manager family {distro.family!r} "
            f"(known: {', '.join(FAMILIES)})"
        )
    if distro.hyperv.generation != 2:
        raise DistroError(f"{path}: key 'hyperv.generation': only Generation 2 is supported")
    _check_install(distro, str(path))
    if distro.seed_template and not (path.parent / distro.seed_template).is_dir():
        raise DistroError(f"{path}: key 'seed_template': no such folder "
                          f"{(path.parent / distro.seed_template).resolve()}")
    key, problem = names.distro_problem(distro)
    if problem:
        raise DistroError(f"{path}: key '{key}': {problem}")
    return dataclasses.replace(distro, source=path)


def _check_install(d: Distro, fname: str) -> None:
    """What one install method needs the others do not."""
    spec = d.install

    def bad(key: str, what: str) -> DistroError:
        return DistroError(f"{fname}: key '{key}': {what}")

    if spec.method not in METHODS:
        raise bad("install.method", f"unknown install method {spec.method!r} (known: {', '.join(METHODS)})")
    if spec.method == "debootstrap":
        if not pkgmgr.FAMILIES[d.family].debootstrap:
            raise bad("install.method", f"debootstrap cannot install the {d.family} family")
        for key in ("suite", "include", "boot_packages", "apt_sources", "interfaces", "grub_defaults"):
            if not getattr(spec, key):
                raise bad(f"install.{key}", "missing (install.method debootstrap needs it)")
    if spec.answer and spec.answer not in ANSWERS:
        raise bad("install.answer", f"unknown answer file kind {spec.answer!r} (known: {', '.join(ANSWERS)})")
    if spec.method == "iso":
        if d.iso is None:
            raise bad("iso", "missing (install.method iso needs the official ISO's folder, pattern "
                             "and checksum listing)")
        if not spec.answer:
            raise bad("install.answer", f"missing (install.method iso needs one of: {', '.join(ANSWERS)})")
    if spec.answer and not spec.answer_rules.startswith(ANSWER_RULES[spec.answer]):
        raise bad("install.answer_rules", f"a {spec.answer} file is checked by "
                  f"{ANSWER_RULES[spec.answer]}..., got {spec.answer_rules!r}")
    if spec.answer and ANSWERS[spec.answer] and spec.answer_label != ANSWERS[spec.answer]:
        raise bad("install.answer_label",
                  f"{spec.answer} is read from a volume labelled {ANSWERS[spec.answer]!r}, "
                  f"not {spec.answer_label!r}")
    unknown = sorted(set(re.findall(r"\{(\w*)\}", spec.kernel_args)) - {"iso_label", "answer_label"})
    if unknown:
        raise bad("install.kernel_args", f"unknown placeholder {{{unknown[0]}}} (known: {{iso_label}}, "
                  "{answer_label})")
    if d.iso is not None:
        _check_iso(d.iso, bad)
    if d.support is not None:
        _check_support(d.support, bad)
    if d.hyperv_integration.from_source.mode not in HV_SOURCE_MODES:
        raise bad("hyperv_integration.from_source.mode",
                  f"expected one of {', '.join(HV_SOURCE_MODES)}")
    hv = d.hyperv_integration
    if not hv.enable_services and not hv.udev_rule_glob:
        raise bad("hyperv_integration.udev_rule_glob",
                  "missing (enable_services false: the udev rule that starts the daemons)")
    if d.boot.debconf and not pkgmgr.FAMILIES[d.family].debconf:
        raise bad("boot.debconf", f"the {d.family} family has no debconf")
    if "{module}" not in d.hyperv_integration.initramfs_modules_line:
        raise bad("hyperv_integration.initramfs_modules_line", "must contain {module}")


def _check_iso(iso: IsoSpec, bad: typing.Callable[[str, str], DistroError]) -> None:
    for key in ("folder", "archive", "point_archive", "key_url"):
        value = getattr(iso, key)
        if value and not value.startswith(("https://", "http://")):
            raise bad(f"iso.{key}", f"expected an http(s) URL, got {value!r}")
    if iso.pattern.count("{version}") != 1 or "/" in iso.pattern:
        raise bad("iso.pattern", "a file name with {version} once (where the point release is)")
    if iso.point_archive and "{version}" not in iso.point_archive:
        raise bad("iso.point_archive", "must contain {version}")
    for key in ("checksums", "signature"):
        if "/" in getattr(iso, key):
            raise bad(f"iso.{key}", "a file name in iso.folder, not a path")
    if iso.checksums.count("{version}") > 1:
        raise bad("iso.checksums", "{version} at most once (a listing named per version, found in "
                  "the folder's index)")
    if re.sub(r"\{listing\}", "", iso.signature).count("{"):
        raise bad("iso.signature", "the only placeholder is {listing} (the listing's file name)")
    if not iso.checksums:
        raise bad("iso.checksums", "missing (the checksum listing's file name in iso.folder)")
    if not iso.signature and not iso.unsigned:
        raise bad("iso.signature", "missing: the listing's signature file, 'inline', or "
                  "iso.unsigned saying why upstream publishes none")
    if iso.signature and not (iso.keyrings or iso.key_url):
        raise bad("iso.key_url", "missing (where the signing key comes from, or iso.keyrings)")
    if iso.signature and not iso.fingerprints:
        raise bad("iso.fingerprints", "missing (the signing keys' fingerprints, a published fact)")
    for fpr in iso.fingerprints:
        if not re.fullmatch(r"[0-9A-F]{40}", fpr.replace(" ", "")):
            raise bad("iso.fingerprints", f"expected 40 hex digits (upper case), got {fpr!r}")
    for ring in iso.keyrings:
        if not ring.startswith("/"):
            raise bad("iso.keyrings", f"expected an absolute path, got {ring!r}")


def _check_support(spec: SupportSpec, bad: typing.Callable[[str, str], DistroError]) -> None:
    if spec.rolling == bool(spec.end_of_life):
        raise bad("support.end_of_life", "a date (YYYY-MM-DD), or rolling: true for a rolling "
                  "release, not both")
    if spec.end_of_life:
        try:
            date.fromisoformat(spec.end_of_life)
        except ValueError:
            raise bad("support.end_of_life", f"expected a date YYYY-MM-DD, got {spec.end_of_life!r}") \
                from None
    if not spec.source_url:
        raise bad("support.source_url", "missing (where the end-of-life date is published)")


def reference_profile(directory: Path = DISTROS_DIR) -> Distro:
    """The distro of ``directory`` whose YAML says ``reference: true`` (exactly one):
    the expectations a GMI that is not in the catalogue is judged by."""
    found = [d for d in map(load_file, catalogue((), directory).values()) if d.reference]
    if len(found) != 1:
        raise DistroError(f"{directory}: {len(found)} distros say 'reference: true' "
                          f"({', '.join(d.name for d in found) or 'none'}); exactly one must")
    return found[0]


def load(name: str, directory: Path = DISTROS_DIR, extra: Sequence[str | Path] = ()) -> Distro:
    """Load the distro ``name`` from the catalogue (``extra`` folders, then ``directory``);
    an unknown name lists the known ones."""
    files = catalogue(extra, directory)
    if not names.DISTRO_NAME.fullmatch(name) or name not in files:
        known = ", ".join(sorted(files)) or "(none)"
        raise DistroError(f"unknown distro {name!r}; known distros: {known}")
    return load_file(files[name])
