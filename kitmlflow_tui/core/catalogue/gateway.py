"""The MLflow gateway: experiments, runs, registered models and artifact trees of one tracking server.

mlflow itself is imported inside functions so that `--help` and the wizard's first paint never pay for it.

Why one module of this size (about 560 lines): it is the one class over MLflow's client, and each method is a request
or two and their mapping to the records; what reads the server's documents lives beside it (``listing``,
``pages``, ``run_records``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.catalogue.http_limits import configure_http
from kitmlflow_tui.core.catalogue.listing import (
    ListingRoot,
    checked_child,
    is_http_repository,
    list_artifacts,
    list_roots,
)
from kitmlflow_tui.core.catalogue.mlflow_errors import check_reachable, mlflow_errors, store_errors
from kitmlflow_tui.core.catalogue.pages import all_pages
from kitmlflow_tui.core.catalogue.records import (
    ArtifactFile,
    ArtifactTree,
    ExperimentSummary,
    LevelEntry,
    LoggedModelInfo,
    ModelVersionInfo,
    RegisteredModelInfo,
    ResolvedRun,
    RunInfo,
    RunPage,
    RunQuery,
    RunSummary,
)
from kitmlflow_tui.core.catalogue.run_records import dataset_inputs, first_registered, tagged_versions
from kitmlflow_tui.core.download.stores import require_client_library, require_tracking_library
from kitmlflow_tui.core.errors import BadInputError, NotFoundError, RunDeletedError, RunNotFinishedError
from kitmlflow_tui.core.reference import ModelRef, Reference, RunRef, redact_uri, require_importable

MIN_PREFIX = 4
RUN_ID_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},31}}")  # MLflow's run ids are 32 hex digits
PREFIX_SEARCH_LIMIT = 50_000


def unique_run_id(prefix: str, run_ids: list[str], experiment_id: str | None = None) -> str:
    """The one id in ``run_ids`` that starts with ``prefix``; none is exit 4, several exit 2 naming them."""
    where = f"experiment {experiment_id}" if experiment_id else "any experiment"
    matches = sorted({run_id for run_id in run_ids if run_id.startswith(prefix)})
    if not matches:
        raise NotFoundError(f"No run of {where} has an id starting with {prefix}.")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise BadInputError(
            f"The run id prefix {prefix} is ambiguous: {len(matches)} runs of {where} start with it ({shown}).",
            hint="Give more of the id, as the runs table's detail line shows it in full.",
        )
    return matches[0]


# Bounds of a model's version listing (``Catalogue.list_model_versions``): 1,000 versions a page (MLflow
# takes up to 200,000), at most 1,000 pages, at most 5 minutes.
MODEL_VERSIONS_PAGE_SIZE = 1000
MODEL_VERSIONS_MAX_PAGES = 1000
MODEL_VERSIONS_DEADLINE_SECONDS = 300.0
# A run's registered versions are looked up in one page of this many (a run registered more often is not a
# run whose import needs more than the first of them).
RUN_VERSIONS_LIMIT = 100


def _ms(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and value else None


def _filter_literal(value: str) -> str:
    """A string literal of MLflow's search grammar (quoted with ' or ", which it cannot escape)."""
    for quote_char in ("'", '"'):
        if quote_char not in value:
            return f"{quote_char}{value}{quote_char}"
    raise BadInputError(f"The model name {value!r} holds both kinds of quotes: MLflow's search cannot name it.")


def _model_version_info(version: Any) -> ModelVersionInfo:
    model_id = getattr(version, "model_id", None) or None
    source = version.source or None
    if not model_id and source and source.startswith("models:/m-"):
        # Over REST, MLflow 3 leaves model_id empty and records the logged model as the source.
        model_id = source.removeprefix("models:/").split("/", 1)[0]
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        status=str(version.status or "READY"),
        run_id=version.run_id or None,
        model_id=model_id,
        source=source,
        aliases=tuple(str(alias) for alias in (getattr(version, "aliases", None) or ())),
        description=(getattr(version, "description", None) or "").strip() or None,
    )


