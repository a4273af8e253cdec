from pathlib import Path

import pytest
import yaml

from harness import distro
from harness.errors import DistroError

GOOD = distro.DISTROS_DIR / "debian-12.yml"


def write_variant(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(GOOD.read_text())
    change(data)
    path = tmp_path / "debian-12.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", distro.known_distros())
def test_every_catalogued_distro_loads(name: str):
    d = distro.load(name)
    assert d.name == name
    assert d.vmgenie.vm_name.startswith("GMI ")


def test_debian_12_as_vmgenie_names_it():
    d = distro.load("debian-12")
    assert d.vmgenie.vm_name == "GMI Debian 12"
    assert d.vmgenie.stem == "GMI-Debian-12"
    assert d.hyperv.secure_boot_template == "MicrosoftUEFICertificateAuthority"
    assert d.hyperv.disk_gb == 250
    assert "EFI/BOOT/BOOTX64.EFI" in d.boot.efi_fallback


def test_distro_objects_are_frozen():
    d = distro.load("debian-12")
    with pytest.raises(AttributeError):
        d.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.boot.efi_fallback["x"] = "y"  # type: ignore[index]


def test_unknown_distro_lists_known():
    with pytest.raises(DistroError, match=r"unknown distro 'debian-99'; known distros: .*debian-12"):
        distro.load("debian-99")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["hyperv"].__setitem__("disk_gb", "big"),
     r"key 'hyperv\.disk_gb': expected a whole number, got str"),
    (lambda d: d["cloud_init"].pop("datasource_list"),
     r"key 'cloud_init\.datasource_list': missing"),
    (lambda d: d["cloud_init"].__setitem__("packages", "cloud-init"),
     r"key 'cloud_init\.packages': expected a list of strings, got str"),
    (lambda d: d["boot"].__setitem__("grub_timeout", 0),
     r"key 'boot\.grub_timeout': unknown key"),
    (lambda d: d.__setitem__("family", "pacman"),
     r"key 'family': unknown package-manager family 'pacman'"),
    (lambda d: d["hyperv"].__setitem__("secure_boot", "yes"),
     r"key 'hyperv\.secure_boot': expected true or false"),
    (lambda d: d.__setitem__("name", "debian-13"),
     r"key 'name': must equal the file name"),
])
def test_malformed_file_names_file_and_key(tmp_path: Path, change, message):
    path = write_variant(tmp_path, change)
    with pytest.raises(DistroError, match=message) as exc:
        distro.load_file(path)
    assert str(path) in str(exc.value)


def test_not_yaml(tmp_path: Path):
    path = tmp_path / "x.yml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(DistroError, match=r"x\.yml: not valid YAML \(line \d+\)"):
        distro.load_file(path)


def test_not_a_mapping(tmp_path: Path):
    path = tmp_path / "x.yml"
    path.write_text("- a\n- b\n")
    with pytest.raises(DistroError, match="expected a mapping at the top level, got list"):
        distro.load_file(path)
