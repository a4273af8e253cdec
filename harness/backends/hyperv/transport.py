"""PowerShell, run somewhere: the one seam between the Hyper-V backend and a host.

A transport runs one of the scripts in ``scripts/`` with named parameters and returns
what the script printed as JSON, parsed. Arguments travel as parameters (a hashtable
splatted onto the script block), never pasted into script text: VM names contain
spaces and paths contain quotes.

Two implementations: :class:`RemotePowerShell` over PowerShell Remoting (WSMan, with
pypsrp) and :class:`LocalPowerShell` (``powershell.exe``, else ``pwsh``, as a subprocess, when
the harness runs on the Hyper-V host itself). Both fail the same way: a terminating
error, anything in the error stream or a non-zero ``$LASTEXITCODE`` raises
:class:`ScriptError` naming the script and the host.

Measured on pypsrp 0.9.1: ``had_errors`` is true only for a *terminating* error, so the
runner sets ``$ErrorActionPreference = 'Stop'`` and this module also fails on a non-empty
error stream.

Over PowerShell Remoting the scripts run in Windows PowerShell 5.1 (pypsrp connects to
the default ``Microsoft.PowerShell`` endpoint); locally in ``powershell.exe`` (5.1) too,
PowerShell 7 only where 5.1 is missing. The scripts are written for 5.1.

Size: one seam (:class:`PowerShell`) with its two implementations (remote and local)
and the quirks each needs, kept together so the seam can be read whole.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PureWindowsPath
from typing import Any

from harness.errors import ConfigError, HypervisorError
from harness.host import hostos
from harness.settings import Settings

SCRIPTS = resources.files("harness.backends.hyperv") / "scripts"
log = logging.getLogger(__name__)

# Runs a script's text as a script block with the caller's parameters splatted onto
# it; fails on a non-zero $LASTEXITCODE left by a native command. No progress records
# (Export-VM, Copy-Item): over WSMan they are messages nobody reads.
RUNNER = r"""
param([Parameter(Mandatory)][string]$ScriptText, [hashtable]$Arguments = @{})
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$global:LASTEXITCODE = 0
$block = [scriptblock]::Create($ScriptText)
& $block @Arguments
if ($global:LASTEXITCODE -ne 0) {
    throw "a native command exited with code $global:LASTEXITCODE"
}
"""

# The local runner reads {"ScriptText": ..., "Arguments": {...}} from stdin (Windows
# PowerShell 5.1 has no ConvertFrom-Json -AsHashtable, hence the loop). stdin and stdout
# are UTF-8 (5.1 uses the OEM code page otherwise). With redirected pipes, 5.1 writes
# progress and warnings to stderr as "#< CLIXML" ("Preparing modules for first use"):
# both are silenced, and a failure comes back as {"__error": ...} on stdout, exit 1.
LOCAL_BOOTSTRAP = r"""
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
try {
    $utf8 = New-Object Text.UTF8Encoding $false
    [Console]::InputEncoding = $utf8
    [Console]::OutputEncoding = $utf8
    $request = [Console]::In.ReadToEnd() | ConvertFrom-Json
    $arguments = @{}
    if ($request.Arguments) {
        foreach ($p in $request.Arguments.PSObject.Properties) { $arguments[$p.Name] = $p.Value }
    }
    $runner = [scriptblock]::Create($request.Runner)
    & $runner -ScriptText $request.ScriptText -Arguments $arguments
} catch {
    [Console]::Out.WriteLine((@{ __error = "$_" } | ConvertTo-Json -Compress))
    exit 1
}
"""

# Scripts that must not run twice when the session broke during the call (they may
# have run): they create a VM or move the export. start_vm with Keys types the boot
# command (see :func:`rerunnable`). write_chunk cuts the part to its offset first and
# finish_upload accepts an upload it already finished: both may run again.
NOT_RERUNNABLE = frozenset({"new_vm", "new_clone_vm", "export_vm"})

# How much of a file one read_chunk.ps1 call returns (base64: a third more on the wire).
FETCH_CHUNK = 8 << 20
# How much one write_chunk.ps1 call sends (base64 in one pipeline's parameters, which
# pypsrp fragments into envelopes of the host's MaxEnvelopeSizekb).
UPLOAD_CHUNK = 4 << 20
# An upload resumes this many times after the session broke (where the part stands).
UPLOAD_RESUMES = 3

# The Python modules each PowerShell Remoting authentication needs beyond pypsrp's own,
# and the pip line that brings them (the error says it, at start). Kerberos from Linux
# goes through GSSAPI (gssapi, krb5: built against the system's Kerberos headers); on
# Windows pyspnego uses SSPI and needs nothing more.
AUTH_EXTRAS = {
    "credssp": (("requests_credssp",), "pip install 'pypsrp[credssp]==0.9.1'"),
    "kerberos": (("gssapi", "krb5"), "apt-get install libkrb5-dev gcc (Debian; krb5-devel on "
                 "Fedora), then pip install 'gmi-harness[kerberos]' (pypsrp[kerberos]==0.9.1)"),
}


class ScriptError(HypervisorError):
    """A Hyper-V script failed on the host (its error stream or exit code says so)."""


class TransportError(HypervisorError):
    """The host could not be reached or refused the login."""


def script_text(name: str) -> str:
    """The text of ``scripts/<name>.ps1``."""
    try:
        return (SCRIPTS / f"{name}.ps1").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HypervisorError(f"no Hyper-V script named {name!r} in {SCRIPTS}") from None


def parse_output(name: str, host: str, lines: list[str]) -> Any:
    """The JSON a script printed last (``None`` when it printed nothing)."""
    text = "\n".join(line for line in lines if line.strip()).strip()
    if not text:
        return None
    last = text.splitlines()[-1]
    try:
        return json.loads(last)
    except json.JSONDecodeError:
        raise ScriptError(
            f"{name}.ps1 on {host} did not print JSON as its last line: {last[:200]!r}"
        ) from None


def _first_line(text: str) -> str:
    return " ".join(text.strip().split())[:500] or "(no message)"


def rerunnable(name: str, params: dict[str, Any]) -> bool:
    """Whether ``name`` may run again after the session broke during its call."""
    if name in NOT_RERUNNABLE:
        return False
    return not (name == "start_vm" and params.get("Keys"))  # would type the keys twice


_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def clixml_errors(stderr: str) -> list[str]:
    """The error records in what PowerShell wrote to stderr. Windows PowerShell 5.1 with
    redirected pipes writes its streams there as ``#< CLIXML`` documents: progress,
    warnings and verbose records are not errors; ``<S S="Error">`` lines are. Plain text
    (pwsh 7 writes errors that way) counts as an error; so does CLIXML that does not
    parse."""
    text = stderr.strip()
    if not text:
        return []
    if not text.startswith("#< CLIXML"):
        return [text]
    lines: list[str] = []
    for doc in text.split("#< CLIXML")[1:]:
        doc = doc.strip()
        if not doc:
            continue
        try:
            root = ET.fromstring(doc)
        except ET.ParseError:
            return [text]
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == "S" and el.get("S") == "Error":
                lines.append(_CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), el.text or ""))
    message = "".join(lines).strip()
    return [message] if message else []


def reported_error(stdout: str) -> str:
    """The ``{"__error": ...}`` the local bootstrap prints when the script failed."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{") and "__error" in line:
            with contextlib.suppress(json.JSONDecodeError):
                found = json.loads(line)
                if isinstance(found, dict) and "__error" in found:
                    return str(found["__error"])
    return ""


