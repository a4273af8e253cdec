"""The README is for a newcomer: its first screen says what the harness is, the two
commands and what you get where; reference material lives in docs/ pages it links to;
no line is longer than 120 characters. Every relative link of the README and the docs
pages points at something that exists, and docs/options.md documents every option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.md"))]
WIDTH = 120
FIRST_SCREEN = 50  # lines


def test_no_readme_line_is_longer_than_120_characters():
    long = [(n, len(line)) for n, line in enumerate(README.read_text().splitlines(), 1)
            if len(line) > WIDTH]
    assert not long, f"README.md lines over {WIDTH} characters (line, length): {long}"


def test_the_first_screen_says_what_it_is_the_two_commands_and_what_you_get_where():
    first = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    assert "builds **GMIs**" in first and "vmgenie" in first  # what it is
    assert "make gmi " in first and "make test " in first  # the two commands
    assert "gmi --distro=debian-12" in first  # and without make
    assert "reports/GMI-Debian-12.zip" in first and "signoff.html" in first  # what, and where


def test_reference_material_is_in_docs_pages_the_readme_links_to():
    text = README.read_text()
    for page in ("options", "faults", "windows", "hyperv", "benchmarks", "validating",
                 "own-repository", "how-it-works", "reports", "distros"):
        assert f"](docs/{page}.md" in text, page
        assert (ROOT / "docs" / f"{page}.md").is_file(), page
    assert len(text.split("\n## Layout\n")[0].splitlines()) < 200  # (the Layout: one line a module)
    # kept in the README: the distro table, a benchmark summary, the Layout section
    assert "| `--distro` |" in text and "## Timings" in text and "\n## Layout\n" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_something_that_exists(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)}: {target}"


def test_the_options_page_documents_every_option():
    text = (ROOT / "docs" / "options.md").read_text()
    missing = [s.option for s in SETTINGS if s.cli and f"`{s.option}" not in text
               and f", `{s.option}" not in text]
    assert not missing, f"add a row to docs/options.md for {missing}"
