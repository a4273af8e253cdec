"""The QEMU janitor on real processes: a run that dies (SIGKILL: nothing of it cleans up)
leaves its scratch folder and a real qemu using a disk in it; the janitor removes those
and nothing of a live run, of a folder without a marker, or of a pid now reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from host_tools import needs

from harness.backends.qemu import janitor
from harness.host import runmarker
from harness.settings import resolve

REPO = Path(__file__).resolve().parent.parent

# A harness run in miniature: claims its folder with the real marker, starts a real
# (paused, machine-less: no CPU used) qemu on a disk in it, detached as --keep does,
# says so, and waits to be killed.
DYING_RUN = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from harness.host import runmarker
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True)
    runmarker.write(folder, run=folder.name, worker="", subject="debian-12", backend="qemu")
    disk = folder / "clone.qcow2"
    disk.write_bytes(b"")
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-S",
                             "-display", "none", "-monitor", "none",
                             "-drive", f"if=none,id=d0,format=raw,file={disk}"],
                            start_new_session=True)
    print(qemu.pid, flush=True)
    time.sleep(600)
""")


def settings_for(scratch: Path):
    return resolve({"scratch": str(scratch), "backend": "qemu"}, env={})


def wait_gone(pid: int, start: int, bound: float = 120) -> bool:
    deadline = time.monotonic() + bound
    while runmarker.process_start(pid) == start:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_for_file(path: Path, bound: float = 120) -> bool:
    deadline = time.monotonic() + bound
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def dead_run(tmp_path: Path):
    """(folder, qemu pid, its start time) of a run killed with SIGKILL."""
    folder = tmp_path / "scratch" / "20261130-120000-4242-debian-12"
    folder.parent.mkdir()
    harness = subprocess.Popen([sys.executable, "-c", DYING_RUN, str(folder)], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert harness.stdout is not None
    qemu_pid = int(harness.stdout.readline())
    start = runmarker.process_start(qemu_pid)
    assert start is not None
    harness.kill()
    harness.wait()
    yield folder, qemu_pid, start
    if runmarker.process_start(qemu_pid) == start:  # the janitor failed: do not leak it
        os.kill(qemu_pid, signal.SIGKILL)


def test_the_marker_names_this_very_process(tmp_path: Path):
    runmarker.write(tmp_path, run="R", worker="gw0", subject="debian-12", backend="qemu")
    fields, owner = runmarker.read(tmp_path)
    assert owner is not None and owner.pid == os.getpid() and owner.alive() == ""
    assert fields["run"] == "R" and fields["tag"] == "gmi-harness"
    assert owner.start == runmarker.process_start(os.getpid())


def test_a_reused_pid_or_another_boot_is_not_the_owner(tmp_path: Path):
    me = runmarker.me()
    assert "another process now" in runmarker.Owner(me.pid, me.start + 1, me.boot).alive()
    assert "restarted since" in runmarker.Owner(me.pid, me.start, "0" * 32).alive()
    assert "is gone" in runmarker.Owner(2**22 + 1, 1, me.boot).alive()  # above pid_max


def test_process_start_reads_past_a_command_name_with_parentheses(tmp_path: Path):
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "stat").write_text("77 (evil) (name) S 1 77 77 0 -1 4194560 100 0 0 0 0 0 0 0 "
                                      "20 0 1 0 123456 1000 10 18446744073709551615\n")
    assert runmarker.process_start(77, proc) == 123456
    assert runmarker.process_start(78, proc) is None


@pytest.mark.parametrize("text", ["", "not json", "[1]", json.dumps({"tag": "other", "pid": 1}),
                                  json.dumps({"tag": "gmi-harness", "pid": "x"})])
def test_an_odd_marker_never_makes_a_folder_removable(tmp_path: Path, text: str):
    folder = tmp_path / "scratch" / "x"
    folder.mkdir(parents=True)
    (folder / runmarker.MARKER).write_text(text)
    [item] = janitor.find(tmp_path / "scratch", tmp=tmp_path / "none")
    assert not item.dead and "left alone" in item.why


