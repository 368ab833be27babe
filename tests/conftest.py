"""Shared fixtures: real MLflow servers on 127.0.0.1 seeded with runs, and a CLI runner."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.fuzz import load_hypothesis_profile
from tests.support.live import FULL_RUN_FILES, LiveServer, mlflow_globals_restored
from tests.support.servers import mlflow_server, seed_run

# No MLflow telemetry from the test process and the processes it starts: offline, its config fetch fails
# and its thread then unsets a variable in os.environ while other threads may be iterating it (requests'
# proxy lookup raised KeyError in a benchmark once). Set before MLflow is first imported.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

# A suite started in the background by a shell without job control (`make test &`, `nohup`) inherits SIGINT
# ignored, and so would every kitmlflow it starts: Python then never raises KeyboardInterrupt, and the tests
# that press Ctrl-C (SIGINT to a child) would test nothing. A handler, unlike SIG_IGN, is reset by exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

load_hypothesis_profile()  # "ci" unless KITMLFLOW_HYPOTHESIS_PROFILE says otherwise (tests/support/fuzz.py)


REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tracking URI, config or cache from the developer's environment leaks into a test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KITMLFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "kitops"))
    return tmp_path


@pytest.fixture
def kitmlflow(isolated_env: Path):
    return run_cli


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory):
    """The demo MLflow store (sqlite + local artifacts), built once per test session."""
    from kitmlflow_tui.demo import build_demo_store

    return build_demo_store(tmp_path_factory.mktemp("tui-demo"))
