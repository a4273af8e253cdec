"""The floor plan, enforced: which family of the harness may import which, read from
the code's own import statements (module level, inside functions, under
``TYPE_CHECKING``, which counts as type-only, and ``importlib.import_module`` with a
literal name). docs/architecture.md draws the same picture.

Rules (each shown to fail on a synthetic tree below, and the review's five violations
on a scratch copy of this tree):
- only ``plugin/`` imports pytest, xdist or pluggy at run time (the top-level modules of
  ``harness/`` included); besides it, ``stages/fixtures.py`` (the stages' pytest plugin)
  and ``checks/`` (the tests) do;
- nothing below the plugin imports ``harness.plugin``;
- ``stages/`` and ``checks/`` import only ``backends.base`` of the backends;
- backends never import each other, and ``backends/base.py`` never imports a concrete one;
  a concrete backend is imported only by its own folder and the backend table;
- ``media/`` never imports a backend; nothing under ``harness/rootfs/`` does either;
- ``build.py`` and ``log.py`` never import ``report/`` (report listeners are injected);
- nothing under ``harness/`` imports ``stages`` or ``checks``;
- ``stages/`` and ``checks/`` are imported by their installed names, ``harness.stages``
  and ``harness.checks`` (pyproject.toml installs them inside ``harness``), never as the
  generic top-level ``stages`` or ``checks``;
- the layer order (:data:`LAYERS`): a module imports only its own family and the layers
  below it; the families of one layer never import each other;
- no import circle at run time: strongly connected components of the import graph, with
  type-only imports and a package's imports of its own submodules left out.
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_FRAMEWORKS = ("pytest", "_pytest", "xdist", "pluggy")
# The repository's top-level folders installed inside ``harness`` (pyproject.toml's
# package-dir): their modules' names are the installed ones.
INSTALLED_INSIDE = {"stages": "harness.stages", "checks": "harness.checks"}
PACKAGES = ("harness", "stages", "checks")
# Besides plugin/, what may import pytest at run time: the stages' fixtures (a pytest11
# plugin of its own) and the checks (the tests).
PYTEST_ALLOWED = ("harness.plugin", "harness.stages.fixtures", "harness.checks")
BACKENDS = "harness.backends"
BASE = "harness.backends.base"

# The layer order, lowest first. A family is a module prefix (longest match wins);
# "harness.backends.*" stands for each concrete backend, one family each. A module
# imports its own family and the layers below; the families of one layer never import
# each other. A module of the tree that is in no family fails the test: place it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.errors",),
    # (archive/format.py: the archive's words, importing nothing, spelled from any layer)
    ("harness", "harness.names", "harness.safeyaml", "harness.log", "harness.host",
     "harness.archive.format"),
    ("harness.settings", "harness.ssh", "harness.checklist"),
    ("harness.distro",),
    # the build context and the backend interface it holds (a type-only circle, §2.4)
    ("harness.build|harness.backends.base",),
    # install media, and (issue #23) the root trees built on this host: neither knows a backend
    ("harness.media", "harness.rootfs"),
    # the release evidence (SBOMs, vulnerabilities, signing, provenance; issue #24): below the
    # archive that carries it and the report that shows it
    ("harness.evidence",),
    ("harness.backends.*",),
    ("harness.backends",),  # the table: the only importer of a concrete backend
    ("harness.archive",),
    ("harness.evidence.repro",),  # two archives compared (reads them with archive/reader)
    ("harness.report",),
    ("harness.plugin",),
    ("harness.stages",),
    ("harness.checks",),
    ("harness.cli|harness.__main__",),  # the gmi command: pytest on the installed checks
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (or the module a name was imported from), dotted
    line: int
    type_only: bool
    path: str = ""  # the importing file, relative to the tree's root
    by_string: bool = False  # importlib.import_module("...") with a literal name

    @property
    def where(self) -> str:
        return f"{self.path or self.source}:{self.line}"


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


def _string_import(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")``, ``import_module("x")``
    or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
        return first.value
    return None


def imports_of(path: Path, root: Path, modules: set[str]) -> Iterator[Import]:
    """Every import in ``path``; ``from X import y`` names module ``X.y`` when that is a
    module of the tree, else ``X``."""
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()

    def visit(node: ast.AST, type_only: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, node.lineno, type_only, rel)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield Import(source, full if full in modules else base, node.lineno, type_only, rel)
        elif isinstance(node, ast.Call) and (target := _string_import(node)):
            yield Import(source, target, node.lineno, type_only, rel, by_string=True)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_only)

    yield from visit(ast.parse(path.read_text(), str(path)), False)


def python_files(root: Path, packages: Iterable[str] = PACKAGES) -> list[Path]:
    return [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]


def all_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    files = python_files(root, packages)
    modules = {module_name(p, root) for p in files}
    return [imp for p in files for imp in imports_of(p, root, modules)]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def concrete_backend(name: str) -> str | None:
    """``harness.backends.<name>`` for a module of a concrete backend, else None."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[:2] == ["harness", "backends"] and parts[2] != "base":
        return ".".join(parts[:3])
    return None


