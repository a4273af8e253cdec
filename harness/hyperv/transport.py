"""PowerShell, run somewhere: the one seam between the Hyper-V backend and a host.

A transport runs one of the scripts in ``scripts/`` with named parameters and returns
what the script printed as JSON, parsed. Arguments travel as parameters (a hashtable
splatted onto the script block), never pasted into script text: VM names contain
spaces and paths contain quotes.

Two implementations: :class:`RemotePowerShell` over PowerShell Remoting (WSMan, with
pypsrp) and :class:`LocalPowerShell` (``pwsh``/``powershell.exe`` as a subprocess, when
the harness runs on the Hyper-V host itself). Both fail the same way: a terminating
error, anything in the error stream or a non-zero ``$LASTEXITCODE`` raises
:class:`ScriptError` naming the script and the host.

Measured on pypsrp 0.9.1: ``had_errors`` is true only for a *terminating* error, so the
runner sets ``$ErrorActionPreference = 'Stop'`` and this module also fails on a non-empty
error stream.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HypervisorError

SCRIPTS = resources.files("harness.hyperv") / "scripts"

# Runs a script's text as a script block with the caller's parameters splatted onto
# it; fails on a non-zero $LASTEXITCODE left by a native command.
RUNNER = r"""
param([Parameter(Mandatory)][string]$ScriptText, [hashtable]$Arguments = @{})
$ErrorActionPreference = 'Stop'
$global:LASTEXITCODE = 0
$block = [scriptblock]::Create($ScriptText)
& $block @Arguments
if ($global:LASTEXITCODE -ne 0) {
    throw "a native command exited with code $global:LASTEXITCODE"
}
"""

# The local runner reads {"ScriptText": ..., "Arguments": {...}} from stdin (Windows
# PowerShell 5.1 has no ConvertFrom-Json -AsHashtable, hence the loop).
LOCAL_BOOTSTRAP = r"""
$ErrorActionPreference = 'Stop'
$request = [Console]::In.ReadToEnd() | ConvertFrom-Json
$arguments = @{}
if ($request.Arguments) {
    foreach ($p in $request.Arguments.PSObject.Properties) { $arguments[$p.Name] = $p.Value }
}
$runner = [scriptblock]::Create($request.Runner)
& $runner -ScriptText $request.ScriptText -Arguments $arguments
"""


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


INT32 = range(-(2**31), 2**31)


def psrp_value(value: Any) -> Any:
    """A parameter value pypsrp serializes faithfully. pypsrp 0.9.1 tags every Python int
    as I32, so a larger one (a 250 GB disk size in bytes) would not deserialize on the
    host: it travels as a string, which the script's typed ``[long]`` parameter converts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value not in INT32:
        return str(value)
    if isinstance(value, dict):
        return {k: psrp_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [psrp_value(v) for v in value]
    return value


class RemotePowerShell(PowerShell):
    """PowerShell Remoting over WSMan with pypsrp: one runspace pool per host, reused."""

    def __init__(self, options: RemoteOptions) -> None:
        options.check()
        self.options = options
        self.host = options.host
        self._client: Any = None
        self._pool: Any = None

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
        return self._pool

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
        from pypsrp.powershell import PowerShell as PsrpPowerShell

        pool = self._connect()
        ps = PsrpPowerShell(pool)
        ps.add_script(RUNNER).add_parameter("ScriptText", text)
        ps.add_parameter("Arguments", psrp_value(params))
        try:
            output = ps.invoke()
        except Exception as exc:
            raise self._connection_error(exc) from None
        errors = [str(e) for e in ps.streams.error]
        if ps.had_errors or errors:
            raise ScriptError(f"{name}.ps1 failed on {self.host}: "
                              f"{_first_line(errors[0] if errors else 'terminating error')}")
        return parse_output(name, self.host, [str(o) for o in output if o is not None])

    def put(self, local: Path, remote: str) -> None:
        self._connect()
        try:
            self._client.copy(str(local), remote)
        except Exception as exc:
            raise TransportError(f"copying {local} to {self.host}:{remote} failed: "
                                 f"{_first_line(str(exc))}") from None

    def get(self, remote: str, local: Path) -> None:
        self._connect()
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client.fetch(remote, str(local))
        except Exception as exc:
            raise TransportError(f"fetching {self.host}:{remote} failed: "
                                 f"{_first_line(str(exc))}") from None

    def close(self) -> None:
        if self._pool is not None:
            # the pool may be gone with the host: nothing left to release then
            with contextlib.suppress(Exception):
                self._pool.close()
            self._pool = None


class LocalPowerShell(PowerShell):
    """``pwsh`` (or Windows PowerShell) as a subprocess on the Hyper-V host itself."""

    host = "localhost"

    def __init__(self, exe: str | None = None, timeout: float = 3600) -> None:
        found = exe or shutil.which("pwsh") or shutil.which("powershell.exe") \
            or shutil.which("powershell")
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
        request = json.dumps({"Runner": RUNNER, "ScriptText": text, "Arguments": params})
        try:
            proc = subprocess.run(self.command(), input=request, capture_output=True,
                                  text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ScriptError(f"{name}.ps1 did not finish within {self.timeout:.0f} s on "
                              "this host") from None
        if proc.returncode != 0 or proc.stderr.strip():
            raise ScriptError(f"{name}.ps1 failed on this host (exit {proc.returncode}): "
                              f"{_first_line(proc.stderr or proc.stdout)}")
        return parse_output(name, self.host, proc.stdout.splitlines())

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote, local)
