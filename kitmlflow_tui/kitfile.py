"""Step 5 of the data flow: the Kitfile of a downloaded folder.

Three layers, each a function over a local folder and plain values:

1. :func:`classify_like_kit_init` — what ``kit init`` writes for the folder, rule for rule.
2. :func:`build_kitfile` — that, corrected with what MLflow knows (an ``MLmodel`` folder is the model,
   its flavor is the framework), with the package filled from the run and the tag, and provenance added.
3. :func:`validate_kitfile` / :func:`load_kitfile_text` / :func:`dump_kitfile` — kit's schema and checks.

The classifier mirrors ``pkg/lib/kitfile/generate`` of kit **v1.7.0** (commit
4147a72ef3a017973b6dd6ccd485c6ba6733a85e; identical at a041892867ad01e9bcfc5b21ebe574a7257a128b,
v1.7.0-19). Later kit releases changed ``kit init`` (prompt files, ``*pytorch_model*.bin`` instead of
every ``.bin``, unknown root files as separate code entries, trailing slashes on directories); this
module follows 1.7.0 because that is the kit we can build and check against, and the tests record its
real output in ``tests/kitinit_corpus``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from kitmlflow_tui.catalogue import LoggedModelInfo, RegisteredModelInfo, RunInfo
from kitmlflow_tui.errors import BadInputError

KIT_INIT_VERSION = "1.7.0"
KIT_INIT_COMMIT = "4147a72ef3a017973b6dd6ccd485c6ba6733a85e"
MANIFEST_VERSION = "1.0.0"
KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
PROVENANCE_FILE = "mlflow-provenance.yaml"
MLMODEL_FILE = "MLmodel"
MLFLOW_MODEL_PART_TYPE = "mlflow-model"
IMPORTER_NAME = "kitmlflow"

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

_PROVENANCE_HEADER = "# MLflow provenance written by kitmlflow; regenerated on every import.\n"


# --------------------------------------------------------------------------------------------------
# Layer 1: what `kit init` generates
# --------------------------------------------------------------------------------------------------


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


def _sorted_entries(path: Path) -> list[os.DirEntry[str]]:
    # os.ReadDir sorts by name as Go compares strings: bytewise on UTF-8.
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))


def _list_tree(root: Path, rel: str = ".", ignore: frozenset[str] = frozenset()) -> _Dir:
    """The folder as kit lists it: regular files and directories only (symlinks are skipped)."""
    listing = _Dir(name=posixpath.basename(rel) if rel != "." else ".", path=rel)
    for entry in _sorted_entries(root / rel):
        child = entry.name if rel == "." else f"{rel}/{entry.name}"
        if child in ignore:
            continue
        if entry.is_dir(follow_symlinks=False):
            listing.subdirs.append(_list_tree(root, child, ignore))
        elif entry.is_file(follow_symlinks=False):
            listing.files.append(_File(entry.name, child, entry.stat(follow_symlinks=False).st_size))
    return listing


@dataclass
class _Classification:
    """kit init's result plus what it knew on the way, so MLflow corrections can re-apply its rules."""

    model: dict[str, Any] | None = None
    code: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    docs: list[dict[str, Any]] = field(default_factory=list)
    root_metadata: list[str] = field(default_factory=list)  # root metadata files (parts or datasets)
    license_id: str = ""  # what the last root license file was detected as ("" when unknown)
    package_license: str = ""

    def as_kitfile(self) -> dict[str, Any]:
        kitfile: dict[str, Any] = {"manifestVersion": MANIFEST_VERSION}
        if self.package_license:
            kitfile["package"] = {"license": self.package_license}
        if self.model is not None:
            kitfile["model"] = self.model
        kitfile["code"] = self.code
        kitfile["datasets"] = self.datasets
        kitfile["docs"] = self.docs
        return canonical_kitfile(kitfile)


def _classify_subdir(result: _Classification, subdir: _Dir) -> tuple[list[_File], bool]:
    """One first-level directory, as kit's addDirToKitfile. Returns (model files, understood?).

    Model files are returned even for a mixed directory: kit then makes the directory a code entry
    AND picks its weights as model files.
    """
    if subdir.name == "docs":
        result.docs.append({"path": subdir.path})
        return [], True
    if subdir.name in CODE_DIR_NAMES:
        result.code.append({"path": subdir.path})
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
        result.datasets.append({"path": subdir.path})
        return model_files, True
    if kind is _Kind.DOCS:
        result.docs.append({"path": subdir.path})
        return model_files, True
    return model_files, False  # only metadata, unknown files, subdirectories, or empty: code


def _model_from_files(files: list[_File]) -> tuple[dict[str, Any], list[str]]:
    """kit's choice among weight files: the largest when > 1.5x the average, else the first."""

    def name_of(file: _File) -> str:
        # The path without the extension as Go's filepath.Ext sees it (from the last dot of the name).
        dot = file.name.rfind(".")
        return file.path[: len(file.path) - (len(file.name) - dot)] if dot >= 0 else file.path

    if len(files) == 1:
        return {"name": name_of(files[0]), "path": files[0].path}, []
    largest: _File | None = None
    for file in files:
        if file.size > (largest.size if largest else 0):
            largest = file
    average = sum(f.size for f in files) // len(files)
    if largest is not None and largest.size > average + average // 2:
        return {"name": name_of(largest), "path": largest.path}, [f.path for f in files if f != largest]
    return {"path": files[0].path}, [f.path for f in files[1:]]


