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

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError

if TYPE_CHECKING:  # the wizard's first paint imports this module: the catalogue's package stays unloaded
    from kitmlflow_tui.core.attest.keys import KeyInfo
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.catalogue.records import (
        ArtifactTree,
        ExperimentSummary,
        LevelEntry,
        LoggedModelInfo,
        RegisteredModelInfo,
        RunInfo,
        RunPage,
        RunQuery,
    )
    from kitmlflow_tui.core.kitfile import KitfileOverrides
    from kitmlflow_tui.core.modelkit_reference import ModelKitRef
    from kitmlflow_tui.core.pipeline import ImportOptions, ImportResult, KitfilePreview, Observer, Session
    from kitmlflow_tui.core.reference import ModelRef, Reference
    from kitmlflow_tui.core.registry import StoredCredential
    from kitmlflow_tui.core.selection.plan import FilterSpec


@dataclass(frozen=True)
class ImportChoice:
    """Everything the wizard decided: the run, its tree, the filter, the package fields, where to push."""

    run: RunInfo
    tree: ArtifactTree
    spec: FilterSpec
    tag: ModelKitRef
    overrides: KitfileOverrides | None = None
    registered: RegisteredModelInfo | None = None
    push_to: ModelKitRef | None = None  # None: local storage only
    format: str = "modelkit"  # modelkit | modelpack
    sign_key: Path | None = None  # signs the provenance attestation attached to the pushed ModelKit

    def options(self) -> ImportOptions:
        from kitmlflow_tui.core.pipeline import ImportOptions

        return ImportOptions(
            tag=self.tag, overrides=self.overrides, push_to=self.push_to, format=self.format, sign_key=self.sign_key
        )


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

    def push(
        self, choice: ImportChoice, packed: ImportResult, observer: Observer, cancel: threading.Event
    ) -> ImportResult: ...

    def kept_download(self, choice: ImportChoice) -> tuple[Path, int]: ...

    def discard_download(self, choice: ImportChoice) -> int: ...

    def stored_login(self, registry: str) -> StoredCredential | None: ...

    def check_sign_key(self, path: Path) -> KeyInfo: ...

    def public_key_of(self, sign_key: Path, key_id: str) -> Path | None: ...


def connect(reference: Reference | None, tracking_uri_flag: str | None) -> Backend:
    """Resolve the tracking URI and connect (imports MLflow: call it from a worker).

    With no server named anywhere, the wizard stops and says so: MLflow's own default would be a new
    ``./mlflow.db`` in whatever folder the user stands in, an empty store that only looks like a server."""
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.reference import resolve_tracking_uri

    if planned_tracking_uri(reference, tracking_uri_flag) is None:
        raise no_server_configured(Path.cwd())
    tracking_uri = resolve_tracking_uri(reference.tracking_uri if reference else None, tracking_uri_flag)
    return CatalogueBackend(Catalogue(tracking_uri))


def no_server_configured(folder: Path) -> BadInputError:
    """The wizard's words for no server: how to name one when starting it."""
    from kitmlflow_tui.core.reference import no_tracking_server

    ways = (
        "Name one: kitmlflow --tracking-uri URI (or kitmlflow http://HOST:PORT), or set MLFLOW_TRACKING_URI; "
        "kitmlflow demo builds a demo store and opens it."
    )
    return no_tracking_server(folder, ways=ways, flag="kitmlflow --tracking-uri")


def planned_tracking_uri(reference: Reference | None, tracking_uri_flag: str | None) -> str | None:
    """Where the wizard will connect, when that is known without importing MLflow (for the first paint)."""
    return (reference.tracking_uri if reference else None) or tracking_uri_flag or settings.TRACKING_URI.raw()


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
        from kitmlflow_tui.core.pipeline import session_from_listing

        return session_from_listing(self.catalogue, choice.run, choice.tree, choice.spec, choice.registered)

    def preview(self, choice: ImportChoice) -> KitfilePreview:
        """The Kitfile the import would write, and the files kit's layer rules would leave out of the ModelKit."""
        from kitmlflow_tui.core.pipeline import preview

        return preview(self.session(choice), choice.options())

    def free_bytes(self) -> int | None:
        from kitmlflow_tui.core.pipeline import cache_root

        return free_bytes_at(cache_root())

    def run_import(self, choice: ImportChoice, observer: Observer, cancel: threading.Event) -> ImportResult:
        """In a child process: the download and pack threads would otherwise starve the UI of the GIL."""
        from kitmlflow_tui.tui.import_process import ImportJob, run_import_in_child

        job = ImportJob(self.tracking_uri, choice.run, choice.tree, choice.spec, choice.registered, choice.options())
        return run_import_in_child(job, observer, cancel)

    def push(
        self, choice: ImportChoice, packed: ImportResult, observer: Observer, cancel: threading.Event
    ) -> ImportResult:
        """Push what an import packed (again after a failed push, or from the done step's "Push to"): only
        the blobs the registry lacks move; with the choice's key, the signed attestation is attached."""
        from kitmlflow_tui.tui.import_process import PushJob, run_import_in_child

        return run_import_in_child(PushJob(packed, choice.options()), observer, cancel)

    def kept_download(self, choice: ImportChoice) -> tuple[Path, int]:
        """Where an interrupted import of the run keeps its downloads for a resume, and their bytes."""
        from kitmlflow_tui.core.pipeline import kept_for_resume

        return kept_for_resume(self.tracking_uri, choice.run.run_id)

    def discard_download(self, choice: ImportChoice) -> int:
        from kitmlflow_tui.core.pipeline import discard_run_cache

        return discard_run_cache(self.tracking_uri, choice.run.run_id)

    def stored_login(self, registry: str) -> StoredCredential | None:
        from kitmlflow_tui.core.registry import CredentialStore

        return CredentialStore.default().get(registry)

    def check_sign_key(self, path: Path) -> KeyInfo:
        """Whether the import can sign with the key in ``path`` (its password from the environment, as the CLI
        reads it): its algorithm and id, or the BadInputError the import would raise. Nothing is signed."""
        from kitmlflow_tui.core.attest.keys import check_sign_key  # cryptography: off the first paint

        return check_sign_key(path)

    def public_key_of(self, sign_key: Path, key_id: str) -> Path | None:
        """The public key beside ``sign_key`` that verifies its signatures (cosign.pub beside cosign.key)."""
        from kitmlflow_tui.core.attest.keys import public_key_beside

        return public_key_beside(sign_key, key_id)


def free_bytes_at(folder: Path) -> int | None:
    """Free space where ``folder`` is (or would be created)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None
