"""The seed check's logic: what the real ``cloud-init schema -c`` printed (recorded from
Debian 12's 22.4.2 and Debian 13's 25.1.4, tests/data/cloud_init_schema/README.md) turned
into findings with key and line, for hand-made templates with a bad key and for vmgenie's
Debian 12 template."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import GmiError
from harness.media import seed, seed_schema, seed_template
from harness.media.seed_schema import Finding

DATA = Path(__file__).parent / "data" / "cloud_init_schema"
# vmgenie's templates: ../shared/vmgenie-seed-data beside the repository, or $GMI_VMGENIE_SEEDS
# (a git worktree is one folder deeper than the repository).
VMGENIE = Path(os.environ.get("GMI_VMGENIE_SEEDS")
               or Path(__file__).resolve().parents[2] / "shared" / "vmgenie-seed-data")
# The values the recordings were made with.
VALUES = {"HOSTNAME": "gmi-check-debian-13", "USERNAME": "genie", "TIMEZONE": "Etc/UTC",
          "PRIVKEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGU "
                     "gmi-check",
          "LOCALE": "en_US.UTF-8", "LAYOUT": "us", "INSTANCE": "i-0123456789ab"}
# Recordings of vmgenie's templates (in ../shared, not copied here): name -> its folder there.
VMGENIE_NAMES = {"vmgenie-debian-12": "Debian/12/seed-data",
                 "vmgenie-opensuse-16.Beta": "OpenSUSE/16.Beta/seed-data"}


def user_data(name: str) -> str:
    """NAME.user-data here, or the vmgenie template a VMGENIE_NAMES name stands for (the
    test is skipped when ../shared/vmgenie-seed-data is absent), rendered with VALUES."""
    if name in VMGENIE_NAMES:
        folder = VMGENIE / VMGENIE_NAMES[name]
        if not folder.is_dir():
            pytest.skip(f"vmgenie's seed templates are not here ({folder} is absent; "
                        "a copy is in ../shared/vmgenie-seed-data on the team's machines)")
        return seed_template.render(seed_template.load(folder), VALUES)["user-data"]
    template = seed_template.SeedTemplate(DATA, {"user-data": (DATA / f"{name}.user-data").read_text()})
    return seed_template.render(template, VALUES)["user-data"]


def _rebuilt(base: Any, text: Any, path: str = "") -> tuple[str, list[str]] | None:
    """Where ``text`` (loaded) holds a mapping with other keys than ``base`` has there."""
    if isinstance(base, dict) and isinstance(text, dict):
        if list(base) != list(text):
            return path, list(text)
        pairs = [(f"{path}.{k}".lstrip("."), base[k], text[k]) for k in base]
    elif isinstance(base, list) and isinstance(text, list) and len(base) == len(text):
        pairs = [(f"{path}.{i}".lstrip("."), a, b) for i, (a, b) in enumerate(zip(base, text, strict=True))]
    else:
        return None
    for where, a, b in pairs:
        found = _rebuilt(a, b, where)
        if found:
            return found
    return None


def recording_name(name: str, text: str) -> str:
    """The recording for ``text``, as check() sends it for NAME: NAME itself, or
    ``NAME.PATH=KEY,KEY`` for NAME with the mapping at PATH holding only those keys
    (what seed_schema.isolate() validates)."""
    base = user_data(name)
    if text == base:
        return name
    rebuilt = _rebuilt(yaml.safe_load(base), yaml.safe_load(text))
    assert rebuilt, f"not a text check() sends for {name}: {text!r}"
    path, keys = rebuilt
    assert text == seed_schema.keep_only(base, path, keys), f"not a keep_only() of {name}: {text!r}"
    return f"{name}.{path}={','.join(keys)}"


def recorded(name: str, version: int | str) -> tuple[int, str]:
    text = (DATA / f"{name}.cloud-init-{version}.out").read_text()
    output, _, rc = text.rpartition("exit ")
    return int(rc), output


def replay(version: int):
    """cloud-init's recorded answers to the bad-key template and to it without the
    unknown key (what check() sends in its second round); anything else is a test bug."""
    seen: list[str] = []

    def validate(text: str) -> tuple[int, str]:
        seen.append(text)
        if "home:" in text:
            assert text == user_data("bad-key")
            return recorded("bad-key", version)
        assert "homedir" not in text and "ssh-authorized-keys" in text
        return recorded("deprecated-only", version)

    return validate, seen


def test_cloud_init_25_names_both_faults_with_key_and_line():
    validate, seen = replay(25)
    found = seed_schema.check(user_data("bad-key"), validate)
    assert found == [
        Finding("users.1.home", 8, "error",
                "unknown key 'home': Additional properties are not allowed ('home' was unexpected)"),
        Finding("users.1.ssh-authorized-keys", 11, "deprecated",
                "Deprecated in version 18.3. Use **ssh_authorized_keys** instead."),
    ]
    assert len(seen) == 2  # the deprecation shows only once the unknown key is gone
    line = seed_schema.describe(found, "the seed template /t")
    assert line.startswith("2 faults in the seed template /t (the seed's fault, not the image's): "
                           "users.1.home (user-data line 8): error: unknown key 'home'")
    assert "users.1.ssh-authorized-keys (user-data line 11): deprecated:" in line
    assert "\n" not in line and "AAAAC3" not in line  # no echo of the whole user entry


def replay_all(name: str, version: int | str):
    """cloud-init's recorded answer to each text check() sends for NAME (recording_name());
    a text without a recording is a test failure."""
    seen: list[str] = []

    def validate(text: str) -> tuple[int, str]:
        seen.append(recording_name(name, text))
        return recorded(seen[-1], version)

    return validate, seen


def isolated(path: str) -> str:
    return (f"not valid here: the entry validates without this key, not with it (found by validating "
            f"again; cloud-init said only that {path} is not valid under any of the given schemas)")


def test_cloud_init_22_names_no_key_so_the_check_finds_them():
    # 22.4 knows neither home: nor ssh-authorized-keys: (it has no deprecated spelling yet)
    assert "ssh-authorized-keys" in recorded("bad-key.users.1=name,shell,sudo,ssh-authorized-keys", 22)[1]
    validate, seen = replay_all("bad-key", 22)
    found = seed_schema.check(user_data("bad-key"), validate)
    assert found == [Finding("users.1.home", 8, "error", isolated("users.1")),
                     Finding("users.1.ssh-authorized-keys", 11, "error", isolated("users.1"))]
    assert seen == ["bad-key", "bad-key.users.1=name", "bad-key.users.1=name,home",
                    "bad-key.users.1=name,shell", "bad-key.users.1=name,shell,sudo",
                    "bad-key.users.1=name,shell,sudo,ssh-authorized-keys",
                    "bad-key.users.1=name,home,shell,sudo"]  # home again, against every key kept
    line = seed_schema.describe(found, "the seed template /t")
    assert line.startswith("2 faults in the seed template /t (the seed's fault, not the image's): "
                           "users.1.home (user-data line 8): error: not valid here")
    assert "\n" not in line and "AAAAC3" not in line


def test_cloud_init_22_one_key_at_fault():
    validate, seen = replay_all("one-bad-key", 22)
    assert seed_schema.check(user_data("one-bad-key"), validate) == [
        Finding("users.1.home", 8, "error", isolated("users.1"))]
    assert len(seen) == 5  # the template, then one per key: the entry with all keys is not sent again


def test_vmgenie_debian_12_template_with_cloud_init_22():
    validate, seen = replay_all("vmgenie-debian-12", 22)
    found = seed_schema.check(user_data("vmgenie-debian-12"), validate)
    assert [(f.key, f.line, f.kind) for f in found] == [("users.1.home", 7, "error"),
                                                        ("users.1.ssh-authorized-keys", 10, "error")]
    assert found[0].message == isolated("users.1")
    assert len(seen) == 9  # the template, its 7 user keys, home again


def reordered(output: str, glued: bool) -> str:
    """``output`` (recorded with PYTHONUNBUFFERED=1: cloud-init's deprecations block, on
    stdout, first) as the guest writes it without that variable, stdout flushed at exit:
    the deprecations block after the errors (``glued=False``, what ``2>&1`` in the guest
    gives; checked against the real 22.4.2 on 2026-12-07); or, as an SSH channel merging
    the two pipes may deliver it, between the errors' text and its newline (``glued=True``,
    as CI's run of 2026-12-07 printed for vmgenie's Debian 12 template: "...is not valid
    under any of the given schemasCloud config schema deprecations: ")."""
    lines = output.splitlines(keepends=True)
    deprecations = [ln for ln in lines if ln.startswith("Cloud config schema deprecations: ")]
    rest = [ln for ln in lines if ln not in deprecations]
    if not glued:
        return "".join(rest + deprecations)
    errors = next(i for i, ln in enumerate(rest) if ln.startswith("Cloud config schema errors: "))
    rest[errors] = rest[errors].rstrip("\n") + "".join(deprecations) + "\n"
    return "".join(rest)


