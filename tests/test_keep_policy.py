"""The one keep-or-destroy policy (``--keep``), for the build's VMs and the clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.base import VM, keeps, kept, release


class FakeVM(VM):
    def __init__(self, name: str, running: bool = True) -> None:
        self.name, self.ssh_host, self.ssh_port, self.serial_log = name, "127.0.0.1", 2222, None
        self.running, self.destroyed = running, 0

    def is_running(self) -> bool:
        return self.running

    def shutdown(self, timeout: float) -> None:
        self.running = False

    def wait_stopped(self, timeout: float) -> bool:
        return not self.running

    def start(self) -> None:
        self.running = True

    def destroy(self) -> None:
        self.destroyed += 1
        self.running = False

    def describe(self) -> str:
        return f"VM {self.name!r} kept running"


@pytest.mark.parametrize(("policy", "failed", "expected"), [
    ("never", False, False), ("never", True, False), ("always", False, True),
    ("always", True, True), ("on-failure", False, False), ("on-failure", True, True)])
def test_keeps(policy: str, failed: bool, expected: bool):
    assert keeps(policy, failed) is expected


def test_release_destroys_or_tells_how_to_reach_what_runs():
    said: list[str] = []
    a, b = FakeVM("a"), FakeVM("b", running=False)
    release([a, b], keep=True, say=said.append)
    assert (a.destroyed, b.destroyed) == (0, 0) and said == ["VM 'a' kept running"]
    release([a, b], keep=False, say=said.append)
    assert (a.destroyed, b.destroyed) == (1, 1)


def test_kept_asks_about_failure_at_the_end_and_leaves_the_owner(tmp_path: Path):
    failed = {"now": False}
    vm, owner = FakeVM("clone"), []
    owner.append(vm)
    with kept(vm, "on-failure", lambda: failed["now"], lambda line: None, owner=owner):
        failed["now"] = True  # a check failed while the clone was in use
    assert vm.destroyed == 0 and owner == []  # kept for a look; the build will not destroy it
    vm2 = FakeVM("clone2")
    with pytest.raises(RuntimeError), kept(vm2, "never", lambda: True, lambda line: None):
        raise RuntimeError("the block failed")
    assert vm2.destroyed == 1  # destroyed however the block ended
