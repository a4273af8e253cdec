"""What a name, a host or a path given to the harness may look like.

Values from the settings (command line, ``GMI_*``, the TOML file) and from a distro's
YAML end up in VM names, file names, shell scripts run as root (on the host in the
debootstrap chroot, in the guest over SSH) and PowerShell parameters (``Get-VM -Name``
takes wildcards). Rather than trusting every one of those places to quote right, a
value that could change a command's meaning is refused where it enters, with one line
naming the setting or key: shell and PowerShell metacharacters, control characters
(a newline ends a command), wildcards in names, ``..`` in paths that are joined under a
root. The distro YAML's *command* fields (``grub_update``, ``initramfs_update``,
``apt_sources``, ...) are guest commands by design and are not checked here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Control characters (a newline or NUL ends or splits a command line).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that mean something to sh or PowerShell outside quotes (beyond spaces).
SHELL_META = "`$;|&<>\"'"
WILDCARDS = "*?[]"

DISTRO_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
VMGENIE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # in VM, file and folder names
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # useradd's NAME_REGEX
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
IP_ADDRESS = re.compile(r"\[?[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?\]?")
PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._:-]*")
UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:-]*")
WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+/-]*")  # modules, locales, timezones, layouts
KERNEL_ARG = re.compile(r"[A-Za-z0-9_.,=:/+-]+")
GUEST_PATH = re.compile(r"[A-Za-z0-9_@%+=:,./*?{}\[\]-]+")  # globs and {kernel} allowed
SETTING_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
URL = re.compile(r"https?://[^\s`$;|<>\"'\\]+")


def problem_in_text(value: str) -> str:
    """'' or why ``value`` cannot be used at all (control characters)."""
    if CONTROL.search(value):
        return f"control characters (a newline, say) are not allowed: {value!r}"
    return ""


def problem_in_path(value: str) -> str:
    """'' or why ``value`` is refused as a host path (local or on the Hyper-V host)."""
    bad = sorted({c for c in value if c in SHELL_META + "*?"})
    if bad:
        return (f"{value!r} holds {' '.join(bad)}: shell and PowerShell metacharacters are not "
                "allowed in paths")
    return problem_in_text(value)


def problem_in_vm_name(value: str) -> str:
    """'' or why ``value`` is refused as a Hyper-V object name (a VM, a switch):
    ``Get-VM -Name`` reads wildcards."""
    bad = sorted({c for c in value if c in SHELL_META + WILDCARDS})
    if bad:
        return (f"{value!r} holds {' '.join(bad)}: metacharacters and wildcards are not allowed "
                "in Hyper-V names")
    return problem_in_text(value)


def problem_in_host(value: str) -> str:
    """'' or why ``value`` is not a host name or an IP address."""
    if value and not (HOSTNAME.fullmatch(value) or IP_ADDRESS.fullmatch(value)):
        return f"{value!r} is not a host name or an IP address"
    return ""


def problem_in_url(value: str) -> str:
    if value and not URL.fullmatch(value):
        return f"{value!r} is not an http(s) URL without spaces, quotes or shell metacharacters"
    return ""


# --- a distro's YAML ------------------------------------------------------------------

# leaf key -> (pattern, what it is); lists and mappings are checked element by element
_BY_KEY: dict[str, tuple[re.Pattern[str], str]] = {
    "name": (DISTRO_NAME, "lowercase letters, digits, '.', '_' and '-'"),
    "os": (VMGENIE_NAME, "letters, digits, '.', '_' and '-' (it is part of VM and file names)"),
    "version": (VMGENIE_NAME, "letters, digits, '.', '_' and '-' (it is part of VM and file names)"),
    "admin_user": (USER, "a user name (lowercase, digits, '_' and '-', 32 at most)"),
    "sudo_group": (USER, "a group name"),
    "groups": (USER, "group names"),
    "hostname": (HOSTNAME, "a host name"),
    "suite": (DISTRO_NAME, "a suite name"),
    "id": (DISTRO_NAME, "an os-release ID"),
    "version_id": (re.compile(r"[A-Za-z0-9._-]*"), "an os-release VERSION_ID"),
    "codename": (re.compile(r"[a-z0-9._-]*"), "a codename"),
    "include": (PACKAGE, "package names"),
    "boot_packages": (PACKAGE, "package names"),
    "packages": (PACKAGE, "package names"),
    "remove_packages": (PACKAGE, "package names"),
    "keep_packages": (PACKAGE, "package names"),
    "build_packages": (PACKAGE, "package names"),
    "sudo_package": (PACKAGE, "a package name"),
    "package": (PACKAGE, "a package name"),
    "units": (UNIT, "systemd unit names"),
    "services": (UNIT, "systemd unit names"),
    "optional_services": (UNIT, "systemd unit names"),
    "initramfs_modules": (WORD, "kernel module names"),
    "locales": (WORD, "locale names"),
    "locale": (WORD, "a locale name"),
    "timezone": (WORD, "a time zone name"),
    "keyboard": (WORD, "a keyboard layout"),
    "keyboard_layout": (WORD, "a keyboard layout"),
    "datasource_list": (WORD, "datasource names"),
    "kernel_cmdline": (KERNEL_ARG, "kernel parameters without spaces or quotes"),
    "journal_vacuum": (re.compile(r"[0-9]+[a-z]*"), "a journald time span"),
    "root_fs": (WORD, "a file system type"),
    **{key: (URL, "an http(s) URL without spaces, quotes or shell metacharacters")
       for key in ("folder", "archive", "point_archive", "key_url", "checksum_url", "kernel_url",
                   "initrd_url", "packages_url", "source_url")},
}
# Paths in the guest (or on the ESP or ISO); the host writes some of them under the
# build's root, so none may climb out with '..'.
_PATH_KEY = re.compile(r"(_file|_files|_path|_paths|_dir|_mount|_glob)$|"
                       r"^(grub_cfg|initramfs_conf|kernel|initrd|prefix|efi_fallback)$")
_RELATIVE_OK = {"efi_vendor_dir", "package_dir", "efi_fallback"}


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(key path, leaf key, value) of every field of a distro's dataclasses."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.name in ("source", "generic"):
                continue
            key = f"{prefix}.{f.name}" if prefix else f.name
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from _leaves(value, key)
            else:
                yield key, f.name, value


def _values(value: Any) -> list[str]:
    if isinstance(value, tuple):
        return [str(v) for v in value]
    if hasattr(value, "items"):  # a mapping: keys and values
        return [str(x) for kv in value.items() for x in kv]
    return [] if value is None or isinstance(value, bool | int) else [str(value)]


def problem_in_guest_path(value: str, relative_ok: bool) -> str:
    if not GUEST_PATH.fullmatch(value):
        return f"{value!r} is not a plain path (no spaces, quotes or shell metacharacters)"
    if ".." in value.split("/"):
        return f"{value!r} climbs out with '..'"
    if not relative_ok and not value.startswith("/"):
        return f"{value!r} is not an absolute path"
    return ""


def distro_problem(distro: Any) -> tuple[str, str]:
    """('', '') or (key path, problem) for the first value of a loaded distro that a
    name, path or command line must not hold."""
    for key, leaf, value in _leaves(distro):
        for text in _values(value):
            problem = problem_in_text(text) if leaf in ("description", "os", "version") else ""
            if not problem and leaf == "description" and "'" in text:
                problem = f"{text!r}: no single quotes (it is a GRUB menu title)"
            if not problem and leaf in _BY_KEY and text:
                pattern, what = _BY_KEY[leaf]
                if not pattern.fullmatch(text):
                    problem = f"{text!r} is not {what}"
            if not problem and text and _PATH_KEY.search(leaf):
                problem = problem_in_guest_path(text, leaf in _RELATIVE_OK)
            if problem:
                return key, problem
    if distro.boot.grub_settings:
        for name, value in distro.boot.grub_settings.items():
            if not SETTING_KEY.fullmatch(name) or any(c in value for c in "'|`$\\\n"):
                return "boot.grub_settings", f"{name}={value!r}: a shell variable name and a value " \
                                             "without ' | ` $ \\ or newlines"
    return "", ""


# --- a release to compare with (--previous) ---------------------------------------

INDEX_SUFFIXES = (".yml", ".yaml")  # a vmgenie repository index


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def check_source(source: str) -> str:
    """A ``--previous`` value, checked before anything runs: an http(s) URL, or an
    existing local archive or index."""
    scheme = urlsplit(source).scheme
    if is_url(source):
        return source
    if scheme and len(scheme) > 1:  # (a one-letter "scheme" is a Windows drive)
        raise ValueError(f"{source}: only http(s) URLs and local paths are read")
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"{source}: no such file (an earlier GMI-<Os>-<Version>.zip or a "
                         "gmi-repository.dist.yml)")
    if path.suffix.lower() not in (".zip", *INDEX_SUFFIXES):
        raise ValueError(f"{source}: neither a .zip archive nor a .yml repository index")
    return str(path.resolve())
