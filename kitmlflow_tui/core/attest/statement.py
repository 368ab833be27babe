"""The provenance statement of a ModelKit: an in-toto Statement v1 with an SLSA Provenance v1 predicate.

What each field means is the build type's page, ``docs/attestation.md``; in short:

* ``subject``: the ModelKit's manifest digest, named ``REGISTRY/REPOSITORY`` (the local repository before a push);
* ``buildDefinition.externalParameters``: what the user chose: the ``mlflow://`` source, the tracking server (without
  credentials), experiment, run, registered model version, the filter, the format, a ``--kitfile``'s digest;
* ``buildDefinition.resolvedDependencies``: every file of the run in the layers, ``{name: path, uri: runs:/RUN/path
  (models:/NAME/VERSION/path for a registered model's files), digest: {sha256}, annotations: {size}}``, with the
  sha256 of the bytes as they were downloaded, then the config blob (the Kitfile as JSON);
* ``runDetails``: the builder (kitmlflow and its version), the invocation id, start and finish; ``byproducts``: the
  files kitmlflow itself put in the layers (the provenance file).

Every MLflow fact comes from the typed provenance the Kitfile records (:class:`MlflowProvenance`), so the statement
and the Kitfile cannot disagree. Strings that are not file paths pass the scrubber once more: no credential reaches a
statement. :func:`read_statement` is the reader ``verify`` uses on statements anyone may have pushed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kitmlflow_tui import __version__
from kitmlflow_tui.core.errors import scrub_secrets
from kitmlflow_tui.core.packing.file_digests import FileDigest
from kitmlflow_tui.core.provenance import MlflowProvenance, RegisteredVersion
from kitmlflow_tui.core.reference import ModelRef, RunRef, format_reference

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# The project has no web home yet: ".invalid" (RFC 2606) names can never be registered by someone else, and
# docs/attestation.md is the specification both name. A change of meaning gets a new version, never an edit.
BUILD_TYPE = "https://kitmlflow.invalid/attestation/mlflow-import/v1"
BUILDER_ID = "https://kitmlflow.invalid/kitmlflow"
CONFIG_DEPENDENCY = "Kitfile"  # the resolvedDependencies entry of the manifest's config blob
MAX_STATEMENT_BYTES = 32 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


class StatementError(ValueError):
    """A payload that is not a statement ``verify`` can read."""


@dataclass(frozen=True)
class Invocation:
    """One import: its id and when it started and finished (RFC 3339, UTC)."""

    invocation_id: str
    started_on: str
    finished_on: str


@dataclass(frozen=True)
class StatementInput:
    subject_name: str  # registry/repository (or the local repository)
    subject_digest: str  # "sha256:..." of the manifest
    provenance: MlflowProvenance
    files: Sequence[FileDigest]  # every file of the layers
    run_files: Mapping[str, str | None]  # path -> its logged-model folder, for each file that came from MLflow
    config_media_type: str
    config_digest: str  # "sha256:..."
    invocation: Invocation
    format: str = "modelkit"
    kitfile_sha256: str | None = None  # a --kitfile's text (None: kitmlflow wrote the Kitfile)
    packer: str = "native"
    compression: str = "none"


def build_statement(given: StatementInput) -> dict[str, Any]:
    provenance = given.provenance
    dependencies: list[dict[str, Any]] = []
    byproducts: list[dict[str, Any]] = []
    for file in sorted(given.files, key=lambda f: f.path):
        entry: dict[str, Any] = {
            "name": file.path,
            "digest": {"sha256": file.sha256},
            "annotations": {"size": file.size},
        }
        if file.path in given.run_files:
            entry = {"name": file.path, "uri": artifact_uri(file.path, given.run_files[file.path], provenance), **entry}
            dependencies.append(entry)
        else:
            byproducts.append(entry)
    dependencies.append(
        {
            "name": CONFIG_DEPENDENCY,
            "mediaType": given.config_media_type,
            "digest": {"sha256": given.config_digest.removeprefix("sha256:")},
        }
    )
    external: dict[str, Any] = {
        "source": _clean(source_uri(provenance)),
        "trackingUri": _clean(provenance.tracking_uri),
        "experimentId": _clean(provenance.experiment.id),
        "runId": _clean(provenance.run.id),
    }
    registered = _imported_version(provenance)
    if registered is not None:
        external["registeredModel"] = {
            "name": _clean(registered.name),
            "version": _clean(registered.version),
            "alias": _clean(registered.alias) if registered.alias else None,
        }
    external["filter"] = {
        "include": [_clean(str(p)) for p in _list(provenance.filter.get("include"))],
        "exclude": [_clean(str(p)) for p in _list(provenance.filter.get("exclude"))],
        "maxFileSize": provenance.filter.get("max_file_size"),
    }
    external["format"] = given.format
    if given.kitfile_sha256 is not None:
        external["kitfile"] = {"digest": {"sha256": given.kitfile_sha256}}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": given.subject_name, "digest": {"sha256": given.subject_digest.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"packer": given.packer, "compression": given.compression},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"kitmlflow": __version__}},
                "metadata": {
                    "invocationId": given.invocation.invocation_id,
                    "startedOn": given.invocation.started_on,
                    "finishedOn": given.invocation.finished_on,
                },
                "byproducts": byproducts,
            },
        },
    }


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The payload as signed: compact JSON, UTF-8."""
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def artifact_uri(path: str, model_folder: str | None, provenance: MlflowProvenance) -> str:
    """The MLflow URI of one file: ``models:/NAME/VERSION/…`` for the files of the registered model's folder,
    else ``runs:/RUN/path``."""
    registered = _imported_version(provenance)
    if registered is not None and model_folder and path.startswith(model_folder + "/"):
        inside = path[len(model_folder) + 1 :]
        name = quote(scrub_secrets(registered.name), safe="")
        return f"models:/{name}/{quote(scrub_secrets(registered.version), safe='')}/{quote(inside, safe='/')}"
    return f"runs:/{provenance.run.id}/{quote(path, safe='/')}"