def _classify(folder: Path, ignore: frozenset[str] = frozenset()) -> _Classification:
    tree = _list_tree(folder, ignore=ignore)
    result = _Classification()
    model_files: list[_File] = []
    catch_all = False
    for file in tree.files:
        if file.name in KITFILE_NAMES:
            continue
        lowered = file.name.lower()
        if lowered.startswith("readme"):
            result.docs.append({"path": file.name, "description": "Readme file"})
            continue
        if lowered.startswith("license"):
            result.docs.append({"path": file.name, "description": "License file"})
            # The last license file wins, even when it is not recognised (kit overwrites with "").
            result.license_id = detect_license_id(_read_text(folder / file.path))
            continue
        kind = _file_kind(file.path)
        if kind is _Kind.MODEL:
            model_files.append(file)
        elif kind is _Kind.METADATA:
            result.root_metadata.append(file.path)
        elif kind is _Kind.DOCS:
            result.docs.append({"path": file.path})
        elif kind is _Kind.DATASET:
            result.datasets.append({"path": file.path})
        else:
            catch_all = True

    unprocessed: list[str] = []
    for subdir in tree.subdirs:
        dir_models, understood = _classify_subdir(result, subdir)
        if not understood:
            unprocessed.append(subdir.path)
        model_files.extend(dir_models)

    if model_files:
        result.model, parts = _model_from_files(model_files)
        result.model["parts"] = [{"path": p} for p in parts + result.root_metadata]
    else:
        result.datasets.extend({"path": p} for p in result.root_metadata)

    if catch_all or len(unprocessed) > MAX_UNPROCESSED_DIRS:
        result.code = [{"path": "."}]
    else:
        result.code.extend({"path": p} for p in unprocessed)

    result.package_license = _place_license(
        result.license_id, model=result.model, datasets=result.datasets, code=result.code
    )
    return result


def _place_license(
    license_id: str,
    *,
    model: dict[str, Any] | None,
    datasets: list[dict[str, Any]],
    code: list[dict[str, Any]],
) -> str:
    """kit's rule: on the model, else the only dataset, else the only code entry, else the package.

    Sets the license in place; returns it when it belongs on the package ("" otherwise).
    """
    if not license_id:
        return ""
    if model is not None:
        model["license"] = license_id
    elif len(datasets) == 1:
        datasets[0]["license"] = license_id
    elif len(code) == 1:
        code[0]["license"] = license_id
    else:
        return license_id
    return ""


def classify_like_kit_init(folder: Path) -> dict[str, Any]:
    """The Kitfile ``kit init .`` (v1.7.0, non-interactive, no flags) writes when run in this folder.

    (Run from elsewhere, kit 1.7.0 reads the license file relative to its working directory and so
    misses it; this reads the folder's own.) kit init fills no package field by itself (name, description and author come only from its
    flags or its prompts); the package appears only to hold a license it could not place elsewhere.
    Keys are in kit's order, empty fields left out, as kit's YAML encoder does.
    """
    return _classify(Path(folder)).as_kitfile()


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------------
# License detection. kit runs github.com/google/licensecheck over a root license file and keeps the
# id only when the scan finds exactly one match: two licenses, the same license twice, or a full text
# plus a separate notice all give no license. This detector finds each license by its distinctive
# wording, gives every match a span, drops matches inside a longer one (a full text quotes its own
# notice in its appendix), and applies the same "exactly one" rule, with licensecheck's ids.
# --------------------------------------------------------------------------------------------------


def _words(text: str) -> str:
    # HTML license files: drop tags and entities (but not <https://...> links of plain-text licenses).
    text = re.sub(r"</?[a-z][a-z0-9]*(?:\s[^<>]{0,300})?/?>|&[a-z]+;|&#\d+;", " ", text, flags=re.IGNORECASE)
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


@dataclass(frozen=True)
class _FullText:
    """A license whose text names itself in a title. Its match runs from the title to ``end``, then
    on through an optional ``appendix`` that directly follows, up to ``appendix_end``."""

    spdx: str
    title: str
    end: str
    appendix: str | None = None
    appendix_end: str | None = None


_GNU_END = " end of terms and conditions "
_GNU_APPLY = " how to apply these terms to your new programs "
_GNU_APPLY_LIB = " how to apply these terms to your new libraries "
_FULL_TEXTS = (
    _FullText("Apache-2.0", " apache license version 2 0 january 2004 ", _GNU_END,
              " appendix how to apply the apache license to your work ", " limitations under the license "),
    _FullText("GPL-2.0", " gnu general public license version 2 june 1991 ", _GNU_END, _GNU_APPLY,
              " instead of this license "),
    _FullText("GPL-3.0", " gnu general public license version 3 29 june 2007 ", _GNU_END, _GNU_APPLY,
              " why not lgpl html "),
    _FullText("LGPL-2.0", " gnu library general public license version 2 june 1991 ", _GNU_END, _GNU_APPLY_LIB,
              " that s all there is to it "),
    _FullText("LGPL-2.1", " gnu lesser general public license version 2 1 february 1999 ", _GNU_END,
              _GNU_APPLY_LIB, " that s all there is to it "),
    _FullText("LGPL-3.0", " gnu lesser general public license version 3 29 june 2007 ",
              " permanent authorization for you to choose that version for the library "),
    _FullText("AGPL-3.0", " gnu affero general public license version 3 19 november 2007 ", _GNU_END,
              _GNU_APPLY, " how to apply and follow the gnu agpl see "),
    _FullText("MPL-2.0", " mozilla public license version 2 0 ",
              " incompatible with secondary licenses as defined by the mozilla public license v 2 0 "),
    _FullText("MPL-1.1", " mozilla public license version 1 1 ", " source code for your modifications "),
    _FullText("CC-BY-4.0", " creative commons attribution 4 0 international public license ", " creativecommons org "),
    _FullText("CC-BY-SA-4.0", " creative commons attribution sharealike 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-NC-4.0", " creative commons attribution noncommercial 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-NC-SA-4.0",
              " creative commons attribution noncommercial sharealike 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-ND-4.0", " creative commons attribution noderivatives 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC0-1.0", " cc0 1 0 universal ", " with respect to this cc0 or use of the work "),
    _FullText("BSL-1.0", " boost software license version 1 0 ", " or other dealings in the software "),
)  # fmt: skip

