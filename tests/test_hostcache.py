"""The accelerator verdict is remembered per host boot and qemu version (issue #14):
only the first run after a reboot pays the ~25 s KVM probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.qemu import vm as qemu
from harness.host import cache as hostcache


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A fake host: its boot id, qemu version and KVM probe are ours to change."""
    boot = tmp_path / "boot_id"
    boot.write_text("11111111-2222-3333-4444-555555555555\n")
    state: dict[str, object] = {"probes": 0, "kvm_works": False, "boot": boot,
                                "file": tmp_path / "cache" / "host-verdicts.json"}

    def fake_probe(workdir: Path, timeout: float) -> bool:
        state["probes"] = int(state["probes"]) + 1  # type: ignore[call-overload]
        return bool(state["kvm_works"])

    monkeypatch.setattr(hostcache, "BOOT_ID", boot)
    monkeypatch.setattr(hostcache, "CACHE_FILE", state["file"])
    monkeypatch.setattr(qemu, "_kvm_boots", fake_probe)
    monkeypatch.setattr(qemu, "qemu_version", lambda: "QEMU emulator version 7.2.19")
    monkeypatch.setattr(qemu.os, "access", lambda path, mode: True)  # /dev/kvm is there
    monkeypatch.setattr(qemu, "_ACCEL_CACHE", {})
    return state


def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later run: the per-process memo is gone, only the file remains."""
    monkeypatch.setattr(qemu, "_ACCEL_CACHE", {})


def test_second_run_in_the_same_boot_does_not_probe(host, tmp_path, monkeypatch) -> None:
    assert qemu.probe_accel(tmp_path) == "tcg"
    new_process(monkeypatch)
    host["kvm_works"] = True  # would say kvm if it were probed again
    assert qemu.probe_accel(tmp_path) == "tcg"
    assert host["probes"] == 1


def test_a_reboot_probes_again(host, tmp_path, monkeypatch) -> None:
    assert qemu.probe_accel(tmp_path) == "tcg"
    Path(host["boot"]).write_text("99999999-8888-7777-6666-555555555555\n")  # type: ignore[arg-type]
    new_process(monkeypatch)
    host["kvm_works"] = True
    assert qemu.probe_accel(tmp_path) == "kvm"
    assert host["probes"] == 2
    new_process(monkeypatch)
    assert qemu.probe_accel(tmp_path) == "kvm"  # and that verdict is kept in turn
    assert host["probes"] == 2


def test_a_new_qemu_probes_again(host, tmp_path, monkeypatch) -> None:
    qemu.probe_accel(tmp_path)
    new_process(monkeypatch)
    monkeypatch.setattr(qemu, "qemu_version", lambda: "QEMU emulator version 8.2.0")
    qemu.probe_accel(tmp_path)
    assert host["probes"] == 2


def test_a_forced_accelerator_neither_probes_nor_stores(host, tmp_path) -> None:
    assert qemu.probe_accel(tmp_path, "tcg") == "tcg"
    assert qemu.probe_accel(tmp_path, "kvm") == "kvm"
    assert host["probes"] == 0
    assert not Path(host["file"]).exists()  # type: ignore[arg-type]


def test_no_kvm_device_is_tcg_without_a_probe(host, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(qemu.os, "access", lambda path, mode: False)
    assert qemu.probe_accel(tmp_path) == "tcg"
    assert host["probes"] == 0


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"accel": "kvm"}',
                                     '{"accel": {"boot_id": 1, "key": 2, "value": 3}}'])
def test_a_broken_cache_file_is_a_miss(host, tmp_path, content) -> None:
    file = Path(host["file"])  # type: ignore[arg-type]
    file.parent.mkdir(parents=True)
    file.write_text(content)
    assert qemu.probe_accel(tmp_path) == "tcg"
    assert host["probes"] == 1
    assert hostcache.remembered("accel", "accel, QEMU emulator version 7.2.19") == "tcg"


def test_without_a_boot_id_nothing_is_remembered(host, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hostcache, "BOOT_ID", tmp_path / "missing")
    qemu.probe_accel(tmp_path)
    new_process(monkeypatch)
    qemu.probe_accel(tmp_path)
    assert host["probes"] == 2
    assert not Path(host["file"]).exists()  # type: ignore[arg-type]


def test_an_unwritable_cache_is_no_error(host, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setattr(hostcache, "CACHE_FILE", blocker / "host-verdicts.json")
    assert qemu.probe_accel(tmp_path) == "tcg"
