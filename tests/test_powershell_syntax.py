"""Every PowerShell the harness sends to a Hyper-V host parses: the scripts in
``harness/backends/hyperv/scripts/*.ps1`` and the PowerShell inline in the harness's Python
files (the transport's runner and local bootstrap).

No Windows host (and no PowerShell) exists on the machines this harness is developed
on, so the parser is a real PowerShell grammar from PyPI: ``tree-sitter`` with
``tree-sitter-powershell``. A syntax error is reported as ``file:line:column`` with
the line. The grammar catches unbalanced braces, brackets, parentheses and quotes,
unterminated here-strings and sub-expressions, and dangling operators. It is more
lenient than PowerShell's own parser in places (a second ``else`` after an if/else,
for one, parses), so passing here is not proof that PowerShell accepts a script.

The grammar (tree-sitter-powershell 0.26.4) also refuses some VALID PowerShell. Each
such gap is handled by one narrow rewrite of the text before parsing, which keeps
every character's line and column (so reported positions stay true); each rewrite
has a test below that shows the grammar still needs it and that it hides nothing else:

1. Size suffixes in upper or mixed case (``1MB``, ``8Gb``): the grammar knows only
   ``1mb``. A number followed by kb/mb/gb/tb/pb in any case gets the suffix in
   lower case.
2. A statement that starts with ``ForEach-Object`` (at the start of a line, or after
   ``;`` or ``{``): the grammar reads ``ForEach`` as the ``foreach`` keyword. The
   command name becomes its alias ``%`` padded with spaces (after ``|`` it parses
   as it is and is left alone).
3. Bareword lists as command arguments (``-Name Shutdown,VSS``): the grammar wants
   them quoted. In a list of barewords that begins after whitespace (not after
   ``[``: generic types such as ``[Dictionary[string,int]]`` are left alone), each
   comma becomes a space.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "harness" / "backends" / "hyperv" / "scripts"
PYTHON_TREES = (ROOT / "harness", ROOT / "stages")
# A string in a Python file is taken for PowerShell when it spans lines and holds one
# of these (the harness's bash for the guest holds none of them).
POWERSHELL_MARKERS = ("$ErrorActionPreference", "[scriptblock]", "ConvertTo-Json",
                      "ConvertFrom-Json", "param(")

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))

# --- the grammar's known gaps, each rewritten narrowly and keeping every position ----
_SIZE_SUFFIX = re.compile(r"(?<![\w$.])(\d+(?:\.\d+)?)([kmgtp]b)\b", re.IGNORECASE)
_FOREACH_OBJECT_STATEMENT = re.compile(r"(^[ \t]*|[;{][ \t]*)(ForEach-Object)\b",
                                       re.IGNORECASE | re.MULTILINE)
_BAREWORD_LIST = re.compile(r"(?<=[ \t])[A-Za-z_][\w.]*(?:,[ \t]*[A-Za-z_][\w.]*)+(?=[\s;|)}]|$)")


def around_known_gaps(text: str) -> str:
    """``text`` with the grammar's known gaps on valid PowerShell rewritten (see the
    module's docstring); same length, same lines."""
    text = _SIZE_SUFFIX.sub(lambda m: m[1] + m[2].lower(), text)
    text = _FOREACH_OBJECT_STATEMENT.sub(lambda m: m[1] + "%".ljust(len(m[2])), text)
    return _BAREWORD_LIST.sub(lambda m: m[0].replace(",", " "), text)


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based, in the source
    column: int  # 1-based
    what: str
    text: str


