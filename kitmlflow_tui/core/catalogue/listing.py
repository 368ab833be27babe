"""Listing artifact trees: breadth-first over several store roots at once, bounded against broken or
hostile servers, every listed name checked to be a clean child of the folder listed."""

from __future__ import annotations

import collections
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


@dataclass(frozen=True)
class ListingRoot:
    """One store root to list: its URI, the local folder its files land under ("" for the run's own
    artifacts) and the logged model folder it is (None for the run's own artifacts)."""

    store_uri: str
    prefix: str
    model: str | None = None

    def local(self, path: str) -> str:
        """Where ``path`` of this root's store lands locally."""
        return f"{self.prefix}/{path}" if self.prefix and path else (self.prefix or path)


def list_roots(
    repository: Callable[[str], Any],
    roots: Sequence[ListingRoot],
    *,
    jobs: int,
    tracking_uri: str,
    on_listed: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    first_level: dict[str, list[Any]] | None = None,
) -> list[ArtifactFile]:
    """Breadth-first listing of several store roots at once, ``jobs`` folders in flight.

    ``repository`` gives MLflow's artifact repository of a store URI; ``first_level`` holds listings made
    already (by store URI, of its top folder)."""
    repos = {root.store_uri: repository(root.store_uri) for root in roots}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kitmlflow-list") as pool:
        listing = _TreeListing(pool, jobs, repos, tracking_uri, first_level or {})
        try:
            for root in roots:
                listing.submit(_Folder(root, "", 0))
            while listing.pending:
                if cancel is not None and cancel.is_set():
                    raise InterruptedByUser("Listing cancelled.")
                try:
                    future = listing.completed.get(timeout=0.5)
                except queue.Empty:
                    continue
                listing.take(listing.pending.pop(future), future.result())
                if on_listed is not None:
                    on_listed(len(listing.files))
        finally:
            for future in listing.pending:
                future.cancel()
    return sorted(listing.files.values(), key=lambda f: f.path)


@dataclass(frozen=True)
class _Folder:
    """A folder to list: its path inside its root's store, and how deep it lies."""

    root: ListingRoot
    path: str
    depth: int

    @property
    def local_dir(self) -> str:
        return self.root.local(self.path)


class _TreeListing:
    """One listing under way: the files found, the folders listed or in flight, and the bounds on them."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        jobs: int,
        repos: dict[str, Any],
        tracking_uri: str,
        first_level: dict[str, list[Any]],
    ) -> None:
        self.files: dict[str, ArtifactFile] = {}
        self.pending: dict[Future[list[Any]], _Folder] = {}  # at most ``jobs``: the pool's own queue is unbounded
        # Folders found but not yet asked for: handed to the pool as listings finish, so a bound that refuses
        # the tree stops the requests at once, not after the server answered every folder queued before it.
        self._waiting: collections.deque[_Folder] = collections.deque()
        self._jobs = jobs
        # Finished listings arrive here one by one: waiting on every pending future at each step
        # (concurrent.futures.wait) costs time in the number queued, quadratic on a wide tree.
        self.completed: queue.SimpleQueue[Future[list[Any]]] = queue.SimpleQueue()
        self._pool = pool
        self._repos = repos
        self._tracking_uri = tracking_uri
        self._first_level = first_level
        self._seen_dirs: set[tuple[str, str]] = set()
        self._local_dirs: set[str] = set()  # folders as they land locally, to catch a name that is both
        # MLflow's REST listing is proto3 JSON, which drops zero values: a file listed over HTTP
        # without a size is an empty file, not one of unknown size.
        self._zero_when_unsized = {uri: is_http_repository(repo) for uri, repo in repos.items()}

    def submit(self, folder: _Folder) -> None:
        """Queue a folder's listing, unless it was queued already."""
        if (folder.root.store_uri, folder.path) in self._seen_dirs:
            return
        if folder.depth > MAX_TREE_DEPTH:
            raise ServerProtocolError(
                f"The artifact listing is deeper than {MAX_TREE_DEPTH} folders at {folder.path!r}; refusing it."
            )
        local_dir = folder.local_dir
        if local_dir in self.files:
            raise _both_file_and_folder(local_dir)
        self._seen_dirs.add((folder.root.store_uri, folder.path))
        self._local_dirs.add(local_dir)
        self._check_count()
        self._waiting.append(folder)
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and len(self.pending) < self._jobs:
            folder = self._waiting.popleft()
            future = self._pool.submit(self._list_one, folder.root.store_uri, folder.path)
            self.pending[future] = folder
            future.add_done_callback(self.completed.put)

    def _list_one(self, uri: str, path: str) -> list[Any]:
        if uri in self._first_level and path == "":
            return self._first_level.pop(uri)
        return list_artifacts(self._repos[uri], path, self._tracking_uri)

    def take(self, folder: _Folder, entries: list[Any]) -> None:
        """One folder's listing: its folders queued, its files recorded."""
        for entry in entries:
            child = checked_child(folder.path, entry.path)
            unservable = _proxy_cannot_serve(child) if self._zero_when_unsized[folder.root.store_uri] else None
            if entry.is_dir and unservable is None:
                self.submit(_Folder(folder.root, child, folder.depth + 1))
            else:
                self._take_file(folder.root, child, entry, unservable)
        self._start_waiting()  # this folder's slot is free

    def _take_file(self, root: ListingRoot, child: str, entry: Any, unservable: str | None) -> None:
        """A file, or a folder the proxy cannot list (in the tree as one unavailable entry)."""
        if root.model is not None and child in _CLIENT_SIDE_FILES:
            return
        local = root.local(child)
        if local in self.files:
            return  # a server that lists a name twice gets it once
        if local in self._local_dirs:
            raise _both_file_and_folder(local)
        size = self._checked_size(root.store_uri, local, entry)
        if entry.is_dir:
            unservable = f"a folder that cannot be listed: {unservable}"
        self.files[local] = ArtifactFile(local, size, root.store_uri, child, root.model, unservable)
        self._check_count()

    def _checked_size(self, uri: str, local: str, entry: Any) -> int | None:
        size = entry.file_size
        if size is None and self._zero_when_unsized[uri] and not entry.is_dir:
            size = 0
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ServerProtocolError(
                f"The artifact store listed {local!r} with the size {size!r}; refusing the listing."
            )
        return size

    def _check_count(self) -> None:
        if len(self.files) + len(self._seen_dirs) > MAX_TREE_FILES:
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
