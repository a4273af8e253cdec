from pathlib import Path

import yaml

from harness.media import iso as volumes
from harness.media import seed

SPEC = seed.SeedSpec(
    instance_id="i-0123", hostname="gmi-check", username="genie",
    ssh_public_key="ssh-ed25519 AAAAC3Nza test", timezone="America/Chicago",
    locale="en_US.UTF-8", keyboard_layout="us", groups=("sudo", "wheel"))


def test_render_matches_vmgenie_seed():
    files = seed.render(SPEC)
    assert set(files) == set(seed.SEED_FILES)
    assert files["user-data"].startswith("#cloud-config\n")
    ud = yaml.safe_load(files["user-data"])
    assert ud["users"][0] == "default"
    user = ud["users"][1]
    assert user["name"] == "genie" and user["lock_passwd"] is True
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert user["groups"] == "sudo, wheel"
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3Nza test"]
    assert ud["ssh_pwauth"] is False and ud["disable_root"] is True
    assert ud["timezone"] == "America/Chicago" and ud["locale"] == "en_US.UTF-8"
    assert ud["keyboard"] == {"layout": "us"}
    assert ud["runcmd"] == ["apt update -y", "apt upgrade -y"]
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": "i-0123", "local-hostname": "gmi-check"}
    net = yaml.safe_load(files["network-config"])
    assert net["version"] == 2
    assert net["ethernets"]["eth0"] == {"match": {"name": "eth0"}, "dhcp4": True}


def test_iso_reads_back_with_cidata_label(tmp_path: Path):
    files = seed.render(SPEC)
    path = seed.write_iso(files, tmp_path / "seed.iso")
    label, back = volumes.read_volume(path)
    assert label == "cidata"
    assert back == files
    assert not list(tmp_path.glob("*.part"))


def test_iso_has_rock_ridge_names(tmp_path: Path):
    import pycdlib

    iso_path = seed.write_iso(seed.render(SPEC), tmp_path / "seed.iso")
    vol = pycdlib.PyCdlib()
    vol.open(str(iso_path))
    try:
        names = sorted(c.rock_ridge.name().decode() for c in vol.list_children(rr_path="/")
                       if c.rock_ridge is not None and not c.is_dot() and not c.is_dotdot())
    finally:
        vol.close()
    assert names == sorted(seed.SEED_FILES)