def family(name: str) -> tuple[int, str] | None:
    """(layer, family) of a module of the tree; None when no family of :data:`LAYERS`
    holds it."""
    if backend := concrete_backend(name):
        return LAYERS.index(("harness.backends.*",)), backend
    best: tuple[int, str, int] | None = None
    for layer, families in enumerate(LAYERS):
        for fam in families:
            for prefix in fam.split("|"):
                # ("harness" alone is the package's __init__: the version, shipped())
                matches = name == prefix if prefix == "harness" else _within(name, prefix)
                if "*" not in prefix and matches and (best is None or len(prefix) > best[2]):
                    best = (layer, fam, len(prefix))
    return (best[0], best[1]) if best else None


# --- the rules, one function each: the reason an import breaks it, or None ----------


def rule_test_frameworks(imp: Import) -> str | None:
    if (any(_within(imp.target, t) for t in TEST_FRAMEWORKS) and not imp.type_only
            and not any(_within(imp.source, a) for a in PYTEST_ALLOWED)):
        return "only plugin/ imports pytest, xdist or pluggy at run time"
    return None


def rule_plugin_on_top(imp: Import) -> str | None:
    below = not any(_within(imp.source, p) for p in ("harness.plugin", *INSTALLED_INSIDE.values()))
    if below and _within(imp.target, "harness.plugin"):
        return "nothing below the plugin imports it"
    return None


def rule_stages_and_checks_see_the_interface(imp: Import) -> str | None:
    if (any(_within(imp.source, t) for t in INSTALLED_INSIDE.values())
            and _within(imp.target, BACKENDS) and not _within(imp.target, BASE)):
        return "stages/ and checks/ import only backends.base of the backends"
    return None


def rule_backends_apart(imp: Import) -> str | None:
    target = concrete_backend(imp.target)
    if target is None:
        return None
    source = concrete_backend(imp.source)
    if source is not None and source != target:
        return "backends never import each other"
    if _within(imp.source, BASE):
        return "backends/base.py never imports a concrete backend"
    if source is None and imp.source != BACKENDS and not any(
            _within(imp.source, t) for t in INSTALLED_INSIDE.values()):
        return "only the backend table (backends/__init__.py) imports a concrete backend"
    return None


def rule_media_and_rootfs_know_no_backend(imp: Import) -> str | None:
    if _within(imp.target, BACKENDS):
        if _within(imp.source, "harness.media"):
            return "media/ never imports a backend"
        if _within(imp.source, "harness.rootfs"):
            return "nothing under harness/rootfs imports a backend"
    return None


def rule_build_context_without_reports(imp: Import) -> str | None:
    if imp.source in ("harness.build", "harness.log") and _within(imp.target, "harness.report"):
        return "the build context never imports report/"
    return None


def rule_harness_without_stages_and_checks(imp: Import) -> str | None:
    inside = any(_within(imp.source, t) for t in INSTALLED_INSIDE.values())
    if not inside and _within(imp.source, "harness") and any(
            _within(imp.target, t) for t in INSTALLED_INSIDE.values()):
        return "nothing under harness/ imports stages/ or checks/"
    return None


def rule_installed_names(imp: Import) -> str | None:
    if any(_within(imp.target, t) for t in INSTALLED_INSIDE):
        return "stages/ and checks/ are harness.stages and harness.checks"
    return None