# Short licenses and notices: (id, regex over _words() text). A callable id decides from the match.
_GNU_FAMILIES = {
    "general public license": "GPL",
    "lesser general public license": "LGPL",
    "library general public license": "LGPL",
    "affero general public license": "AGPL",
}
_GNU_NOTICE = re.compile(
    r" under the terms of the gnu (general|lesser general|library general|affero general) public license "
    r"(?:as published by the free software foundation )?(?:either )?version (\d)(?: (\d))?"
    r"( of the license or at your option any later version)?"
)
_SHORT_TEXTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache-2.0", re.compile(r" licensed under the apache license version 2 0 ")),
    ("MPL-2.0", re.compile(r" subject to the terms of the mozilla public license v 2 0 ")),
    ("PSF-2.0", re.compile(r" python software foundation license version 2 ")),
    ("Unlicense", re.compile(r" this is free and unencumbered software released into the public domain ")),
    ("CC0-1.0", re.compile(r" dedicated all copyright and related and neighboring rights to this software "
                           r"to the public domain worldwide ")),
    ("MIT", re.compile(r" permission is hereby granted free of charge to any person obtaining a copy of "
                       r"(?:[a-z0-9]+ ){0,15}?to deal in the (?:software|materials) ")),
    ("ISC", re.compile(r" permission to use copy modify and (?:or )?distribute this software for any "
                       r"purpose with or without fee is hereby granted ")),
    ("BSD", re.compile(r" redistribution and use in source and binary forms with or without modification "
                       r"are permitted provided that the following conditions are met ")),
)  # fmt: skip


def _short_license_id(spdx: str, words: str, end: int) -> str:
    """Tell apart the variants of a short license by the wording right after its opening."""
    after = words[end : end + 1500]
    if spdx == "MIT":
        conditioned = " the above copyright notice and this permission notice shall be included " in after
        return "MIT" if conditioned else "MIT-0"
    if spdx == "ISC":
        return "ISC" if after.startswith("provided that the above copyright notice ") else "0BSD"
    if spdx == "BSD":
        if " all advertising materials mentioning features or use of this software " in after:
            return "BSD-4-Clause"
        if re.search(r" (?:may|shall) (?:not )?be used to endorse or promote products ", after):
            return "BSD-3-Clause"
        return "BSD-2-Clause"
    return spdx


def _full_text_end(full: _FullText, words: str, start: int) -> int | None:
    """Where a full text that starts at ``start`` ends; None when its closing words are missing (a
    title alone, as in a list of licenses, is not the license)."""
    closing = words.find(full.end, start)
    if closing < 0:
        return None
    end = closing + len(full.end) - 1
    if full.appendix and full.appendix_end and words.startswith(full.appendix, end):
        appendix_end = words.find(full.appendix_end, end)
        return len(words) if appendix_end < 0 else appendix_end + len(full.appendix_end) - 1
    return end


def _license_matches(words: str) -> list[tuple[int, int, str]]:
    full_texts: dict[tuple[str, int], int] = {}  # (id, end) -> start
    for full in _FULL_TEXTS:
        for title in re.finditer(re.escape(full.title), words):
            end = _full_text_end(full, words, title.end())
            if end is not None:
                # Titles quoted earlier (a list of licenses) share the real text's end: keep the last.
                full_texts[(full.spdx, end)] = title.start()
    matches = [(start, end, spdx) for (spdx, end), start in full_texts.items()]
    for spdx, pattern in _SHORT_TEXTS:
        for match in pattern.finditer(words):
            matches.append((match.start(), match.end(), _short_license_id(spdx, words, match.end())))
    for match in _GNU_NOTICE.finditer(words):
        family = _GNU_FAMILIES[f"{match[1]} public license"]
        version = f"{match[2]}.{match[3] or '0'}"
        matches.append((match.start(), match.end(), f"{family}-{version}-{'or-later' if match[4] else 'only'}"))
    return matches


def detect_license_id(text: str) -> str:
    """The SPDX id of a license file's text; "" when no license or more than one match is found."""
    matches = _license_matches(_words(text))
    kept = [
        m
        for m in matches
        if not any(o is not m and o[0] <= m[0] and m[1] <= o[1] and o[1] - o[0] > m[1] - m[0] for o in matches)
    ]
    return kept[0][2] if len(kept) == 1 else ""


# --------------------------------------------------------------------------------------------------
# Layer 2: correct kit's guess with what MLflow knows, fill the package, add provenance
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KitfileOverrides:
    """Package fields a profile or the wizard's form sets; a field left None keeps the generated value.

    ``license`` goes on the package and replaces the license kit detected wherever it was placed.
    """

    name: str | None = None
    version: str | None = None
    description: str | None = None
    authors: tuple[str, ...] | None = None
    license: str | None = None


@dataclass(frozen=True)
class BuiltKitfile:
    """The Kitfile, where its provenance went, and the files build_kitfile wrote into the folder."""

    kitfile: dict[str, Any]
    provenance_location: str  # "model", "datasets[0]" or PROVENANCE_FILE
    added_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class _ModelFolder:
    path: str  # relative, "/"-separated; "." when the folder itself is an MLflow model
    mlmodel: Mapping[str, Any]

    @property
    def flavors(self) -> dict[str, Any]:
        flavors = self.mlmodel.get("flavors")
        return flavors if isinstance(flavors, dict) else {}


