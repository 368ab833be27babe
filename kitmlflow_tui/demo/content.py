"""Deterministic file content for the demo runs: weights, checkpoints, PNG plots, configs, a notebook,
a sample data frame, the files of an MLflow 2 model folder (fixed seeds: sizes are stable)."""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import textwrap
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

_KIB = 1024


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def checkpoint_bytes(seed: int, size: int) -> bytes:
    # Torch checkpoints are zip archives; a zip local-file-header magic makes `file` agree.
    return b"PK\x03\x04" + random_bytes(seed, size - 4)


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

NOTE = """\
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


def write_file(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def write_finished_artifacts(folder: Path, losses: Sequence[float]) -> None:
    for epoch in range(1, 6):
        write_file(folder / f"checkpoints/epoch_{epoch:03d}.pt", checkpoint_bytes(100 + epoch, 40 * _KIB * epoch))
    write_file(folder / "checkpoints/best.ckpt", checkpoint_bytes(104, 160 * _KIB))
    write_file(folder / "plots/loss.png", _loss_curve_png(losses))
    confusion = [[40 if i == j else (i * 7 + j * 3) % 6 for j in range(6)] for i in range(6)]
    write_file(folder / "plots/confusion.png", _confusion_png(confusion))
    frame = _sample_frame()
    write_file(folder / "data/sample.csv", frame.to_csv(index=False))
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    write_file(folder / "data/sample.parquet", parquet.getvalue())
    write_file(folder / "README.md", _README)
    write_file(folder / "LICENSE", _APACHE_LICENSE)
    write_file(folder / "notebooks/train.ipynb", _notebook())
    write_file(folder / "config/train.yaml", _TRAIN_YAML)


def write_tokenizer_artifacts(folder: Path) -> None:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)})
    vocab = specials + words
    write_file(folder / "tokenizer/vocab.txt", "\n".join(vocab) + "\n")
    tokenizer = {
        "version": "1.0",
        "truncation": {"max_length": 128, "strategy": "LongestFirst"},
        "padding": None,
        "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {w: i for i, w in enumerate(vocab)}},
    }
    write_file(folder / "tokenizer/tokenizer.json", json.dumps(tokenizer, indent=1) + "\n")
    write_file(
        folder / "metrics.json",
        json.dumps({"eval": {"accuracy": 0.873, "macro_f1": 0.851, "loss": 0.412}, "n_eval": 2400}, indent=2),
    )


def write_legacy_model_folder(folder: Path, run_id: str) -> None:
    """The files of an MLflow 2 model folder as `mlflow.sklearn.log_model` wrote them."""
    write_file(
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
    write_file(
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
    write_file(folder / "requirements.txt", "mlflow==2.9.2\ncloudpickle==3.0.0\nscikit-learn==1.3.2\n")
    write_file(
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
    write_file(folder / "model.pkl", pickle.dumps(fake_model, protocol=4))
