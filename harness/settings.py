"""Settings: each declared once; that declaration drives the pytest option, the
config-file key, the environment variable and the help text.

Precedence, highest first: command line, environment (``GMI_<NAME>``), config file
(``--harness-config PATH``, ``$GMI_CONFIG`` or ``gmi-harness.toml`` in the rootdir),
built-in default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import names
from harness.errors import ConfigError, mask, register_secret
from harness.host import hostos

KEEP_CHOICES = ("never", "always", "on-failure")
ACCELS = ("auto", "kvm", "tcg")
HYPERV_AUTHS = ("negotiate", "kerberos", "ntlm", "credssp", "certificate")
JANITOR_CHOICES = ("off", "list", "remove")
# Hyper-V's Secure Boot templates (Set-VMFirmware -SecureBootTemplate)
SECURE_BOOT_TEMPLATES = ("MicrosoftUEFICertificateAuthority", "MicrosoftWindows",
                         "OpenSourceShieldedVM")
USER_DIRS = hostos.current().user_dirs()  # scratch, credentials, ISO cache: per OS


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _as_sha256(value: Any) -> str:
    text = str(value).strip().lower()
    if text and not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"expected 64 hex digits (a SHA-256), got {value!r}")
    return text


def _as_previous(value: Any) -> tuple[str, ...]:
    """``--previous`` values: each an http(s) URL or an existing local archive or index."""
    return tuple(names.check_source(v) for v in _as_list(value))


def _as_vuln_db(value: Any) -> str:
    """``--vuln-db``: an http(s) URL, or a local file that exists (checked at start)."""
    text = _as_text(value)
    if text and not text.startswith(("http://", "https://")) and not Path(text).expanduser().is_file():
        raise ValueError(f"{text}: no such file (a Debian security tracker JSON or OSV records, "
                         "or an http(s) URL to one)")
    return text


VULN_GATES = ("off", "fixable", "high")
INSTALL_METHODS = ("auto", "debootstrap", "iso", "netboot")
PREPARE_MODES = ("auto", "chroot", "vm")


def _as_prepare_item(value: Any) -> str:
    """``MODE`` or ``DISTRO=MODE`` (that distro only)."""
    text = _as_text(value)
    mode = text.rpartition("=")[2]
    if mode not in PREPARE_MODES or text.startswith("="):
        raise ValueError(f"{text!r} is not MODE or DISTRO=MODE (MODE one of "
                         f"{', '.join(PREPARE_MODES)})")
    return text


def _as_prepare(value: Any) -> tuple[str, ...]:
    return _as_list(value, _as_prepare_item)


def prepare_mode(values: tuple[str, ...], distro: str) -> str:
    """The ``--prepare`` mode for ``distro``: its own ``DISTRO=MODE`` if given, else the
    last plain ``MODE``, else auto."""
    mine = [v.partition("=")[2] for v in values if v.partition("=")[0] == distro and "=" in v]
    plain = [v for v in values if "=" not in v]
    return (mine or plain or ["auto"])[-1]


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _as_str(value: Any) -> str:
    """A string (a TOML number, list or table is refused, not turned into text)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_kind(value)}")
    return value


def _checked(problem: Callable[[str], str]) -> Callable[[Any], str]:
    """A string parser that refuses what ``problem`` (harness/names.py) finds wrong."""
    def parse(value: Any) -> str:
        text = _as_str(value)
        if why := problem(text):
            raise ValueError(why)
        return text
    return parse


_as_text = _checked(names.problem_in_text)
_as_path = _checked(names.problem_in_path)
_as_host = _checked(lambda v: names.problem_in_text(v) or names.problem_in_host(v))
_as_vm_name = _checked(names.problem_in_vm_name)
_as_url = _checked(lambda v: names.problem_in_text(v) or names.problem_in_url(v))


def _as_int(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected a whole number, got {_kind(value)}")


def _at_least(parse: Callable[[Any], Any], low: float,
              high: float | None = None) -> Callable[[Any], Any]:
    """``parse``, then refused below ``low`` (or above ``high``)."""
    def checked(value: Any) -> Any:
        number = parse(value)
        if number < low or (high is not None and number > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"must be {bound}, got {number!r}")
        return number
    return checked


def _as_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    raise ValueError(f"expected a number, got {_kind(value)}")


def _as_list(value: Any, item: Callable[[Any], str] = _as_text) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item(v.strip()) for v in value.split(",") if v.strip())
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of strings (or one string, comma-separated), got "
                         f"{_kind(value)}")
    return tuple(item(v) for v in value)