@pytest.mark.parametrize("glued", [False, True], ids=["after", "glued"])
def test_the_deprecations_block_anywhere_changes_nothing(glued: bool):
    # every 22.4 recording with both blocks, and vmgenie's Debian 12 template as CI got it
    both = [p for p in sorted(DATA.glob("*.cloud-init-22.out"))
            if "Cloud config schema deprecations: " in p.read_text() and "schema errors: " in p.read_text()]
    assert len(both) >= 10
    for path in both:
        output = path.read_text().rpartition("exit ")[0]
        moved = reordered(output, glued)
        assert moved != output
        assert ("schemasCloud config schema deprecations: " in moved) == glued
        assert sorted(seed_schema.parse_output(moved)) == sorted(seed_schema.parse_output(output)), path.name

    validate, _seen = replay_all("vmgenie-debian-12", 22)

    def as_the_guest_sends_it(text: str) -> tuple[int, str]:
        rc, output = validate(text)
        return rc, reordered(output, glued) if rc else output

    found = seed_schema.check(user_data("vmgenie-debian-12"), as_the_guest_sends_it)
    assert [(f.key, f.line) for f in found] == [("users.1.home", 7), ("users.1.ssh-authorized-keys", 10)]


def test_no_key_at_fault_keeps_the_whole_entry_as_the_finding():
    # name: 5 is wrong, and without name the entry lacks a required key: no key explains it
    validate, seen = replay_all("bad-name", 22)
    assert seed_schema.check(user_data("bad-name"), validate) == [
        Finding("users.1", 6, "error", "this mapping is not valid under any of the given schemas")]
    assert seen == ["bad-name", "bad-name.users.1=name", "bad-name.users.1=shell",
                    "bad-name.users.1=ssh_authorized_keys"]


