"""kit init's Kitfile corrected with what MLflow knows, the package filled in, provenance added.

A folder holding ``MLmodel`` is the model (the main one: the registered model's, else the first
logged model, else the first in path order); further MLmodel folders are parts of type
``mlflow-model``; nothing inside a model folder gets an entry of its own. The model is named after the
registered model it was registered as (else the logged model, else its folder); ``model.version`` is that
registered version (else the ``-t`` tag's); the framework's own version goes to ``model.parameters``
(``flavor``, ``framework_version``, ``python_version``, ``mlflow_version``). The environment files MLflow
writes (``requirements.txt``, ``conda.yaml``, ``python_env.yaml``) are code where they lie outside a model
folder. Every other entry keeps kit's classification; kit's rules for root metadata files and the license
are re-applied to the result, and every entry gets a name and description (:mod:`.describe`). Provenance
goes to ``model.parameters.mlflow``, else ``datasets[0].parameters.mlflow``, else into a file
``mlflow-provenance.yaml`` listed as docs, which :func:`write_provenance_file` writes (the builder itself
writes nothing).
"""

from __future__ import annotations

import datetime as _dt
import math
import posixpath
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from kitmlflow_tui.core.catalogue.records import LoggedModelInfo, RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.errors import scrub_secrets
from kitmlflow_tui.core.file_tree import FileTree, as_tree
from kitmlflow_tui.core.kitfile import describe
from kitmlflow_tui.core.kitfile.classify import Classification, classify, dropped_by_kit_pack, place_license
from kitmlflow_tui.core.kitfile.mlmodel import (
    Matched,
    ModelFolder,
    framework_of,
    framework_parameters,
    is_registered,
    ordered_model_folders,
)
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
    DatasetSource,
    ExperimentSource,
    Importer,
    LoggedModelSource,
    MlflowProvenance,
    RegisteredVersion,
    RunSource,
)

PROVENANCE_FILE = "mlflow-provenance.yaml"
MLFLOW_MODEL_PART_TYPE = "mlflow-model"
# What MLflow records as the user when it cannot tell who ran the code: no author rather than this.
MLFLOW_UNKNOWN_USER = "unknown"

_PROVENANCE_HEADER = "# MLflow provenance written by kitmlflow; regenerated on every import.\n"
_Entry = TypeVar("_Entry", DatasetEntry, CodeEntry, DocsEntry)


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
    models = ordered_model_folders(folder, logged_models, registered)
    model, datasets, code, docs = _corrected_entries(base, models, run)
    model = _identified(model, models, facts, tag)
    datasets = describe.named_datasets(datasets, run.dataset_inputs, lambda path: _files_in(folder, path))
    docs = describe.described_docs(docs)

    license_id = overrides.license if overrides and overrides.license is not None else base.license_id
    model, datasets, code, package_license = place_license(license_id, model, datasets, code)
    package = _package(run, tag, overrides)
    if package_license:
        package = replace(package, license=package_license)

    # Files kit pack would drop from every layer (see dropped_by_kit_pack) get a code entry each.
    layer_paths = [path or "." for path in _paths(model, datasets, code, docs)]
    code += [CodeEntry(path=p) for p in dropped_by_kit_pack(folder, layer_paths, ignore)]
    code = describe.described_code(code)

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


def run_provenance(
    *,
    run: RunInfo,
    logged_models: Sequence[LoggedModelInfo],
    registered: RegisteredModelInfo | None,
    filter_summary: Mapping[str, Any],
    importer_version: str,
) -> MlflowProvenance:
    """The provenance :func:`build_kitfile` records, for an import whose Kitfile is given as is (``--kitfile``):
    the same masking, flavors as MLflow lists them (no model folder is read)."""
    return _provenance(RunFacts(run, logged_models, registered, filter_summary, importer_version), {})


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


def _files_in(folder: FileTree, path: str) -> list[str]:
    """The names of the files directly in a folder entry (none for a file entry)."""
    try:
        return [entry.name for entry in folder.entries("" if path == "." else path) if entry.kind == "file"]
    except OSError:  # a file, not a folder
        return []


def _paths(
    model: Model | None, datasets: list[DatasetEntry], code: list[CodeEntry], docs: list[DocsEntry]
) -> list[str | None]:
    entries: list[Model | ModelPart | DatasetEntry | CodeEntry | DocsEntry] = [*datasets, *code, *docs]
    if model is not None:
        entries[:0] = [model, *model.parts]
    return [e.path for e in entries]


def _is_within(path: str, folder: str) -> bool:
    path, folder = normalize_path(path), normalize_path(folder)
    return folder == "." or path == folder or path.startswith(folder + "/")


def _folder_name(path: str, run: RunInfo) -> str:
    return posixpath.basename(path) if path != "." else (run.run_name or run.run_id)


# -- kit's entries, corrected ----------------------------------------------------------------------


