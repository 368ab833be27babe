"""What ``kit init`` writes for a folder, rule for rule, and which files ``kit pack`` would drop.

The classifier mirrors ``pkg/lib/kitfile/generate`` of kit **v1.7.0** (commit
4147a72ef3a017973b6dd6ccd485c6ba6733a85e; identical at a041892867ad01e9bcfc5b21ebe574a7257a128b,
v1.7.0-19). Later kit releases changed ``kit init`` (prompt files, ``*pytorch_model*.bin`` instead of
every ``.bin``, unknown root files as separate code entries, trailing slashes on directories); this
module follows 1.7.0 because that is the kit we can build and check against, and the tests record its
real output in ``tests/kitinit_corpus``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path

from kitmlflow_tui.core.file_tree import FileTree, TreeEntry, as_tree
from kitmlflow_tui.core.kitfile.license import detect_license_id
from kitmlflow_tui.core.kitfile.model import CodeEntry, DatasetEntry, DocsEntry, Kitfile, Model, ModelPart, Package

KIT_INIT_VERSION = "1.7.0"
KIT_INIT_COMMIT = "4147a72ef3a017973b6dd6ccd485c6ba6733a85e"
KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")

# kit init's suffix tables (case-sensitive, checked in this order: model, metadata, docs, dataset).
MODEL_SUFFIXES = (
    ".safetensors", ".pkl", ".joblib",
    ".bin", ".pth", ".pt", ".mar", ".pt2", ".ptl",
    ".pb", ".ckpt", ".tflite", ".tfrecords",
    ".npy", ".npz",
    ".keras", ".h5", ".caffemodel", ".pmml", ".coreml",
    ".gguf", ".ggml", ".ggmf", ".llamafile", ".onnx",
)  # fmt: skip
METADATA_SUFFIXES = (".json", ".yaml", ".xml", ".txt")
DOCS_SUFFIXES = (".md", ".adoc", ".html", ".pdf")
DATASET_SUFFIXES = (".tar", ".zip", ".parquet", ".csv")
CODE_DIR_NAMES = ("src", "pkg", "lib", "build")
MAX_UNPROCESSED_DIRS = 5  # more unclassified subdirectories than this collapse code into "."


class _Kind(IntEnum):
    # Values and order are kit's: a directory's type is decided by walking them in this order.
    MODEL = 0
    DATASET = 1
    CODE = 2
    DOCS = 3
    METADATA = 4
    UNKNOWN = 5


@dataclass(frozen=True)
class _File:
    name: str
    path: str  # relative to the context folder, "/"-separated
    size: int


@dataclass
class _Dir:
    name: str
    path: str
    files: list[_File] = field(default_factory=list)
    subdirs: list[_Dir] = field(default_factory=list)


def _file_kind(name: str) -> _Kind:
    if name.endswith(MODEL_SUFFIXES):
        return _Kind.MODEL
    if name.endswith(METADATA_SUFFIXES):
        return _Kind.METADATA
    if name.endswith(DOCS_SUFFIXES):
        return _Kind.DOCS
    if name.endswith(DATASET_SUFFIXES):
        return _Kind.DATASET
    return _Kind.UNKNOWN


def _sorted_entries(tree: FileTree, folder: str) -> list[TreeEntry]:
    # os.ReadDir sorts by name as Go compares strings: bytewise on UTF-8.
    return sorted(tree.entries(folder), key=lambda e: e.name.encode("utf-8", "surrogateescape"))


def _list_tree(tree: FileTree, rel: str = ".", ignore: frozenset[str] = frozenset()) -> _Dir:
    """The folder as kit lists it: regular files and directories only (symlinks are skipped)."""
    listing = _Dir(name=posixpath.basename(rel) if rel != "." else ".", path=rel)
    for entry in _sorted_entries(tree, "" if rel == "." else rel):
        child = entry.name if rel == "." else f"{rel}/{entry.name}"
        if child in ignore:
            continue
        if entry.kind == "dir":
            listing.subdirs.append(_list_tree(tree, child, ignore))
        elif entry.kind == "file":
            listing.files.append(_File(entry.name, child, entry.size))
    return listing


@dataclass
class Classification:
    """kit init's result plus what it knew on the way, so MLflow corrections can re-apply its rules."""

    model: Model | None = None
    code: list[CodeEntry] = field(default_factory=list)
    datasets: list[DatasetEntry] = field(default_factory=list)
    docs: list[DocsEntry] = field(default_factory=list)
    root_metadata: list[str] = field(default_factory=list)  # root metadata files (parts or datasets)
    license_id: str = ""  # what the last root license file was detected as ("" when unknown)
    package_license: str = ""

    def as_kitfile(self) -> Kitfile:
        package = Package(license=self.package_license) if self.package_license else None
        return Kitfile.of(package=package, model=self.model, code=self.code, datasets=self.datasets, docs=self.docs)


