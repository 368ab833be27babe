"""Listing artifact trees: breadth-first over several store roots at once, bounded against broken or
hostile servers, every listed name checked to be a clean child of the folder listed."""

from __future__ import annotations

import dataclasses
import posixpath
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kitmlflow_tui.core.catalogue.mlflow_errors import store_errors, translate_error
from kitmlflow_tui.core.catalogue.records import ArtifactFile
from kitmlflow_tui.core.errors import InterruptedByUser, ServerProtocolError, scrub_secrets
from kitmlflow_tui.core.reference import redact_uri

# Bounds against a broken or hostile server: a listing deeper or larger than this is refused.
MAX_TREE_DEPTH = 64
MAX_TREE_FILES = 2_000_000  # files and folders of one tree
_CLIENT_SIDE_FILES = {"registered_model_meta"}  # written by MLflow's own models:/ downloads


def list_roots(
    repository: Callable[[str], Any],
    roots: Sequence[tuple[str, str, str | None]],
    *,
    jobs: int,
    tracking_uri: str,
    on_listed: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    first_level: dict[str, list[Any]] | None = None,
) -> list[ArtifactFile]:
    """Breadth-first listing of several store roots at once, ``jobs`` folders in flight.

    ``roots`` holds (store URI, local folder prefix, model folder or None); ``repository`` gives
    MLflow's artifact repository of a store URI; ``first_level`` holds listings made already."""
    repos = {uri: repository(uri) for uri, _, _ in roots}
    first_level = first_level or {}

    def list_one(uri: str, path: str) -> list:
        if uri in first_level and path == "":
            return first_level.pop(uri)
        return list_artifacts(repos[uri], path, tracking_uri)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kitmlflow-list") as pool:
        listing = _TreeListing(pool, list_one, {uri: is_http_repository(repo) for uri, repo in repos.items()})
        try:
            for uri, prefix, model in roots:
                listing.submit(_Folder(uri, "", prefix, model, 0))
            while listing.pending:
                if cancel is not None and cancel.is_set():
                    raise InterruptedByUser("Listing cancelled.")
                try:
                    future = listing.completed.get(timeout=0.5)
                except queue.Empty:
                    continue
                folder = listing.pending.pop(future)
                for entry in future.result():
                    listing.take(folder, entry)
                if on_listed is not None:
                    on_listed(len(listing.files))
        finally:
            for future in listing.pending:
                future.cancel()
    return sorted(listing.files.values(), key=lambda f: f.path)


@dataclass(frozen=True)
class _Folder:
    """A folder to list: ``path`` in the store ``uri``, landing under the local folder ``prefix``; ``model`` is the
    model folder the root is (None for a run's own artifacts); ``depth`` counts folders below the root."""

    uri: str
    path: str
    prefix: str
    model: str | None
    depth: int