@pytest.mark.vm
@needs("qemu-system-x86_64")
def test_list_then_remove_only_what_dead_runs_left(tmp_path: Path, dead_run):
    folder, qemu_pid, qemu_start = dead_run
    scratch = folder.parent
    live = scratch / "20261130-130000-99-debian-13"  # this test's own process: alive
    live.mkdir()
    runmarker.write(live, run=live.name, worker="", subject="debian-13", backend="qemu")
    reused = scratch / "20261130-110000-7-ubuntu-24.04"  # our pid, another start time
    reused.mkdir()
    me = runmarker.me()
    (reused / runmarker.MARKER).write_text(json.dumps(
        {"tag": "gmi-harness", "run": "R0", "pid": me.pid, "pstart": me.start - 1, "boot": me.boot}))
    unmarked = scratch / "someone-elses-folder"
    unmarked.mkdir()
    (scratch / "runs" / "x").mkdir(parents=True)  # once-per-run folders are not runs
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stale = tmp / "gmi-4242-0123abcd.qmp"
    stale.write_text("")
    (tmp / "not-ours.qmp").write_text("")

    lines: list[str] = []
    assert janitor.run(settings_for(scratch), "list", lines.append, tmp=tmp) == 0
    text = "\n".join(lines)
    assert f"folder '{folder}': DEAD (run {folder.name} started " in text
    assert "its process (pid" in text and "is gone" in text
    assert f"qemu pid {qemu_pid} ({folder.name}): DEAD" in text
    assert f"folder '{live}': kept (run {live.name} is alive (pid {os.getpid()}))" in text
    assert f"folder '{reused}': DEAD" in text and "is another process now" in text
    assert f"folder '{unmarked}': kept (no readable gmi-run.json marker: left alone)" in text
    assert f"socket '{stale}': DEAD" in text and "not-ours" not in text and "runs" not in text
    assert runmarker.process_start(qemu_pid) == qemu_start and folder.is_dir()  # list: nothing

    lines.clear()
    janitor.run(settings_for(scratch), "remove", lines.append, tmp=tmp)
    assert wait_gone(qemu_pid, qemu_start), "the dead run's qemu still runs"
    assert not folder.exists() and not reused.exists() and not stale.exists()
    assert live.is_dir() and unmarked.is_dir() and (tmp / "not-ours.qmp").exists()
    assert f"removed qemu pid {qemu_pid}" in lines and f"removed {folder}" in lines


@pytest.mark.vm
@needs("qemu-system-x86_64")
def test_a_live_runs_qemu_is_never_touched(tmp_path: Path):
    scratch = tmp_path / "scratch"
    live = scratch / "20261130-140000-1-debian-12"
    live.mkdir(parents=True)
    runmarker.write(live, run=live.name, worker="", subject="debian-12", backend="qemu")
    disk = live / "build.raw"
    disk.write_bytes(b"")
    qmp = tmp_path / f"gmi-{os.getpid()}-0badcafe.qmp"  # its QMP socket, as QemuVM names it
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-S",
                             "-display", "none", "-monitor", "none",
                             "-drive", f"if=none,id=d0,format=raw,file={disk}",
                             "-qmp", f"unix:{qmp},server=on,wait=off"])
    try:
        assert wait_for_file(qmp), "qemu did not open its QMP socket"
        found = janitor.find(scratch, tmp=tmp_path)
        assert [(i.kind, i.dead, i.pid) for i in found] == [("folder", False, 0),
                                                            ("qemu", False, qemu.pid)]
        lines: list[str] = []
        janitor.run(settings_for(scratch), "remove", lines.append, tmp=tmp_path)
        assert qemu.poll() is None and live.is_dir() and qmp.exists(), lines
        assert any(f"qemu pid {qemu.pid}" in ln and ": kept" in ln for ln in lines), lines
    finally:
        qemu.kill()
        qemu.wait()


def test_the_pytest_option_runs_the_qemu_janitor(pytester: pytest.Pytester, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    scratch = tmp_path / "scratch"
    (scratch / "no-marker").mkdir(parents=True)
    pytester.makepyfile(test_never="def test_never():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("--janitor=list", "--backend=qemu", f"--scratch={scratch}",
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines([f"folder '{scratch / 'no-marker'}': kept (no readable*"])
    assert "ran" not in result.stdout.str()


pytest_plugins = ["pytester"]


@needs("apt-cacher-ng")
def test_a_package_cache_folder_goes_only_when_no_apt_cacher_ng_uses_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run SIGKILLed (nothing of it cleans up) leaves its package cache's folder in the
    temp folder: its apt-cacher-ng dies with it, the folder stays. The janitor removes
    that one, never the folder of a cache that runs, nor one made a moment ago."""
    from harness.rootfs import pkgcache
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    cache = pkgcache.start(tmp_path / "logs", tmp_path / "cache")
    assert cache is not None
    try:
        aged = time.time() - janitor.CACHE_FOLDER_AGE - 5
        os.utime(cache.confdir, (aged, aged))
        assert janitor.find(tmp_path / "scratch", tmp=tmp) == []  # its apt-cacher-ng runs
        os.killpg(cache.proc.pid, signal.SIGKILL)  # as when the run is SIGKILLed
        cache.proc.wait()
        young = tmp / "gmi-acng-justmade"  # a run about to start its apt-cacher-ng
        young.mkdir()
        (tmp / "gmi-acng-not-a-dir").write_text("")
        found = janitor.find(tmp_path / "scratch", tmp=tmp)
        assert [(i.kind, i.path, i.dead) for i in found] == [
            ("package-cache folder", cache.confdir, True)], found
        lines: list[str] = []
        janitor.run(settings_for(tmp_path / "scratch"), "remove", lines.append, tmp=tmp)
        assert f"package-cache folder '{cache.confdir}': DEAD (no apt-cacher-ng uses it)" in lines
        assert f"removed {cache.confdir}" in lines
        assert not cache.confdir.exists() and young.is_dir()
    finally:
        cache.stop(grace=0)
