"""A replay fake PowerShell transport for the Hyper-V backend's tests (no Windows host
exists on the machines this harness is developed on).

It records every script it is asked to run with its parameters, checks that the
script is one of the real ``harness/backends/hyperv/scripts/*.ps1`` files, and replays replies:
recorded JSON from ``tests/hyperv_recordings/`` or values the test gives. Files put on
or fetched from the "host" live in a dict. It knows nothing of how a host behaves:
tests/hyperv_model.py is the model of a host (from Microsoft's documentation).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends.hyperv.transport import PowerShell, ScriptError, script_text
from harness.build import Build
from harness.distro import load
from harness.settings import resolve

RECORDINGS = Path(__file__).parent / "hyperv_recordings"


def recorded(name: str) -> Any:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


class Seq(list):  # type: ignore[type-arg]
    """Replies for successive runs of one script (the last one repeats)."""


Reply = Any  # a value, an exception to raise, a callable(params), or a Seq of those


class FakePowerShell(PowerShell):
    def __init__(self, replies: dict[str, Reply] | None = None, host: str = "hv01") -> None:
        self.host = host
        self.replies: dict[str, Reply] = {
            "host_info": recorded("host_info"),
            "new_run_folder": lambda p: {"Path": p["Root"] + "\\" + p["Name"]},
            "start_vm": {"State": "Running", "Typed": 0},
            "stop_vm": {"Result": "stopped"},
            "remove_items": lambda p: {"Removed": [*p.get("VmIds", []), *p.get("VmNames", []),
                                                   *p["Paths"]], "Skipped": []},
            "import_check": lambda p: {**recorded("import_check"), "Vmcx": p["Vmcx"]},
            **(replies or {}),
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, bytes] = {}
        self.closed = False

    def invoke(self, name: str, text: str, params: dict[str, Any]) -> Any:
        assert text == script_text(name)  # the real script file is what would be sent
        assert "$ErrorActionPreference = 'Stop'" in text
        json.dumps(params)  # parameters must be plain data (they travel serialized)
        self.calls.append((name, params))
        if name not in self.replies:
            raise AssertionError(f"the fake has no reply for {name}.ps1 {params}")
        reply = self.replies[name]
        if isinstance(reply, Seq):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(params)
        return json.loads(json.dumps(reply))  # what a JSON round trip would give

    def put(self, local: Path, remote: str) -> None:
        self.calls.append(("put", {"local": str(local), "remote": remote}))
        self.files[remote] = local.read_bytes()

    def get(self, remote: str, local: Path) -> None:
        self.calls.append(("get", {"remote": remote, "local": str(local)}))
        if remote not in self.files:
            raise ScriptError(f"no such file on the fake host: {remote}")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(self.files[remote])

    def close(self) -> None:
        self.closed = True

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def params(self, name: str) -> dict[str, Any]:
        found = [p for n, p in self.calls if n == name]
        assert found, f"{name} was never run; ran: {self.names()}"
        return found[-1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def hyperv_settings(tmp_path: Path, **values: Any) -> Any:
    cli = {"backend": "hyperv", "hyperv_host": "hv01", "hyperv_user": "CORP\\builder",
           "hyperv_switch": "External", "out": str(tmp_path / "out"),
           "scratch": str(tmp_path / "scratch"), "credentials_dir": str(tmp_path / "creds"),
           "hyperv_install_iso": "D:\\iso\\debian-12.8.0-amd64-netinst.iso",
           "hyperv_install_sha256": "a" * 64, **values}
    return resolve(cli, env={})


def make_build(tmp_path: Path, ps: FakePowerShell, *, clock: Any = None,
               distro: str = "debian-12", catalogue: bool = False, **values: Any) -> Build:
    """A build on the fake host. Its install media come from the --hyperv-install-*
    settings unless ``catalogue`` (the backend's default: the distro's official ISO)."""
    from harness.backends.hyperv.backend import Clock, HyperVBackend
    from harness.backends.hyperv.media import media_from_settings

    fake_clock = clock or FakeClock()
    backend = HyperVBackend(transport=lambda settings, host: ps,
                            clock=Clock(fake_clock.monotonic, fake_clock.sleep))
    if not catalogue:
        backend.media = media_from_settings
    workdir = tmp_path / "scratch" / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    b = Build(load(distro), hyperv_settings(tmp_path, **values), backend, "RUN", workdir,
              tmp_path / "logs", progress=lambda line: None)
    b.logdir.mkdir(parents=True, exist_ok=True)
    return b


Handler = Callable[[dict[str, Any]], Any]
