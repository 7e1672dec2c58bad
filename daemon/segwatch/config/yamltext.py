"""YAML in and out: a strict safe loader (no duplicate keys, a budget for aliases) and the effective config
written back as YAML that loads to an equal Config."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from pydantic import BaseModel

from segwatch.config.kinds import shown

__all__ = ["MAX_YAML_VALUES", "StrictLoader", "render_config"]

# Values a YAML document may expand to through its aliases (`*anchor`); a real config has a few hundred.
MAX_YAML_VALUES = 10_000


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, which plain loading silently resolves to the last, and
    documents whose aliases expand beyond MAX_YAML_VALUES values (a "billion laughs" alias bomb: tiny on
    disk, gigabytes once anything walks it)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {shown(key)}",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Count the values `root` expands to, each alias counted in full, without expanding anything."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            if key in on_path:
                raise yaml.constructor.ConstructorError(
                    None, None, "found a recursive alias", node.start_mark
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes.get(id(child), 0) for child in children)
        if total > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {MAX_YAML_VALUES:,} values (an alias bomb?); "
                "write the values out or use fewer aliases",
                node.start_mark,
            )
        sizes[key] = total


class _FlowListDumper(yaml.SafeDumper):
    """Writes lists inline (`size: [256, 256]`) and mappings as blocks, the way people write this config."""


def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_FlowListDumper.add_representer(list, _flow_list)


def render_config(cfg: BaseModel) -> str:
    """The effective config as YAML with readable durations and sizes; loading it gives an equal Config."""
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True)
