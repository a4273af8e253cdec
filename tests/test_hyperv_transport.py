"""The PowerShell transports and the script files, without a Windows host (none exists
on the machines this harness is developed on).

The local transport runs against a stand-in ``pwsh`` (a small Python program that
records how it was called and answers like PowerShell would); the scripts are checked
as text. The remote transport's wire behaviour is in ``test_hyperv_wsman.py``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.hyperv.transport import (
    RUNNER,
    SCRIPTS,
    LocalPowerShell,
    RemoteOptions,
    ScriptError,
    parse_output,
    script_text,
)
from harness.errors import ConfigError, mask, register_secret
from harness.host import hostos

HYPERV = Path(__file__).parent.parent / "harness" / "backends" / "hyperv"
SCRIPT_FILES = sorted(p.name for p in SCRIPTS.iterdir() if p.name.endswith(".ps1"))


# --- the scripts are readable files a person can run -----------------------------------


def test_every_script_the_backend_runs_is_a_file():
    source = "".join((HYPERV / f).read_text() for f in ("backend.py", "janitor.py", "transport.py"))
    used = set(re.findall(r"\.run\(\s*\"(\w+)\"", source))
    assert used, "no script calls found"
    assert {f"{u}.ps1" for u in used} <= set(SCRIPT_FILES)
    assert set(SCRIPT_FILES) <= {f"{u}.ps1" for u in used}, "a script nobody runs"


@pytest.mark.parametrize("name", SCRIPT_FILES)
def test_each_script_documents_itself_and_stops_on_errors(name):
    text = script_text(name.removesuffix(".ps1"))
    assert text.startswith("<#") and ".SYNOPSIS" in text and ".EXAMPLE" in text
    param, stop = text.index("param("), text.index("$ErrorActionPreference = 'Stop'")
    assert param < stop < text.index("\n", stop) + 1 < len(text)
    assert "ConvertTo-Json" in text and "-Compress" in text
    assert "Invoke-Expression" not in text and "iex " not in text


def test_the_scripts_ship_as_package_data():
    pyproject = (HYPERV.parents[2] / "pyproject.toml").read_text()
    assert '"harness.backends.hyperv" = ["scripts/*.ps1"]' in pyproject
    assert '"pypsrp[credssp]==0.9.1"' in pyproject  # --hyperv-auth=credssp works as installed
    assert 'kerberos = ["pypsrp[kerberos]==0.9.1"]' in pyproject  # an extra: it builds against krb5


def test_credssp_is_installed_with_the_harness():
    """pypsrp's credssp extra (requests-credssp, pure Python) comes with the harness from
    our package index: --hyperv-auth=credssp passes the start check here for real."""
    import importlib.util

    from harness.backends.hyperv.transport import check_auth_modules

    assert importlib.util.find_spec("requests_credssp") is not None
    check_auth_modules("credssp")
    check_auth_modules("negotiate")  # NTLM without Kerberos modules, Kerberos with them


def test_an_auth_without_its_modules_is_refused_at_start_with_the_install_line(monkeypatch):
    import importlib.util

    from harness.backends.hyperv.transport import RemoteOptions, check_auth_modules

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gssapi", "krb5", "requests_credssp")
                        else real(name, *a))
    with pytest.raises(ConfigError, match=r"^--hyperv-auth=kerberos needs the Python module\(s\) "
                                          r"gssapi, krb5, .*apt-get install libkrb5-dev gcc.*pip install "
                                          r"'gmi-harness\[kerberos\]'") as err:
        RemoteOptions(host="hv01", user="u@CORP.EXAMPLE", auth="kerberos").check()
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"credssp .*pip install 'pypsrp\[credssp\]==0\.9\.1'"):
        check_auth_modules("credssp")
    previous = hostos.use(hostos.Windows())
    try:
        check_auth_modules("kerberos")  # SSPI on Windows: nothing more to install
    finally:
        hostos.use(previous)


def test_the_runner_fails_on_a_native_commands_exit_code():
    assert "$ErrorActionPreference = 'Stop'" in RUNNER
    assert "$global:LASTEXITCODE = 0" in RUNNER and "$global:LASTEXITCODE -ne 0" in RUNNER
    assert "[scriptblock]::Create($ScriptText)" in RUNNER and "@Arguments" in RUNNER


def test_output_is_the_last_json_line():
    assert parse_output("x", "h", ["WARNING-ish text", '{"a": 1}']) == {"a": 1}
    assert parse_output("x", "h", ["", "  "]) is None
    with pytest.raises(ScriptError, match=r"x\.ps1 on h did not print JSON as its last line"):
        parse_output("x", "h", ["{bad"])


# --- the local transport (the harness on the host itself) ------------------------------

FAKE_PWSH = r'''#!{python}
import json, os, sys
request = json.loads(sys.stdin.read())
record = os.environ["FAKE_PWSH_RECORD"]
with open(record, "w") as f:
    json.dump({{"argv": sys.argv[1:], "request": request}}, f)
mode = request["Arguments"].get("Mode", "ok")
# what Windows PowerShell 5.1 writes to a redirected stderr (progress, a warning, an error)
CLIXML_PROGRESS = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/'
                   'powershell/2004/04"><Obj S="progress" RefId="0"><TN RefId="0"><T>System.'
                   'Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 '
                   'N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
                   '<AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD>'
                   '</PR></MS></Obj><S S="warning">WARNING: something harmless_x000D__x000A_</S>'
                   '</Objs>')
CLIXML_ERROR = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/'
                'powershell/2004/04"><S S="Error">Get-VM : Hyper-V was unable to find a virtual '
                "machine with name 'GMI Debian 12'._x000D__x000A_</S><S S=\"Error\">At line:1 "
                "char:1_x000D__x000A_</S></Objs>")
if mode == "ok":
    print("a line a cmdlet wrote")
    print(json.dumps({{"Echo": request["Arguments"]}}))
elif mode == "error-stream":
    print("{{}}")
    print("Get-VM : Hyper-V was unable to find a virtual machine with name 'GMI Debian 12'.", file=sys.stderr)
elif mode == "exit":
    print("a native command exited with code 3", file=sys.stderr)
    sys.exit(1)
elif mode == "clixml-progress":
    sys.stderr.write(CLIXML_PROGRESS)
    print(json.dumps({{"Echo": request["Arguments"]}}))
elif mode == "clixml-error":
    sys.stderr.write(CLIXML_ERROR)
    print("{{}}")
elif mode == "bootstrap-error":
    sys.stderr.write(CLIXML_PROGRESS)
    print(json.dumps({{"__error": "no VM named 'GMI Debian 12' on this host"}}))
    sys.exit(1)
'''


@pytest.fixture(params=["linux", "windows"])
def pwsh(request, tmp_path, monkeypatch) -> Iterator[tuple[LocalPowerShell, Path]]:
    """The stand-in, as each OS finds it: on Linux ``pwsh`` given by path; on Windows
    (the harness on the Hyper-V host itself) ``powershell.exe`` looked up on PATH, as
    ``--hyperv-local`` does, with the OS seam answering as Windows."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / ("pwsh" if request.param == "linux" else "powershell.exe")
    exe.write_text(FAKE_PWSH.format(python=sys.executable))
    exe.chmod(0o755)
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_PWSH_RECORD", str(record))
    if request.param == "linux":
        yield LocalPowerShell(str(exe), timeout=300), record
        return
    monkeypatch.setenv("PATH", str(bin_dir))
    previous = hostos.use(hostos.Windows())
    try:
        ps = LocalPowerShell(timeout=300)
        assert ps.exe == str(exe)
        yield ps, record
    finally:
        hostos.use(previous)


