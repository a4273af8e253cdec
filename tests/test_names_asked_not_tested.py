"""Objects are asked, names are not tested: no backend name, distro name or
package-manager family is compared outside its own code. A backend says what it can do
by its class facts (``prepares_in_chroot``, ``writes_vmcx``, ``has_vmbus``,
``host_label``), a family by its own (``debootstrap``, ``debconf``), the catalogue by its
YAML (``reference: true``).

Where each name may be tested:
- a backend's name: its own folder ``harness/backends/<name>/`` and the backend table
  ``harness/backends/__init__.py``; ``isinstance`` of a concrete backend's class: its
  own folder;
- a distro's name (and its OS's): the catalogue loader ``harness/distro/`` (the YAML in
  ``distros/`` holds the facts);
- a package-manager family's name: ``harness/distro/`` (``pkgmgr.py`` declares them).

What counts as a test: ``==``, ``!=``, ``is``, ``in``/``not in`` a literal tuple, list or
set (or a literal name ``in`` something), ``match``/``case``, ``str.startswith`` /
``endswith``, and ``isinstance``/``issubclass``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import distro
from harness.backends import BACKENDS
from harness.distro import pkgmgr

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("harness", "stages", "checks")


def _catalogue_words() -> set[str]:
    words: set[str] = set()
    for name in distro.known_distros():
        d = distro.load(name)
        words |= {name, name.split("-")[0], d.os_release.id, d.vmgenie.os, d.vmgenie.os.lower()}
    return words


def _concrete_classes(root: Path) -> dict[str, str]:
    """Class name -> its backend, for every class defined in a concrete backend's folder."""
    found: dict[str, str] = {}
    for folder in sorted(p for p in (root / "harness/backends").iterdir() if p.is_dir()):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    found[node.name] = folder.name
    return found


def name_kinds(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """Each name -> (its kind, the folder (relative, posix) where testing it is its own
    business)."""
    kinds: dict[str, tuple[str, str]] = {}
    for word in _catalogue_words():
        kinds[word] = ("distro name", "harness/distro/")
    for family in pkgmgr.FAMILIES:
        kinds[family] = ("package-manager family", "harness/distro/")
    for backend in BACKENDS:
        kinds[backend] = ("backend name", f"harness/backends/{backend}/")
    return kinds


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _literals(node: ast.AST) -> list[str]:
    """The strings of a literal tuple, list or set (or of one string constant)."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for e in node.elts if (s := _str(e)) is not None]
    return [s] if (s := _str(node)) is not None else []


def _class_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Tuple):
        return [n for e in node.elts for n in _class_names(e)]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def name_tests(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """(line, the name or class, how) for every test of a string or class in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, (left, right) in zip(node.ops, itertools.pairwise(operands), strict=True):
                if isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot):
                    for side in (left, right):
                        if (s := _str(side)) is not None:
                            yield node.lineno, s, "compared"
                elif isinstance(op, ast.In | ast.NotIn):
                    for s in [*_literals(right), *_literals(left)]:
                        yield node.lineno, s, "tested with in"
        elif isinstance(node, ast.match_case):
            for pattern in ast.walk(node.pattern):
                if isinstance(pattern, ast.MatchValue) and (s := _str(pattern.value)) is not None:
                    yield pattern.lineno, s, "matched"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("startswith", "endswith"):
                for s in _literals(node.args[0]):
                    yield node.lineno, s, f"tested with {func.attr}"
            elif isinstance(func, ast.Name) and func.id in ("isinstance", "issubclass") \
                    and len(node.args) == 2:
                for cls in _class_names(node.args[1]):
                    yield node.lineno, cls, func.id


def findings(root: Path = ROOT) -> list[str]:
    kinds = name_kinds(root)
    classes = _concrete_classes(root)
    found = []
    for pkg in SCANNED:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for line, name, how in name_tests(ast.parse(path.read_text(), rel)):
                if how in ("isinstance", "issubclass"):
                    backend = classes.get(name)
                    if backend and not rel.startswith(f"harness/backends/{backend}/"):
                        found.append(f"{rel}:{line}: {how} of {name}, a class of the {backend} "
                                     "backend (ask the backend's class facts)")
                    continue
                if name not in kinds:
                    continue
                kind, home = kinds[name]
                table = kind == "backend name" and rel == "harness/backends/__init__.py"
                if not rel.startswith(home) and not table:
                    found.append(f"{rel}:{line}: the {kind} {name!r} {how} outside {home} "
                                 "(ask the object: a capability, a catalogue fact)")
    return found


