"""The one doorway from the wizard to the core. Screens call these methods only from worker threads.

``CatalogueBackend`` is the real thing (a connected ``Catalogue`` plus the pipeline). Tests that need
fixed run ids (snapshots) pass another object with the same methods; nothing else does.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kitmlflow_tui.catalogue.records import (
    ArtifactTree,
    ExperimentSummary,
    LevelEntry,
    LoggedModelInfo,
    RegisteredModelInfo,
    RunInfo,
    RunPage,
    RunQuery,
)
from kitmlflow_tui.reference import ModelRef, Reference
from kitmlflow_tui.selection import FilterSpec

if TYPE_CHECKING:
    from kitmlflow_tui.catalogue import Catalogue
    from kitmlflow_tui.kitfile import KitfileOverrides
    from kitmlflow_tui.pipeline import ImportResult, KitfilePreview, Observer, Session


@dataclass(frozen=True)
class ImportChoice:
    """Everything the wizard decided: the run, its tree, the filter and the package fields."""

    run: RunInfo
    tree: ArtifactTree
    spec: FilterSpec
    tag: str
    overrides: KitfileOverrides | None = None
    registered: RegisteredModelInfo | None = None


class Backend(Protocol):
    display_uri: str  # the tracking URI without secrets
    tracking_uri: str

    def list_experiments(self) -> list[ExperimentSummary]: ...

    def search_runs(self, experiment_id: str, query: RunQuery) -> RunPage: ...

    def get_run(self, run_id: str, *, experiment_id: str | None = None) -> RunInfo: ...

    def first_level(self, run: RunInfo) -> tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]: ...

    def folder_level(
        self, run: RunInfo, folder: str, logged_models: tuple[LoggedModelInfo, ...]
    ) -> list[LevelEntry]: ...

    def run_tree(
        self, run: RunInfo, *, on_listed: Callable[[int], None] | None = None, cancel: threading.Event | None = None
    ) -> ArtifactTree: ...

    def resolve_model(self, ref: ModelRef) -> tuple[RunInfo, ArtifactTree, RegisteredModelInfo | None]: ...

    def preview(self, choice: ImportChoice) -> KitfilePreview: ...

    def free_bytes(self) -> int | None: ...

    def run_import(self, choice: ImportChoice, observer: Observer, cancel: threading.Event) -> ImportResult: ...


def connect(reference: Reference | None, tracking_uri_flag: str | None) -> Backend:
    """Resolve the tracking URI and connect (imports MLflow: call it from a worker)."""
    from kitmlflow_tui.catalogue import Catalogue
    from kitmlflow_tui.reference import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(reference.tracking_uri if reference else None, tracking_uri_flag)
    return CatalogueBackend(Catalogue(tracking_uri))


def planned_tracking_uri(reference: Reference | None, tracking_uri_flag: str | None) -> str | None:
    """Where the wizard will connect, when that is known without importing MLflow (for the first paint)."""
    import os

    return (reference.tracking_uri if reference else None) or tracking_uri_flag or os.environ.get("MLFLOW_TRACKING_URI")


class CatalogueBackend:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.tracking_uri = catalogue.tracking_uri
        self.display_uri = catalogue.display_uri

    def list_experiments(self) -> list[ExperimentSummary]:
        return self.catalogue.list_experiments()

    def search_runs(self, experiment_id: str, query: RunQuery) -> RunPage:
        return self.catalogue.search_runs(experiment_id, query)

    def get_run(self, run_id: str, *, experiment_id: str | None = None) -> RunInfo:
        return self.catalogue.get_run(run_id, experiment_id=experiment_id)

    def first_level(self, run: RunInfo) -> tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]:
        return self.catalogue.first_level(run)

    def folder_level(self, run: RunInfo, folder: str, logged_models: tuple[LoggedModelInfo, ...]) -> list[LevelEntry]:
        return self.catalogue.folder_level(run, folder, logged_models)

    def run_tree(
        self, run: RunInfo, *, on_listed: Callable[[int], None] | None = None, cancel: threading.Event | None = None
    ) -> ArtifactTree:
        return self.catalogue.run_tree(run, on_listed=on_listed, cancel=cancel)

    def resolve_model(self, ref: ModelRef) -> tuple[RunInfo, ArtifactTree, RegisteredModelInfo | None]:
        resolved = self.catalogue.resolve(ref, require_finished=False)
        return resolved.run, resolved.tree, resolved.registered

    def session(self, choice: ImportChoice) -> Session:
        from kitmlflow_tui.pipeline import session_from_listing

        return session_from_listing(self.catalogue, choice.run, choice.tree, choice.spec, choice.registered)

    def preview(self, choice: ImportChoice) -> KitfilePreview:
        """The Kitfile the import would write, and the files kit's layer rules would leave out of the ModelKit."""
        from kitmlflow_tui.pipeline import ImportOptions, preview

        return preview(self.session(choice), ImportOptions(tag=choice.tag, overrides=choice.overrides))

    def free_bytes(self) -> int | None:
        from kitmlflow_tui.pipeline import cache_root

        return free_bytes_at(cache_root())

    def run_import(self, choice: ImportChoice, observer: Observer, cancel: threading.Event) -> ImportResult:
        """In a child process: the download and pack threads would otherwise starve the UI of the GIL."""
        from kitmlflow_tui.import_process import ImportJob, run_import_in_child
        from kitmlflow_tui.pipeline import ImportOptions

        options = ImportOptions(tag=choice.tag, overrides=choice.overrides)
        job = ImportJob(self.tracking_uri, choice.run, choice.tree, choice.spec, choice.registered, options)
        return run_import_in_child(job, observer, cancel)


def free_bytes_at(folder: Path) -> int | None:
    """Free space where ``folder`` is (or would be created)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None
