"""``gmi`` / ``python -m harness`` (harness/cli.py, with harness/plugin/front.py in the
run): the way in without make, and what
an installed wheel carries. The real build through ``gmi`` is recorded in the README
(one QEMU run takes ~15 min); here: the same tests and ids as ``make gmi``, the wheel's
contents, UTF-8 mode and Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness import cli

REPO = Path(__file__).resolve().parent.parent


def test_the_checks_are_the_ones_beside_the_harness():
    from harness.report.signoff import CHECKS_DIR

    assert cli.checks_dir() == CHECKS_DIR == REPO / "checks"
    assert (cli.checks_dir() / "test_checklist.py").is_file()


def test_pytest_gets_the_checks_folder_its_rootdir_and_the_checkouts_options():
    args = cli.pytest_args(["--distro=debian-12", "-n", "2"], REPO / "checks")
    assert args == ["-p", "no:cacheprovider", "-ra", "-p", "harness.plugin.front", f"--rootdir={REPO}",
                    str(REPO / "checks"), "--distro=debian-12", "-n", "2"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'addopts = "-p no:cacheprovider -ra"' in pyproject  # what cli.PYTEST_ARGS repeats
    assert 'gmi = "harness.cli:main"' in pyproject


def _ids(cmd: list[str], cwd: Path) -> list[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_gmi_collects_what_make_gmi_collects(tmp_path):
    """The same tests with the same ids (they key the reports), from the checkout and
    from any other folder: ``make gmi`` is ``python -m pytest checks --distro=...``."""
    make_gmi = _ids([sys.executable, "-m", "pytest", "checks", "--distro=debian-12",
                     "--backend=qemu", "--collect-only", "-q"], REPO)
    gmi = _ids([sys.executable, "-m", "harness", "--distro=debian-12", "--backend=qemu",
                "--collect-only", "-q"], tmp_path)
    assert make_gmi == gmi
    assert len(gmi) > 30 and all(i.startswith("checks/test_") for i in gmi)
    assert not (tmp_path / ".pytest_cache").exists()


def _gmi(args: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}, **kw)


def test_gmi_help_lists_the_harness_options_and_points_at_pytests(tmp_path):
    proc = _gmi(["--help"], tmp_path)
    assert proc.returncode == 0
    out = proc.stdout
    assert out.startswith("usage: gmi --distro=NAME")
    assert "GMI build and validation" in out and "--hyperv-local" in out
    from harness.settings import SETTINGS

    for s in SETTINGS:
        assert (s.option in out) is s.cli, s.option
    assert "--junitxml=PATH" in out and out.rstrip().endswith("All of them: gmi --help-all")
    assert "--capture" not in out  # pytest's own options: --help-all
    # ours only (about 300 lines for every option of ours: pytest's own help is over 700)
    assert len(out.splitlines()) < 330, len(out.splitlines())
    full = _gmi(["--help-all"], tmp_path)
    assert full.returncode == 0 and full.stdout.startswith("usage: gmi [options]")
    assert "--capture" in full.stdout and "--hyperv-local" in full.stdout


def test_gmi_version_is_the_harness_and_pytest(tmp_path):
    from harness import __version__

    proc = _gmi(["--version"], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"gmi-harness {__version__} (pytest {pytest.__version__}, Python ")


def test_gmi_usage_errors_say_gmi(tmp_path):
    proc = _gmi(["--no-such-option"], tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.startswith("ERROR: usage: gmi ")
    assert "gmi: error: unrecognized arguments" in proc.stderr


def test_gmi_reads_the_config_file_of_the_folder_it_runs_in(tmp_path):
    """The README's promise: gmi-harness.toml of the current folder (the rootdir is the
    installed checks' folder, not this one)."""
    (tmp_path / "gmi-harness.toml").write_text('keep = "on-failure"\nvm_cpus = 1\n')
    proc = _gmi(["--distro=debian-12", "--collect-only"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    toml = tmp_path / "gmi-harness.toml"
    assert f"  keep = on-failure  (config file {toml})" in proc.stdout.splitlines()
    assert f"  vm_cpus = 1  (config file {toml})" in proc.stdout.splitlines()
    assert not (tmp_path / "reports").exists()  # (collection writes nothing)


def test_without_the_checks_it_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "checks_dir", lambda: tmp_path / "checks")
    monkeypatch.setattr(cli, "run", lambda *a: pytest.fail("ran pytest"))
    assert cli.main(["--distro=debian-12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gmi: the checks are not installed beside the harness ({tmp_path / 'checks'}): "
                   "install gmi-harness from its source folder (pip install .)"]


@pytest.mark.parametrize("utf8_mode, encoding, needed", [
    (0, "cp1252", True), (0, "cp850", True), (1, "cp1252", False),
    (0, "UTF-8", False), (0, "utf_8", False)])
def test_utf8_mode_is_asked_for_where_the_locale_is_a_code_page(utf8_mode, encoding, needed):
    assert cli.needs_utf8_mode(utf8_mode, encoding) is needed


@pytest.mark.parametrize("needed", [True, False])
def test_pytest_runs_in_utf8_mode_where_needed(monkeypatch, needed):
    seen: dict[str, Any] = {}
    monkeypatch.delenv("PYTHONUTF8", raising=False)
    monkeypatch.setattr(cli, "needs_utf8_mode", lambda: needed)
    monkeypatch.setattr(cli, "run", lambda cmd, env: seen.update(cmd=cmd, env=env) or 3)
    assert cli.main(["--distro=debian-12"]) == 3
    assert seen["cmd"][:3] == [sys.executable, "-m", "pytest"]
    assert seen["cmd"][-1] == "--distro=debian-12"
    assert seen["env"].get("PYTHONUTF8") == ("1" if needed else None)


def test_on_linux_gmi_becomes_the_run_itself(tmp_path):
    """exec: the process that was started (whose pid a CI runner or systemctl signals)
    is the one pytest runs in; nothing is left between them to forward a signal."""
    script = ("import os, sys; from harness.host import hostos; print(os.getpid(), flush=True); "
              "hostos.current().run_in_place(['/bin/sh', '-c', 'echo $$; exit 7'], dict(os.environ))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    before, after = proc.stdout.split()
    assert proc.returncode == 7 and before == after, proc.stdout + proc.stderr


def test_on_windows_the_child_gets_ctrl_c_and_ctrl_break_and_gmi_waits(monkeypatch):
    """Windows: no exec. The console's Ctrl-C (and Ctrl-Break) reaches the child, which
    ends the run; gmi ignores them while it waits, then gives back its exit status and
    its own handlers. (The Windows branch, run here with Popen faked.)"""
    from harness.host import hostos

    seen: dict[str, Any] = {}

    class Child:
        def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
            seen.update(cmd=cmd, env=env)

        def wait(self) -> int:
            seen["during"] = signal.getsignal(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the console's Ctrl-C reaches gmi too
            return 2

    before = signal.getsignal(signal.SIGINT)
    assert hostos.Windows(popen=Child).run_in_place(["python", "-m", "harness"], {"A": "1"}) == 2
    assert seen["during"] == signal.SIG_IGN and seen["cmd"] == ["python", "-m", "harness"]
    assert signal.getsignal(signal.SIGINT) == before


def test_the_wheel_carries_the_checks_the_catalogue_and_the_gmi_command(tmp_path):
    """``pip install .`` (not only an editable checkout) gives gmi everything it needs:
    built here offline from a copy of the source tree."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", "reports", "build", "*.egg-info", "__pycache__", ".*_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "--no-index", str(src), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("gmi_harness-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("checks/conftest.py", "checks/test_checklist.py",
                 "checks/test_export.py", "distros/debian-12.yml", "distros/fedora-42.yml",
                 "cli.py", "plugin/front.py", "host/hostos.py", "__main__.py",
                 "stages/fixtures.py", "backends/hyperv/scripts/new_vm.ps1"):
        assert f"harness/{must}" in names, must
    # one top-level name, none generic beside a user's own packages
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"harness"}, tops
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(meta).decode()
    assert "gmi = harness.cli:main" in entry_points
    assert "harness.plugin = harness.plugin" in entry_points
    assert "harness.stages.fixtures = harness.stages.fixtures" in entry_points


def test_markers_and_warning_filters_need_no_ini_file(tmp_path):
    """A run from a wheel has no pytest configuration: the plugin registers the checks'
    markers and the host-key warning filter itself."""
    (tmp_path / "test_x.py").write_text(
        "import warnings, pytest\n"
        "@pytest.mark.vm\n@pytest.mark.checklist('an item')\n@pytest.mark.export\n"
        "def test_x():\n"
        "    warnings.warn('Unknown ssh-ed25519 host key for [127.0.0.1]:2222', UserWarning)\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-W", "error::pytest.PytestUnknownMarkWarning", "test_x.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed" in proc.stdout and "Unknown ssh-ed25519" not in proc.stdout
