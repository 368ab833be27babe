"""The seeded live server's description (the ``live`` fixture in tests/conftest.py builds it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.servers import MlflowServer

# Sizes of the "full" run: a few larger files and small ones, an empty one, deep nesting.
FULL_RUN_FILES: dict[str, bytes | int] = {
    "checkpoints/epoch_001.pt": 300_000,
    "checkpoints/epoch_002.pt": 310_000,
    "checkpoints/best.ckpt": 2_000_000,
    "weights/big.safetensors": 8_000_000,
    "plots/loss.png": 5_000,
    "data/sample.csv": b"a,b\n1,2\n",
    "README.md": b"# live model\n",
    "empty.txt": b"",
    "nested/a/b/c/deep.json": b"{}",
}


@dataclass
class LiveServer:
    """A real proxied ``mlflow server`` with seeded runs (see FULL_RUN_FILES)."""

    url: str
    root: Path
    experiment_id: str
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    model_name: str = "live-model"
    model_id: str = ""
    server: MlflowServer | None = None  # the process, for its log (requests_since)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def uri(self, role: str = "full") -> str:
        return f"mlflow://{self.host}/experiments/{self.experiment_id}/runs/{self.runs[role]}"

    def artifact_dir(self, role: str = "full") -> Path:
        return self.root / "art" / self.experiment_id / self.runs[role] / "artifacts"


@contextlib.contextmanager
def mlflow_globals_restored() -> Iterator[None]:
    """MLflow's process-wide tracking/registry URIs, active experiment and env vars exactly as they were (None
    stays None: restoring the resolved default instead would pin it and override MLFLOW_TRACKING_URI later).
    ``mlflow.set_experiment`` sets both a global and ``MLFLOW_EXPERIMENT_ID``: left behind, they make a later
    ``start_run(run_id=...)`` of another experiment (the demo store's build) fail in the same process."""
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    names = (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    )
    saved_env = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
