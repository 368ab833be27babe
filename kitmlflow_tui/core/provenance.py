"""The MLflow provenance of a ModelKit: the run (and registered model version) it was made from, and how.

One typed value, :class:`MlflowProvenance`, with one writer (:meth:`MlflowProvenance.to_mapping`: the shape stored
under ``mlflow`` in the Kitfile's ``model.parameters``, else ``datasets[0].parameters``, else in
``mlflow-provenance.yaml``) and one reader (:meth:`MlflowProvenance.from_mapping`, :func:`read_provenance`). The
Kitfile builder makes it; ``sync`` decides "in step" and "conflict" from what a tag's config holds; the attestation
and the ModelPack annotation carry it. The mapping's keys are a contract with every ModelKit already pushed: sync
reads tags that earlier versions of kitmlflow wrote, so a key is added, never renamed.

The reader takes what a registry sends (anyone may have pushed the tag): it never raises, keeps only strings where
strings belong, and gives None for a document that records no run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IMPORTER_NAME = "kitmlflow"
MASKED_NOTE = "credentials in these values (URL user info, password=, tokens, keys) were replaced with ***"


@dataclass(frozen=True)
class ExperimentSource:
    id: str
    name: str | None = None


@dataclass(frozen=True)
class RunSource:
    """The run; times are ISO 8601 in UTC with milliseconds (``2024-05-01T10:00:00.000Z``)."""

    id: str
    name: str | None = None
    status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class CodeSource:
    """What MLflow recorded of the code that ran (``mlflow.source.*`` tags)."""

    name: str | None = None
    type: str | None = None
    git_commit: str | None = None


@dataclass(frozen=True)
class LoggedModelSource:
    """An MLflow 3 logged model of the run, and the folder it appears as among the run's artifacts."""

    id: str | None
    name: str | None
    folder: str | None
    flavors: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegisteredVersion:
    """The registered model version the ModelKit holds: the one the URI named (``alias`` when it named one by
    alias), or, with ``imported_from_run``, the one the model of a run imported whole was registered as (the
    ModelKit then holds the run's files, not only that version's: ``sync`` does not take it for the version).
    ``aliases``: every alias that pointed at that version when it was imported. Both are written only when set, so
    the mapping of a version imported as such reads as before."""

    name: str
    version: str
    alias: str | None = None
    aliases: tuple[str, ...] = ()
    imported_from_run: bool = False


@dataclass(frozen=True)
class DatasetSource:
    """A dataset the run logged as an input (``mlflow.log_input``): what MLflow recorded of it."""

    name: str
    digest: str | None = None
    source_type: str | None = None
    source: str | None = None  # its URI or path, credentials masked
    context: str | None = None  # "training", "evaluation", ...


@dataclass(frozen=True)
class Importer:
    name: str
    version: str


