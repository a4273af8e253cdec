"""Seed templates (--seed-template, a distro's seed_template:): finding the folder,
rendering vmgenie's {{ NAME }} placeholders, and the one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from harness import distro
from harness.media import seed_template
from harness.media.seed import SeedSpec
from harness.media.seed_template import SeedTemplateError

# vmgenie's templates: ../shared/vmgenie-seed-data beside the repository, or $GMI_VMGENIE_SEEDS
# (a git worktree is one folder deeper than the repository).
VMGENIE = Path(os.environ.get("GMI_VMGENIE_SEEDS")
               or Path(__file__).resolve().parents[2] / "shared" / "vmgenie-seed-data")
SPEC = SeedSpec(instance_id="i-0123456789ab", hostname="gmi-check-debian-13", username="genie",
                ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey gmi-check\n",
                timezone="Europe/Berlin", locale="de_DE.UTF-8", keyboard_layout="de")


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", "-")).write_text(text)
    return folder


def minimal(folder: Path, user_data: str | None = None) -> Path:
    return write(folder, meta_data="instance-id: {{ INSTANCE }}\nlocal-hostname: {{HOSTNAME}}\n",
                 network_config="version: 2\n",
                 user_data=user_data or ("#cloud-config\nusers:\n  - name: {{ USERNAME }}\n"
                                         "    ssh_authorized_keys: ['{{ PRIVKEY }}']\n"
                                         "timezone: {{ TIMEZONE }}\nlocale: {{  LOCALE  }}\n"
                                         "keyboard: {layout: {{ LAYOUT }}}\n"))


def test_every_placeholder_is_filled_with_the_clones_values(tmp_path: Path):
    files = seed_template.render(seed_template.load(minimal(tmp_path)), seed_template.values_for(SPEC))
    assert set(files) == {"user-data", "meta-data", "network-config"}
    user = yaml.safe_load(files["user-data"])
    assert user["users"][0] == {"name": "genie",
                                "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey gmi-check"]}
    assert (user["timezone"], user["locale"], user["keyboard"]) == ("Europe/Berlin", "de_DE.UTF-8",
                                                                    {"layout": "de"})
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "i-0123456789ab",
                                                  "local-hostname": "gmi-check-debian-13"}
    assert files["user-data"].startswith("#cloud-config\n")
    assert "{{" not in "".join(files.values())


def test_unknown_placeholder_is_one_line_naming_file_and_line(tmp_path: Path):
    folder = minimal(tmp_path, "#cloud-config\nusers:\n  - name: {{ USERNAME }}\n"
                               "    ssh_authorized_keys: ['{{ PRIVKEY }}']\n    passwd: {{ PASSWORD }}\n")
    with pytest.raises(SeedTemplateError) as exc:  # found when the template is read
        seed_template.load(folder)
    message = str(exc.value)
    assert "\n" not in message
    assert f"{folder / 'user-data'} line 5: unknown placeholder {{{{ PASSWORD }}}}" in message
    assert "{{ USERNAME }}" in message and "{{ INSTANCE }}" in message  # the known ones


def test_scriban_expressions_and_unclosed_braces_are_errors(tmp_path: Path):
    values = seed_template.values_for(SPEC)
    for line, expected in (("{{ USERNAME | string.upcase }}", "unknown placeholder"),
                           ("hostname: {{ HOSTNAME", "without its closing")):
        folder = minimal(tmp_path / str(len(line)), "#cloud-config\nx: [{{ USERNAME }}, {{ PRIVKEY }}]\n"
                                                    + line + "\n")
        with pytest.raises(SeedTemplateError, match=f"line 3: .*{expected}"):
            seed_template.render(seed_template.load(folder), values)


def test_a_placeholder_in_a_comment_is_text(tmp_path: Path):
    """vmgenie's templates say what they fill in comments (the outside-repo example's
    did: ``{{ NAME }}``); a comment's braces are left as they are, never checked. In a
    block scalar a ``#`` line is content: its placeholders are filled."""
    folder = minimal(tmp_path, "#cloud-config\n# vmgenie fills the {{ NAME }} placeholders\n"
                               "users:\n  - name: {{ USERNAME }}  # the {{ USER }} of the VM\n"
                               "    ssh_authorized_keys: ['{{ PRIVKEY }} # {{ HOSTNAME }}']\n"
                               "write_files:\n  - content: |\n      # {{ HOSTNAME }}\n"
                               "    path: /etc/motd # {{ NOT_ONE }} {{ unclosed\n")
    template, problems = seed_template.read(folder)
    assert problems == [] and template is not None
    user = seed_template.render(template, seed_template.values_for(SPEC))["user-data"]
    assert user.splitlines()[1] == "# vmgenie fills the {{ NAME }} placeholders"
    assert "  - name: genie  # the {{ USER }} of the VM" in user.splitlines()
    assert "gmi-check # gmi-check-debian-13'" in user  # inside quotes: no comment
    assert "      # gmi-check-debian-13" in user.splitlines()
    assert user.rstrip().endswith("path: /etc/motd # {{ NOT_ONE }} {{ unclosed")
    # a comment's placeholders do not count as the harness's login either
    folder2 = minimal(tmp_path / "2", "#cloud-config\n# {{ USERNAME }} {{ PRIVKEY }}\nusers: []\n")
    assert any("never uses {{ USERNAME }}" in p for p in seed_template.read(folder2)[1])


