"""The procedure's fallback for Hyper-V daemons no package provides: build them from
the running kernel's ``tools/hv`` and install them with systemd units.

What was built (source URL, kernel version, daemons, units and steps) goes into the
build record, as the procedure asks: "record exactly which source was used ... and the
steps required, so that this process is repeatable".
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from harness.distro import HvFromSource
from harness.errors import GmiError

UNITS = {
    "kvp": ("hv-kvp-daemon.service", "Hyper-V key-value pair (KVP) daemon"),
    "vss": ("hv-vss-daemon.service", "Hyper-V volume shadow copy service (VSS) daemon"),
    "fcopy": ("hv-fcopy-daemon.service", "Hyper-V file copy service daemon"),
}


def kernel_version(release: str) -> str:
    """The kernel.org version of a running kernel (``uname -r``), as the procedure
    derives it: the part before the distro suffix, with a trailing ``.0`` dropped
    (6.14.0-27-generic -> 6.14; 6.1.0-13-amd64 -> 6.1; 6.12.48+deb13-amd64 -> 6.12.48)."""
    base = re.split(r"[-+_~]", release.strip(), maxsplit=1)[0]
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", base):
        raise GmiError(f"cannot tell the kernel.org version of kernel {release!r}: "
                       "set hyperv_integration.from_source.mode to never and install the daemons")
    return base[:-2] if base.count(".") == 2 and base.endswith(".0") else base


def _tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def fcopy_daemon(kver: str, spec: HvFromSource) -> str:
    """hv_fcopy_daemon until the kernel replaced it with the uio-based
    hv_fcopy_uio_daemon (Linux 6.10)."""
    new = _tuple(kver)[:2] >= _tuple(spec.fcopy_uio_since)[:2]
    return "hv_fcopy_uio_daemon" if new else "hv_fcopy_daemon"


@dataclass(frozen=True)
class HvBuild:
    """The script that builds and installs the daemons, and what the record keeps."""

    kernel_release: str
    kernel_version: str
    source_url: str
    daemons: tuple[str, ...]
    units: tuple[str, ...]
    enabled: tuple[str, ...]
    steps: tuple[str, ...] = field(repr=False)

    @property
    def script(self) -> str:
        return "set -euo pipefail\n" + "\n".join(self.steps) + "\n"

    def record(self) -> dict[str, Any]:
        return {"kernel_release": self.kernel_release, "kernel_version": self.kernel_version,
                "source_url": self.source_url, "daemons": list(self.daemons),
                "units": list(self.units), "enabled": list(self.enabled),
                "steps": list(self.steps)}


def _unit(description: str, exec_start: str) -> str:
    # Only on Hyper-V (elsewhere /dev/vmbus/* is missing and the daemon would
    # restart-loop into a failed unit, failing every clone's "no failed units" check).
    return (f"[Unit]\nDescription={description}\nAfter=network.target\n"
            "ConditionVirtualization=microsoft\n\n"
            f"[Service]\nExecStart={exec_start} -n\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


def plan(kernel_release: str, spec: HvFromSource, install_build_tools: str) -> HvBuild:
    """The procedure's steps for this kernel: download linux-KVER from kernel.org,
    ``make`` in tools/hv, copy the daemons to ``spec.prefix``, write their units,
    enable kvp and vss (fcopy stays disabled, as the procedure suggests), delete the
    source."""
    kver = kernel_version(kernel_release)
    url = spec.source_url.format(major=kver.split(".")[0], kver=kver)
    fcopy = fcopy_daemon(kver, spec)
    daemons = ("hv_kvp_daemon", "hv_vss_daemon", fcopy)
    prefix = spec.prefix.rstrip("/")
    src = f"/usr/src/linux-{kver}"
    steps = [
        install_build_tools,
        f"cd /usr/src && curl -fsSLo linux-{kver}.tar.xz {shlex.quote(url)}",
        f"tar -xf /usr/src/linux-{kver}.tar.xz -C /usr/src",
        f"make -C {src}/tools/hv",
        f"install -d {prefix}",
        *(f"install -m 0755 {src}/tools/hv/{d} {prefix}/{d}" for d in daemons),
    ]
    for key, daemon in zip(("kvp", "vss", "fcopy"), daemons, strict=True):
        unit, description = UNITS[key]
        steps.append(f"cat > /etc/systemd/system/{unit} <<'__GMI_UNIT__'\n"
                     f"{_unit(description, f'{prefix}/{daemon}')}__GMI_UNIT__")
    enabled = (UNITS["kvp"][0], UNITS["vss"][0])
    steps += [
        "systemctl daemon-reload",
        f"systemctl enable {' '.join(enabled)}",
        f"systemctl disable {UNITS['fcopy'][0]}",
        f"rm -rf {src} /usr/src/linux-{kver}.tar.xz",
    ]
    return HvBuild(kernel_release, kver, url, daemons, tuple(u for u, _ in UNITS.values()),
                   enabled, tuple(steps))