def _as_paths(value: Any) -> tuple[str, ...]:
    return _as_list(value, _as_path)


def _as_config_version(value: Any) -> str:
    """A Hyper-V configuration version, as Get-VMHostSupportedVersion writes it (8.0, 9.1)."""
    text = _as_str(value).strip()
    if not re.fullmatch(r"[0-9]{1,2}\.[0-9]", text):
        raise ValueError(f"expected a configuration version such as 8.0 or 9.0, got {value!r}")
    return text


def _as_hosts(value: Any) -> tuple[str, ...]:
    return _as_list(value, _as_host)


@dataclass(frozen=True)
class Setting:
    """One setting: its name, type, default and help, declared once."""

    name: str
    help: str
    default: Any
    parse: Callable[[Any], Any] = str
    choices: tuple[str, ...] = ()
    secret: bool = False
    cli: bool = True
    multiple: bool = False
    flag: bool = False
    section: str = ""  # the --help group (set by _section below)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "GMI_" + self.name.upper()


def _section(title: str, *rows: Setting) -> tuple[Setting, ...]:
    return tuple(dataclasses.replace(r, section=title) for r in rows)


SETTINGS: tuple[Setting, ...] = (
    *_section("what to build or validate",
        Setting("distro", "distro to build (repeatable, or 'all'); names are the files in distros/",
                (), _as_list, multiple=True),
        Setting("gmi", "validate an existing GMI archive instead of building (repeatable)",
                (), _as_paths, multiple=True),
        # (the names are the backend table's, harness/backends/__init__.py: an unknown
        # one is refused where the backend is chosen, listing them)
        Setting("backend", "hypervisor backend: a name of the backend table (qemu: local QEMU, "
                "the default; hyperv: a Windows Hyper-V host, docs/hyperv.md)", "qemu", _as_str),
        Setting("keep", "what happens to build and clone VMs when the run ends",
                "never", _as_str, KEEP_CHOICES),
        Setting("out", "where archives and reports go", "reports", _as_path),
        Setting("force", "allow replacing an existing archive", False, _as_bool, flag=True),
        Setting("promote", "with --gmi and --backend=hyperv: wrap each disk-only archive's VHDX in a "
                "Generation 2 VM on the Hyper-V host, export it unbooted, run the whole checklist on "
                "a clone of that export and, if all pass, write the full archive (.vmcx included) "
                "to promoted/ beside the input", False, _as_bool, flag=True),
        Setting("scratch", "scratch folder for disks and build trees (outside the repo)",
                USER_DIRS.scratch, _as_path),
        Setting("signoff_from", "write one sign-off page from these runs' results (run folders "
                "or CI artifacts with signoff.json or junit.xml) and stop; builds nothing",
                (), _as_paths, multiple=True),
        Setting("previous", "the previous release the sign-off page compares with (repeatable, "
                "one per distro): an earlier GMI-<Os>-<Version>.zip, its http(s) URL, or a vmgenie "
                "repository index (file or URL); default: the newest earlier archive of the distro "
                "under --out", (), _as_previous, multiple=True),
        Setting("janitor", "instead of a test run: 'list' or 'remove' what harness runs that died "
                "left behind on the chosen --backend (VMs, disks, folders), then exit", "off", _as_str,
                JANITOR_CHOICES)),
    *_section("the QEMU backend",
        Setting("accel", "QEMU accelerator: auto probes KVM with a short real boot, else TCG",
                "auto", _as_str, ACCELS),
        Setting("prepare", "where stages 2-6 run: chroot (the new system's root tree on this host, "
                "which first boots as the checks' clone; mkosi's way), vm (over SSH in the "
                "booted build VM, as on Hyper-V) or auto (chroot where Step 1 is debootstrap); "
                "DISTRO=MODE for one distro (repeatable)", (), _as_prepare, multiple=True),
        Setting("incremental", "reuse Step 1's installed tree (debootstrap, updates, boot packages) "
                "while the archive's InRelease files and the inputs are the same (mkosi's "
                "Incremental=); kept in ~/.cache/gmi-harness/trees, one per suite", "on", _as_str,
                ("on", "off")),
        Setting("package_cache", "a package cache for repeat builds: apt-cacher-ng on 127.0.0.1 for "
                "the run, the build's apt through it during the build only (its cache in "
                "~/.cache/gmi-harness/apt-cacher-ng)", "on", _as_str, ("on", "off")),
        Setting("vm_cpus", "vCPUs of the build VM (the checklist's clone: --clone-cpus)", 2,
                _at_least(_as_int, 1, 64)),
        Setting("vm_memory_mb", "memory of the build VM (MiB; the checklist's clone: "
                "--clone-memory-mb)", 2048, _at_least(_as_int, 512)),
        Setting("boot_timeout", "seconds to wait for a guest's SSH after power-on", 600,
                _at_least(_as_int, 1)),
        Setting("command_timeout", "seconds one guest command may take", 1800,
                _at_least(_as_int, 1))),
    *_section("the checklist's clone (vmgenie's VM shape, on every backend)",
        Setting("clone_cpus", "vCPUs of the clone the checklist runs on (vmgenie provisions 1)",
                1, _at_least(_as_int, 1, 64)),
        Setting("clone_memory_mb", "static memory of the clone the checklist runs on (MiB; vmgenie "
                "provisions 512)", 512, _at_least(_as_int, 256)),
        Setting("clone_secure_boot", "Secure Boot on the clone (vmgenie always turns it on)", "on",
                _as_str, ("on", "off")),
        Setting("clone_secure_boot_template", "the clone's Secure Boot template (vmgenie's: "
                "MicrosoftUEFICertificateAuthority)", "MicrosoftUEFICertificateAuthority", _as_str,
                SECURE_BOOT_TEMPLATES)),
    *_section("install media",
        Setting("mirror", "Debian-family archive mirror used by the local install",
                "http://deb.debian.org/debian", _as_url),
        Setting("install_method", "how Step 1 installs the OS: auto (the distro YAML's method; iso "
                "when --iso is given), debootstrap, iso (official ISO + answer file) or netboot "
                "(Debian installer's netboot files + preseed; local backend)", "auto", _as_str,
                INSTALL_METHODS),
        Setting("iso", "install from this local ISO instead of downloading the official one "
                "(verified against the distro's checksum unless --iso-sha256 is given)", "", _as_path),
        Setting("iso_sha256", "expected SHA-256 of --iso (a custom image)", "", _as_sha256),
        Setting("iso_cache", "where official ISOs are downloaded once and kept",
                USER_DIRS.iso_cache, _as_path),
        Setting("install_timeout", "minutes an unattended install from an ISO may take "
                "(0: the distro YAML's install.timeout_min)", 0, _at_least(_as_int, 0)),
        Setting("iso_version", "pin the install ISO's point release (e.g. 24.04.3, 13.2.0; found "
                "in the release folder or its archive) instead of the newest one upstream lists",
                "", _as_text),
        Setting("iso_signatures", "check the OpenPGP signature of the ISO's checksum listing "
                "against the distro's pinned key (off: record that it was not checked)", "verify",
                _as_str, ("verify", "off"))),
    *_section("the archive and the vmgenie index",
        Setting("index", "write or update this vmgenie repository index (gmi-repository.dist.yml) "
                "for each archive that passed", "", _as_path),
        Setting("index_url", "the http(s) URL of an index entry; {archive} is replaced by the "
                "archive's file name", "", _as_url),
        Setting("maintainer", "manifest maintainer", "gmi-harness", _as_text),
        Setting("maintainer_email", "manifest maintainer_email", "gmi-harness@localhost", _as_text),
        Setting("source_url", "manifest source_url",
                "https://github.com/jesse-greathouse/vmgenie", _as_url),
        Setting("credentials_dir", "user-private folder for build-time credentials",
                USER_DIRS.credentials, _as_path)),
    *_section("release evidence (docs/evidence.md)",
        Setting("vuln_db", "known vulnerabilities: the SBOM's packages against this data, a local "
                "file or an http(s) URL (Debian's security tracker JSON, or OSV records: one, a list, "
                "or a zip); reported on the sign-off page", "", _as_vuln_db),
        Setting("vuln_gate", "block the export when the vulnerability report meets a rule: fixable "
                "(a finding whose fix is in the archive), high (a finding of high or critical "
                "severity); off only reports", "off", _as_str, VULN_GATES),
        Setting("sign_key", "sign SHA256SUMS of the outputs and the provenance with this key: an "
                "OpenPGP secret key file or key id (gpg), or an OpenSSH private key (ssh-keygen -Y "
                "sign)", "", _as_text),
        Setting("verify_key", "with --gmi: check each archive's signed SHA256SUMS with this public "
                "key (OpenPGP or OpenSSH) before anything else; an archive that fails is refused",
                "", _as_path)),
    *_section("the Hyper-V backend (docs/hyperv.md)",
        Setting("hyperv_host", "Hyper-V host for --backend=hyperv", "", _as_host),
        Setting("hyperv_password", "password for the Hyper-V host", "", _as_str, secret=True,
                cli=False),
        Setting("hyperv_hosts", "pool of Hyper-V hosts; xdist worker gwN takes host N modulo the "
                "pool (default: just --hyperv-host)", (), _as_hosts),
        Setting("hyperv_local", "run PowerShell on this machine (the harness runs on the Hyper-V "
                "host itself) instead of over PowerShell Remoting", False, _as_bool, flag=True),
        Setting("hyperv_user", "account on the Hyper-V host (DOMAIN\\user or user@realm)", "", _as_text),
        Setting("hyperv_auth", "PowerShell Remoting authentication", "negotiate", _as_str, HYPERV_AUTHS),
        Setting("hyperv_port", "WinRM port (0: 5986 over HTTPS, 5985 over plain HTTP)", 0,
                _at_least(_as_int, 0, 65535)),
        Setting("hyperv_ca_bundle", "CA bundle (PEM) that signs the host's WinRM HTTPS certificate "
                "(default: the system's, or $REQUESTS_CA_BUNDLE)", "", _as_path),
        Setting("hyperv_plain_http", "use plain HTTP (port 5985) with WinRM message encryption; "
                "never without encryption", False, _as_bool, flag=True),
        Setting("hyperv_cert_pem", "client certificate (PEM) for --hyperv-auth=certificate", "", _as_path),
        Setting("hyperv_cert_key_pem", "its private key (PEM) for --hyperv-auth=certificate", "", _as_path),
        Setting("hyperv_switch", "Hyper-V virtual switch the build and clone VMs connect to", "",
                _as_vm_name),
        Setting("hyperv_vhd_path", "host folder for the run's disks, ISOs and exports (default: "
                "the host's VirtualHardDiskPath)", "", _as_path),
        Setting("hyperv_base_vm", "adopt this existing VM (installed by hand) as the build VM", "",
                _as_vm_name),
        Setting("hyperv_base_vhdx", "start from a copy of this VHDX (a path on the host) instead of "
                "installing", "", _as_path),
        Setting("hyperv_base_key", "private key (OpenSSH ed25519) root accepts on --hyperv-base-vm / "
                "--hyperv-base-vhdx; the build's own key is added with it", "", _as_path),
        Setting("hyperv_install_iso", "install ISO: a local file (uploaded) or a path on the host",
                "", _as_path),
        Setting("hyperv_install_sha256", "SHA-256 the install ISO must have", "", _as_text),
        Setting("hyperv_answer_iso", "answer media ISO (cidata / OEMDRV / preseed): local or on the "
                "host", "", _as_path),
        Setting("hyperv_boot_command", "keys typed at the install ISO's boot menu (<enter>, <esc>, "
                "<wait5>, text)", "", _as_text),
        Setting("hyperv_boot_wait", "seconds between power-on and typing the boot command", 5.0,
                _at_least(_as_float, 0)),
        Setting("hyperv_vm_version", "the build VM's configuration version (New-VM -Version): the "
                "oldest hosts that import the GMI support it; 8.0, the default, imports on Windows "
                "Server 2016 and newer, Windows 10 1607 and newer (docs/hyperv.md)", "8.0",
                _as_config_version),
        Setting("hyperv_guest_address", "the build VM's static address (skips KVP discovery)", "", _as_host),
        Setting("hyperv_export_dir", "host folder where the flattened export is left (default: it is "
                "removed with the run's folder)", "", _as_path),
        Setting("hyperv_janitor_hours", "a run whose owner cannot be checked counts as dead after "
                "this many hours", 24.0, _at_least(_as_float, 0))),
    *_section("your distros and seed templates (docs/own-repository.md)",
        Setting("distros", "extra distro catalogue folder (repeatable), searched before the "
                "harness's own distros/; a name defined twice is an error", (), _as_paths,
                multiple=True),
        Setting("seed_template", "boot the clone with this seed template (vmgenie's seed-data: "
                "user-data, meta-data, network-config with {{ USERNAME }}-style placeholders) "
                "instead of the harness's own seed; a folder of <Os>/<Version>/seed-data/ "
                "(vmgenie's etc/cloud) gives each distro its own", "", _as_path),
        Setting("seed_template_blocks_export", "a fault the seed check finds in the seed "
                "template blocks the export and the index entry (default: it is reported; the "
                "image is exported)", False, _as_bool, flag=True)),
)
BY_NAME = {s.name: s for s in SETTINGS}
# The checkout the harness runs from (scratch must stay outside it).
REPO = Path(__file__).resolve().parent.parent


