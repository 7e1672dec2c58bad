"""The package's map: layers that mirror the data path, no module importing upward, a shallow import graph.

The layers, bottom to top: shared vocabulary, intake, metrics, render, viewer, output, the config edge, service,
commands. A module may import its own layer and the layers below. Imports inside functions count too: a lazy
import is still a dependency.
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
# The longest import chain, in modules; only ever lowered (the target is 8).
MAX_LEVELS = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segwatch":
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


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


def test_the_import_graph_is_acyclic_and_shallow() -> None:
    graph = import_graph()

    levels: dict[str, int] = {}

    def depth(module: str, chain: tuple[str, ...]) -> int:
        assert module not in chain, "import cycle: " + " -> ".join((*chain, module))
        if module not in levels:
            levels[module] = 1 + max((depth(target, (*chain, module)) for target in graph[module]), default=0)
        return levels[module]

    for module in graph:
        depth(module, ())
    deepest = max(levels, key=levels.__getitem__)
    assert levels[deepest] <= MAX_LEVELS, f"{deepest} sits {levels[deepest]} levels deep"
