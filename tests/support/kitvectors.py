"""The recorded kit vectors: what the real kit produced for a committed corpus of inputs.

``tests/kit_vectors/`` holds the inputs (folders described as data, Kitfile texts, YAML scalars,
``-t`` references, license texts) and what kit 1.7.0 made of each (``recorded/``). The CI tests
compare kitmlflow's side against the recordings without kit; ``scripts/record-kit-vectors.py``
regenerates them with the real binary. This module is the one place that reads the vectors and
turns a folder description into a real folder, so the tests and the recorder build the same bytes.
See tests/kit_vectors/README.md for the layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parents[1]
VECTORS = TESTS / "kit_vectors"
INPUTS = VECTORS / "inputs"
RECORDED = VECTORS / "recorded"
LICENSES = VECTORS / "licenses"
KITINIT_CORPUS = TESTS / "kitinit_corpus"
CORPUS_LICENSES = KITINIT_CORPUS / "_licenses"
KITINIT_EXPECTED = "expected-kitfile.yaml"
KITINIT_PREFIX = "kitinit/"  # folder names of the tests/kitinit_corpus cases

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


# -- folders described as data ---------------------------------------------------------------------
def filler(size: int, seed: str | None = None) -> bytes:
    """A file's content: the kit init corpus's counting bytes, or a stream derived from ``seed``."""
    if seed is None:
        return bytes(i % 251 for i in range(size))
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _mode(value: Any, default: int) -> int:
    if value is None:
        return default
    return int(str(value), 8)  # written as an octal string ("4755"): YAML 1.1 and 1.2 read 0o... differently


def build_folder(description: Mapping[str, Any], dest: Path) -> Path:
    """Create the folder ``description`` names at ``dest`` (which must not exist) and return it.

    ``files``: path -> size (filler bytes) | {size, seed?, mode?} | {text, mode?} | {license: NAME}
    (a text of tests/kitinit_corpus/_licenses) | {license_sha256: HASH} (a text of the license corpus).
    ``dirs``: a list of paths, or path -> mode. ``symlinks``: link -> target. Every mode is set
    explicitly (files 0644, folders 0755 unless given), so the tar headers do not depend on the umask.
    """
    dest.mkdir(parents=True)
    dir_modes: dict[Path, int] = {dest: DEFAULT_DIR_MODE}

    def make_parents(path: Path) -> None:
        for parent in reversed(path.relative_to(dest).parents):
            folder = dest / parent
            folder.mkdir(exist_ok=True)
            dir_modes.setdefault(folder, DEFAULT_DIR_MODE)

    for rel, spec in (description.get("files") or {}).items():
        path = dest / rel
        make_parents(path)
        if isinstance(spec, int):
            spec = {"size": spec}
        if "text" in spec:
            path.write_bytes(spec["text"].encode("utf-8"))
        elif "license" in spec:
            shutil.copyfile(CORPUS_LICENSES / f"{spec['license']}.txt", path)
        elif "license_sha256" in spec:
            path.write_bytes(license_text(spec["license_sha256"]))
        else:
            path.write_bytes(filler(spec["size"], spec.get("seed")))
        os.chmod(path, _mode(spec.get("mode"), DEFAULT_FILE_MODE))
    dirs = description.get("dirs") or {}
    for rel in dirs:
        folder = dest / rel
        make_parents(folder / "x")
        dir_modes[folder] = _mode(dirs[rel] if isinstance(dirs, Mapping) else None, DEFAULT_DIR_MODE)
    for link, target in (description.get("symlinks") or {}).items():
        make_parents(dest / link)
        (dest / link).symlink_to(target)
    for folder in sorted(dir_modes, key=lambda p: len(p.parts), reverse=True):  # read-only folders last
        os.chmod(folder, dir_modes[folder])
    return dest


# -- reading the vectors -----------------------------------------------------------------------------
def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dump_json(value: Any) -> str:
    """How every recorded JSON file is written (stable, readable diffs)."""
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class KitVersion:
    version: str
    commit: str
    built: str

    def describe(self) -> str:
        return f"kit {self.version}, commit {self.commit}"


@cache
def kit_version() -> KitVersion:
    """The kit that produced the recordings (``kit version`` of the recording run)."""
    return KitVersion(**_json(VECTORS / "kit.json"))


@cache
def folders() -> dict[str, dict[str, Any]]:
    """Every folder description: inputs/folders.yaml, then the kit init corpus cases as ``kitinit/CASE``."""
    found = dict(_yaml(INPUTS / "folders.yaml")["folders"])
    for case in sorted(p.parent.name for p in KITINIT_CORPUS.glob("*/case.yaml")):
        found[KITINIT_PREFIX + case] = _yaml(KITINIT_CORPUS / case / "case.yaml")
    return found


def kit_init_kitfile(folder: str) -> str:
    """The Kitfile ``cd FOLDER && kit init .`` wrote (the kit init corpus keeps its own files)."""
    if folder.startswith(KITINIT_PREFIX):
        lines = (KITINIT_CORPUS / folder.removeprefix(KITINIT_PREFIX) / KITINIT_EXPECTED).read_text(encoding="utf-8")
        return "".join(line for line in lines.splitlines(keepends=True) if not line.startswith("#"))
    return _recorded_init()[folder]


@cache
def _recorded_init() -> dict[str, str]:
    return _json(RECORDED / "init.json")


@dataclass(frozen=True)
class PackCase:
    """What one ``kit pack`` was given: a folder, a Kitfile (a mapping written as JSON, a YAML text,
    or the one kit init wrote for the folder), a tag and a compression."""

    name: str
    folder: str
    tag: str
    compression: str
    kitfile: dict[str, Any] | None = None  # given to kit as JSON text, to pack_native as is
    kitfile_text: str | None = None  # given to both as this text
    from_init: bool = False

    def text_for_kit(self) -> str:
        if self.kitfile is not None:
            return json.dumps(self.kitfile, ensure_ascii=False, indent=1) + "\n"
        if self.kitfile_text is not None:
            return self.kitfile_text
        return kit_init_kitfile(self.folder)


@cache
def pack_cases() -> dict[str, PackCase]:
    """The packs of inputs/packs.yaml and inputs/kitfiles.yaml, then one per folder with kit init's Kitfile."""
    cases: dict[str, PackCase] = {}
    for name, spec in _yaml(INPUTS / "packs.yaml")["packs"].items():
        cases[name] = PackCase(
            name=name,
            folder=spec["folder"],
            tag=spec.get("tag", f"kitvectors/{name}:v1"),
            compression=spec.get("compression", "none"),
            kitfile=spec.get("kitfile"),
            kitfile_text=spec.get("kitfile_text"),
        )
    for name, spec in kitfile_texts().items():
        cases[f"kitfile/{name}"] = PackCase(
            name=f"kitfile/{name}", folder=spec["folder"], tag="kitvectors/kitfile:v1", compression="none",
            kitfile_text=kitfile_text(name),
        )  # fmt: skip
    for folder in folders():
        name = f"init/{folder}"
        tag = "kitvectors/init:v1"
        cases[name] = PackCase(name=name, folder=folder, tag=tag, compression="none", from_init=True)
    return cases


