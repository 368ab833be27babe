"""kitmlflow: turn a finished MLflow run into a KitOps ModelKit.

The Python API (docs/python-api.md): ``from kitmlflow_tui import import_modelkit, sync_model, download_artifacts``.
Importing the package loads neither MLflow nor rich nor Textual: the API imports the core when it is called.
"""

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ below loads them
    from kitmlflow_tui.api import download_artifacts, import_modelkit, sync_model


__all__ = ["__version__", "disable_mlflow_telemetry", "download_artifacts", "import_modelkit", "sync_model"]
_API = ("download_artifacts", "import_modelkit", "sync_model")


def __getattr__(name: str) -> object:
    # The API's functions load on first use: the command line and the wizard's first paint need none of them.
    if name in _API:
        from kitmlflow_tui import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def disable_mlflow_telemetry() -> None:
    """Turn MLflow's usage telemetry off for this process (and the processes it starts), unless the user
    set ``MLFLOW_DISABLE_TELEMETRY`` themselves. Called by the entry points before MLflow is imported: its
    telemetry thread edits ``os.environ`` while download threads read it (requests' proxy lookup raised
    KeyError once), and a tool that imports runs has no business reporting on them."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
