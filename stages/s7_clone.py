"""A fresh clone of the sealed image, booted the way vmgenie boots a GMI: a new VM
with fresh UEFI variables, Secure Boot as the distro says, and a NoCloud seed ISO
that the harness made but the image has never seen. The checks run against it."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testinfra

from harness.backends.base import VM
from harness.build import Build
from harness.errors import GmiError
from harness.media import seed, seed_template
from harness.ssh import Guest, KeyPair

CHECK_USER = "genie"


@dataclass
class Clone:
    """The running clone: its VM, an SSH session as the seeded user, the seed it got,
    and a testinfra host for the checks."""

    vm: VM
    guest: Guest
    seed: seed.SeedSpec
    key: KeyPair
    key_path: Path
    host: Any  # testinfra.host.Host
    boot_seconds: float
    cloud_init_status: str
    # The seed template the clone booted with (None: the harness's own seed), and the
    # seed files as the clone got them.
    template: Path | None = None
    seed_files: dict[str, str] = field(default_factory=dict)


def seed_for(b: Build, key: KeyPair) -> seed.SeedSpec:
    exp = b.distro.checks.seed
    return seed.SeedSpec(
        instance_id=f"i-{uuid.uuid4().hex[:12]}",
        hostname=re.sub(r"[^a-z0-9-]", "-", f"gmi-check-{b.distro.name}".lower())[:63],
        username=CHECK_USER,
        ssh_public_key=key.public_openssh,
        timezone=exp.timezone,
        locale=exp.locale,
        keyboard_layout=exp.keyboard_layout,
        groups=exp.groups,
        upgrade_command=exp.upgrade_command,
    )


def boot_clone(b: Build, name: str = "clone") -> Clone:
    """Boot a clone of ``b.vhdx`` with a new seed; wait for SSH and cloud-init."""
    assert b.vhdx is not None, "the image is not sealed yet"
    key = KeyPair.generate(f"gmi-check-{b.run_id}")
    key_path = key.write_private(b.workdir / f"{name}.key")
    spec = seed_for(b, key)
    template = template_for(b)
    if template is None:
        files = seed.render(spec)
    else:
        files = seed_template.render(seed_template.load(template), seed_template.values_for(spec))
        b.record["seed_template"] = str(template)
    for fname, text in files.items():
        (b.logdir / f"{name}-seed-{fname}").write_text(text)
    iso = seed.write_iso(files, b.workdir / f"{name}-seed.iso")
    start = time.monotonic()
    with b.step(f"{name}: start"):  # (new_vm counts the start as "boot" work)
        vm = b.backend.clone(b, b.vhdx, iso, name)
    guest = Guest(vm.ssh_host, vm.ssh_port, CHECK_USER, key, alive=vm.is_running,
                  console=vm.serial_tail, logger=b.log, timer=b.account)
    with b.step(f"{name}: boot to SSH"):
        b.wait_for_ssh(vm, guest, f"the {name}'s SSH as the seeded user")
    booted = time.monotonic() - start
    with b.step(f"{name}: cloud-init done"):
        status = guest.run("cloud-init status --wait --long", check=False,
                           timeout=b.settings.command_timeout, what="cloud-init status --wait")
    cfg = b.workdir / f"{name}.ssh_config"
    cfg.write_text(
        f"Host gmi-{name}\n  HostName {vm.ssh_host}\n  Port {vm.ssh_port}\n"
        f"  User {CHECK_USER}\n  IdentityFile {key_path}\n  StrictHostKeyChecking no\n")
    host = testinfra.get_host(f"paramiko://gmi-{name}", ssh_config=str(cfg))
    return Clone(vm, guest, spec, key, key_path, host, booted, status.output, template, files)


def template_for(b: Build) -> Path | None:
    """The seed template this clone boots with: --seed-template, else the distro's
    ``seed_template:``; None for the harness's own seed."""
    d = b.distro
    return seed_template.locate(b.settings.seed_template, d.source if d.seed_template else None,
                                d.seed_template, d.vmgenie.os, d.vmgenie.version)


def check_template(b: Build) -> None:
    """Before anything is built: the seed template (if any) exists and renders, so that
    a typo fails in seconds, not after the stages."""
    template = template_for(b)
    if template is not None:
        spec = seed_for(b, KeyPair.generate("gmi-template-check"))
        seed_template.render(seed_template.load(template), seed_template.values_for(spec))


def collect_logs(b: Build, c: Clone, name: str = "clone") -> None:
    """Keep the clone's cloud-init logs and journal beside the serial console."""
    with contextlib.suppress(GmiError):
        out = c.guest.run(
            "sudo cat /var/log/cloud-init.log; echo '--- cloud-init-output.log'; "
            "sudo cat /var/log/cloud-init-output.log; echo '--- journal (this boot)'; "
            "sudo journalctl -b --no-pager", check=False, quiet=True,
            what="collect the clone's logs").output
        (b.logdir / f"{name}-guest-logs.txt").write_text(out)
