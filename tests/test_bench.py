"""The benchmark's figures (issue #14): each stage's real work is accounted against it,
and benchmarks/build.py reads a finished run's figures from what the run wrote."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from harness import distro, settings
from harness.backends.qemu.backend import QemuBackend
from harness.build import Build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import build as bench

D = distro.load("debian-12")


def make_build(tmp_path: Path) -> Build:
    b = Build(D, settings.resolve({}, env={}), QemuBackend(), "r", tmp_path, tmp_path / "logs")
    b.progress = lambda line: None
    return b


# --- work accounting ---------------------------------------------------------------


def test_work_is_counted_against_the_outermost_stage(tmp_path: Path) -> None:
    b = make_build(tmp_path)
    b.progress = lambda line: None
    with b.step("update"):
        b.account("guest", 2.0)
        with b.step("update: restart into the new kernel"):
            b.account("boot", 3.0)
        b.account("guest", 0.5)
    with b.step("clone: boot to SSH"):
        b.account("boot", 7.0)
    b.account("guest", 1.0)  # outside any step
    assert b.record["work_seconds"] == {"update": {"guest": 2.5, "boot": 3.0},
                                        "clone": {"boot": 7.0}, "other": {"guest": 1.0}}
    assert b.steps == []


def test_working_counts_even_when_the_block_fails(tmp_path: Path) -> None:
    b = make_build(tmp_path)
    b.progress = lambda line: None
    with pytest.raises(RuntimeError), b.step("seal"), b.working("tools"):
        raise RuntimeError("boom")
    assert set(b.record["work_seconds"]["seal"]) == {"tools"}
    assert b.steps == []


def test_work_inside_a_working_block_is_counted_once(tmp_path: Path) -> None:
    """A host tool's run (its own working block) or a chroot command inside a timed
    block is part of the block: the stage's work never exceeds its wall time."""
    b = make_build(tmp_path)
    with b.step("seal"), b.working("tools"), b.working("tools"):
        b.account("guest", 100.0)
    assert b.record["work_seconds"]["seal"]["tools"] < 5 and "guest" not in b.record["work_seconds"]["seal"]
    assert b.working_depth == 0


# --- the benchmark reads what a run wrote -----------------------------------------------


def _fake_run(folder: Path, work: bool = True) -> None:
    run = folder / "runs" / "20261130-000000-1"
    (run / "logs" / "debian-12").mkdir(parents=True)
    (run / "signoff.json").write_text(json.dumps({"run": {"wall_seconds": 700.0}}))
    (run / "logs" / "debian-12" / "build.log").write_text("\n".join([
        "10:00:00 == provision", "10:00:01 I: Retrieving libc6 2.36-9+deb12u10",
        "10:00:02 == provision: updates, boot packages, users",
        "10:00:03   Fetched 50.5 MB in 3s (16.8 MB/s)", "10:00:04 == provision done in 100.0 s",
        "10:00:05 == update", "10:00:06   Fetched 1,024 kB in 1s (1 MB/s)",
        "10:00:07 == update done in 60.0 s"]) + "\n")
    record = {
        "installed_by": "debootstrap bookworm (debian-12), with the updates and security suites applied",
        "accel": "tcg", "fs_used_bytes": 900_000_000, "scratch_peak_bytes": 2_000_000_000,
        "sizes": {"vhdx_bytes": 1_000_000_000, "build_disk_allocated": 1_100_000_000},
        "packages": ["a 1", "b 2"],
        "stage_durations": {"provision": 100.0, "provision: debootstrap": 60.0, "update": 60.0,
                            "clone: boot to SSH": 70.0, "clone: cloud-init done": 30.0},
        **({"work_seconds": {"provision": {"tools": 90.0, "boot": 8.0},
                             "update": {"guest": 57.0}, "clone": {"boot": 99.0}}} if work else {}),
    }
    with zipfile.ZipFile(folder / "GMI-Debian-12.zip", "w") as zf:
        zf.writestr("GMI-Debian-12/gmi-build-record.yml", yaml.safe_dump(record))


