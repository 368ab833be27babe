"""Azure Blob Storage (``wasbs://``): ranged reads with azure-storage-blob, a window at a time.

The service client is MLflow's own (``AzureBlobArtifactRepository.client``: ``AZURE_STORAGE_CONNECTION_STRING``,
else ``AZURE_STORAGE_ACCESS_KEY``, else ``DefaultAzureCredential``; MLflow's TLS settings). Each window is one
ranged GET of at most ``WINDOW_BYTES`` (below the SDK's single-GET size, so it never splits or buffers more);
its client-side read timeout is the stall limit, and the caller retries a silent window from its offset. Each window
names the blob's ``ETag`` and its ``Content-MD5`` when the blob has one (``x-ms-blob-content-md5``).
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


class AzureTransport(Transport):
    kind = "azure"

    def __init__(self, repository: Any) -> None:
        self._repository = repository
        self._uri = repository.artifact_uri
        self._container, _, self._root, _ = repository.parse_wasbs_uri(repository.artifact_uri)

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
        check_range(start, end)
        blob = self._repository.client.get_blob_client(self._container, posixpath.join(self._root, file.remote_path))

        def read(position: int, length: int) -> bytes:
            try:
                downloader = blob.download_blob(
                    offset=position,
                    length=length,
                    max_concurrency=1,
                    connection_timeout=CONNECT_SECONDS,
                    read_timeout=stall_seconds(),
                )
            except Exception as exc:
                if getattr(exc, "status_code", None) == 416:
                    return b""  # nothing at or after ``position``
                reraise(exc, classify(exc, self._uri, file))
            if on_version is not None:
                on_version(blob_version(downloader.properties))
            try:
                return downloader.readall()
            except Exception as exc:
                reraise(exc, classify(exc, self._uri, file))

        yield from windowed(read, start, end, cancel)


def blob_version(properties: Any) -> ObjectVersion:
    import base64

    etag = getattr(properties, "etag", None)
    md5 = getattr(getattr(properties, "content_settings", None), "content_md5", None)
    if isinstance(md5, str):
        md5 = base64.b64decode(md5)
    checksum = Checksum("md5", bytes(md5)) if md5 else None
    return ObjectVersion(f"azure etag {etag}" if etag else None, checksum)


def classify(exc: BaseException, uri: str, file: ArtifactFile | None = None) -> BaseException:
    """azure-core's failures as the transport family (see ``transports.base``); others unchanged."""
    import azure.core.exceptions as az

    if isinstance(exc, KitmlflowError):
        return exc
    status = getattr(exc, "status_code", None)
    if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
        return credentials_error(uri, _reason(exc))
    if isinstance(exc, az.ResourceNotFoundError) and file is not None:
        return DownloadError(f"The artifact {file.path} is listed but missing from the store ({_reason(exc)}).")
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError | az.IncompleteReadError) or (
        isinstance(status, int) and (status >= 500 or status == 429)
    ):
        return TransientTransferError(f"{type(exc).__name__}: {_reason(exc)}")
    if isinstance(exc, ConnectionError | TimeoutError):
        return TransientTransferError(f"{type(exc).__name__}: {exc}")
    try:  # azure-identity's "no credential found" (only imported when installed)
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            return credentials_error(uri, "no credential found")
    except ImportError:
        pass
    return exc


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    reason = getattr(exc, "reason", None)
    text = str(code or reason or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
