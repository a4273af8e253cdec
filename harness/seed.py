"""NoCloud seed ISOs (volume label ``cidata``, Joliet + Rock Ridge), as vmgenie makes
them: ``meta-data``, ``user-data`` and ``network-config`` at the root."""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pycdlib
import yaml

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


def _iso9660_name(name: str) -> str:
    base, _, ext = name.upper().partition(".")
    base = re.sub(r"[^A-Z0-9_]", "_", base)[:8] or "_"
    ext = re.sub(r"[^A-Z0-9_]", "_", ext)[:3]
    return f"/{base}.{ext};1"


def write_volume(files: dict[str, str], path: Path, label: str) -> Path:
    """An ISO 9660 volume (Joliet and Rock Ridge names) labelled ``label`` holding
    ``files`` at its root; atomic (a temp file renamed in place)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=label)
    for name, text in files.items():
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), _iso9660_name(name), rr_name=name,
                   joliet_path="/" + name)
    tmp = path.with_name(path.name + ".part")
    iso.write(str(tmp))
    iso.close()
    os.replace(tmp, path)
    return path


def write_iso(files: dict[str, str], path: Path) -> Path:
    """Write a ``cidata`` ISO (NoCloud's seed, as vmgenie makes it) holding ``files``."""
    return write_volume(files, path, "cidata")


def read_iso(path: Path) -> tuple[str, dict[str, str]]:
    """The volume label and the files (by their Joliet names) of a seed ISO."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, str] = {}
        for child in iso.list_children(joliet_path="/"):
            name = child.file_identifier().decode("utf-16-be")
            if name in (".", "..") or child.is_dir():
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, joliet_path="/" + name)
            files[name] = out.getvalue().decode()
        return label, files
    finally:
        iso.close()