def _classify_subdir(result: Classification, subdir: _Dir) -> tuple[list[_File], bool]:
    """One first-level directory, as kit's addDirToKitfile. Returns (model files, understood?).

    Model files are returned even for a mixed directory: kit then makes the directory a code entry
    AND picks its weights as model files.
    """
    if subdir.name == "docs":
        result.docs.append(DocsEntry(path=subdir.path))
        return [], True
    if subdir.name in CODE_DIR_NAMES:
        result.code.append(CodeEntry(path=subdir.path))
        return [], True

    kinds_present = {_Kind.UNKNOWN} if subdir.subdirs else set()
    model_files: list[_File] = []
    metadata_files: list[_File] = []
    for file in subdir.files:
        kind = _file_kind(file.name)
        kinds_present.add(kind)
        if kind is _Kind.MODEL:
            model_files.append(file)
        elif kind is _Kind.METADATA:
            metadata_files.append(file)
    kinds_present.discard(_Kind.METADATA)
    if len(kinds_present) > 1:
        return model_files, False
    kind = kinds_present.pop() if kinds_present else _Kind.UNKNOWN
    if kind is _Kind.MODEL:
        return model_files + metadata_files, True
    if kind is _Kind.DATASET:
        result.datasets.append(DatasetEntry(path=subdir.path))
        return model_files, True
    if kind is _Kind.DOCS:
        result.docs.append(DocsEntry(path=subdir.path))
        return model_files, True
    return model_files, False  # only metadata, unknown files, subdirectories, or empty: code


def _model_from_files(files: list[_File]) -> tuple[Model, list[str]]:
    """kit's choice among weight files: the largest when > 1.5x the average, else the first."""

    def name_of(file: _File) -> str:
        # The path without the extension as Go's filepath.Ext sees it (from the last dot of the name).
        dot = file.name.rfind(".")
        return file.path[: len(file.path) - (len(file.name) - dot)] if dot >= 0 else file.path

    if len(files) == 1:
        return Model(name=name_of(files[0]), path=files[0].path), []
    largest: _File | None = None
    for file in files:
        if file.size > (largest.size if largest else 0):
            largest = file
    average = sum(f.size for f in files) // len(files)
    if largest is not None and largest.size > average + average // 2:
        return Model(name=name_of(largest), path=largest.path), [f.path for f in files if f != largest]
    return Model(path=files[0].path), [f.path for f in files[1:]]


def classify(folder: FileTree | Path, ignore: frozenset[str] = frozenset()) -> Classification:
    """kit init's classification of ``folder`` (on disk, or a listing), leaving out the relative paths in
    ``ignore``. Of the files' contents it reads only the root license files' (see :func:`content_needed`)."""
    source = as_tree(folder)
    tree = _list_tree(source, ignore=ignore)
    result = Classification()
    model_files: list[_File] = []
    catch_all = False
    for file in tree.files:
        if file.name in KITFILE_NAMES:
            continue
        lowered = file.name.lower()
        if lowered.startswith("readme"):
            result.docs.append(DocsEntry(path=file.name, description="Readme file"))
            continue
        if lowered.startswith("license"):
            result.docs.append(DocsEntry(path=file.name, description="License file"))
            # The last license file wins, even when it is not recognised (kit overwrites with "").
            result.license_id = detect_license_id(source.read_text(file.path))
            continue
        kind = _file_kind(file.path)
        if kind is _Kind.MODEL:
            model_files.append(file)
        elif kind is _Kind.METADATA:
            result.root_metadata.append(file.path)
        elif kind is _Kind.DOCS:
            result.docs.append(DocsEntry(path=file.path))
        elif kind is _Kind.DATASET:
            result.datasets.append(DatasetEntry(path=file.path))
        else:
            catch_all = True

    unprocessed: list[str] = []
    for subdir in tree.subdirs:
        dir_models, understood = _classify_subdir(result, subdir)
        if not understood:
            unprocessed.append(subdir.path)
        model_files.extend(dir_models)

    if model_files:
        model, parts = _model_from_files(model_files)
        result.model = replace(model, parts=tuple(ModelPart(path=p) for p in parts + result.root_metadata))
    else:
        result.datasets.extend(DatasetEntry(path=p) for p in result.root_metadata)

    if catch_all or len(unprocessed) > MAX_UNPROCESSED_DIRS:
        result.code = [CodeEntry(path=".")]
    else:
        result.code.extend(CodeEntry(path=p) for p in unprocessed)

    placed = place_license(result.license_id, result.model, result.datasets, result.code)
    result.model, result.datasets, result.code, result.package_license = placed
    return result