@cache
def kitfile_texts() -> dict[str, dict[str, Any]]:
    """inputs/kitfiles.yaml: Kitfile texts (YAML features, tricky scalars, errors) -> {folder, text, note}."""
    return dict(_yaml(INPUTS / "kitfiles.yaml")["kitfiles"])


def kitfile_text(name: str) -> str:
    """The exact text of a Kitfile of inputs/kitfiles.yaml, with the bytes a YAML block cannot hold."""
    spec = kitfile_texts()[name]
    text: str = spec["text"]
    if spec.get("tabs"):
        text = text.replace("<TAB>", "\t")
    if spec.get("crlf"):
        text = text.replace("\n", "\r\n")
    if spec.get("bom"):
        text = "\ufeff" + text
    return text


@dataclass(frozen=True)
class LayerRecord:
    media_type: str
    digest: str
    size: int
    diff_id: str
    entries: tuple[str, ...]  # "MODE TYPE SIZE NAME" of each tar entry, in order


@dataclass(frozen=True)
class PackRecord:
    """What kit pack (and kit inspect on the result) gave for one PackCase; ``error`` when it refused."""

    name: str
    error: str | None
    manifest: bytes = b""
    manifest_digest: str = ""
    config: bytes | None = None  # the bytes when small, else only the digest and size
    config_digest: str = ""
    config_size: int = 0
    layers: tuple[LayerRecord, ...] = ()
    inspect: Mapping[str, Any] | None = None

    @property
    def config_value(self) -> Any:
        return None if self.config is None else json.loads(self.config)


