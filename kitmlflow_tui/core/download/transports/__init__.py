"""Transports: one per kind of artifact store, each streaming a byte range of one artifact (see ``base``).

``transport_for(repository)`` picks the transport for MLflow's artifact repository of a store root;
``store_error(exc, uri)`` turns a store SDK's failure (while listing, or inside a transport) into the
transport family: credentials refused → exit 3 naming that store's variables, a transient break → retry.
SDKs are imported only by the transport of their store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitmlflow_tui.core.download.stores import store_kind
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    DEFAULT_STALL_SECONDS,
    ShortRange,
    TransferStalled,
    TransientTransferError,
    Transport,
    stall_seconds,
)

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_STALL_SECONDS",
    "ShortRange",
    "TransferStalled",
    "TransientTransferError",
    "Transport",
    "stall_seconds",
    "store_error",
    "transport_for",
]


def transport_for(repository: Any, *, spool_dir: Path | None = None) -> Transport:
    """The transport for one of MLflow's artifact repositories. ``spool_dir``: where the generic fallback may
    write a whole file before streaming it (next to the download, so the disk check covers it)."""
    from mlflow.store.artifact.azure_blob_artifact_repo import AzureBlobArtifactRepository
    from mlflow.store.artifact.gcs_artifact_repo import GCSArtifactRepository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository
    from mlflow.store.artifact.sftp_artifact_repo import SFTPArtifactRepository

    if isinstance(repository, HttpArtifactRepository):
        from kitmlflow_tui.core.download.transports.http import HttpTransport

        return HttpTransport(repository)
    if isinstance(repository, LocalArtifactRepository):
        from kitmlflow_tui.core.download.transports.local import LocalTransport

        return LocalTransport(repository)
    if isinstance(repository, S3ArtifactRepository):
        from kitmlflow_tui.core.download.transports.s3 import S3Transport

        return S3Transport(repository)
    if isinstance(repository, GCSArtifactRepository):
        from kitmlflow_tui.core.download.transports.gcs import GcsTransport

        return GcsTransport(repository)
    if isinstance(repository, AzureBlobArtifactRepository):
        from kitmlflow_tui.core.download.transports.azure import AzureTransport

        return AzureTransport(repository)
    if isinstance(repository, SFTPArtifactRepository):
        from kitmlflow_tui.core.download.transports.sftp import SftpTransport

        return SftpTransport(repository)
    from kitmlflow_tui.core.download.transports.generic import GenericTransport

    return GenericTransport(repository, spool_dir)


def store_error(exc: BaseException, uri: str) -> BaseException:
    """``exc`` from the store at ``uri`` translated by that store's transport; unchanged when it is none of
    theirs (or the store has no SDK of its own: the proxy, a local folder)."""
    kind = store_kind(uri).name
    if kind == "s3":
        from kitmlflow_tui.core.download.transports.s3 import classify
    elif kind == "gcs":
        from kitmlflow_tui.core.download.transports.gcs import classify
    elif kind == "azure":
        from kitmlflow_tui.core.download.transports.azure import classify
    elif kind == "sftp":
        from kitmlflow_tui.core.download.transports.sftp import classify
    else:
        return exc
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException) and exc.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        from kitmlflow_tui.core.download.stores import credentials_error

        return credentials_error(uri, exc.error_code)  # MLflow's S3 listing wraps botocore's refusal so
    try:
        return classify(exc, uri)
    except ImportError:  # the SDK itself is missing: require_client_library reports that, not this
        return exc