def rule_layers(imp: Import) -> str | None:
    if not _within(imp.target, "harness"):
        return None
    source, target = family(imp.source), family(imp.target)
    if source is None:
        return f"{imp.source} is in no layer of LAYERS: place it"
    if target is None or source[1] == target[1] or source[0] > target[0]:
        return None
    if source[0] == target[0]:
        return f"{source[1]} and {target[1]} share a layer and never import each other"
    return f"layer order: {source[1]} (layer {source[0]}) is below {target[1]} (layer {target[0]})"


RULES = (rule_test_frameworks, rule_plugin_on_top, rule_stages_and_checks_see_the_interface,
         rule_backends_apart, rule_media_and_rootfs_know_no_backend,
         rule_build_context_without_reports, rule_harness_without_stages_and_checks,
         rule_installed_names, rule_layers)


def violations(imports: list[Import]) -> list[str]:
    """Every broken rule, as ``file:line: source imports target (why)``."""
    found = []
    for imp in imports:
        how = "imports by string" if imp.by_string else "imports"
        for rule in RULES:
            if why := rule(imp):
                found.append(f"{imp.where}: {imp.source} {how} {imp.target} ({why})")
    found += circles(imports)
    return found


def _exempt(source: str, target: str) -> bool:
    """A package importing its own submodule: how packages are built."""
    return target != source and _within(target, source)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (each sorted; the list sorted): the
    result does not depend on the order the modules are visited in."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(c for c in found if len(c) > 1)


def circles(imports: list[Import]) -> list[str]:
    """Runtime import circles among the tree's modules, each as one line that walks it
    with the file:line of every edge. Importing ``a.b.c`` also runs ``a/b/__init__.py``:
    an edge to each package around the target too (not to the importer's own)."""
    modules = {imp.source for imp in imports}
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for imp in imports:
        if imp.type_only:
            continue
        parts = imp.target.split(".")
        packages = [".".join(parts[:n]) for n in range(1, len(parts))]
        for target in [imp.target, *(p for p in packages if not _within(imp.source, p))]:
            if target == imp.source or target not in modules or _exempt(imp.source, target):
                continue
            graph.setdefault(imp.source, set()).add(target)
            how = "" if target == imp.target else f", running {target}'s __init__"
            where.setdefault((imp.source, target), imp.where + how)
    lines = []
    for component in strongly_connected(graph):
        walk = _cycle_in(component, graph)
        steps = ", ".join(f"{a} -> {b} ({where[a, b]})" for a, b in itertools.pairwise(walk))
        among = (f" (one of the circles among {', '.join(component)})"
                 if len(component) > len(walk) - 1 else "")
        lines.append(f"import circle: {' -> '.join(walk)}: {steps}{among}")
    return lines


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, set()) & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle in the component {component}")  # pragma: no cover


# Violations that another issue removes (its own work), so that this test can guard the
# rest of the tree meanwhile. Each entry must still occur: once fixed, delete it here.
PENDING = {
    ("harness.stages.s6_promote", "harness.backends.hyperv.promote"):
        "issue #22: Backend.promote, the stage calls b.backend.promote(b)",
}


def _pending(line: str) -> bool:
    return any(f": {source} imports {target} (" in line for source, target in PENDING)


# --- the rules hold for this tree -------------------------------------------------------


def test_the_floor_plan_holds():
    broken = [v for v in violations(all_imports(ROOT)) if not _pending(v)]
    assert not broken, "\n".join(broken)


def test_every_pending_violation_still_occurs():
    """An entry of PENDING that no longer occurs was fixed: it goes."""
    found = violations(all_imports(ROOT))
    gone = [f"{s} -> {t} ({why})" for (s, t), why in PENDING.items()
            if not any(f": {s} imports {t} (" in v for v in found)]
    assert not gone, "fixed, delete from PENDING: " + "; ".join(gone)


def test_every_module_has_a_layer():
    unplaced = sorted({module_name(p, ROOT) for p in python_files(ROOT)} - {
        m for m in (module_name(p, ROOT) for p in python_files(ROOT)) if family(m)})
    assert not unplaced, f"add to LAYERS: {unplaced}"