def _pack_record(name: str, data: Mapping[str, Any]) -> PackRecord:
    if data.get("error") is not None:
        return PackRecord(name=name, error=data["error"])
    config = data.get("config")
    return PackRecord(
        name=name,
        error=None,
        manifest=data["manifest"].encode("utf-8"),
        manifest_digest=data["manifest_digest"],
        config=None if config is None else config.encode("utf-8"),
        config_digest=data["config_digest"],
        config_size=data["config_size"],
        layers=tuple(
            LayerRecord(layer["mediaType"], layer["digest"], layer["size"], layer["diffId"], tuple(layer["entries"]))
            for layer in data["layers"]
        ),
        inspect=data["inspect"],
    )


def pack_record_path(name: str) -> Path:
    return RECORDED / "packs" / (name.replace("/", "__") + ".json")


def pack_record(name: str) -> PackRecord:
    return _pack_record(name, _json(pack_record_path(name)))


# -- scalars: how go-yaml read each spelling of a string ------------------------------------------------
SCALAR_CONTEXTS = ("param", "field")


def scalar_kitfile(spelling: str, context: str) -> str:
    """The Kitfile a scalar spelling was recorded in: as a free-form parameter (``model.parameters.v``,
    kit's ``any``) or as a string field (``package.description``). Block scalars are indented here."""
    if context == "param":
        head, indent = "manifestVersion: 1.0.0\nmodel:\n  path: m.bin\n  parameters:\n    v: ", "      "
    else:
        head, indent = "manifestVersion: 1.0.0\npackage:\n  description: ", "    "
    first, *rest = spelling.split("\n")
    body = "".join("\n" + (indent + line if line else "") for line in rest)
    tail = "" if context == "param" else "model:\n  path: m.bin\n"
    return head + first + body + "\n" + tail


SCALAR_FOLDER = "scalar"  # the folder every scalar Kitfile is packed with


@dataclass(frozen=True)
class SpellingRecord:
    style: str  # plain, json (a JSON string), pydouble (PyYAML's double-quoted), single, literal
    text: str
    context: str  # "param" or "field"
    error: str | None  # kit refused the Kitfile
    config_digest: str  # of the config kit wrote
    present: bool  # the value is in kit's config (a null parameter is; an empty string field is not)
    value: Any  # what kit's config holds there (JSON), None when absent

    def kitfile(self) -> str:
        return scalar_kitfile(self.text, self.context)


@dataclass(frozen=True)
class ScalarRecord:
    value: str  # the string (an MLflow param, a user's text)
    spellings: tuple[SpellingRecord, ...]


@cache
def scalar_records() -> tuple[ScalarRecord, ...]:
    return tuple(
        ScalarRecord(item["value"], tuple(SpellingRecord(**s) for s in item["spellings"]))
        for item in _json(RECORDED / "scalars.json")
    )


def yaml_spellings(value: str) -> dict[str, str]:
    """Ways to write ``value`` as a YAML scalar (a spelling may not read back as ``value``: plain ``1e-05``
    is a number to go-yaml; recording what kit makes of each spelling is the point)."""
    spellings: dict[str, str] = {}
    if "\n" not in value and "\r" not in value:
        spellings["plain"] = value
    spellings["json"] = json.dumps(value, ensure_ascii=False)
    spellings["pydouble"] = _pyyaml_scalar(value, '"')
    if value.isprintable() and "\n" not in value:
        spellings["single"] = "'" + value.replace("'", "''") + "'"
    if "\n" in value and all(char.isprintable() or char == "\n" for char in value):
        literal = _pyyaml_scalar(value, "|")
        if literal.startswith("|"):  # PyYAML falls back to quotes where a block cannot hold the text
            spellings["literal"] = literal
    unique: dict[str, str] = {}
    for style, text in spellings.items():
        if text not in unique.values():
            unique[style] = text
    return unique


