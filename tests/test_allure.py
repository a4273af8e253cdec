"""Allure results of a fake two-distro run: files present, labels per distro and
checklist item, build stages as steps, evidence attachments, environment and
categories; rendered (and two runs merged) with the real Allure CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import matrix_project
import pytest

from harness.report import allure

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def load(results: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob(f"*-{kind}.json"))]


def labels(result: dict[str, Any]) -> dict[str, str]:
    return {lb["name"]: lb["value"] for lb in result["labels"]}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fake two-distro run for the module (its tests only read what it left)."""
    ran = matrix_project.once(tmp_path_factory.mktemp("allure"))
    assert ran.outcomes() == {"passed": 12, "failed": 1, "skipped": 1}, ran.output
    return next((ran.out / "runs").glob("2*")) / allure.RESULTS_DIR


def test_results_group_by_distro_and_checklist_item(results: Path):
    tests = load(results, "result")
    assert len(tests) == 14
    by_name = {t["name"]: t for t in tests}
    lb = labels(by_name["test_dhcp[debian-13]"])
    assert lb["epic"] == lb["suite"] == "debian-13"
    assert lb["feature"] == lb["subSuite"] == "DHCP assigns an IPv4 address on eth0"
    assert lb["parentSuite"] == allure.PARENT_SUITE and lb["story"] == "test_dhcp"
    assert labels(by_name["test_not_a_checklist_item[debian-12]"])["feature"] == "other checks"
    assert {labels(t)["epic"] for t in tests} == {"debian-12", "debian-13"}
    assert by_name["test_secure_boot[debian-13]"]["status"] == "skipped"


def test_failure_has_its_evidence_and_no_secret(results: Path):
    failed = [t for t in load(results, "result") if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["test_cloud_init[debian-13]"]
    assert "cloud-init did not run (seen ***)" in failed[0]["statusDetails"]["message"]
    names = {a["name"]: a["source"] for a in failed[0].get("attachments", [])}
    assert "serial console build.serial.log" in names, names
    assert "Booting" in (results / names["serial console build.serial.log"]).read_text()
    leaks = [p.name for p in results.iterdir() if matrix_project.SECRET in p.read_text(errors="replace")]
    assert not leaks, f"secret in {leaks}"


def test_stages_are_steps_with_durations(results: Path):
    befores = [b for c in load(results, "container") for b in c.get("befores", []) if b["name"] == "sealed"]
    assert len(befores) == 2, "one 'sealed' set-up per distro"
    for before in befores:
        steps = {s["name"]: s for s in before["steps"]}
        assert list(steps) == ["provision", "seal"]
        assert all(s["status"] == "passed" and s["stop"] >= s["start"] > 0 for s in steps.values())


def test_build_evidence_is_attached(results: Path):
    afters = [a for c in load(results, "container") for a in c.get("afters", [])
              if a["name"].startswith("build::") and a.get("attachments")]
    assert len(afters) == 2, "the evidence of each distro's build, once"
    for after in afters:
        files = {a["name"]: results / a["source"] for a in after["attachments"]}
        assert {"build.serial.log", "clone-seed-user-data", "clone-seed-meta-data",
                "clone-seed-network-config", "clone-guest-logs.txt", "manifest.yml"} <= set(files)
        assert all(p.is_file() for p in files.values())
        assert "\x1b" not in files["build.serial.log"].read_text(), "console escapes left in"
        assert "password ***" in files["clone-guest-logs.txt"].read_text()
        assert "checksum_sha256" in files["manifest.yml"].read_text()


def test_environment_and_categories(results: Path):
    env = dict(line.split("=", 1) for line in (results / "environment.properties").read_text().splitlines())
    assert env["run"] == results.parent.name and env["distros"] == "debian-12, debian-13"
    assert env["setting.hyperv_password"] == "***  (environment)"
    categories = json.loads((results / "categories.json").read_text())
    assert [c["name"].split(" (")[0] for c in categories] == [
        "Infrastructure failure", "Export refused", "Image defect", "Harness defect"]


# ----------------------------------------------------------------- the Allure CLI


def allure_cli() -> str:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "allure"
    found = str(local) if local.exists() else shutil.which("allure")
    if not found:
        pytest.skip("the Allure CLI is not installed: 'make setup' installs it into .tools/ "
                    "('npm install --prefix .tools allure-commandline'; it needs Java 17)")
    if shutil.which("java") is None:
        pytest.skip("the Allure CLI needs Java: 'apt-get install -y default-jre-headless'")
    return found


def test_allure_cli_renders_two_runs_merged(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Two CI jobs: debian-12's build breaks in a stage (infrastructure), debian-13's
    image fails a check (image defect). `allure generate dir1 dir2` makes one report."""
    cli = allure_cli()
    matrix_project.make(pytester, monkeypatch, tmp_path)
    matrix_project.run(pytester, tmp_path / "job-13", distros=("debian-13",), workers=0).assert_outcomes(
        passed=5, failed=1, skipped=1)
    pytester.makeconftest(matrix_project.CONFTEST.replace(
        "def seal(b):\n", "def seal(b):\n    from harness.errors import HypervisorError\n"
        "    raise HypervisorError('QEMU exited while sealing')\n"))
    job12 = matrix_project.run(pytester, tmp_path / "job-12", distros=("debian-12",), workers=0)
    assert job12.parseoutcomes() == {"errors": 1, "blocked": 6}  # (the stage's error said once)
    dirs = [str(next((tmp_path / j / "runs").glob("2*")) / allure.RESULTS_DIR)
            for j in ("job-12", "job-13")]
    report = tmp_path / "allure-report"
    subprocess.run([cli, "generate", *dirs, "-o", str(report), "--clean"], check=True,
                   capture_output=True, text=True, timeout=180)
    assert (report / "index.html").is_file()
    summary = json.loads((report / "widgets" / "summary.json").read_text())
    assert summary["statistic"]["total"] == 14
    categories = {c["name"].split(" (")[0]: c["statistic"]["total"]
                  for c in json.loads((report / "widgets" / "categories.json").read_text())["items"]}
    assert categories == {"Infrastructure failure": 7, "Image defect": 1}, categories
    behaviors = json.loads((report / "data" / "behaviors.json").read_text())
    assert sorted(c["name"] for c in behaviors["children"]) == ["debian-12", "debian-13"]
    env = json.loads((report / "widgets" / "environment.json").read_text())
    assert {e["name"] for e in env} >= {"run", "harness", "distros"}
