"""Errors point at real things: every command, option and make target an error message
of the harness names exists.

The messages are collected from the code (harness/, stages/, checks/): the text of every
``raise``, of ``pytest.fail``/``skip``/``UsageError``, ``fail_cleanly``/``fail_subject``,
the configure-time ``problems.append(...)`` lines and what is printed to stderr (module
constants they use included; an f-string's expressions count as ``{}``). Then:

- ``make TARGET`` is a target of the Makefile;
- ``--option`` is one of the harness's options, one of pytest's (and its plugins'), or an
  option of the command named just before it, as that command's ``--help`` lists it;
- ``python -m MODULE`` is importable, ``gmi`` is a console script of the project;
- a Debian package an install hint names exists in the archive (``apt-cache show``).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from harness.host.tools import TOOL_PACKAGES
from harness.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_CALLS = {"fail", "skip", "xfail", "exit", "UsageError", "fail_cleanly", "fail_subject"}


@dataclass(frozen=True)
class Message:
    where: str
    text: str


def _texts(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in n.values))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
    return out


def _message_nodes(tree: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Raise) and n.exc is not None:
            found.append(n.exc)
        elif isinstance(n, ast.FunctionDef) and (n.name.endswith(("hint", "problem")) or (
                n.name == "__init__" and "Error" in _class_of(tree, n))):
            found.append(n)  # what makes a message: an install hint, a problem's line
        elif isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            if name in MESSAGE_CALLS or (name == "append" and owner in ("problems", "missing")) or (
                    name == "print" and any(k.arg == "file" for k in n.keywords)):
                found.append(n)
    return found


def _class_of(tree: ast.AST, function: ast.FunctionDef) -> str:
    return next((c.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and function in c.body), "")


@cache
def messages() -> tuple[Message, ...]:
    found = []
    files = [*ROOT.glob("harness/**/*.py"), *ROOT.glob("stages/*.py"), *ROOT.glob("checks/*.py")]
    for path in sorted(files):
        tree = ast.parse(path.read_text())
        constants = {t.id: _texts(n.value) for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)
                     and isinstance(n.value, ast.Constant | ast.JoinedStr)}
        for node in _message_nodes(tree):
            texts = _texts(node) + [t for n in ast.walk(node) if isinstance(n, ast.Name)
                                    for t in constants.get(n.id, [])]
            found.append(Message(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}", " ".join(texts)))
    return tuple(found)


@cache
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^([\w .-]+):(?!=)", text, re.M) for t in line.split()}


@cache
def pytest_options() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120).stdout
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out))


@cache
def help_of(command: str) -> str:
    if shutil.which(command) is None:
        return ""
    proc = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


OPTION = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=['`(]))(?:([a-z][\w.-]*) )?(--[a-z][a-z0-9-]*)")


def test_the_messages_were_found():
    """(The collection can fail: it finds the messages this test is about.)"""
    texts = [m.text for m in messages()]
    assert len(texts) > 300
    assert any("--backend=hyperv needs" in t for t in texts)
    assert any("or run 'make setup'" in t for t in texts)


def test_every_make_target_a_message_names_exists():
    named = {(m.where, t) for m in messages()
             for t in re.findall(r"(?:^|['`(]|\brun )make ([a-z][\w-]*)", m.text)}
    assert named, "no make target named at all: the pattern is wrong"
    missing = sorted(f"{where}: make {t}" for where, t in named if t not in make_targets())
    assert not missing, missing


def test_every_option_a_message_names_exists():
    ours = {s.option for s in SETTINGS if s.cli} | {"--harness-config", "--help-all"}
    known = ours | pytest_options()
    unknown = []
    for m in messages():
        for command, option in OPTION.findall(m.text):
            if option in known:
                continue
            if command and option in help_of(command):
                continue  # another tool's option, e.g. fallocate --punch-hole
            unknown.append(f"{m.where}: {command} {option}".replace("  ", " "))
    assert not unknown, unknown


def test_every_module_and_program_a_message_names_exists():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for m in messages():
        for module in re.findall(r"python -m ([\w.]+)", m.text):
            assert importlib.util.find_spec(module) is not None, f"{m.where}: python -m {module}"
        if re.search(r"(?:^|['`(\s])gmi --", m.text):
            assert re.search(r'^gmi = "harness\.cli:main"$', pyproject, re.M), m.where


def test_every_package_an_install_hint_names_exists():
    """The hints name TOOL_PACKAGES' packages (and a few literally): each is in the
    archive this machine's apt reads."""
    literal = {p for m in messages() for p in re.findall(r"apt-get install -y ([a-z0-9][\w.+-]*)", m.text)}
    packages = sorted((set(TOOL_PACKAGES.values()) | literal) - {"{}"})
    assert "qemu-utils" in packages
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt-cache here: the package names cannot be looked up")
    for package in packages:
        proc = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and f"Package: {package}" in proc.stdout, package


@pytest.mark.parametrize("text, bad", [
    ("rebuild the archive (make export) or download it again", "make export"),
    ("use --prepare=vm or --prepair=vm", "--prepair"),
])
def test_a_message_naming_something_that_does_not_exist_is_found(monkeypatch, text, bad):
    """The checks above can fail: a message with a made-up target or option is refused."""
    monkeypatch.setattr(sys.modules[__name__], "messages", lambda: (Message("x.py:1", text),))
    check = (test_every_make_target_a_message_names_exists if bad.startswith("make")
             else test_every_option_a_message_names_exists)
    with pytest.raises(AssertionError, match=re.escape(bad)):
        check()
