"""Kitfile text in and out, as kit (go-yaml v3) reads and writes it.

Writing: PyYAML's emitter with go-yaml's encoder choices: a string is written plain only where go-yaml
reads it back as that same string (:func:`goyaml.plain_reads_as_string`), else quoted; a character
go-yaml's emitter does not print (outside the BMP, C1 controls, U+FEFF) forces double quotes with an
escape; strings holding a line break that YAML 1.1 readers fold (U+0085, U+2028, U+2029) are
double-quoted with escapes. Block style, indented sequences, ``package.authors`` in flow style.

Reading: the document is composed into nodes (libyaml's parser, as go-yaml is a port of it: tabs,
escapes and line breaks are scanned alike), each plain scalar tagged by go-yaml's rules; then turned
into plain values as go-yaml's decoder fills kit's structs: a string field gets a scalar's text, the
free-form ``parameters`` get go-yaml's types (:func:`goyaml.resolve`), merge keys (``<<``) are applied,
null items of a list of strings or entries are dropped, only the first document is read. What go-yaml
refuses is refused here too (a ``%YAML`` directive other than 1.1, the escape ``\\/``, parameters with
keys that are not strings, which kit cannot write into its JSON config). Those values go to the one
validator in :mod:`kitmlflow_tui.core.kitfile.model`, with the line of every field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.file_tree import FileTree
from kitmlflow_tui.core.kitfile import goyaml
from kitmlflow_tui.core.kitfile.model import Kitfile, Problems, canonical_kitfile, check, from_mapping

MAX_DEPTH = 100

# ---- dumping ----


class _FlowList(list[Any]):  # kit writes package.authors in flow style
    pass


def _go_tag(kind: Any, value: Any, implicit: tuple[bool, bool]) -> str:
    """The tag of a node without an explicit one, as go-yaml gives it: a plain scalar by go-yaml's rules
    (``<<`` is a merge key), a quoted one a string."""
    if kind is yaml.ScalarNode:
        if implicit[0]:
            return goyaml.MERGE if value == "<<" else goyaml.resolve(None, value)[0]
        return goyaml.STR
    return goyaml.SEQ if kind is yaml.SequenceNode else goyaml.MAP


def _printed_by_go_yaml(char: str) -> bool:
    """go-yaml's emitter ``is_printable``: what it may write as is (no astral characters, C1 controls, BOM)."""
    return (
        char == "\n"
        or " " <= char <= "~"
        or "\xa0" <= char <= "\ud7ff"
        or ("\ue000" <= char <= "\ufffd" and char != "\ufeff")
    )


class _KitDumper(yaml.SafeDumper):
    """YAML as kit's encoder (go-yaml v3, indent 2) writes it: indented sequences, no wrapping."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        return _go_tag(kind, value, implicit)

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)
        if not all(_printed_by_go_yaml(char) for char in scalar):
            # go-yaml's "special characters": only a double-quoted scalar, with escapes, can hold them.
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis


_FOLDED_BREAKS = re.compile("[\x85\u2028\u2029]")  # line breaks to YAML 1.1 readers, even inside quotes


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if _FOLDED_BREAKS.search(value) or ("\n" not in value and not goyaml.plain_reads_as_string(value)):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar(goyaml.STR, value, style=style)


def _represent_flow_list(dumper: yaml.SafeDumper, value: _FlowList) -> yaml.SequenceNode:
    return dumper.represent_sequence(goyaml.SEQ, value, flow_style=True)


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


# ---- reading as kit reads ----


class _KitfileLoader(safe_yaml.NodeLoader):
    """The bounded loader (alias expansion, nodes, depth and size capped), tagging plain scalars as go-yaml
    does. Any tag is allowed: go-yaml keeps the text of a scalar with a tag it does not know (nothing is
    built from a tag here). libyaml's parser, when present, scans as go-yaml (a port of libyaml) does."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        return _go_tag(kind, value, implicit)

    def tag_allowed(self, tag: str) -> bool:
        return True


def _compose_first_document(text: str) -> yaml.Node | None:
    """The first document's nodes, as kit's decoder reads only that one. go-yaml knows YAML 1.1 only."""
    safe_yaml.check_size(text)
    loader = _KitfileLoader(text)
    try:
        if not loader.check_node():
            return None
        start = loader.peek_event()
        version = getattr(start, "version", None)
        if version is not None and tuple(version) != (1, 1):
            raise yaml.MarkedYAMLError(
                problem=f"found incompatible YAML document (%YAML {version[0]}.{version[1]}; kit reads YAML 1.1)",
                problem_mark=getattr(start, "start_mark", None),
            )
        return loader.get_node()
    finally:
        loader.dispose()


# An odd run of backslashes before "/": the escape \/ (YAML 1.2), which go-yaml does not know.
_SLASH_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\/")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _is_merge(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "<<" and node.tag == goyaml.MERGE