def _find_model_folders(folder: Path) -> list[_ModelFolder]:
    """Every outermost folder holding an MLmodel file, in path order."""
    found: list[_ModelFolder] = []
    for current, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        mlmodel = Path(current) / MLMODEL_FILE
        if MLMODEL_FILE in filenames and mlmodel.is_file() and not mlmodel.is_symlink():
            rel = Path(current).relative_to(folder).as_posix()
            found.append(_ModelFolder(rel, _read_mlmodel(mlmodel)))
            dirnames.clear()  # sidecars and nested folders belong to this model
    return sorted(found, key=lambda m: m.path)


def _read_mlmodel(path: Path) -> Mapping[str, Any]:
    try:
        content = yaml.safe_load(_read_text(path))
    except yaml.YAMLError:
        return {}
    return content if isinstance(content, dict) else {}


# MLflow writes the library version as "<flavor>_version", with a few historical abbreviations.
_FLAVOR_VERSION_KEYS = {"xgboost": "xgb_version", "lightgbm": "lgb_version"}
_NOT_A_FLAVOR_VERSION = {"python_version", "cloudpickle_version"}
_FORMAT_KEYS = ("serialization_format", "model_format", "save_format")


def _framework(model: _ModelFolder) -> tuple[str | None, str | None, str | None]:
    """(framework, its version, serialization format) from MLmodel.

    The framework is the first flavor other than ``python_function``; a model with only that
    flavor is a custom pyfunc, reported as ``pyfunc`` (MLflow's own name for it) with MLflow's
    version, since MLflow is then the library that loads it.
    """
    flavors = model.flavors
    names = [n for n in flavors if n != "python_function"]
    if not names:
        if "python_function" not in flavors:
            return None, None, None
        version = model.mlmodel.get("mlflow_version")
        return "pyfunc", str(version) if version else None, None
    name = names[0]
    config = flavors[name] if isinstance(flavors[name], dict) else {}
    version_key = _FLAVOR_VERSION_KEYS.get(name, f"{name}_version")
    version = config.get(version_key)
    if version is None:
        version = next(
            (v for k, v in config.items() if k.endswith("_version") and k not in _NOT_A_FLAVOR_VERSION), None
        )
    fmt = "onnx" if name == "onnx" else next((config[k] for k in _FORMAT_KEYS if config.get(k)), None)
    return name, str(version) if version is not None else None, str(fmt) if fmt is not None else None


def _is_within(path: str, folder: str) -> bool:
    path, folder = _norm(path), _norm(folder)
    return folder == "." or path == folder or path.startswith(folder + "/")


def _norm(path: str) -> str:
    return posixpath.normpath(path) if path else "."


def _match_logged_model(
    model: _ModelFolder, logged_models: Sequence[LoggedModelInfo], single: bool
) -> LoggedModelInfo | None:
    for info in logged_models:
        if _norm(info.folder) == model.path:
            return info
    model_id = model.mlmodel.get("model_id")
    for info in logged_models:
        if model_id and info.model_id == model_id:
            return info
    if single and len(logged_models) == 1 and model.path == ".":
        return logged_models[0]
    return None


def _order_models(
    models: list[_ModelFolder],
    infos: dict[str, LoggedModelInfo | None],
    logged_models: Sequence[LoggedModelInfo],
    registered: RegisteredModelInfo | None,
) -> list[_ModelFolder]:
    """Main model first: the registered one, else logged-model order, else path order."""

    def rank(model: _ModelFolder) -> tuple[int, int, str]:
        info = infos[model.path]
        if registered and info and registered.model_id and info.model_id == registered.model_id:
            return (0, 0, model.path)
        if info is not None:
            return (1, list(logged_models).index(info), model.path)
        return (2, 0, model.path)

    return sorted(models, key=rank)


def _iso_utc(millis: int | None) -> str | None:
    if millis is None:
        return None
    moment = _dt.datetime.fromtimestamp(millis / 1000, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def _json_number(value: float) -> float | str:
    # kit stores the Kitfile as JSON in the ModelKit config: NaN and infinities cannot go there.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _provenance(
    run: RunInfo,
    logged_models: Sequence[LoggedModelInfo],
    model_folders: Mapping[str, _ModelFolder],
    registered: RegisteredModelInfo | None,
    filter_summary: Mapping[str, Any],
    importer_version: str,
) -> dict[str, Any]:
    def flavors_of(info: LoggedModelInfo) -> list[str]:
        folder = model_folders.get(_norm(info.folder))
        return list(folder.flavors) if folder and folder.flavors else list(info.flavors)

    provenance: dict[str, Any] = {
        "tracking_uri": run.tracking_uri,
        "experiment": {"id": run.experiment_id, "name": run.experiment_name},
        "run": {
            "id": run.run_id,
            "name": run.run_name,
            "status": run.status,
            "start_time": _iso_utc(run.start_time),
            "end_time": _iso_utc(run.end_time),
            "user": run.user or run.tags.get("mlflow.user"),
        },
        "source": {"name": run.source_name, "type": run.source_type, "git_commit": run.git_commit},
        "params": dict(run.params),
        "metrics": {k: _json_number(v) for k, v in run.metrics.items()},
        "tags": run.user_tags,
        "logged_models": [
            {"id": m.model_id, "name": m.name, "folder": m.folder, "flavors": flavors_of(m)} for m in logged_models
        ],
    }
    if registered is not None:
        provenance["registered_model"] = {
            "name": registered.name,
            "version": registered.version,
            "alias": registered.alias,
        }
    provenance["importer"] = {"name": IMPORTER_NAME, "version": importer_version}
    provenance["filter"] = _plain(filter_summary)
    return provenance


