"""Listing artifact trees: breadth-first over several store roots at once, bounded against broken or
hostile servers, every listed name checked to be a clean child of the folder listed."""

from __future__ import annotations

import posixpath
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    files: dict[str, ArtifactFile] = {}
    seen_dirs: set[tuple[str, str]] = set()
    local_dirs: set[str] = set()  # folders as they land locally, to catch a name that is both
    repos = {uri: repository(uri) for uri, _, _ in roots}
    # MLflow's REST listing is proto3 JSON, which drops zero values: a file listed over HTTP
    # without a size is an empty file, not one of unknown size.
    zero_when_unsized = {uri: is_http_repository(repo) for uri, repo in repos.items()}
    first_level = first_level or {}

    def list_one(uri: str, path: str) -> list:
        if uri in first_level and path == "":
            return first_level.pop(uri)
        return list_artifacts(repos[uri], path, tracking_uri)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kitmlflow-list") as pool:
        pending: dict[Future, tuple[str, str, str, str | None, int]] = {}
        # Finished listings arrive here one by one: waiting on every pending future at each step
        # (concurrent.futures.wait) costs time in the number queued, quadratic on a wide tree.
        completed: queue.SimpleQueue[Future] = queue.SimpleQueue()

        def submit(uri: str, path: str, prefix: str, model: str | None, depth: int) -> None:
            if (uri, path) in seen_dirs:
                return
            if depth > MAX_TREE_DEPTH:
                raise ServerProtocolError(
                    f"The artifact listing is deeper than {MAX_TREE_DEPTH} folders at {path!r}; refusing it."
                )
            local_dir = f"{prefix}/{path}" if prefix and path else (prefix or path)
            if local_dir in files:
                raise _both_file_and_folder(local_dir)
            seen_dirs.add((uri, path))
            local_dirs.add(local_dir)
            if len(files) + len(seen_dirs) > MAX_TREE_FILES:
                raise ServerProtocolError(
                    f"The artifact listing has more than {MAX_TREE_FILES:,} files and folders; refusing it."
                )
            future = pool.submit(list_one, uri, path)
            pending[future] = (uri, path, prefix, model, depth)
            future.add_done_callback(completed.put)

        try:
            for uri, prefix, model in roots:
                submit(uri, "", prefix, model, 0)
            while pending:
                if cancel is not None and cancel.is_set():
                    raise InterruptedByUser("Listing cancelled.")
                try:
                    future = completed.get(timeout=0.5)
                except queue.Empty:
                    continue
                uri, path, prefix, model, depth = pending.pop(future)
                for entry in future.result():
                    child = checked_child(path, entry.path)
                    unservable = _proxy_cannot_serve(child) if zero_when_unsized[uri] else None
                    if entry.is_dir and unservable is None:
                        submit(uri, child, prefix, model, depth + 1)
                        continue
                    if model is not None and child in _CLIENT_SIDE_FILES:
                        continue
                    local = f"{prefix}/{child}" if prefix else child
                    if local in files:
                        continue  # a server that lists a name twice gets it once
                    if local in local_dirs:
                        raise _both_file_and_folder(local)
                    size = entry.file_size
                    if size is None and zero_when_unsized[uri] and not entry.is_dir:
                        size = 0
                    if size is not None and (not isinstance(size, int) or size < 0):
                        raise ServerProtocolError(
                            f"The artifact store listed {local!r} with the size {size!r}; refusing the listing."
                        )
                    if entry.is_dir:  # a folder the proxy cannot list: in the tree as one unavailable entry
                        unservable = f"a folder that cannot be listed: {unservable}"
                    files[local] = ArtifactFile(local, size, uri, child, model, unservable)
                    if len(files) + len(seen_dirs) > MAX_TREE_FILES:
                        raise ServerProtocolError(
                            f"The artifact listing has more than {MAX_TREE_FILES:,} files and folders; refusing it."
                        )
                if on_listed is not None:
                    on_listed(len(files))
        finally:
            for future in pending:
                future.cancel()
    return sorted(files.values(), key=lambda f: f.path)


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
