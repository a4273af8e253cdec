"""Seed templates: a folder of vmgenie seed-data (``user-data``, ``meta-data``,
``network-config``) with ``{{ NAME }}`` placeholders, rendered for the clone instead of
the harness's own seed (``--seed-template DIR`` or a distro's ``seed_template:``).

vmgenie renders these files with Scriban and writes them to the NoCloud seed ISO of
every VM it makes from a GMI. The harness fills the same placeholders with the clone's
values, so the clone boots as a vmgenie VM would, with the seed its users will really
get. Only plain ``{{ NAME }}`` placeholders are supported; anything else between
``{{`` and ``}}`` is an error, as is a placeholder the harness does not know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import GmiError
from harness.media.seed import SEED_FILES, SeedSpec

# Each placeholder and what vmgenie (and so the harness) fills it with.
PLACEHOLDERS: Mapping[str, str] = {
    "USERNAME": "the user to create (the harness logs in as it: 'genie')",
    "PRIVKEY": "that user's SSH public key, one OpenSSH line (vmgenie fills it with the "
               "instance's <name>.pem.pub, despite the name)",
    "TIMEZONE": "the time zone (the distro YAML's checks.seed.timezone)",
    "LOCALE": "the locale (checks.seed.locale)",
    "LAYOUT": "the keyboard layout (checks.seed.keyboard_layout)",
    "HOSTNAME": "the host name",
    "INSTANCE": "the instance id (vmgenie: the instance's name; new for every clone)",
}
# Without these the harness could not log in to the clone it booted.
REQUIRED = ("USERNAME", "PRIVKEY")
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
SUBFOLDER = "seed-data"


class SeedTemplateError(GmiError):
    """A seed template is missing, incomplete or uses a placeholder the harness does not know."""


@dataclass(frozen=True)
class SeedTemplate:
    """The template files of one folder, as text."""

    folder: Path
    files: Mapping[str, str]


def locate(setting: str, distro_file: Path | None, distro_template: str,
           os_name: str, version: str) -> Path | None:
    """The template folder for a distro: ``--seed-template`` (a seed-data folder, or
    vmgenie's ``etc/cloud`` holding ``<Os>/<Version>/seed-data/``), else the distro's
    ``seed_template:`` (relative to its YAML file); None: the harness's own seed."""
    if setting:
        root = Path(setting).expanduser()
        if not root.is_dir():
            raise SeedTemplateError(f"--seed-template {setting}: no such folder")
        if (root / "user-data").exists() or (root / "meta-data").exists():
            return root.resolve()
        nested = root / os_name / version / SUBFOLDER
        if nested.is_dir():
            return nested.resolve()
        raise SeedTemplateError(
            f"--seed-template {setting}: neither a seed-data folder (user-data, meta-data, "
            f"network-config) nor one holding {os_name}/{version}/{SUBFOLDER}/")
    if distro_template:
        base = distro_file.parent if distro_file is not None else Path()
        return (base / distro_template).resolve()
    return None


def load(folder: Path) -> SeedTemplate:
    """Read the three template files of ``folder`` (vmgenie renders all three)."""
    if not folder.is_dir():
        raise SeedTemplateError(f"seed template {folder}: no such folder")
    files = {}
    for name in SEED_FILES:
        path = folder / name
        if not path.is_file():
            raise SeedTemplateError(f"seed template {folder}: {name} is missing "
                                    f"(a template has {', '.join(SEED_FILES)})")
        try:
            files[name] = path.read_text(encoding="utf-8-sig")  # (a BOM from Windows editors)
        except (OSError, UnicodeDecodeError) as exc:
            raise SeedTemplateError(f"seed template {path}: cannot be read as UTF-8 text "
                                    f"({exc})") from None
    used = {m.group(1).strip() for text in files.values() for m in PLACEHOLDER.finditer(text)}
    missing = [name for name in REQUIRED if name not in used]
    if missing:
        raise SeedTemplateError(
            f"seed template {folder} never uses {{{{ {missing[0]} }}}}: the clone would have "
            "no user the harness can log in to with its key (vmgenie fills {{ USERNAME }} and "
            "{{ PRIVKEY }} with the instance's user and public key)")
    return SeedTemplate(folder, files)


def values_for(spec: SeedSpec) -> dict[str, str]:
    """The placeholders' values for the clone described by ``spec``."""
    return {
        "USERNAME": spec.username, "PRIVKEY": spec.ssh_public_key.strip(),
        "TIMEZONE": spec.timezone, "LOCALE": spec.locale, "LAYOUT": spec.keyboard_layout,
        "HOSTNAME": spec.hostname, "INSTANCE": spec.instance_id,
    }


def render(template: SeedTemplate, values: Mapping[str, str]) -> dict[str, str]:
    """Every file with its placeholders filled; an unknown placeholder is an error that
    names the file and line."""
    out = {}
    for name, text in template.files.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in PLACEHOLDER.finditer(line):
                if m.group(1).strip() not in values:
                    raise SeedTemplateError(
                        f"seed template {template.folder / name} line {lineno}: unknown "
                        f"placeholder {m.group(0)} (known: "
                        + ", ".join(f"{{{{ {k} }}}}" for k in PLACEHOLDERS) + ")")
            if "{{" in PLACEHOLDER.sub("", line):
                raise SeedTemplateError(f"seed template {template.folder / name} line {lineno}: "
                                        "'{{' without its closing '}}'")
        out[name] = PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], text)
    return out
