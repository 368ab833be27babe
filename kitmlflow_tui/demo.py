"""A local demo MLflow store (sqlite + artifact folder) whose runs look like real projects.

Used by `kitmlflow demo`, by the tests and by the benchmarks. The store is built once per folder and
reused: `demo.json` is written last (atomically) and marks a complete store; a folder without it is
treated as an interrupted build, wiped and rebuilt. The build happens in the final folder rather than
in a temporary one renamed at the end, because MLflow records absolute artifact locations (experiments,
runs, logged models, model versions) that would all point into the temporary folder.

Every file's bytes are deterministic (fixed seeds), so artifact sizes are stable across builds; run ids,
model ids and timestamps are not.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import random
import shutil
import struct
import sys
import tempfile
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from kitmlflow_tui import locking

if TYPE_CHECKING:
    from mlflow import MlflowClient

SCHEMA_VERSION = 1
MANIFEST_NAME = "demo.json"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
LOCK_NAME = ".build.lock"
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

# Entries of a store folder that a build owns; only these are wiped before a rebuild, so pointing
# `root` at a folder that holds other files never deletes them.
_OWNED_NAMES = (MANIFEST_NAME, DB_NAME, f"{DB_NAME}-journal", f"{DB_NAME}-wal", f"{DB_NAME}-shm", ARTIFACTS_DIR)
_STAGING_PREFIX = ".staging-"

# Quiet, offline MLflow while building. Telemetry is decided at `import mlflow` (and checked again per
# event), so these are set before the build's first import of mlflow.
_BUILD_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_LOCK_MODEL_DEPENDENCIES": "false",  # true would run `uv pip compile` (network) in log_model
}


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
_KIB = 1024


@dataclass(frozen=True)
class DemoStore:
    root: Path  # folder holding mlflow.db and artifacts/
    tracking_uri: str  # "sqlite:///<root>/mlflow.db"
    runs: dict[str, str]  # role -> run_id
    experiments: dict[str, str]  # role -> experiment_id
    logged_model_ids: dict[str, str]  # role -> "m-..." id
    registered_model: str


def default_demo_root() -> Path:
    return Path(platformdirs.user_cache_dir("kitmlflow")) / "demo-store"


def tracking_uri_for(root: Path) -> str:
    return f"sqlite:///{root.as_posix()}/{DB_NAME}"


def load_demo_store(root: Path) -> DemoStore | None:
    """The store described by `root/demo.json`, or None when it is missing, stale or unreadable."""
    root = Path(root).absolute()
    try:
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    try:
        store = DemoStore(
            root=Path(data["root"]),
            tracking_uri=str(data["tracking_uri"]),
            runs=_str_mapping(data["runs"]),
            experiments=_str_mapping(data["experiments"]),
            logged_model_ids=_str_mapping(data["logged_model_ids"]),
            registered_model=str(data["registered_model"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    # A store whose folder was moved keeps absolute paths to the old place: it is not usable.
    if store.root != root or store.tracking_uri != tracking_uri_for(root):
        return None
    if not (root / DB_NAME).is_file() or not (root / ARTIFACTS_DIR).is_dir():
        return None
    return store


def build_demo_store(root: Path | None = None, *, force: bool = False) -> DemoStore:
    """Build the demo store in `root` (default: `default_demo_root()`), or reuse a complete one.

    Safe to call from several processes at once: the build runs under an exclusive file lock and the
    losers of the race reuse the winner's store.
    """
    root = (Path(root) if root is not None else default_demo_root()).absolute()
    if not force and (existing := load_demo_store(root)) is not None:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    with locking.locked(root / LOCK_NAME):
        if not force and (existing := load_demo_store(root)) is not None:
            return existing
        _wipe_store_folder(root)
        store = _build(root)
        _write_manifest(store)
    return store


# --------------------------------------------------------------------------------------------------
# Store folder management


def _str_mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected a mapping")
    return {str(k): str(v) for k, v in value.items()}


def _wipe_store_folder(root: Path) -> None:
    # The manifest goes first, so a rebuild interrupted from here on never looks complete.
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    _forget_cached_mlflow_store(tracking_uri_for(root))
    for entry in root.iterdir():
        leftover = entry.name.startswith((_STAGING_PREFIX, f"{MANIFEST_NAME}."))  # crashed temp files
        if entry.name in _OWNED_NAMES or leftover:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _mlflow_engine_maps() -> list[dict[str, Any]]:
    """MLflow's per-URI SQLAlchemy engine caches (tracking and registry stores keep one each).

    Only looked up in modules already imported: a store module that was never imported holds no engine.
    """
    maps = []
    for module_name in ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"):
        store_class = getattr(sys.modules.get(module_name), "SqlAlchemyStore", None)
        engine_map = getattr(store_class, "_engine_map", None)
        if isinstance(engine_map, dict):
            maps.append(engine_map)
    return maps


def _close_mlflow_connections(tracking_uri: str) -> None:
    """Close the pooled connections MLflow holds to this database (the engines stay usable)."""
    for engine_map in _mlflow_engine_maps():
        if (engine := engine_map.get(tracking_uri)) is not None:
            engine.dispose()


def _forget_cached_mlflow_store(tracking_uri: str) -> None:
    """Drop MLflow's in-process caches for a database file that is about to be deleted.

    MLflow caches one store (and one SQLAlchemy engine with pooled connections) per tracking URI
    for the life of the process. After the file is replaced, those would keep talking to the
    deleted file and would skip creating the tables in the new one.
    """
    if "mlflow" not in sys.modules:
        return  # nothing cached yet
    for engine_map in _mlflow_engine_maps():
        if (engine := engine_map.pop(tracking_uri, None)) is not None:
            engine.dispose()
    with contextlib.suppress(Exception):
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    with contextlib.suppress(Exception):
        from mlflow.tracking._model_registry.utils import _model_registry_store_registry

        _model_registry_store_registry._get_store_with_resolved_uri.cache_clear()  # type: ignore[attr-defined]


def _write_manifest(store: DemoStore) -> None:
    document = {"schema_version": SCHEMA_VERSION, **asdict(store), "root": str(store.root)}
    fd, tmp_name = tempfile.mkstemp(prefix=f"{MANIFEST_NAME}.", suffix=".tmp", dir=store.root)
    try:
        os.chmod(tmp_name, 0o644)  # mkstemp creates it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, store.root / MANIFEST_NAME)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _fast_sqlite(db_path: Path) -> Iterator[None]:
    """Skip fsync and the on-disk journal for connections to `db_path` while the block runs.

    MLflow creates a fresh database by running ~70 alembic migrations, each in its own committed
    transaction; with fsync on every commit that alone takes 3-6 s. A crash mid-build can leave a
    corrupt file, which is harmless: without demo.json the next build wipes it.
    """
    import sqlite3

    import sqlalchemy
    from sqlalchemy import event

    target = str(db_path)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        files = {row[2] for row in dbapi_connection.execute("PRAGMA database_list")}
        if target in files:
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    event.listen(sqlalchemy.engine.Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(sqlalchemy.engine.Engine, "connect", on_connect)
        # Pooled connections keep their pragmas: close them, then make the file durable.
        _close_mlflow_connections(tracking_uri_for(db_path.parent))
        if db_path.exists():
            with open(db_path, "rb+") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's INFO logs and advice warnings while building."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Some MLflow functions reset the filters to "once" for their own block; muting the
            # display too keeps those quiet (catch_warnings restores it).
            warnings.showwarning = lambda *args, **kwargs: None
            yield
    finally:
        logger.setLevel(saved_level)


@contextlib.contextmanager
def _mlflow_globals(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `tracking_uri` and restore every global it touches afterwards.

    `mlflow.set_tracking_uri` also writes `MLFLOW_TRACKING_URI` into os.environ (and setting it back
    to None deletes the variable, even one the user had set), so the environment is restored by hand.
    The offline settings are in place before the first `import mlflow`, which is when MLflow decides
    whether to start its telemetry client.
    """
    env_names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", *_BUILD_ENV)
    saved_env = {name: os.environ.get(name) for name in env_names}
    os.environ.update(_BUILD_ENV)

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # The values set by mlflow.set_*_uri (None when unset), not the resolved defaults.
    saved_tracking_uri = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry_uri = getattr(registry_utils, "_registry_uri", None)
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking_uri)  # type: ignore[arg-type]  # None unsets it, as it was
        registry_utils._registry_uri = saved_registry_uri
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------------------------------
# Deterministic file content


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _checkpoint_bytes(seed: int, size: int) -> bytes:
    # Torch checkpoints are zip archives; a zip local-file-header magic makes `file` agree.
    return b"PK\x03\x04" + _random_bytes(seed, size - 4)


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """A valid 8-bit RGB PNG, written by hand (no imaging library needed)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: None
        for x in range(width):
            rows.extend(pixel(x, y))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _loss_curve_png(losses: Sequence[float]) -> bytes:
    width, height, margin = 240, 160, 16
    top, bottom = max(losses), min(losses)
    span = (top - bottom) or 1.0
    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    curve: set[tuple[int, int]] = set()
    for i in range(len(losses) - 1):
        x0 = margin + plot_w * i / (len(losses) - 1)
        x1 = margin + plot_w * (i + 1) / (len(losses) - 1)
        y0 = margin + plot_h * (top - losses[i]) / span
        y1 = margin + plot_h * (top - losses[i + 1]) / span
        for t in range(33):
            x = round(x0 + (x1 - x0) * t / 32)
            y = round(y0 + (y1 - y0) * t / 32)
            curve.update({(x, y), (x, y + 1), (x + 1, y)})

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        if (x, y) in curve:
            return (31, 119, 180)
        if x == margin - 1 or y == height - margin:
            return (60, 60, 60)
        if margin <= x and y < height - margin and (y - margin) % 32 == 0:
            return (225, 225, 225)
        return (255, 255, 255)

    return _png(width, height, pixel)


def _confusion_png(matrix: Sequence[Sequence[int]]) -> bytes:
    cell = 36
    size = cell * len(matrix)
    peak = max(max(row) for row in matrix)

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        if x % cell == 0 or y % cell == 0:
            return (255, 255, 255)
        shade = matrix[y // cell][x // cell] / peak
        return (int(255 - 225 * shade), int(255 - 165 * shade), int(255 - 75 * shade))

    return _png(size, size, pixel)


# Starts like the canonical LICENSE file (without its centring spaces) so license detectors that
# match the first lines recognise Apache-2.0.
_APACHE_LICENSE = """\
Apache License
Version 2.0, January 2004
http://www.apache.org/licenses/

TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

1. Definitions.

   "License" shall mean the terms and conditions for use, reproduction,
   and distribution as defined by Sections 1 through 9 of this document.

   "Licensor" shall mean the copyright owner or entity authorized by
   the copyright owner that is granting the License.

[... sections 2 to 9 of the Apache License 2.0 ...]

END OF TERMS AND CONDITIONS

Copyright 2024 Acme ML

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""

_README = """\
# image-classifier: ResNet-18 baseline

Fine-tunes a ResNet-18 on the `retail-shelves` dataset (v3.2, 12 classes).

| metric       | value |
|--------------|-------|
| val_accuracy | 0.914 |
| val_loss     | 0.287 |

## Files
- `checkpoints/` one checkpoint per epoch, `best.ckpt` is the best validation loss
- `plots/` training curves and the validation confusion matrix
- `data/` a small sample of the validation set
- `config/train.yaml` the exact training configuration
- `notebooks/train.ipynb` the exploration notebook

The deployable model is the MLflow model `model` (pyfunc), registered as `demo-classifier`.
"""

_TRAIN_YAML = """\
model:
  arch: resnet18
  pretrained: imagenet
  num_classes: 12
data:
  dataset: retail-shelves
  version: "3.2"
  image_size: 224
  augment: [random_crop, horizontal_flip, color_jitter]
train:
  epochs: 5
  batch_size: 64
  optimizer: adamw
  lr: 0.0003
  weight_decay: 0.01
  scheduler: cosine
  seed: 42
"""

