"""The Kitfile as typed values, and the one validator that turns a mapping into them.

Each section of kit's schema is a frozen dataclass whose fields are kit's keys in kit's order (the
order its YAML encoder writes). The schema is read from those dataclasses, so there is no second
description of it: :func:`from_mapping` checks a mapping against it (unknown keys, wrong types,
every problem named with its field and, when known, its line), :meth:`Kitfile.to_dict` writes the
canonical mapping, and :func:`check` applies kit's rules over the whole value (manifest version,
part types, duplicate and escaping paths, paths missing from the folder).

Text fields are ``str | None`` (kit's decoder reads any YAML scalar there as its text);
``parameters`` is free-form JSON-compatible data.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.file_tree import FileTree, as_tree

MANIFEST_VERSION = "1.0.0"
PART_TYPE_MAX_LEN = 64
KITFILE_FORMAT_HINT = "See https://kitops.org/docs/kitfile/format/ for the Kitfile format."


@dataclass(frozen=True)
class Package:
    name: str | None = None
    version: str | None = None
    description: str | None = None
    license: str | None = None
    authors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelPart:
    name: str | None = None
    path: str | None = None
    license: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Model:
    name: str | None = None
    path: str | None = None
    license: str | None = None
    framework: str | None = None
    format: str | None = None
    version: str | None = None
    description: str | None = None
    parts: tuple[ModelPart, ...] = ()
    parameters: Any = None


@dataclass(frozen=True)
class CodeEntry:
    path: str | None = None
    description: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class DatasetEntry:
    name: str | None = None
    path: str | None = None
    description: str | None = None
    license: str | None = None
    parameters: Any = None


@dataclass(frozen=True)
class DocsEntry:
    KEEP_EMPTY: ClassVar[frozenset[str]] = frozenset({"path"})  # kit writes `path: ""` for docs
    path: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class PromptEntry:
    path: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Kitfile:
    KEEP_EMPTY: ClassVar[frozenset[str]] = frozenset({"manifestVersion", "model"})
    manifest_version: str | None = field(default=None, metadata={"key": "manifestVersion"})
    package: Package | None = None
    model: Model | None = None
    code: tuple[CodeEntry, ...] = ()
    datasets: tuple[DatasetEntry, ...] = ()
    docs: tuple[DocsEntry, ...] = ()
    # kit 1.7.0 rejects `prompts`; later kits accept it (and the native packer writes it).
    prompts: tuple[PromptEntry, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        package: Package | None,
        model: Model | None,
        code: Sequence[CodeEntry] = (),
        datasets: Sequence[DatasetEntry] = (),
        docs: Sequence[DocsEntry] = (),
    ) -> Kitfile:
        """A Kitfile of this manifest version, as kit init and the builder write them."""
        return cls(MANIFEST_VERSION, package, model, tuple(code), tuple(datasets), tuple(docs))

    def to_dict(self) -> dict[str, Any]:
        """The canonical mapping: kit's key order, empty fields left out, as kit's YAML encoder writes it."""
        return _section_to_dict(self)

    def entries(self) -> list[tuple[str, str]]:
        """(field, path) of every entry that becomes a layer, in kit's layer order."""
        found: list[tuple[str, str]] = []
        if self.model is not None:
            found.append(("model.path", self.model.path or ""))
            found += [(f"model.parts[{i}].path", part.path or "") for i, part in enumerate(self.model.parts)]
        for key in ("code", "datasets", "docs", "prompts"):
            found += [(f"{key}[{i}].path", entry.path or "") for i, entry in enumerate(getattr(self, key))]
        return found


Section = Kitfile | Package | Model | ModelPart | CodeEntry | DatasetEntry | DocsEntry | PromptEntry
S = TypeVar("S", Kitfile, Package, Model, ModelPart, CodeEntry, DatasetEntry, DocsEntry, PromptEntry)


# -- the schema, read from the dataclasses ---------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    key: str  # kit's key
    attribute: str
    kind: str  # "text", "texts", "parameters", "section", "sections"
    section: type | None = None  # the dataclass of a section or of a list's items


_SCHEMAS: dict[type, tuple[_Field, ...]] = {}


def schema(cls: type) -> tuple[_Field, ...]:
    """The fields of a section in kit's order."""
    if cls not in _SCHEMAS:
        _SCHEMAS[cls] = _read_schema(cls)
    return _SCHEMAS[cls]