def read_provenance(kitfile: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The MLflow provenance a Kitfile (or a ModelKit's config, the same as JSON) carries where
    ``build_kitfile`` puts it: ``model.parameters.mlflow``, else ``datasets[0].parameters.mlflow``.
    None when there is none there (provenance in ``mlflow-provenance.yaml`` is inside a layer)."""

    def mlflow_of(entry: Any) -> Mapping[str, Any] | None:
        parameters = entry.get("parameters") if isinstance(entry, Mapping) else None
        found = parameters.get("mlflow") if isinstance(parameters, Mapping) else None
        return found if isinstance(found, Mapping) else None

    datasets = kitfile.get("datasets")
    first_dataset = datasets[0] if isinstance(datasets, list) and datasets else None
    return mlflow_of(kitfile.get("model")) or mlflow_of(first_dataset)


def _plain(value: Any) -> Any:
    """A JSON-compatible copy (tuples to lists, mappings to dicts, non-finite floats to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return _json_number(value)
    return value


def _split_tag(tag: str | None) -> tuple[str | None, str | None]:
    """``[registry/][org/]repo[:tag]`` → (repo, tag)."""
    if not tag:
        return None, None
    last = tag.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    name, _, version = last.partition(":")
    return name or None, version or None


# What MLflow records as the user when it cannot tell who ran the code: no author rather than this.
MLFLOW_UNKNOWN_USER = "unknown"


def _description(run: RunInfo) -> str:
    """The first paragraph of the run's note (a markdown heading without its #s), else where it came from."""
    note = (run.note or "").strip()
    if note:
        first = re.split(r"\n[ \t]*\n", note, maxsplit=1)[0].strip()
        heading = re.fullmatch(r"#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*", first)
        if heading and heading.group(1):
            return heading.group(1)
        return first
    who = f"{run.run_name} ({run.run_id})" if run.run_name else run.run_id
    return f"MLflow run {who} from experiment {run.experiment_name or run.experiment_id}"


def _package(run: RunInfo, tag: str | None, overrides: KitfileOverrides | None) -> dict[str, Any]:
    name, version = _split_tag(tag)
    author = run.user or run.tags.get("mlflow.user")
    if author == MLFLOW_UNKNOWN_USER:
        author = None
    package: dict[str, Any] = {
        "name": name or run.run_name or run.run_id,
        "version": version,
        "description": _description(run),
        "authors": [author] if author else None,
    }
    if overrides is not None:
        for key in ("name", "version", "description", "license"):
            if getattr(overrides, key) is not None:
                package[key] = getattr(overrides, key)
        if overrides.authors is not None:
            package["authors"] = list(overrides.authors)
    return package


def _owned_provenance_file(folder: Path) -> bool:
    path = folder / PROVENANCE_FILE
    return path.is_file() and _read_text(path).startswith(_PROVENANCE_HEADER)


def build_kitfile(
    folder: Path,
    *,
    run: RunInfo,
    logged_models: Sequence[LoggedModelInfo],
    tag: str | None,
    registered: RegisteredModelInfo | None,
    filter_summary: Mapping[str, Any],
    importer_version: str,
    overrides: KitfileOverrides | None = None,
) -> BuiltKitfile:
    """The Kitfile for a downloaded run folder: kit init's classification, corrected by MLflow.

    A folder holding ``MLmodel`` is the model (the main one: the registered model's, else the first
    logged model, else the first in path order); further MLmodel folders are parts of type
    ``mlflow-model``; nothing inside a model folder gets an entry of its own. Every other entry keeps
    kit's classification, kit's rules for root metadata files and the license are re-applied to the
    result. Provenance goes to ``model.parameters.mlflow``, else ``datasets[0].parameters.mlflow``,
    else into a file ``mlflow-provenance.yaml`` written into the folder and listed as docs.
    """
    folder = Path(folder)
    own_file = _owned_provenance_file(folder)  # left by an earlier import into the same folder
    base = _classify(folder, ignore=frozenset({PROVENANCE_FILE}) if own_file else frozenset())

    model_folders = _find_model_folders(folder)
    single = len(model_folders) == 1
    infos = {m.path: _match_logged_model(m, logged_models, single) for m in model_folders}
    ordered = _order_models(model_folders, infos, logged_models, registered)

    def outside_models(entry: Mapping[str, Any]) -> bool:
        return not any(_is_within(entry.get("path") or ".", m.path) for m in model_folders)

    root_metadata = [p for p in base.root_metadata if outside_models({"path": p})]
    model: dict[str, Any] | None = base.model
    datasets = [d for d in base.datasets if outside_models(d) and d["path"] not in base.root_metadata]
    code = [c for c in base.code if outside_models(c)]
    docs = [d for d in base.docs if outside_models(d)]

    if ordered:
        main = ordered[0]
        info = infos[main.path]
        framework, version, fmt = _framework(main)
        model = {
            "name": (info.name if info else None) or _folder_name(main.path, run),
            "path": main.path,
            "framework": framework,
            "format": fmt,
            "version": version,
            "parts": [],
        }
        for other in ordered[1:]:
            other_info = infos[other.path]
            model["parts"].append(
                {
                    "name": (other_info.name if other_info else None) or _folder_name(other.path, run),
                    "path": other.path,
                    "type": MLFLOW_MODEL_PART_TYPE,
                }
            )
        # kit's own model guess and parts, where they lie outside every MLflow model folder.
        if base.model is not None:
            leftovers = [base.model, *base.model.get("parts", [])]
            for entry in leftovers:
                if outside_models(entry) and entry["path"] not in base.root_metadata:
                    part = {"path": entry["path"]}
                    if entry.get("name"):
                        part["name"] = entry["name"]
                    model["parts"].append(part)
    elif model is not None:
        model = {**model, "parts": [p for p in model.get("parts", []) if p["path"] not in base.root_metadata]}

    # Root metadata files: model parts when there is a model, else datasets (kit's rule, re-applied).
    if model is not None:
        model["parts"].extend({"path": p} for p in root_metadata)
        model.pop("license", None)
    else:
        datasets.extend({"path": p} for p in root_metadata)
    for entry in datasets + code:
        entry.pop("license", None)

    license_id = overrides.license if overrides and overrides.license is not None else base.license_id
    package = _package(run, tag, overrides)
    package_license = _place_license(license_id, model=model, datasets=datasets, code=code)
    if package_license:
        package["license"] = package_license

    # Files kit pack would drop from every layer (see _dropped_by_kit_pack) get a code entry each.
    layer_paths = [
        e.get("path") or "." for e in [*([model, *model["parts"]] if model else []), *datasets, *code, *docs]
    ]
    for dropped in _dropped_by_kit_pack(folder, layer_paths, ignore={PROVENANCE_FILE} if own_file else set()):
        code.append({"path": dropped})

    provenance = _provenance(
        run, logged_models, {m.path: m for m in model_folders}, registered, filter_summary, importer_version
    )
    added: tuple[str, ...] = ()
    if model is not None:
        model["parameters"] = {**(model.get("parameters") or {}), "mlflow": provenance}
        location = "model"
    elif datasets:
        datasets[0]["parameters"] = {**(datasets[0].get("parameters") or {}), "mlflow": provenance}
        location = "datasets[0]"
    else:
        (folder / PROVENANCE_FILE).write_text(_PROVENANCE_HEADER + dump_yaml({"mlflow": provenance}), encoding="utf-8")
        docs.append({"path": PROVENANCE_FILE, "description": "MLflow provenance of this ModelKit"})
        location, added = PROVENANCE_FILE, (PROVENANCE_FILE,)
        own_file = False
    if own_file:
        (folder / PROVENANCE_FILE).unlink()  # stale: this import keeps provenance in the Kitfile

    kitfile = canonical_kitfile(
        {
            "manifestVersion": MANIFEST_VERSION,
            "package": package,
            "model": model,
            "code": code,
            "datasets": datasets,
            "docs": docs,
        }
    )
    return BuiltKitfile(kitfile=kitfile, provenance_location=location, added_files=added)


def _dropped_by_kit_pack(folder: Path, layer_paths: Sequence[str], ignore: set[str]) -> list[str]:
    """Files that kit pack (1.7.0, and upstream since) would leave out of every layer.

    When kit packs a directory layer it skips each file whose path merely *starts with* another
    layer's path, as a string: with a layer ``model``, the file ``model_card.png`` is skipped by the
    ``.`` layer as if it were inside ``model/``, and no layer packs it. Such files need an entry of
    their own; the loop repeats because a new entry can shadow further files.
    """
    layers = {posixpath.normpath(p) for p in layer_paths}
    files = [f for f in _regular_files(folder) if f not in ignore]
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


def _regular_files(folder: Path) -> list[str]:
    """Every regular file kit pack would walk, relative and "/"-separated (root Kitfiles excluded)."""
    out: list[str] = []
    for current, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not (Path(current) / d).is_symlink())
        rel = Path(current).relative_to(folder).as_posix()
        for name in sorted(filenames):
            path = Path(current) / name
            if path.is_symlink() or not path.is_file():
                continue
            if rel == "." and name in (*KITFILE_NAMES, ".kitignore"):
                continue
            out.append(name if rel == "." else f"{rel}/{name}")
    return out


def _folder_name(path: str, run: RunInfo) -> str:
    return posixpath.basename(path) if path != "." else (run.run_name or run.run_id)


# --------------------------------------------------------------------------------------------------
# Layer 3: kit's schema, key order, strict parsing and validation
# --------------------------------------------------------------------------------------------------

# Field kinds of the schema: a string (any YAML scalar is read as its text, as kit's decoder does),
# a list of strings, free-form JSON-compatible parameters, or a nested section.
_STR, _STR_LIST, _ANY = "string", "list of strings", "parameters"

_SECTIONS: dict[str, dict[str, str]] = {
    "kitfile": {
        "manifestVersion": _STR,
        "package": "package",
        "model": "model",
        "code": "[code]",
        "datasets": "[dataset]",
        "docs": "[docs]",
        # kit 1.7.0 rejects `prompts`; later kits accept it (and the native packer writes it).
        "prompts": "[prompt]",
    },
    "package": {"name": _STR, "version": _STR, "description": _STR, "license": _STR, "authors": _STR_LIST},
    "model": {
        "name": _STR,
        "path": _STR,
        "license": _STR,
        "framework": _STR,
        "format": _STR,
        "version": _STR,
        "description": _STR,
        "parts": "[part]",
        "parameters": _ANY,
    },
    "part": {"name": _STR, "path": _STR, "license": _STR, "type": _STR},
    "code": {"path": _STR, "description": _STR, "license": _STR},
    "dataset": {"name": _STR, "path": _STR, "description": _STR, "license": _STR, "parameters": _ANY},
    "docs": {"path": _STR, "description": _STR},
    "prompt": {"path": _STR, "description": _STR},
}
_KEEP_EMPTY = {("docs", "path"), ("kitfile", "manifestVersion")}  # fields kit writes even when empty


def canonical_kitfile(kitfile: Mapping[str, Any]) -> dict[str, Any]:
    """A copy in kit's key order with empty fields left out, as kit's YAML encoder writes it.

    Keys kit does not know are kept at the end of their section, so validation can name them.
    """
    return _canonical_section(kitfile, "kitfile")


def _canonical_section(section: Mapping[str, Any], kind: str) -> dict[str, Any]:
    schema = _SECTIONS[kind]
    ordered_keys = [k for k in schema if k in section] + [k for k in section if k not in schema]
    out: dict[str, Any] = {}
    for key in ordered_keys:
        value = _canonical_value(section[key], schema.get(key))
        if _is_empty(value) and (kind, key) not in _KEEP_EMPTY and not (kind == "kitfile" and key == "model"):
            continue
        if value is None:
            continue
        out[key] = value
    return out


def _canonical_value(value: Any, field_kind: str | None) -> Any:
    if field_kind in _SECTIONS and isinstance(value, Mapping):
        return _canonical_section(value, field_kind)
    if field_kind and field_kind.startswith("[") and isinstance(value, (list, tuple)):
        item_kind = field_kind[1:-1]
        return [_canonical_section(v, item_kind) if isinstance(v, Mapping) else v for v in value]
    if isinstance(value, tuple):
        return list(value)
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict)) and not value)