def test_local_parameters_travel_on_stdin_never_in_the_command_line(pwsh):
    ps, record = pwsh
    name = "GMI Debian 12'; Remove-Item C:\\ -Recurse; '"
    reply = ps.invoke("vm_status", script_text("vm_status"), {"Name": name, "Mode": "ok"})
    assert reply == {"Echo": {"Name": name, "Mode": "ok"}}
    seen = json.loads(record.read_text())
    assert all(name not in a for a in seen["argv"])
    assert "-EncodedCommand" in seen["argv"] and "-NonInteractive" in seen["argv"]
    assert seen["request"]["ScriptText"] == script_text("vm_status")
    assert seen["request"]["Runner"] == RUNNER


def test_local_error_stream_is_a_failure_even_with_exit_0(pwsh):
    ps, _ = pwsh
    with pytest.raises(ScriptError, match=r"vm_status\.ps1 failed on this host \(exit 0\): Get-VM : "
                                          r"Hyper-V was unable to find a virtual machine"):
        ps.invoke("vm_status", "", {"Mode": "error-stream"})


def test_local_clixml_progress_on_stderr_with_exit_0_is_success(pwsh):
    """Windows PowerShell 5.1 writes progress ("Preparing modules for first use") and
    warnings to a redirected stderr as CLIXML: not a failure."""
    ps, _ = pwsh
    assert ps.invoke("host_info", "", {"Mode": "clixml-progress"}) == {
        "Echo": {"Mode": "clixml-progress"}}


