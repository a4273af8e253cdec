"""The checklist's clone in vmgenie's shape on the QEMU backend: 1 vCPU, 512 MB (QEMU's
memory is static), Secure Boot on with OVMF's Microsoft keys, whatever the build VM's
size; the ``clone_*`` settings change it, and the build record says what the clone got.

vmgenie's ``ProvisionVm`` (src/HyperV/VmProvisioningService.cs) defaults to
``cpuCount = "1"``, ``memoryMb = "512"`` with ``New-VM -MemoryStartupBytes`` (static) and
``Set-VMFirmware -EnableSecureBoot On -SecureBootTemplate MicrosoftUEFICertificateAuthority``.
The Hyper-V side of the same shape is in tests/test_hyperv_model.py. No VM boots here:
the QEMU command line is read, ``QemuVM.start`` is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import distro, settings
from harness.backends.base import CloneShape
from harness.backends.qemu import backend as qbackend
from harness.backends.qemu import vm as qvm
from harness.build import Build
from harness.errors import ConfigError

D = distro.load("debian-12")


def make_build(tmp_path: Path, **values: Any) -> Build:
    s = settings.resolve({"accel": "tcg", **values}, env={})
    b = Build(D, s, qbackend.QemuBackend(), "r", tmp_path, tmp_path / "logs")
    b.logdir.mkdir(parents=True)
    return b


@pytest.fixture
def no_boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(qvm.QemuVM, "start", lambda self: None)
    monkeypatch.setattr(qbackend, "qemu_img", lambda *a: "")
    monkeypatch.setattr(qbackend, "bootstrapper", lambda build: _Bootstrapper(tmp_path))
    monkeypatch.setattr(qbackend, "ovmf", lambda kind: _ovmf(tmp_path, kind))
    monkeypatch.setattr(qvm, "ovmf", lambda kind: _ovmf(tmp_path, kind))


class _Bootstrapper:
    """Step 1 stood in for: the build VM's disk is a name, nothing is installed."""

    def __init__(self, tmp_path: Path) -> None:
        self.disk = tmp_path / "build.raw"

    def host_tools(self, build: Build) -> list[str]:
        return []

    def install_disk(self, build: Build, nic_names: Any) -> Path:
        return self.disk


def _ovmf(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"ovmf-{kind}.fd"
    path.write_bytes(kind.encode())
    return path


def smp_and_memory(vm: qvm.QemuVM) -> tuple[str, str]:
    cmd = vm.command()
    return cmd[cmd.index("-smp") + 1], cmd[cmd.index("-m") + 1]


def test_the_clone_is_vmgenies_vm_and_the_build_vm_keeps_its_size(tmp_path, no_boot):
    b = make_build(tmp_path)
    backend = b.backend
    build_vm = backend.provision(b)
    clone = backend.clone(b, tmp_path / "x.vhdx", tmp_path / "seed.iso", "clone")
    assert isinstance(build_vm, qvm.QemuVM) and isinstance(clone, qvm.QemuVM)
    assert smp_and_memory(build_vm) == ("2", "2048")  # vm_cpus, vm_memory_mb
    assert smp_and_memory(clone) == ("1", "512")      # vmgenie's ProvisionVm defaults
    assert clone.secure_boot and "smm=on" in " ".join(clone.command())
    assert b.record["clone_shape"] == {
        "cpus": 1, "memory_mb": 512, "memory": "static", "secure_boot": "on",
        "secure_boot_template": "MicrosoftUEFICertificateAuthority",
        "secure_boot_keys": "OVMF's Microsoft keys"}
    # fresh UEFI variables with the Microsoft keys, not the build VM's
    assert clone.vars_fd.read_bytes() == b"vars_ms" and clone.vars_fd != build_vm.vars_fd


def test_the_clone_shape_settings_change_only_the_clone(tmp_path, no_boot):
    b = make_build(tmp_path, clone_cpus=2, clone_memory_mb=1024, clone_secure_boot="off",
                   vm_cpus=1, vm_memory_mb=4096)
    build_vm = b.backend.provision(b)
    clone = b.backend.clone(b, tmp_path / "x.vhdx", tmp_path / "seed.iso", "clone")
    assert smp_and_memory(build_vm) == ("1", "4096")
    assert smp_and_memory(clone) == ("2", "1024")
    assert not clone.secure_boot and clone.vars_fd.read_bytes() == b"vars"
    assert b.record["clone_shape"]["secure_boot"] == "off"
    assert CloneShape.of(b.settings).describe() == "2 vCPU, 1024 MB static, Secure Boot off"


@pytest.mark.parametrize(("values", "message"), [
    ({"clone_cpus": 0}, "--clone-cpus: clone_cpus: must be between 1 and 64, got 0"),
    ({"clone_memory_mb": 128}, "--clone-memory-mb: clone_memory_mb: must be at least 256, got 128"),
    ({"clone_secure_boot": "maybe"}, "clone_secure_boot must be one of on, off"),
    ({"clone_secure_boot_template": "Microsoft"}, "clone_secure_boot_template must be one of"),
])
def test_bad_clone_settings_are_refused_at_start(values, message):
    with pytest.raises(ConfigError, match=message):
        settings.resolve(values, env={})


def test_qemu_refuses_a_template_its_keys_do_not_stand_for(tmp_path, no_boot, monkeypatch):
    monkeypatch.setattr(qbackend.host, "require_tools", lambda tools: None)
    b = make_build(tmp_path, clone_secure_boot_template="MicrosoftWindows")
    with pytest.raises(ConfigError, match=r"MicrosoftWindows: the qemu backend's Secure Boot keys"):
        b.backend.check_host(b)
    off = make_build(tmp_path / "ok", clone_secure_boot_template="MicrosoftWindows",
                     clone_secure_boot="off")
    off.backend.check_host(off)  # no Secure Boot: no template to stand for
