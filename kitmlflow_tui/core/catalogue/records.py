"""The values of the catalogue step: what MLflow knows about a run and its artifact tree, with sizes.

Plain frozen dataclasses, no MLflow import: the selection, the Kitfile and the wizard use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoggedModelInfo:
    """An MLflow 3 logged model (or an MLflow 2 model folder) of a run."""

    model_id: str | None  # "m-..." for MLflow 3 logged models, None for an MLflow 2 folder
    name: str
    folder: str  # where it appears in the run's tree, without a trailing slash ("model", "echo")
    artifact_location: str  # the store URI its files live under
    source_run_id: str | None = None
    flavors: tuple[str, ...] = ()  # flavor names as far as MLflow knows them without a download
    # (name, version) of each registered version MLflow noted on the logged model (its mlflow.modelVersions tag)
    registered_versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RegisteredModelInfo:
    """The registered model version an import holds: the one it went through (``models/NAME/VERSION`` or
    ``@ALIAS``), or the one the run's model was registered as (a plain run import)."""

    name: str
    version: str
    alias: str | None  # the alias the URI named
    model_id: str | None
    source_run_id: str | None
    aliases: tuple[str, ...] = ()  # every alias pointing at this version
    description: str | None = None  # the version's description in the model registry
    folder: str | None = None  # the run's folder holding it, when MLflow names a folder (MLflow 2) rather than an id
    of_run: bool = False  # found as what the run's model was registered as (the import takes the whole run)


@dataclass(frozen=True)
class ModelVersionInfo:
    """One version of a registered model as a listing gives it (``kitmlflow sync``)."""

    name: str
    version: str
    status: str  # READY, PENDING_REGISTRATION or FAILED_REGISTRATION
    run_id: str | None  # None when MLflow recorded only the logged model (see Catalogue.source_run_id)
    model_id: str | None
    source: str | None
    aliases: tuple[str, ...] = ()  # a get answers them; a search leaves them out
    description: str | None = None


@dataclass(frozen=True)
class DatasetInput:
    """A dataset the run logged as an input (``mlflow.log_input``): what MLflow recorded of it, not its data."""

    name: str
    digest: str | None = None
    source_type: str | None = None  # "s3", "local", "http", "hugging_face", "code", ...
    source: str | None = None  # the URI (or path) it was read from, when the source names one
    context: str | None = None  # the mlflow.data.context tag: "training", "evaluation", ...


@dataclass(frozen=True)
class RunInfo:
    """One run with everything provenance needs. Times are milliseconds since the epoch (UTC)."""

    tracking_uri: str  # already redacted: never holds credentials
    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    user: str | None
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each metric
    tags: dict[str, str] = field(default_factory=dict)  # every tag, mlflow.* included
    output_model_ids: tuple[str, ...] = ()  # logged models the run declared as its outputs
    dataset_inputs: tuple[DatasetInput, ...] = ()  # datasets the run logged as inputs
    lifecycle_stage: str = "active"  # "deleted" once the run is in MLflow's trash

    @property
    def note(self) -> str | None:
        return self.tags.get("mlflow.note.content") or None

    @property
    def source_name(self) -> str | None:
        return self.tags.get("mlflow.source.name") or None

    @property
    def source_type(self) -> str | None:
        return self.tags.get("mlflow.source.type") or None

    @property
    def git_commit(self) -> str | None:
        return self.tags.get("mlflow.source.git.commit") or None

    @property
    def user_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if not k.startswith("mlflow.")}


@dataclass(frozen=True)
class ArtifactFile:
    """One file of the tree. ``path`` is what filters see and where it lands locally; ``remote_path`` is
    its path inside the store at ``root_uri`` (the run's artifact root, or a logged model's)."""

    path: str
    size: int | None  # None when the store did not say
    root_uri: str
    remote_path: str
    model: str | None = None  # the logged model folder it belongs to, if any
    unavailable: str | None = None  # why the store cannot serve it (the plan leaves it out with this reason)


@dataclass(frozen=True)
class ArtifactTree:
    """Every file of a run: its own artifacts plus its logged models (as ``NAME/`` folders)."""

    files: tuple[ArtifactFile, ...]
    logged_models: tuple[LoggedModelInfo, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True)
class LevelEntry:
    """One entry of a single folder listing (``Catalogue.first_level``); a folder has no size."""

    path: str
    is_dir: bool
    size: int | None
    model: str | None = None  # the logged model folder this entry is, if it is one


@dataclass(frozen=True)
class ExperimentSummary:
    experiment_id: str
    name: str
    lifecycle_stage: str
    last_update_time: int | None


@dataclass(frozen=True)
class RunSummary:
    """A row of the runs table: what a run search returns, without tags."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    user: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunQuery:
    """Which page of an experiment's runs to fetch: an MLflow filter string and order, a page size."""

    filter_string: str = ""
    order_by: tuple[str, ...] = ("attributes.start_time DESC",)
    max_results: int = 200
    page_token: str | None = None


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunSummary, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class ResolvedRun:
    """What a reference comes to: the run, its tree, and the registered model it went through."""

    run: RunInfo
    tree: ArtifactTree
    registered: RegisteredModelInfo | None = None