class Catalogue:
    """The MLflow gateway: experiments, runs, registered models and artifact trees of one server."""

    def __init__(self, tracking_uri: str, *, jobs: int = 8) -> None:
        require_tracking_library(tracking_uri)  # exit 7 naming kitmlflow[local], before MLflow is imported
        configure_http(pool_size=max(jobs, 10))
        check_reachable(tracking_uri)
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.display_uri = redact_uri(tracking_uri)
        self.jobs = max(1, jobs)
        # The registry is the tracking server unless the user named another: never whatever a
        # library in this process last set globally.
        registry_uri = settings.REGISTRY_URI.raw() or tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        self._repositories: dict[str, object] = {}
        # A run's registered version, once asked (the wizard's review builds a session per preview).
        self._registered_of_run: dict[str, RegisteredModelInfo | None] = {}
        self._repositories_lock = threading.Lock()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return mlflow_errors(what, self.tracking_uri)

    # -- experiments and runs ------------------------------------------------------------------
    def list_experiments(self, *, include_deleted: bool = False) -> list[ExperimentSummary]:
        from mlflow.entities import ViewType

        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        with self._errors("the experiments"):
            pages = all_pages(
                lambda token: self._client.search_experiments(view_type=view, max_results=1000, page_token=token),
                "the experiments",
                self.tracking_uri,
            )
            return [
                ExperimentSummary(e.experiment_id, e.name, e.lifecycle_stage, _ms(e.last_update_time)) for e in pages
            ]

    def search_runs(self, experiment_id: str, query: RunQuery | None = None) -> RunPage:
        query = query or RunQuery()
        with self._errors(f"the runs of experiment {experiment_id}"):
            page = self._client.search_runs(
                [experiment_id],
                filter_string=query.filter_string,
                order_by=list(query.order_by) or ["attributes.start_time DESC"],
                max_results=query.max_results,
                page_token=query.page_token,
            )
        runs = tuple(
            RunSummary(
                run_id=r.info.run_id,
                run_name=r.info.run_name or "",
                experiment_id=r.info.experiment_id,
                status=r.info.status,
                start_time=_ms(r.info.start_time),
                end_time=_ms(r.info.end_time),
                user=r.data.tags.get("mlflow.user") or r.info.user_id or None,
                metrics=dict(r.data.metrics),
                params=dict(r.data.params),
            )
            for r in page
        )
        return RunPage(runs, page.token or None)

    def get_run(self, run_id: str, *, experiment_id: str | None = None) -> RunInfo:
        """The run with this id, or with the one id that starts with it (``run_id`` may be a prefix of
        at least MIN_PREFIX hex digits, as git takes commits: the wizard shows 8)."""
        if RUN_ID_PREFIX.fullmatch(run_id):
            ids = self._run_ids(experiment_id)
            if experiment_id is not None and not any(known.startswith(run_id) for known in ids):
                with self._errors(f"experiment {experiment_id}"):  # a search of no experiment finds no run
                    self._client.get_experiment(experiment_id)
            run_id = unique_run_id(run_id, ids, experiment_id)
        with self._errors(f"run {run_id}"):
            run = self._client.get_run(run_id)
        if experiment_id is not None and run.info.experiment_id != experiment_id:
            raise NotFoundError(
                f"Run {run_id} belongs to experiment {run.info.experiment_id}, not to experiment "
                f"{experiment_id} named in the reference.",
                hint=f"Use mlflow://experiments/{run.info.experiment_id}/runs/{run_id} or mlflow://runs/{run_id}.",
            )
        with self._errors(f"experiment {run.info.experiment_id}"):
            experiment = self._client.get_experiment(run.info.experiment_id)
        return RunInfo(
            tracking_uri=self.display_uri,
            experiment_id=run.info.experiment_id,
            experiment_name=experiment.name,
            run_id=run.info.run_id,
            run_name=run.info.run_name or run.info.run_id,
            status=run.info.status,
            start_time=_ms(run.info.start_time),
            end_time=_ms(run.info.end_time),
            user=run.data.tags.get("mlflow.user") or run.info.user_id or None,
            artifact_uri=run.info.artifact_uri,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            output_model_ids=tuple(o.model_id for o in (run.outputs.model_outputs if run.outputs else [])),
            dataset_inputs=dataset_inputs(run.inputs),
            lifecycle_stage=run.info.lifecycle_stage or "active",
        )

    def _run_ids(self, experiment_id: str | None) -> list[str]:
        """The ids of the runs (deleted ones too) of an experiment, or of every experiment; at most
        PREFIX_SEARCH_LIMIT, which is as far as a prefix is looked up."""
        from mlflow.entities import ViewType

        experiments = [experiment_id] if experiment_id else [e.experiment_id for e in self.list_experiments()]
        ids: list[str] = []
        with self._errors("the run ids" + (f" of experiment {experiment_id}" if experiment_id else "")):
            for start in range(0, len(experiments), 100):  # MLflow takes at most 100 experiments a search
                token: str | None = None
                while len(ids) < PREFIX_SEARCH_LIMIT:
                    page = self._client.search_runs(
                        experiments[start : start + 100], run_view_type=ViewType.ALL, max_results=1000, page_token=token
                    )
                    ids += [r.info.run_id for r in page]
                    token = page.token
                    if not token:
                        break
        return ids[:PREFIX_SEARCH_LIMIT]

    # -- registered models ---------------------------------------------------------------------
    def resolve_model(self, ref: ModelRef) -> tuple[RegisteredModelInfo, str | None]:
        """The registered version behind a models/ reference, and where its files live."""
        label = f"registered model {ref.name}" + (f"@{ref.alias}" if ref.alias else f" version {ref.version}")
        from mlflow.exceptions import MlflowException

        with self._errors(label):
            try:
                if ref.alias:
                    version = self._client.get_model_version_by_alias(ref.name, ref.alias)
                else:
                    version = self._client.get_model_version(ref.name, ref.version or "")
            except MlflowException as exc:
                # A missing alias is INVALID_PARAMETER_VALUE to MLflow, but it is a thing not found.
                if exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower():
                    raise NotFoundError(f"{label[:1].upper()}{label[1:]} was not found on {self.display_uri}.") from exc
                raise
        listed = _model_version_info(version)
        info = RegisteredModelInfo(
            ref.name,
            listed.version,
            ref.alias,
            listed.model_id,
            self.source_run_id(listed),
            aliases=listed.aliases,
            description=listed.description,
        )
        return info, listed.source

    def registered_version_of_run(
        self, run: RunInfo, logged_models: Sequence[LoggedModelInfo]
    ) -> RegisteredModelInfo | None:
        """The registered model version the run's model was registered as, or None (two requests at most).

        The versions MLflow recorded with the run (one search by run id), and those the run's logged models name in
        their ``mlflow.modelVersions`` tag (registered from ``models:/m-...``, where MLflow may record no run), are
        the candidates; the one of the first logged model wins, its highest version. Then that version itself, for
        its aliases (a search leaves them out). A registry this user may not read, or that this server lacks, is
        no registered version: it never stops an import of the run. Asked once per run and catalogue."""
        if run.run_id not in self._registered_of_run:
            self._registered_of_run[run.run_id] = self._registered_version_of_run(run, logged_models)
        return self._registered_of_run[run.run_id]

    def _registered_version_of_run(
        self, run: RunInfo, logged_models: Sequence[LoggedModelInfo]
    ) -> RegisteredModelInfo | None:
        from kitmlflow_tui.core.errors import AuthError

        try:
            with self._errors(f"the registered versions of run {run.run_id}"):
                found = self._client.search_model_versions(
                    filter_string=f"run_id = '{run.run_id}'", max_results=RUN_VERSIONS_LIMIT
                )
            candidates = [_model_version_info(v) for v in list(found)[:RUN_VERSIONS_LIMIT] if v.run_id == run.run_id]
            named = [(name, version, m.model_id) for m in logged_models for name, version in m.registered_versions]
            chosen = first_registered(candidates, named, run, logged_models)
            if chosen is None:
                return None
            name, version, model_id, folder = chosen
            listed = self.get_model_version(name, version)
        except (AuthError, NotFoundError, BadInputError):
            return None
        return RegisteredModelInfo(
            name,
            listed.version,
            None,
            listed.model_id or model_id,
            run.run_id,
            aliases=listed.aliases,
            description=listed.description,
            folder=folder,
            of_run=True,
        )

    def source_run_id(self, version: ModelVersionInfo) -> str | None:
        """The run a version came from: its own record, else its logged model's source run (one request)."""
        if version.run_id or not version.model_id:
            return version.run_id
        with self._errors(f"logged model {version.model_id}"):
            return self._client.get_logged_model(version.model_id).source_run_id or None

    def get_model_version(self, name: str, version: str) -> ModelVersionInfo:
        with self._errors(f"registered model {name} version {version}"):
            return _model_version_info(self._client.get_model_version(name, version))

    def model_aliases(self, name: str) -> dict[str, str]:
        """The aliases of a registered model and the version each points at."""
        with self._errors(f"registered model {name}"):
            aliases = self._client.get_registered_model(name).aliases or {}
        return {str(alias): str(version) for alias, version in dict(aliases).items()}

    def registered_model_names(self) -> list[str]:
        """The names of every registered model of the server (paged, bounded as every listing is)."""
        label = "the registered models"
        with self._errors(label):
            pages = all_pages(
                lambda token: self._client.search_registered_models(max_results=1000, page_token=token),
                label,
                self.tracking_uri,
                max_pages=MODEL_VERSIONS_MAX_PAGES,
                deadline_seconds=MODEL_VERSIONS_DEADLINE_SECONDS,
            )
            return sorted({str(model.name) for model in pages})

    def list_model_versions(
        self,
        name: str,
        *,
        page_size: int = MODEL_VERSIONS_PAGE_SIZE,
        max_pages: int = MODEL_VERSIONS_MAX_PAGES,
        deadline_seconds: float = MODEL_VERSIONS_DEADLINE_SECONDS,
    ) -> list[ModelVersionInfo]:
        """Every live version of a registered model, by version number (deleted ones are not listed).

        Paged, and bounded against a server that never ends its listing: a page token seen before, more
        than ``max_pages`` pages or a listing still going after ``deadline_seconds`` is refused (exit 6).
        A model that does not exist is exit 4 (MLflow's search answers it with an empty list)."""
        label = f"the versions of registered model {name}"
        versions: dict[str, ModelVersionInfo] = {}
        with self._errors(label):
            pages = all_pages(
                lambda token: self._client.search_model_versions(
                    filter_string=f"name = {_filter_literal(name)}",
                    max_results=page_size,
                    order_by=["version_number ASC"],
                    page_token=token,
                ),
                label,
                self.tracking_uri,
                max_pages=max_pages,
                deadline_seconds=deadline_seconds,
            )
            for item in pages:
                if item.name == name:  # the filter is exact; a server that answers more gets no say
                    info = _model_version_info(item)
                    versions[info.version] = info
        if not versions:
            with self._errors(f"registered model {name}"):
                self._client.get_registered_model(name)  # not found → exit 4; else a model without versions
        return sorted(versions.values(), key=lambda v: int(v.version))

    # -- artifact trees ------------------------------------------------------------------------
    def _logged_models(self, run: RunInfo) -> list:
        """MLflow 3 logged models of a run: the ones it produced and the ones it output."""
        from mlflow.exceptions import MlflowException

        models: dict[str, object] = {}
        with self._errors(f"the logged models of run {run.run_id}"):
            try:
                pages = all_pages(
                    lambda token: self._client.search_logged_models(
                        experiment_ids=[run.experiment_id],
                        filter_string=f"source_run_id = '{run.run_id}'",
                        page_token=token,
                    ),
                    f"the logged models of run {run.run_id}",
                    self.tracking_uri,
                )
                models.update((m.model_id, m) for m in pages)
            except MlflowException as exc:
                # Servers older than MLflow 3 have no logged models: nothing to add then.
                if exc.error_code not in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "FEATURE_DISABLED"):
                    raise
            for model_id in run.output_model_ids:
                if model_id not in models:
                    models[model_id] = self._client.get_logged_model(model_id)
        return sorted(models.values(), key=lambda m: (m.creation_timestamp or 0, m.model_id))

    def repository(self, artifact_uri: str):
        """MLflow's artifact repository for a store URI (one per URI, shared by listing and download)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with self._repositories_lock:
            if artifact_uri not in self._repositories:
                require_client_library(artifact_uri)  # exit 7 naming the extra, before any listing
                with self._errors(f"artifact store {redact_uri(artifact_uri)}"), store_errors(artifact_uri):
                    self._repositories[artifact_uri] = get_artifact_repository(
                        artifact_uri, tracking_uri=self.tracking_uri
                    )
            return self._repositories[artifact_uri]

    def resolve(
        self,
        ref: Reference,
        *,
        require_finished: bool = True,
        command: str = "import",
        on_listed: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ResolvedRun:
        """Reference → run, artifact tree and registered model (the whole catalogue step). A run's registered
        model is the version its model was registered as, if any. ``command`` names what the user runs
        (``import`` or ``download``), for the words of a run that is not FINISHED."""
        ref = require_importable(ref)
        registered = None
        if isinstance(ref, ModelRef):
            registered, source = self.resolve_model(ref)
            if not registered.source_run_id:
                raise NotFoundError(
                    f"Registered model {ref.name} version {registered.version} has no source run, so there is "
                    "no provenance to record.",
                    hint="Import the run that produced it with mlflow://runs/RUN_ID instead.",
                )
            run = self.get_run(registered.source_run_id)
        else:
            assert isinstance(ref, RunRef)
            run = self.get_run(ref.run_id, experiment_id=ref.experiment_id)
        ensure_live(run, registered)
        if require_finished:
            ensure_finished(run, command=command)
        if registered is not None:
            tree = self._registered_model_tree(run, registered, source, on_listed, cancel)
            registered = dataclasses.replace(registered, folder=tree.logged_models[0].folder)
        else:
            tree = self.run_tree(run, on_listed=on_listed, cancel=cancel)
            registered = self.registered_version_of_run(run, tree.logged_models)
        return ResolvedRun(run, tree, registered)

    def _registered_model_tree(self, run, registered, source, on_listed, cancel) -> ArtifactTree:
        """Only the registered model's files, as the folder ``NAME/``."""
        if registered.model_id:
            with self._errors(f"logged model {registered.model_id}"):
                model = self._client.get_logged_model(registered.model_id)
            info = LoggedModelInfo(model.model_id, model.name, model.name, model.artifact_location, run.run_id)
            root = model.artifact_location
        else:
            # MLflow 2 registrations point at a folder of the run (runs:/RUN/PATH or a store URI).
            if source and source.startswith("models:/"):
                raise NotFoundError(
                    f"Registered model {registered.name} version {registered.version} points at {source}, "
                    "which kitmlflow cannot resolve to files."
                )
            if source and source.startswith("runs:/"):
                path = source[len("runs:/") :].split("/", 1)[1] if "/" in source[len("runs:/") :] else ""
                root = posixpath.join(run.artifact_uri, path) if path else run.artifact_uri
            else:
                root = source or run.artifact_uri
            name = posixpath.basename(root.rstrip("/")) or registered.name
            info = LoggedModelInfo(None, name, name, root, run.run_id)
        files = self._list_roots([ListingRoot(root, info.folder, info.folder)], on_listed, cancel)
        return ArtifactTree(tuple(files), (info,))

    def run_tree(
        self,
        run: RunInfo,
        *,
        on_listed: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ArtifactTree:
        """The run's own artifacts plus each logged model as a ``NAME/`` folder, listed in parallel."""
        top = self.list_level(run.artifact_uri, "")
        models = self._model_folders(run, top)
        roots = [
            ListingRoot(run.artifact_uri, ""),
            *(ListingRoot(m.artifact_location, m.folder, m.folder) for m in models),
        ]
        files = self._list_roots(roots, on_listed, cancel, first_level={run.artifact_uri: top})
        # MLflow 2 stored models inside the run's artifacts: a folder holding MLmodel is a model too.
        logged_folders = {m.folder for m in models}
        for f in files:
            folder, _, base = f.path.rpartition("/")
            if base == "MLmodel" and f.model is None and folder not in logged_folders:
                name = posixpath.basename(folder) or run.run_name
                models.append(LoggedModelInfo(None, name, folder, posixpath.join(run.artifact_uri, folder)))
        return ArtifactTree(tuple(files), tuple(models))

    def _model_folders(self, run: RunInfo, top: list) -> list[LoggedModelInfo]:
        """The run's logged models, each named by the folder it appears as next to the top-level entries."""
        taken = {posixpath.basename(entry.path) for entry in top}
        models: list[LoggedModelInfo] = []
        for model in self._logged_models(run):
            folder = model.name if model.name not in taken else f"{model.name}-{model.model_id}"
            taken.add(folder)
            models.append(
                LoggedModelInfo(
                    model.model_id,
                    model.name,
                    folder,
                    model.artifact_location,
                    model.source_run_id,
                    registered_versions=tagged_versions(getattr(model, "tags", None)),
                )
            )
        return models

    def first_level(self, run: RunInfo) -> tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]:
        """The top of the run's tree without listing it all: its own top-level artifacts plus each logged
        model as a folder (one listing and one search), for a browser that shows something at once."""
        top = self.list_level(run.artifact_uri, "")
        models = self._model_folders(run, top)
        entries = self._level_entries(run.artifact_uri, "", top, "")
        entries += [LevelEntry(model.folder, True, None, model.folder) for model in models]
        return sorted(entries, key=lambda e: e.path), tuple(models)

    def folder_level(self, run: RunInfo, folder: str, logged_models: tuple[LoggedModelInfo, ...]) -> list[LevelEntry]:
        """One folder of the tree ``first_level`` began (``logged_models`` as it returned them), listed on
        its own: for a folder opened while the whole tree is still being listed."""
        root_uri, prefix = run.artifact_uri, ""
        for model in logged_models:
            if model.model_id is not None and (folder == model.folder or folder.startswith(model.folder + "/")):
                root_uri, prefix = model.artifact_location, model.folder
                break
        store_path = folder[len(prefix) :].lstrip("/")
        listed = self.list_level(root_uri, store_path)
        return sorted(self._level_entries(root_uri, store_path, listed, prefix), key=lambda e: e.path)

    def _level_entries(self, root_uri: str, store_path: str, listed: list, prefix: str) -> list[LevelEntry]:
        """MLflow FileInfo entries of ``store_path`` as LevelEntry paths of the run's tree (under ``prefix``)."""
        # Proto3 JSON drops zero values: over HTTP a file listed without a size is empty, not unknown.
        zero_when_unsized = is_http_repository(self.repository(root_uri))
        return [
            LevelEntry(
                path=posixpath.join(prefix, checked_child(store_path, entry.path)),
                is_dir=entry.is_dir,
                size=entry.file_size if entry.file_size is not None or entry.is_dir or not zero_when_unsized else 0,
            )
            for entry in listed
        ]

    def list_level(self, root_uri: str, path: str):
        """One level of a store folder: MLflow FileInfo entries (directories have ``file_size=None``)."""
        return list_artifacts(self.repository(root_uri), path, self.tracking_uri)

    def _list_roots(
        self,
        roots: list[ListingRoot],
        on_listed: Callable[[int], None] | None,
        cancel: threading.Event | None,
        first_level: dict[str, list[Any]] | None = None,
    ) -> list[ArtifactFile]:
        return list_roots(
            self.repository,
            roots,
            jobs=self.jobs,
            tracking_uri=self.tracking_uri,
            on_listed=on_listed,
            cancel=cancel,
            first_level=first_level,
        )