_NOTE = """\
## ResNet-18 baseline

First baseline on **retail-shelves v3.2**. Cosine schedule, AdamW, 5 epochs.

- Best validation loss at epoch 4 (`checkpoints/best.ckpt`).
- Confusion between *cereal* and *snacks* remains the main error source.

Next: try label smoothing and a longer schedule (see the `image-classifier-sweeps` experiment).
"""


def _notebook() -> str:
    cells = [
        {
            "cell_type": "markdown",
            "id": "intro",
            "metadata": {},
            "source": ["# Training exploration\n", "Quick look at the data and the baseline."],
        },
        {
            "cell_type": "code",
            "execution_count": 1,
            "id": "load",
            "metadata": {},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": ["12 classes, 4800 images\n"]}],
            "source": [
                "import pandas as pd\n",
                "df = pd.read_parquet('data/sample.parquet')\n",
                "print(f\"{df['label'].nunique()} classes, 4800 images\")",
            ],
        },
    ]
    document = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(document, indent=1) + "\n"


_CLASSES = (
    "beverages",
    "bakery",
    "cereal",
    "snacks",
    "dairy",
    "frozen",
    "produce",
    "canned",
    "household",
    "personal_care",
    "pet",
    "baby",
)


def _sample_frame() -> Any:
    import pandas as pd

    rng = random.Random(7)
    rows = []
    for i in range(200):
        label = _CLASSES[i % len(_CLASSES)]
        predicted = label if rng.random() < 0.9 else rng.choice(_CLASSES)
        rows.append(
            {
                "image_id": f"img_{i:05d}",
                "label": label,
                "predicted": predicted,
                "confidence": round(rng.uniform(0.55, 0.999), 4),
                "width": 224,
                "height": 224,
            }
        )
    return pd.DataFrame(rows)


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _write_finished_artifacts(folder: Path, losses: Sequence[float]) -> None:
    for epoch in range(1, 6):
        _write(folder / f"checkpoints/epoch_{epoch:03d}.pt", _checkpoint_bytes(100 + epoch, 40 * _KIB * epoch))
    _write(folder / "checkpoints/best.ckpt", _checkpoint_bytes(104, 160 * _KIB))
    _write(folder / "plots/loss.png", _loss_curve_png(losses))
    confusion = [[40 if i == j else (i * 7 + j * 3) % 6 for j in range(6)] for i in range(6)]
    _write(folder / "plots/confusion.png", _confusion_png(confusion))
    frame = _sample_frame()
    _write(folder / "data/sample.csv", frame.to_csv(index=False))
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    _write(folder / "data/sample.parquet", parquet.getvalue())
    _write(folder / "README.md", _README)
    _write(folder / "LICENSE", _APACHE_LICENSE)
    _write(folder / "notebooks/train.ipynb", _notebook())
    _write(folder / "config/train.yaml", _TRAIN_YAML)


