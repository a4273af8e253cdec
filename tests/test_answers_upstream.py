"""Every rendered answer file judged by its installer's own rules, as the installer will
when the install starts:

- AutoYaST: the profile against AutoYaST's RELAX NG schema for that branch, with
  ``xmllint --relaxng`` and ``jing`` (whose messages name the element that is wrong);
  AutoYaST stops an unattended install with a popup when this fails.
- Ubuntu autoinstall: the ``autoinstall:`` section against Subiquity's JSON schema for
  that series, and the whole user-data against cloud-init's cloud-config schema.
- Kickstart: pykickstart's parser at the distro's syntax version (Anaconda's own),
  deprecation warnings counted as failures.
- Agama (openSUSE Leap 16): the JSON profile against Agama's profile schema for that
  branch, with the schemas it references (storage, iSCSI) resolved from the same folder
  by a local registry (jsonschema's ``referencing``): nothing is fetched from the network.
- Preseed: ``debconf-set-selections --checkonly``.

Which rules apply is the distro's ``install.answer_rules``. The schemas are upstream
data kept outside the project, in ``shared/schemas/`` beside the repository
(``$GMI_SCHEMAS`` overrides); without them the schema tests skip, saying so. Each kind
also shows its validator rejecting a copy broken on purpose, so a pass means something.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import distro
from harness.build import Credentials
from harness.media import answers

REPO = Path(__file__).resolve().parent.parent
ALL = distro.known_distros()
CREDS = Credentials.generate("gmiadmin", "gmi-build-test")
CLOUD_CONFIG = "cloud-init/schema-cloud-config-v1.json"
# Debian package of each command these tests run (all in the Makefile's APT_PACKAGES).
TOOLS = {"xmllint": "libxml2-utils", "jing": "jing", "debconf-set-selections": "debconf"}


def schemas_dir() -> Path:
    return Path(os.environ.get("GMI_SCHEMAS") or REPO.parent / "shared" / "schemas")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # installed by `make setup`: missing means a broken setup, not a skip
        pytest.fail(f"{name} is not installed: apt-get install {TOOLS[name]} (or run make setup)")
    return path


@pytest.fixture(scope="session")
def schemas() -> Path:
    """The upstream schemas folder, checked whole: every AutoYaST grammar's includes
    resolve (the rng files are assembled as yast-schema's build does: the YaST modules'
    rnc files converted with trang, profile.rng including them all)."""
    root = schemas_dir()
    if not root.is_dir():
        pytest.skip(f"no upstream schemas at {root}: these tests need the shared/schemas folder "
                    "beside the repository (or GMI_SCHEMAS=DIR)")
    for grammar in sorted(root.glob("autoyast-*/profile.rng")):
        missing = sorted({href for rng in grammar.parent.glob("*.rng")
                          for href in re.findall(r'<include href="([^"]+)"', rng.read_text())
                          if not (grammar.parent / href).is_file()})
        assert not missing, f"{grammar.parent}: included grammars missing: {', '.join(missing)}"
    return root


def rendered(name: str) -> tuple[distro.Distro, dict[str, str]]:
    d = distro.load(name)
    return d, answers.render(d, CREDS)


def rules_folder(schemas: Path, rules: str) -> Path:
    folder = schemas / rules
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing from the upstream schemas")
    return folder


# --- the validators: each returns the problems found, [] when the installer accepts it


def autoyast_problems(d: distro.Distro, files: dict[str, str], tmp: Path, schemas: Path) -> list[str]:
    grammar = rules_folder(schemas, d.install.answer_rules) / "profile.rng"
    profile = tmp / "autoinst.xml"
    profile.write_text(files["autoinst.xml"])
    problems = []
    lint = subprocess.run([tool("xmllint"), "--noout", "--relaxng", str(grammar), str(profile)],
                          capture_output=True, text=True)
    if lint.returncode != 0:
        problems.append("xmllint: " + " | ".join(lint.stderr.strip().splitlines()[-3:]))
    jing = subprocess.run([tool("jing"), str(grammar), str(profile)], capture_output=True, text=True)
    out = [ln for ln in (jing.stdout + jing.stderr).splitlines()
           if ln.strip() and not ln.startswith("[warning]")]  # (jing's launcher: optional jars)
    if jing.returncode != 0 or out:
        problems += [f"jing: {ln.replace(str(profile), 'autoinst.xml')}" for ln in out] or [
            f"jing exited {jing.returncode}"]
    return problems


def json_schema_problems(schema: dict[str, Any], document: Any, what: str,
                         registry: Any = None) -> list[str]:
    import jsonschema

    # (as Subiquity, cloud-init and Agama do: the validator the schema's $schema names)
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema) if registry is None else cls(schema, registry=registry)

    def deepest(e: Any) -> Any:  # ("not valid under any of the given schemas": say where)
        while e.context:
            e = max(e.context, key=lambda c: len(c.absolute_path))
        return e

    return [f"{what}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in map(deepest, validator.iter_errors(document))]


def local_registry(folder: Path) -> Any:
    """Every schema of ``folder`` under its ``$id`` (one without, under its file name
    beside the others): a ``$ref`` to anything else is unresolvable, never fetched."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT201909

    docs = {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    base = next(d["$id"] for d in docs.values() if d.get("$id", "").endswith("/profile.schema.json"))
    return Registry().with_resources(
        (doc.get("$id") or base.rsplit("/", 1)[0] + "/" + name,
         Resource.from_contents(doc, default_specification=DRAFT201909))
        for name, doc in docs.items())


def agama_problems(d: distro.Distro, files: dict[str, str], tmp: Path, schemas: Path) -> list[str]:
    folder = rules_folder(schemas, d.install.answer_rules)
    profile = json.loads((folder / "profile.schema.json").read_text())
    return json_schema_problems(profile, json.loads(files["autoinst.json"]), "agama",
                                local_registry(folder))


def autoinstall_problems(d: distro.Distro, files: dict[str, str], tmp: Path, schemas: Path) -> list[str]:
    subiquity = json.loads((rules_folder(schemas, d.install.answer_rules)
                            / "autoinstall-schema.json").read_text())
    cloud_config = json.loads((schemas / CLOUD_CONFIG).read_text())
    user_data = yaml.safe_load(files["user-data"])
    return (json_schema_problems(subiquity, user_data.get("autoinstall"), "subiquity")
            + json_schema_problems(cloud_config, user_data, "cloud-init"))


def kickstart_problems(d: distro.Distro, files: dict[str, str], tmp: Path, schemas: Path) -> list[str]:
    from pykickstart.errors import KickstartError
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion, stringToVersion

    syntax = d.install.answer_rules.removeprefix("pykickstart-")
    parser = KickstartParser(makeVersion(stringToVersion(syntax)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecated command or option fails too
        try:
            parser.readKickstartFromString(files["ks.cfg"])
        except (KickstartError, Warning) as exc:
            return [f"pykickstart {syntax}: {type(exc).__name__}: {exc}".replace("\n", " ")]
    return []


def preseed_problems(d: distro.Distro, files: dict[str, str], tmp: Path, schemas: Path) -> list[str]:
    path = tmp / "preseed.cfg"
    path.write_text(files["preseed.cfg"])
    # A database of its own: the system's is locked while any package installs (apt,
    # unattended-upgrades), and debconf-set-selections then fails even with --checkonly.
    rc = tmp / "debconf.conf"
    rc.write_text(f"Config: configdb\nTemplates: templatedb\n\n"
                  f"Name: configdb\nDriver: File\nFilename: {tmp / 'config.dat'}\n\n"
                  f"Name: templatedb\nDriver: File\nFilename: {tmp / 'templates.dat'}\n")
    proc = subprocess.run([tool("debconf-set-selections"), "--checkonly", str(path)],
                          capture_output=True, text=True, env={**os.environ, "DEBCONF_SYSTEMRC": str(rc)})
    return [f"debconf-set-selections: {proc.stderr.strip() or f'exit {proc.returncode}'}"] if (
        proc.returncode != 0 or proc.stderr.strip()) else []


Validator = Callable[[distro.Distro, dict[str, str], Path, Path], list[str]]
VALIDATORS: dict[str, Validator] = {"autoyast": autoyast_problems, "autoinstall": autoinstall_problems,
                                    "kickstart": kickstart_problems, "preseed": preseed_problems,
                                    "agama": agama_problems}
NEEDS_SCHEMAS = {"autoyast", "autoinstall", "agama"}


def validator_of(d: distro.Distro, request: pytest.FixtureRequest) -> tuple[Validator, Path]:
    schemas = request.getfixturevalue("schemas") if d.install.answer in NEEDS_SCHEMAS else Path()
    return VALIDATORS[d.install.answer], schemas


def test_every_answer_kind_has_its_installers_rules():
    assert set(VALIDATORS) == set(answers.FILES) == set(distro.ANSWER_RULES)
    assert all(distro.load(n).install.answer_rules for n in ALL)


@pytest.mark.parametrize("name", ALL)
def test_installer_accepts_the_rendered_answer_file(name: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest):
    d, files = rendered(name)
    check, schemas = validator_of(d, request)
    assert check(d, files, tmp_path, schemas) == []


# How each kind is broken on purpose, and what its validator must say about it.
BREAK: dict[str, tuple[str, Callable[[dict[str, str]], dict[str, str]], str]] = {
    # the element AutoYaST's schema does not know (the defect of issue #12)
    "autoyast": ("autoinst.xml", lambda f: {"autoinst.xml": f["autoinst.xml"].replace(
        "install_recommended", "install_recommends")}, "install_recommends"),
    # ssh.allow-pw must be a boolean for Subiquity
    "autoinstall": ("user-data", lambda f: {**f, "user-data": f["user-data"].replace(
        "allow-pw: false", 'allow-pw: "no"')}, "subiquity: ssh/allow-pw"),
    # 'install' is deprecated since F29 and removed from RHEL 9's syntax
    "kickstart": ("ks.cfg", lambda f: {"ks.cfg": "install\n" + f["ks.cfg"]}, "pykickstart"),
    "preseed": ("preseed.cfg", lambda f: {"preseed.cfg": f["preseed.cfg"] + "d-i broken-line\n"},
                "debconf-set-selections"),
    # a file system Agama does not know, in the storage schema the profile references
    "agama": ("autoinst.json", lambda f: {"autoinst.json": f["autoinst.json"].replace(
        '"type": "ext4"', '"type": "ext9"')}, "agama: storage/drives/0/partitions/2/filesystem/type"),
}


@pytest.mark.parametrize("name", ALL)
def test_validator_rejects_an_answer_file_broken_on_purpose(name: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest):
    d, files = rendered(name)
    check, schemas = validator_of(d, request)
    target, breaker, expected = BREAK[d.install.answer]
    broken = breaker(files)
    assert broken[target] != files[target], "the breakage did not apply: update BREAK"
    problems = check(d, broken, tmp_path, schemas)
    assert problems and any(expected in p for p in problems), problems


def test_cloud_init_schema_rejects_what_cloud_init_would(schemas: Path, tmp_path: Path):
    """The second half of the Ubuntu check, on its own: user-data that Subiquity's
    section passes but cloud-init's schema refuses (an unknown top-level key)."""
    d, files = rendered("ubuntu-24.04")
    files = {**files, "user-data": files["user-data"] + "not_a_cloud_config_key: 1\n"}
    problems = autoinstall_problems(d, files, tmp_path, schemas)
    assert problems and all(p.startswith("cloud-init:") for p in problems), problems
    assert "not_a_cloud_config_key" in problems[0]


def test_agama_schema_references_resolve_locally_and_nowhere_else(schemas: Path):
    """Every $ref between Agama's schema files is found in the folder (the profile's
    storage and iSCSI sections are really checked); an outside one is unresolvable, not
    fetched."""
    from referencing.exceptions import Unresolvable

    folder = rules_folder(schemas, "agama-sle-16")
    registry = local_registry(folder)
    base = json.loads((folder / "profile.schema.json").read_text())["$id"]
    refs = {ref for path in folder.glob("*.json")
            for ref in re.findall(r'"\$ref":\s*"([^"#][^"]*)"', path.read_text())}
    assert refs == {"storage.schema.json", "iscsi.schema.json"}
    resolver = registry.resolver(base_uri=base)
    for ref in refs:
        assert resolver.lookup(ref).contents["$id"].endswith("/" + ref)
    with pytest.raises(Unresolvable):
        resolver.lookup("https://example.org/not-here.schema.json")


def test_agama_schema_rejects_a_key_the_profile_does_not_have(schemas: Path, tmp_path: Path):
    """The profile's top level is closed (additionalProperties: false): AutoYaST habits
    such as a 'partitioning' section are refused."""
    d, files = rendered("opensuse-leap-16.0")
    profile = json.loads(files["autoinst.json"])
    profile["partitioning"] = []
    problems = agama_problems(d, {"autoinst.json": json.dumps(profile)}, tmp_path, schemas)
    assert problems and "'partitioning' was unexpected" in problems[0], problems
