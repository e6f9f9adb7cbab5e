"""The package's structure, checked from its source with ``ast`` (nothing is imported).

* nothing outside ``cli/`` imports ``approx_audit.cli`` (data flows CLI → auditor → bounds);
* no import cycle between modules (imports under ``if TYPE_CHECKING:`` are type-only and not
  counted; imports inside functions are counted: a lazy import still ties two modules);
* no ``torch`` import anywhere under ``bounds/`` or ``auditor/judge/``.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _package_dirs() -> dict[str, Path]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    dirs = cfg["tool"]["setuptools"]["package-dir"]
    return {pkg: ROOT / rel for pkg, rel in dirs.items()}


def modules() -> dict[str, Path]:
    """Every module of the import package: dotted name → file."""
    out: dict[str, Path] = {}
    dirs = _package_dirs()
    for pkg, folder in dirs.items():
        for path in sorted(folder.glob("*.py")):
            name = pkg if path.name == "__init__.py" else f"{pkg}.{path.stem}"
            out[name] = path
    # sub-packages not listed in package-dir live in their parent's folder
    for pkg, folder in list(dirs.items()):
        for init in sorted(folder.glob("*/__init__.py")):
            sub = f"{pkg}.{init.parent.name}"
            if sub in dirs:
                continue
            for path in sorted(init.parent.rglob("*.py")):
                rel = path.relative_to(folder).with_suffix("")
                parts = [pkg, *rel.parts]
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out.setdefault(".".join(parts), path)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_names(name: str, path: Path, known: set[str]) -> set[str]:
    """Dotted names ``name`` imports: modules of the package where they resolve, and the top
    level names of outside packages (``torch``)."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(_longest_known(alias.name, known))
            continue
        base = node.module or ""
        if node.level:
            up = here[: len(here) - (node.level - 1)]
            base = ".".join(up + ([base] if base else []))
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            out.add(full if full in known else _longest_known(base, known))
    return out


def _longest_known(dotted: str, known: set[str]) -> str:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in known:
            return cand
    return parts[0]


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imported_names(m, p, known) - {m} for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "approx_audit.auditor.run" in graph
    assert "approx_audit.bounds.bound" in graph
    assert "torch" in graph["approx_audit.auditor.run"]
    assert "approx_audit.bounds.errors" in graph["approx_audit.auditor.run"]


def test_nothing_outside_cli_imports_cli():
    offenders = sorted(
        f"{m} imports {t}"
        for m, targets in import_graph().items() if not m.startswith("approx_audit.cli")
        for t in targets if t == "approx_audit.cli" or t.startswith("approx_audit.cli."))
    assert offenders == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_bounds_and_judge_never_import_torch():
    offenders = sorted(
        m for m, targets in import_graph().items()
        if (m.startswith("approx_audit.bounds") or m.startswith("approx_audit.auditor.judge"))
        and "torch" in targets)
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_subpackage_is_listed_for_wheel_installs():
    """An editable install finds a new sub-package by its folder; a wheel only ships the
    packages pyproject.toml lists."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {m for m, p in modules().items() if p.name == "__init__.py"}
    assert sorted(found - listed) == []