def _read_schema(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        if hint is Any:
            kind, section = "parameters", None
        elif typing.get_origin(hint) is tuple:
            kind, section = ("texts", None) if args == [str] else ("sections", args[0])
        elif args == [str]:
            kind, section = "text", None
        else:
            kind, section = "section", args[0]
        out.append(_Field(item.metadata.get("key", item.name), item.name, kind, section))
    return tuple(out)


# -- writing ---------------------------------------------------------------------------------------


def _section_to_dict(value: Section) -> dict[str, Any]:
    keep: frozenset[str] = getattr(value, "KEEP_EMPTY", frozenset())
    out: dict[str, Any] = {}
    for item in schema(type(value)):
        raw = getattr(value, item.attribute)
        if raw is None:
            continue
        if item.kind == "section":
            written: Any = _section_to_dict(raw)
        elif item.kind == "sections":
            written = [_section_to_dict(v) for v in raw]
        elif item.kind == "texts":
            written = list(raw)
        else:
            written = raw
        if _is_empty(written) and item.key not in keep:
            continue
        out[item.key] = written
    return out


def canonical_kitfile(kitfile: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Kitfile mapping in kit's key order with empty fields left out.

    Keys kit does not know are kept at the end of their section, so validation can name them.
    """
    return _canonical(kitfile, Kitfile)


def _canonical(section: Mapping[str, Any], cls: type) -> dict[str, Any]:
    fields = {f.key: f for f in schema(cls)}
    keep: frozenset[str] = getattr(cls, "KEEP_EMPTY", frozenset())
    ordered = [k for k in fields if k in section] + [k for k in section if k not in fields]
    out: dict[str, Any] = {}
    for key in ordered:
        value = section[key]
        item = fields.get(key)
        if item is not None and item.kind == "section" and isinstance(value, Mapping):
            value = _canonical(value, typing.cast(type, item.section))
        elif item is not None and item.kind == "sections" and isinstance(value, list | tuple):
            value = [_canonical(v, typing.cast(type, item.section)) if isinstance(v, Mapping) else v for v in value]
        elif isinstance(value, tuple):
            value = list(value)
        if value is None or (_is_empty(value) and key not in keep):
            continue
        out[key] = value
    return out


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple | dict) and not value)


# -- the validator ---------------------------------------------------------------------------------


class Problems:
    """Collects every issue (kit reports them all at once), each naming its field and, if known, line."""

    def __init__(self, lines: Mapping[str, int] | None = None, key_lines: Mapping[str, int] | None = None) -> None:
        self.lines = lines or {}  # field -> line of its value (from the YAML it was read from)
        self.key_lines = key_lines or self.lines  # field -> line of its key
        self.items: list[str] = []

    def add(self, where: str, message: str, line: int | None = None, *, at_key: bool = False) -> None:
        line = line if line is not None else (self.key_lines if at_key else self.lines).get(where)
        prefix = f"line {line}: " if line is not None else ""
        self.items.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")

    def raise_if_any(self, source: str) -> None:
        if self.items:
            listing = "\n".join(f"  * {item}" for item in self.items)
            raise BadInputError(f"{source} is not valid:\n{listing}", hint=KITFILE_FORMAT_HINT)


def validate_kitfile(
    kitfile: Kitfile | Mapping[str, Any],
    folder: FileTree | Path | None = None,
    *,
    source: str = "Kitfile",
) -> Kitfile:
    """The typed Kitfile of a mapping (or the Kitfile itself), checked as kit checks it: raises
    BadInputError naming every problem (and, with ``folder``, every path that does not exist in it)."""
    if not isinstance(kitfile, Kitfile):
        problems = Problems()
        kitfile = from_mapping(kitfile, problems)
        problems.raise_if_any(source)
    problems = Problems()
    check(kitfile, folder, problems)
    problems.raise_if_any(source)
    return kitfile


def from_mapping(value: Any, problems: Problems) -> Kitfile:
    """Read a mapping into a Kitfile; every type problem goes to ``problems`` (the value read is then partial)."""
    if not isinstance(value, Mapping):
        problems.add("", f"a Kitfile must be a mapping, not {type(value).__name__}")
        return Kitfile()
    return _read_section(value, Kitfile, "", problems)


def _read_section(value: Mapping[str, Any], cls: type[S], where: str, problems: Problems) -> S:
    fields = {f.key: f for f in schema(cls)}
    arguments: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        spec = fields.get(key)
        if spec is None:
            allowed = ", ".join(fields)
            problems.add(path, f"unknown key {key!r} in {where or 'the Kitfile'} (allowed: {allowed})", at_key=True)
            continue
        if item is not None:
            arguments[spec.attribute] = _read_field(item, spec, path, problems)
    return cls(**{k: v for k, v in arguments.items() if v is not None})


def _read_field(item: Any, spec: _Field, path: str, problems: Problems) -> Any:
    if spec.kind == "text":
        if isinstance(item, str):
            return item
        problems.add(path, f"must be a string, not {_kind_of(item)}")
        return None
    if spec.kind == "parameters":
        _check_json(item, path, problems, depth=0)
        return item
    if spec.kind == "section":
        if isinstance(item, Mapping):
            return _read_section(item, typing.cast(type, spec.section), path, problems)
        problems.add(path, f"must be a mapping, not {_kind_of(item)}")
        return None
    if not isinstance(item, list | tuple):
        problems.add(path, f"must be a list, not {_kind_of(item)}")
        return None
    read: list[Any] = []
    for index, element in enumerate(item):
        element_path = f"{path}[{index}]"
        if spec.kind == "texts":
            if isinstance(element, str):
                read.append(element)
            else:
                problems.add(element_path, f"must be a string, not {_kind_of(element)}")
        elif element is None or isinstance(element, Mapping):  # a bare "-" is an empty entry, as kit reads it
            read.append(_read_section(element or {}, typing.cast(type, spec.section), element_path, problems))
        else:
            problems.add(element_path, f"must be a mapping, not {_kind_of(element)}")
    return tuple(read)


def _kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "a scalar"
    return type(value).__name__


def _check_json(value: Any, where: str, problems: Problems, depth: int) -> None:
    if depth > 100:
        problems.add(where, "nests too deep (a recursive alias?)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(where, f"parameter keys must be strings, not {type(key).__name__}")
            _check_json(item, f"{where}.{key}", problems, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", problems, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.add(where, "NaN and infinities cannot be stored (kit keeps JSON)")
    elif not (value is None or isinstance(value, str | int | bool)):
        problems.add(where, f"{type(value).__name__} is not a JSON value")


_PART_TYPE = re.compile(r"\w[\w.-]*", re.ASCII)
_MANIFEST_VERSION = re.compile(r"v?1\.0(\.0)?")


def check(kitfile: Kitfile, folder: FileTree | Path | None, problems: Problems) -> None:
    """kit's rules over a whole Kitfile: manifest version, part types, and the paths of its entries (which must
    exist in ``folder``, a folder or a listing, when it is given)."""
    tree = as_tree(folder) if folder is not None else None
    version = kitfile.manifest_version
    if version is None:
        problems.add("manifestVersion", f"is required (kit init writes {MANIFEST_VERSION!r})")
    elif not _MANIFEST_VERSION.fullmatch(version):
        problems.add("manifestVersion", f"{version!r} is not a Kitfile version (use {MANIFEST_VERSION!r})")
    for index, part in enumerate(kitfile.model.parts if kitfile.model else ()):
        _check_part_type(part.type, f"model.parts[{index}].type", problems)
    first_use: dict[str, str] = {}
    for where, path in kitfile.entries():
        normalized = normalize_path(path.replace("\\", "/"))
        if normalized in first_use:
            problems.add(where, f"path {path or '.'!r} is already used by {first_use[normalized]}")
        else:
            first_use[normalized] = where.removesuffix(".path")
        if is_absolute(path):
            problems.add(where, f"absolute path {path!r} is not supported; paths are relative to the folder")
        elif normalized == ".." or normalized.startswith("../"):
            problems.add(where, f"path {path!r} leaves the folder")
        elif (
            tree is not None
            and not tree.exists(path)
            and not (where == "model.path" and _looks_like_modelkit_reference(path))
        ):
            problems.add(where, f"path {path!r} does not exist in {tree.describe()}")


def _check_part_type(part_type: str | None, where: str, problems: Problems) -> None:
    if not part_type:
        return
    if not _PART_TYPE.fullmatch(part_type):
        problems.add(
            where,
            f"{part_type!r} is not a valid part type (letters, digits, '_', '.', '-'; "
            "starting with a letter, digit or '_')",
        )
    if len(part_type.encode()) > PART_TYPE_MAX_LEN:
        problems.add(where, f"is longer than {PART_TYPE_MAX_LEN} characters")


def normalize_path(path: str) -> str:
    return posixpath.normpath(path) if path else "."


def is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:[\\/]", path))


def _looks_like_modelkit_reference(path: str) -> bool:
    # kit lets model.path name another ModelKit (registry/repo:tag or @digest) to build on.
    return ":" in path or "@" in path