# ---- dumping ----


class _FlowList(list):  # kit writes package.authors in flow style
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


def dump_kitfile(kitfile: Mapping[str, Any]) -> str:
    """The Kitfile as YAML in kit's key order and style (block style, no aliases, unicode as is)."""
    data = canonical_kitfile(kitfile)
    package = data.get("package")
    if isinstance(package, dict) and isinstance(package.get("authors"), list):
        data["package"] = {**package, "authors": _FlowList(package["authors"])}
    return dump_yaml(data)


# ---- strict parsing ----


class _Problems:
    """Collects every issue (kit reports them all at once), each naming its field and, if known, line."""

    def __init__(self, lines: Mapping[str, int] | None = None) -> None:
        self.lines = lines or {}
        self.items: list[str] = []

    def add(self, where: str, message: str, line: int | None = None) -> None:
        line = line if line is not None else self.lines.get(where)
        prefix = f"line {line}: " if line is not None else ""
        self.items.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")

    def raise_if_any(self, source: str) -> None:
        if self.items:
            listing = "\n".join(f"  * {item}" for item in self.items)
            raise BadInputError(
                f"{source} is not valid:\n{listing}",
                hint="See https://kitops.org/docs/kitfile/format/ for the Kitfile format.",
            )


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


_scalar_constructor = yaml.constructor.SafeConstructor()


