"""The package's map: layers that mirror the data path, no module importing upward, a shallow import graph.

The layers, bottom to top: shared vocabulary, the viewer plugin, intake, metrics, render, output, the config
edge, service, commands. A module may import its own layer and the layers below. For the layering every import
counts, a lazy or type-only one included: each is still a dependency. The depth is that of the import-time
chain (module-level imports that run): what loading one module drags in, level by level; a type-only import
loads nothing, and a command's lazy import is loaded by that command alone. Neither graph may have a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "daemon" / "segwatch"

# Top-level modules by layer; sub-packages are layers of their own.
VOCABULARY = {
    "segwatch",
    "segwatch.errors",
    "segwatch.units",
    "segwatch.summaries",
    "segwatch.dump",
    "segwatch.tfquiet",
    "segwatch.caps",
}
EDGE = {"segwatch.config", "segwatch.fingerprints", "segwatch.plan"}
COMMANDS = {
    "segwatch.cli",
    "segwatch.entry",
    "segwatch.__main__",
    "segwatch.demo",
    "segwatch.livedemo",
    "segwatch.explain",
    "segwatch.relog",
}
LAYERS = ["vocabulary", "viewer", "intake", "metrics", "render", "output", "edge", "service", "commands"]

# Edges that still point upward, each to be removed by moving what it needs down; the test fails on any new one
# and on any listed edge that is gone (so the list only shrinks).
KNOWN_UPWARD: set[tuple[str, str]] = set()
# The longest import-time chain, in modules (11 before the package had sub-packages).
MAX_LEVELS = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(nodes: list[ast.stmt], *, lazy: bool, type_only: bool) -> set[str]:
    """Dotted names imported by `nodes`: into function bodies if `lazy`, into TYPE_CHECKING blocks if
    `type_only`. `from a import b` names both `a` and `a.b` (b may be a module)."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segwatch":
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif is_type_checking(node) and not type_only:
            names |= imported(node.orelse, lazy=lazy, type_only=type_only)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
            continue
        else:
            children = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            names |= imported(children, lazy=lazy, type_only=type_only)
    return names


def import_graph(*, lazy: bool = True, type_only: bool = True) -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = imported(tree.body, lazy=lazy, type_only=type_only)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def levels_of(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's depth: 1 for a module importing nothing of the package's, else 1 + its deepest import."""
    levels: dict[str, int] = {}

    def depth(module: str, chain: tuple[str, ...]) -> int:
        assert module not in chain, "import cycle: " + " -> ".join((*chain, module))
        if module not in levels:
            levels[module] = 1 + max((depth(target, (*chain, module)) for target in graph[module]), default=0)
        return levels[module]

    for module in graph:
        depth(module, ())
    return levels


def layer(module: str) -> int:
    if module in VOCABULARY:
        return LAYERS.index("vocabulary")
    if module in EDGE or module.startswith("segwatch.config."):
        return LAYERS.index("edge")
    if module in COMMANDS:
        return LAYERS.index("commands")
    package = module.split(".")[1]
    assert package in LAYERS, f"{module}: not in any layer; add it to one in {Path(__file__).name}"
    return LAYERS.index(package)


def is_package_init(module: str, target: str) -> bool:
    """`from segwatch.render import png` names the package too; the package's own `__init__` is not a layer."""
    return module.startswith(target + ".") or (target == "segwatch")


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = {
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(module) and not is_package_init(module, target)
    }
    assert upward - KNOWN_UPWARD == set(), "new upward imports"
    assert KNOWN_UPWARD - upward == set(), "fixed: remove these from KNOWN_UPWARD"


def test_no_import_cycle_even_through_lazy_imports() -> None:
    levels_of(import_graph())


def test_the_import_time_chain_is_shallow() -> None:
    graph = import_graph(lazy=False, type_only=False)
    levels = levels_of(graph)
    deepest = max(levels, key=levels.__getitem__)
    chain = [deepest]
    while graph[chain[-1]]:
        chain.append(max(graph[chain[-1]], key=levels.__getitem__))
    assert levels[deepest] <= MAX_LEVELS, f"{levels[deepest]} levels: " + " -> ".join(chain)
