"""README's Layout is the tree: every module and folder under harness/, stages/ and
checks/ is listed (a package's ``__init__.py`` may go unlisted), and nothing is listed
that does not exist. The Layout is the code block under a "## Layout" heading, in
README.md or a page of docs/; an entry is a name (``x.py``, ``folder/``) starting left
of the description column, indented two spaces per level."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COVERED = ("harness", "stages", "checks")
DESCRIPTION_COLUMN = 27
GENERATED = "(git-ignored)"  # an output folder: listed, present once a run wrote it


def layout_block(root: Path = ROOT) -> tuple[Path, list[str]]:
    """The Layout's code block and the file it is in."""
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text()
        m = re.search(r"^## Layout\n(?:.*\n)*?```\n((?:.*\n)*?)```", text, re.M)
        if m:
            return page, m[1].splitlines()
    raise AssertionError("no '## Layout' section with a code block in README.md or docs/")


def listed(lines: list[str]) -> dict[str, str]:
    """Each entry's path (relative, folders ending in '/') -> its line."""
    paths: dict[str, str] = {}
    parents: list[str] = []
    for line in lines:
        name = line.lstrip(" ")
        depth, _ = divmod(len(line) - len(name), 2)
        if not name or len(line) - len(name) >= DESCRIPTION_COLUMN:
            continue  # a continued description
        name = name.split()[0]
        del parents[depth:]
        path = "".join(parents) + name
        paths[path] = line
        if name.endswith("/"):
            parents.append(name)
    return paths


def in_tree(root: Path = ROOT) -> set[str]:
    """Every module (but __init__.py) and folder under the covered folders."""
    found = set()
    for top in COVERED:
        for path in (root / top).rglob("*"):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel:
                continue
            if path.is_dir():
                found.add(rel + "/")
            elif path.suffix == ".py" and path.name != "__init__.py":
                found.add(rel)
    return found


def unlisted(root: Path = ROOT) -> list[str]:
    page, lines = layout_block(root)
    return [f"not in the Layout of {page.name}: {p}" for p in sorted(in_tree(root) - set(listed(lines)))]


def listed_but_absent(root: Path = ROOT) -> list[str]:
    page, lines = layout_block(root)
    return [f"in the Layout of {page.name} but not in the tree: {path}"
            for path, line in listed(lines).items() if not (root / path).exists() and GENERATED not in line]


def test_every_module_and_folder_is_in_the_layout():
    missing = unlisted()
    assert not missing, "\n".join(missing)


def test_the_layout_lists_nothing_that_does_not_exist():
    absent = listed_but_absent()
    assert not absent, "\n".join(absent)


def test_the_reader_of_the_layout(tmp_path: Path):
    (tmp_path / "README.md").write_text(
        "# x\n\n## Layout\n\ntext\n\n```\n"
        "harness/\n"
        "  a.py                     what a does, and its description goes on\n"
        "                           past one line with words.py in it\n"
        "  fam/                     a family\n"
        "    b.py                   b\n"
        "  c.py                     c\n"
        "stages/                    the stages\n"
        "```\n")
    page, lines = layout_block(tmp_path)
    assert page.name == "README.md"
    assert sorted(listed(lines)) == ["harness/", "harness/a.py", "harness/c.py", "harness/fam/",
                                     "harness/fam/b.py", "stages/"]


@pytest.mark.parametrize(("change", "check", "expected"), [
    (lambda root: (root / "harness/fam/new.py").write_text(""), unlisted,
     "not in the Layout of README.md: harness/fam/new.py"),
    (lambda root: (root / "stages/extra").mkdir(), unlisted, "not in the Layout of README.md: stages/extra/"),
    (lambda root: (root / "harness/fam/b.py").unlink(), listed_but_absent,
     "in the Layout of README.md but not in the tree: harness/fam/b.py"),
])
def test_a_drift_either_way_is_found(tmp_path: Path, change, check, expected: str):
    (tmp_path / "harness/fam").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    (tmp_path / "checks").mkdir()
    (tmp_path / "harness/fam/b.py").write_text("")
    (tmp_path / "harness/fam/__init__.py").write_text("")  # (may go unlisted)
    (tmp_path / "README.md").write_text("## Layout\n```\nharness/\n  fam/\n    b.py\nstages/\nchecks/\n"
                                        "reports/                   output (git-ignored)\n```\n")
    assert unlisted(tmp_path) == listed_but_absent(tmp_path) == []  # the tree as listed
    change(tmp_path)
    assert check(tmp_path) == [expected]