def place_license(
    license_id: str | None, model: Model | None, datasets: list[DatasetEntry], code: list[CodeEntry]
) -> tuple[Model | None, list[DatasetEntry], list[CodeEntry], str]:
    """kit's rule: the license goes on the model, else the only dataset, else the only code entry,
    else the package. Returns the entries and the package's license ("" when it went elsewhere)."""
    if not license_id:
        return model, datasets, code, ""
    if model is not None:
        return replace(model, license=license_id), datasets, code, ""
    if len(datasets) == 1:
        return model, [replace(datasets[0], license=license_id)], code, ""
    if len(code) == 1:
        return model, datasets, [replace(code[0], license=license_id)], ""
    return model, datasets, code, license_id


def classify_like_kit_init(folder: Path) -> Kitfile:
    """The Kitfile ``kit init .`` (v1.7.0, non-interactive, no flags) writes when run in this folder.

    (Run from elsewhere, kit 1.7.0 reads the license file relative to its working directory and so
    misses it; this reads the folder's own.) kit init fills no package field by itself (name,
    description and author come only from its flags or its prompts); the package appears only to hold
    a license it could not place elsewhere.
    """
    return classify(Path(folder)).as_kitfile()


# -- kit pack's string-prefix rule -----------------------------------------------------------------


def dropped_by_kit_pack(folder: FileTree | Path, layer_paths: Sequence[str], ignore: frozenset[str]) -> list[str]:
    """Files that kit pack (1.7.0, and upstream since) would leave out of every layer.

    When kit packs a directory layer it skips each file whose path merely *starts with* another
    layer's path, as a string: with a layer ``model``, the file ``model_card.png`` is skipped by the
    ``.`` layer as if it were inside ``model/``, and no layer packs it. Such files need an entry of
    their own; the loop repeats because a new entry can shadow further files.
    """
    layers = {posixpath.normpath(p) for p in layer_paths}
    files = [f for f in _regular_files(as_tree(folder)) if f not in ignore]
    dropped: list[str] = []
    while True:
        found = [f for f in files if f not in layers and dropped_by_kit(f, layers)]
        if not found:
            return dropped
        dropped.extend(found)
        layers.update(found)


def dropped_by_kit(file: str, layers: set[str]) -> bool:
    """Whether kit pack leaves ``file`` out of every layer that contains it (``.``, itself or a folder above
    it): each of those skips it because another layer's path is a string prefix of it but not of the
    containing layer's. Only the string prefixes of ``file`` can matter, so they are all that is looked
    up: a check over every layer for every file was quadratic (95 s for a run of 10,000 weight files)."""
    prefixes = {file[:end] for end in range(1, len(file) + 1) if file[:end] in layers}
    containing = {x for x in prefixes if x == file or file[len(x)] == "/"}
    if "." in layers:
        containing.add(".")
    return bool(containing) and all(any(not layer.startswith(other) for other in prefixes) for layer in containing)


def _regular_files(tree: FileTree, rel: str = "") -> list[str]:
    """Every regular file kit pack would walk, relative and "/"-separated (root Kitfiles excluded), in
    ``os.walk`` order: a folder's files (sorted), then each of its folders (sorted), symlinks never followed."""
    out: list[str] = []
    entries = tree.entries(rel)
    for entry in sorted((e for e in entries if e.kind == "file"), key=lambda e: e.name):
        if not rel and entry.name in (*KITFILE_NAMES, ".kitignore"):
            continue
        out.append(f"{rel}/{entry.name}" if rel else entry.name)
    for entry in sorted((e for e in entries if e.kind == "dir"), key=lambda e: e.name):
        out.extend(_regular_files(tree, f"{rel}/{entry.name}" if rel else entry.name))
    return out
