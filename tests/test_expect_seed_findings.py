"""make test's check of the validator run's seed findings (tests/expect_seed_findings.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checklist import SEED

SCRIPT = Path(__file__).with_name("expect_seed_findings.py")
REASON = ("1 fault in the seed template /t (the seed's fault, not the image's): users.1.home "
          "(user-data line 11): error: not valid")


def run_folder(tmp_path: Path, outcome: str = "xfailed", reason: str = REASON,
               indexed: bool = True) -> tuple[Path, Path]:
    run = tmp_path / "run"
    run.mkdir()
    subjects = [{"subject": d, "archive": f"/o/GMI-Debian-{d[-2:]}.zip"} for d in ("debian-12", "debian-13")]
    tests = [{"subject": s["subject"], "item": SEED, "outcome": outcome, "reason": reason} for s in subjects]
    tests += [{"subject": "debian-12", "item": "boots with no errors", "outcome": "passed", "reason": ""}]
    (run / "signoff.json").write_text(json.dumps({"subjects": subjects, "tests": tests}))
    index = tmp_path / "index.yml"
    names = ["GMI-Debian-12.zip", "GMI-Debian-13.zip"] if indexed else ["GMI-Debian-12.zip"]
    index.write_text("".join(f"- url: https://x/{n}\n" for n in names))
    return run, index


def call(*args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_every_clone_showing_the_finding_passes(tmp_path):
    run, index = run_folder(tmp_path)
    result = call(run, index, "users.1.home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("seed finding, as expected: ") == 2


@pytest.mark.parametrize("outcome, reason, indexed, says", [
    ("passed", "", True, "seed check passed, not xfailed naming users.1.home"),
    ("failed", REASON, True, "seed check failed, not xfailed"),
    ("xfailed", REASON.replace("users.1.home", "users.1"), True, "not xfailed naming users.1.home"),
    ("xfailed", REASON, False, "debian-13: its archive GMI-Debian-13.zip has no entry in"),
])
def test_a_clone_without_the_finding_or_an_archive_without_its_entry_fails(
        tmp_path, outcome, reason, indexed, says):
    run, index = run_folder(tmp_path, outcome, reason, indexed)
    result = call(run, index, "users.1.home")
    assert result.returncode == 1 and says in result.stderr, result.stderr


def test_no_run_is_one_line(tmp_path):
    result = call(tmp_path / "nothing", tmp_path / "i.yml", "users.1.home")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
