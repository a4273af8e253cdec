"""--distros DIR: extra catalogue folders searched before ours, as a setting from the
command line, the environment and the config file; a name defined twice is an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import distro, settings
from harness.archive import validate

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "outside-repo" / "distros"


def test_an_extra_folder_adds_its_distros():
    names = distro.known_distros(extra=[EXAMPLE])
    assert "acme-debian-13" in names and set(distro.known_distros()) < set(names)
    d = distro.load("acme-debian-13", extra=[str(EXAMPLE)])
    assert d.source == (EXAMPLE / "acme-debian-13.yml").resolve()
    with pytest.raises(distro.DistroError, match="unknown distro 'acme-debian-13'; known distros: debian-12"):
        distro.load("acme-debian-13")  # not without the folder


def test_a_name_defined_twice_names_both_files(tmp_path: Path):
    shutil.copy(distro.DISTROS_DIR / "debian-13.yml", tmp_path / "debian-13.yml")
    with pytest.raises(distro.DistroError) as exc:
        distro.known_distros(extra=[tmp_path])
    assert str(exc.value) == (f"distro 'debian-13' is defined twice: {tmp_path / 'debian-13.yml'} and "
                              f"{distro.DISTROS_DIR / 'debian-13.yml'}; rename one (a distro's name is "
                              "its file name)")
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(EXAMPLE / "acme-debian-13.yml", second)
    shutil.copy(EXAMPLE / "acme-debian-13.yml", tmp_path / "acme-debian-13.yml")
    (tmp_path / "debian-13.yml").unlink()
    twice = f"defined twice: {tmp_path}/acme-debian-13.yml and {second}/"
    with pytest.raises(distro.DistroError, match=twice):
        distro.load("acme-debian-13", extra=[tmp_path, second])


def test_the_same_folder_twice_or_ours_again_counts_once():
    assert distro.known_distros(extra=[EXAMPLE, EXAMPLE, distro.DISTROS_DIR]) == \
        distro.known_distros(extra=[EXAMPLE])


def test_a_missing_folder_is_an_error(tmp_path: Path):
    with pytest.raises(distro.DistroError, match=r"^--distros .*nope: no such folder$"):
        distro.known_distros(extra=[tmp_path / "nope"])


def test_an_archive_finds_its_entry_in_the_extra_folders_first(tmp_path: Path):
    # acme-debian-13 has vmgenie's names Debian 13, like ours: the extra folder is searched first
    assert validate.distro_for(tmp_path / "GMI-Debian-13.zip", extra=[EXAMPLE]).name == "acme-debian-13"
    assert validate.distro_for(tmp_path / "GMI-Debian-12.zip").name == "debian-12"


def test_distros_setting_from_each_source(tmp_path: Path):
    config = tmp_path / "gmi-harness.toml"
    config.write_text('distros = ["./distros", "../shared/distros"]\nseed_template = "seeds"\n')
    from_file = settings.resolve({}, env={}, config_file=config)
    assert from_file.distros == ("./distros", "../shared/distros") and from_file.seed_template == "seeds"
    from_env = settings.resolve({}, env={"GMI_DISTROS": "a,b", "GMI_SEED_TEMPLATE_BLOCKS_EXPORT": "yes"},
                                config_file=config)
    assert from_env.distros == ("a", "b") and from_env.seed_template_blocks_export is True
    assert settings.resolve({"distros": ["x"]}, env={"GMI_DISTROS": "a"}).distros == ("x",)
    assert settings.resolve({}, env={}).seed_template_blocks_export is False
