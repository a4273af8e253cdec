"""No test skips for a missing tool on a machine ``make setup`` prepared: every tool a
test looks up is in tests/host_tools.py, and every package there is one the Makefile
installs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from host_tools import TOOLS

ROOT = Path(__file__).resolve().parent.parent
# how a test finds out whether a tool is there
LOOKUPS = (r'shutil\.which\("([^"]+)"\)', r'\["which", "([^"]+)"\]', r'needs\(([^)]*)\)',
           r'why_missing\(([^)]*)\)')


def tools_looked_up() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name in ("host_tools.py", "test_host_tools.py"):
            continue
        text = path.read_text()
        for pattern in LOOKUPS:
            for match in re.finditer(pattern, text):
                listed = match.group(1)
                for tool in re.findall(r'"([^"]+)"', listed) if '"' in listed else [listed]:
                    found.setdefault(tool, set()).add(path.name)
    return found


def makefile_packages() -> set[str]:
    """What ``make setup`` really installs: the package list of ``make -n host-packages``
    (as make expands it), the Allure CLI's Java, and the Allure CLI from npm."""
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "host-packages"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"for p in ([^;]*);", dry)
    assert m, dry
    packages = set(m.group(1).split())
    text = (ROOT / "Makefile").read_text()
    if m := re.search(r"^REPORT_COMMANDS :?= (.*)$", text, re.M):
        packages |= {pair.split(":", 1)[1] for pair in m.group(1).split()}
    if "allure-commandline@" in text:
        packages.add("npm:allure-commandline")
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages |= {f"pip:{name}" for name in re.findall(r'"([A-Za-z0-9_.-]+)[=<>]', pyproject)}
    return packages


def test_the_scan_finds_the_lookups_it_should():
    found = tools_looked_up()
    assert {"xorriso", "qemu-img", "openssl", "systemd-analyze", "java"} <= set(found), found


def test_every_tool_a_test_looks_up_is_in_the_table():
    unknown = {t: sorted(f) for t, f in tools_looked_up().items() if t not in TOOLS}
    assert not unknown, f"add these to tests/host_tools.py TOOLS (and the Makefile): {unknown}"


def test_make_setup_installs_every_package_the_tests_need():
    missing = sorted(set(TOOLS.values()) - makefile_packages())
    assert not missing, f"the Makefile does not install {missing}: add them to TEST_APT_PACKAGES"