def test_benchmark_reads_a_run(tmp_path: Path) -> None:
    _fake_run(tmp_path / "cold-1")
    cache = tmp_path / "cache"
    (cache / "debootstrap" / "bookworm").mkdir(parents=True)
    (cache / "debootstrap" / "bookworm" / "libc6_2.36-9+deb12u10_amd64.deb").write_bytes(b"x" * 1000)
    fig = bench.read_run(tmp_path / "cold-1", "cold-1", "cold", cache_root=cache)
    assert fig.stages["provision"] == {
        "wall_s": 100.0, "work_s": 98.0, "overhead_s": 2.0, "overhead_pct": 2.0,
        "tools_s": 90.0, "boot_s": 8.0, "downloaded_bytes": 50_500_000 + 1000}
    assert fig.stages["update"]["overhead_pct"] == 5.0
    assert fig.stages["update"]["downloaded_bytes"] == 1_024_000
    assert fig.stages["clone"]["wall_s"] == 100.0
    assert fig.stages["checks"]["wall_s"] == 700.0 - 260.0
    assert fig.sizes["vhdx_per_used"] == pytest.approx(1.111, abs=1e-3)
    assert fig.sizes["scratch_per_vhdx"] == 2.0
    assert fig.clone == {"boot_to_ssh_s": 70.0, "cloud_init_done_s": 30.0, "boot_seconds_record": 0.0}
    assert fig.packages == 2


def test_benchmark_table_and_json(tmp_path: Path) -> None:
    _fake_run(tmp_path / "cold-1")
    _fake_run(tmp_path / "before-1", work=False)  # a run from before the work accounting
    out = tmp_path / "out"
    rc = bench.main(["--from", str(tmp_path / "before-1"), str(tmp_path / "cold-1"),
                     "--out", str(out), "--cache", str(tmp_path / "nocache")])
    assert rc == 0
    doc = json.loads((out / "benchmark.json").read_text())
    assert set(doc["summary"]) == {"before", "cold"}
    assert doc["summary"]["before"]["overhead_pct"] is None
    assert doc["summary"]["cold"]["overhead_pct"] == pytest.approx(100 * (260 - 254) / 260, abs=0.1)
    table = (out / "benchmark.md").read_text()
    assert "| provision | 100 |  |  | 50 | 100 | 98 | 2.0 | 50 |" in table
    assert "| VHDX / used | 1.11 | 1.11 | <= 1.1 |" in table


def test_benchmark_says_what_is_missing(tmp_path: Path, capsys) -> None:
    (tmp_path / "cold-1").mkdir()
    assert bench.main(["--from", str(tmp_path / "cold-1"), "--out", str(tmp_path / "o")]) == 2
    assert "no runs/*/signoff.json" in capsys.readouterr().err


def test_a_run_without_an_archive_still_has_its_timings(tmp_path: Path) -> None:
    """Checks that failed write no archive: the figures come from signoff.json and build.log."""
    folder = tmp_path / "before-1"
    run = folder / "runs" / "1"
    (run / "logs" / "debian-12").mkdir(parents=True)
    (run / "signoff.json").write_text(json.dumps({"run": {"wall_seconds": 900.0}, "subjects": [{
        "accel": "tcg", "timings": {"provision": 200.0, "update": 300.0, "clone: boot to SSH": 60.0},
        "sizes": {"vhdx_bytes": 1_300_000_000}}]}))
    (run / "logs" / "debian-12" / "build.log").write_text(
        "20:13:25 $ unshare --mount --propagation private debootstrap --arch=amd64 "
        "--cache-dir=/c --include=a,b bookworm /s/rootfs http://deb.debian.org/debian\n"
        "20:52:51 $ used bytes\n20:52:51   900169728\n")
    fig = bench.read_run(folder, "before-1", "before")
    assert fig.exit_code == 1
    assert fig.stages["update"] == {"wall_s": 300.0, "downloaded_bytes": 0}
    assert fig.sizes["fs_used_bytes"] == 900169728
    assert fig.sizes["vhdx_per_used"] == pytest.approx(1.444, abs=1e-3)
    assert fig.sizes["zip_bytes"] == 0.0
