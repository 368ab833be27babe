"""Bounded YAML reading, for every YAML document kitmlflow did not write itself (profiles, a ``--kitfile``,
a run's ``MLmodel``).

PyYAML's safe loader refuses Python objects but nothing else: a 1 KB document of nested aliases ("billion
laughs") is a graph of a few dozen nodes that expands into 10^9 as soon as anything walks it, a document
can nest deeper than Python's recursion limit, and any size is read into memory. This loader composes the
same node graph as ``yaml.compose`` (libyaml's C parser when available, PyYAML's composer on top of it) and
refuses, with the line and column where the limit was crossed:

- more input than ``max_bytes``;
- more than ``max_nodes`` nodes *after alias expansion* (an alias counts every node of what it names), so a
  caller that walks the result never meets more than that many; an alias of a node still being composed
  (a recursive document) is refused too, it would expand forever;
- more than ``max_aliases`` aliases, and nesting (expanded) deeper than ``max_depth``;
- any tag outside YAML's core schema: ``!!python/object``, ``!!python/name:os.system``, ``!custom`` and
  the like are errors, not strings.

The errors are ``YamlRefused``, a ``yaml.MarkedYAMLError``, so a caller's ``except yaml.YAMLError`` and its
``problem_mark`` handling keep working unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.resolver import BaseResolver, Resolver

try:  # libyaml's parser: 6x faster than the pure-Python one; the composer on top of it stays ours
    from yaml._yaml import CParser

    _PARSER_BASES: tuple[type, ...] = (CParser,)

    def _start_parser(loader: Any, stream: str | bytes) -> None:
        CParser.__init__(loader, stream)

except ImportError:  # PyYAML built without libyaml (tested with libyaml hidden)
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    _PARSER_BASES = (Reader, Scanner, Parser)

    def _start_parser(loader: Any, stream: str | bytes) -> None:
        Reader.__init__(loader, stream)
        Scanner.__init__(loader)
        Parser.__init__(loader)


MiB = 1024 * 1024
_CORE = "tag:yaml.org,2002:"
# YAML 1.1's core schema as PyYAML's safe loader resolves it, nothing that builds an object of a language.
ALLOWED_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "binary", "merge")
)


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 8 * MiB
    max_nodes: int = 200_000  # after alias expansion
    max_aliases: int = 10_000
    max_depth: int = 64  # after alias expansion


DEFAULT_LIMITS = YamlLimits()


class YamlRefused(yaml.MarkedYAMLError):
    """A document over a limit, or with a tag outside the core schema. ``line``/``column`` are 1-based
    (``None`` for a document refused before parsing, by its size); ``nodes`` is how many nodes (expanded)
    had been composed when it stopped."""

    def __init__(self, problem: str, mark: Any = None, *, nodes: int = 0) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.nodes = nodes

    @property
    def line(self) -> int | None:
        return self.problem_mark.line + 1 if self.problem_mark is not None else None

    @property
    def column(self) -> int | None:
        return self.problem_mark.column + 1 if self.problem_mark is not None else None

    @property
    def where(self) -> str:
        """``line 3, column 5`` (empty when the document was refused before parsing)."""
        return f"line {self.line}, column {self.column}" if self.problem_mark is not None else ""


class _BoundedComposer(Composer):
    """PyYAML's composer, counting what it builds. Listed before the parser in the loader's bases, so its
    ``get_single_node`` is used and not libyaml's own composer (which cannot be bounded)."""

    limits: YamlLimits
    _nodes: int  # composed so far, aliases counted expanded
    _aliases: int
    _depth: int  # of the node being composed (the root is 1)
    _reach: int  # the deepest level (expanded) reached inside the node being composed
    _expanded: dict[yaml.Node, tuple[int, int]]  # anchored node -> (nodes, height), once it is complete

    peek_event: Any  # the parser's, from the loader's other bases

    def _start_bounds(self, limits: YamlLimits) -> None:
        self.limits = limits
        self._nodes = self._aliases = self._depth = self._reach = 0
        self._expanded = {}

    def _refuse(self, problem: str, mark: Any) -> YamlRefused:
        return YamlRefused(problem, mark, nodes=self._nodes)

    def _count(self, nodes: int, deepest: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > self.limits.max_nodes:
            raise self._refuse(f"more than {self.limits.max_nodes:,} values (counting what aliases repeat)", mark)
        if deepest > self.limits.max_depth:
            raise self._refuse(f"nested deeper than {self.limits.max_depth} levels", mark)
        self._reach = max(self._reach, deepest)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an unknown one is PyYAML's own error, raised below
                self._aliases += 1
                if self._aliases > self.limits.max_aliases:
                    raise self._refuse(f"more than {self.limits.max_aliases:,} aliases", event.start_mark)
                if target not in self._expanded:
                    raise self._refuse(f"alias *{event.anchor} refers to a value that contains it", event.start_mark)
                nodes, height = self._expanded[target]
                self._count(nodes, self._depth + height, event.start_mark)
            return super().compose_node(parent, index)
        outer_reach = self._reach
        self._depth += 1
        self._reach = 0
        self._count(1, self._depth, event.start_mark)
        before = self._nodes
        node = super().compose_node(parent, index)
        assert node is not None  # PyYAML's composer returns None only for an empty stream, never here
        height = self._reach - self._depth + 1
        self._depth -= 1
        self._reach = max(outer_reach, self._reach)
        if not self.tag_allowed(node.tag):
            raise self._refuse(
                f"the tag {_short(node.tag)} is not allowed (only plain YAML types are)", node.start_mark
            )
        if event.anchor is not None:
            self._expanded[node] = (self._nodes - before + 1, height)
        return node

    def tag_allowed(self, tag: str) -> bool:
        return tag in ALLOWED_TAGS


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Loader(_BoundedComposer, *_PARSER_BASES, SafeConstructor, Resolver):  # type: ignore[misc]
    def __init__(self, stream: str | bytes, limits: YamlLimits) -> None:
        _start_parser(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._start_bounds(limits)


class NodeLoader(_BoundedComposer, *_PARSER_BASES, BaseResolver):  # type: ignore[misc]
    """The bounded composer on the same parser, for a reader that walks the nodes itself: it overrides
    ``resolve`` (the tag of a scalar without one) and may widen ``tag_allowed``. The Kitfile reader does,
    to read a Kitfile as kit's YAML library does (kitfile/yaml_io.py). Call ``check_size`` first."""

    def __init__(self, stream: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> None:
        _start_parser(self, stream)
        Composer.__init__(self)
        BaseResolver.__init__(self)
        self._start_bounds(limits)


def check_size(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """Refuse (``YamlRefused``) a document larger than ``limits.max_bytes``."""
    _check_size(text, limits)


def _check_size(text: str | bytes, limits: YamlLimits) -> None:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise YamlRefused(f"the document is {size:,} bytes, more than the {limits.max_bytes:,} allowed")


def compose(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> yaml.Node | None:
    """The document's node graph (``None`` for an empty document), as ``yaml.compose`` gives it, within
    ``limits``. Raises ``YamlRefused`` for a limit or a tag, ``yaml.YAMLError`` for a syntax error."""
    _check_size(text, limits)
    loader = _Loader(text, limits)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load(text: str | bytes, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """``yaml.safe_load`` within ``limits``."""
    _check_size(text, limits)
    loader = _Loader(text, limits)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_text(path: str | os.PathLike[str], limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """A YAML file's text, reading no more than ``limits.max_bytes`` (+1, to know it is larger) into memory.
    ``OSError``/``UnicodeDecodeError`` pass through for the caller to word."""
    with open(Path(path), "rb") as stream:
        data = stream.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            size = os.fstat(stream.fileno()).st_size
            shown = f"{size:,} bytes" if size > limits.max_bytes else f"more than {limits.max_bytes:,} bytes"
            raise YamlRefused(f"the file is {shown}, more than the {limits.max_bytes:,} allowed")
    return data.decode("utf-8")
