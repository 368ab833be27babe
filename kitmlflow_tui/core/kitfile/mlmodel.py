"""MLflow model folders in a run's tree: where they are (every outermost folder holding ``MLmodel``), which
logged model each is, which one is the main model, and what its MLmodel says about the framework that loads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.catalogue.records import LoggedModelInfo, RegisteredModelInfo
from kitmlflow_tui.core.errors import PackError
from kitmlflow_tui.core.file_tree import FileTree
from kitmlflow_tui.core.kitfile.model import normalize_path

MLMODEL_FILE = "MLmodel"


@dataclass(frozen=True)
class ModelFolder:
    path: str  # relative, "/"-separated; "." when the folder itself is an MLflow model
    mlmodel: Mapping[str, Any]

    @property
    def flavors(self) -> dict[str, Any]:
        flavors = self.mlmodel.get("flavors")
        return flavors if isinstance(flavors, dict) else {}


Matched = tuple[ModelFolder, LoggedModelInfo | None]


def find_model_folders(folder: FileTree) -> list[ModelFolder]:
    """Every outermost folder holding an MLmodel file (a regular one), in path order."""
    found: list[ModelFolder] = []
    pending = [""]
    while pending:  # os.walk's top-down order; a model folder's own folders are not searched
        current = pending.pop(0)
        entries = folder.entries(current)
        mlmodel = f"{current}/{MLMODEL_FILE}" if current else MLMODEL_FILE
        found_mlmodel = next((e for e in entries if e.name == MLMODEL_FILE and e.kind == "file"), None)
        if found_mlmodel is not None:
            found.append(ModelFolder(current or ".", read_mlmodel(folder, mlmodel, found_mlmodel.size)))
            continue  # sidecars and nested folders belong to this model
        subfolders = sorted(e.name for e in entries if e.kind == "dir")
        pending[:0] = [f"{current}/{name}" if current else name for name in subfolders]
    return sorted(found, key=lambda m: m.path)


def read_mlmodel(folder: FileTree, path: str, size: int) -> Mapping[str, Any]:
    """An MLmodel's content through the bounded loader: it is the run's data, and a 1 KB document of nested
    aliases would otherwise expand into gigabytes. Over a bound: PackError (8), naming the file and the
    line; not YAML at all, or not available (a listing without its content): no content (the folder is still
    the model, without flavors)."""
    try:
        if size > safe_yaml.DEFAULT_LIMITS.max_bytes:  # refused before it is read
            limit = safe_yaml.DEFAULT_LIMITS.max_bytes
            raise safe_yaml.YamlRefused(f"the file is {size:,} bytes, more than the {limit:,} allowed")
        content = safe_yaml.load(folder.read_text(path))
    except safe_yaml.YamlRefused as exc:
        where = f" at {exc.where}" if exc.where else ""
        raise PackError(
            f"The run's {path} cannot be read safely{where}: refused: {exc.problem}.",
            hint="Leave that model folder out (--exclude), or give a --kitfile (then no MLmodel is read).",
        ) from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


def match_logged_model(
    model: ModelFolder, logged_models: Sequence[LoggedModelInfo], single: bool
) -> LoggedModelInfo | None:
    for info in logged_models:
        if normalize_path(info.folder) == model.path:
            return info
    model_id = model.mlmodel.get("model_id")
    for info in logged_models:
        if model_id and info.model_id == model_id:
            return info
    if single and len(logged_models) == 1 and model.path == ".":
        return logged_models[0]
    return None


def ordered_model_folders(
    folder: FileTree, logged_models: Sequence[LoggedModelInfo], registered: RegisteredModelInfo | None
) -> list[Matched]:
    """Every MLflow model folder with its logged model, the main model first: the registered one,
    else logged-model order, else path order."""
    folders = find_model_folders(folder)
    logged = list(logged_models)
    matched = [(m, match_logged_model(m, logged, len(folders) == 1)) for m in folders]

    def rank(item: Matched) -> tuple[int, int, str]:
        model, info = item
        if is_registered(item, registered):
            return (0, 0, model.path)
        if info is not None:
            return (1, logged.index(info), model.path)
        return (2, 0, model.path)

    return sorted(matched, key=rank)


def is_registered(item: Matched, registered: RegisteredModelInfo | None) -> bool:
    """Whether this model folder holds the registered version (by its logged model's id, else its folder)."""
    model, info = item
    if registered is None:
        return False
    if registered.model_id:
        return info is not None and info.model_id == registered.model_id
    return registered.folder is not None and normalize_path(registered.folder) == model.path


# MLflow writes the library version as "<flavor>_version", with a few historical abbreviations.
_FLAVOR_VERSION_KEYS = {"xgboost": "xgb_version", "lightgbm": "lgb_version"}
_NOT_A_FLAVOR_VERSION = {"python_version", "cloudpickle_version"}
_FORMAT_KEYS = ("serialization_format", "model_format", "save_format")


def framework_of(model: ModelFolder) -> tuple[str | None, str | None, str | None]:
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


def framework_parameters(model: ModelFolder, framework_version: str | None) -> dict[str, str]:
    """What a deployer needs to load the model, from its MLmodel: the flavor that loads it, that library's
    version, the Python and MLflow versions it was saved with."""
    flavors = model.flavors
    flavor = next((name for name in flavors if name != "python_function"), "python_function" if flavors else None)
    python_function = flavors.get("python_function")
    python_version = python_function.get("python_version") if isinstance(python_function, dict) else None
    found = {
        "flavor": flavor,
        "framework_version": framework_version,
        "python_version": python_version,
        "mlflow_version": model.mlmodel.get("mlflow_version"),
    }
    return {key: str(value) for key, value in found.items() if value is not None and str(value)}
