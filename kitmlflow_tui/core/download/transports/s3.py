"""S3 and S3-compatible stores (``s3://``, and MLflow's R2/B2 repositories): ranged ``get_object`` with boto3.

The client is MLflow's own (``S3ArtifactRepository._get_s3_client``): the same endpoint
(``MLFLOW_S3_ENDPOINT_URL``), credentials, addressing style, TLS and signature settings as every other MLflow
read of that bucket, plus ``MLFLOW_S3_EXPECTED_BUCKET_OWNER``. The body is read as it arrives from the socket,
one chunk at a time, so memory stays bounded whatever the object's size. Every answer names the object's
``ETag`` (and ``VersionId`` in a versioned bucket); a ranged one must carry the ``ContentRange`` asked for.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Generator, Iterator
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.stores import credentials_error
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    TransientTransferError,
    Transport,
    VersionCallback,
    bounded,
    check_partial,
    check_range,
    range_header,
    reraise,
    stall_seconds,
)
from kitmlflow_tui.core.download.transports.versions import (
    ObjectVersion,
    s3_etag_checksum,
    s3_full_object_checksum,
)
from kitmlflow_tui.core.download.transports.watchdog import Watch
from kitmlflow_tui.core.errors import DownloadError, KitmlflowError

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
    "AllAccessDisabled",
    "401",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404"}
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "503", "500"}


class S3Transport(Transport):
    kind = "s3"

    def __init__(self, repository: Any) -> None:
        self._repository = repository
        self._uri = repository.artifact_uri
        self._bucket, self._root = repository.parse_s3_compliant_uri(repository.artifact_uri)
        self._owner = dict(getattr(repository, "_bucket_owner_params", None) or {})

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
        if end == start:
            return
        request = {"Bucket": self._bucket, "Key": posixpath.join(self._root, file.remote_path), **self._owner}
        byte_range = range_header(start, end)
        if byte_range:
            request["Range"] = byte_range
        try:
            response = self._repository._get_s3_client().get_object(**request)
        except Exception as exc:
            if start and _error_code(exc) == "InvalidRange":
                return  # nothing at or after ``start``
            reraise(exc, classify(exc, self._uri, file))
        body = response["Body"]
        try:
            if byte_range:
                check_partial(response.get("ContentRange"), start, end, file.size)
            if on_version is not None:
                on_version(answer_version(response))
        except BaseException:
            body.close()
            raise
        raw = getattr(body, "_raw_stream", None)  # urllib3's response: read1 hands bytes over as they arrive
        abort = raw.shutdown if raw is not None and hasattr(raw, "shutdown") else body.close
        with Watch(abort, stall_seconds=stall_seconds(), cancel=cancel) as watch:
            try:
                chunks = _raw_chunks(raw) if raw is not None else body.iter_chunks(CHUNK_BYTES)
                yield from bounded(watch.track(chunks), start, end)
            except Exception as exc:
                watch.check(file.path)
                reraise(exc, classify(exc, self._uri, file))
            finally:
                body.close()
            watch.check(file.path)


def answer_version(response: Any) -> ObjectVersion:
    """The version a ``get_object`` answer names, with the store's checksum of it when S3 gives one."""
    etag = str(response.get("ETag") or "")
    version_id = response.get("VersionId")
    tag = f"s3 etag {etag}" + (f" version {version_id}" if version_id else "") if etag else None
    checksum = s3_full_object_checksum(response) or s3_etag_checksum(
        etag, str(response.get("ServerSideEncryption") or ""), bool(response.get("SSECustomerAlgorithm"))
    )
    return ObjectVersion(tag, checksum)


def _raw_chunks(raw: Any) -> Iterator[bytes]:
    while chunk := raw.read1(CHUNK_BYTES, decode_content=False):  # the stored bytes, as S3 sizes them
        yield chunk


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def classify(exc: BaseException, uri: str, file: ArtifactFile | None = None) -> BaseException:
    """botocore's failures as the transport family (see ``transports.base``); others unchanged."""
    import botocore.exceptions as boto
    import urllib3.exceptions

    if isinstance(exc, KitmlflowError):
        return exc
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError):
        return credentials_error(uri, str(exc))
    if isinstance(exc, boto.ClientError):
        code = _error_code(exc) or ""
        if code in _CREDENTIAL_CODES:
            return credentials_error(uri, code)
        if code in _MISSING_CODES and file is not None:
            return DownloadError(f"The artifact {file.path} is listed but missing from the store ({code}).")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientTransferError(f"S3 answered {code or status}")
        return exc
    transient = (
        boto.EndpointConnectionError,
        boto.ConnectionClosedError,
        boto.ReadTimeoutError,
        boto.ConnectTimeoutError,
        boto.ResponseStreamingError,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    )
    if isinstance(exc, transient):
        return TransientTransferError(f"{type(exc).__name__}: {exc}")
    return exc
