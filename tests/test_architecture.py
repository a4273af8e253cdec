"""The floor plan, enforced: which family of the harness may import which, read from
the code's own import statements (module level, inside functions, and under
``TYPE_CHECKING``, which counts as type-only). docs/architecture.md draws the same
picture.

Rules:
- the families below the plugin (``backends/``, ``media/``, ``distro/``, ``archive/``,
  ``report/``) never import ``harness.plugin`` or pytest: they are a library that
  runs without a test session;
- ``media/`` never imports a backend: each backend adapts the one install medium;
- ``rootfs/`` never imports a backend: root trees are the package manager's, any VM
  runner boots what it makes (mkosi's ``installer/`` beside its ``qemu.py``);
- ``build.py`` and ``log.py`` never import ``report/`` (report listeners are injected);
- nothing under ``harness/`` imports ``stages`` or ``checks``;
- ``stages/`` and ``checks/`` are imported by their installed names, ``harness.stages``
  and ``harness.checks`` (pyproject.toml installs them inside ``harness``), never as the
  generic top-level ``stages`` or ``checks``;
- no import circle among the harness's modules, except through type-only imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("harness.backends", "harness.media", "harness.distro", "harness.archive",
           "harness.report", "harness.rootfs")
TEST_FRAMEWORKS = ("pytest", "_pytest", "xdist", "pluggy")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (or the module a name was imported from), dotted
    line: int
    type_only: bool


# The repository's top-level folders installed inside ``harness`` (pyproject.toml's
# package-dir): their modules' names are the installed ones.
INSTALLED_INSIDE = {"stages": "harness.stages", "checks": "harness.checks"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] in INSTALLED_INSIDE:
        parts[0] = INSTALLED_INSIDE[parts[0]]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, root: Path, modules: set[str]) -> Iterator[Import]:
    """Every import in ``path``; ``from X import y`` names module ``X.y`` when that is a
    module of the tree, else ``X``."""
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]

    def visit(node: ast.AST, type_only: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, node.lineno, type_only)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield Import(source, full if full in modules else base, node.lineno, type_only)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_only)

    yield from visit(ast.parse(path.read_text(), str(path)), False)


def all_imports(root: Path, packages: tuple[str, ...] = ("harness", "stages", "checks")) -> list[Import]:
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(p, root) for p in files}
    return [imp for p in files for imp in imports_of(p, root, modules)]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(imports: list[Import]) -> list[str]:
    """Every broken rule, as ``module:line imports target (why)``."""
    found = []
    for imp in imports:
        where = f"{imp.source}:{imp.line} imports {imp.target}"
        if any(_within(imp.source, lib) for lib in LIBRARY):
            if _within(imp.target, "harness.plugin"):
                found.append(f"{where} (the library below the plugin never imports it)")
            if any(_within(imp.target, t) for t in TEST_FRAMEWORKS) and not imp.type_only:
                found.append(f"{where} (the library below the plugin never imports pytest)")
        if _within(imp.source, "harness.media") and _within(imp.target, "harness.backends"):
            found.append(f"{where} (media/ never imports a backend)")
        if _within(imp.source, "harness.rootfs") and _within(imp.target, "harness.backends"):
            found.append(f"{where} (rootfs/ never imports a backend)")
        if imp.source in ("harness.build", "harness.log") and _within(imp.target, "harness.report"):
            found.append(f"{where} (the build context never imports report/)")
        outside = [t for t in INSTALLED_INSIDE.values() if _within(imp.source, t)] == []
        if outside and _within(imp.source, "harness") and any(
                _within(imp.target, t) for t in INSTALLED_INSIDE.values()):
            found.append(f"{where} (nothing under harness/ imports stages/ or checks/)")
        if any(_within(imp.target, t) for t in INSTALLED_INSIDE):
            found.append(f"{where} (stages/ and checks/ are harness.stages and harness.checks)")
    found += [f"import circle: {' -> '.join(c)}" for c in circles(imports)]
    return found


def circles(imports: list[Import]) -> list[list[str]]:
    """Runtime import cycles among the tree's modules (type-only imports left out)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.type_only and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph and nxt not in state:
                continue  # outside the tree (or a leaf that imports nothing of ours)
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt]
                # (a package importing its own submodule is how packages are built)
                if not (len(cycle) == 3 and _within(cycle[1], cycle[0])):
                    found.append(cycle)
            elif state.get(nxt) is None:
                walk(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


# --- the rules hold for this tree -------------------------------------------------------


def test_the_floor_plan_holds():
    broken = violations(all_imports(ROOT))
    assert not broken, "\n".join(broken)


def test_the_reader_sees_the_imports_that_matter():
    """The checker reads this tree the way it should (else the test above proves nothing)."""
    imports = all_imports(ROOT)
    edges = {(i.source, i.target, i.type_only) for i in imports}
    assert ("harness.backends.qemu.backend", "harness.backends.qemu.installer", False) in edges
    assert ("harness.build", "harness.backends.base", False) in edges
    assert ("harness.backends.base", "harness.build", True) in edges  # under TYPE_CHECKING
    assert ("harness.stages.fixtures", "harness.plugin.fixtures", False) in edges
    assert ("harness.checks.conftest", "harness.stages.s7_clone", False) in edges
    assert ("harness.backends.qemu.backend", "harness.rootfs", False) in edges


# --- and each rule fails when it is broken ----------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in {Path(rel).parts[0] for rel in files}:
        for folder in [tmp_path / pkg, *(p for p in (tmp_path / pkg).rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
    return all_imports(tmp_path)


@pytest.mark.parametrize(("files", "expected"), [
    ({"harness/backends/qemu/vm.py": "from harness.plugin.run import STATE_KEY\n",
      "harness/plugin/run.py": ""}, "never imports it"),
    ({"harness/archive/reader.py": "def f():\n    import pytest\n"}, "never imports pytest"),
    ({"harness/media/iso.py": "from harness.backends.qemu import vm\n",
      "harness/backends/qemu/vm.py": ""}, "media/ never imports a backend"),
    ({"harness/rootfs/debootstrap.py": "from harness.backends.qemu.vm import QemuVM\n",
      "harness/backends/qemu/vm.py": ""}, "rootfs/ never imports a backend"),
    ({"harness/rootfs/chroot.py": "def f():\n    from harness.backends import base\n",
      "harness/backends/base.py": ""}, "rootfs/ never imports a backend"),
    ({"harness/build.py": "from harness.report import allure\n",
      "harness/report/allure.py": ""}, "never imports report/"),
    ({"harness/build.py": "import harness.stages.shell\n", "stages/shell.py": ""},
     "nothing under harness/ imports stages/"),
    ({"checks/test_x.py": "from stages.s7_clone import Clone\n", "stages/s7_clone.py": ""},
     "are harness.stages and harness.checks"),
    ({"harness/a.py": "from harness import b\n", "harness/b.py": "def f():\n    from harness import a\n"},
     "import circle: harness.a -> harness.b -> harness.a"),
])
def test_each_rule_fails_when_broken(tmp_path: Path, files: dict[str, str], expected: str):
    broken = violations(_tree(tmp_path, files))
    assert any(expected in v for v in broken), broken


def test_type_only_imports_may_go_both_ways(tmp_path: Path):
    files = {"harness/build.py": "from harness.backends import base\n",
             "harness/backends/base.py": ("from typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from harness.build import Build\n"
                                          "    import pytest\n")}
    assert violations(_tree(tmp_path, files)) == []