def _corrected_entries(
    base: Classification, models: list[Matched], run: RunInfo
) -> tuple[Model | None, list[DatasetEntry], list[CodeEntry], list[DocsEntry]]:
    """kit's entries without those inside an MLflow model folder, the MLflow model as the model, and
    kit's rules for root metadata re-applied. Licenses are cleared: the caller places the license."""
    metadata = set(base.root_metadata)
    root_metadata = [p for p in base.root_metadata if _outside_models(p, models)]
    datasets = _kept_outside(base.datasets, models, but_not=metadata)
    code = _kept_outside(base.code, models)
    docs = _kept_outside(base.docs, models)
    model = _corrected_model(base.model, models, run, metadata)

    # MLflow's environment files outside a model folder describe the run's code, not a model or data.
    code += [CodeEntry(path=p) for p in root_metadata if p in describe.ENVIRONMENT_FILES]
    root_metadata = [p for p in root_metadata if p not in describe.ENVIRONMENT_FILES]
    # Root metadata files: model parts when there is a model, else datasets (kit's rule, re-applied).
    if model is not None:
        model = replace(model, parts=model.parts + tuple(ModelPart(path=p) for p in root_metadata), license=None)
    else:
        datasets += [DatasetEntry(path=p) for p in root_metadata]
    datasets = [replace(d, license=None) for d in datasets]
    code = [replace(c, license=None) for c in code]
    return model, datasets, code, docs


def _outside_models(path: str | None, models: list[Matched]) -> bool:
    """Whether an entry's path (None: the root) lies outside every MLflow model folder."""
    return not any(_is_within(path or ".", m.path) for m, _ in models)


def _kept_outside(entries: list[_Entry], models: list[Matched], but_not: Set[str | None] = frozenset()) -> list[_Entry]:
    """The entries outside every MLflow model folder, less those whose path is in ``but_not``."""
    return [e for e in entries if _outside_models(e.path, models) and e.path not in but_not]


def _corrected_model(kit_model: Model | None, models: list[Matched], run: RunInfo, metadata: set[str]) -> Model | None:
    """The MLflow model (else kit's guess) with kit's parts that lie outside every MLflow model folder;
    root metadata files are left out (the caller places them)."""
    if not models:
        if kit_model is None:
            return None
        return replace(kit_model, parts=tuple(p for p in kit_model.parts if p.path not in metadata))
    model = _mlflow_model(models, run)
    if kit_model is None:
        return model
    # kit's own model guess and parts, where they lie outside every MLflow model folder.
    leftovers = [ModelPart(name=kit_model.name, path=kit_model.path), *kit_model.parts]
    kept = [replace(e, name=e.name or None) for e in leftovers if _outside_models(e.path, models)]
    return replace(model, parts=model.parts + tuple(p for p in kept if p.path not in metadata))


def _mlflow_model(models: list[Matched], run: RunInfo) -> Model:
    (main, info), others = models[0], models[1:]
    framework, version, fmt = framework_of(main)
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
        parts=parts,
        parameters=framework_parameters(main, version) or None,
    )


def _identified(model: Model | None, models: list[Matched], facts: RunFacts, tag: ModelKitRef | None) -> Model | None:
    """The model named, versioned and described as a deployer reads it: the registered model's name and version
    when the main model is the registered one, else the logged model's (or file's) name and the tag's version;
    the description from the registry, else the run note's heading, else what MLflow logged."""
    if model is None:
        return None
    registered = facts.registered if models and is_registered(models[0], facts.registered) else None
    name = registered.name if registered else model.name or describe.stem(model.path or ".")
    title = describe.read_note(facts.run.note).title
    if registered and registered.description:
        description = registered.description
    elif title:
        description = title
    else:
        who = facts.run.run_name or facts.run.run_id
        kind = f"{model.framework} model" if model.framework else "Model"
        description = (
            f"{kind} logged by MLflow run {who} (experiment {facts.run.experiment_name or facts.run.experiment_id})"
        )
    return replace(
        model,
        name=name,
        version=registered.version if registered else (tag.version if tag is not None else None),
        description=model.description or scrub_secrets(description),
        parts=describe.named_parts(model.parts),
    )


# -- package and provenance ------------------------------------------------------------------------


def _description(run: RunInfo) -> str:
    """The first paragraph of the run's note that is not a heading (kit has no title field: the heading names
    the model, see :func:`_identified`), its heading when it has no other text, else where it came from;
    credentials in it masked (see :func:`_masked`)."""
    return scrub_secrets(_raw_description(run))


def _raw_description(run: RunInfo) -> str:
    note = describe.read_note(run.note)
    if note.paragraph or note.title:
        return note.paragraph or note.title or ""
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


def _provenance(facts: RunFacts, model_folders: Mapping[str, ModelFolder]) -> MlflowProvenance:
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
            RegisteredVersion(
                registered.name, registered.version, registered.alias, registered.aliases, registered.of_run
            )
            if registered
            else None
        ),
        importer=Importer(IMPORTER_NAME, facts.importer_version),
        filter=_plain(facts.filter_summary),
        datasets=tuple(DatasetSource(d.name, d.digest, d.source_type, d.source, d.context) for d in run.dataset_inputs),
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