def _scalar_value(node: yaml.ScalarNode) -> Any:
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


class _Reader:
    """Turns composed YAML nodes into the Kitfile mapping, checking the schema on the way."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.lines: dict[str, int] = {}

    def section(self, node: yaml.Node, kind: str, where: str) -> dict[str, Any] | None:
        if _is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problems.add(where or "Kitfile", f"must be a mapping, not {_node_kind(node)}", _line(node))
            return None
        schema = _SECTIONS[kind]
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            path = f"{where}.{key}" if where else key
            line = _line(key_node)
            if key in seen:
                self.problems.add(path, f"key {key!r} already defined at line {seen[key]}", line)
                continue
            seen[key] = line
            self.lines[path] = line
            if key not in schema:
                allowed = ", ".join(schema)
                self.problems.add(path, f"unknown key {key!r} in {where or 'the Kitfile'} (allowed: {allowed})", line)
                continue
            value = self.value(value_node, schema[key], path)
            if value is not None:
                out[key] = value
        return out

    def value(self, node: yaml.Node, field_kind: str, where: str) -> Any:
        if _is_null(node):
            return None
        if field_kind == _STR:
            if isinstance(node, yaml.ScalarNode):
                return node.value
            self.problems.add(where, f"must be a string, not {_node_kind(node)}", _line(node))
            return None
        if field_kind == _ANY:
            return self.parameters(node, where, depth=0)
        if field_kind == _STR_LIST or field_kind.startswith("["):
            if not isinstance(node, yaml.SequenceNode):
                self.problems.add(where, f"must be a list, not {_node_kind(node)}", _line(node))
                return None
            items = []
            for index, item in enumerate(node.value):
                item_where = f"{where}[{index}]"
                self.lines[item_where] = _line(item)
                if field_kind == _STR_LIST:
                    items.append(self.value(item, _STR, item_where))
                else:
                    items.append(self.section(item, field_kind[1:-1], item_where) or {})
            return items
        return self.section(node, field_kind, where)

    def parameters(self, node: yaml.Node, where: str, depth: int) -> Any:
        if depth > 100:
            self.problems.add(where, "nests too deep (a recursive alias?)", _line(node))
            return None
        if isinstance(node, yaml.ScalarNode):
            value = _scalar_value(node)
            if isinstance(value, float) and not math.isfinite(value):
                self.problems.add(where, "NaN and infinities cannot be stored (kit keeps JSON)", _line(node))
            return value
        if isinstance(node, yaml.SequenceNode):
            return [self.parameters(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node.value)]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.add(where, "parameter keys must be strings", _line(key_node))
                continue
            key = key_node.value
            if key in out:
                self.problems.add(f"{where}.{key}", f"key {key!r} already defined", _line(key_node))
            out[key] = self.parameters(value_node, f"{where}.{key}", depth + 1)
        return out


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def load_kitfile_text(text: str, *, folder: Path | None = None, source: str = "Kitfile") -> dict[str, Any]:
    """Parse a Kitfile strictly (unknown keys, duplicate keys and wrong types rejected, as kit does)
    and validate it; every problem names its field and line. Raises BadInputError."""
    problems = _Problems()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInputError(f"{source} is not valid YAML{where}: {exc}") from exc
    if root is None:
        raise BadInputError(f"{source} is empty.")
    reader = _Reader(problems)
    kitfile = reader.section(root, "kitfile", "") or {}
    problems.raise_if_any(source)
    _validate(kitfile, folder, _Problems(reader.lines), source)
    return kitfile


# ---- validation ----

_PART_TYPE = re.compile(r"\w[\w.-]*", re.ASCII)
PART_TYPE_MAX_LEN = 64
_MANIFEST_VERSION = re.compile(r"v?1\.0(\.0)?")
_PATH_SECTIONS = ("code", "datasets", "docs", "prompts")


def validate_kitfile(kitfile: Mapping[str, Any], folder: Path | None = None) -> None:
    """Raise BadInputError naming every field kit would reject (and, with ``folder``, every path that
    does not exist in it)."""
    _validate(kitfile, folder, _Problems(), "Kitfile")


def _validate(kitfile: Mapping[str, Any], folder: Path | None, problems: _Problems, source: str) -> None:
    if not isinstance(kitfile, Mapping):
        problems.add("", f"a Kitfile must be a mapping, not {type(kitfile).__name__}")
        problems.raise_if_any(source)
        return
    _check_types(kitfile, "kitfile", "", problems)
    problems.raise_if_any(source)

    version = kitfile.get("manifestVersion")
    if version is None:
        problems.add("manifestVersion", f"is required (kit init writes {MANIFEST_VERSION!r})")
    elif not _MANIFEST_VERSION.fullmatch(version):
        problems.add("manifestVersion", f"{version!r} is not a Kitfile version (use {MANIFEST_VERSION!r})")

    paths: list[tuple[str, str]] = []  # (field, path)
    model = kitfile.get("model")
    if isinstance(model, Mapping):
        paths.append(("model.path", model.get("path") or ""))
        for index, part in enumerate(model.get("parts") or []):
            where = f"model.parts[{index}]"
            paths.append((f"{where}.path", part.get("path") or ""))
            part_type = part.get("type")
            if part_type:
                if not _PART_TYPE.fullmatch(part_type):
                    problems.add(
                        f"{where}.type",
                        f"{part_type!r} is not a valid part type (letters, digits, '_', '.', '-'; "
                        "starting with a letter, digit or '_')",
                    )
                if len(part_type.encode()) > PART_TYPE_MAX_LEN:
                    problems.add(f"{where}.type", f"is longer than {PART_TYPE_MAX_LEN} characters")
    for key in _PATH_SECTIONS:
        for index, entry in enumerate(kitfile.get(key) or []):
            paths.append((f"{key}[{index}].path", entry.get("path") or ""))

    first_use: dict[str, str] = {}
    for where, path in paths:
        normalized = _norm(path.replace("\\", "/"))
        if normalized in first_use:
            problems.add(where, f"path {path or '.'!r} is already used by {first_use[normalized]}")
        else:
            first_use[normalized] = where.removesuffix(".path")
        if _is_absolute(path):
            problems.add(where, f"absolute path {path!r} is not supported; paths are relative to the folder")
        elif normalized == ".." or normalized.startswith("../"):
            problems.add(where, f"path {path!r} leaves the folder")
        elif (
            folder is not None
            and not (Path(folder) / path).exists()
            and not (where == "model.path" and _looks_like_modelkit_reference(path))
        ):
            problems.add(where, f"path {path!r} does not exist in {folder}")
    problems.raise_if_any(source)


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:[\\/]", path))


def _looks_like_modelkit_reference(path: str) -> bool:
    # kit lets model.path name another ModelKit (registry/repo:tag or @digest) to build on.
    return ":" in path or "@" in path


def _check_types(value: Mapping[str, Any], kind: str, where: str, problems: _Problems) -> None:
    schema = _SECTIONS[kind]
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in schema:
            problems.add(path, f"unknown key {key!r} in {where or 'the Kitfile'} (allowed: {', '.join(schema)})")
            continue
        if item is None:
            continue
        field_kind = schema[key]
        if field_kind == _STR:
            if not isinstance(item, str):
                problems.add(path, f"must be a string, not {type(item).__name__}")
        elif field_kind == _ANY:
            _check_json(item, path, problems, depth=0)
        elif field_kind == _STR_LIST or field_kind.startswith("["):
            if not isinstance(item, (list, tuple)):
                problems.add(path, f"must be a list, not {type(item).__name__}")
                continue
            for index, element in enumerate(item):
                element_path = f"{path}[{index}]"
                if field_kind == _STR_LIST:
                    if not isinstance(element, str):
                        problems.add(element_path, f"must be a string, not {type(element).__name__}")
                elif isinstance(element, Mapping):
                    _check_types(element, field_kind[1:-1], element_path, problems)
                else:
                    problems.add(element_path, f"must be a mapping, not {type(element).__name__}")
        elif isinstance(item, Mapping):
            _check_types(item, field_kind, path, problems)
        else:
            problems.add(path, f"must be a mapping, not {type(item).__name__}")


def _check_json(value: Any, where: str, problems: _Problems, depth: int) -> None:
    if depth > 100:
        problems.add(where, "nests too deep")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(where, f"parameter keys must be strings, not {type(key).__name__}")
            _check_json(item, f"{where}.{key}", problems, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", problems, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.add(where, "NaN and infinities cannot be stored (kit keeps JSON)")
    elif not (value is None or isinstance(value, (str, int, bool))):
        problems.add(where, f"{type(value).__name__} is not a JSON value")
