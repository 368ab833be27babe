"""What MLflow's own records of a run say beyond the run: the datasets it logged as inputs, and the registered
model versions made from it. These parse documents the server sends (JSON inside tags and sources), so every
one is bounded and a document that is not what MLflow writes reads as nothing, never as an error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kitmlflow_tui.core.catalogue.records import DatasetInput, LoggedModelInfo, ModelVersionInfo, RunInfo

# MLflow's tag on a logged model naming the registered versions made from it (a JSON list of {name, version}).
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
MODEL_VERSIONS_TAG_MAX_CHARS = 65_536


def tagged_versions(tags: Any) -> tuple[tuple[str, str], ...]:
    """The (name, version) pairs of a logged model's ``mlflow.modelVersions`` tag; nothing when it is absent,
    too long or not the list MLflow writes (it is the server's data)."""
    text = tags.get(MODEL_VERSIONS_TAG) if isinstance(tags, dict) else None
    if not isinstance(text, str) or len(text) > MODEL_VERSIONS_TAG_MAX_CHARS:
        return ()
    try:
        entries = json.loads(text)
    except ValueError:
        return ()
    found: dict[tuple[str, str], None] = {}  # MLflow may note one version twice (as 1 and as "1")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            version = entry.get("version")
            if isinstance(version, int | str) and not isinstance(version, bool) and str(version).isdigit():
                found[(entry["name"], str(version))] = None
    return tuple(found)


# A run logs few datasets; each text MLflow keeps of one is bounded here (the server's data goes into the Kitfile).
MAX_DATASET_INPUTS = 100
MAX_DATASET_TEXT = 2048


def dataset_inputs(inputs: Any) -> tuple[DatasetInput, ...]:
    """The datasets a run logged as inputs: name, digest, source (its URI when the source document names one)
    and context; at most MAX_DATASET_INPUTS, each text at most MAX_DATASET_TEXT characters."""

    def text(value: Any) -> str | None:
        return value[:MAX_DATASET_TEXT] if isinstance(value, str) and value.strip() else None

    found: list[DatasetInput] = []
    for item in list(getattr(inputs, "dataset_inputs", None) or ())[:MAX_DATASET_INPUTS]:
        dataset = getattr(item, "dataset", None)
        name = text(getattr(dataset, "name", None))
        if name is None:
            continue
        source = text(getattr(dataset, "source", None))
        if source is not None and source.startswith("{"):
            try:  # MLflow stores a source as JSON: {"uri": ...}, {"path": ...}, {"url": ...}
                document = json.loads(source)
            except ValueError:
                document = None
            if isinstance(document, dict):
                source = next((text(document[k]) for k in ("uri", "url", "path") if text(document.get(k))), source)
        tags = {getattr(t, "key", None): getattr(t, "value", None) for t in getattr(item, "tags", None) or ()}
        found.append(
            DatasetInput(
                name,
                text(getattr(dataset, "digest", None)),
                text(getattr(dataset, "source_type", None)),
                source,
                text(tags.get("mlflow.data.context")),
            )
        )
    return tuple(found)


def _run_folder(source: str | None, run: RunInfo) -> str | None:
    """The folder of the run an MLflow 2 version's source names (``runs:/RUN/PATH`` or the run's store URI)."""
    if not source:
        return None
    prefix = f"runs:/{run.run_id}/"
    if source.startswith(prefix):
        return source[len(prefix) :].strip("/") or None
    root = run.artifact_uri.rstrip("/") + "/"
    if source.startswith(root):
        return source[len(root) :].strip("/") or None
    return None


def first_registered(
    candidates: list[ModelVersionInfo],
    named: list[tuple[str, str, str | None]],
    run: RunInfo,
    logged_models: Sequence[LoggedModelInfo],
) -> tuple[str, str, str | None, str | None] | None:
    """(name, version, model id, folder) of the registered version of the run's first logged model that has one
    (the tree's order; a version of no known model last), its highest version; None without candidates."""
    entries = [(v.name, v.version, v.model_id, _run_folder(v.source, run)) for v in candidates]
    entries += [(name, version, model_id, None) for name, version, model_id in named]
    if not entries:
        return None
    by_id = {m.model_id: index for index, m in enumerate(logged_models) if m.model_id}
    by_folder = {m.folder: index for index, m in enumerate(logged_models)}

    def rank(entry: tuple[str, str, str | None, str | None]) -> tuple[int, str, int]:
        name, version, model_id, folder = entry
        position = by_id.get(model_id) if model_id else (by_folder.get(folder) if folder else None)
        return (len(logged_models) if position is None else position, name, -int(version) if version.isdigit() else 0)

    return min(entries, key=rank)
