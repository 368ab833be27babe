"""The shared core: reference → catalogue → plan → download (→ Kitfile → pack).

The CLI and the wizard both call these functions; they only build the inputs and render the
observer's events. Nothing here prints or imports Textual.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kitmlflow_tui.catalogue import Catalogue, ResolvedRun
from kitmlflow_tui.download import Downloader, DownloadResult, ProgressEvent
from kitmlflow_tui.reference import Reference, require_importable, resolve_tracking_uri
from kitmlflow_tui.selection import FilterSpec, Plan, make_plan


class Observer:
    """Receives what the pipeline is doing. The default ignores everything; renderers override."""

    def step(self, name: str, message: str) -> None:  # "connect", "list", "plan", "download", ...
        pass

    def listed(self, files: int) -> None:
        pass

    def progress(self, event: ProgressEvent) -> None:
        pass


@dataclass
class Session:
    """A connected catalogue plus the run and plan it resolved to."""

    catalogue: Catalogue
    resolved: ResolvedRun
    plan: Plan
    cancel: threading.Event = field(default_factory=threading.Event)


def connect(reference: Reference, tracking_uri_flag: str | None, *, jobs: int, observer: Observer) -> Catalogue:
    tracking_uri = resolve_tracking_uri(reference.tracking_uri, tracking_uri_flag)
    catalogue_jobs = max(jobs, 8)
    observer.step("connect", f"Connecting to {_display(tracking_uri)}")
    return Catalogue(tracking_uri, jobs=catalogue_jobs)


def _display(uri: str) -> str:
    from kitmlflow_tui.reference import redact_uri

    return redact_uri(uri)


def plan(
    reference: Reference,
    spec: FilterSpec,
    *,
    tracking_uri_flag: str | None = None,
    jobs: int = 8,
    observer: Observer | None = None,
    cancel: threading.Event | None = None,
) -> Session:
    """Resolve the reference, list its whole tree and apply the filter: no byte is downloaded."""
    observer = observer or Observer()
    cancel = cancel or threading.Event()
    require_importable(reference)  # bad input fails before the network is touched
    spec.validate()
    catalogue = connect(reference, tracking_uri_flag, jobs=jobs, observer=observer)
    observer.step("list", "Reading the run and listing its artifacts")
    resolved = catalogue.resolve(reference, on_listed=observer.listed, cancel=cancel)
    the_plan = make_plan(resolved.tree, spec)
    observer.step("plan", f"{len(the_plan.selected)} of {len(resolved.tree.files)} files selected")
    return Session(catalogue, resolved, the_plan, cancel)


def download(session: Session, dest: Path, *, jobs: int = 8, observer: Observer | None = None) -> DownloadResult:
    observer = observer or Observer()
    observer.step("download", f"Downloading into {dest}")
    downloader = Downloader(
        session.catalogue.repository,
        jobs=jobs,
        on_progress=observer.progress,
        cancel=session.cancel,
        tracking_uri=session.catalogue.tracking_uri,
    )
    return downloader.download(session.plan, dest)


def cache_root() -> Path:
    """Where imports keep their downloads: ``$KITMLFLOW_CACHE_DIR``, else the user cache dir."""
    configured = os.environ.get("KITMLFLOW_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("kitmlflow", appauthor=False)) / "downloads"


def run_cache_dir(session: Session) -> Path:
    """One folder per (server, run), so a re-run of the same import resumes where it stopped."""
    server = hashlib.sha256(session.catalogue.tracking_uri.encode()).hexdigest()[:12]
    return cache_root() / server / session.resolved.run.run_id