def _pyyaml_scalar(value: str, style: str) -> str:
    text = yaml.dump(value, default_style=style, allow_unicode=True, width=2**31 - 1)
    text = text.removesuffix("\n").removesuffix("\n...")
    lines = text.split("\n")
    if style == "|":
        return "\n".join([lines[0], *(line.removeprefix("  ") for line in lines[1:])])
    return text


# -- references: what kit accepts and resolves -----------------------------------------------------------
REFERENCE_COMMANDS = ("inspect", "unpack", "tag_source", "push_source")


@dataclass(frozen=True)
class ReferenceRecord:
    """kit pack -t TAG in an empty storage: accepted or not, the names kit list shows, and for each
    candidate name whether kit inspect, kit unpack, kit tag (as the source) and kit push (as the
    source) find the ModelKit."""

    tag: str
    packed: bool
    error: str | None
    listed: tuple[str, ...]
    storage: Mapping[str, tuple[str, ...]]  # registry/repository -> tags, as kit's storage files name them
    resolves: Mapping[str, Mapping[str, bool]]  # name -> command -> found

    def resolved_by(self, command: str) -> set[str]:
        return {name for name, found in self.resolves.items() if found[command]}


@cache
def reference_records() -> dict[str, ReferenceRecord]:
    return {
        item["tag"]: ReferenceRecord(
            tag=item["tag"],
            packed=item["packed"],
            error=item.get("error"),
            listed=tuple(item.get("listed", ())),
            storage={repo: tuple(tags) for repo, tags in item.get("storage", {}).items()},
            resolves=item.get("resolves", {}),
        )
        for item in _json(RECORDED / "references.json")
    }


# -- license texts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LicenseRecord:
    sha256: str
    file: str  # under tests/kit_vectors/licenses/texts/
    sources: tuple[str, ...]  # where the text was found (package/path)
    kit: str  # the SPDX id kit init put on the model, "" for none

    def text(self) -> bytes:
        return (LICENSES / "texts" / self.file).read_bytes()


@cache
def license_records() -> tuple[LicenseRecord, ...]:
    return tuple(
        LicenseRecord(item["sha256"], item["file"], tuple(item["sources"]), item.get("kit", ""))
        for item in _json(LICENSES / "index.json")
    )


def license_text(sha256: str) -> bytes:
    for record in license_records():
        if record.sha256 == sha256:
            return record.text()
    raise KeyError(sha256)


# -- generated examples (the recorded twins of the Hypothesis tests that need kit) ---------------------
@cache
def generated_packs() -> tuple[dict[str, Any], ...]:
    """Each: {name, folder (a description), kitfile (a mapping), digest (kit's manifest digest)}."""
    return tuple(_json(RECORDED / "generated-packs.json"))


@cache
def generated_inits() -> tuple[dict[str, Any], ...]:
    """Each: {name, folder (a description), kitfile (the text kit init wrote)}."""
    return tuple(_json(RECORDED / "generated-inits.json"))


def tar_entries(tar: bytes) -> list[str]:
    """The "MODE TYPE SIZE NAME" line of each entry of an uncompressed tar, as the pack records list them."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return [f"{m.mode:04o} {'d' if m.isdir() else 'f'} {m.size} {m.name}" for m in archive.getmembers()]


def storage_blob(home: Path, digest: str) -> bytes:
    """A blob of the kit storage in the kit home ``home``."""
    return (home / "storage" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def iter_pack_records() -> Iterator[tuple[PackCase, PackRecord]]:
    for name, case in pack_cases().items():
        yield case, pack_record(name)
