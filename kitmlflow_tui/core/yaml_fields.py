"""The fields of a strict YAML file we did not write (a profile, the watch's config), read from its nodes so
that every problem names its line: unknown keys, a key twice, a list or a string of the wrong shape.

``where`` starts every message (``Profile /path/p.yaml``, ``Config watch.yaml``); the caller composes the
document with ``safe_yaml`` first, so its size and shape are bounded before any field is read.
"""

from __future__ import annotations

from collections.abc import Collection

import yaml

from kitmlflow_tui.core.errors import BadInputError


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"))


def mapping_fields(
    node: yaml.MappingNode, allowed: Collection[str], where: str, prefix: str = ""
) -> dict[str, yaml.Node]:
    """The mapping's values by key; a key outside ``allowed`` or given twice is exit 2 naming it and its line."""
    values: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = line_of(key_node)
        if not isinstance(key, str) or key not in allowed:
            raise BadInputError(
                f"{where} line {line}: unknown key {prefix}{key!s}.",
                hint=f"Allowed keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(allowed))}.",
            )
        if key in values:
            raise BadInputError(f"{where} line {line}: key {prefix}{key} appears twice.")
        values[key] = value_node
    return values


def string_field(node: yaml.Node | None, where: str, key: str) -> str | None:
    if node is None or is_null(node):
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise BadInputError(f"{where} line {line_of(node)}: {key} must be a string.")
    return str(node.value)


def string_list_field(node: yaml.Node | None, where: str, key: str) -> list[str]:
    """A list of strings; a single string written without brackets is a list of one."""
    if node is None or is_null(node):
        return []
    if isinstance(node, yaml.ScalarNode):
        return [str(node.value)]
    if not isinstance(node, yaml.SequenceNode):
        raise BadInputError(f"{where} line {line_of(node)}: {key} must be a list of strings.")
    items = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or is_null(item):
            raise BadInputError(f"{where} line {line_of(item)}: {key} items must be strings.")
        items.append(str(item.value))
    return items
