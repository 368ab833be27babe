"""The demo's scenario: three experiments of runs that look like real projects (finished, with two
logged models, an MLflow 2 model folder, failed, killed, empty, a sweep, one still running), a
registered model with a champion alias, and the roles the tests find them by."""

from __future__ import annotations

import contextlib
import io
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitmlflow_tui.demo.content import (
    NOTE,
    checkpoint_bytes,
    random_bytes,
    write_file,
    write_finished_artifacts,
    write_legacy_model_folder,
    write_tokenizer_artifacts,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

ROLE_TAG = "kitmlflow.demo.role"
REGISTERED_MODEL = "demo-classifier"
CHAMPION_ALIAS = "champion"

# Experiment roles.
EXP_VISION = "vision"
EXP_NLP = "nlp"
EXP_SWEEPS = "sweeps"
EXPERIMENT_NAMES: dict[str, str] = {
    EXP_VISION: "image-classifier",
    EXP_NLP: "support-ticket-intent",
    EXP_SWEEPS: "image-classifier-sweeps",
}

# Run roles (the sweep runs are "sweep_01" ... "sweep_12").
RUN_FINISHED = "finished"
RUN_TWO_MODELS = "finished_two_models"
RUN_LEGACY = "legacy"
RUN_FAILED = "failed"
RUN_RUNNING = "running"
RUN_KILLED = "killed"
RUN_EMPTY = "empty"
SWEEP_RUNS = 12

# Logged-model roles.
MODEL_FINISHED = RUN_FINISHED
MODEL_ENCODER = f"{RUN_TWO_MODELS}.encoder"
MODEL_CLASSIFIER = f"{RUN_TWO_MODELS}.classifier"


_KIB = 1024


def _source_tags(repo: str, commit: str, entry_point: str) -> dict[str, str]:
    return {
        "mlflow.user": "dana.scientist",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": entry_point,
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.repoURL": f"https://github.com/acme-ml/{repo}.git",
        "mlflow.source.git.branch": "main",
    }


# Where each experiment's runs say they come from (also put on logged models, which MLflow would
# otherwise tag with the building process's own user and script).
_SOURCE_TAGS: dict[str, dict[str, str]] = {
    EXP_VISION: _source_tags("image-classifier", "3f9c2a7e5b1d48c06a9e2f4b7d1c8e5a0b6f3d92", "train.py"),
    EXP_NLP: _source_tags("ticket-intent", "b7e41c09d2a35f8e61c7a0d94be2f3c5d8a1e706", "scripts/train_intent.py"),
    EXP_SWEEPS: _source_tags("image-classifier", "3f9c2a7e5b1d48c06a9e2f4b7d1c8e5a0b6f3d92", "sweep.py"),
}


def _python_model_class() -> type:
    """A tiny PythonModel; defined in a function so mlflow is only imported when building, and so
    cloudpickle stores the class by value (the logged model then loads without kitmlflow installed).
    """
    from mlflow.pyfunc import PythonModel

    class WeightedThresholdClassifier(PythonModel):
        def load_context(self, context: Any) -> None:
            with open(context.artifacts["weights"], "rb") as handle:
                self.scale = len(handle.read()) / 65536.0

        # No type hints on purpose: MLflow 3 would try to derive a signature from them and warn.
        def predict(self, context, model_input, params=None):
            scores = model_input.sum(axis=1) * getattr(self, "scale", 1.0)
            return (scores > 0).astype("int64")

    return WeightedThresholdClassifier


_MODEL_FOLDER_FILES = ("MLmodel", "conda.yaml", "requirements.txt", "python_env.yaml")


@dataclass(frozen=True)
class _ModelSpec:
    role: str  # key in DemoStore.logged_model_ids
    name: str  # the logged model's name (its folder name under `runs:/<run>/`)
    weights: Path
    n_features: int


def _log_pyfunc_model(client: MlflowClient, spec: _ModelSpec, model_class: type, tags: dict[str, str]) -> str:
    """Log a pyfunc model to the active fluent run; returns its model id."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f"f{i}") for i in range(spec.n_features)]),
        outputs=Schema([ColSpec("long")]),
    )
    info = mlflow.pyfunc.log_model(
        name=spec.name,
        python_model=model_class(),
        artifacts={"weights": str(spec.weights)},
        signature=signature,
        pip_requirements=[f"mlflow=={mlflow.__version__}"],
        tags={**tags, ROLE_TAG: spec.role},
    )
    model_id = info.model_id
    # A cheap guard against MLflow changing its model folder layout under the tests' feet.
    listed = {f.path for f in client.list_logged_model_artifacts(model_id)}
    listed |= {f.path for f in client.list_logged_model_artifacts(model_id, "artifacts")}
    expected = [*_MODEL_FOLDER_FILES, f"artifacts/{spec.weights.name}"]
    if missing := [path for path in expected if path not in listed]:
        raise RuntimeError(f"logged model {model_id} ({spec.name}) lacks {', '.join(missing)}")
    return model_id


def _now_ms() -> int:
    return int(time.time() * 1000)


class Builder:
    def __init__(self, client: MlflowClient, artifacts_root: Path, staging: Path) -> None:
        self.client = client
        self.artifacts_root = artifacts_root
        self.staging = staging
        self.runs: dict[str, str] = {}
        self.experiments: dict[str, str] = {}
        self.logged_model_ids: dict[str, str] = {}
        self.model_class: type | None = None
        # Runs are dated in the recent past, oldest first, so the store reads like a week of work.
        self.clock = _now_ms() - 7 * 24 * 3600 * 1000

    def build_all(self, on_step: Callable[[int, int, str], None] | None = None) -> None:
        """Every experiment, run and model; ``on_step(number, total, what)`` before each step."""
        steps = [
            ("experiments", self._create_experiments),
            ("a finished run with a logged, registered model", self._finished_run),
            ("a run with two models", self._two_models_run),
            ("a legacy run (MLmodel in the run's artifacts)", self._legacy_run),
            ("a failed run", self._failed_run),
            ("a killed run", self._killed_run),
            ("an empty run", self._empty_run),
            (f"a sweep of {SWEEP_RUNS} runs", self._sweep_runs),
            ("a running run", self._running_run),  # last: it is the newest and stays RUNNING
        ]
        for number, (what, step) in enumerate(steps, start=1):
            if on_step is not None:
                on_step(number, len(steps), what)
            step()

    # -- helpers ----------------------------------------------------------------------------------

    def _create_experiments(self) -> None:
        descriptions = {
            EXP_VISION: "Shelf-product image classifier (ResNet family) for the retail app.",
            EXP_NLP: "Routes support tickets to the right queue from their text.",
            EXP_SWEEPS: "Hyper-parameter sweeps for the image classifier.",
        }
        teams = {EXP_VISION: "vision", EXP_NLP: "nlp", EXP_SWEEPS: "vision"}
        for n, (role, name) in enumerate(EXPERIMENT_NAMES.items(), start=1):
            location = (self.artifacts_root / str(n)).as_uri()
            tags = {"mlflow.note.content": descriptions[role], "team": teams[role], ROLE_TAG: role}
            self.experiments[role] = self.client.create_experiment(name, artifact_location=location, tags=tags)

    def _tick(self, minutes: float) -> int:
        self.clock += int(minutes * 60_000)
        return self.clock

    def _finish(self, run_id: str, status: str, start: int, minutes: float) -> None:
        end = start + int(minutes * 60_000)
        self.clock = max(self.clock, end)
        self.client.set_terminated(run_id, status, end_time=end)

    def _start_run(
        self,
        role: str,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        gap_minutes: float = 90,
    ) -> tuple[str, int]:
        start = self._tick(gap_minutes)
        all_tags = {ROLE_TAG: role, **_SOURCE_TAGS[experiment], **(tags or {})}
        run = self.client.create_run(self.experiments[experiment], start_time=start, tags=all_tags, run_name=run_name)
        self.runs[role] = run.info.run_id
        return run.info.run_id, start

    def _log(
        self,
        run_id: str,
        start: int,
        params: dict[str, Any],
        series: Mapping[str, Sequence[float]],
        model_id: str | None = None,
    ) -> None:
        """Log params and metric series; each series' last point is attributed to `model_id`."""
        from mlflow.entities import Metric, Param

        metrics = []
        for key, values in series.items():
            for step, value in enumerate(values):
                last = step == len(values) - 1
                metrics.append(
                    Metric(
                        key,
                        round(value, 6),
                        start + (step + 1) * 30_000,
                        step,
                        model_id=model_id if last else None,
                    )
                )
        params_list = [Param(k, str(v)) for k, v in params.items()]
        self.client.log_batch(run_id, metrics=metrics, params=params_list)

    def _stage(self, name: str) -> Path:
        folder = self.staging / name
        folder.mkdir()
        return folder

    def _weights(self, name: str, seed: int, size: int) -> Path:
        path = self.staging / "weights" / name
        write_file(path, random_bytes(seed, size))
        return path

    def _log_models(self, run_id: str, experiment: str, specs: Sequence[_ModelSpec]) -> None:
        import mlflow

        if self.model_class is None:
            self.model_class = _python_model_class()
        # pyfunc.log_model only logs into the active fluent run. Resuming the run sets it back to
        # RUNNING; the caller sets the final status and end time afterwards.
        mlflow.start_run(run_id=run_id)
        tags = _SOURCE_TAGS[experiment]
        try:
            for spec in specs:
                self.logged_model_ids[spec.role] = _log_pyfunc_model(self.client, spec, self.model_class, tags)
        finally:
            mlflow.end_run()

    # -- runs -------------------------------------------------------------------------------------

    def _finished_run(self) -> None:
        run_id, start = self._start_run(
            RUN_FINISHED,
            EXP_VISION,
            "resnet18-baseline",
            {
                "team": "vision",
                "dataset": "retail-shelves",
                "dataset_version": "3.2",
                "mlflow.note.content": NOTE,
            },
        )
        rng = random.Random(1)
        train_loss = [2.4 * 0.955**i + 0.12 + rng.uniform(-0.03, 0.03) for i in range(50)]
        val_loss = [1.21, 0.64, 0.41, 0.287, 0.295]
        val_accuracy = [0.612, 0.801, 0.874, 0.914, 0.911]
        params = {
            "lr": 0.0003,
            "epochs": 5,
            "batch_size": 64,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "scheduler": "cosine",
            "arch": "resnet18",
            "image_size": 224,
            "seed": 42,
        }
        folder = self._stage(RUN_FINISHED)
        write_finished_artifacts(folder, train_loss)
        self.client.log_artifacts(run_id, str(folder))
        weights = self._weights("model.safetensors", 5, 48 * _KIB)
        self._log_models(run_id, EXP_VISION, [_ModelSpec(MODEL_FINISHED, "model", weights, 8)])
        model_id = self.logged_model_ids[MODEL_FINISHED]
        self._log(run_id, start, params, {"train_loss": train_loss}, None)
        self._log(run_id, start, {}, {"val_loss": val_loss, "val_accuracy": val_accuracy}, model_id)
        self._finish(run_id, "FINISHED", start, 47)
        self._register(model_id)

    def _register(self, model_id: str) -> None:
        import mlflow

        self.client.create_registered_model(
            REGISTERED_MODEL,
            tags={"team": "vision", "task": "image-classification"},
            description="Shelf-product classifier served by the retail app.",
        )
        # The fluent call (not client.create_model_version) is what users run; it also tags the
        # logged model with `mlflow.modelVersions`. It reads the global tracking URI, set by the caller.
        with contextlib.redirect_stderr(io.StringIO()):  # it prints "Created version '1' of model ..."
            version = mlflow.register_model(
                f"models:/{model_id}", REGISTERED_MODEL, tags={"validation_status": "approved"}
            )
        self.client.update_model_version(
            REGISTERED_MODEL, version.version, description="ResNet-18 baseline, val_accuracy 0.914"
        )
        self.client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, version.version)

    def _two_models_run(self) -> None:
        run_id, start = self._start_run(
            RUN_TWO_MODELS,
            EXP_NLP,
            "distilbert-intent-v2",
            {"team": "nlp", "dataset": "support-tickets", "dataset_version": "2024-05"},
        )
        folder = self._stage(RUN_TWO_MODELS)
        write_tokenizer_artifacts(folder)
        self.client.log_artifacts(run_id, str(folder))
        specs = [
            _ModelSpec(MODEL_ENCODER, "encoder", self._weights("encoder.safetensors", 31, 96 * _KIB), 16),
            _ModelSpec(MODEL_CLASSIFIER, "classifier", self._weights("classifier.pt", 32, 12 * _KIB), 4),
        ]
        self._log_models(run_id, EXP_NLP, specs)
        params = {"base_model": "distilbert-base-uncased", "lr": 5e-5, "epochs": 3, "batch_size": 32}
        series = {"loss": [0.91, 0.55, 0.41], "accuracy": [0.78, 0.85, 0.873], "macro_f1": [0.74, 0.83, 0.851]}
        self._log(run_id, start, params, series, self.logged_model_ids[MODEL_CLASSIFIER])
        self._finish(run_id, "FINISHED", start, 120)

    def _legacy_run(self) -> None:
        run_id, start = self._start_run(
            RUN_LEGACY,
            EXP_NLP,
            "tfidf-logreg-2023",
            {"team": "nlp", "dataset": "support-tickets", "dataset_version": "2023-11"},
        )
        folder = self._stage(RUN_LEGACY)
        write_legacy_model_folder(folder / "model", run_id)
        write_file(folder / "feature_names.txt", "\n".join(f"tfidf_{i}" for i in range(128)) + "\n")
        self.client.log_artifacts(run_id, str(folder / "model"), "model")
        self.client.log_artifact(run_id, str(folder / "feature_names.txt"))
        history = [
            {
                "run_id": run_id,
                "artifact_path": "model",
                "utc_time_created": "2024-01-15 10:32:07.421337",
                "model_uuid": "5b0e1c7fa0d84c4c9a3f1f0f4f6a2b11",
                "flavors": {
                    "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
                    "sklearn": {"pickled_model": "model.pkl", "sklearn_version": "1.3.2"},
                },
            }
        ]
        self.client.set_tag(run_id, "mlflow.log-model.history", json.dumps(history))
        params = {"C": 1.0, "max_features": 20000, "ngram_range": "(1, 2)", "solver": "lbfgs"}
        self._log(run_id, start, params, {"accuracy": [0.812], "macro_f1": [0.79]})
        self._finish(run_id, "FINISHED", start, 6)

    def _failed_run(self) -> None:
        run_id, start = self._start_run(RUN_FAILED, EXP_VISION, "resnet50-lr-too-high", {"team": "vision"})
        folder = self._stage(RUN_FAILED)
        write_file(folder / "checkpoints/epoch_001.pt", checkpoint_bytes(201, 64 * _KIB))
        write_file(
            folder / "logs/train.log",
            "epoch 1 loss 2.31\nepoch 2 loss 7.94\nepoch 3 loss nan\n"
            "RuntimeError: Function 'CudnnConvolutionBackward0' returned nan values in its 0th output.\n",
        )
        self.client.log_artifacts(run_id, str(folder))
        self._log(run_id, start, {"lr": 0.1, "epochs": 5, "arch": "resnet50"}, {"train_loss": [2.31, 7.94]})
        self._finish(run_id, "FAILED", start, 12)

    def _killed_run(self) -> None:
        run_id, start = self._start_run(RUN_KILLED, EXP_VISION, "efficientnet-b0-long", {"team": "vision"})
        folder = self._stage(RUN_KILLED)
        write_file(folder / "checkpoints/epoch_001.pt", checkpoint_bytes(301, 56 * _KIB))
        write_file(folder / "logs/train.log", "epoch 1 loss 1.02\nepoch 2 loss 0.71\nReceived SIGTERM, stopping.\n")
        self.client.log_artifacts(run_id, str(folder))
        self._log(run_id, start, {"lr": 0.001, "epochs": 30, "arch": "efficientnet_b0"}, {"train_loss": [1.02, 0.71]})
        self._finish(run_id, "KILLED", start, 25)

    def _empty_run(self) -> None:
        run_id, start = self._start_run(RUN_EMPTY, EXP_VISION, "smoke-test", {"team": "vision"})
        self._log(run_id, start, {"dry_run": True}, {})
        self._finish(run_id, "FINISHED", start, 1)

    def _sweep_runs(self) -> None:
        rng = random.Random(99)
        learning_rates = (1e-4, 3e-4, 1e-3)
        batch_sizes = (32, 64, 128, 256)
        for i in range(SWEEP_RUNS):
            lr, batch_size = learning_rates[i % 3], batch_sizes[i // 3]
            role = f"sweep_{i + 1:02d}"
            run_id, start = self._start_run(
                role,
                EXP_SWEEPS,
                f"sweep-lr{lr:g}-bs{batch_size}",
                {"team": "vision", "sweep": "2024-06-a"},
                gap_minutes=20,
            )
            final = 0.86 + 0.05 * rng.random() - (0.02 if batch_size == 256 else 0.0)
            series = {
                "val_accuracy": [final - 0.08, final - 0.03, final],
                "val_loss": [0.9, 0.5, 0.33 + rng.random() / 5],
            }
            self._log(run_id, start, {"lr": lr, "batch_size": batch_size, "epochs": 3}, series)
            summary = self.staging / f"{role}.json"
            write_file(summary, json.dumps({"lr": lr, "batch_size": batch_size, "val_accuracy": round(final, 4)}))
            self.client.log_artifact(run_id, str(summary), "summary")
            self._finish(run_id, "FINISHED", start, 15)

    def _running_run(self) -> None:
        self.clock = max(self.clock, _now_ms() - 3 * 3600 * 1000)
        run_id, start = self._start_run(RUN_RUNNING, EXP_VISION, "resnet34-long-schedule", {"team": "vision"})
        folder = self._stage(RUN_RUNNING)
        write_file(folder / "checkpoints/epoch_001.pt", checkpoint_bytes(401, 72 * _KIB))
        write_file(folder / "logs/train.log", "epoch 1 loss 1.15 val_acc 0.71\n")
        self.client.log_artifacts(run_id, str(folder))
        self._log(run_id, start, {"lr": 0.0003, "epochs": 40, "arch": "resnet34"}, {"train_loss": [1.4, 1.15]})