def test_the_reader_sees_the_imports_that_matter():
    """The checker reads this tree the way it should (else the test above proves nothing)."""
    imports = all_imports(ROOT)
    edges = {(i.source, i.target, i.type_only) for i in imports}
    assert ("harness.backends.qemu.backend", "harness.backends.qemu.installer", False) in edges
    assert ("harness.build", "harness.backends.base", False) in edges
    assert ("harness.backends.base", "harness.build", True) in edges  # under TYPE_CHECKING
    assert ("harness.stages.fixtures", "harness.plugin.fixtures", False) in edges
    assert ("harness.checks.conftest", "harness.stages.s7_clone", False) in edges
    assert ("harness.plugin", "pytest", False) in edges


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
    pytest.param({"harness/build.py": "import pytest\n"},
                 "harness/build.py:1: harness.build imports pytest (only plugin/ imports pytest",
                 id="a top-level module imports pytest"),
    pytest.param({"harness/archive/reader.py": "def f():\n    import xdist\n"},
                 "harness/archive/reader.py:2: harness.archive.reader imports xdist (only plugin/",
                 id="a lazy import of xdist"),
    pytest.param({"stages/s2_update.py": "import pytest\n"},
                 "stages/s2_update.py:1: harness.stages.s2_update imports pytest (only plugin/",
                 id="a plain stage imports pytest"),
    pytest.param({"harness/backends/qemu/vm.py": "from harness.plugin.run import STATE_KEY\n",
                  "harness/plugin/run.py": ""}, "(nothing below the plugin imports it)",
                 id="the library imports the plugin"),
    pytest.param({"stages/s6_promote.py": "from harness.backends.hyperv.promote import promote_disk\n",
                  "harness/backends/hyperv/promote.py": ""},
                 "stages/s6_promote.py:1: harness.stages.s6_promote imports harness.backends.hyperv.promote "
                 "(stages/ and checks/ import only backends.base", id="a stage imports a concrete backend"),
    pytest.param({"checks/test_x.py": "from harness.backends import get_backend\n"},
                 "(stages/ and checks/ import only backends.base", id="a check imports the table"),
    pytest.param({"harness/backends/qemu/vm.py": "from harness.backends.hyperv import model\n",
                  "harness/backends/hyperv/model.py": ""},
                 "harness/backends/qemu/vm.py:1: harness.backends.qemu.vm imports "
                 "harness.backends.hyperv.model (backends never import each other)",
                 id="one backend imports another"),
    pytest.param({"harness/backends/base.py": "def f():\n    from harness.backends.qemu import vm\n",
                  "harness/backends/qemu/vm.py": ""},
                 "(backends/base.py never imports a concrete backend)", id="base imports a backend"),
    pytest.param({"harness/archive/export.py": "from harness.backends.qemu.vm import QemuVM\n",
                  "harness/backends/qemu/vm.py": ""},
                 "(only the backend table (backends/__init__.py) imports a concrete backend)",
                 id="the export imports a concrete backend"),
    pytest.param({"harness/report/allure.py": ("import importlib\n"
                                                "M = importlib.import_module('harness.plugin.run')\n"),
                  "harness/plugin/run.py": ""},
                 "harness/report/allure.py:2: harness.report.allure imports by string harness.plugin.run "
                 "(nothing below the plugin imports it)", id="a string import of the plugin"),
    pytest.param({"harness/media/iso.py": "from harness.backends.qemu import vm\n",
                  "harness/backends/qemu/vm.py": ""}, "(media/ never imports a backend)",
                 id="media imports a backend"),
    pytest.param({"harness/rootfs/debootstrap.py": "from harness.backends.base import Backend\n",
                  "harness/backends/base.py": ""},
                 "(nothing under harness/rootfs imports a backend)", id="rootfs imports a backend"),
    pytest.param({"harness/build.py": "from harness.report import allure\n",
                  "harness/report/allure.py": ""}, "(the build context never imports report/)",
                 id="the build context imports report"),
    pytest.param({"harness/build.py": "import harness.stages.shell\n", "stages/shell.py": ""},
                 "(nothing under harness/ imports stages/ or checks/)", id="the library imports stages"),
    pytest.param({"checks/test_x.py": "from stages.s7_clone import Clone\n", "stages/s7_clone.py": ""},
                 "(stages/ and checks/ are harness.stages and harness.checks)",
                 id="a generic top-level name"),
    pytest.param({"harness/settings.py": "def f():\n    from harness.report.release import check_source\n",
                  "harness/report/release.py": ""},
                 "harness/settings.py:2: harness.settings imports harness.report.release (layer order: "
                 "harness.settings (layer 2) is below harness.report (layer 11))",
                 id="the foundation imports report"),
    pytest.param({"harness/settings.py": "from harness import ssh\n", "harness/ssh.py": ""},
                 "(harness.settings and harness.ssh share a layer and never import each other)",
                 id="two families of one layer"),
    pytest.param({"harness/gadget.py": "from harness import errors\n", "harness/errors.py": ""},
                 "(harness.gadget is in no layer of LAYERS: place it)", id="a module with no layer"),
    pytest.param({"harness/a.py": "from harness import b\n",
                  "harness/b.py": "def f():\n    from harness import a\n"},
                 "import circle: harness.a -> harness.b -> harness.a: "
                 "harness.a -> harness.b (harness/a.py:1), harness.b -> harness.a (harness/b.py:2)",
                 id="a two-module circle"),
])
def test_each_rule_fails_when_broken(tmp_path: Path, files: dict[str, str], expected: str):
    broken = violations(_tree(tmp_path, files))
    assert any(expected in v for v in broken), broken