class SettingsFields:
    """Every setting's name and type, for readers and mypy (``settings.vm_cpus`` is an
    int). The values live in :attr:`Settings.values`; a unit test keeps these fields and
    :data:`SETTINGS` the same set, with the same types."""

    # what to build or validate
    distro: tuple[str, ...]
    gmi: tuple[str, ...]
    backend: str
    keep: str
    out: str
    force: bool
    promote: bool
    scratch: str
    signoff_from: tuple[str, ...]
    previous: tuple[str, ...]
    janitor: str
    # the QEMU backend
    accel: str
    prepare: tuple[str, ...]
    incremental: str
    package_cache: str
    vm_cpus: int
    vm_memory_mb: int
    boot_timeout: int
    command_timeout: int
    # the checklist's clone
    clone_cpus: int
    clone_memory_mb: int
    clone_secure_boot: str
    clone_secure_boot_template: str
    # install media
    mirror: str
    install_method: str
    iso: str
    iso_sha256: str
    iso_cache: str
    install_timeout: int
    iso_version: str
    iso_signatures: str
    # the archive and the vmgenie index
    index: str
    index_url: str
    maintainer: str
    maintainer_email: str
    source_url: str
    credentials_dir: str
    # release evidence (docs/evidence.md)
    vuln_db: str
    vuln_gate: str
    sign_key: str
    verify_key: str
    # the Hyper-V backend (docs/hyperv.md)
    hyperv_host: str
    hyperv_password: str
    hyperv_hosts: tuple[str, ...]
    hyperv_local: bool
    hyperv_user: str
    hyperv_auth: str
    hyperv_port: int
    hyperv_ca_bundle: str
    hyperv_plain_http: bool
    hyperv_cert_pem: str
    hyperv_cert_key_pem: str
    hyperv_switch: str
    hyperv_vhd_path: str
    hyperv_base_vm: str
    hyperv_base_vhdx: str
    hyperv_base_key: str
    hyperv_install_iso: str
    hyperv_install_sha256: str
    hyperv_answer_iso: str
    hyperv_boot_command: str
    hyperv_boot_wait: float
    hyperv_vm_version: str
    hyperv_guest_address: str
    hyperv_export_dir: str
    hyperv_janitor_hours: float
    # your distros and seed templates
    distros: tuple[str, ...]
    seed_template: str
    seed_template_blocks_export: bool


