"""Everything a run was asked to do, checked once at configure time, before any folder,
process or file is made (also under ``--collect-only``): every setting from every source,
every catalogue file the run names (schema, hostile YAML, its name against its file
name), the seed templates, what the chosen backend needs, the folders it will write,
``--iso-version`` against the distro's ISO, ``--prepare``'s distro names. Each problem is
one line; the plugin reports all of them at once as pytest's usage error (exit status
4), and nothing has run.

Nothing here writes: a folder's writability is probed with a temporary folder made and
removed in the nearest folder that exists.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import distro as distro_mod
from harness import names as names_mod
from harness import safeyaml
from harness import settings as settings_mod
from harness.archive import reader
from harness.archive.errors import ArchiveError
from harness.backends import backend_class, check_backend, choose
from harness.distro import Distro
from harness.errors import GmiError
from harness.media import seed_template
from harness.media.isolisting import version_problem
from harness.settings import Settings


@dataclass
class Preflight:
    """The settings of a run and every problem found in what it asks for."""

    settings: Settings
    problems: list[str] = field(default_factory=list)
    # each --distro's catalogue entry, loaded and checked (the plugin's fixtures load
    # them again in the process that builds: what is checked here is the same files)
    distros: dict[str, Distro] = field(default_factory=dict)


def check(cli: Mapping[str, Any], config_file: Path | None, env: Mapping[str, str] | None = None,
          *, deep: bool = True) -> Preflight:
    """Read the settings and check what the run asks for. ``deep`` False (an xdist
    worker: its controller checked everything already) reads the settings only."""
    reading = settings_mod.read(cli, env, config_file)
    run = Preflight(reading.settings, list(reading.problems))
    refused = reading.refused
    s = reading.settings
    if refused & {"distro", "distros", "gmi"}:
        return run
    names, problems = distro_names(s)
    run.problems += problems
    archives = []
    for raw in s.gmi:
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            run.problems.append(f"--gmi {raw}: no such archive file")
        archives.append(str(path))
    if s.index and not s.index_url and "index_url" not in refused:
        run.problems.append("--index needs --index-url: the http(s) URL vmgenie will download the "
                            "archive from ({archive} is replaced by the archive's file name)")
    run.settings = s = s.replace(distro=tuple(dict.fromkeys(names)),
                                 gmi=tuple(dict.fromkeys(archives)))
    if not deep or not (reading.settings.distro or s.gmi):
        return run
    run.distros, problems = catalogue(s)
    run.problems += problems
    run.problems += prepare_problems(s)
    run.problems += template_problems(s, run.distros)
    if not refused & {"backend"}:
        run.problems += backend_problems(s, list(run.distros.values()))
    run.problems += folder_problems(s, refused, building=bool(reading.settings.distro))
    return run


def distro_names(s: Settings) -> tuple[list[str], list[str]]:
    """The run's ``--distro`` names (``all``: every catalogued one) and the problems: each
    unknown name (all of them), with the file that declares it under another file name
    when there is one."""
    try:
        files = distro_mod.catalogue(extra=s.distros)
    except GmiError as exc:
        return [], [str(exc)]
    names = list(s.distro)
    if "all" in names:
        return sorted(files), []
    unknown = [n for n in dict.fromkeys(names) if n not in files or not names_mod.DISTRO_NAME.fullmatch(n)]
    if not unknown:
        return names, []
    declared = declared_names(files.values())
    known = ", ".join(sorted(files))
    problems = []
    for name in unknown:
        elsewhere = [p for p in declared.get(name, []) if p.stem != name]
        hint = (f" ({elsewhere[0]} declares name: {name}, but a distro's name is its file name: "
                f"rename that file {name}.yml)" if elsewhere else "")
        problems.append(f"unknown distro {name!r}{hint}; known distros: {known} (or 'all')")
    return [n for n in names if n not in unknown], problems


def declared_names(files: Sequence[Path] | Any) -> dict[str, list[Path]]:
    """The ``name:`` each catalogue file declares -> the files declaring it (a file that
    cannot be read declares nothing: loading it says why)."""
    declared: dict[str, list[Path]] = {}
    for path in files:
        with contextlib.suppress(OSError, yaml.YAMLError, UnicodeDecodeError):
            data = safeyaml.load(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                declared.setdefault(data["name"], []).append(path)
    return declared


def catalogue(s: Settings) -> tuple[dict[str, Distro], list[str]]:
    """Every catalogue file the run uses, loaded and checked: the ``--distro`` ones and
    every file of the ``--distros`` folders (the user's own catalogue: a broken file there
    is found now, not when a test reaches it). Two files declaring one ``name:`` are
    named together."""
    try:
        files = distro_mod.catalogue(extra=s.distros)
    except GmiError as exc:
        return {}, [str(exc)]
    own = {p.resolve() for raw in s.distros for p in Path(raw).expanduser().glob("*.yml")}
    wanted = [(n, p) for n, p in files.items() if n in s.distro or p.resolve() in own]
    loaded: dict[str, Distro] = {}
    problems = []
    for name, path in wanted:
        try:
            d = distro_mod.load_file(path)
        except GmiError as exc:
            problems.append(str(exc))
            continue
        if name in s.distro:
            loaded[name] = d
    for name, paths in declared_names([p for _, p in wanted]).items():
        if len(paths) > 1:
            problems.append(f"distro {name!r} is declared by {len(paths)} files: "
                            f"{', '.join(map(str, paths))}: a distro's name is its file name "
                            f"({name}.yml); rename the others")
    return loaded, problems


def prepare_problems(s: Settings) -> list[str]:
    """``--prepare DISTRO=MODE``: DISTRO must be a catalogued distro (a typo would
    otherwise be ignored without a word)."""
    try:
        known = distro_mod.known_distros(extra=s.distros)
    except GmiError:
        return []  # (said by the catalogue's check)
    problems = []
    for value in s.prepare:
        name, sep, _ = value.rpartition("=")
        if sep and name not in known:
            problems.append(f"{s.where('prepare')}: prepare: {value!r} names the unknown distro "
                            f"{name!r}; known distros: {', '.join(known)}")
    return problems


def template_problems(s: Settings, distros: Mapping[str, Distro]) -> list[str]:
    """The seed template each subject's clone boots with: found, complete, every
    placeholder known (each problem once, however many distros share the template)."""
    targets: list[tuple[str, Path | None, str, str, str]] = []
    for d in distros.values():
        targets.append((d.name, d.source if d.seed_template else None, d.seed_template,
                        d.vmgenie.os, d.vmgenie.version))
    if s.seed_template:
        for raw in s.gmi:
            with contextlib.suppress(ArchiveError):  # (a bad name is the archive's verdict)
                n = reader.parse_name(Path(raw))
                targets.append((Path(raw).name, None, "", n.os, n.version))
    problems: list[str] = []
    if s.seed_template and not Path(s.seed_template).expanduser().is_dir():
        problems.append(f"--seed-template {s.seed_template}: no such folder")
    seen: set[Path] = set()
    for _, source, own, os_name, version in targets:
        try:
            folder = seed_template.locate(s.seed_template, source, own, os_name, version)
        except GmiError as exc:
            problems.append(str(exc))
            continue
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        problems += seed_template.read(folder)[1]
    return list(dict.fromkeys(problems))


def backend_problems(s: Settings, distros: Sequence[Distro]) -> list[str]:
    """The backend exists, runs on this OS and can do what the settings ask of it (its
    class facts, where it is chosen: ``harness.backends.choose``); what it needs for
    this run (its required settings, files, each distro's install method and ISO
    version)."""
    try:
        check_backend(s.backend)
    except GmiError as exc:
        return [str(exc)]
    problems = []
    try:
        choose(s)
    except GmiError as exc:
        problems.append(str(exc))
    cls = backend_class(s.backend)
    try:
        problems += cls.settings_problems(s, distros)
    except GmiError as exc:
        problems.append(str(exc))
    for d in distros:
        if problem := iso_version_problem(s, d, cls.installs_instead_of_the_iso(s, d)):
            problems.append(problem)
    return problems


def iso_version_problem(settings: Settings, d: Distro, instead: str) -> str:
    """'' or why ``--iso-version`` cannot pin ``d``'s install ISO: ``instead`` says what
    the build installs from when it is not the official ISO ("" when it is)."""
    version = settings.iso_version
    where = f"{settings.where('iso_version')}: iso_version: {version!r}"
    if not version:
        return ""
    if instead:
        return (f"{where} pins the official install ISO, but {d.name} {instead}: leave "
                "--iso-version out")
    if d.iso is None:
        return f"{where}: {d.name} has no iso: section in its YAML"
    problem = version_problem(d.iso, version)
    return f"{where}: {problem.removeprefix(repr(version) + ' ')}" if problem else ""



def folder_problems(s: Settings, refused: frozenset[str] = frozenset(),
                    building: bool = True) -> list[str]:
    """The folders the run writes: each a folder (not a file) that this user can write
    in, or one that can be made there (``building``: the credentials and the ISO cache
    too)."""
    wanted = ["out", "scratch"]
    if building:
        wanted += ["credentials_dir", "iso_cache"]
    problems = [folder_problem(s.where(name), name, getattr(s, name))
                for name in wanted if name not in refused]
    if s.index and "index" not in refused:
        index = Path(s.index).expanduser()
        if index.is_dir():
            problems.append(f"{s.where('index')}: index: {s.index} is a folder; name the "
                            "index file (gmi-repository.dist.yml)")
        else:
            problems.append(folder_problem(s.where("index"), "index", str(index.parent)))
    return [p for p in problems if p]


def folder_problem(where: str, name: str, raw: str) -> str:
    """'' or why the run cannot use ``raw`` as a folder it writes in."""
    path = Path(raw).expanduser().absolute()
    if path.exists() and not path.is_dir():
        return f"{where}: {name}: {raw} is a file, not a folder; choose a folder"
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return (f"{where}: {name}: {raw} cannot be made: {probe} is a file, not a folder; "
                "choose a folder")
    try:
        made = tempfile.mkdtemp(prefix=".gmi-write-probe-", dir=probe)
    except OSError as exc:
        return (f"{where}: {name}: {raw} cannot be written: {probe} refuses new entries "
                f"({exc.strerror or exc}); choose a folder you can write in")
    os.rmdir(made)
    return ""