def _write_tokenizer_artifacts(folder: Path) -> None:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)})
    vocab = specials + words
    _write(folder / "tokenizer/vocab.txt", "\n".join(vocab) + "\n")
    tokenizer = {
        "version": "1.0",
        "truncation": {"max_length": 128, "strategy": "LongestFirst"},
        "padding": None,
        "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {w: i for i, w in enumerate(vocab)}},
    }
    _write(folder / "tokenizer/tokenizer.json", json.dumps(tokenizer, indent=1) + "\n")
    _write(
        folder / "metrics.json",
        json.dumps({"eval": {"accuracy": 0.873, "macro_f1": 0.851, "loss": 0.412}, "n_eval": 2400}, indent=2),
    )


def _write_legacy_model_folder(folder: Path, run_id: str) -> None:
    """The files of an MLflow 2 model folder as `mlflow.sklearn.log_model` wrote them."""
    _write(
        folder / "MLmodel",
        textwrap.dedent(
            f"""\
            artifact_path: model
            flavors:
              python_function:
                env:
                  conda: conda.yaml
                  virtualenv: python_env.yaml
                loader_module: mlflow.sklearn
                model_path: model.pkl
                predict_fn: predict
                python_version: 3.10.12
              sklearn:
                code: null
                pickled_model: model.pkl
                serialization_format: cloudpickle
                sklearn_version: 1.3.2
            mlflow_version: 2.9.2
            model_size_bytes: 6144
            model_uuid: 5b0e1c7fa0d84c4c9a3f1f0f4f6a2b11
            run_id: {run_id}
            utc_time_created: '2024-01-15 10:32:07.421337'
            """
        ),
    )
    _write(
        folder / "conda.yaml",
        textwrap.dedent(
            """\
            channels:
            - conda-forge
            dependencies:
            - python=3.10.12
            - pip<=23.3.1
            - pip:
              - mlflow==2.9.2
              - cloudpickle==3.0.0
              - scikit-learn==1.3.2
            name: mlflow-env
            """
        ),
    )
    _write(folder / "requirements.txt", "mlflow==2.9.2\ncloudpickle==3.0.0\nscikit-learn==1.3.2\n")
    _write(
        folder / "python_env.yaml",
        "python: 3.10.12\nbuild_dependencies:\n- pip==23.3.1\n- setuptools==68.2.2\n- wheel==0.41.3\n"
        "dependencies:\n- -r requirements.txt\n",
    )
    rng = random.Random(23)
    fake_model = {
        "estimator": "LogisticRegression",
        "classes": ["billing", "bug", "feature_request", "account", "other"],
        "coef": [[round(rng.gauss(0, 1), 6) for _ in range(128)] for _ in range(5)],
        "intercept": [round(rng.gauss(0, 0.1), 6) for _ in range(5)],
    }
    _write(folder / "model.pkl", pickle.dumps(fake_model, protocol=4))


