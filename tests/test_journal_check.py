"""The checklist's journal check against a clone's journal, without a clone: an RCU
stall or soft lockup (a vCPU the host starved) is allowed only where the clone's CPUs
are emulated, and is then reported; every other error fails the check on any backend."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from harness import distro, shipped
from harness.backends.qemu.vm import QemuVM

STALL = ("rcu: INFO: rcu_preempt self-detected stall on CPU\n"
         "rcu: \t0-....: (1 GPs behind) idle=4354/1/0x4000000000000000 softirq=5877/5878 fqs=944\n")


def checklist_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gmi_test_checklist_journal",
                                                  shipped("checks") / "test_checklist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Journal:
    """A testinfra host whose ``journalctl -b -p err`` prints ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def sudo(self) -> Any:
        import contextlib
        return contextlib.nullcontext()

    def check_output(self, command: str) -> str:
        assert "journalctl -b -p err" in command
        return self.text


def vm(tmp_path: Path, accel: str) -> QemuVM:
    return QemuVM(name="clone", workdir=tmp_path, disk=tmp_path / "d", disk_format="qcow2",
                  vars_fd=tmp_path / "v", secure_boot=True, accel=accel, cpus=1, memory_mb=512)


def run(tmp_path: Path, accel: str, journal: str) -> None:
    check = checklist_module().test_journal_has_no_errors_this_boot
    clone = SimpleNamespace(vm=vm(tmp_path, accel))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(Journal(journal), distro.load("debian-12"), clone)


def test_a_starved_emulated_cpu_is_allowed_and_said(tmp_path: Path):
    with pytest.warns(UserWarning, match="starved by the host.*rcu_preempt self-detected stall"):
        checklist_module().test_journal_has_no_errors_this_boot(
            Journal(STALL), distro.load("debian-12"), SimpleNamespace(vm=vm(tmp_path, "tcg")))


def test_the_same_stall_fails_where_the_cpu_is_not_emulated(tmp_path: Path):
    with pytest.raises(AssertionError, match="rcu_preempt self-detected stall"):
        run(tmp_path, "kvm", STALL)


def test_other_errors_still_fail_under_emulation(tmp_path: Path):
    with pytest.raises(AssertionError, match="Failed to start"):
        run(tmp_path, "tcg", STALL + "Failed to start systemd-networkd.service\n")