def test_a_mapping_with_more_keys_than_searched_is_not_searched():
    validate, seen = replay_all("many-keys", 22)
    assert len(yaml.safe_load(user_data("many-keys"))["users"][1]) == seed_schema.MAX_KEYS + 1
    assert seed_schema.check(user_data("many-keys"), validate) == [
        Finding("users.1", 6, "error", "this mapping is not valid under any of the given schemas")]
    assert seen == ["many-keys"]


@pytest.mark.parametrize("version", [22, 25])
def test_a_valid_seed_has_no_finding(version: int):
    spec = seed.SeedSpec("i-1", "h", "genie", VALUES["PRIVKEY"].replace("gmi-check", "x"), "Etc/UTC",
                         "en_US.UTF-8", "us")
    assert seed_schema.check(seed.render(spec)["user-data"], lambda text: recorded("own-seed", version)) == []


def test_many_faults_each_with_its_line():
    found = seed_schema.findings(seed_schema.parse_output(recorded("several", 25)[1]), user_data("several"))
    assert [(f.key, f.line, f.kind) for f in found] == [
        ("apt_update", 5, "deprecated"), ("foo_bar", 2, "error"), ("runcmd", 4, "error"),
        ("timezone", 3, "error"), ("users.1.bogus", 10, "error"), ("users.1.homee", 9, "error")]
    assert found[2].message == "'x' is not of type 'array'"
    old = seed_schema.findings(seed_schema.parse_output(recorded("several", 22)[1]), user_data("several"))
    assert [(f.key, f.line, f.kind) for f in old] == [
        ("apt_update", 5, "deprecated"), ("runcmd", 4, "error"), ("timezone", 3, "error"),
        ("users.1", 8, "error")]


