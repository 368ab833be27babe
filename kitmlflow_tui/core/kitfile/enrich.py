"""kit init's Kitfile corrected with what MLflow knows, the package filled in, provenance added.

A folder holding ``MLmodel`` is the model (the main one: the registered model's, else the first
logged model, else the first in path order); further MLmodel folders are parts of type
``mlflow-model``; nothing inside a model folder gets an entry of its own. Every other entry keeps
kit's classification; kit's rules for root metadata files and the license are re-applied to the
result. Provenance goes to ``model.parameters.mlflow``, else ``datasets[0].parameters.mlflow``, else
into a file ``mlflow-provenance.yaml`` listed as docs, which :func:`write_provenance_file` writes
(the builder itself writes nothing).
"""

from __future__ import annotations

import datetime as _dt
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.catalogue.records import LoggedModelInfo, RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.errors import PackError, scrub_secrets
from kitmlflow_tui.core.file_tree import FileTree, as_tree
from kitmlflow_tui.core.kitfile.classify import Classification, classify, dropped_by_kit_pack, place_license
from kitmlflow_tui.core.kitfile.model import (
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    Kitfile,
    Model,
    ModelPart,
    Package,
    normalize_path,
)
from kitmlflow_tui.core.kitfile.yaml_io import dump_yaml
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.provenance import (
    IMPORTER_NAME,
    CodeSource,
    ExperimentSource,
    Importer,
    LoggedModelSource,
    MlflowProvenance,
    RegisteredVersion,
    RunSource,
)

PROVENANCE_FILE = "mlflow-provenance.yaml"
MLMODEL_FILE = "MLmodel"
MLFLOW_MODEL_PART_TYPE = "mlflow-model"
# What MLflow records as the user when it cannot tell who ran the code: no author rather than this.
MLFLOW_UNKNOWN_USER = "unknown"

_PROVENANCE_HEADER = "# MLflow provenance written by kitmlflow; regenerated on every import.\n"


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
    """The Kitfile, where its provenance went, and what :func:`write_provenance_file` must do."""

    kitfile: Kitfile
    provenance_location: str  # "model", "datasets[0]" or PROVENANCE_FILE
    added_files: tuple[str, ...] = ()  # files the Kitfile names that the folder gets on writing
    provenance: MlflowProvenance | None = None
    remove_stale_file: bool = False  # an earlier import's provenance file the Kitfile no longer lists


@dataclass(frozen=True)
class RunFacts:
    """What MLflow knows about the run, for the builder."""

    run: RunInfo
    logged_models: Sequence[LoggedModelInfo]
    registered: RegisteredModelInfo | None
    filter_summary: Mapping[str, Any]
    importer_version: str


def build_kitfile(
    folder: FileTree | Path,
    *,
    run: RunInfo,
    logged_models: Sequence[LoggedModelInfo],
    tag: ModelKitRef | None,
    registered: RegisteredModelInfo | None,
    filter_summary: Mapping[str, Any],
    importer_version: str,
    overrides: KitfileOverrides | None = None,
) -> BuiltKitfile:
    """The Kitfile for a run's files (a downloaded folder, or the listing with the contents :func:`content_needed`
    names): kit init's classification, corrected by MLflow."""
    folder = as_tree(folder)
    facts = RunFacts(run, logged_models, registered, filter_summary, importer_version)
    own_file = _owned_provenance_file(folder)  # left by an earlier import into the same folder
    ignore = frozenset({PROVENANCE_FILE}) if own_file else frozenset()
    base = classify(folder, ignore)
    models = _ordered_model_folders(folder, facts)
    model, datasets, code, docs = _corrected_entries(base, models, run)

    license_id = overrides.license if overrides and overrides.license is not None else base.license_id
    model, datasets, code, package_license = place_license(license_id, model, datasets, code)
    package = _package(run, tag, overrides)
    if package_license:
        package = replace(package, license=package_license)

    # Files kit pack would drop from every layer (see dropped_by_kit_pack) get a code entry each.
    layer_paths = [path or "." for path in _paths(model, datasets, code, docs)]
    code += [CodeEntry(path=p) for p in dropped_by_kit_pack(folder, layer_paths, ignore)]

    provenance = _provenance(facts, {m.path: m for m, _ in models})
    if model is not None:
        model = replace(model, parameters={**(model.parameters or {}), "mlflow": provenance.to_mapping()})
        location = "model"
    elif datasets:
        datasets[0] = replace(
            datasets[0], parameters={**(datasets[0].parameters or {}), "mlflow": provenance.to_mapping()}
        )
        location = "datasets[0]"
    else:
        docs.append(DocsEntry(path=PROVENANCE_FILE, description="MLflow provenance of this ModelKit"))
        location = PROVENANCE_FILE
    kitfile = Kitfile.of(package=package, model=model, code=code, datasets=datasets, docs=docs)
    in_file = location == PROVENANCE_FILE
    return BuiltKitfile(
        kitfile=kitfile,
        provenance_location=location,
        added_files=(PROVENANCE_FILE,) if in_file else (),
        provenance=provenance,
        remove_stale_file=own_file and not in_file,
    )


