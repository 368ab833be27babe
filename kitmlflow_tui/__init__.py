"""kitmlflow: turn a finished MLflow run into a KitOps ModelKit."""

import os

__version__ = "0.1.0"


def disable_mlflow_telemetry() -> None:
    """Turn MLflow's usage telemetry off for this process (and the processes it starts), unless the user
    set ``MLFLOW_DISABLE_TELEMETRY`` themselves. Called by the entry points before MLflow is imported: its
    telemetry thread edits ``os.environ`` while download threads read it (requests' proxy lookup raised
    KeyError once), and a tool that imports runs has no business reporting on them."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