def test_local_clixml_error_records_are_a_failure_with_their_text(pwsh):
    ps, _ = pwsh
    with pytest.raises(ScriptError) as err:
        ps.invoke("vm_status", "", {"Mode": "clixml-error"})
    message = str(err.value)
    assert message.startswith("vm_status.ps1 failed on this host (exit 0): Get-VM : Hyper-V was "
                              "unable to find a virtual machine with name 'GMI Debian 12'. At line:1")
    assert "CLIXML" not in message and "_x000D_" not in message and "<Objs" not in message


def test_local_failure_message_comes_from_the_bootstraps_error_not_stderr(pwsh):
    ps, _ = pwsh
    with pytest.raises(ScriptError) as err:
        ps.invoke("vm_status", "", {"Mode": "bootstrap-error"})
    assert str(err.value) == ("vm_status.ps1 failed on this host (exit 1): no VM named "
                              "'GMI Debian 12' on this host")


def test_local_bootstrap_silences_progress_and_reports_errors_as_json():
    from harness.backends.hyperv.transport import LOCAL_BOOTSTRAP

    b = LOCAL_BOOTSTRAP
    for needle in ("$ProgressPreference = 'SilentlyContinue'", "$WarningPreference = 'SilentlyContinue'",
                   "[Console]::InputEncoding = $utf8", "[Console]::OutputEncoding = $utf8",
                   "New-Object Text.UTF8Encoding $false", "@{ __error = \"$_\" }", "exit 1"):
        assert needle in b, needle
    # the encodings are set before stdin is read; the whole run is inside the try
    assert b.index("try {") < b.index("InputEncoding") < b.index("[Console]::In.ReadToEnd()")
    assert b.index("& $runner") < b.index("} catch {")
    assert "$ProgressPreference = 'SilentlyContinue'" in RUNNER


def test_local_text_travels_as_utf8(pwsh, monkeypatch):
    import subprocess

    ps, _ = pwsh
    seen: dict = {}
    real = subprocess.run

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    name = "GMI Débian 12 \u2013 Größe"
    assert ps.invoke("vm_status", "", {"Name": name, "Mode": "ok"})["Echo"]["Name"] == name
    assert seen["encoding"] == "utf-8" and "text" not in seen


def test_clixml_errors_reads_only_error_records():
    from harness.backends.hyperv.transport import clixml_errors

    assert clixml_errors("") == []
    assert clixml_errors("plain text from pwsh 7") == ["plain text from pwsh 7"]
    assert clixml_errors("#< CLIXML\r\n<Objs broken") == ["#< CLIXML\r\n<Objs broken"]
    two = ('#< CLIXML\r\n<Objs xmlns="http://schemas.microsoft.com/powershell/2004/04">'
           '<S S="verbose">v</S></Objs>#< CLIXML\r\n<Objs xmlns="http://schemas.microsoft.com/'
           'powershell/2004/04"><S S="Error">boom_x000A_</S></Objs>')
    assert clixml_errors(two) == ["boom"]


def test_local_nonzero_exit_is_a_failure(pwsh):
    ps, _ = pwsh
    with pytest.raises(ScriptError, match=r"\(exit 1\): a native command exited with code 3"):
        ps.invoke("compact_disk", "", {"Mode": "exit"})


def test_local_needs_powershell(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"--hyperv-local needs pwsh or powershell\.exe on PATH"):
        LocalPowerShell()