class _Reader:
    """YAML nodes → plain values as go-yaml's decoder fills kit's structs, with the line of every field.

    Outside ``parameters`` every value is a string field, a list of them, or a section (text mode);
    inside, values are typed (typed mode)."""

    def __init__(self, text: str, problems: Problems) -> None:
        self.text = text
        self.problems = problems
        self.lines: dict[str, int] = {}
        self.key_lines: dict[str, int] = {}

    def value(self, node: yaml.Node, where: str, *, typed: bool = False, depth: int = 0) -> Any:
        self.lines.setdefault(where, _line(node))
        if depth > MAX_DEPTH:
            self.problems.add(where, "nests too deep (a recursive alias?)", _line(node))
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, where, typed=typed)
        if isinstance(node, yaml.SequenceNode):
            items = [
                self.value(item, f"{where}[{i}]", typed=typed, depth=depth + 1) for i, item in enumerate(node.value)
            ]
            # A null item of a list of strings or of entries is dropped by go-yaml; a parameter list keeps it.
            return items if typed else [item for item in items if item is not None]
        assert isinstance(node, yaml.MappingNode)
        return self.mapping(node, where, typed=typed, depth=depth, out={}, merged=None)

    def scalar(self, node: yaml.ScalarNode, where: str, *, typed: bool) -> Any:
        if node.style == '"' and _SLASH_ESCAPE.search(self.source_of(node)):
            self.problems.add(where, "the escape \\/ is YAML 1.2; kit's YAML reader refuses it (write /)", _line(node))
            return None
        try:
            tag, value = goyaml.resolve(node.tag, node.value)
        except goyaml.GoYamlError as exc:
            self.problems.add(where, str(exc), _line(node))
            return None
        if tag == goyaml.NULL:
            return None
        if not typed:
            return value if tag == goyaml.BINARY else node.value
        if isinstance(value, goyaml.Timestamp):
            if value.rfc3339 is None:
                self.problems.add(where, f"kit cannot write the timestamp {value.text} into its JSON config "
                                  "(a zone of 24 hours or more)", _line(node))  # fmt: skip
            return value.rfc3339
        return value

    def source_of(self, node: yaml.Node) -> str:
        start, end = node.start_mark.index, node.end_mark.index
        text = self.text
        if text[start : start + 1] != '"' and text.startswith("\ufeff"):
            text = text[1:]  # libyaml's marks do not count a byte order mark
        return text[start:end]

    def key_text(self, node: yaml.Node) -> str | None:
        """A key as go-yaml decodes it into a string: its text (a !!binary one decoded), None for a null."""
        if not isinstance(node, yaml.ScalarNode):
            return str(node.value)
        value = self.scalar(node, "", typed=False)
        return value if value is None else str(value)

    def mapping(
        self, node: yaml.MappingNode, where: str, *, typed: bool, depth: int, out: dict[str, Any],
        merged: set[str] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """``node``'s pairs into ``out``. ``merged`` (inside a merge) holds the keys already set, which win."""
        seen: dict[tuple[type, str], int] = {}
        merge_value: yaml.Node | None = None
        for key_node, value_node in node.value:
            line = _line(key_node)
            identity = (type(key_node), key_node.value if isinstance(key_node, yaml.ScalarNode) else "")
            if identity in seen:  # go-yaml compares every key's kind and text, before anything is decoded
                key_path = f"{where}.{key_node.value}" if where else str(key_node.value)
                message = f"key {key_node.value!r} already defined" + ("" if typed else f" at line {seen[identity]}")
                self.problems.add(key_path, message, line)
                continue
            seen[identity] = line
            if _is_merge(key_node):
                merge_value = value_node
                continue
            if typed and merged is None and not self._is_string_key(key_node):
                self.problems.add(
                    where, f"parameter key {key_node.value!r} is not a string (kit cannot store it in JSON)", line
                )
                continue
            key = self.key_text(key_node)
            if key is None:  # a null key sets no field of a struct
                continue
            if merged is not None:
                if key in merged:
                    continue
                merged.add(key)
            path = f"{where}.{key}" if where else key
            self.key_lines.setdefault(path, line)
            # A section's `parameters` holds free-form data; everything else in a Kitfile is text.
            out[key] = self.value(value_node, path, typed=typed or key == "parameters", depth=depth + 1)
        if merge_value is not None:
            self.merge(node, merge_value, where, typed=typed, depth=depth, out=out, merged=merged)
        return out

    def merge(
        self, parent: yaml.MappingNode, value: yaml.Node, where: str, *, typed: bool, depth: int,
        out: dict[str, Any], merged: set[str] | None,
    ) -> None:  # fmt: skip
        """A merge key: the pairs of a mapping (or of each of a list of mappings, the first one winning)
        that ``parent`` does not set itself."""
        if merged is None:
            merged = {key for key in (self.key_text(k) for k, _ in parent.value) if key is not None}
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        mappings = [source for source in sources if isinstance(source, yaml.MappingNode)]
        if len(mappings) != len(sources):
            self.problems.add(where, "a merge (<<) needs a mapping or a list of mappings", _line(value))
            return
        for source in mappings:
            self.mapping(source, where, typed=typed, depth=depth + 1, out=out, merged=merged)

    @staticmethod
    def _is_string_key(node: yaml.Node) -> bool:
        # go-yaml makes a map[string]any only when every key is a string (else kit's JSON encoder fails).
        return isinstance(node, yaml.ScalarNode) and node.tag in (goyaml.STR, goyaml.MERGE)


def load_kitfile_text(text: str, *, folder: FileTree | Path | None = None, source: str = "Kitfile") -> Kitfile:
    """Parse a Kitfile strictly (unknown keys, duplicate keys and wrong types rejected, as kit does)
    and validate it; every problem names its field and line. Raises BadInputError."""
    try:
        root = _compose_first_document(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInputError(f"{source} is not valid YAML{where}: {exc}") from exc
    if root is None:
        raise BadInputError(f"{source} is empty.")
    problems = Problems()
    reader = _Reader(text, problems)
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
