"""A fake GMI project for pytester: the real plugin and stage fixtures, with stages that
build nothing but leave what a real build leaves (logs, versions, sizes, an archive),
and a few checklist tests that pass, fail and skip. Used by the report tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-Hyperv-Pw"

CONFTEST = '''
import hashlib, os
import pytest
from harness.plugin.fixtures import run_stage

pytest_plugins = ["harness.plugin"]

def provision(b):
    b.record.setdefault("versions", {}).update(
        os=f"Fake {b.distro.name}", kernel="6.1.0-99-amd64", **{"cloud-init": "22.4.2"},
        integration_services="hyperv-daemons 6.1")
    (b.logdir / "build.serial.log").write_text("Booting `Debian GNU/Linux'\\nlogin: \\x1b[0m\\n")

def seal(b):
    b.record["sizes"] = {"vhdx_bytes": 1234567890, "virtual_size": 8 * 2**30}
    for name in ("user-data", "meta-data", "network-config"):
        (b.logdir / f"clone-seed-{name}").write_text(f"# {name} of {b.distro.name}\\n")
    (b.logdir / "clone-guest-logs.txt").write_text(
        "Cloud-init v. 22.4.2 finished; password " + os.environ.get("GMI_HYPERV_PASSWORD", "") + "\\n")
    b.record["manifest"] = {"name": b.distro.vmgenie.vm_name, "checksum_sha256": "ab" * 32}
    archive = b.settings.out_dir / f"{b.distro.vmgenie.archive}"
    archive.parent.mkdir(parents=True, exist_ok=True)
    # a zip with a build record, as the export writes one (the release diff reads it)
    import yaml, zipfile
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("gmi-build-record.yml", yaml.safe_dump({
            "distro": b.distro.name, "built": "2026-11-28T00:00:00Z", "versions": b.record["versions"],
            "packages": ["cloud-init 22.4.2", "linux-image-6.1.0-99-amd64 6.1.999-1"],
            "sizes": b.record["sizes"]}))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\\n")
    b.record["archive"] = str(archive)

@pytest.fixture(scope="session")
def sealed(request, build):
    with open(os.environ["MATRIX_OUT"], "a") as f:
        f.write(f"setup {build.distro.name} {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")
    run_stage(request, build, provision)
    return run_stage(request, build, seal)

def pytest_gmi_once_per_run(config, settings, scratch):
    with open(os.environ["MATRIX_OUT"], "a") as f:
        f.write(f"once {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")
    return {"iso_cache": str(scratch)}
'''

CHECKS = '''
import os
import pytest

@pytest.mark.checklist("boots with no errors")
def test_boots(sealed):
    pass

@pytest.mark.checklist("boots with no errors")
def test_secure_boot(sealed, distro_name):
    if distro_name == "debian-13":
        pytest.skip("the YAML turns Secure Boot off")

@pytest.mark.checklist("DHCP assigns an IPv4 address on eth0")
def test_dhcp(sealed):
    pass

@pytest.mark.checklist("cloud-init ran on first boot")
def test_cloud_init(sealed, distro_name):
    secret = os.environ.get("GMI_HYPERV_PASSWORD", "")
    assert distro_name != "debian-13", f"cloud-init did not run (seen {secret})"

@pytest.mark.checklist("integration services installed and set to start")
def test_hv_daemons(sealed):
    pass

@pytest.mark.checklist("no leftover build artifacts")
def test_no_leftovers(sealed):
    pass

def test_not_a_checklist_item(sealed):
    pass
'''


def make(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, out: Path) -> Path:
    """Write the project; returns the file its fixtures log their setups to."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_checks=CHECKS)
    log = out / "matrix.log"
    monkeypatch.setenv("MATRIX_OUT", str(log))
    monkeypatch.setenv("GMI_ACCEL", "tcg")  # no KVM probe: nothing boots
    monkeypatch.setenv("GMI_HYPERV_PASSWORD", SECRET)
    # subprocess runs import this work tree's harness, not an installed one
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return log


def run(pytester: pytest.Pytester, out: Path, *args: str,
        distros: tuple[str, ...] = ("debian-12", "debian-13"), workers: int = 2) -> pytest.RunResult:
    xdist = ("-n", str(workers)) if workers else ()
    return pytester.runpytest_subprocess(
        *xdist, *(f"--distro={d}" for d in distros), f"--out={out}", f"--scratch={out / 'scratch'}",
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning", *args)


@dataclass(frozen=True)
class Ran:
    """A run of the fake project made once for a whole test module (``once``)."""

    out: Path
    returncode: int
    output: str

    def outcomes(self) -> dict[str, int]:
        """pytest's closing counts (its last ``== ... in N s ==`` line)."""
        closing = [ln for ln in self.output.splitlines() if re.match(r"^=+ .* in [\d.]+s", ln)][-1:]
        return {word: int(n) for n, word in
                re.findall(r"(\d+) (passed|failed|skipped|error)", closing[0] if closing else "")}


def once(folder: Path, *args: str, distros: tuple[str, ...] = ("debian-12", "debian-13"),
         workers: int = 2) -> Ran:
    """The fake project written into ``folder``/proj and run there as a user runs it, for
    a module-scoped fixture: the report tests that only read what one run left share
    it (pytester's own runs are per test)."""
    proj, out = folder / "proj", folder / "out"
    proj.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    (proj / "conftest.py").write_text(CONFTEST)
    (proj / "test_checks.py").write_text(CHECKS)
    env = {**os.environ, "MATRIX_OUT": str(out / "matrix.log"), "GMI_ACCEL": "tcg",
           "GMI_HYPERV_PASSWORD": SECRET,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    xdist = ("-n", str(workers)) if workers else ()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *xdist, *(f"--distro={d}" for d in distros), f"--out={out}",
         f"--scratch={out / 'scratch'}", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", f"--rootdir={proj}", *args],
        cwd=proj, env=env, capture_output=True, text=True, timeout=900)
    return Ran(out, proc.returncode, proc.stdout + proc.stderr)
