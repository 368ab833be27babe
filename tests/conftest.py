"""Shared fixtures: real MLflow servers on 127.0.0.1 seeded with runs, and a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

# No MLflow telemetry from the test process and the processes it starts: offline, its config fetch fails
# and its thread then unsets a variable in os.environ while other threads may be iterating it (requests'
# proxy lookup raised KeyError in a benchmark once). Set before MLflow is first imported.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

from hypothesis import settings  # noqa: E402
from servers import MlflowServer, mlflow_server, seed_run  # noqa: E402

# Hypothesis: the same examples on every run unless asked otherwise. "ci" (the default, for `make test` and
# .ci/run) draws them from a fixed seed with no example database, so a clean checkout tests exactly what
# the last one did and a failure reproduces; "fuzz" (`make fuzz`) draws new ones, FUZZ_FACTOR times as many.
# What a fuzz run finds becomes an @example on its test (the failure prints the falsifying example).
HYPOTHESIS_PROFILE = os.environ.get("KITMLFLOW_HYPOTHESIS_PROFILE", "ci")
FUZZ_FACTOR = int(os.environ.get("KITMLFLOW_FUZZ_FACTOR", "10"))
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz", derandomize=False, database=None, deadline=None, print_blob=True, max_examples=100 * FUZZ_FACTOR
)
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(count: int) -> int:
    """A @given test's max_examples: ``count`` in CI, FUZZ_FACTOR times more under `make fuzz` (a count
    set in a test's @settings wins over the profile's, so the profile alone cannot raise it)."""
    return count * FUZZ_FACTOR if HYPOTHESIS_PROFILE == "fuzz" else count


REPO = Path(__file__).resolve().parents[1]

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


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import mlflow
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("live-server")
    with mlflow_server(root) as server:
        exp, full = seed_run(
            server.url,
            experiment_name="live",
            files=FULL_RUN_FILES,
            logged_model=True,
            run_name="full-run",
            params={"lr": "0.01"},
            metrics={"accuracy": 0.93},
            tags={"team": "vision", "mlflow.note.content": "A run for the tests."},
        )
        live = LiveServer(server.url, root, exp, {"full": full}, server=server)
        for status in ("FAILED", "RUNNING", "KILLED"):
            _, run_id = seed_run(server.url, experiment_name="live", files={"log.txt": b"x"}, status=status)
            live.runs[status.lower()] = run_id
        _, live.runs["other_experiment"] = seed_run(server.url, experiment_name="elsewhere", files={"a.txt": b"a"})
        client = MlflowClient(server.url)
        (model,) = client.search_logged_models([exp], filter_string=f"source_run_id = '{full}'")
        live.model_id = model.model_id
        with mlflow_globals_restored():
            mlflow.set_tracking_uri(server.url)
            mlflow.register_model(f"models:/{model.model_id}", live.model_name)
        client.set_registered_model_alias(live.model_name, "champion", "1")
        yield live


@contextlib.contextmanager
def mlflow_globals_restored() -> Iterator[None]:
    """MLflow's process-wide tracking/registry URIs and env vars exactly as they were (None stays None:
    restoring the resolved default instead would pin it and override MLFLOW_TRACKING_URI later)."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tracking URI, config or cache from the developer's environment leaks into a test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("KITMLFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "kitops"))
    return tmp_path


@dataclass
class CliOutcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliOutcome:
    """The real command, in-process (MLflow is imported once per test session)."""
    from kitmlflow_tui.cli import cli

    result: Result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return CliOutcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def kitmlflow(isolated_env: Path):
    return run_cli


def kitmlflow_subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(extra)
    return env