class PowerShell(ABC):
    """Runs the Hyper-V scripts on one host."""

    host: str

    def run(self, name: str, **params: Any) -> Any:
        """Run ``scripts/<name>.ps1`` with ``params``; return its JSON output, parsed."""
        return self.invoke(name, script_text(name), {k: v for k, v in params.items()
                                                     if v is not None})

    @abstractmethod
    def invoke(self, name: str, text: str, params: dict[str, Any]) -> Any: ...

    @abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to ``remote`` on the host."""

    @abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy the host's file ``remote`` to ``local``."""

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach one host over PowerShell Remoting."""

    host: str
    user: str = ""
    password: str = field(default="", repr=False)
    auth: str = "negotiate"
    port: int = 0
    ca_bundle: str = ""
    plain_http: bool = False
    cert_pem: str = ""
    cert_key_pem: str = ""
    operation_timeout: int = 60
    read_timeout: int = 90

    def check(self) -> None:
        """Refuse combinations that would be insecure or cannot work, before connecting."""
        if not self.host:
            raise ConfigError("--backend=hyperv needs a host: --hyperv-host NAME (or "
                              "--hyperv-hosts A,B for a pool, or --hyperv-local on the host)")
        if self.auth == "certificate":
            if self.plain_http:
                raise ConfigError("--hyperv-auth=certificate works only over HTTPS; drop "
                                  "--hyperv-plain-http")
            if not (self.cert_pem and self.cert_key_pem):
                raise ConfigError("--hyperv-auth=certificate needs --hyperv-cert-pem and "
                                  "--hyperv-cert-key-pem")
        elif not self.user:
            raise ConfigError(f"--hyperv-auth={self.auth} needs --hyperv-user (and the password "
                              "in GMI_HYPERV_PASSWORD or the config file)")
        if self.ca_bundle and not Path(self.ca_bundle).expanduser().is_file():
            raise ConfigError(f"--hyperv-ca-bundle {self.ca_bundle}: no such file")
        check_auth_modules(self.auth)

    def wsman_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for pypsrp's ``Client``/``WSMan``: HTTPS with certificate
        validation unless plain HTTP was asked for, and then message encryption always."""
        kw: dict[str, Any] = {
            "username": self.user or None, "password": self.password or None,
            "auth": self.auth, "ssl": not self.plain_http,
            "cert_validation": str(Path(self.ca_bundle).expanduser()) if self.ca_bundle else True,
            "encryption": "always" if self.plain_http else "auto",
            "operation_timeout": self.operation_timeout, "read_timeout": self.read_timeout,
            "connection_timeout": 30,
        }
        if self.port:
            kw["port"] = self.port
        if self.auth == "certificate":
            kw.update(certificate_pem=self.cert_pem, certificate_key_pem=self.cert_key_pem)
        return kw

    @property
    def where(self) -> str:
        scheme = "http" if self.plain_http else "https"
        port = self.port or (5985 if self.plain_http else 5986)
        return f"{self.host} ({scheme} port {port}, auth {self.auth})"


