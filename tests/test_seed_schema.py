"""The seed check's logic: what the real ``cloud-init schema -c`` printed (recorded from
Debian 12's 22.4.2 and Debian 13's 25.1.4, tests/data/cloud_init_schema/README.md) turned
into findings with key and line, for hand-made templates with a bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import GmiError
from harness.media import seed, seed_schema, seed_template
from harness.media.seed_schema import Finding

DATA = Path(__file__).parent / "data" / "cloud_init_schema"
# The values the recordings were made with.
VALUES = {"HOSTNAME": "gmi-check-debian-13", "USERNAME": "genie", "TIMEZONE": "Etc/UTC",
          "PRIVKEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGU "
                     "gmi-check"}


def user_data(name: str) -> str:
    template = seed_template.SeedTemplate(DATA, {"user-data": (DATA / f"{name}.user-data").read_text()})
    return seed_template.render(template, VALUES)["user-data"]


def recorded(name: str, version: int) -> tuple[int, str]:
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


def test_cloud_init_22_only_says_the_user_entry_is_invalid():
    validate, seen = replay(22)
    found = seed_schema.check(user_data("bad-key"), validate)
    assert found == [Finding("users.1", 7, "error",
                             "this mapping is not valid under any of the given schemas")]
    assert len(seen) == 1  # no key named: nothing to take away and ask again


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