@pytest.mark.parametrize(("package", "helper"), [("p", "x"), ("z", "a"), ("m", "n")])
def test_a_circle_through_a_package_and_its_submodule_is_found_in_any_order(
        tmp_path: Path, package: str, helper: str):
    """The review's fifth: package P imports its submodule S directly and through module X,
    and S imports P. P -> S is how packages are built (left out); P -> X -> S -> P is a
    circle, whatever the names sort as."""
    files = {f"harness/{package}/__init__.py": (f"from harness.{package} import s\n"
                                                f"from harness import {helper}\n"),
             f"harness/{package}/s.py": f"from harness import {package}\n",
             f"harness/{helper}.py": f"from harness.{package} import s\n"}
    broken = [v for v in violations(_tree(tmp_path, files)) if v.startswith("import circle:")]
    assert len(broken) == 1, broken
    for module in (f"harness.{package}", f"harness.{package}.s", f"harness.{helper}"):
        assert module in broken[0]


def test_a_circle_through_a_package_init_is_found(tmp_path: Path):
    """Importing a submodule runs its package's __init__: a circle through it counts."""
    files = {"harness/p/__init__.py": "from harness import x\n", "harness/p/s.py": "",
             "harness/x.py": "def f():\n    pass\n", "harness/y.py": "from harness.p import s\n"}
    assert not [v for v in violations(_tree(tmp_path, files)) if "circle" in v]
    (tmp_path / "harness/x.py").write_text("from harness import y\n")
    broken = violations(all_imports(tmp_path))
    walk = "import circle: harness.p -> harness.x -> harness.y -> harness.p"
    edge = "harness/y.py:1, running harness.p's __init__"
    assert [v for v in broken if v.startswith(walk) and edge in v], broken


def test_a_package_importing_its_submodule_is_no_circle(tmp_path: Path):
    files = {"harness/p/__init__.py": "from harness.p import s\n",
             "harness/p/s.py": "from harness import p\n"}
    assert not [v for v in violations(_tree(tmp_path, files)) if "circle" in v]


def test_type_only_imports_may_go_both_ways(tmp_path: Path):
    files = {"harness/build.py": "from harness.backends import base\n",
             "harness/backends/base.py": ("from typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from harness.build import Build\n"
                                          "    import pytest\n")}
    assert violations(_tree(tmp_path, files)) == []


def test_string_imports_are_read_only_when_literal(tmp_path: Path):
    files = {"harness/backends/__init__.py": ("import importlib\nTABLE = {'q': 'harness.backends.q'}\n"
                                              "def get(n):\n    return importlib.import_module(TABLE[n])\n"
                                              "def plugin():\n    return __import__('harness.plugin')\n"),
             "harness/plugin/__init__.py": ""}
    imports = _tree(tmp_path, files)
    strings = [(i.source, i.target, i.line) for i in imports if i.by_string]
    assert strings == [("harness.backends", "harness.plugin", 6)]


# --- the review's five violations, each added to a scratch copy of this tree ---------