def syntax_problems(text: str, first_line: int = 1, first_column: int = 0) -> list[Problem]:
    """The syntax errors tree-sitter-powershell finds in ``text`` (after the known gaps'
    rewrites). ``first_line``/``first_column``: where ``text`` starts in its file."""
    rewritten = around_known_gaps(text)
    assert len(rewritten) == len(text) and rewritten.count("\n") == text.count("\n")
    source = rewritten.encode("utf-8")
    lines = text.splitlines()
    found: list[Problem] = []

    def innermost(node: tree_sitter.Node) -> tree_sitter.Node:
        """Error recovery may start an ERROR region lines before the mistake; the first
        error nested in it is nearer to where the text went wrong."""
        for child in node.children:
            if child.is_error or child.is_missing:
                return innermost(child)
            if child.has_error:
                found = innermost(child)
                if found is not child:
                    return found
        return node

    def walk(node: tree_sitter.Node) -> None:
        if node.is_missing or node.is_error:
            spot = innermost(node)
            row, col = spot.start_point
            line = lines[row] if row < len(lines) else ""
            # tree-sitter counts bytes; a column in characters is what an editor shows
            col = len(source.splitlines()[row][:col].decode("utf-8", "replace")) if row < len(lines) else col
            what = f"missing {spot.type!r}" if spot.is_missing else "syntax error"
            if node.end_point[0] > node.start_point[0]:
                what += (f" (in the region the parser could not read, lines "
                         f"{first_line + node.start_point[0]}-{first_line + node.end_point[0]})")
            found.append(Problem(first_line + row, col + 1 + (first_column if row == 0 else 0),
                                 what, line.strip()))
            return  # one report per broken region
        if node.has_error:
            for child in node.children:
                walk(child)

    walk(PARSER.parse(source).root_node)
    return found


def describe(path: Path, problems: list[Problem]) -> str:
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return "\n".join(f"{rel}:{p.line}:{p.column}: {p.what}: {p.text[:160]}" for p in problems)


@dataclass(frozen=True)
class InlinePowerShell:
    path: Path
    name: str  # the variable it is assigned to, or "line N"
    text: str
    line: int  # where the string's first character is, in the file
    column: int
    exact: bool  # False: an escape in the literal shifts lines; positions are approximate


def inline_powershell(paths: tuple[Path, ...] = PYTHON_TREES) -> list[InlinePowerShell]:
    """Every multi-line string constant in the Python files under ``paths`` that holds
    PowerShell (:data:`POWERSHELL_MARKERS`), with where its text starts. Docstrings
    (a string that is a statement of its own) are prose, not code, and are left out."""
    found = []
    for tree_root in paths:
        for path in sorted(tree_root.rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            module = ast.parse(source)
            names = {id(node.value): target.id for node in ast.walk(module)
                     if isinstance(node, ast.Assign) for target in node.targets
                     if isinstance(target, ast.Name)}
            docstrings = {id(node.value) for node in ast.walk(module) if isinstance(node, ast.Expr)}
            for node in ast.walk(module):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) \
                        or id(node) in docstrings:
                    continue
                text = node.value
                if "\n" not in text or not any(m in text for m in POWERSHELL_MARKERS):
                    continue
                literal = ast.get_source_segment(source, node) or ""
                quote = re.match(r"[rRbBuUfF]*('''|\"\"\"|'|\")", literal)
                start = quote.end() if quote else 0
                body = literal[start:len(literal) - (len(quote[1]) if quote else 0)]
                found.append(InlinePowerShell(
                    path, names.get(id(node), f"line {node.lineno}"), text, node.lineno,
                    node.col_offset + start, exact=body == text))
    return found


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.ps1")), ids=lambda p: p.name)
def test_every_hyperv_script_parses(script: Path) -> None:
    problems = syntax_problems(script.read_text(encoding="utf-8"))
    assert not problems, "PowerShell syntax errors:\n" + describe(script, problems)


def test_the_scripts_folder_is_not_empty() -> None:
    assert len(list(SCRIPTS.glob("*.ps1"))) >= 16


def test_the_inline_powershell_in_python_files_parses() -> None:
    found = inline_powershell()
    # The detection must find what is known to be there, or this test proves nothing.
    names = {(f.path.name, f.name) for f in found}
    assert {("transport.py", "RUNNER"), ("transport.py", "LOCAL_BOOTSTRAP")} <= names, names
    report = []
    for snippet in found:
        problems = syntax_problems(snippet.text, snippet.line, snippet.column)
        if problems:
            note = "" if snippet.exact else " (positions approximate: the literal has escapes)"
            report.append(f"{snippet.name}{note}:\n" + describe(snippet.path, problems))
    assert not report, "PowerShell syntax errors in Python files:\n" + "\n".join(report)


# --- that it fails, and says where ----------------------------------------------------

BROKEN = [
    # (what is broken, how, the line that must be named)
    ("a missing closing brace", "    $path = $parent\n}\n", "    $path = $parent\n", None),
    ("a stray closing brace", "    $path = $parent\n}\n", "    $path = $parent\n}\n}\n", None),
    # (the parse breaks where the string's quote is taken to end: a later line)
    ("an unterminated string", "$path = $drive.Path\n", "$path = $drive.Path + 'x\n", None),
    ("a missing parenthesis", "if ($merged.Count -gt 0) {", "if ($merged.Count -gt 0 {",
     "if ($merged.Count -gt 0 {"),
    ("a dangling operator", "$before = (Get-Item -LiteralPath $path).Length\n",
     "$before = (Get-Item -LiteralPath $path).Length +\n)\n", None),
]


