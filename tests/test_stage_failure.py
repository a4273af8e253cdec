"""A failure that stops a subject is said once: the first test that meets it shows the
error in full, every other test of that subject says in one line which stage failed and
where the full error is (it is counted as blocked, not as one more error). A build that
ends before its disk exists removes its credentials file.

The build here is real up to its first stage: ``gmi`` with the real checks, the QEMU
backend's host check, Step 1's debootstrap run against a mirror that refuses every
connection (no VM boots: Step 1 fails first). The archive case is a file that is not a
zip, validated with ``--gmi``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.host_tools import needs

REPO = Path(__file__).resolve().parent.parent
UNREACHABLE = "http://127.0.0.1:9/debian"  # (the discard port: nothing listens)


def gmi(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GMI_", "PYTEST_"))}
    env.update(PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "harness", *args, "--accel=tcg",
                           f"--out={tmp_path / 'out'}", f"--scratch={tmp_path / 'scratch'}",
                           f"--credentials-dir={tmp_path / 'creds'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def signoff_tests(out: Path) -> list[dict[str, str]]:
    doc = json.loads(next(out.glob("runs/2*/signoff.json")).read_text())
    return list(doc["tests"])


@pytest.mark.skipif(os.geteuid() != 0, reason="a debootstrap build runs as root")
@needs("qemu-system-x86_64", "qemu-img", "unshare")
def test_a_failed_first_stage_is_said_once_per_distro(tmp_path: Path):
    proc = gmi(tmp_path, "--distro=debian-12", "--distro=debian-13", "-n", "2",
               f"--mirror={UNREACHABLE}", "--package-cache=off")
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in out + proc.stderr
    tests = signoff_tests(tmp_path / "out")
    for distro in ("debian-12", "debian-13"):
        mine = [t for t in tests if t["subject"] == distro]
        assert len(mine) > 30 and all(t["outcome"] == "error" for t in mine)
        # the error in full: once, under ERRORS, for the first test of the distro
        full = [ln for ln in out.splitlines()
                if ln.startswith("stage provision: debootstrap failed (exit 1): E: Failed getting "
                                 "release file") and ln.endswith(f"logs/{distro}/build.log")]
        assert len(full) == 1, out[-5000:]
        first = [t for t in mine if t["reason"].startswith("stage provision: debootstrap failed")]
        assert len(first) == 1
        # every other test: one line naming the stage, the test with the error, the log
        line = (f"stage provision failed; the error: {first[0]['name']}, "
                f"logs/{distro}/build.log")
        assert all(t["reason"] == line for t in mine if t is not first[0])
        blocked = [ln for ln in out.splitlines() if ln.startswith("BLOCKED ") and f"[{distro}]" in ln]
        assert len(blocked) == len(mine) - 1
        assert all(ln.endswith(f" - {line}") for ln in blocked), blocked[:2]
        assert sum(f"ERROR at setup of {first[0]['name']}" in ln for ln in out.splitlines()) == 1
    summary = out.splitlines()[-1]
    assert " 2 errors, " in summary and f" {len(tests) - 2} blocked" in summary, summary
    # not 38 copies of the error: a line per test, and the two errors in full
    assert len(out.splitlines()) < len(tests) + 150, len(out.splitlines())
    junit = ET.parse(next((tmp_path / "out").glob("runs/2*/junit.xml")))
    assert int(junit.getroot().find("testsuite").get("errors")) == len(tests)  # type: ignore[union-attr]
    # no build got a disk: no credentials file is left, and each removal is said
    assert not list((tmp_path / "creds").glob("*")), list((tmp_path / "creds").glob("*"))
    said = (out + proc.stderr).count("credentials file removed: the build ended before its disk existed")
    assert said == 2, proc.stderr[-3000:]
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]


def test_an_unreadable_archive_is_said_once_and_its_verdict_stays(tmp_path: Path):
    archive = tmp_path / "GMI-Debian-12.zip"
    archive.write_text("not a zip\n")
    proc = gmi(tmp_path, f"--gmi={archive}")
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in out and "_ _ _" not in out  # no traceback of any test
    error = ("opening the archive: GMI-Debian-12.zip is not a readable zip (truncated or not a zip: "
             "File is not a zip file); build it again (gmi --distro=NAME) or download it again")
    assert out.splitlines().count(error) == 1, out[-4000:]
    tests = {t["name"].split("[")[0]: t for t in signoff_tests(tmp_path / "out")}
    # the verdict on the sign-off page: the archive's zip check, in full; its name passed
    assert tests["test_zip_entries_are_safe"]["reason"] == error
    assert tests["test_archive_name_follows_vmgenie"]["outcome"] == "passed"
    line = "opening the archive failed; the error: test_zip_entries_are_safe[GMI-Debian-12.zip]"
    others = [t for n, t in tests.items() if t["outcome"] == "error" and n != "test_zip_entries_are_safe"]
    assert len(others) > 30 and all(t["reason"].startswith(line) for t in others)
    assert archive.read_text() == "not a zip\n"  # only ever read
