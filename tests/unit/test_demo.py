"""The demo store: real MLflow (sqlite + local artifacts), built once per module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kitmlflow_tui import demo
from kitmlflow_tui.demo import DemoStore, build_demo_store, default_demo_root, load_demo_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

FINISHED_FILES = {
    "checkpoints/epoch_001.pt",
    "checkpoints/epoch_002.pt",
    "checkpoints/epoch_003.pt",
    "checkpoints/epoch_004.pt",
    "checkpoints/epoch_005.pt",
    "checkpoints/best.ckpt",
    "plots/loss.png",
    "plots/confusion.png",
    "data/sample.csv",
    "data/sample.parquet",
    "README.md",
    "LICENSE",
    "notebooks/train.ipynb",
    "config/train.yaml",
}
MODEL_FOLDER_FILES = {"MLmodel", "conda.yaml", "requirements.txt", "python_env.yaml"}
EXPECTED_STATUS = {
    demo.RUN_FINISHED: "FINISHED",
    demo.RUN_TWO_MODELS: "FINISHED",
    demo.RUN_LEGACY: "FINISHED",
    demo.RUN_FAILED: "FAILED",
    demo.RUN_RUNNING: "RUNNING",
    demo.RUN_KILLED: "KILLED",
    demo.RUN_EMPTY: "FINISHED",
}


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow falls back to `./mlflow.db` for any URI it is not given: keep such mistakes out of the repo.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_demo_store(tmp_path_factory.mktemp("demo") / "store")


@pytest.fixture(scope="module")
def client(store: DemoStore) -> MlflowClient:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def walk_run(client: MlflowClient, run_id: str, path: str | None = None) -> dict[str, int]:
    files: dict[str, int] = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            files.update(walk_run(client, run_id, info.path))
        else:
            files[info.path] = info.file_size
    return files


def walk_logged_model(client: MlflowClient, model_id: str, path: str | None = None) -> dict[str, int]:
    files: dict[str, int] = {}
    for info in client.list_logged_model_artifacts(model_id, path):
        if info.is_dir:
            files.update(walk_logged_model(client, model_id, info.path))
        else:
            files[info.path] = info.file_size
    return files


def local_artifact(client: MlflowClient, run_id: str, path: str) -> Path:
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(client.get_run(run_id).info.artifact_uri)) / path


def test_layout_and_manifest(store: DemoStore) -> None:
    assert store.tracking_uri == f"sqlite:///{store.root}/mlflow.db"
    assert (store.root / "mlflow.db").is_file()
    assert (store.root / "artifacts").is_dir()
    manifest = json.loads((store.root / "demo.json").read_text())
    assert manifest["schema_version"] == demo.SCHEMA_VERSION
    assert load_demo_store(store.root) == store
    assert set(store.experiments) == {"vision", "nlp", "sweeps"}
    assert set(store.logged_model_ids) == {demo.MODEL_FINISHED, demo.MODEL_ENCODER, demo.MODEL_CLASSIFIER}
    assert store.registered_model == "demo-classifier"
    assert not [p for p in store.root.iterdir() if p.name.startswith(".staging-")]


def test_experiments_live_in_the_store(store: DemoStore, client: MlflowClient) -> None:
    for role, experiment_id in store.experiments.items():
        experiment = client.get_experiment(experiment_id)
        assert experiment.name == demo.EXPERIMENT_NAMES[role]
        assert experiment.artifact_location == (store.root / "artifacts" / experiment_id).as_uri()
    assert client.get_experiment("0").artifact_location == (store.root / "artifacts" / "0").as_uri()


def test_statuses_and_role_tags(store: DemoStore, client: MlflowClient) -> None:
    for role, status in EXPECTED_STATUS.items():
        run = client.get_run(store.runs[role])
        assert run.info.status == status, role
        assert run.data.tags[demo.ROLE_TAG] == role
    running = client.get_run(store.runs[demo.RUN_RUNNING])
    assert running.info.end_time is None
    sweeps = client.search_runs([store.experiments["sweeps"]], max_results=100)
    assert len(sweeps) == demo.SWEEP_RUNS
    assert {r.info.status for r in sweeps} == {"FINISHED"}


def test_finished_run_metadata(store: DemoStore, client: MlflowClient) -> None:
    run = client.get_run(store.runs[demo.RUN_FINISHED])
    assert run.info.experiment_id == store.experiments["vision"]
    assert {"lr", "epochs", "batch_size", "optimizer"} <= set(run.data.params)
    tags = run.data.tags
    assert tags["mlflow.note.content"].startswith("## ")
    assert tags["mlflow.source.type"] in {"LOCAL", "PROJECT"}
    assert tags["mlflow.source.name"]
    assert len(tags["mlflow.source.git.commit"]) == 40
    int(tags["mlflow.source.git.commit"], 16)
    assert tags["mlflow.user"]
    assert {"team", "dataset_version"} <= set(tags)
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert len(losses) > 10 and losses[-1] < losses[0]
    accuracy = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert len(accuracy) == 5
    assert [m.model_id for m in run.outputs.model_outputs] == [store.logged_model_ids[demo.MODEL_FINISHED]]


def test_finished_run_artifacts(store: DemoStore, client: MlflowClient) -> None:
    run_id = store.runs[demo.RUN_FINISHED]
    files = walk_run(client, run_id)
    assert set(files) == FINISHED_FILES
    epochs = [files[f"checkpoints/epoch_{n:03d}.pt"] for n in range(1, 6)]
    assert epochs == sorted(epochs) and epochs[0] >= 40 * 1024 and epochs[-1] <= 200 * 1024
    assert "model" not in {info.path for info in client.list_artifacts(run_id)}  # MLflow 3: outside

    for png in ("plots/loss.png", "plots/confusion.png"):
        data = local_artifact(client, run_id, png).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    license_text = local_artifact(client, run_id, "LICENSE").read_text()
    assert license_text.startswith("Apache License\nVersion 2.0, January 2004")
    notebook = json.loads(local_artifact(client, run_id, "notebooks/train.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]

    import pandas as pd

    frame = pd.read_parquet(local_artifact(client, run_id, "data/sample.parquet"))
    assert len(frame) == 200 and "label" in frame.columns


def test_finished_logged_model_folder(store: DemoStore, client: MlflowClient) -> None:
    model_id = store.logged_model_ids[demo.MODEL_FINISHED]
    assert model_id.startswith("m-")
    model = client.get_logged_model(model_id)
    assert model.name == "model"
    assert model.source_run_id == store.runs[demo.RUN_FINISHED]
    files = walk_logged_model(client, model_id)
    assert set(files) >= MODEL_FOLDER_FILES
    assert files["artifacts/model.safetensors"] == 48 * 1024
    assert model.tags["mlflow.user"] == "dana.scientist"  # not the user who built the store
    assert {m.key for m in model.metrics} == {"val_loss", "val_accuracy"}


def test_registered_model_alias(
    store: DemoStore, client: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    model_id = store.logged_model_ids[demo.MODEL_FINISHED]
    version = client.get_model_version_by_alias(store.registered_model, "champion")
    assert str(version.version) == "1"
    assert version.run_id == store.runs[demo.RUN_FINISHED]
    # The sqlite registry has no model_id column (ModelVersion.model_id comes back None):
    # the link to the logged model is the `models:/m-...` source.
    assert version.source == f"models:/{model_id}"
    assert version.model_id in (None, model_id)
    tag = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert tag == [{"name": store.registered_model, "version": 1}]

    # `models:/` URIs are resolved with the GLOBAL tracking/registry URI, whatever tracking_uri= says.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{store.registered_model}@champion", dst_path=str(tmp_path / "dl")
        )
    )
    assert f"model_id: {model_id}" in (local / "MLmodel").read_text()
    assert (local / "artifacts" / "model.safetensors").stat().st_size == 48 * 1024


def test_two_models_run(store: DemoStore, client: MlflowClient) -> None:
    run_id = store.runs[demo.RUN_TWO_MODELS]
    assert set(walk_run(client, run_id)) == {"tokenizer/vocab.txt", "tokenizer/tokenizer.json", "metrics.json"}
    models = client.search_logged_models(
        experiment_ids=[store.experiments["nlp"]], filter_string=f"source_run_id = '{run_id}'"
    )
    assert {m.name: m.model_id for m in models} == {
        "encoder": store.logged_model_ids[demo.MODEL_ENCODER],
        "classifier": store.logged_model_ids[demo.MODEL_CLASSIFIER],
    }
    for model in models:
        files = walk_logged_model(client, model.model_id)
        assert set(files) >= MODEL_FOLDER_FILES
        assert any(path.startswith("artifacts/") for path in files)


def test_legacy_run_keeps_its_model_in_the_run(store: DemoStore, client: MlflowClient) -> None:
    run_id = store.runs[demo.RUN_LEGACY]
    files = walk_run(client, run_id)
    assert {"model/MLmodel", "model/conda.yaml", "model/requirements.txt", "model/model.pkl"} <= set(files)
    assert "python_function" in local_artifact(client, run_id, "model/MLmodel").read_text()
    models = client.search_logged_models(
        experiment_ids=[store.experiments["nlp"]], filter_string=f"source_run_id = '{run_id}'"
    )
    assert models == []


def test_unfinished_and_empty_runs(store: DemoStore, client: MlflowClient) -> None:
    for role in (demo.RUN_FAILED, demo.RUN_RUNNING, demo.RUN_KILLED):
        assert len(walk_run(client, store.runs[role])) >= 2, role
    assert client.list_artifacts(store.runs[demo.RUN_EMPTY]) == []


def test_second_build_reuses_the_store(store: DemoStore) -> None:
    def state() -> dict[str, int]:  # every file of the store and when it last changed
        return {str(p): p.stat().st_mtime_ns for p in store.root.rglob("*") if p.is_file()}

    before = state()
    again = build_demo_store(store.root)
    assert again == store
    assert state() == before, "reused as it is: nothing rebuilt, nothing rewritten"


def test_interrupted_build_is_rebuilt(
    store: DemoStore, client: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    root = tmp_path / "store"
    (root / "artifacts" / "1").mkdir(parents=True)
    (root / "artifacts" / "1" / "half-written.bin").write_bytes(b"\0" * 100)
    (root / "mlflow.db").write_bytes(b"not a database")
    (root / "notes.txt").write_text("not ours: must survive the rebuild")
    assert load_demo_store(root) is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/elsewhere.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    rebuilt = build_demo_store(root)

    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/elsewhere.db"
    assert mlflow.get_tracking_uri() == "sqlite:////nonexistent/elsewhere.db"
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert load_demo_store(root) == rebuilt
    assert not (root / "artifacts" / "1" / "half-written.bin").exists()
    assert (root / "notes.txt").read_text().startswith("not ours")

    fresh = mlflow.MlflowClient(tracking_uri=rebuilt.tracking_uri)
    for role, status in EXPECTED_STATUS.items():
        assert fresh.get_run(rebuilt.runs[role]).info.status == status
    # Deterministic content: same files, same sizes as the module's store.
    assert walk_run(fresh, rebuilt.runs[demo.RUN_FINISHED]) == walk_run(client, store.runs[demo.RUN_FINISHED])

    # A forced rebuild in the same process gets a new database, not MLflow's cached one.
    forced = build_demo_store(root, force=True)
    assert forced.runs[demo.RUN_FINISHED] != rebuilt.runs[demo.RUN_FINISHED]
    after = mlflow.MlflowClient(tracking_uri=forced.tracking_uri)
    assert after.get_run(forced.runs[demo.RUN_FINISHED]).info.status == "FINISHED"
    assert len(after.search_runs([forced.experiments["sweeps"]], max_results=100)) == demo.SWEEP_RUNS


def test_load_rejects_incomplete_or_stale_manifests(store: DemoStore, tmp_path: Path) -> None:
    assert load_demo_store(tmp_path / "missing") is None
    manifest = json.loads((store.root / "demo.json").read_text())
    (tmp_path / "demo.json").write_text(json.dumps(manifest))  # points at another folder
    assert load_demo_store(tmp_path) is None
    (tmp_path / "demo.json").write_text(json.dumps({**manifest, "schema_version": -1}))
    assert load_demo_store(tmp_path) is None
    (tmp_path / "demo.json").write_text("{not json")
    assert load_demo_store(tmp_path) is None


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is a Linux convention")
def test_default_root_honours_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_demo_root() == tmp_path / "kitmlflow" / "demo-store"


def test_importing_demo_does_not_import_mlflow() -> None:
    code = "import sys, kitmlflow_tui.demo; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_concurrent_builds_share_one_store(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    code = (
        "import json, sys; from pathlib import Path; from kitmlflow_tui.demo import build_demo_store; "
        "print(json.dumps(build_demo_store(Path(sys.argv[1])).runs))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    first, second = (json.loads(out) for out in outputs)
    assert first == second
    assert load_demo_store(root) is not None


def test_the_demo_command_tells_each_build_step_on_stderr_and_nothing_on_reuse(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    root = tmp_path / "told"
    built = run_cli("demo", "--root", str(root), "--print-uri")
    assert built.code == 0, built.stderr
    assert built.stdout.strip() == f"sqlite:///{root.absolute().as_posix()}/mlflow.db"  # stdout: the URI only
    lines = built.stderr.splitlines()
    assert lines[0] == f"Building the demo MLflow store in {root} (once: later runs reuse it)…"
    assert lines[1] == "  loading MLflow…"
    assert lines[2].startswith("  [1/9] experiments") and lines[-1] == "  [9/9] a running run"
    reused = run_cli("demo", "--root", str(root), "--print-uri")
    assert reused.code == 0 and reused.stderr == "" and reused.stdout == built.stdout
