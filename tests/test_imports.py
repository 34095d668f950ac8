"""Import rules of the repository, checked on the source with ``ast``:

- the runtime packages (``edge_component/``, ``lambda/``) import nothing from
  ``infra``, ``training``, ``tests`` or ``benchmarks``: neither the component zip nor
  the Lambda bundle carries them;
- no module of ``edge_component``, ``lambda/vigil_alerts``, ``training`` or ``infra``
  is part of an import circle (module-level imports; an import inside a function runs
  when it is called and is left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("edge_component", "lambda")
FORBIDDEN = ("infra", "training", "tests", "benchmarks")
# package name -> the folder that holds it
PACKAGES = {
    "edge_component": REPO,
    "vigil_alerts": REPO / "lambda",
    "vigil_health": REPO / "lambda",
    "training": REPO,
    "infra": REPO,
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(tree: ast.Module, module: str, is_package: bool, top_level_only: bool):
    """(line, imported module name) for each import; ``top_level_only`` skips imports in
    functions, classes and ``if TYPE_CHECKING`` blocks."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if top_level_only and isinstance(node, (ast.Try, ast.With)):
            yield from _imported(ast.Module(body=node.body, type_ignores=[]), module, is_package, True)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name, [a.name for a in node.names]


def test_runtime_packages_import_nothing_from_infra_training_tests_or_benchmarks():
    found = []
    for folder in RUNTIME:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for line, name, _ in _imported(tree, "", False, top_level_only=False):
                if name.split(".")[0] in FORBIDDEN:
                    found.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not found, "\n".join(found)


def _graph() -> dict[str, set[str]]:
    modules: dict[str, tuple[Path, bool]] = {}
    for package, root in PACKAGES.items():
        for path in sorted((root / package).rglob("*.py")):
            modules[_module_name(path, root)] = (path, path.name == "__init__.py")
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for _, target, names in _imported(tree, name, is_package, top_level_only=True):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    graph[name].add(candidate)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_imports_it_checks():
    graph = _graph()
    assert "edge_component.config" in graph["edge_component.analysis.motion"]  # relative, two dots
    assert "edge_component.delivery.outbox" in graph["edge_component.delivery.sender"]
    assert "edge_component.config" in graph["infra.edge_settings"]
    assert "vigil_alerts.validation" in graph["vigil_alerts.processing"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_part_of_an_import_circle():
    assert _cycles(_graph()) == []
