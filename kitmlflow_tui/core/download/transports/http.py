"""The MLflow artifact proxy (``mlflow-artifacts:``, ``http(s)://``): exact names, ranged GETs, the stall detector.

Names. The proxy lists names as stored, byte for byte; MLflow's own client then percent-decodes them
(``validate_path_is_safe``) and requests them without encoding, so ``q?mark.txt`` is cut at the ``?`` and
``pct%2Fslash.txt`` is listed as ``pct/slash.txt``. Here the listing keeps the name exactly and every path
segment of a request is percent-encoded. What the server itself cannot serve (checked against MLflow 3.17: its
download handler decodes the path until it stops changing, and refuses ``#``) is named by
``unservable_reason``, so the plan can leave such a file out with that reason instead of failing the run.

Answers. A partial answer must carry the range asked for (``Content-Range``) and a whole one sent for a range the
listed size; its ``ETag`` (else ``Last-Modified``) names the version, and a resumed range is asked for with
``If-Range``, so that a changed object comes whole rather than as a range of other bytes (MLflow 3.17 honours it
for a local artifact store; for a remote one it answers every request whole and names no version).
"""

from __future__ import annotations

import posixpath
import threading
import urllib.parse
from collections.abc import Generator, Iterator
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile, iter_body
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    Transport,
    VersionCallback,
    bounded,
    check_partial,
    check_range,
    check_whole,
    encode_path,
    range_header,
    stall_seconds,
)
from kitmlflow_tui.core.download.transports.presigned import PresignedUrls
from kitmlflow_tui.core.download.transports.server_session import path_of, session_for
from kitmlflow_tui.core.download.transports.versions import ObjectVersion, http_version, if_range
from kitmlflow_tui.core.download.transports.watchdog import Watch

SOURCE = "proxy"  # the first word of the versions this transport names (a presigned store's are "store")

_ENDPOINT = "/mlflow-artifacts/artifacts"
# Whether the proxy reads ranges cheaply. MLflow 3.17 serves a local artifact store as a file (ranges straight
# from disk: ``Accept-Ranges: bytes``, a strong ETag, a Content-Length) but fetches an object of any other store
# WHOLE for every request, ranged or not, and streams it without any of those headers (checked against 3.17.2):
# parallel ranges of one file would each cost the server the whole file. An answer that offers ranges of a named
# version says the file is served from where it is stored. (A server that offered them with a version that
# changes at every request would have its ranges refused as another version, and the file read in one stream.)


def unservable_reason(path: str) -> str | None:
    """Why the MLflow proxy cannot serve this stored name (None when it can)."""
    if "#" in path:
        return "MLflow's artifact proxy refuses names containing '#'"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "MLflow's artifact proxy cannot serve names containing control characters"
    if urllib.parse.unquote(path) != path:
        return "MLflow's artifact proxy decodes %XX escapes in the path, so it cannot serve this name"
    return None


def list_level(repository: Any, path: str) -> list:
    """One folder of the proxy as MLflow ``FileInfo`` entries, with the names exactly as the server sent them
    (MLflow's ``HttpArtifactRepository.list_artifacts`` decodes them)."""
    from mlflow.entities import FileInfo
    from mlflow.utils.request_utils import augmented_raise_for_status

    api_base, tail = repository.artifact_uri.split(_ENDPOINT, maxsplit=1)
    root = tail.lstrip("/")
    query = {"path": posixpath.join(root, path) if path else root}
    response = session_for(repository).get(path_of(api_base) + _ENDPOINT, query=query, stream=False)
    augmented_raise_for_status(response)
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError("the listing is not a JSON object")
    entries = document.get("files", [])
    if not isinstance(entries, list):
        raise ValueError("'files' is not a list")
    infos = []
    for entry in entries:
        name = entry["path"]
        if not isinstance(name, str):
            raise TypeError(f"a listed path is {type(name).__name__}, not a string")
        size = int(entry["file_size"]) if "file_size" in entry else None
        infos.append(FileInfo(posixpath.join(path, name) if path else name, bool(entry.get("is_dir", False)), size))
    # Like MLflow: listing a file's own path gives that file alone, which means "not a folder".
    if (
        len(infos) == 1
        and not infos[0].is_dir
        and path
        and infos[0].path == posixpath.join(path, posixpath.basename(path))
    ):
        return []
    return sorted(infos, key=lambda info: info.path)


