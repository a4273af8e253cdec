"""Property-based tests (hypothesis) of every place the harness quotes a value into a
shell or PowerShell command line: whatever the value (quotes, $(...), backticks, ;, |,
newlines, globs, non-ASCII), the command receives it as one intact argument and nothing
else runs. The scripts run in a real bash (or sh) whose commands are recording shell
functions, with an empty PATH: an injected command would have nothing to run, and
would show up as a changed argument list."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from harness.stages.hv_from_source import plan
from harness.stages.shell import dq as _dq
from harness.stages.shell import grub_settings_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.distro.pkgmgr import Apt, Dnf, Zypper
from harness.rootfs.chroot import chroot_wrapper
from harness.ssh import Guest, KeyPair, Result

# Any text a value could hold (argv cannot carry NUL; lone surrogates are not text).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=40)
HOSTILE = st.sampled_from(["'", '"', "$(touch CANARY)", "`touch CANARY`", "; touch CANARY",
                           "| touch CANARY", "&& x", "\n", "*", "?", "[a]", "~", "-rf", "\\",
                           "${IFS}", "$HOME", "'\\''", "%PATH%", "\r\n", "ü", " "])
VALUE = st.one_of(TEXT, st.lists(HOSTILE, min_size=1, max_size=6).map("".join),
                  st.tuples(TEXT, HOSTILE, TEXT).map("".join))
SLOW = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


def recorded_run(script: str, tmp: Path, commands: list[str], shell: str = "bash",
                 stdin: str = "") -> list[list[str]]:
    """Run ``script`` with each of ``commands`` a function that records its arguments
    (one file per call; a function named ``*-stdin`` also keeps its standard input)."""
    rec = tmp / "calls"
    rec.mkdir(exist_ok=True)
    for old in rec.iterdir():
        old.unlink()
    # one file per call, "<call number>.<pid>" (the two ends of a pipe count alike)
    functions = "".join(
        f'{c}() {{ n=$((n+1)); printf "%s\\0" {c} "$@" > "$REC/$n.${{BASHPID:-0}}"; return 1; }}\n'
        for c in commands)
    if shell == "bash":  # bash only: function names with '-' and $(< file)
        functions += 'debconf-set-selections() { n=$((n+1)); printf "%s\\0" stdin "$(</dev/stdin)" ' \
                     '> "$REC/$n.$BASHPID"; }\n'
    proc = subprocess.run([f"/bin/{shell}", "-c", "n=0\n" + functions + script], input=stdin,
                          capture_output=True, text=True, cwd=tmp,
                          env={"PATH": str(tmp / "no-such-dir"), "REC": str(rec), "LC_ALL": "C.UTF-8"})
    calls = [(rec / name).read_bytes().decode().split("\0")[:-1]
             for name in sorted(os.listdir(rec), key=lambda n: tuple(map(int, n.split("."))))]
    assert not (tmp / "CANARY").exists(), (script, proc.stderr)
    return calls


# --- package managers (pkgmgr) ---------------------------------------------------------

@SLOW
@given(packages=st.lists(VALUE, min_size=1, max_size=4))
@pytest.mark.parametrize("family", [Apt, Dnf, Zypper])
def test_package_names_arrive_intact(tmp_path: Path, family: Any, packages: list[str]):
    pm = family()
    for script in (pm.install(packages), pm.remove(packages)):
        calls = recorded_run(script, tmp_path, ["apt-get", "dnf", "zypper"])
        assert len(calls) == 1, (script, calls)
        assert calls[0][-len(packages):] == packages


@SLOW
@given(package=VALUE)
def test_version_queries_get_the_package_as_one_argument(tmp_path: Path, package: str):
    for pm, tool in ((Apt(), "dpkg-query"), (Dnf(), "rpm")):
        calls = recorded_run(pm.version_of(package), tmp_path, [tool, "awk"])
        queries = [c for c in calls if c[0] == tool]
        assert len(queries) == 1 and queries[0][-1] == package, calls


@SLOW
@given(lines=st.lists(VALUE, min_size=1, max_size=4))
def test_debconf_lines_travel_on_stdin_intact(tmp_path: Path, lines: list[str]):
    calls = recorded_run(Apt().set_debconf(lines), tmp_path, [])
    assert calls == [["stdin", "\n".join(lines).rstrip("\n")]]


# --- stage scripts ---------------------------------------------------------------------

@SLOW
@given(text=VALUE.filter(lambda t: "$" not in t))
def test_double_quoted_words_print_back_exactly(tmp_path: Path, text: str):
    """_dq: a double-quoted shell word ($ is the one character left to expand, on purpose:
    $m is the module)."""
    proc = subprocess.run(["/bin/bash", "-c", f'printf "%s" "{_dq(text)}"'], capture_output=True,
                          cwd=tmp_path, env={"PATH": "/nonexistent", "LC_ALL": "C.UTF-8"})
    assert proc.stdout.decode() == text, proc.stderr


@SLOW
@given(name=VALUE.filter(lambda t: "/" not in t and t not in (".", "..")))
def test_grub_settings_script_edits_only_the_file_it_names(tmp_path: Path, name: str):
    here = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    path = here / name
    script = grub_settings_script(str(path), {"GRUB_TIMEOUT": "0"}, ("net.ifnames=0",))
    calls = recorded_run(script, here, ["grep", "sed"])
    assert calls and all(c[-1] == str(path) for c in calls), calls
    assert path.read_text() == "GRUB_TIMEOUT=0\n"  # grep "failed", so the line was appended


@SLOW
@given(url=VALUE)
def test_the_kernel_source_url_is_one_argument(tmp_path: Path, url: str):
    from harness.distro import HvFromSource

    step = plan("6.1.0-13-amd64", HvFromSource(source_url=url.replace("{", "{{").replace("}", "}}")),
                "true").steps[1]
    calls = recorded_run(step, tmp_path, ["cd", "curl"])
    assert calls == [["cd", "/usr/src"]]  # cd "failed": curl did not run, nothing else did
    calls = recorded_run(step.replace("cd /usr/src && ", ""), tmp_path, ["curl"])
    assert calls == [["curl", "-fsSLo", "linux-6.1.tar.xz", url]]


# --- the host: debootstrap's chroot wrapper --------------------------------------------

@SLOW
@given(name=VALUE.filter(lambda t: "/" not in t and t not in (".", "..")))
def test_the_chroot_wrapper_keeps_the_root_one_word(tmp_path: Path, name: str):
    """sh (dash), as run under unshare; mount and chroot are recording functions."""
    root = tmp_path / name
    calls = recorded_run(chroot_wrapper(root).replace("set -eu; ", "set -u; "), tmp_path,
                         ["mount", "chroot"], shell="sh")
    assert calls == [["mount", "-t", "proc", "proc", f"{root}/proc"],
                     ["mount", "--rbind", "/sys", f"{root}/sys"],
                     ["mount", "--rbind", "/dev", f"{root}/dev"],
                     ["chroot", str(root), "/bin/sh", "-s"]]


# --- the guest: files written over SSH -------------------------------------------------

class _LocalGuest(Guest):
    """Guest.put's script, run by a local bash (in ``cwd``) instead of over SSH."""

    cwd = Path("/nonexistent")

    def run(self, script: str, check: bool = True, timeout: float = 0, what: str = "",
            quiet: bool = False) -> Result:
        proc = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, cwd=self.cwd)
        assert proc.returncode == 0, proc.stderr
        return Result(proc.returncode, proc.stdout)


