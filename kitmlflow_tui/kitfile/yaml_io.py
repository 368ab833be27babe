"""Kitfile text in and out: YAML written in kit's style, read strictly as kit reads it.

Reading composes the YAML into nodes (so that duplicate keys and the line of every field can be
seen), turns them into plain values (scalars as their text, as kit's decoder reads string fields;
``parameters`` typed the way kit's YAML 1.2 decoder types them), and hands those to the one
validator in :mod:`kitmlflow_tui.kitfile.model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kitmlflow_tui.errors import BadInputError
from kitmlflow_tui.kitfile.model import Kitfile, Problems, canonical_kitfile, check, from_mapping

MAX_DEPTH = 100

# ---- dumping ----


class _FlowList(list[Any]):  # kit writes package.authors in flow style
    pass


class _KitDumper(yaml.SafeDumper):
    """YAML close to kit's (go-yaml v3, indent 2): indented sequences, "..." quoting, no wrapping."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_flow_list(dumper: yaml.SafeDumper, value: _FlowList) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_KitDumper.add_representer(str, _represent_str)
_KitDumper.add_representer(_FlowList, _represent_flow_list)


def dump_yaml(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_KitDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,
    )


def dump_kitfile(kitfile: Kitfile | Mapping[str, Any]) -> str:
    """The Kitfile as YAML in kit's key order and style (block style, no aliases, unicode as is)."""
    data = kitfile.to_dict() if isinstance(kitfile, Kitfile) else canonical_kitfile(kitfile)
    package = data.get("package")
    if isinstance(package, dict) and isinstance(package.get("authors"), list):
        data["package"] = {**package, "authors": _FlowList(package["authors"])}
    return dump_yaml(data)


# ---- strict parsing ----

_scalar_constructor = yaml.constructor.SafeConstructor()


def _typed_scalar(node: yaml.ScalarNode) -> Any:
    """A scalar of free-form parameters, typed as kit's decoder types it (YAML 1.2 booleans)."""
    tag = node.tag
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        lowered = node.value.lower()
        return lowered == "true" if lowered in ("true", "false") else node.value
    if tag == "tag:yaml.org,2002:int":
        return _scalar_constructor.construct_yaml_int(node)
    if tag == "tag:yaml.org,2002:float":
        return _scalar_constructor.construct_yaml_float(node)
    return node.value  # strings, timestamps and other tags keep their text


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """YAML nodes → plain values, with the line of every field's key and value."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.lines: dict[str, int] = {}
        self.key_lines: dict[str, int] = {}

    def value(self, node: yaml.Node, where: str, *, typed: bool = False, depth: int = 0) -> Any:
        self.lines.setdefault(where, _line(node))
        if depth > MAX_DEPTH:
            self.problems.add(where, "nests too deep (a recursive alias?)", _line(node))
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:null":
                return None
            return _typed_scalar(node) if typed else node.value
        if isinstance(node, yaml.SequenceNode):
            return [
                self.value(item, f"{where}[{i}]", typed=typed, depth=depth + 1) for i, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.MappingNode)
        return self.mapping(node, where, typed=typed, depth=depth)

    def mapping(self, node: yaml.MappingNode, where: str, *, typed: bool, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if typed and not isinstance(key_node, yaml.ScalarNode):
                self.problems.add(where, "parameter keys must be strings", _line(key_node))
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            path = f"{where}.{key}" if where else key
            line = _line(key_node)
            if key in seen:
                message = f"key {key!r} already defined" + ("" if typed else f" at line {seen[key]}")
                self.problems.add(path, message, line)
                continue
            seen[key] = line
            self.key_lines[path] = line
            # A section's `parameters` holds free-form data; everything else in a Kitfile is text.
            out[key] = self.value(value_node, path, typed=typed or key == "parameters", depth=depth + 1)
        return out


def load_kitfile_text(text: str, *, folder: Path | None = None, source: str = "Kitfile") -> Kitfile:
    """Parse a Kitfile strictly (unknown keys, duplicate keys and wrong types rejected, as kit does)
    and validate it; every problem names its field and line. Raises BadInputError."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInputError(f"{source} is not valid YAML{where}: {exc}") from exc
    if root is None:
        raise BadInputError(f"{source} is empty.")
    problems = Problems()
    reader = _Reader(problems)
    value = reader.value(root, "")
    problems.lines, problems.key_lines = reader.lines, reader.key_lines
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        problems.add("Kitfile", f"must be a mapping, not {'a list' if isinstance(value, list) else 'a scalar'}", 1)
        problems.raise_if_any(source)
    kitfile = from_mapping(value, problems)
    problems.raise_if_any(source)
    check(kitfile, folder, problems)
    problems.raise_if_any(source)
    return kitfile
