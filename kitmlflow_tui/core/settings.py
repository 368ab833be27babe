"""Every environment variable kitmlflow itself reads, in one place (the README's table lists the same).

A module that needs one reads it here (``KIT_BIN.value()``), at the moment it needs it, so a test or a wizard's
child process that sets a variable is seen. Variables that only a library reads (boto3's ``AWS_*``, MLflow's
``MLFLOW_TRACKING_TOKEN``...) are that library's business and are not listed; the ones kitmlflow masks in
messages are in :data:`SECRET_VARIABLES`. ``tests/unit/test_settings.py`` checks that no other module reads the
environment and that the README lists every setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    default: str = ""  # as the README shows it

    def value(self) -> str | None:
        """The variable's value without surrounding spaces; None when unset or blank."""
        return os.environ.get(self.name, "").strip() or None

    def raw(self) -> str | None:
        """The value exactly as set (a password's spaces are part of it)."""
        return os.environ.get(self.name)

    def seconds(self, default: float) -> float:
        """A positive number of seconds, ``default`` when unset; exit 2 for anything else."""
        from kitmlflow_tui.core.errors import BadInputError  # errors imports this module: no cycle at load

        text = self.value()
        if text is None:
            return default
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise BadInputError(f"{self.name}={text!r} is not a positive number of seconds.")
        return seconds


TRACKING_URI = Setting(
    "MLFLOW_TRACKING_URI", "the tracking server, when neither the URI nor --tracking-uri names one", "none"
)
REGISTRY_URI = Setting(
    "MLFLOW_REGISTRY_URI", "MLflow's model registry, when it is not the tracking server", "the tracking URI"
)
TRACKING_USERNAME = Setting(
    "MLFLOW_TRACKING_USERNAME", "the tracking server's basic-auth user (masked with its password)"
)
TRACKING_PASSWORD = Setting("MLFLOW_TRACKING_PASSWORD", "the tracking server's basic-auth password (masked)")
KIT_BIN = Setting(
    "KIT_BIN", "the kit binary to pack with (`--packer auto` uses kit when it is found)", "`kit` on the PATH"
)
KITOPS_HOME = Setting("KITOPS_HOME", "kit's home: its local storage and credentials.json, as for kit", "kit's default")
XDG_DATA_HOME = Setting("XDG_DATA_HOME", "kit's default home is its kitops folder on Linux", "~/.local/share")
HOME = Setting("HOME", "kit's default home is under it on Linux and macOS")
LOCALAPPDATA = Setting("LOCALAPPDATA", "kit's default home is its kitops folder on Windows")
CACHE_DIR = Setting(
    "KITMLFLOW_CACHE_DIR", "where interrupted imports keep their downloads for a resume", "the user cache dir"
)
STALL_SECONDS = Setting(
    "KITMLFLOW_STALL_SECONDS", "a started transfer that receives no byte for this long is resumed from there", "30"
)
DEBUG = Setting("KITMLFLOW_DEBUG", "any value: an unexpected error prints its Python traceback")
CI = Setting("CI", "any value: no live progress bars, plain lines (as on a pipe)")
DOCKER_CONFIG = Setting(
    "DOCKER_CONFIG", "docker's config folder, read for registry logins kit's store lacks", "~/.docker"
)
CA_BUNDLE = Setting("REQUESTS_CA_BUNDLE", "a CA bundle for registries (else SSL_CERT_FILE, else the system's)")
CA_FILE = Setting("SSL_CERT_FILE", "a CA bundle for registries, when REQUESTS_CA_BUNDLE is not set")
REGISTRY_FIRST_BYTE_SECONDS = Setting(
    "KITMLFLOW_REGISTRY_FIRST_BYTE_SECONDS",
    "a registry's (or its token service's) answer must have its status line and headers within this many seconds"
    " of the request being sent",
    "300",
)
REGISTRY_ANSWER_SECONDS = Setting(
    "KITMLFLOW_REGISTRY_ANSWER_SECONDS",
    "a registry's (or its token service's) whole answer must have arrived within this many seconds of the request",
    "600",
)
WEBHOOK_SECRET = Setting(
    "KITMLFLOW_WEBHOOK_SECRET", "`watch`: the MLflow webhook's secret, that every delivery is signed with (masked)"
)
SIGN_KEY = Setting(
    "KITMLFLOW_SIGN_KEY",
    "`import --push`, `sync`: the key that signs the provenance attestation (as `--sign-key`); pre-fills the wizard's "
    '"Sign with"',
)
SIGN_KEY_PASSWORD = Setting("KITMLFLOW_SIGN_KEY_PASSWORD", "the password of an encrypted PEM signing key (masked)")
COSIGN_PASSWORD = Setting(
    "COSIGN_PASSWORD", "the password of cosign's `cosign.key` as a signing key, as cosign reads it (masked)"
)

ALL: tuple[Setting, ...] = (
    TRACKING_URI,
    REGISTRY_URI,
    TRACKING_USERNAME,
    TRACKING_PASSWORD,
    KIT_BIN,
    KITOPS_HOME,
    XDG_DATA_HOME,
    HOME,
    LOCALAPPDATA,
    CACHE_DIR,
    STALL_SECONDS,
    DEBUG,
    CI,
    DOCKER_CONFIG,
    CA_BUNDLE,
    CA_FILE,
    REGISTRY_FIRST_BYTE_SECONDS,
    REGISTRY_ANSWER_SECONDS,
    WEBHOOK_SECRET,
    SIGN_KEY,
    SIGN_KEY_PASSWORD,
    COSIGN_PASSWORD,
)

# Variables that may hold a secret: their values are masked in every message kitmlflow prints or publishes.
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "MLFLOW_S3_UPLOAD_EXTRA_ARGS",
    "KITMLFLOW_WEBHOOK_SECRET",
    "KITMLFLOW_SIGN_KEY_PASSWORD",
    "COSIGN_PASSWORD",
)


def secret_values() -> list[str]:
    """The values of :data:`SECRET_VARIABLES` set in this process (empty ones left out)."""
    return [value for name in SECRET_VARIABLES if (value := os.environ.get(name, ""))]


def is_set(name: str) -> bool:
    """Whether a library's variable is set (a store's credentials decide which client is used)."""
    return name in os.environ
