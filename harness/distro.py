"""The distro catalogue: ``distros/<name>.yml`` loaded into typed, frozen objects.

A malformed file fails with the file, the key's path and what is wrong.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import DistroError

DISTROS_DIR = Path(__file__).resolve().parent.parent / "distros"


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
        return f"Virtual Hard Disks/{self.vm_name}.vhdx"


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


@dataclass(frozen=True)
class InstallSpec:
    method: str
    suite: str
    include: tuple[str, ...]
    boot_packages: tuple[str, ...]
    apt_sources: str
    security_mirror: str
    esp_size_mib: int
    root_fs: str
    scratch_min_gib: int
    interfaces: str
    grub_defaults: str


@dataclass(frozen=True)
class UpdateSpec:
    remove_packages: tuple[str, ...]
    sudo_package: str
    sudo_group: str
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
    locale_gen_file: str
    locale_gen_command: str
    extra_config: str = ""


@dataclass(frozen=True)
class HyperVIntegrationSpec:
    packages: tuple[str, ...]
    services: tuple[str, ...]
    optional_services: tuple[str, ...]
    enable_services: bool
    udev_rule_glob: str
    initramfs_modules: tuple[str, ...]
    initramfs_modules_file: str
    initramfs_update: str
    initramfs_list: str
    kernel_cmdline: tuple[str, ...]
    interfaces_file: str
    interfaces: str


@dataclass(frozen=True)
class BootSpec:
    grub_defaults_file: str
    grub_dropin_dir: str
    grub_update: str
    grub_cfg: str
    esp_mount: str
    efi_vendor_dir: str
    efi_fallback: dict[str, str]
    debconf: tuple[str, ...]
    grub_settings: dict[str, str]
    kernel_cmdline: tuple[str, ...]


@dataclass(frozen=True)
class CleanupSpec:
    journal_vacuum: str
    remove_paths: tuple[str, ...]
    hostname: str
    hosts: str


@dataclass(frozen=True)
class SeedExpectations:
    timezone: str
    locale: str
    keyboard_layout: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class ChecksSpec:
    seed: SeedExpectations
    journal_error_allowlist: tuple[str, ...] = ()


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
    generic: bool = False  # expectations borrowed for a GMI not in the catalogue
    source: Path = field(default=Path(), compare=False)


FAMILIES = ("apt",)


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"


def _convert(tp: Any, value: Any, where: str, fname: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it."""

    def bad(expected: str) -> DistroError:
        return DistroError(f"{fname}: key '{where}': expected {expected}, got {_describe(value)}")

    origin = typing.get_origin(tp)
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


def known_distros(directory: Path = DISTROS_DIR) -> list[str]:
    """Names of the catalogued distros (the YAML files' stems), sorted."""
    return sorted(p.stem for p in directory.glob("*.yml"))


def load_file(path: Path) -> Distro:
    """Load and validate one distro file."""
    try:
        data = yaml.safe_load(path.read_text())
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
    return dataclasses.replace(distro, source=path)


def load(name: str, directory: Path = DISTROS_DIR) -> Distro:
    """Load the distro ``name``; an unknown name lists the known ones."""
    path = directory / f"{name}.yml"
    if not path.exists():
        known = ", ".join(known_distros(directory)) or "(none)"
        raise DistroError(f"unknown distro {name!r}; known distros: {known}")
    return load_file(path)