def test_no_backend_distro_or_family_name_is_tested_outside_its_own_code():
    found = findings()
    assert not found, "\n".join(found)


def test_the_names_looked_for_are_the_real_ones():
    kinds = name_kinds()
    assert kinds["qemu"] == ("backend name", "harness/backends/qemu/")
    assert kinds["hyperv"] == ("backend name", "harness/backends/hyperv/")
    assert kinds["debian-12"][0] == kinds["debian"][0] == kinds["ubuntu"][0] == "distro name"
    assert kinds["apt"] == ("package-manager family", "harness/distro/")
    assert {"QemuBackend", "HyperVBackend", "QemuVM"} <= set(_concrete_classes(ROOT))


# --- and it finds each kind of test, naming the file and line ---------------------------


def _tree_with(tmp_path: Path, rel: str, text: str) -> Path:
    for pkg in SCANNED:
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
    for backend in BACKENDS:
        (tmp_path / "harness/backends" / backend).mkdir(parents=True, exist_ok=True)
    (tmp_path / "harness/backends/qemu/backend.py").write_text("class QemuBackend:\n    pass\n")
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(("rel", "text", "expected"), [
    ("harness/settings.py", "def f(v):\n    return v['backend'] != 'qemu'\n",
     "harness/settings.py:2: the backend name 'qemu' compared outside harness/backends/qemu/"),
    ("harness/plugin/results.py", "def f(b):\n    if b.name in ('hyperv', 'x'):\n        pass\n",
     "harness/plugin/results.py:2: the backend name 'hyperv' tested with in outside "
     "harness/backends/hyperv/"),
    ("harness/backends/qemu/vm.py", "def f(b):\n    return b.name == 'hyperv'\n",
     "harness/backends/qemu/vm.py:2: the backend name 'hyperv' compared outside "
     "harness/backends/hyperv/"),
    ("harness/archive/validate.py",
     "def f(d):\n    match d.name:\n        case 'debian-12':\n            pass\n",
     "harness/archive/validate.py:3: the distro name 'debian-12' matched outside harness/distro/"),
    ("stages/s4_hyperv.py", "def f(d):\n    return d.name.startswith(('ubuntu', 'x'))\n",
     "stages/s4_hyperv.py:2: the distro name 'ubuntu' tested with startswith outside harness/distro/"),
    ("harness/backends/qemu/installer.py", "def f(d):\n    return d.family != 'apt'\n",
     "harness/backends/qemu/installer.py:2: the package-manager family 'apt' compared outside "
     "harness/distro/"),
    ("stages/s6_promote.py", "from harness.backends.qemu.backend import QemuBackend\n"
                             "def f(b):\n    return isinstance(b.backend, QemuBackend)\n",
     "stages/s6_promote.py:3: isinstance of QemuBackend, a class of the qemu backend"),
    ("checks/test_x.py", "def f(b):\n    return 'hyperv' == b.backend.name\n",
     "checks/test_x.py:2: the backend name 'hyperv' compared outside"),
])
def test_each_kind_of_name_test_is_found(tmp_path: Path, rel: str, text: str, expected: str):
    found = findings(_tree_with(tmp_path, rel, text))
    assert any(expected in f for f in found), found


@pytest.mark.parametrize(("rel", "text"), [
    ("harness/backends/__init__.py", "def f(n):\n    return n in ('qemu',)\n"),  # the table
    ("harness/backends/qemu/backend.py", "def f(b):\n    return b.name == 'qemu'\n"),  # its own
    ("harness/distro/__init__.py", "def f(d):\n    return d.family != 'apt'\n"),  # the loader
    ("harness/plugin/results.py", "def f(b):\n    return {'backend': b.name}\n"),  # a label
    ("harness/settings.py", "D = 'qemu'\n"),  # a value, not a test
])
def test_a_name_in_its_own_code_or_used_as_a_label_is_no_finding(tmp_path: Path, rel: str, text: str):
    found = [f for f in findings(_tree_with(tmp_path, rel, text)) if f.startswith(rel)]
    assert found == []