def check_auth_modules(auth: str) -> None:
    """Refuse, in one line with the install line, an authentication whose Python
    modules are not installed (pypsrp would fail only at connect)."""
    import importlib.util

    modules, how = AUTH_EXTRAS.get(auth, ((), ""))
    if auth == "kerberos" and hostos.current().name == "windows":
        return  # SSPI
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--hyperv-auth={auth} needs the Python module(s) {', '.join(missing)}, "
                          f"which are not installed: {how}")


INT32 = range(-(2**31), 2**31)


def psrp_value(value: Any) -> Any:
    """A parameter value pypsrp serializes faithfully. pypsrp 0.9.1 tags every Python int
    as I32, so a larger one (a 250 GB disk size in bytes) would not deserialize on the
    host: it travels tagged as I64 (a ``long``)."""
    from pypsrp.serializer import TaggedValue

    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value not in INT32:
        return TaggedValue("I64", value)
    if isinstance(value, dict):
        return {k: psrp_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [psrp_value(v) for v in value]
    return value


class RemotePowerShell(PowerShell):
    """PowerShell Remoting over WSMan with pypsrp: one runspace pool per host, reused."""

    def __init__(self, options: RemoteOptions, fetch_chunk: int = FETCH_CHUNK) -> None:
        options.check()
        self.options = options
        self.host = options.host
        self.fetch_chunk = fetch_chunk
        self._client: Any = None
        self._pool: Any = None
        # At DEBUG pypsrp logs every WSMan message, upload chunks included.
        psrp_log = logging.getLogger("pypsrp")
        if psrp_log.level == logging.NOTSET:
            psrp_log.setLevel(logging.INFO)

    def _connect(self) -> Any:
        if self._pool is None:
            from pypsrp.client import Client
            from pypsrp.powershell import RunspacePool

            try:
                self._client = Client(self.options.host, **self.options.wsman_kwargs())
                pool = RunspacePool(self._client.wsman)
                pool.open()
            except Exception as exc:
                raise self._connection_error(exc) from None
            self._pool = pool
            self._raise_envelope_size()
        return self._pool

    def _raise_envelope_size(self) -> None:
        """Use the host's MaxEnvelopeSizekb when it is larger than what pypsrp assumes
        (500 KiB once the pool has opened with protocol 2.2+): fewer round trips for
        uploads and fetches. Reading the WinRM configuration may need rights the account
        lacks: then nothing changes."""
        from pypsrp.wsman import NAMESPACES

        wsman = self._client.wsman
        try:
            config = wsman.get_server_config()
            found = config.find("cfg:Config/cfg:MaxEnvelopeSizekb", namespaces=NAMESPACES)
            size = int(found.text or "0") * 1024 if found is not None else 0
        except Exception as exc:  # an access-denied fault, an odd reply: keep the default
            log.debug("cannot read the WinRM MaxEnvelopeSizekb of %s: %s", self.host, exc)
            return
        if size > wsman.max_envelope_size:
            wsman.update_max_payload_size(size)

    def _drop(self) -> None:
        """Forget a broken session (the next call opens a new one)."""
        pool, self._pool = self._pool, None
        client, self._client = self._client, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()  # its HTTP session

    def _connection_error(self, exc: BaseException) -> TransportError:
        from pypsrp.exceptions import AuthenticationError, WinRMTransportError

        o = self.options
        if isinstance(exc, AuthenticationError):
            why = f"the host refused the login of {o.user or 'the certificate'}"
        elif isinstance(exc, WinRMTransportError):
            why = f"HTTP {exc.code}"
            if exc.code == 401:
                why += f": the host refused the login of {o.user or 'the certificate'}"
        else:
            why = _first_line(f"{type(exc).__name__}: {exc}")
            if "CERTIFICATE_VERIFY_FAILED" in why or "SSLError" in why:
                why += " (pass the CA that signed the host's WinRM certificate with " \
                       "--hyperv-ca-bundle)"
        return TransportError(f"cannot open PowerShell Remoting to {o.where}: {why}")

    def invoke(self, name: str, text: str, params: dict[str, Any]) -> Any:
        """Run one script. When the session breaks during the call (WinRM dropped an idle
        shell during a long guest stage, the host restarted its WinRM service), a new
        session is opened and the script runs once more, unless it is one that must not
        run twice (:func:`rerunnable`)."""
        from pypsrp.powershell import PowerShell as PsrpPowerShell

        for attempt in (1, 2):
            pool = self._connect()
            try:
                ps = PsrpPowerShell(pool)
                ps.add_script(RUNNER).add_parameter("ScriptText", text)
                ps.add_parameter("Arguments", psrp_value(params))
                output = ps.invoke()
                break
            except Exception as exc:
                self._drop()
                why = _first_line(f"{type(exc).__name__}: {exc}")
                if attempt == 2:
                    raise TransportError(f"{name}.ps1 on {self.options.where}: the session "
                                         f"broke again after reconnecting: {why}") from None
                if not rerunnable(name, params):
                    raise TransportError(
                        f"{name}.ps1 on {self.options.where}: the PowerShell Remoting session "
                        f"broke during the call ({why}); not run again, it may have run and "
                        "must not run twice") from None
                log.warning("%s.ps1 on %s: the session broke (%s); reconnecting and running "
                            "it again", name, self.host, why)
        errors = [str(e) for e in ps.streams.error]
        if ps.had_errors or errors:
            raise ScriptError(f"{name}.ps1 failed on {self.host}: "
                              f"{_first_line(errors[0] if errors else 'terminating error')}")
        return parse_output(name, self.host, [str(o) for o in output if o is not None])

    def put(self, local: Path, remote: str) -> None:
        """Upload in chunks into ``remote``'s folder (``write_chunk.ps1``), resumable,
        SHA-256 checked on the host. pypsrp's ``Client.copy`` is not used: it writes the
        whole file to the account's TEMP on the system drive first, and a dropped
        session leaves it there."""
        upload_in_chunks(self, local, remote, UPLOAD_CHUNK)

    def get(self, remote: str, local: Path) -> None:
        """Fetch in chunks (``read_chunk.ps1``); pypsrp's ``Client.fetch`` is not used: it
        reads the whole file into one base64 string on the host, which fails beyond
        about 800 MB."""
        fetch_in_chunks(self, remote, local, self.fetch_chunk)

    def close(self) -> None:
        # the pool may be gone with the host: nothing left to release then
        self._drop()


def fetch_in_chunks(ps: PowerShell, remote: str, local: Path, chunk: int = FETCH_CHUNK) -> None:
    """The host's file ``remote`` to ``local`` in chunks (``read_chunk.ps1``), written to
    ``local`` only when complete. The caller checks the result's SHA-256 against the
    host's."""
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(local.name + ".part")
    offset = 0
    try:
        with part.open("wb") as out:
            while True:
                reply = ps.run("read_chunk", Path=remote, Offset=offset, Count=chunk)
                n = reply.get("N") if isinstance(reply, dict) else None
                data = reply.get("Data") if isinstance(reply, dict) else None
                if not isinstance(n, int) or isinstance(n, bool) or not isinstance(data, str):
                    raise ScriptError(f"read_chunk.ps1 on {ps.host} returned no valid "
                                      f"chunk of {remote} at offset {offset}")
                got = base64.b64decode(data, validate=True)
                if len(got) != n:
                    raise ScriptError(f"read_chunk.ps1 on {ps.host}: {len(got)} bytes "
                                      f"at offset {offset} of {remote}, announced {n}")
                if n == 0:
                    break
                out.write(got)
                offset += n
        part.replace(local)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def upload_in_chunks(ps: PowerShell, local: Path, remote: str, chunk: int = UPLOAD_CHUNK,
                     log_resume: logging.Logger = log) -> None:
    """``local`` to the host's ``remote``: written chunk by chunk into ``<remote>.part``
    (``write_chunk.ps1``: in ``remote``'s folder, the run's, where the janitor sees a part
    a dead run left), then its SHA-256 compared with ``local``'s on the host and the
    part renamed (``finish_upload.ps1``). When the session breaks, the upload resumes
    where the part stands (:data:`UPLOAD_RESUMES` times); a part whose SHA-256 differs
    is removed and the upload starts over once."""
    from harness.host.tools import sha256_file

    size, digest = local.stat().st_size, sha256_file(local)
    resumes = started_over = 0
    while True:
        try:
            state = ps.run("write_chunk", Path=remote)
            offset = min(int(state.get("Length") or 0), size) if isinstance(state, dict) else 0
            if offset:
                log_resume.info("upload of %s to %s resumes at byte %d of %d", local.name, ps.host,
                                offset, size)
            with local.open("rb") as f:
                f.seek(offset)
                while offset < size:
                    data = f.read(chunk)
                    reply = ps.run("write_chunk", Path=remote, Offset=offset,
                                   Data=base64.b64encode(data).decode())
                    length = reply.get("Length") if isinstance(reply, dict) else None
                    if length != offset + len(data):
                        raise ScriptError(f"write_chunk.ps1 on {ps.host}: {remote}.part holds "
                                          f"{length} bytes after a chunk to {offset + len(data)}")
                    offset += len(data)
            ps.run("finish_upload", Path=remote, Sha256=digest)
            return
        except TransportError as exc:
            resumes += 1
            if resumes > UPLOAD_RESUMES:
                raise TransportError(f"uploading {local} to {ps.host}:{remote}: the session broke "
                                     f"{resumes} times ({_first_line(str(exc))})") from None
            log_resume.warning("upload of %s to %s: the session broke; resuming", local.name, ps.host)
        except ScriptError as exc:
            if "SHA-256" not in str(exc) or started_over:
                raise
            started_over += 1  # the host removed the part: once more from the start
            log_resume.warning("upload of %s to %s: %s; starting over", local.name, ps.host, exc)


class LocalPowerShell(PowerShell):
    """Windows PowerShell 5.1 (``pwsh`` where 5.1 is missing) as a subprocess on the
    Hyper-V host itself."""

    host = "localhost"

    def __init__(self, exe: str | None = None, timeout: float = 3600) -> None:
        found = exe or next(filter(None, map(shutil.which, hostos.current().powershell_names())),
                            None)
        if not found:
            raise ConfigError("--hyperv-local needs pwsh or powershell.exe on PATH (it runs on "
                              "the Hyper-V host itself)")
        self.exe = found
        self.timeout = timeout

    def command(self) -> list[str]:
        encoded = base64.b64encode(LOCAL_BOOTSTRAP.encode("utf-16-le")).decode()
        return [self.exe, "-NoLogo", "-NoProfile", "-NonInteractive",
                "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]

    def invoke(self, name: str, text: str, params: dict[str, Any]) -> Any:
        """Fails on a non-zero exit code (the message from the bootstrap's
        ``{"__error": ...}``) and on error records on stderr; progress and warnings that
        Windows PowerShell 5.1 writes there as CLIXML are not failures."""
        request = json.dumps({"Runner": RUNNER, "ScriptText": text, "Arguments": params})
        try:
            proc = subprocess.run(self.command(), input=request, capture_output=True,
                                  encoding="utf-8", errors="replace", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ScriptError(f"{name}.ps1 did not finish within {self.timeout:.0f} s on "
                              "this host") from None
        errors = clixml_errors(proc.stderr or "")
        if proc.returncode != 0 or errors:
            why = reported_error(proc.stdout or "") or (errors[0] if errors else "") \
                or proc.stdout or ""
            raise ScriptError(f"{name}.ps1 failed on this host (exit {proc.returncode}): "
                              f"{_first_line(why)}")
        return parse_output(name, self.host, proc.stdout.splitlines())

    def put(self, local: Path, remote: str) -> None:
        part = Path(remote + ".part")
        shutil.copyfile(local, part)  # a copy that breaks off leaves a .part, never `remote`
        part.replace(remote)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote, local)


# The tag every VM and folder of a run carries (in Notes, and a run marker file).
TAG = "gmi-harness"


def build_name(vm_name: str, run_id: str, worker: str) -> str:
    """The build VM's own name on the host: the GMI's, and whose run it is. A host that
    runs vmgenie has a VM named after the GMI (vmgenie's base VM, which its import
    removes and replaces): the build never uses that name but around Export-VM."""
    return f"{vm_name} (gmi-harness {run_id} {worker or 'main'})"


def host_join(folder: str, *parts: str) -> str:
    """A path on the (Windows) host."""
    return str(PureWindowsPath(folder, *parts))


def make_transport(settings: Settings, host: str) -> PowerShell:
    """The transport the settings ask for (local PowerShell or PowerShell Remoting)."""
    if settings.hyperv_local:
        return LocalPowerShell()
    return RemotePowerShell(RemoteOptions(
        host=host, user=settings.hyperv_user, password=settings.hyperv_password,
        auth=settings.hyperv_auth, port=settings.hyperv_port,
        ca_bundle=settings.hyperv_ca_bundle, plain_http=settings.hyperv_plain_http,
        cert_pem=settings.hyperv_cert_pem, cert_key_pem=settings.hyperv_cert_key_pem))