def write_provenance_file(folder: Path, built: BuiltKitfile) -> None:
    """Write (or remove) the provenance file a built Kitfile relies on, before the folder is packed."""
    path = Path(folder) / PROVENANCE_FILE
    content = provenance_file_bytes(built)
    if content is not None:
        path.write_bytes(content)
    elif built.remove_stale_file:
        path.unlink(missing_ok=True)  # stale: this import keeps provenance in the Kitfile


def provenance_file_bytes(built: BuiltKitfile) -> bytes | None:
    """The content of the provenance file the Kitfile lists, or None when it lists none."""
    if built.provenance_location != PROVENANCE_FILE or built.provenance is None:
        return None
    return (_PROVENANCE_HEADER + dump_yaml({"mlflow": built.provenance.to_mapping()})).encode("utf-8")


def _owned_provenance_file(folder: FileTree) -> bool:
    return folder.read_text(PROVENANCE_FILE).startswith(_PROVENANCE_HEADER)


def _paths(
    model: Model | None, datasets: list[DatasetEntry], code: list[CodeEntry], docs: list[DocsEntry]
) -> list[str | None]:
    entries: list[Model | ModelPart | DatasetEntry | CodeEntry | DocsEntry] = [*datasets, *code, *docs]
    if model is not None:
        entries[:0] = [model, *model.parts]
    return [e.path for e in entries]


# -- MLflow model folders --------------------------------------------------------------------------


@dataclass(frozen=True)
class _ModelFolder:
    path: str  # relative, "/"-separated; "." when the folder itself is an MLflow model
    mlmodel: Mapping[str, Any]

    @property
    def flavors(self) -> dict[str, Any]:
        flavors = self.mlmodel.get("flavors")
        return flavors if isinstance(flavors, dict) else {}


_Matched = tuple[_ModelFolder, LoggedModelInfo | None]


def _find_model_folders(folder: FileTree) -> list[_ModelFolder]:
    """Every outermost folder holding an MLmodel file (a regular one), in path order."""
    found: list[_ModelFolder] = []
    pending = [""]
    while pending:  # os.walk's top-down order; a model folder's own folders are not searched
        current = pending.pop(0)
        entries = folder.entries(current)
        mlmodel = f"{current}/{MLMODEL_FILE}" if current else MLMODEL_FILE
        found_mlmodel = next((e for e in entries if e.name == MLMODEL_FILE and e.kind == "file"), None)
        if found_mlmodel is not None:
            found.append(_ModelFolder(current or ".", _read_mlmodel(folder, mlmodel, found_mlmodel.size)))
            continue  # sidecars and nested folders belong to this model
        subfolders = sorted(e.name for e in entries if e.kind == "dir")
        pending[:0] = [f"{current}/{name}" if current else name for name in subfolders]
    return sorted(found, key=lambda m: m.path)


