"""The pytest plugin, end to end with pytester (no VM)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import matrix_project
import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["harness.plugin"]\n'
CHECK = """
import pytest

@pytest.mark.checklist("demo")
def test_item(distro_name, request):
    marks = [m.args for m in request.node.iter_markers("xdist_group")]
    assert marks == [(distro_name,)]
"""


@pytest.fixture(autouse=True)
def subprocess_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-per-run host check probes KVM with a short real QEMU boot on 'auto':
    these tests boot nothing. And pytester's subprocess runs import this tree's harness
    (not the one pip installed in editable mode, which may be another work tree)."""
    import os

    monkeypatch.setenv("GMI_ACCEL", "tcg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(matrix_project.ROOT),
                                                                   os.environ.get("PYTHONPATH")])))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_checks=CHECK)
    return pytester


def test_unknown_distro_is_a_usage_error(project: pytest.Pytester):
    result = project.runpytest("--distro=debian-99", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown distro 'debian-99'; known distros: *debian-12*"])


def test_unknown_backend_is_a_usage_error(project: pytest.Pytester):
    result = project.runpytest("--distro=debian-12", "--backend=vmware")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown backend 'vmware'; known backends: qemu, hyperv*"])


def test_checks_without_distro_is_a_usage_error(project: pytest.Pytester):
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the checks need --distro NAME*known distros: *debian-12*"])


def test_distro_param_and_xdist_group(project: pytest.Pytester, tmp_path):
    result = project.runpytest("--distro=debian-12", f"--out={tmp_path}", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_item?debian-12? PASSED*"])
    run = next((tmp_path / "runs").glob("2*"))
    assert (run / "junit.xml").exists() and (run / "report.html").exists()
    assert "keep = never  (default)" in (run / "settings.txt").read_text()


def test_all_means_every_catalogued_distro(project: pytest.Pytester, tmp_path):
    from harness.distro import known_distros

    result = project.runpytest("--distro=all", f"--out={tmp_path}")
    result.assert_outcomes(passed=len(known_distros()))


def test_effective_settings_in_header_with_sources(project: pytest.Pytester, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv("GMI_VM_CPUS", "1")
    monkeypatch.setenv("GMI_HYPERV_PASSWORD", "s3cret-value")
    (project.path / "gmi-harness.toml").write_text('maintainer = "QA team"\n')
    result = project.runpytest("--distro=debian-12", "--keep=always", f"--out={tmp_path}")
    result.stdout.fnmatch_lines([
        "*settings not at their defaults*",
        "*keep = always  (command line)*",
        "*vm_cpus = 1  (environment)*",
        "*maintainer = QA team  (config file*",
        "*hyperv_password = ***  (environment)*",
        "*(all settings: -v, or *settings.txt)",
    ])
    assert "s3cret-value" not in result.stdout.str()
    assert "vm_memory_mb = 2048  (default)" not in result.stdout.str()
    verbose = project.runpytest("--distro=debian-12", "-v", f"--out={tmp_path}")
    verbose.stdout.fnmatch_lines(["*effective settings*", "*vm_memory_mb = 2048  (default)*",
                                  "*hyperv_password = ***  (environment)*"])
    assert "s3cret-value" not in verbose.stdout.str()


def test_options_are_documented(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*GMI build and validation*", "*--distro=NAME*", "*--backend=BACKEND*",
                                 "*--keep=KEEP*", "*--out=OUT*", "*--force*",
                                 "*--signoff-from=DIR*"])


def test_fixtures_are_documented(pytester: pytest.Pytester):
    pytester.makeconftest('pytest_plugins = ["harness.plugin", "stages.fixtures", '
                          '"stages.s7_clone"]\n')
    result = pytester.runpytest("--fixtures")
    out = result.stdout.str()
    for name in ("build", "provisioned", "updated", "cloud_init_prepared",
                 "hyperv_integrated", "cleaned", "sealed", "clone", "gmi_settings"):
        assert f"{name} [session scope]" in out, name
    assert "Step 1: the build VM exists" in out
    assert "fresh clone of the sealed image" in out


def test_hyperv_backend_names_every_missing_setting_in_one_line(project: pytest.Pytester, tmp_path,
                                                                  monkeypatch):
    for name in ("HOST", "HOSTS", "USER", "SWITCH"):
        monkeypatch.delenv(f"GMI_HYPERV_{name}", raising=False)
    project.makepyfile(test_build="def test_b(build):\n    pass\n")
    result = project.runpytest("--distro=debian-12", "--backend=hyperv", f"--out={tmp_path}",
                               "test_build.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("ERROR: --backend=hyperv needs --hyperv-host NAME"), errors
    assert "--hyperv-user ACCOUNT" in errors[0] and " and --hyperv-switch NAME" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (tmp_path / "runs").exists()


def test_missing_host_tool_names_the_package(project: pytest.Pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project.makepyfile(test_build="def test_b(build):\n    pass\n")
    result = project.runpytest("--distro=debian-12", f"--out={tmp_path}",
                               f"--scratch={tmp_path / 'scratch'}", "test_build.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*qemu-system-x86_64 not found on this host: install it with "
         "'apt-get install -y qemu-system-x86'*"])
    assert not list((tmp_path / "scratch").glob("*")), "scratch left behind"


def test_xdist_runs_each_distro_on_one_worker(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Two test modules for one distro under -n 2: --dist loadgroup is chosen for the
    user, and every test of the distro lands on the same worker."""
    pytester.makeconftest(CONFTEST)
    body = ("import os\n"
            "def test_{n}(distro_name):\n"
            "    with open(os.environ['OUT'], 'a') as f:\n"
            "        f.write(os.environ.get('PYTEST_XDIST_WORKER', '-') + '\\n')\n")
    pytester.makepyfile(**{f"test_m{i}": "".join(body.format(n=f"{i}_{j}") for j in range(3))
                           for i in range(2)})
    out = tmp_path / "workers.txt"
    monkeypatch.setenv("OUT", str(out))
    result = pytester.runpytest_subprocess("-n", "2", "--distro=debian-12", f"--out={tmp_path}",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    workers = out.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["in-process", "xdist"])
def test_html_summary_lists_each_build(pytester: pytest.Pytester, tmp_path, xdist):
    """The report's summary names each subject's stages, versions and expectations; with
    -n the controller writes it, so the workers' builds must reach it."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_b="""
def test_b(build):
    build.timings["update"] = 12.0
    build.record["versions"] = {"kernel": "6.1.0-x"}
""")
    result = pytester.runpytest_subprocess(*xdist, "--distro=debian-12", f"--out={tmp_path}",
                                           f"--scratch={tmp_path / 's'}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = next((tmp_path / "runs").glob("*/report.html")).read_text()
    assert "GMI Debian 12" in report and "6.1.0-x" in report
    assert "expectations: catalogue" in report


# ------------------------------------------------------------- the two-distro matrix


def _junit(run: Path) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    cases = ET.parse(run / "junit.xml").getroot().iter("testcase")
    return [{"name": c.get("name", ""), **{p.get("name", ""): p.get("value", "") for p in c.iter("property")}}
            for c in cases]


def test_two_distros_on_two_workers(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """-n 2 with two distros: each distro's tests on one worker, a different one per
    distro; its session fixtures set up once; the once-per-run work done once for the
    whole run (not per worker); live stage lines with the elapsed time; a summary table;
    nothing left in scratch."""
    log = matrix_project.make(pytester, monkeypatch, tmp_path)
    result = matrix_project.run(pytester, tmp_path)
    result.assert_outcomes(passed=12, failed=1, skipped=1)
    lines = log.read_text().splitlines()
    setups = sorted(ln for ln in lines if ln.startswith("setup"))
    assert [s.split()[1] for s in setups] == ["debian-12", "debian-13"], lines
    assert len({s.split()[2] for s in setups}) == 2, f"both distros on one worker: {setups}"
    assert len([ln for ln in lines if ln.startswith("once")]) == 1, lines
    out = result.stdout.str() + result.stderr.str()
    assert re.search(r"\[0:00:\d\d\] \[debian-13\] seal done in 0 s", out), out
    result.stdout.fnmatch_lines(["*= GMI builds =*", "debian-1? *passed*", "*provision 0 s  seal 0 s*",
                                 "*archive: */GMI-Debian-1?.zip", "*sign-off page: */signoff.html"])
    result.stdout.re_match_lines([r"debian-13 +FAILED +passed=5, failed=1, skipped=1"])
    assert not list((tmp_path / "scratch").glob("*")), "scratch left behind"
    run = next((tmp_path / "runs").glob("2*"))
    cases = _junit(run)
    assert len(cases) == 14 and {c["distro"] for c in cases} == {"debian-12", "debian-13"}
    assert {c.get("checklist") for c in cases if c["name"].startswith("test_dhcp")} == {
        "DHCP assigns an IPv4 address on eth0"}


def test_once_per_run_error_fails_every_build_once(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """A failing once-per-run step runs once; every distro's build fails with its message."""
    log = matrix_project.make(pytester, monkeypatch, tmp_path)
    pytester.makeconftest(matrix_project.CONFTEST.replace(
        'return {"iso_cache": str(scratch)}',
        'from harness.errors import GmiError\n    raise GmiError("the ISO cache is unreachable")'))
    result = matrix_project.run(pytester, tmp_path)
    # each distro's first test shows the error; its other six are blocked, one line each
    assert {k: v for k, v in result.parseoutcomes().items() if k != "warnings"} == {
        "errors": 2, "blocked": 12}
    # (pytest's short summary, ERROR lines, shows it too when the terminal is wide enough)
    shown = [ln for ln in result.stdout.lines if "the host check: the ISO cache is unreachable" in ln
             and not ln.startswith(("ERROR ", "FAILED "))]
    assert len(shown) == 2, shown
    assert len([ln for ln in log.read_text().splitlines() if ln.startswith("once")]) == 1
    # the sign-off data says why every test of both distros errored
    doc = json.loads(next((tmp_path / "runs").glob("2*/signoff.json")).read_text())
    assert {(t["subject"], t["outcome"]) for t in doc["tests"]} == {("debian-12", "error"),
                                                                    ("debian-13", "error")}
    reasons = [t["reason"] for t in doc["tests"]]
    assert reasons.count("the host check: the ISO cache is unreachable") == 2, reasons
    assert all(r.startswith("the host check failed; the error: test_") for r in reasons
               if "unreachable" not in r), reasons


def test_once_per_run_is_keyed_on_the_run(tmp_path, monkeypatch):
    """Two runs never share a result; within a run the work happens once."""
    from harness.plugin import run as plugin
    from harness.settings import resolve

    calls = []
    settings = resolve({"scratch": str(tmp_path)}, env={})

    class FakeConfig:
        def __init__(self, run_id: str) -> None:
            self.stash = {plugin.STATE_KEY: plugin.RunState(settings, run_id, tmp_path / run_id)}

    def work(scratch: Path) -> dict:
        assert scratch.is_dir()
        calls.append(scratch)
        return {"n": len(calls)}

    one, two = FakeConfig("run-1"), FakeConfig("run-2")
    assert plugin.once_per_run(one, "host", work) == {"n": 1}  # type: ignore[arg-type]
    assert plugin.once_per_run(one, "host", work) == {"n": 1}  # type: ignore[arg-type]
    assert plugin.once_per_run(two, "host", work) == {"n": 2}  # type: ignore[arg-type]
    assert len(calls) == 2 and calls[0] != calls[1] and not calls[0].exists()


def test_file_lock_is_exclusive_across_processes(tmp_path):
    """Two processes wanting one cache: the second waits for the first."""
    import subprocess
    import sys
    import time

    from harness.host.tools import file_lock

    lock = tmp_path / "bookworm.lock"
    code = ("import sys, time; from pathlib import Path; from harness.host.tools import file_lock\n"
            "print('waiting', flush=True)\n"
            "with file_lock(Path(sys.argv[1])): print(time.monotonic(), flush=True)\n")
    with file_lock(lock):
        proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE,
                                text=True, cwd=str(Path(__file__).resolve().parent.parent))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting"  # it has started, and asks for the lock
        time.sleep(0.5)
        assert proc.poll() is None, "the second process did not wait for the lock"
        released = time.monotonic()
    got = float(proc.communicate(timeout=30)[0])
    assert got >= released


def test_a_broken_report_does_not_cost_the_run(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """The sign-off page failing to render is one red line at the end, not an
    INTERNALERROR after a long build: the other reports are still written."""
    log = matrix_project.make(pytester, monkeypatch, tmp_path)
    pytester.makeconftest(matrix_project.CONFTEST + (
        "\nimport harness.report.signoff\n"
        "def _broken(*a, **k):\n    raise RuntimeError('template exploded')\n"
        "harness.report.signoff.render = _broken\n"))
    result = matrix_project.run(pytester, tmp_path, distros=("debian-12",), workers=0)
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*sign-off page NOT written: RuntimeError: template exploded*"])
    run = next((tmp_path / "runs").glob("2*"))
    assert (run / "signoff.json").is_file() and (run / "junit.xml").is_file() and log.is_file()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_options_are_known_outside_the_repository(tmp_path: Path):
    """The plugin is a pytest11 entry point: from a folder outside the repository, with
    an option's value after a space and an existing folder as that value (as CI artifact
    folders are), pytest knows our options instead of taking the folder for a test path."""
    import subprocess
    import sys

    art = tmp_path / "artifacts"
    art.mkdir()
    run = functools.partial(subprocess.run, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    ok = run([sys.executable, "-m", "pytest", "--distro", "debian-12", "--out", str(art),
              "-p", "no:cacheprovider", "--collect-only", "-q"])
    assert "unrecognized arguments" not in ok.stderr, ok.stderr
    assert ok.returncode in (0, 5), ok.stdout + ok.stderr  # nothing to collect here, no error
    assert "PytestAssertRewriteWarning" not in ok.stdout + ok.stderr
    bad = run([sys.executable, "-m", "pytest", "--distro", "debian-99", "--out", str(art),
               "-p", "no:cacheprovider"])
    assert bad.returncode == 4
    assert "unknown distro 'debian-99'; known distros: debian-12" in bad.stderr