def test_local_on_windows_prefers_windows_powershell_as_remote_sessions_use(tmp_path, monkeypatch):
    """On Windows: Windows PowerShell 5.1, the engine of every remote session (review
    finding 13: on Server 2016 the Hyper-V module is not PowerShell 7 compatible), from
    System32 even when PATH does not have it, though PowerShell 7 is on PATH; pwsh only
    where 5.1 is gone."""
    system32 = tmp_path / "Windows" / "System32" / "WindowsPowerShell" / "v1.0"
    system32.mkdir(parents=True)
    monkeypatch.setenv("SYSTEMROOT", str(tmp_path / "Windows"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "pwsh.exe").write_text("#!/bin/sh\n")
    (tmp_path / "empty" / "pwsh.exe").chmod(0o755)
    previous = hostos.use(hostos.Windows())
    try:
        assert LocalPowerShell().exe == str(tmp_path / "empty" / "pwsh.exe")  # 5.1 gone
        (system32 / "powershell.exe").write_text("#!/bin/sh\n")
        (system32 / "powershell.exe").chmod(0o755)
        assert LocalPowerShell().exe == str(system32 / "powershell.exe")
    finally:
        hostos.use(previous)


def test_local_files_are_copies(tmp_path, pwsh):
    ps, _ = pwsh
    src = tmp_path / "a.iso"
    src.write_bytes(b"iso")
    ps.put(src, str(tmp_path / "b.iso"))
    ps.get(str(tmp_path / "b.iso"), tmp_path / "c" / "d.iso")
    assert (tmp_path / "c" / "d.iso").read_bytes() == b"iso"


# --- the remote transport's options ------------------------------------------------------


def test_https_with_certificate_validation_is_the_default():
    kw = RemoteOptions("hv01", user="CORP\\builder", password="pw").wsman_kwargs()
    assert kw["ssl"] is True and kw["cert_validation"] is True and kw["encryption"] == "auto"
    assert kw["auth"] == "negotiate" and "port" not in kw


def test_a_ca_bundle_is_what_validates_the_certificate(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    kw = RemoteOptions("hv01", user="u", ca_bundle=str(ca)).wsman_kwargs()
    assert kw["cert_validation"] == str(ca)


def test_plain_http_only_with_message_encryption():
    kw = RemoteOptions("hv01", user="u", plain_http=True, auth="ntlm").wsman_kwargs()
    assert kw["ssl"] is False and kw["encryption"] == "always"
    assert RemoteOptions("hv01", plain_http=True).where == "hv01 (http port 5985, auth negotiate)"


@pytest.mark.parametrize(("options", "message"), [
    (RemoteOptions(""), "needs a host"),
    (RemoteOptions("hv01"), "--hyperv-auth=negotiate needs --hyperv-user"),
    (RemoteOptions("hv01", auth="certificate", plain_http=True, cert_pem="c", cert_key_pem="k"),
     "works only over HTTPS"),
    (RemoteOptions("hv01", auth="certificate"), "needs --hyperv-cert-pem"),
    (RemoteOptions("hv01", user="u", ca_bundle="/nonexistent/ca.pem"), "no such file"),
])
def test_bad_remote_options_fail_before_connecting(options, message):
    with pytest.raises(ConfigError, match=message):
        options.check()


def test_the_password_is_never_shown():
    opts = RemoteOptions("hv01", user="u", password="S3cret-Hyper-V")
    register_secret(opts.password)
    assert "S3cret" not in repr(opts)
    assert mask(f"login {opts.password}") == "login ***"


def test_settings_drive_the_transport(tmp_path):
    from hyperv_fake import hyperv_settings

    from harness.backends.hyperv.transport import make_transport

    s = hyperv_settings(tmp_path, hyperv_auth="credssp", hyperv_port=15986)
    ps = make_transport(s, "hv02")
    assert ps.host == "hv02"
    kw = ps.options.wsman_kwargs()  # type: ignore[attr-defined]
    assert kw["auth"] == "credssp" and kw["port"] == 15986 and kw["username"] == "CORP\\builder"
    with pytest.raises(ConfigError, match="must be one of negotiate, kerberos, ntlm, credssp, "
                                          "certificate, got 'basic'"):
        hyperv_settings(tmp_path, hyperv_auth="basic")


def test_the_hyperv_password_comes_only_from_env_or_file_and_is_masked(tmp_path):
    from harness.settings import BY_NAME, resolve

    assert BY_NAME["hyperv_password"].cli is False and BY_NAME["hyperv_password"].secret
    s = resolve({"backend": "hyperv"}, env={"GMI_HYPERV_PASSWORD": "Pa55-w0rd-HV"})
    shown = "\n".join(s.describe())
    assert "hyperv_password = ***  (environment)" in shown and "Pa55" not in shown
    assert mask("login with Pa55-w0rd-HV failed") == "login with *** failed"