@dataclass(frozen=True)
class Settings(SettingsFields):
    """What the user asked for, frozen. ``sources`` says where each value came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def out_dir(self) -> Path:
        return Path(self.values["out"]).expanduser().resolve()

    @property
    def scratch_dir(self) -> Path:
        return Path(self.values["scratch"]).expanduser().resolve()

    def describe(self, changed_only: bool = False) -> list[str]:
        """Lines ``name = value  (source)`` with secrets masked; ``changed_only`` leaves
        out the settings at their built-in defaults."""
        lines = []
        for s in SETTINGS:
            if changed_only and self.sources.get(s.name, "default") == "default":
                continue
            value = self.values[s.name]
            shown = ("***" if value else "(unset)") if s.secret else value
            if isinstance(shown, tuple):
                shown = ",".join(shown) or "(none)"
            lines.append(f"{s.name} = {shown}  ({self.sources.get(s.name, 'default')})")
        return lines

    def where(self, name: str) -> str:
        """Where a setting's value came from, as its errors name it: the option, the
        ``GMI_*`` variable, the config file, or (a default) the option that changes it."""
        setting = BY_NAME[name]
        source = self.sources.get(name, "default")
        if source == "environment":
            return setting.env
        if source.startswith("config file "):
            return source.removeprefix("config file ")
        return setting.option

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, values={**self.values, **changes})


def _parse(setting: Setting, raw: Any, where: str) -> Any:
    try:
        value = setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {setting.name}: {exc}") from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{where}: {setting.name} must be one of {', '.join(setting.choices)}, "
            f"got {value!r}"
        )
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file of ``name = value`` pairs (top level or [gmi-harness])."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = data.get("gmi-harness", data)
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(BY_NAME)}"
        )
    return data


class ConfigProblems(ConfigError):
    """Every problem the settings have, each one line (``problems``); as a string, all
    of them joined (one problem: just that line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = [mask(" ".join(p.split())) for p in problems]


@dataclass(frozen=True)
class Reading:
    """The settings as read, with every problem found (one line each). A setting whose
    value was refused keeps its default and is named in ``refused``, so that checks of
    other settings can still run (and checks that need it can stay quiet)."""

    settings: Settings
    problems: tuple[str, ...]
    refused: frozenset[str]


def read(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Reading:
    """Merge the sources (CLI > env > file > default), collecting every problem instead of
    stopping at the first. ``cli`` holds only the values given on the command line."""
    env = os.environ if env is None else env
    problems: list[str] = []
    refused: set[str] = set()
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = read_config_file(config_file)
        except ConfigError as exc:
            problems.append(str(exc))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if s.name in cli:
            raw, where, source = cli[s.name], s.option, "command line"
        elif s.env in env:
            raw, where, source = env[s.env], s.env, "environment"
        elif s.name in file_values:
            raw, where, source = file_values[s.name], str(config_file), f"config file {config_file}"
        else:
            values[s.name], sources[s.name] = s.default, "default"
            continue
        try:
            values[s.name], sources[s.name] = _parse(s, raw, where), source
        except ConfigError as exc:
            problems.append(str(exc))
            refused.add(s.name)
            values[s.name], sources[s.name] = s.default, "default"
    for s in SETTINGS:
        if s.secret and values[s.name]:
            register_secret(str(values[s.name]))
    problems += _combination_problems(values, refused)
    settings = Settings(values, sources)
    scratch = Path(values["scratch"]).expanduser().resolve()
    if (REPO / "pyproject.toml").is_file() and scratch.is_relative_to(REPO):
        problems.append(f"{settings.where('scratch')}: scratch {scratch} is inside the repository "
                        f"{REPO}: build trees (root-owned, gigabytes) do not belong there; "
                        "choose a folder outside it")
        refused.add("scratch")
    return Reading(settings, tuple(problems), frozenset(refused))


def _combination_problems(values: Mapping[str, Any], refused: set[str]) -> list[str]:
    """Settings that need another one (each said only when neither was refused)."""
    problems = []
    if values["promote"] and not values["gmi"] and not refused & {"promote", "gmi"}:
        problems.append("--promote takes the disk-only archives to promote with --gmi ARCHIVE")
    if values["vuln_gate"] != "off" and not values["vuln_db"] and not refused & {"vuln_gate", "vuln_db"}:
        problems.append(f"--vuln-gate={values['vuln_gate']} needs the data to judge with: give "
                        "--vuln-db FILE_OR_URL (Debian's security tracker JSON or OSV records)")
    if values["verify_key"] and not values["gmi"] and not refused & {"verify_key", "gmi"}:
        problems.append("--verify-key checks the signatures of archives given with --gmi ARCHIVE")
    return problems


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources (CLI > env > file > default) into frozen :class:`Settings`;
    every problem found is raised at once (:class:`ConfigProblems`).

    ``cli`` holds only the values the user actually gave on the command line.
    """
    reading = read(cli, env, config_file)
    if reading.problems:
        raise ConfigProblems(reading.problems)
    return reading.settings