@pytest.mark.parametrize(("what", "old", "new", "line"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_copy_of_a_real_script_fails_with_file_and_line(tmp_path, what, old, new, line):
    """compact_disk.ps1 (which parses) broken in one place: the check names the file,
    a line and the line's text."""
    text = (SCRIPTS / "compact_disk.ps1").read_text(encoding="utf-8")
    assert not syntax_problems(text)
    assert old in text
    broken = tmp_path / "compact_disk.ps1"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    problems = syntax_problems(broken.read_text(encoding="utf-8"))
    assert problems, f"{what} was not found"
    report = describe(broken, problems)
    assert re.search(r"compact_disk\.ps1:\d+:\d+: (syntax error|missing '.+')", report), report
    changed = next(n for n, (a, b) in enumerate(zip(text.splitlines(), broken.read_text().splitlines(),
                                                    strict=False), 1) if a != b)
    assert problems[0].line >= changed, report  # not before the broken line
    if line is not None:
        assert f"compact_disk.ps1:{changed}:" in report, report


def test_a_broken_inline_snippet_is_reported_at_its_line_in_the_python_file(tmp_path):
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text('"""doc"""\n\nSCRIPT = r"""\n$ErrorActionPreference = \'Stop\'\n'
                      'if ($x) {\n    $y = 1\n"""\n', encoding="utf-8")
    found = inline_powershell((tmp_path,))
    assert [(f.name, f.line, f.exact) for f in found] == [("SCRIPT", 3, True)]
    problems = syntax_problems(found[0].text, found[0].line, found[0].column)
    assert problems
    report = describe(module, problems)
    assert report.startswith(f"{module}:6:11: missing '}}': $y = 1"), report


# --- the grammar's known gaps: still there, and handled narrowly ------------------------

def raw_parse_fails(text: str) -> bool:
    return PARSER.parse(text.encode()).root_node.has_error


@pytest.mark.parametrize("text", [
    "$memory = [long]$MemoryMB * 1MB\n",
    "$vhdArgs.BlockSizeBytes = [uint32]$BlockSizeMiB * 1Mb\n",
    "$limit = 2 * 1GB\n",
])
def test_gap_uppercase_size_suffixes(text):
    assert raw_parse_fails(text), "the grammar parses this now: drop the size-suffix rewrite"
    assert syntax_problems(text) == []
    # the rewrite hides no real error on the same line
    assert syntax_problems(text.replace("\n", ")\n"))


@pytest.mark.parametrize("text", [
    "ForEach-Object -InputObject $vms { $_.Name }\n",
    "$x = 1; ForEach-Object -InputObject $x { $_ }\n",
    "if ($a) { ForEach-Object -InputObject $a { $_ } }\n",
])
def test_gap_statements_starting_with_foreach_object(text):
    assert raw_parse_fails(text), "the grammar parses this now: drop the ForEach-Object rewrite"
    assert syntax_problems(text) == []
    assert syntax_problems(text.replace("{ $_", "{ ($_", 1))  # an unclosed parenthesis still shows
    # the foreach keyword itself is not touched
    assert around_known_gaps("foreach ($x in $y) { $x }") == "foreach ($x in $y) { $x }"


@pytest.mark.parametrize("text", [
    "Disable-VMIntegrationService -VM $vm -Name Shutdown,VSS\n",
    "Set-Thing Shutdown, VSS -Force\n",
])
def test_gap_bareword_lists(text):
    assert raw_parse_fails(text), "the grammar parses this now: drop the bareword-list rewrite"
    assert syntax_problems(text) == []
    assert syntax_problems(text.replace("\n", " }\n"))  # a stray brace still shows


def test_the_rewrites_leave_everything_else_alone():
    for text in ("[System.Collections.Generic.Dictionary[string,int]]::new()",
                 "$a = 'Shutdown','VSS'", "$x = $a,$b", "$MemoryMB = 4096", "$v1MB = 2",
                 "foreach ($x in $y) { $x }", "Get-VM | ForEach-Object { $_.Name }",
                 "$n = 1mb"):
        assert around_known_gaps(text) == text
