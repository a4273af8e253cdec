"""Package databases made for the evidence tests, in the forms the seal records them:
dpkg's status file with copyright files (a gzipped tar, as ``inventory.APT_SCRIPT``
prints it) and ``rpm -qa`` lines (``inventory.RPM_SCRIPT``'s fields, from a Fedora 42
and a Rocky 9 system's real package names, versions and licence tags)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: {name}

Files: *
Copyright: 2000 Someone
License: {licence}

Files: debian/*
Copyright: 2001 Someone Else
License: GPL-2+

License: GPL-2+
 On Debian systems, the full text is in /usr/share/common-licenses/GPL-2.
"""

# name, version, arch, source field, licence synopsis (None: a copyright file that is not
# machine-readable; "": no copyright file at all)
PACKAGES = [
    ("bash", "5.2.15-2+b7", "amd64", "bash (5.2.15-2)", "GPL-3+"),
    ("libssl3", "3.0.15-1~deb12u1", "amd64", "openssl", "Apache-2.0"),
    ("openssl", "3.0.15-1~deb12u1", "amd64", "", "Apache-2.0"),
    ("base-files", "12.4+deb12u8", "amd64", "", None),
    ("libc6", "2.36-9+deb12u9", "amd64", "glibc", "LGPL-2.1+ and GPL-2+ with GCC-exception or Expat"),
    ("tzdata", "2024b-0+deb12u1", "all", "", "public-domain"),
    ("linux-image-6.1.0-28-amd64", "6.1.119-1", "amd64", "linux-signed-amd64 (6.1.119+1)", "GPL-2"),
    ("nolicence", "1.0-1", "amd64", "", ""),
]
REMOVED = ("oldpkg", "1.0-1", "amd64")  # deinstall ok config-files: not installed
KERNEL = "6.1.0-28-amd64"


def dpkg_status() -> str:
    paras = []
    for name, version, arch, source, _ in PACKAGES:
        lines = [f"Package: {name}", "Status: install ok installed", f"Architecture: {arch}",
                 f"Version: {version}"]
        if source:
            lines.insert(2, f"Source: {source}")
        if name.startswith("linux-image-"):  # (as Debian's signed kernels say it)
            lines.append("Built-Using: linux (= 6.1.119-1), sbsigntool (= 0.9.4-3.1)")
        paras.append("\n".join(lines))
    name, version, arch = REMOVED
    paras.append(f"Package: {name}\nStatus: deinstall ok config-files\nArchitecture: {arch}\n"
                 f"Version: {version}")
    return "\n\n".join(paras) + "\n"


def dpkg_record(path: Path) -> Path:
    """The seal's recording of a Debian image with :data:`PACKAGES`."""
    files = {"var/lib/dpkg/status": dpkg_status()}
    for name, _, _, _, licence in PACKAGES:
        if licence is None:
            files[f"usr/share/doc/{name}/copyright"] = "This package was debianized by someone.\n"
        elif licence:
            files[f"usr/share/doc/{name}/copyright"] = DEP5.format(name=name, licence=licence)
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# rpm -qa --qf '%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\n'
FEDORA_42 = """\
bash\t0\t5.2.37\t1.fc42\tx86_64\tbash-5.2.37-1.fc42.src.rpm\tGPL-3.0-or-later
kernel-core\t0\t6.14.0\t63.fc42\tx86_64\tkernel-6.14.0-63.fc42.src.rpm\tGPL-2.0-only AND LGPL-2.1-only
openssl-libs\t1\t3.2.4\t3.fc42\tx86_64\topenssl-3.2.4-3.fc42.src.rpm\tApache-2.0
tzdata\t0\t2025b\t1.fc42\tnoarch\ttzdata-2025b-1.fc42.src.rpm\tLicenseRef-Fedora-Public-Domain
cloud-init\t0\t24.2\t4.fc42\tnoarch\tcloud-init-24.2-4.fc42.src.rpm\tApache-2.0 OR GPL-3.0-only
"""
ROCKY_9 = """\
bash\t0\t5.1.8\t9.el9\tx86_64\tbash-5.1.8-9.el9.src.rpm\tGPLv3+
openssl-libs\t1\t3.0.7\t27.el9\tx86_64\topenssl-3.0.7-27.el9.src.rpm\tASL 2.0
kernel-core\t0\t5.14.0\t427.13.1.el9_4\tx86_64\tkernel-5.14.0-427.13.1.el9_4.src.rpm\t\
GPLv2 and Redistributable, no modification permitted
"""


def synthetic_tracker(release: str = "bookworm") -> dict:
    """Data in the security tracker's JSON format for source packages every Debian GMI
    has, with made-up CVE ids (CVE-2099-*) and versions chosen to show each case: a fix in
    the archive (high), a fix not yet in it, an open one, an undetermined one, one for the
    signed kernel's source (linux, through Built-Using) and one the image is not affected
    by. What the real builds' sign-off pages showed (docs/evidence.md) was made from this:
    ``python -c 'import json, tests.evidence_data as d; print(json.dumps(d.synthetic_tracker()))'``."""
    def entry(status: str, urgency: str, fixed: str = "", **repos: str) -> dict:
        rel: dict = {"status": status, "urgency": urgency, "repositories": {release: "0", **repos}}
        if fixed:
            rel["fixed_version"] = fixed
        return {"description": "made-up test data for gmi-harness (not a real vulnerability)",
                "scope": "local", "releases": {release: rel}}

    return {
        "openssl": {"CVE-2099-1001": entry("resolved", "high", "99:1", **{f"{release}-security": "99:1"})},
        "systemd": {"CVE-2099-1002": entry("resolved", "medium", "99:1")},
        "glibc": {"CVE-2099-1003": entry("open", "low")},
        "openssh": {"CVE-2099-1004": entry("undetermined", "not yet assigned")},
        "linux": {"CVE-2099-1005": entry("resolved", "medium", "99:1", **{release: "99:1"})},
        "bash": {"CVE-2099-1006": entry("resolved", "high", "1.0-1")},  # fixed long ago
    }