def source_uri(provenance: MlflowProvenance) -> str:
    """The ``mlflow://`` reference the ModelKit was imported from (the alias's when one was named)."""
    registered = _imported_version(provenance)
    if registered is not None:
        ref: RunRef | ModelRef = ModelRef(
            provenance.tracking_uri,
            registered.name,
            version=None if registered.alias else registered.version,
            alias=registered.alias,
        )
    else:
        ref = RunRef(provenance.tracking_uri, provenance.run.id, provenance.experiment.id or None)
    return format_reference(ref)


def _imported_version(provenance: MlflowProvenance) -> RegisteredVersion | None:
    """The registered version the ModelKit was imported as; not the one a run imported whole was registered as
    (its source is the run, and its files are the run's)."""
    registered = provenance.registered_model
    return None if registered is None or registered.imported_from_run else registered


def _clean(value: str | None) -> str | None:
    return scrub_secrets(value) if value is not None else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


# -- reading a statement back (verify) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AttestedFile:
    """A file the statement says the layers hold: a run's file (``uri`` set) or one kitmlflow wrote (``uri`` None)."""

    path: str
    sha256: str
    size: int | None
    uri: str | None


@dataclass(frozen=True)
class AttestedStatement:
    subject_digests: tuple[str, ...]  # "sha256:..." of every subject
    predicate_type: str
    build_type: str
    tracking_uri: str
    experiment_id: str
    run_id: str
    registered_model: RegisteredVersion | None
    files: tuple[AttestedFile, ...]
    config_digest: str | None  # "sha256:..."
    source: str
    invocation_id: str
    finished_on: str


def read_statement(payload: bytes) -> AttestedStatement:
    """The statement in a DSSE payload; StatementError names what is missing."""
    if len(payload) > MAX_STATEMENT_BYTES:
        raise StatementError(f"the statement is larger than {MAX_STATEMENT_BYTES} bytes")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise StatementError("the payload is not JSON") from None
    statement = _mapping(value)
    if statement.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"not an in-toto Statement v1 (_type {str(statement.get('_type'))[:80]!r})")
    subjects = tuple(
        "sha256:" + digest
        for subject in _seq(statement.get("subject"))
        if isinstance(digest := _mapping(_mapping(subject).get("digest")).get("sha256"), str)
        and _HEX64.fullmatch(digest)
    )
    predicate = _mapping(statement.get("predicate"))
    definition = _mapping(predicate.get("buildDefinition"))
    external = _mapping(definition.get("externalParameters"))
    run_details = _mapping(predicate.get("runDetails"))
    files: list[AttestedFile] = []
    config_digest = None
    for entry in (*_seq(definition.get("resolvedDependencies")), *_seq(run_details.get("byproducts"))):
        item = _mapping(entry)
        name, digest = item.get("name"), _mapping(item.get("digest")).get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise StatementError("an entry of resolvedDependencies or byproducts has no name or sha256 digest")
        if name == CONFIG_DEPENDENCY and "uri" not in item and "mediaType" in item:
            config_digest = "sha256:" + digest
            continue
        size = _mapping(item.get("annotations")).get("size")
        uri = item.get("uri")
        files.append(
            AttestedFile(name, digest, size if isinstance(size, int) else None, uri if isinstance(uri, str) else None)
        )
    registered = _mapping(external.get("registeredModel"))
    metadata = _mapping(run_details.get("metadata"))
    return AttestedStatement(
        subject_digests=subjects,
        predicate_type=_text(statement.get("predicateType")),
        build_type=_text(definition.get("buildType")),
        tracking_uri=_text(external.get("trackingUri")),
        experiment_id=_text(external.get("experimentId")),
        run_id=_text(external.get("runId")),
        registered_model=(
            RegisteredVersion(
                _text(registered.get("name")), _text(registered.get("version")), _text(registered.get("alias")) or None
            )
            if registered.get("name") and registered.get("version")
            else None
        ),
        files=tuple(files),
        config_digest=config_digest,
        source=_text(external.get("source")),
        invocation_id=_text(metadata.get("invocationId")),
        finished_on=_text(metadata.get("finishedOn")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value[:1000] if isinstance(value, str) else ""