@pytest.mark.parametrize("version", [22, 25])
@pytest.mark.parametrize(("name", "line", "says"), [("no-header", 1, "#cloud-config"),
                                                    ("not-yaml", 3, "not valid")])
def test_a_file_cloud_init_cannot_read_is_one_finding_with_its_line(version, name, line, says):
    found = seed_schema.findings(seed_schema.parse_output(recorded(name, version)[1]), user_data(name))
    assert len(found) == 1 and (found[0].key, found[0].line) == ("(file)", line)
    assert says.lower() in found[0].message.lower() and "\n" not in found[0].message


def test_cloud_init_failing_without_naming_a_problem_is_an_error_not_a_finding():
    with pytest.raises(GmiError, match=r"exit 127\): .*cloud-init: command not found"):
        seed_schema.check("#cloud-config\n",
                          lambda text: (127, "bash: line 1: cloud-init: command not found\n"))


def test_boot_complaints_about_the_schema_are_told_apart_from_the_rest():
    schema, other = seed_schema.recoverable_split({
        "WARNING": ["user-data failed schema validation! You may run 'sudo cloud-init schema "
                    "--system' to check the details.", "Failed to mount /dev/sr0"],
        "DEPRECATED": ["Deprecated cloud-config provided: users.1.ssh-authorized-keys: ..."]})
    assert len(schema) == 2
    assert all(m.startswith(("WARNING: user-data", "DEPRECATED: Deprecated")) for m in schema)
    assert other == ["WARNING: Failed to mount /dev/sr0"]


def test_line_of_walks_keys_and_list_indexes():
    text = "#cloud-config\nusers:\n  - default\n  - name: a\n    x: 1\nruncmd: [a]\n"
    assert seed_schema.line_of(text, "users.1.x") == 5
    assert seed_schema.line_of(text, "users.1") == 4
    assert seed_schema.line_of(text, "users.1.nope") == 4  # the deepest part found
    assert seed_schema.line_of(text, "format-l7.c1") == 7
    assert seed_schema.line_of("users: [", "users") is None


def test_vmgenie_opensuse_16_template_with_leap_16s_cloud_init_25_1_3():
    """--seed-template with vmgenie's OpenSUSE/16.Beta template for opensuse-leap-16.0,
    judged by the cloud-init Leap 16.0 ships (25.1.3; recorded from upstream's 25.1.3
    tag, tests/data/cloud_init_schema/README.md): the unknown key first, then, once it
    is gone, the deprecated spelling."""
    validate, seen = replay_all("vmgenie-opensuse-16.Beta", "25.1.3")
    found = seed_schema.check(user_data("vmgenie-opensuse-16.Beta"), validate)
    assert [(f.key, f.line, f.kind) for f in found] == [("users.1.home", 7, "error"),
                                                        ("users.1.ssh-authorized-keys", 10, "deprecated")]
    assert found[0].message.startswith("unknown key 'home': Additional properties are not allowed")
    assert seen == ["vmgenie-opensuse-16.Beta", "vmgenie-opensuse-16.Beta.users.1=name,sudo,shell,"
                    "lock_passwd,groups,ssh-authorized-keys"]
