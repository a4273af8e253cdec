"""Seed templates: a folder of vmgenie seed-data (``user-data``, ``meta-data``,
``network-config``) with ``{{ NAME }}`` placeholders, rendered for the clone instead of
the harness's own seed (``--seed-template DIR`` or a distro's ``seed_template:``).

vmgenie renders these files with Scriban and writes them to the NoCloud seed ISO of
every VM it makes from a GMI. The harness fills the same placeholders with the clone's
values, so the clone boots as a vmgenie VM would, with the seed its users will really
get. Only plain ``{{ NAME }}`` placeholders are supported; anything else between
``{{`` and ``}}`` is an error, as is a placeholder the harness does not know.

The files are YAML: a placeholder inside a comment (``# vmgenie fills {{ NAME }}``) is
text, left as it is and never checked; inside a block scalar (``content: |``) a ``#``
line is content, and its placeholders are filled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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


def read(folder: Path) -> tuple[SeedTemplate | None, list[str]]:
    """The three template files of ``folder`` (vmgenie renders all three) and every
    problem found in them, one line each: a missing folder or file, text that is not
    UTF-8, an unknown placeholder, ``{{`` without ``}}`` (each with its file and line),
    the harness's login placeholders never used."""
    if not folder.is_dir():
        return None, [f"seed template {folder}: no such folder"]
    files: dict[str, str] = {}
    problems: list[str] = []
    for name in SEED_FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"seed template {folder}: {name} is missing "
                            f"(a template has {', '.join(SEED_FILES)})")
            continue
        try:
            files[name] = path.read_text(encoding="utf-8-sig")  # (a BOM from Windows editors)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"seed template {path}: cannot be read as UTF-8 text ({exc})")
    template = SeedTemplate(folder, files)
    used: set[str] = set()
    for name, text in files.items():
        for lineno, code in _code(text):
            for m in PLACEHOLDER.finditer(code):
                key = m.group(1).strip()
                used.add(key)
                if key not in PLACEHOLDERS:
                    problems.append(_unknown(folder / name, lineno, m.group(0)))
            if "{{" in PLACEHOLDER.sub("", code):
                problems.append(f"seed template {folder / name} line {lineno}: "
                                "'{{' without its closing '}}'")
    missing = [name for name in REQUIRED if name not in used]
    if missing and "user-data" in files:  # (the login is in the user-data)
        problems.append(
            f"seed template {folder} never uses {{{{ {missing[0]} }}}}: the clone would have "
            "no user the harness can log in to with its key (vmgenie fills {{ USERNAME }} and "
            "{{ PRIVKEY }} with the instance's user and public key)")
    return template, problems


def load(folder: Path) -> SeedTemplate:
    """The template of ``folder``; its first problem (:func:`read`) is raised."""
    template, problems = read(folder)
    if problems or template is None:
        raise SeedTemplateError(problems[0])
    return template


def _unknown(path: Path, lineno: int, placeholder: str) -> str:
    return (f"seed template {path} line {lineno}: unknown placeholder {placeholder} (known: "
            + ", ".join(f"{{{{ {k} }}}}" for k in PLACEHOLDERS) + ")")


BLOCK_SCALAR = re.compile(r"[|>][0-9+-]*\s*$")


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one YAML line: a comment starts at a ``#`` at the line's start
    or after a blank, outside a quoted scalar (a quote opens one only where a scalar
    may start, so ``don't`` opens nothing)."""
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i], line[i:]
        i += 1
    return line, ""


def _indent(line: str) -> int:
    """A line's nesting: its blanks, and each ``- `` of a sequence entry."""
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    while stripped.startswith("- "):
        rest = stripped[2:].lstrip(" ")
        indent += len(stripped) - len(rest)
        stripped = rest
    return indent


def _code(text: str) -> Iterator[tuple[int, str]]:
    """(line number, the part that is not a comment) of each line; a block scalar's
    content lines are all content (a ``#`` there is text vmgenie renders)."""
    block = -1  # the indent a block scalar's content must exceed (-1: not in one)
    for lineno, line in enumerate(text.splitlines(), 1):
        if block >= 0 and (not line.strip() or _indent(line) > block):
            yield lineno, line
            continue
        block = -1
        code, _ = _split_comment(line)
        indicator = BLOCK_SCALAR.search(code)
        before = code[:indicator.start()].rstrip() if indicator else "?"
        if before.endswith(":"):  # key: |  (content deeper than the key)
            block = _indent(line)
        elif before.endswith("-") or not before:  # - |  (content deeper than the dash)
            block = max(len(before) - 1, 0)
        yield lineno, code


def values_for(spec: SeedSpec) -> dict[str, str]:
    """The placeholders' values for the clone described by ``spec``."""
    return {
        "USERNAME": spec.username, "PRIVKEY": spec.ssh_public_key.strip(),
        "TIMEZONE": spec.timezone, "LOCALE": spec.locale, "LAYOUT": spec.keyboard_layout,
        "HOSTNAME": spec.hostname, "INSTANCE": spec.instance_id,
    }


def render(template: SeedTemplate, values: Mapping[str, str]) -> dict[str, str]:
    """Every file with its placeholders filled (comments are left as they are); an
    unknown placeholder or an unclosed ``{{`` is an error that names the file and line."""
    out = {}
    for name, text in template.files.items():
        code = dict(_code(text))
        lines = []
        for lineno, line in enumerate(text.splitlines(keepends=True), 1):
            part = code[lineno]
            for m in PLACEHOLDER.finditer(part):
                if m.group(1).strip() not in values:
                    raise SeedTemplateError(_unknown(template.folder / name, lineno, m.group(0)))
            if "{{" in PLACEHOLDER.sub("", part):
                raise SeedTemplateError(f"seed template {template.folder / name} line {lineno}: "
                                        "'{{' without its closing '}}'")
            filled = PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], part)
            lines.append(filled + line[len(part):])
        out[name] = "".join(lines)
    return out