class _TreeListing:
    """One :func:`list_roots` call's state: the files found, the folders seen and the listings in flight."""

    def __init__(
        self, pool: ThreadPoolExecutor, list_one: Callable[[str, str], list], over_http: dict[str, bool]
    ) -> None:
        self.pool = pool
        self.list_one = list_one
        # MLflow's REST listing is proto3 JSON, which drops zero values: a file listed over HTTP
        # without a size is an empty file, not one of unknown size.
        self.over_http = over_http
        self.files: dict[str, ArtifactFile] = {}
        self.seen_dirs: set[tuple[str, str]] = set()
        self.local_dirs: set[str] = set()  # folders as they land locally, to catch a name that is both
        self.pending: dict[Future, _Folder] = {}
        # Finished listings arrive here one by one: waiting on every pending future at each step
        # (concurrent.futures.wait) costs time in the number queued, quadratic on a wide tree.
        self.completed: queue.SimpleQueue[Future] = queue.SimpleQueue()

    def submit(self, folder: _Folder) -> None:
        if (folder.uri, folder.path) in self.seen_dirs:
            return
        if folder.depth > MAX_TREE_DEPTH:
            raise ServerProtocolError(
                f"The artifact listing is deeper than {MAX_TREE_DEPTH} folders at {folder.path!r}; refusing it."
            )
        prefix, path = folder.prefix, folder.path
        local_dir = f"{prefix}/{path}" if prefix and path else (prefix or path)
        if local_dir in self.files:
            raise _both_file_and_folder(local_dir)
        self.seen_dirs.add((folder.uri, path))
        self.local_dirs.add(local_dir)
        self._check_size()
        future = self.pool.submit(self.list_one, folder.uri, path)
        self.pending[future] = folder
        future.add_done_callback(self.completed.put)

    def take(self, folder: _Folder, entry: Any) -> None:
        """One entry of ``folder``'s listing: a folder to list next, or a file of the tree."""
        child = checked_child(folder.path, entry.path)
        over_http = self.over_http[folder.uri]
        unservable = _proxy_cannot_serve(child) if over_http else None
        if entry.is_dir and unservable is None:
            self.submit(dataclasses.replace(folder, path=child, depth=folder.depth + 1))
            return
        if folder.model is not None and child in _CLIENT_SIDE_FILES:
            return
        local = f"{folder.prefix}/{child}" if folder.prefix else child
        if local in self.files:
            return  # a server that lists a name twice gets it once
        if local in self.local_dirs:
            raise _both_file_and_folder(local)
        size = entry.file_size
        if size is None and over_http and not entry.is_dir:
            size = 0
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ServerProtocolError(
                f"The artifact store listed {local!r} with the size {size!r}; refusing the listing."
            )
        if entry.is_dir:  # a folder the proxy cannot list: in the tree as one unavailable entry
            unservable = f"a folder that cannot be listed: {unservable}"
        self.files[local] = ArtifactFile(local, size, folder.uri, child, folder.model, unservable)
        self._check_size()

    def _check_size(self) -> None:
        if len(self.files) + len(self.seen_dirs) > MAX_TREE_FILES:
            raise ServerProtocolError(
                f"The artifact listing has more than {MAX_TREE_FILES:,} files and folders; refusing it."
            )


def list_artifacts(repository, path: str, tracking_uri: str) -> list:
    """One folder listing. The server answers for what it lists: an entry MLflow's own client refuses
    (``validate_path_is_safe``: ``..``, absolute, backslashes; raised as INVALID_PARAMETER_VALUE) or a
    listing that does not parse is a broken or hostile server (exit 6), never bad input of ours (exit 2)."""
    from mlflow.exceptions import MlflowException

    what = f"the artifacts at {path or '/'}"
    try:
        if is_http_repository(repository):
            from kitmlflow_tui.core.download.transports.http import list_level

            return list_level(repository, path)  # names exactly as listed (MLflow's client decodes them)
        with store_errors(repository.artifact_uri):
            return repository.list_artifacts(path or None)
    except KeyboardInterrupt:
        raise
    except MlflowException as exc:
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
            raise ServerProtocolError(
                f"The artifact store listed an unsafe or invalid path under {path or '/'!r} "
                f"({scrub_secrets(exc.message)[:200]}); refusing to continue."
            ) from exc
        raise translate_error(exc, what, tracking_uri) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ServerProtocolError(
            f"The tracking server {redact_uri(tracking_uri)} sent a malformed listing of {path or '/'!r} "
            f"({scrub_secrets(str(exc))[:200]}); refusing it."
        ) from exc
    except Exception as exc:  # MLflow and requests raise many unrelated types; all are mapped
        raise translate_error(exc, what, tracking_uri) from exc


def _proxy_cannot_serve(path: str) -> str | None:
    from kitmlflow_tui.core.download.transports.http import unservable_reason

    return unservable_reason(path)


def _both_file_and_folder(local: str) -> ServerProtocolError:
    return ServerProtocolError(f"The artifact store listed {local!r} both as a file and as a folder; refusing it.")


def is_http_repository(repository: object) -> bool:
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    return isinstance(repository, HttpArtifactRepository)


def checked_child(parent: str, listed: str) -> str:
    """A listed path must be a direct, clean child of the folder that was listed."""
    clean = posixpath.normpath(listed) if listed else ""
    parts = clean.split("/")
    bad = (
        not listed
        or listed.startswith("/")
        or "\\" in listed
        or "\x00" in listed
        or ".." in parts
        or clean in (".", "")
        or (parent and not clean.startswith(parent + "/"))
        or clean.count("/") != (parent.count("/") + 1 if parent else 0)
    )
    if bad:
        raise ServerProtocolError(
            f"The artifact store listed an unsafe or unexpected path {listed!r} under {parent or '/'!r}; "
            "refusing to continue."
        )
    return clean