class HttpTransport(Transport):
    """Streams through the tracking server with MLflow's credentials, TLS settings and request timeout; a large
    file of a store the server signs URLs for is read from the store itself (``presigned``)."""

    kind = "http"

    def __init__(self, repository: Any) -> None:
        self._session = session_for(repository)
        self._root = path_of(repository.artifact_uri)
        self.supports_ranges = True  # until the server answers a ranged GET with the whole body
        self._serves_ranges = False  # until an answer offers ranges of a named version (see above)
        api_base, proxied, root = repository.artifact_uri.partition(_ENDPOINT)  # .../api/2.0, the run's root
        self._presigned = PresignedUrls(api_base if proxied else None, root.strip("/"))

    def splittable(self, file: ArtifactFile) -> bool:
        return self._presigned.has_link(file) or (self.supports_ranges and self._serves_ranges)

    def distrust(self, file: ArtifactFile) -> None:
        self._presigned.give_up(file)

    def close(self) -> None:
        self._presigned.close()

    def stream(
        self,
        file: ArtifactFile,
        start: int = 0,
        end: int | None = None,
        *,
        cancel: threading.Event | None = None,
        expect: ObjectVersion | None = None,
        on_version: VersionCallback | None = None,
    ) -> Generator[bytes, None, None]:
        from mlflow.utils.request_utils import augmented_raise_for_status

        check_range(start, end)
        if end == start:
            return
        if self._presigned.wanted(file) and (link := self._presigned.link(file)) is not None:
            yield from self._presigned.stream(file, link, start, end, cancel, expect, on_version)
            return
        headers = _range_headers(start, end, expect)
        # The wait for the answer and its first byte is MLflow's request timeout (a proxied object from a
        # remote store reaches us only once the server has fetched it); the watch takes over from the first byte.
        response = self._session.get(f"{self._root}/{encode_path(file.remote_path)}", headers=headers, stream=True)
        raw = response.raw
        abort = raw.shutdown if hasattr(raw, "shutdown") else response.close
        with response, Watch(abort, stall_seconds=stall_seconds(), cancel=cancel) as watch:
            if start and response.status_code == 416:
                return  # nothing at or after ``start``: the caller's size check says whether that is right
            augmented_raise_for_status(response)
            skip = _bytes_before_start(response, headers is not None, start, end, file.size)
            version = http_version(SOURCE, response.headers)
            if on_version is not None:
                on_version(version)  # a changed object ends the stream here
            self._learn_ranges(response, version, whole=bool(skip))
            chunks = watch.track(iter_body(response, CHUNK_BYTES))
            try:
                yield from bounded(_skipped(chunks, skip), start, end)
            except Exception:
                watch.check(file.path)
                raise
            watch.check(file.path)

    def _learn_ranges(self, response: Any, version: ObjectVersion, *, whole: bool) -> None:
        """What an answer says of the server's ranges (``whole``: a ranged GET got the whole object)."""
        if whole:
            self.supports_ranges = False  # a whole answer of the same version: the server ignores ranges
        elif version.tag and response.headers.get("Accept-Ranges", "").strip().lower() == "bytes":
            self._serves_ranges = True


def _range_headers(start: int, end: int | None, expect: ObjectVersion | None) -> dict[str, str] | None:
    """The Range header of ``[start, end)`` (None: the whole object), with If-Range when ``expect`` is a version
    this server named."""
    byte_range = range_header(start, end)
    if not byte_range:
        return None
    headers = {"Range": byte_range}
    condition = if_range(expect) if expect is not None and (expect.tag or "").startswith(SOURCE + " ") else None
    if condition:
        headers["If-Range"] = condition
    return headers


def _bytes_before_start(response: Any, ranged: bool, start: int, end: int | None, size: int | None) -> int:
    """How many bytes of the answer come before ``start``: none of a 206 (checked to be the range asked for),
    ``start`` of a whole answer to a ranged GET (checked to be the whole object)."""
    if ranged and response.status_code == 206:
        check_partial(response.headers.get("Content-Range"), start, end, size)
    elif ranged:
        check_whole(response.headers.get("Content-Length"), size)
        return start
    return 0


def _skipped(chunks: Iterator[bytes], skip: int) -> Iterator[bytes]:
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        if skip:
            chunk, skip = chunk[skip:], 0
        yield chunk
