"""Step 2 of the data flow: what MLflow knows about a run, and its artifact tree with sizes.

- :mod:`.records` — the values (frozen dataclasses; no MLflow import), used by every later step;
- :mod:`.gateway` — :class:`Catalogue`, the MLflow calls of one tracking server;
- :mod:`.listing` — the bounded, parallel listing of artifact trees;
- :mod:`.mlflow_errors` — MLflow failures mapped to the error family;
- :mod:`.http_limits` — the retry policy and response limits put on MLflow's HTTP client.

Nothing here imports MLflow at import time.
"""

from kitmlflow_tui.catalogue.gateway import Catalogue, ensure_finished
from kitmlflow_tui.catalogue.http_limits import configure_http, iter_body
from kitmlflow_tui.catalogue.mlflow_errors import check_reachable, mlflow_errors, translate_error
from kitmlflow_tui.catalogue.records import (
    RUN_STATUSES,
    ArtifactFile,
    ArtifactTree,
    ExperimentSummary,
    LevelEntry,
    LoggedModelInfo,
    RegisteredModelInfo,
    ResolvedRun,
    RunInfo,
    RunPage,
    RunSummary,
)

__all__ = [
    "RUN_STATUSES",
    "ArtifactFile",
    "ArtifactTree",
    "Catalogue",
    "ExperimentSummary",
    "LevelEntry",
    "LoggedModelInfo",
    "RegisteredModelInfo",
    "ResolvedRun",
    "RunInfo",
    "RunPage",
    "RunSummary",
    "check_reachable",
    "configure_http",
    "ensure_finished",
    "iter_body",
    "mlflow_errors",
    "translate_error",
]