def _read_mlmodel(folder: FileTree, path: str, size: int) -> Mapping[str, Any]:
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


def _match_logged_model(
    model: _ModelFolder, logged_models: Sequence[LoggedModelInfo], single: bool
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


def _ordered_model_folders(folder: FileTree, facts: RunFacts) -> list[_Matched]:
    """Every MLflow model folder with its logged model, the main model first: the registered one,
    else logged-model order, else path order."""
    folders = _find_model_folders(folder)
    logged = list(facts.logged_models)
    matched = [(m, _match_logged_model(m, logged, len(folders) == 1)) for m in folders]
    registered = facts.registered

    def rank(item: _Matched) -> tuple[int, int, str]:
        model, info = item
        if registered and info and registered.model_id and info.model_id == registered.model_id:
            return (0, 0, model.path)
        if info is not None:
            return (1, logged.index(info), model.path)
        return (2, 0, model.path)

    return sorted(matched, key=rank)


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
    path, folder = normalize_path(path), normalize_path(folder)
    return folder == "." or path == folder or path.startswith(folder + "/")


def _folder_name(path: str, run: RunInfo) -> str:
    return posixpath.basename(path) if path != "." else (run.run_name or run.run_id)


# -- kit's entries, corrected ----------------------------------------------------------------------


def _corrected_entries(
    base: Classification, models: list[_Matched], run: RunInfo
) -> tuple[Model | None, list[DatasetEntry], list[CodeEntry], list[DocsEntry]]:
    """kit's entries without those inside an MLflow model folder, the MLflow model as the model, and
    kit's rules for root metadata re-applied. Licenses are cleared: the caller places the license."""

    def outside_models(path: str | None) -> bool:
        return not any(_is_within(path or ".", m.path) for m, _ in models)

    metadata = set(base.root_metadata)
    root_metadata = [p for p in base.root_metadata if outside_models(p)]
    datasets = [d for d in base.datasets if outside_models(d.path) and d.path not in metadata]
    code = [c for c in base.code if outside_models(c.path)]
    docs = [d for d in base.docs if outside_models(d.path)]

    model = base.model
    if models:
        model = _mlflow_model(models, run)
        # kit's own model guess and parts, where they lie outside every MLflow model folder.
        if base.model is not None:
            leftovers = [ModelPart(name=base.model.name, path=base.model.path), *base.model.parts]
            kept = [replace(e, name=e.name or None) for e in leftovers if outside_models(e.path)]
            model = replace(model, parts=model.parts + tuple(p for p in kept if p.path not in metadata))
    elif model is not None:
        model = replace(model, parts=tuple(p for p in model.parts if p.path not in metadata))

    # Root metadata files: model parts when there is a model, else datasets (kit's rule, re-applied).
    if model is not None:
        model = replace(model, parts=model.parts + tuple(ModelPart(path=p) for p in root_metadata), license=None)
    else:
        datasets += [DatasetEntry(path=p) for p in root_metadata]
    datasets = [replace(d, license=None) for d in datasets]
    code = [replace(c, license=None) for c in code]
    return model, datasets, code, docs


def _mlflow_model(models: list[_Matched], run: RunInfo) -> Model:
    (main, info), others = models[0], models[1:]
    framework, version, fmt = _framework(main)
    parts = tuple(
        ModelPart(
            name=(other_info.name if other_info else None) or _folder_name(other.path, run),
            path=other.path,
            type=MLFLOW_MODEL_PART_TYPE,
        )
        for other, other_info in others
    )
    return Model(
        name=(info.name if info else None) or _folder_name(main.path, run),
        path=main.path,
        framework=framework,
        format=fmt,
        version=version,
        parts=parts,
    )


# -- package and provenance ------------------------------------------------------------------------


def _description(run: RunInfo) -> str:
    """The first paragraph of the run's note (a markdown heading without its #s), else where it came from;
    credentials in it masked (see :func:`_masked`)."""
    return scrub_secrets(_raw_description(run))


def _raw_description(run: RunInfo) -> str:
    note = (run.note or "").strip()
    if note:
        first = re.split(r"\n[ \t]*\n", note, maxsplit=1)[0].strip()
        heading = re.fullmatch(r"#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*", first)
        if heading and heading.group(1):
            return heading.group(1)
        return first
    who = f"{run.run_name} ({run.run_id})" if run.run_name else run.run_id
    return f"MLflow run {who} from experiment {run.experiment_name or run.experiment_id}"


def _package(run: RunInfo, tag: ModelKitRef | None, overrides: KitfileOverrides | None) -> Package:
    name, version = (tag.name, tag.version) if tag is not None else (None, None)
    author = run.user or run.tags.get("mlflow.user")
    if author == MLFLOW_UNKNOWN_USER:
        author = None
    package = Package(
        name=name or run.run_name or run.run_id,
        version=version,
        description=_description(run),
        authors=(author,) if author else (),
    )
    if overrides is None:
        return package
    changes = {k: getattr(overrides, k) for k in ("name", "version", "description", "license", "authors")}
    return replace(package, **{k: v for k, v in changes.items() if v is not None})


def iso_utc(millis: int | None) -> str | None:
    if millis is None:
        return None
    moment = _dt.datetime.fromtimestamp(millis / 1000, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def _json_number(value: float) -> float | str:
    # kit stores the Kitfile as JSON in the ModelKit config: NaN and infinities cannot go there.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _plain(value: Any) -> Any:
    """A JSON-compatible copy (tuples to lists, mappings to dicts, non-finite floats to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return _json_number(value)
    return value


def _provenance(facts: RunFacts, model_folders: Mapping[str, _ModelFolder]) -> MlflowProvenance:
    run, registered = facts.run, facts.registered

    def flavors_of(info: LoggedModelInfo) -> tuple[str, ...]:
        folder = model_folders.get(normalize_path(info.folder))
        return tuple(folder.flavors) if folder and folder.flavors else tuple(info.flavors)

    provenance = MlflowProvenance(
        tracking_uri=run.tracking_uri,
        experiment=ExperimentSource(run.experiment_id, run.experiment_name),
        run=RunSource(
            run.run_id,
            run.run_name,
            run.status,
            iso_utc(run.start_time),
            iso_utc(run.end_time),
            run.user or run.tags.get("mlflow.user"),
        ),
        source=CodeSource(run.source_name, run.source_type, run.git_commit),
        params=dict(run.params),
        metrics={k: _json_number(v) for k, v in run.metrics.items()},
        tags=run.user_tags,
        logged_models=tuple(
            LoggedModelSource(m.model_id, m.name, m.folder, flavors_of(m)) for m in facts.logged_models
        ),
        registered_model=(
            RegisteredVersion(registered.name, registered.version, registered.alias) if registered else None
        ),
        importer=Importer(IMPORTER_NAME, facts.importer_version),
        filter=_plain(facts.filter_summary),
    )
    masked: list[str] = []
    clean = MlflowProvenance.from_mapping(_masked(provenance.to_mapping(), "", masked))
    if _description(run) != _raw_description(run):
        masked.append("package.description")
    if not masked or clean is None:
        return provenance
    return replace(clean, masked_fields=tuple(masked))


def _masked(value: Any, where: str, masked: list[str]) -> Any:
    """``value`` with every credential in its strings masked (a run's params, tags and source name are
    published with the ModelKit: ``https://user:PASS@host``, ``?token=…``); ``masked`` gets where."""
    if isinstance(value, str):
        clean = scrub_secrets(value)
        if clean != value:
            masked.append(where)
        return clean
    if isinstance(value, Mapping):
        return {key: _masked(item, f"{where}.{key}" if where else str(key), masked) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, f"{where}[{index}]", masked) for index, item in enumerate(value)]
    return value