# --------------------------------------------------------------------------------------------------
# The pyfunc model


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


# --------------------------------------------------------------------------------------------------
# The build


def _build(root: Path) -> DemoStore:
    tracking_uri = tracking_uri_for(root)
    artifacts_root = root / ARTIFACTS_DIR
    artifacts_root.mkdir()
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
    try:
        # Order matters: the globals context imports mlflow, which configures its loggers.
        with _mlflow_globals(tracking_uri), _quiet_mlflow(), _fast_sqlite(root / DB_NAME):
            import mlflow

            _create_store_with_default_experiment(tracking_uri, artifacts_root)
            client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            builder = _Builder(client, artifacts_root, staging)
            builder.build_all()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DemoStore(
        root=root,
        tracking_uri=tracking_uri,
        runs=dict(builder.runs),
        experiments=dict(builder.experiments),
        logged_model_ids=dict(builder.logged_model_ids),
        registered_model=REGISTERED_MODEL,
    )


def _create_store_with_default_experiment(tracking_uri: str, artifacts_root: Path) -> None:
    # Creating the store ourselves gives MLflow's "Default" experiment (id 0) a home inside this
    # store instead of `./mlruns/0` relative to whatever the current directory is.
    with contextlib.suppress(Exception):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(tracking_uri, artifacts_root.as_uri())


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Builder:
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

    def build_all(self) -> None:
        self._create_experiments()
        self._finished_run()
        self._two_models_run()
        self._legacy_run()
        self._failed_run()
        self._killed_run()
        self._empty_run()
        self._sweep_runs()
        self._running_run()  # last: it is the newest and stays RUNNING

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
        _write(path, _random_bytes(seed, size))
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
                "mlflow.note.content": _NOTE,
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
        _write_finished_artifacts(folder, train_loss)
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
        _write_tokenizer_artifacts(folder)
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
        _write_legacy_model_folder(folder / "model", run_id)
        _write(folder / "feature_names.txt", "\n".join(f"tfidf_{i}" for i in range(128)) + "\n")
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
        _write(folder / "checkpoints/epoch_001.pt", _checkpoint_bytes(201, 64 * _KIB))
        _write(
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
        _write(folder / "checkpoints/epoch_001.pt", _checkpoint_bytes(301, 56 * _KIB))
        _write(folder / "logs/train.log", "epoch 1 loss 1.02\nepoch 2 loss 0.71\nReceived SIGTERM, stopping.\n")
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
            _write(summary, json.dumps({"lr": lr, "batch_size": batch_size, "val_accuracy": round(final, 4)}))
            self.client.log_artifact(run_id, str(summary), "summary")
            self._finish(run_id, "FINISHED", start, 15)

    def _running_run(self) -> None:
        self.clock = max(self.clock, _now_ms() - 3 * 3600 * 1000)
        run_id, start = self._start_run(RUN_RUNNING, EXP_VISION, "resnet34-long-schedule", {"team": "vision"})
        folder = self._stage(RUN_RUNNING)
        _write(folder / "checkpoints/epoch_001.pt", _checkpoint_bytes(401, 72 * _KIB))
        _write(folder / "logs/train.log", "epoch 1 loss 1.15 val_acc 0.71\n")
        self.client.log_artifacts(run_id, str(folder))
        self._log(run_id, start, {"lr": 0.0003, "epochs": 40, "arch": "resnet34"}, {"train_loss": [1.4, 1.15]})
