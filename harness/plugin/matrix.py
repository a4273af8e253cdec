"""What a run validates and how its tests are spread: subjects (a distro to build, or
``gmi:<path>``, an archive to read), the session-scoped parametrization by subject,
the tests that apply to each, and xdist's ``loadgroup`` so one subject's tests (and its
build) stay on one worker. Also the labels reports group by."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import distro as distro_mod
from harness.checklist import ITEMS
from harness.plugin.run import SETTINGS_KEY, STATE_KEY
from harness.report import allure
from harness.settings import Settings

PREFIX = "gmi:"


def checklist(label: str) -> pytest.MarkDecorator:
    """Label a check with its checklist item, one of :data:`harness.checklist.ITEMS`
    (the gate, the sign-off rows and the reports' grouping follow the label); any other
    label is a typo, refused when the check's module is imported."""
    if label not in ITEMS:
        raise ValueError(f"{label!r} is not a checklist item; known: {ITEMS}")
    return pytest.mark.checklist(label)


def is_archive(subject: str) -> bool:
    return subject.startswith(PREFIX)


def archive_path(subject: str) -> Path:
    return Path(subject.removeprefix(PREFIX))


def subject_id(subject: str) -> str:
    """A short name for a subject: the distro's name, or the archive's file name."""
    return archive_path(subject).name if is_archive(subject) else subject


def subjects(settings: Settings) -> list[str]:
    """What the run validates: each --distro (built), then each --gmi (read)."""
    return [*settings.distro, *(PREFIX + p for p in settings.gmi)]



def default_to_loadgroup(config: pytest.Config) -> None:
    """With ``-n N`` and no ``--dist``, distribute by distro (``--dist loadgroup``):
    every test of one distro on one worker, so its build happens once."""
    args = config.invocation_params.args
    chosen = any(str(a) in ("--dist", "--distload", "-d") or str(a).startswith("--dist=")
                 for a in args)
    if chosen:
        return
    if hasattr(config, "workerinput"):
        # xdist workers tag each test with its group only when told loadgroup
        config.option.loadgroup = True
    elif getattr(config.option, "numprocesses", None):
        config.option.dist = "loadgroup"


def check_dist_mode(config: pytest.Config) -> None:
    """Any other distribution would split one distro's build across workers."""
    dist = getattr(config.option, "dist", "no")
    if getattr(config.option, "numprocesses", None) and dist not in ("no", "loadgroup"):
        raise pytest.UsageError(
            f"--dist {dist} would split one distro's tests (and its build) across workers; "
            "use --dist loadgroup (the default with -n)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "distro_name" in metafunc.fixturenames:
        names = subjects(metafunc.config.stash[SETTINGS_KEY])
        metafunc.parametrize("distro_name", names, indirect=True, scope="session",
                             ids=[subject_id(n) for n in names])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE_KEY]
    needs_distro = [i for i in items if "distro_name" in getattr(i, "fixturenames", ())]
    showing = getattr(config.option, "showfixtures", False)  # (pytest --fixtures)
    if needs_distro and not subjects(state.settings) and not showing:
        known = ", ".join(distro_mod.known_distros(extra=state.settings.distros))
        raise pytest.UsageError(
            f"the checks need --distro NAME (repeatable, or 'all') or --gmi ARCHIVE; "
            f"known distros: {known}")
    keep, dropped = [], []
    for item in items:
        name = subject_of(item)
        if name is not None and not _applies(item, name, state.settings):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    for item in items:
        name = subject_of(item)
        if name is None:
            continue
        # Every test of one distro runs on one xdist worker (--dist loadgroup).
        item.add_marker(pytest.mark.xdist_group(name))
        mark = item.get_closest_marker("checklist")
        label = str(mark.args[0]) if mark else None
        if label is not None:
            state.label(name, node_key(item.nodeid), label)
        # The reports' grouping: JUnit properties (also how the xdist controller learns
        # each result's distro and item) and Allure labels.
        short = subject_id(name)
        item.user_properties.append(("distro", short))
        if label is not None:
            item.user_properties.append(("checklist", label))
        for marker in label_marks(short, label, getattr(item, "originalname", item.name)):
            item.add_marker(marker)


def _applies(item: pytest.Item, subject: str, settings: Settings) -> bool:
    """Static archive checks and the index entry are for archives; the export is for
    builds; the index entry only when --index names a file; the promoted archive only
    for archives and only with --promote. Elsewhere such a test is deselected, not
    skipped."""
    archive = is_archive(subject)
    if item.get_closest_marker("archive") or item.get_closest_marker("index"):
        return archive and (not item.get_closest_marker("index") or bool(settings.index))
    if item.get_closest_marker("export"):
        return not archive
    if item.get_closest_marker("promote"):
        return archive and settings.promote
    return True


# What a subject's run ends with: each writes something only when every other test of
# that subject passed, so it runs after them, in the order collected.
FINAL_MARKERS = ("export", "promote", "index")


def is_final(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(m) for m in FINAL_MARKERS)


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_finals_last(items: list[pytest.Item]) -> None:
    """Each subject's export (promotion, index entry) right after the last other test of
    that subject, whatever the files are called: after pytest has grouped the tests by
    their session-scoped subject, so one subject's build is not set up twice."""
    items[:] = ordered_finals_last(items)


def ordered_finals_last(items: list[pytest.Item]) -> list[pytest.Item]:
    finals: dict[str | None, list[pytest.Item]] = {}
    rest = []
    for item in items:
        if is_final(item):
            finals.setdefault(subject_of(item), []).append(item)
        else:
            rest.append(item)
    last = {subject_of(item): n for n, item in enumerate(rest)}
    ordered = []
    for n, item in enumerate(rest):
        ordered.append(item)
        if last[subject_of(item)] == n:
            ordered += finals.pop(subject_of(item), [])
    return ordered + [item for group in finals.values() for item in group]


def node_key(nodeid: str) -> str:
    """A test's id without xdist's ``@group`` suffix (added after our collection hook)."""
    return nodeid.split("@", 1)[0]


def subject_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get("distro_name")
    return str(value) if value is not None else None


def label_marks(subject: str, checklist_item: str | None, test_name: str) -> list[pytest.MarkDecorator]:
    """Markers allure-pytest turns into labels: Behaviors groups epic (distro) ->
    feature (checklist item) -> story (test); Suites groups GMI checklist -> distro ->
    checklist item."""
    item = checklist_item or "other checks"
    mark = pytest.mark.allure_label
    return [mark(subject, label_type="epic"), mark(item, label_type="feature"),
            mark(test_name, label_type="story"), mark(allure.PARENT_SUITE, label_type="parentSuite"),
            mark(subject, label_type="suite"), mark(item, label_type="subSuite"),
            mark(subject, label_type="tag")]
