from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.settings import SETTINGS, resolve


def test_defaults_when_nothing_given():
    s = resolve({}, env={})
    assert s.backend == "qemu" and s.keep == "never" and s.force is False
    assert s.sources["backend"] == "default"


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path):
    cfg = tmp_path / "gmi-harness.toml"
    cfg.write_text('keep = "always"\nvm_cpus = 1\nmaintainer = "file"\n')
    env = {"GMI_KEEP": "on-failure", "GMI_VM_CPUS": "3"}
    s = resolve({"keep": "never"}, env=env, config_file=cfg)
    assert s.keep == "never" and s.sources["keep"] == "command line"
    assert s.vm_cpus == 3 and s.sources["vm_cpus"] == "environment"
    assert s.maintainer == "file" and s.sources["maintainer"].startswith("config file")
    assert s.backend == "qemu" and s.sources["backend"] == "default"


def test_bad_choice_names_the_known_values():
    with pytest.raises(ConfigError, match=r"keep must be one of never, always, on-failure"):
        resolve({"keep": "sometimes"}, env={})


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="GMI_VM_CPUS"):
        resolve({}, env={"GMI_VM_CPUS": "many"})


def test_unknown_key_in_config_file(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("kepe = 'always'\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) kepe"):
        resolve({}, env={}, config_file=cfg)


def test_config_file_not_toml(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("keep = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve({}, env={}, config_file=cfg)


def test_describe_masks_secrets():
    s = resolve({}, env={"GMI_HYPERV_PASSWORD": "hunter2-secret"})
    text = "\n".join(s.describe())
    assert "hunter2-secret" not in text
    assert "hyperv_password = ***  (environment)" in text


def test_every_setting_has_help_and_a_unique_option():
    options = [s.option for s in SETTINGS]
    assert len(options) == len(set(options))
    assert all(s.help for s in SETTINGS)


def test_typed_fields_and_the_settings_table_are_the_same_set():
    """Settings' declared fields (what mypy checks ``settings.x`` against) and the
    SETTINGS rows (what drives options, env, file and help) name the same settings,
    each typed as its default is."""
    import typing

    from harness.settings import SETTINGS, SettingsFields

    hints = typing.get_type_hints(SettingsFields)
    assert set(hints) == {s.name for s in SETTINGS}
    for s in SETTINGS:
        want = tuple if (s.multiple or isinstance(s.default, tuple)) else type(s.default)
        assert (typing.get_origin(hints[s.name]) or hints[s.name]) is want, s.name


def test_every_setting_has_a_help_section():
    from harness.settings import SETTINGS

    assert all(s.section for s in SETTINGS)
    assert {s.section for s in SETTINGS if s.name.startswith("hyperv_")} == {
        "the Hyper-V backend (docs/hyperv.md)"}


def test_prepare_mode_per_distro_over_the_plain_mode():
    from harness.settings import prepare_mode

    s = resolve({"prepare": ["vm", "debian-13=chroot"]}, env={})
    assert prepare_mode(s.prepare, "debian-13") == "chroot"
    assert prepare_mode(s.prepare, "debian-12") == "vm"
    assert prepare_mode(resolve({}, env={}).prepare, "debian-12") == "auto"
    env = resolve({}, env={"GMI_PREPARE": "debian-12=vm"})
    assert prepare_mode(env.prepare, "debian-12") == "vm"
    assert prepare_mode(env.prepare, "debian-13") == "auto"


@pytest.mark.parametrize("value", ["container", "debian-12=", "=vm", "debian-12=fast"])
def test_a_bad_prepare_mode_says_what_is_allowed(value: str):
    with pytest.raises(ConfigError, match=r"is not MODE or DISTRO=MODE \(MODE one of auto, chroot, vm\)"):
        resolve({"prepare": [value]}, env={})


def test_chroot_preparation_is_refused_where_the_backend_chosen_makes_no_root_tree():
    """A class fact of the backend (prepares_in_chroot), checked where it is chosen; the
    refusal names the backends that can."""
    from harness.backends import choose

    with pytest.raises(ConfigError, match=r"^--prepare=chroot: the hyperv backend prepares in the build VM "
                       r".*use --prepare=vm or leave it out \(one that can: --backend=qemu\)$"):
        choose(resolve({"prepare": ["debian-12=chroot"], "backend": "hyperv"}, env={}))
    assert choose(resolve({"prepare": ["vm"], "backend": "hyperv"}, env={})).prepares_in_chroot is False
    assert choose(resolve({"prepare": ["chroot"]}, env={})).prepares_in_chroot is True