@SLOW
@given(name=VALUE.filter(lambda t: "/" not in t and t not in (".", "..") and len(t.encode()) < 200),
       content=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_put_writes_exactly_the_content_to_exactly_the_path(tmp_path: Path, name: str, content: str):
    guest = _LocalGuest("127.0.0.1", 1, "root", KeyPair.generate("t"))
    here = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    guest.cwd = here
    path = here / "sub dir" / name
    guest.put(str(path), content, mode=0o600)
    assert path.read_bytes() == (content.rstrip("\n") + "\n").encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in here.rglob("*")] == ["sub dir", name]


# --- PowerShell: parameters, never script text -----------------------------------------

STAND_IN_PWSH = """#!{python}
import json, os, sys
request = json.loads(sys.stdin.read())
with open(os.environ["PWSH_ARGV"], "w") as f:
    json.dump(sys.argv, f)
print(json.dumps({{"Echo": request["Arguments"], "Script": request["ScriptText"]}}))
"""
PS_VALUE = st.recursive(VALUE | st.integers(-2**40, 2**40) | st.booleans(),
                        lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True),
                                          inner, max_size=3), max_leaves=6)


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.from_regex(r"[A-Z][A-Za-z]{0,10}", fullmatch=True), PS_VALUE,
                              min_size=1, max_size=4))