def _append(path: Path, text: str) -> int:
    """Append ``text`` to ``path``; the line number of its first line."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, text]) + "\n")
    return len(lines) + 1


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return set(violations(all_imports(ROOT)))


def _scratch_copy(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def _top_module_imports_pytest_and_the_plugin(root: Path) -> list[str]:
    line = _append(root / "harness/build.py", "import pytest\nfrom harness.plugin.run import STATE_KEY")
    return [f"harness/build.py:{line}: harness.build imports pytest (only plugin/ imports pytest",
            f"harness/build.py:{line + 1}: harness.build imports harness.plugin.run "
            "(nothing below the plugin"]


def _stage_imports_a_concrete_backend(root: Path) -> list[str]:
    (root / "stages/s9_extra.py").write_text("from harness.backends.qemu.vm import QemuVM\n")
    return ["stages/s9_extra.py:1: harness.stages.s9_extra imports harness.backends.qemu.vm "
            "(stages/ and checks/ import only backends.base"]


def _backend_imports_another(root: Path) -> list[str]:
    line = _append(root / "harness/backends/qemu/vm.py", "from harness.backends.hyperv import model")
    base = _append(root / "harness/backends/base.py", "def _f():\n    from harness.backends.qemu import vm")
    return [f"harness/backends/qemu/vm.py:{line}: harness.backends.qemu.vm imports "
            "harness.backends.hyperv.model (backends never import each other)",
            f"harness/backends/base.py:{base + 1}: harness.backends.base imports harness.backends.qemu.vm "
            "(backends/base.py never imports a concrete backend)"]


def _string_import_of_the_plugin(root: Path) -> list[str]:
    line = _append(root / "harness/archive/reader.py",
                   "def _g():\n    import importlib\n"
                   "    return importlib.import_module('harness.plugin.run')")
    return [f"harness/archive/reader.py:{line + 2}: harness.archive.reader imports by string "
            "harness.plugin.run (nothing below the plugin imports it)"]


def _circle_hidden_by_the_package_exemption(root: Path) -> list[str]:
    # P = harness.distro imports S = harness.distro.pkgmgr directly and through X =
    # harness.names (which it imports already), and S imports P
    assert "from harness.distro import pkgmgr" in (root / "harness/distro/__init__.py").read_text()
    _append(root / "harness/names.py", "def _h():\n    from harness.distro import pkgmgr")
    _append(root / "harness/distro/pkgmgr.py", "from harness import distro")
    return ["import circle: harness.distro -> harness.names -> harness.distro",
            "one of the circles among harness.distro, harness.distro.pkgmgr, harness.names"]


@pytest.mark.parametrize("violate", [
    _top_module_imports_pytest_and_the_plugin, _stage_imports_a_concrete_backend,
    _backend_imports_another, _string_import_of_the_plugin, _circle_hidden_by_the_package_exemption,
], ids=lambda f: f.__name__.strip("_").replace("_", " "))
def test_the_reviews_violations_fail_on_a_scratch_copy(tmp_path: Path, baseline: set[str], violate):
    root = _scratch_copy(tmp_path)
    expected = violate(root)
    new = [v for v in violations(all_imports(root)) if v not in baseline]
    for line in expected:
        assert any(line in v for v in new), f"{line!r} not among the new violations:\n" + "\n".join(new)


# --- docs/architecture.md draws the same layers ----------------------------------------


def _drawn_as(prefix: str) -> str:
    if prefix == "harness":
        return "harness/__init__"
    if prefix == "harness.backends":
        return "backends/__init__"
    if prefix == "harness.backends.*":
        return "backends/qemu/"
    path = prefix.removeprefix("harness.").replace(".", "/")
    return path + ("/" if (ROOT / "harness" / path).is_dir() or path in ("stages", "checks", "rootfs")
                   else ".py")


def test_the_documented_layers_are_the_tested_ones():
    text = (ROOT / "docs" / "architecture.md").read_text()
    drawn = {int(m[1]): m[2] for m in re.finditer(r"^ {1,2}(\d{1,2})  (.*)$", text, re.M)}
    assert sorted(drawn) == list(range(len(LAYERS))), sorted(drawn)
    for layer, families in enumerate(LAYERS):
        for prefix in (p for fam in families for p in fam.split("|")):
            assert _drawn_as(prefix) in drawn[layer].split("-->")[0], (layer, prefix, drawn[layer])
