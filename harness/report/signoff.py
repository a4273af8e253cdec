"""The release sign-off page: one self-contained HTML file per run (or per several runs)
that says, per distro, which checklist items passed, what was built and where the
evidence is.

A run leaves ``signoff.json`` (the facts, written on the xdist controller after the
workers' data arrived) and ``signoff.html`` (the page) in ``reports/runs/<run>/``. The
page can also be made from several runs' results without building anything::

    pytest --signoff-from=ci-artifacts/debian-12 --signoff-from=ci-artifacts/debian-13
    gmi-signoff ci-artifacts/* -o signoff.html

Each folder is searched for ``signoff.json``; a run folder without one (an older run)
is read from its ``junit.xml``, ``settings.txt`` and ``logs/``.

Size: the page's data model, its two sources (signoff.json, an older run's junit.xml)
and its rendering; the HTML itself is the template in ``templates/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.checklist import ADVISORY_ITEMS, REQUIRED_ITEMS
from harness.checklist import CHECKS_DIR as CHECKS_DIR  # (the plugin reads it here)
from harness.checklist import labels_from_source as checklist_labels
from harness.errors import GmiError, mask
from harness.evidence import vulns
from harness.report import release

SCHEMA = "gmi-signoff/1"
DATA_FILE = "signoff.json"
PAGE_FILE = "signoff.html"
# The procedure's order (older signoff.json files have their timings sorted by name): the
# stages as they run (stages.ORDER: a unit test ties the two), --gmi's stand-in and
# --promote, the clone, the export.
STAGE_ORDER = ("provision", "update", "cloud_init", "hyperv", "cleanup", "seal",
               "import_archive", "promote", "clone", "export")
TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE = "signoff.html.j2"

# A test outcome -> the word the page uses.
PASS, FAIL, SKIP, NOT_RUN = "pass", "fail", "skipped", "not run"
OTHER = "other checks"


class SignoffError(GmiError):
    """A results folder cannot be read into a sign-off page."""


# ------------------------------------------------------------------------ the facts


def result_of(outcome: str) -> str:
    """pytest's outcome words (passed/failed/error/skipped/xfailed) -> pass/fail/skipped.
    An expected failure (a seed template's fault, reported without failing the run) is a
    fail of its item: the page shows it, the verdict weighs it as the item says."""
    return {"passed": PASS, "failed": FAIL, "error": FAIL, "skipped": SKIP,
            "xfailed": FAIL}.get(outcome, FAIL)


@dataclass
class CheckResult:
    """One test of one subject, as it ended."""

    subject: str
    name: str  # the test function with its parameters, e.g. test_no_failed_units[debian-12]
    item: str  # its checklist item, or "" for tests that are not checklist items
    outcome: str  # passed | failed | error | skipped | xfailed
    reason: str = ""  # the skip reason or the failure's one-line message
    duration: float = 0.0

    @property
    def result(self) -> str:
        return result_of(self.outcome)


@dataclass
class Subject:
    """One distro (or validated archive) of a run: what was built, and how it went."""

    subject: str
    title: str = ""
    backend: str = ""
    accel: str = ""
    host: str = ""
    archive: str = ""
    sha256: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    # The install ISO (ISO installs): file, url, sha256, version, listing, signature.
    install_iso: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)  # relative to the run folder
    release_diff: dict[str, Any] = field(default_factory=dict)  # see harness.report.release
    # the known vulnerabilities (harness.evidence.vulns) and the evidence files beside the
    # archive (kind -> file name: SBOMs, provenance, SHA256SUMS, its signature)
    vulnerabilities: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    # The release's support on the run's date (harness.distro.lifecycle.Status.record):
    # state, end_of_life, source_url, short, line, and iso_from_archive when so.
    support: dict[str, str] = field(default_factory=dict)
    run: Run | None = None
    tests: list[CheckResult] = field(default_factory=list)

    @property
    def archive_name(self) -> str:
        return Path(self.archive).name if self.archive else ""

    def evidence_link(self, kind: str) -> str:
        """An evidence file beside the archive (for :func:`render`'s ``link``)."""
        name = self.evidence.get(kind, "")
        if not name or "/" in name or name.startswith(".") or not self.archive:
            return ""
        return str(Path(self.archive).parent / name)

    @property
    def vhdx_bytes(self) -> int | None:
        return self.sizes.get("vhdx_bytes")

    @property
    def stage_seconds(self) -> float:
        """The stages' total (their sub-steps, named ``stage: what``, are inside it)."""
        return sum(v for k, v in self.timings.items() if ":" not in k)

    @property
    def stage_rows(self) -> list[tuple[str, float, bool]]:
        """(name, seconds, is a sub-step): each stage followed by its sub-steps (which
        finish, and so were recorded, before it), then steps outside any stage."""
        groups = list(dict.fromkeys(k.split(":")[0] for k in self.timings))
        groups.sort(key=lambda g: STAGE_ORDER.index(g) if g in STAGE_ORDER else len(STAGE_ORDER))
        rows = []
        for group in groups:
            if group in self.timings:
                rows.append((group, self.timings[group], False))
            # A group without a total of its own (the clone's steps) shows its steps as stages.
            rows += [(k, v, group in self.timings) for k, v in self.timings.items()
                     if k.startswith(group + ":")]
        return rows

    def cell(self, item: str) -> Cell:
        return Cell.of([t for t in self.tests if (t.item or OTHER) == item])

    @property
    def verdict(self) -> str:
        """pass: no test failed (an advisory item's failure counts only when its run
        said so) and each required checklist item has a passing test."""
        blocks = self.run is not None and self.run.setting("seed_template_blocks_export") == "True"
        if any(t.result == FAIL and (blocks or t.item not in ADVISORY_ITEMS) for t in self.tests):
            return FAIL
        passed = {t.item for t in self.tests if t.result == PASS}
        return PASS if all(i in passed for i in REQUIRED_ITEMS) else NOT_RUN


@dataclass
class Cell:
    """A matrix cell: the tests of one checklist item for one subject."""

    result: str
    tests: list[CheckResult]

    @classmethod
    def of(cls, tests: list[CheckResult]) -> Cell:
        results = {t.result for t in tests}
        if not tests:
            return cls(NOT_RUN, tests)
        if FAIL in results:
            return cls(FAIL, tests)
        return cls(PASS if PASS in results else SKIP, tests)

    @property
    def counts(self) -> str:
        n = len(self.tests)
        if self.result == FAIL:
            return f"{sum(t.result == FAIL for t in self.tests)} of {n} failed"
        skipped = sum(t.result == SKIP for t in self.tests)
        if self.result == PASS:
            return f"{n - skipped} of {n}" + (f", {skipped} skipped" if skipped else "")
        return f"{n} skipped" if n else ""

    @property
    def reasons(self) -> list[str]:
        wanted = FAIL if self.result == FAIL else SKIP
        return list(dict.fromkeys(t.reason for t in self.tests if t.result == wanted and t.reason))


@dataclass
class Run:
    """Who ran what, when and with which settings (secrets already masked)."""

    id: str
    folder: Path
    user: str = ""
    host: str = ""
    started: str = ""
    finished: str = ""
    harness_version: str = ""
    git_revision: str = ""
    command: str = ""
    wall_seconds: float | None = None
    settings: list[str] = field(default_factory=list)

    def setting(self, name: str) -> str:
        """One effective setting's value as the run recorded it ("" when not recorded)."""
        for line in self.settings:
            key, sep, rest = line.partition(" = ")
            if sep and key == name:
                return rest.rsplit("  (", 1)[0]
        return ""


def run_data(run: Mapping[str, Any], subjects: Iterable[Mapping[str, Any]],
             tests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON document a run leaves as ``signoff.json`` (everything masked)."""
    doc = {"schema": SCHEMA, "run": dict(run), "subjects": list(subjects), "tests": list(tests)}
    return _masked(doc)


def _masked(value: Any) -> Any:
    """``value`` with every string masked (on the strings themselves: a secret with a
    quote or a backslash would not match its JSON-escaped form)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {_masked(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def write_data(folder: Path, doc: Mapping[str, Any]) -> Path:
    path = folder / DATA_FILE
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")  # in run order, not sorted
    os.replace(tmp, path)
    return path


def _safe_relative(rel: str) -> bool:
    """A log path a page may link to: relative, inside its run folder, no URL scheme."""
    path = Path(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts and ":" not in rel


def load_data(path: Path) -> list[Subject]:
    """The subjects of one run, from its ``signoff.json``."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SignoffError(f"{path} is not a sign-off data file ({exc}); "
                           "point --signoff-from at a run folder") from None
    if doc.get("schema") != SCHEMA:
        raise SignoffError(f"{path}: schema {doc.get('schema')!r}, expected {SCHEMA!r}")
    r = doc["run"]
    run = Run(id=str(r.get("id", path.parent.name)), folder=path.parent,
              **{k: r[k] for k in ("user", "host", "started", "finished", "harness_version",
                                    "git_revision", "command", "wall_seconds", "settings") if k in r})
    subjects = {}
    for s in doc["subjects"]:
        known = {k: s[k] for k in Subject.__dataclass_fields__ if k in s and k not in ("run", "tests")}
        # (CI artifacts are not trusted: durations must be numbers, logs plain relative paths)
        known["timings"] = {str(k): float(v) for k, v in dict(known.get("timings") or {}).items()
                            if isinstance(v, int | float) and not isinstance(v, bool)}
        known["logs"] = [str(p) for p in known.get("logs") or [] if _safe_relative(str(p))]
        iso = known.get("install_iso")
        known["install_iso"] = {str(k): str(v) for k, v in iso.items()} if isinstance(iso, dict) else {}
        known["release_diff"] = release.clean(known.get("release_diff"))
        known["vulnerabilities"] = vulns.clean(known.get("vulnerabilities"))
        ev = known.get("evidence")
        known["evidence"] = {str(k): str(v) for k, v in ev.items() if re.fullmatch(r"[\w.:+/=-]+", str(v))
                             } if isinstance(ev, dict) else {}
        support = known.get("support")
        known["support"] = ({str(k): str(v) for k, v in support.items()}
                            if isinstance(support, dict) else {})
        subjects[s["subject"]] = Subject(**known, run=run)
    for t in doc["tests"]:
        subject = subjects.setdefault(t["subject"], Subject(t["subject"], run=run))
        subject.tests.append(CheckResult(**{k: t[k] for k in CheckResult.__dataclass_fields__ if k in t}))
    return list(subjects.values())


# Older runs (before signoff.json): junit.xml, settings.txt and the logs folder.
PARAM = re.compile(r"\[(?P<id>[^\]]+)\]$")


def stage_durations(build_log: Path) -> dict[str, float]:
    """Stage durations from a build.log's ``== <stage> done in <n> s`` lines."""
    timings: dict[str, float] = {}
    for line in build_log.read_text(errors="replace").splitlines():
        m = re.match(r"^\S+ == (?P<name>.+?) (?:done|FAILED) in (?P<s>[\d.]+) s$", line)
        if m:
            timings[m["name"]] = float(m["s"])
    return timings


def load_junit(folder: Path) -> list[Subject]:
    """The subjects of an older run folder, read from its junit.xml."""
    labels = checklist_labels()
    run = Run(id=folder.name, folder=folder)
    settings = folder / "settings.txt"
    if settings.exists():
        run.settings = mask(settings.read_text()).splitlines()
    chosen = {line.split(" = ")[0]: line.split(" = ", 1)[1].rsplit("  (", 1)[0]
              for line in run.settings if " = " in line}
    try:
        root = ET.parse(folder / "junit.xml").getroot()
    except (OSError, ET.ParseError) as exc:
        raise SignoffError(f"{folder}: no readable junit.xml ({exc})") from None
    for suite in root.iter("testsuite"):
        run.started = run.started or suite.get("timestamp", "")
        run.host = run.host or suite.get("hostname", "")
    subjects: dict[str, Subject] = {}
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        name = case.get("name", "")
        m = PARAM.search(name)
        subject = props.get("distro") or (m["id"] if m else "")
        if not subject:
            continue  # not a per-distro test
        outcome, reason = "passed", ""
        for tag, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            el = case.find(tag)
            if el is not None:
                outcome, reason = word, next(iter((el.get("message") or "").splitlines()), "")
                if tag == "skipped" and el.get("type") == "pytest.xfail":
                    outcome = "xfailed"
        s = subjects.setdefault(subject, Subject(subject, run=run, host=run.host,
                                                 backend=chosen.get("backend", "")))
        item = props.get("checklist") or labels.get(name.split("[")[0], "")
        s.tests.append(CheckResult(subject, name, item, outcome,
                            mask(reason.removeprefix("Skipped: ").removeprefix("Failed: "))[:1200],
                            float(case.get("time", 0) or 0)))
    for s in subjects.values():
        logdir = folder / "logs" / s.subject
        if logdir.is_dir():
            s.logs = sorted(str(p.relative_to(folder)) for p in logdir.iterdir() if p.is_file())
            if (logdir / "build.log").exists():
                s.timings = stage_durations(logdir / "build.log")
    return list(subjects.values())


def collect(folders: Sequence[Path]) -> list[Subject]:
    """Every subject found under ``folders`` (searched for run folders), in order."""
    subjects: list[Subject] = []
    for folder in folders:
        if not folder.is_dir():
            raise SignoffError(f"--signoff-from {folder}: no such folder")
        found = sorted(p for p in folder.rglob(DATA_FILE) if "allure" not in p.parts)
        if found:
            for path in found:
                subjects += load_data(path)
            continue
        runs = sorted({p.parent for p in folder.rglob("junit.xml")})
        if not runs:
            raise SignoffError(f"--signoff-from {folder}: no {DATA_FILE} or junit.xml in it; "
                               "give the run folders (reports/runs/<run>) or the CI artifacts")
        for run in runs:
            subjects += load_junit(run)
    return subjects


# ------------------------------------------------------------------------ the page


def checklist_rows(subjects: Sequence[Subject]) -> list[str]:
    """The matrix rows: the required checklist items in the procedure's order, then any
    other item the tests name, then the tests that are not checklist items."""
    named = [t.item for s in subjects for t in s.tests if t.item]
    rows = [*REQUIRED_ITEMS, *named]
    if any(not t.item for s in subjects for t in s.tests):
        rows.append(OTHER)
    return list(dict.fromkeys(rows))


SEED_FAULTS = "(the seed's fault, not the image's): "


def why_lines(why: str) -> list[str]:
    """A reason as the page shows it: a seed check's findings one per line (each names its
    key and line), anything else as it is."""
    head, sep, rest = why.partition(SEED_FAULTS)
    if not sep:
        return [why]
    return [head + sep.rstrip(), *re.split(r"; (?=\S+ \((?:user-data|meta-data|network-config))", rest)]


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


def human_delta(n: int | None) -> str:
    """A size change: +1.2 MiB, -300 bytes, no change."""
    if n is None:
        return ""
    if n == 0:
        return "no change"
    return ("+" if n > 0 else "-") + human_bytes(abs(n))


def human_seconds(s: float) -> str:
    s = round(s)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def render(subjects: Sequence[Subject], out: Path, title: str = "GMI release sign-off") -> Path:
    """Write the sign-off page for ``subjects`` to ``out`` (links relative to it)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                             autoescape=jinja2.select_autoescape(default=True),
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(why_lines=why_lines, bytes=human_bytes, seconds=human_seconds, delta=human_delta)

    def link(s: Subject, rel: str) -> str:
        base = s.run.folder if s.run else out.parent
        # quoted: a name with ':' can never become a URL scheme (javascript:...)
        return urllib.parse.quote(os.path.relpath((base / rel).resolve(), out.parent.resolve()))

    runs = list({id(s.run): s.run for s in subjects if s.run}.values())
    longest = max((d for s in subjects for d in s.timings.values()), default=0.0) or 1.0
    page = env.get_template(TEMPLATE).render(
        title=title, subjects=subjects, rows=checklist_rows(subjects), runs=runs, link=link,
        required=REQUIRED_ITEMS, advisory=ADVISORY_ITEMS, longest=longest, other=OTHER,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        verdict=FAIL if any(s.verdict != PASS for s in subjects) or not subjects else PASS)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page)  # (its data was masked when it was recorded)
    os.replace(tmp, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.signoff",
        description="Write one sign-off page from several runs' results (run folders or "
                    "CI artifacts holding signoff.json or junit.xml).")
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path(PAGE_FILE))
    args = parser.parse_args(argv)
    try:
        page = render(collect(args.folders), args.output)
    except GmiError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(page)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