def test_local_powershell_parameters_arrive_intact_and_off_the_command_line(tmp_path: Path,
                                                                            params: dict[str, Any]):
    from harness.backends.hyperv.transport import LocalPowerShell, script_text

    exe = tmp_path / "pwsh"
    exe.write_text(STAND_IN_PWSH.format(python=sys.executable))
    exe.chmod(0o755)
    argv_file = tmp_path / "argv.json"
    os.environ["PWSH_ARGV"] = str(argv_file)
    try:
        local = LocalPowerShell(str(exe), timeout=60)
        reply = local.invoke("vm_status", script_text("vm_status"), params)
    finally:
        del os.environ["PWSH_ARGV"]
    assert reply["Echo"] == params
    assert reply["Script"] == script_text("vm_status")  # the script text is never edited
    # the command line is the fixed bootstrap whatever the parameters (they go on stdin);
    # not a search for each value in it: a value may be part of a fixed word (-NoLogo)
    argv = json.loads(argv_file.read_text())
    assert argv[1:] == local.command()[1:] and "-EncodedCommand" in argv



@settings(deadline=None, max_examples=100)
@given(value=PS_VALUE)
def test_remote_parameters_survive_pypsrps_clixml(value: Any):
    """What RemotePowerShell hands pypsrp (psrp_value) is, on the wire, the same value:
    strings with any character, ints beyond 32 bits (as I64), lists, tables. The wire
    (CLIXML) is read back the way PowerShell reads it (pypsrp's own reader leaves nested
    objects undecoded)."""
    from pypsrp.serializer import Serializer

    from harness.backends.hyperv.transport import psrp_value

    wire = ET.tostring(Serializer().serialize(psrp_value(value)))
    assert read_clixml(ET.fromstring(wire)) == value


def read_clixml(e: ET.Element) -> Any:
    """The CLIXML subset psrp_value produces: S, I32, I64, B, Nil, arrays and hashtables."""
    from pypsrp.serializer import Serializer

    if e.tag == "S":
        return Serializer()._deserialize_string(e.text or "")
    if e.tag in ("I32", "I64"):
        number = int(e.text or "")
        bits = 32 if e.tag == "I32" else 64
        assert -(2 ** (bits - 1)) <= number < 2 ** (bits - 1), f"{number} does not fit an {e.tag}"
        return number
    if e.tag == "B":
        return e.text == "true"
    if e.tag == "Nil":
        return None
    assert e.tag == "Obj", ET.tostring(e)
    if (items := e.find("LST")) is not None:
        return [read_clixml(c) for c in items]
    table = e.find("DCT")
    assert table is not None, ET.tostring(e)
    return {read_clixml(en.find("*[@N='Key']")): read_clixml(en.find("*[@N='Value']"))  # type: ignore[arg-type]
            for en in table}