def ensure_live(run: RunInfo, registered: RegisteredModelInfo | None = None) -> None:
    """A deleted run (MLflow's trash: ``lifecycle_stage`` deleted) is not found, whoever points at it."""
    if run.lifecycle_stage != "deleted":
        return
    whose = f"Run {run.run_name} ({run.run_id})"
    if registered is not None:
        whose = f"Registered model {registered.name} version {registered.version} comes from run {run.run_id}, which"
    raise RunDeletedError(
        f"{whose} is deleted (in MLflow's trash).",
        hint=f"Restore it first (mlflow runs restore --run-id {run.run_id}), or import another run.",
    )


def ensure_finished(run: RunInfo, *, command: str = "import") -> None:
    """A run that is not FINISHED is refused (exit 5); the hint says what can be done for its status and the
    command (``import`` or ``download``)."""
    if run.status == "FINISHED":
        return
    who = f"Run {run.run_name} ({run.run_id})" if run.run_name != run.run_id else f"Run {run.run_id}"
    if run.status in ("RUNNING", "SCHEDULED"):
        message = f"{who} is {run.status}, not FINISHED: its artifacts may still change."
        hint = f"Wait for it to finish, then {command} it again."
    else:
        message = f"{who} is {run.status}, not FINISHED: it stopped before the end and will not finish, so its artifacts may be incomplete."
        hint = "Import a FINISHED run instead (a run of the training that completed)."
    if command == "download":
        hint = (
            "Wait for it to finish, or add --any-status to download the artifacts it has now."
            if run.status in ("RUNNING", "SCHEDULED")
            else "Add --any-status to download its artifacts as they are, or download a FINISHED run."
        )
    else:
        hint += " To look at its artifacts as they are: kitmlflow download URI --dest DIR --any-status."
    raise RunNotFinishedError(message, hint=hint)