@dataclass(frozen=True)
class MlflowProvenance:
    tracking_uri: str  # without credentials
    experiment: ExperimentSource
    run: RunSource
    source: CodeSource = CodeSource()
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)  # numbers; NaN and infinities as strings (JSON)
    tags: Mapping[str, Any] = field(default_factory=dict)
    logged_models: tuple[LoggedModelSource, ...] = ()
    registered_model: RegisteredVersion | None = None
    importer: Importer = Importer(IMPORTER_NAME, "")
    filter: Mapping[str, Any] = field(default_factory=dict)  # the filter spec's summary
    masked_fields: tuple[str, ...] = ()  # where credentials were replaced with ***
    datasets: tuple[DatasetSource, ...] = ()  # written only when the run logged any

    def to_mapping(self) -> dict[str, Any]:
        """The stored shape (key order is the order kit writes them in the config, and so part of its digest)."""
        mapping: dict[str, Any] = {
            "tracking_uri": self.tracking_uri,
            "experiment": {"id": self.experiment.id, "name": self.experiment.name},
            "run": {
                "id": self.run.id,
                "name": self.run.name,
                "status": self.run.status,
                "start_time": self.run.start_time,
                "end_time": self.run.end_time,
                "user": self.run.user,
            },
            "source": {"name": self.source.name, "type": self.source.type, "git_commit": self.source.git_commit},
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "logged_models": [
                {"id": m.id, "name": m.name, "folder": m.folder, "flavors": list(m.flavors)} for m in self.logged_models
            ],
        }
        if self.datasets:
            mapping["datasets"] = [
                {
                    "name": d.name,
                    "digest": d.digest,
                    "source_type": d.source_type,
                    "source": d.source,
                    "context": d.context,
                }
                for d in self.datasets
            ]
        if self.registered_model is not None:
            mapping["registered_model"] = {
                "name": self.registered_model.name,
                "version": self.registered_model.version,
                "alias": self.registered_model.alias,
            }
            if self.registered_model.aliases:
                mapping["registered_model"]["aliases"] = list(self.registered_model.aliases)
            if self.registered_model.imported_from_run:
                mapping["registered_model"]["imported_from"] = "run"
        mapping["importer"] = {"name": self.importer.name, "version": self.importer.version}
        mapping["filter"] = dict(self.filter)
        if self.masked_fields:
            mapping["masked"] = {"note": MASKED_NOTE, "fields": list(self.masked_fields)}
        return mapping

    @classmethod
    def from_mapping(cls, value: Any) -> MlflowProvenance | None:
        """The provenance a stored mapping records, or None when it records no run (not ours, or foreign)."""
        if not isinstance(value, Mapping):
            return None
        run = _mapping(value.get("run"))
        run_id = _text(run.get("id"))
        if run_id is None:
            return None
        experiment = _mapping(value.get("experiment"))
        source = _mapping(value.get("source"))
        registered = _mapping(value.get("registered_model"))
        registered_name, registered_version = _text(registered.get("name")), _text(registered.get("version"))
        importer = _mapping(value.get("importer"))
        masked = _mapping(value.get("masked"))
        return cls(
            tracking_uri=_text(value.get("tracking_uri")) or "",
            experiment=ExperimentSource(_text(experiment.get("id")) or "", _text(experiment.get("name"))),
            run=RunSource(
                run_id,
                _text(run.get("name")),
                _text(run.get("status")),
                _text(run.get("start_time")),
                _text(run.get("end_time")),
                _text(run.get("user")),
            ),
            source=CodeSource(_text(source.get("name")), _text(source.get("type")), _text(source.get("git_commit"))),
            params=_mapping(value.get("params")),
            metrics=_mapping(value.get("metrics")),
            tags=_mapping(value.get("tags")),
            logged_models=tuple(
                LoggedModelSource(
                    _text(m.get("id")),
                    _text(m.get("name")),
                    _text(m.get("folder")),
                    tuple(f for f in _list(m.get("flavors")) if isinstance(f, str)),
                )
                for m in map(_mapping, _list(value.get("logged_models")))
            ),
            registered_model=(
                RegisteredVersion(
                    registered_name,
                    registered_version,
                    _text(registered.get("alias")),
                    tuple(a for a in _list(registered.get("aliases")) if isinstance(a, str)),
                    registered.get("imported_from") == "run",
                )
                if registered_name is not None and registered_version is not None
                else None
            ),
            importer=Importer(_text(importer.get("name")) or "", _text(importer.get("version")) or ""),
            filter=_mapping(value.get("filter")),
            masked_fields=tuple(f for f in _list(masked.get("fields")) if isinstance(f, str)),
            datasets=tuple(
                DatasetSource(
                    name,
                    _text(d.get("digest")),
                    _text(d.get("source_type")),
                    _text(d.get("source")),
                    _text(d.get("context")),
                )
                for d in map(_mapping, _list(value.get("datasets")))
                if (name := _text(d.get("name"))) is not None
            ),
        )


def read_provenance(kitfile: Mapping[str, Any]) -> MlflowProvenance | None:
    """The MLflow provenance a Kitfile (or a ModelKit's config, the same as JSON) carries where the Kitfile builder
    puts it: ``model.parameters.mlflow``, else ``datasets[0].parameters.mlflow``. None when there is none there
    (provenance in ``mlflow-provenance.yaml`` is inside a layer)."""

    def mlflow_of(entry: Any) -> Mapping[str, Any] | None:
        found = _mapping(_mapping(entry).get("parameters")).get("mlflow")
        return found if isinstance(found, Mapping) else None

    datasets = _list(kitfile.get("datasets"))
    return MlflowProvenance.from_mapping(
        mlflow_of(kitfile.get("model")) or mlflow_of(datasets[0] if datasets else None)
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A string field; a number is read as its text (a version written as 3), anything else as absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
