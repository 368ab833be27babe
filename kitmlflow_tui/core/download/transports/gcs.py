"""Google Cloud Storage (``gs://``): ranged reads with google-cloud-storage, a window at a time.

The bucket comes from MLflow's own client (``GCSArtifactRepository``: default credentials, or anonymous when
there are none; ``STORAGE_EMULATOR_HOST`` honoured by the library). Each window of ``WINDOW_BYTES`` is one
ranged GET of the stored bytes (``raw_download``, no decompressive transcoding), so memory per stream is one
window. The read timeout of each GET is the stall limit: a window that goes silent that long is retried by
the caller from the offset reached. The library's own retry is off, so that one policy decides. Each window names
the object's ``generation`` (a new one at every overwrite) and its ``md5Hash``/``crc32c`` (of the whole object,
from ``x-goog-hash``).
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Generator
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.stores import credentials_error
from kitmlflow_tui.core.download.transports.base import (
    CONNECT_SECONDS,
    TransientTransferError,
    Transport,
    VersionCallback,
    check_range,
    reraise,
    stall_seconds,
    windowed,
)
from kitmlflow_tui.core.download.transports.versions import Checksum, ObjectVersion
from kitmlflow_tui.core.errors import DownloadError, KitmlflowError


class GcsTransport(Transport):
    kind = "gcs"

    def __init__(self, repository: Any) -> None:
        self._repository = repository
        self._uri = repository.artifact_uri
        self._bucket_name, self._root = repository.parse_gcs_uri(repository.artifact_uri)

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
        from google.api_core.exceptions import RequestRangeNotSatisfiable

        check_range(start, end)
        blob = self._repository._get_bucket(self._bucket_name).blob(posixpath.join(self._root, file.remote_path))
        timeout = (CONNECT_SECONDS, stall_seconds())

        def read(position: int, length: int) -> bytes:
            try:
                data = blob.download_as_bytes(
                    start=position,
                    end=position + length - 1,
                    raw_download=True,
                    checksum=None,
                    timeout=timeout,
                    retry=None,
                )
            except RequestRangeNotSatisfiable:
                return b""  # nothing at or after ``position``
            except Exception as exc:
                reraise(exc, classify(exc, self._uri, file))
            if on_version is not None:  # the library keeps the answer's headers on the blob
                on_version(blob_version(blob))
            return data

        yield from windowed(read, start, end, cancel)


def blob_version(blob: Any) -> ObjectVersion:
    import base64

    checksum = None
    for algorithm, value in (("md5", blob.md5_hash), ("crc32c", blob.crc32c)):
        if value:
            checksum = Checksum(algorithm, base64.b64decode(value))
            break
    return ObjectVersion(f"gcs generation {blob.generation}" if blob.generation else None, checksum)


def classify(exc: BaseException, uri: str, file: ArtifactFile | None = None) -> BaseException:
    """google-cloud-storage's failures as the transport family (see ``transports.base``); others unchanged."""
    import google.api_core.exceptions as api
    import google.auth.exceptions as auth
    import requests

    if isinstance(exc, KitmlflowError):
        return exc
    if isinstance(exc, auth.RefreshError | auth.DefaultCredentialsError | api.Unauthorized | api.Forbidden):
        return credentials_error(uri, _first_line(exc))
    if isinstance(exc, api.NotFound) and file is not None:
        return DownloadError(f"The artifact {file.path} is listed but missing from the store ({_first_line(exc)}).")
    transient = (
        api.TooManyRequests,
        api.ServerError,
        auth.TransportError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        ConnectionError,
        TimeoutError,
    )
    if isinstance(exc, transient):
        return TransientTransferError(f"{type(exc).__name__}: {_first_line(exc)}")
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