def test_every_problem_of_a_template_is_one_line_each(tmp_path: Path):
    folder = minimal(tmp_path, "#cloud-config\nusers:\n  - name: {{ USERNAME }}\n"
                               "    passwd: {{ PASSWORD }}\n    shell: {{ SHELL\n")
    (folder / "network-config").unlink()
    _, problems = seed_template.read(folder)
    assert len(problems) == 4 and all("\n" not in p for p in problems), problems
    assert problems[0].endswith("network-config is missing (a template has meta-data, user-data, "
                                "network-config)")
    assert "user-data line 4: unknown placeholder {{ PASSWORD }}" in problems[1]
    assert problems[2].endswith("user-data line 5: '{{' without its closing '}}'")
    assert "never uses {{ PRIVKEY }}" in problems[3]


@pytest.mark.parametrize("missing", ["user-data", "meta-data", "network-config"])
def test_missing_file_is_an_error(tmp_path: Path, missing: str):
    folder = minimal(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(SeedTemplateError, match=f"^seed template {folder}: {missing} is missing"):
        seed_template.load(folder)


def test_missing_folder_is_an_error(tmp_path: Path):
    with pytest.raises(SeedTemplateError, match="no such folder"):
        seed_template.load(tmp_path / "nope")
    with pytest.raises(SeedTemplateError, match=r"^--seed-template .*nope: no such folder$"):
        seed_template.locate(str(tmp_path / "nope"), None, "", "Debian", "13")


def test_a_template_without_the_harness_login_is_refused(tmp_path: Path):
    folder = minimal(tmp_path, "#cloud-config\nusers:\n  - name: {{ USERNAME }}\n")
    with pytest.raises(SeedTemplateError,
                       match=r"never uses \{\{ PRIVKEY \}\}: the clone would have no user"):
        seed_template.load(folder)


def test_locate_a_seed_data_folder_a_vmgenie_tree_or_the_distros_own(tmp_path: Path):
    direct = minimal(tmp_path / "direct")
    tree = tmp_path / "etc-cloud"
    nested = minimal(tree / "Debian" / "13" / "seed-data")
    assert seed_template.locate(str(direct), None, "", "Debian", "13") == direct.resolve()
    assert seed_template.locate(str(tree), None, "", "Debian", "13") == nested.resolve()
    with pytest.raises(SeedTemplateError, match="nor one holding Debian/12/seed-data/"):
        seed_template.locate(str(tree), None, "", "Debian", "12")
    yml = tmp_path / "distros" / "x.yml"
    # the YAML's seed_template: is relative to the YAML file; --seed-template wins over it
    assert seed_template.locate("", yml, "../direct", "Debian", "13") == direct.resolve()
    assert seed_template.locate(str(tree), yml, "../direct", "Debian", "13") == nested.resolve()
    assert seed_template.locate("", None, "", "Debian", "13") is None


def test_distro_yaml_seed_template_must_exist(tmp_path: Path):
    text = distro.DISTROS_DIR.joinpath("debian-12.yml").read_text()
    folder = tmp_path / "distros"
    folder.mkdir()
    (folder / "debian-12.yml").write_text(text + "seed_template: ../seeds/acme\n")
    with pytest.raises(distro.DistroError, match=r"key 'seed_template': no such folder .*seeds/acme$"):
        distro.load_file(folder / "debian-12.yml")
    minimal(tmp_path / "seeds" / "acme")
    assert distro.load_file(folder / "debian-12.yml").seed_template == "../seeds/acme"


@pytest.mark.skipif(not VMGENIE.is_dir(), reason=f"vmgenie's seed-data copy is not at {VMGENIE}")
@pytest.mark.parametrize("folder", sorted(VMGENIE.glob("*/*/seed-data")) if VMGENIE.is_dir() else [],
                         ids=lambda p: f"{p.parts[-3]}-{p.parts[-2]}")
def test_vmgenies_own_templates_render_and_authorize_the_harness_key(folder: Path):
    files = seed_template.render(seed_template.load(folder), seed_template.values_for(SPEC))
    user = yaml.safe_load(files["user-data"])
    entry = next(u for u in user["users"] if isinstance(u, dict) and u.get("name") == "genie")
    keys = entry.get("ssh_authorized_keys") or entry.get("ssh-authorized-keys")
    assert keys == [SPEC.ssh_public_key.strip()]
    assert yaml.safe_load(files["meta-data"])["instance-id"] == SPEC.instance_id


@pytest.mark.skipif(not VMGENIE.is_dir(), reason=f"vmgenie's seed-data copy is not at {VMGENIE}")
def test_leap_16_takes_vmgenies_opensuse_16_beta_template():
    """--seed-template=<vmgenie's etc/cloud> for opensuse-leap-16.0 finds OpenSUSE/16.Beta,
    the name vmgenie gives the release (and so the YAML's vmgenie.version)."""
    d = distro.load("opensuse-leap-16.0")
    folder = seed_template.locate(str(VMGENIE), d.source, d.seed_template, d.vmgenie.os, d.vmgenie.version)
    assert folder == (VMGENIE / "OpenSUSE" / "16.Beta" / "seed-data").resolve()
    assert folder is not None
    seed = d.checks.seed
    spec = SeedSpec("i-1", "gmi-check-opensuse-leap-16-0", "genie", SPEC.ssh_public_key, seed.timezone,
                    seed.locale, seed.keyboard_layout)
    user = yaml.safe_load(seed_template.render(seed_template.load(folder),
                                               seed_template.values_for(spec))["user-data"])
    assert user["timezone"] == "America/Chicago" and user["runcmd"][-1] == "zypper --non-interactive update"
