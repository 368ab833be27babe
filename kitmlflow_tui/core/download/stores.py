"""Which artifact store a URI names, which client library reading it takes, and what it reads for credentials.

One table, decided from the URI alone (no import, no network), so that a store whose library is missing
fails before anything is listed (exit 7, naming the extra to install), and so that a store that refuses our
credentials is reported with the variables *that store* reads (exit 3), never as an unreachable tracking server.
The tracking store gets the same check: kitmlflow depends on MLflow's client alone (``mlflow-skinny``), and a
local tracking store (a database URI, a folder) is read with the full MLflow's store code (``kitmlflow[local]``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import AuthError, DownloadError
from kitmlflow_tui.core.reference import redact_uri


@dataclass(frozen=True)
class StoreKind:
    """One kind of artifact store as MLflow reads it."""

    name: str  # "s3", "gcs", "azure", "sftp", "local", "http", ...
    label: str  # for messages: "S3", "Google Cloud Storage", ...
    requires: tuple[tuple[str, str], ...] = ()  # (module, PyPI package) MLflow's repository for it imports
    extra: str | None = None  # kitmlflow's extra that brings them
    credentials: tuple[str, ...] = ()  # what the store's client reads, for an exit-3 message

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install 'kitmlflow[{self.extra}]'"
        return "pip install " + " ".join(dict.fromkeys(f"'{package}'" for _, package in self.requires))


_AWS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
)
S3 = StoreKind("s3", "S3", (("boto3", "boto3"), ("botocore", "boto3")), "s3", _AWS)
GCS = StoreKind(
    "gcs",
    "Google Cloud Storage",
    (("google.cloud.storage", "google-cloud-storage"),),
    "gcs",
    ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST"),
)
_AZURE_CREDENTIALS = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
)
AZURE = StoreKind(
    "azure",
    "Azure Blob Storage",
    (("azure.storage.blob", "azure-storage-blob"), ("azure.identity", "azure-identity")),
    "azure",
    _AZURE_CREDENTIALS,
)
# ADLS Gen2 goes through MLflow's own client (no ranged transport of ours), so it has no extra of ours.
AZURE_DATALAKE = StoreKind(
    "azure-datalake",
    "Azure Data Lake Storage",
    (("azure.storage.filedatalake", "azure-storage-file-datalake"), ("azure.identity", "azure-identity")),
    None,
    _AZURE_CREDENTIALS,
)
SFTP = StoreKind(
    "sftp",
    "SFTP",
    (("pysftp", "pysftp"), ("paramiko", "paramiko<4")),
    "sftp",
    (
        "the user and password in the URI",
        "~/.ssh/config (HostName, User, Port, IdentityFile)",
        "~/.ssh/id_rsa",
        "~/.ssh/known_hosts",
    ),
)
HDFS = StoreKind(
    "hdfs", "HDFS", (("pyarrow", "pyarrow"),), None, ("MLFLOW_KERBEROS_TICKET_CACHE", "MLFLOW_KERBEROS_USER")
)
# A database or folder tracking store is read in this process by MLflow's own store code, which imports
# sqlalchemy and alembic (the full MLflow brings them; mlflow-skinny does not). A folder store is put with them:
# MLflow's client could read one alone, but MLflow keeps it in maintenance mode, and one extra for every local
# store (the demo's is sqlite) is simpler to say than which local store needs what.
LOCAL_TRACKING = StoreKind(
    "local-tracking",
    "a local MLflow tracking store",
    (("sqlalchemy", "the full MLflow"), ("alembic", "the full MLflow")),
    "local",
)
HTTP = StoreKind("http", "MLflow artifact proxy")
LOCAL = StoreKind("local", "local file system")
OTHER = StoreKind("other", "artifact store")

_BY_SCHEME = {
    "s3": S3,
    "r2": S3,  # Cloudflare R2 and Backblaze B2: MLflow reads them with its S3 repository
    "b2": S3,
    "gs": GCS,
    "wasbs": AZURE,
    "abfss": AZURE_DATALAKE,
    "sftp": SFTP,
    "hdfs": HDFS,
    "viewfs": HDFS,
    "http": HTTP,
    "https": HTTP,
    "mlflow-artifacts": HTTP,
    "": LOCAL,
    "file": LOCAL,
}


def store_kind(uri: str) -> StoreKind:
    """The store a URI names, from its scheme (``s3://b/p`` → S3, ``/srv/art`` → local)."""
    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError:
        return OTHER
    if len(scheme) == 1:  # a Windows drive letter, C:\...
        return LOCAL
    return _BY_SCHEME.get(scheme, OTHER)


_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_store_kind(tracking_uri: str) -> StoreKind:
    """LOCAL_TRACKING for a database (``sqlite:///``, ``postgresql+psycopg2://``...) or folder tracking URI
    (``file:``, a path); OTHER for a server (``http(s)://``, ``databricks``...), which MLflow's client reads."""
    try:
        scheme = urlsplit(tracking_uri).scheme.lower()
    except ValueError:
        return OTHER
    if scheme.split("+", 1)[0] in _DATABASE_SCHEMES or scheme in ("", "file") or len(scheme) == 1:
        return LOCAL_TRACKING
    return OTHER


def require_tracking_library(tracking_uri: str) -> None:
    """Exit 7 naming ``kitmlflow[local]`` when the tracking store is local and the full MLflow is missing:
    checked before MLflow is imported, so the message comes in the first second, not after MLflow's own
    (``unsupported URI 'sqlite:///…' for model registry data storage``)."""
    kind = tracking_store_kind(tracking_uri)
    _require(
        kind,
        f"Reading the tracking store {redact_uri(tracking_uri)}",
        hint="Or point --tracking-uri (or MLFLOW_TRACKING_URI) at an MLflow server: mlflow-skinny reads those.",
    )


def require_local_mlflow(what: str) -> None:
    """Exit 7 naming ``kitmlflow[local]`` when the full MLflow is missing; ``what`` says who needs it
    ("Building the demo store")."""
    _require(LOCAL_TRACKING, what, hint=None)


def require_client_library(uri: str) -> StoreKind:
    """The store's kind, once its client library imports; else exit 7 naming the library and the extra."""
    kind = store_kind(uri)
    _require(
        kind,
        f"Reading {redact_uri(uri)}",
        hint=f"The run's artifacts live in {kind.label}, which kitmlflow reads with that store's own client.",
    )
    return kind


def _require(kind: StoreKind, subject: str, *, hint: str | None) -> None:
    for module, package in kind.requires:
        if module == "azure.identity" and _azure_key_given():
            continue  # MLflow's Azure client takes DefaultAzureCredential only without a connection string or key
        try:
            importlib.import_module(module)
        except ImportError:
            raise DownloadError(
                f"{subject} needs {package}, which is not installed: {kind.install_hint()}",
                hint=hint,
            ) from None


def _azure_key_given() -> bool:
    return settings.is_set("AZURE_STORAGE_CONNECTION_STRING") or settings.is_set("AZURE_STORAGE_ACCESS_KEY")


def credentials_error(uri: str, detail: str) -> AuthError:
    """Exit 3 for a store that refused (or never got) our credentials, naming what that store reads."""
    kind = store_kind(uri)
    reads = ", ".join(kind.credentials) or "its own credentials"
    return AuthError(
        f"The artifact store {redact_uri(uri)} refused the credentials ({detail}).",
        hint=f"{kind.label} credentials come from: {reads}.",
    )
