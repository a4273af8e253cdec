"""NoCloud seed ISOs (volume label ``cidata``, Joliet + Rock Ridge), as vmgenie makes
them: ``meta-data``, ``user-data`` and ``network-config`` at the root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.media.iso import write_volume

SEED_FILES = ("meta-data", "user-data", "network-config")


@dataclass(frozen=True)
class SeedSpec:
    """What a vmgenie seed sets on a new VM."""

    instance_id: str
    hostname: str
    username: str
    ssh_public_key: str
    timezone: str
    locale: str
    keyboard_layout: str
    groups: tuple[str, ...] = ("sudo",)
    upgrade_command: tuple[str, ...] = ("apt update -y", "apt upgrade -y")
    interface: str = "eth0"


def render(spec: SeedSpec) -> dict[str, str]:
    """The three seed files' text."""
    meta = {"instance-id": spec.instance_id, "local-hostname": spec.hostname}
    user_data = {
        "users": [
            "default",
            {
                "name": spec.username,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "homedir": f"/home/{spec.username}",  # cloud-init's key ('home' fails its schema)
                "lock_passwd": True,
                "groups": ", ".join(spec.groups),
                "ssh_authorized_keys": [spec.ssh_public_key],
            }
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "timezone": spec.timezone,
        "locale": spec.locale,
        "keyboard": {"layout": spec.keyboard_layout},
        "runcmd": list(spec.upgrade_command),
    }
    network = {
        "version": 2,
        "ethernets": {
            spec.interface: {"match": {"name": spec.interface}, "dhcp4": True},
        },
    }
    return {
        "meta-data": yaml.safe_dump(meta, sort_keys=False),
        "user-data": "#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False),
        "network-config": yaml.safe_dump(network, sort_keys=False),
    }


def write_iso(files: dict[str, str], path: Path) -> Path:
    """Write a ``cidata`` ISO (NoCloud's seed, as vmgenie makes it) holding ``files``."""
    return write_volume(files, path, "cidata")


