"""The ``--json`` documents: one typed value per command's answer, whose ``to_json`` is the one place its keys
are written. Scripts rely on the keys, their types and their order: keys may be added, never renamed or moved.
:meth:`.output.Output.document` writes a document, with the command's ``warnings``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kitmlflow_tui.core.errors import KitmlflowError, scrub_secrets

if TYPE_CHECKING:
    from kitmlflow_tui.api import DownloadReport, ImportReport, PlanReport
    from kitmlflow_tui.core.attest.produce import Attestation
    from kitmlflow_tui.core.attest.verify import VerifyResult
    from kitmlflow_tui.core.kitfile import Kitfile
    from kitmlflow_tui.core.registry import PushResult
    from kitmlflow_tui.core.sync import SyncResult

# A JSON object as json.dumps writes it (values are JSON's own types, or paths written as text).
JsonObject = dict[str, Any]


class Document(Protocol):
    def to_json(self) -> JsonObject: ...


@dataclass(frozen=True)
class ErrorDocument:
    """A command that failed: ``error`` {``code`` (the exit code), ``message``}."""

    code: int
    message: str

    def to_json(self) -> JsonObject:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class PlanDocument:
    """What the filter chose from the run: where import's and download's documents start."""

    report: PlanReport

    def to_json(self) -> JsonObject:
        run = self.report.run
        plan = self.report.plan
        document: JsonObject = {
            "run": {
                "tracking_uri": run.tracking_uri,
                "experiment_id": run.experiment_id,
                "experiment_name": scrub_secrets(run.experiment_name),  # user text: masked as in the provenance
                "run_id": run.run_id,
                "run_name": scrub_secrets(run.run_name),
                "status": run.status,
            },
            "selected": [{"path": f.path, "size": f.size} for f in plan.selected],
            "excluded": [{"path": o.file.path, "size": o.file.size, "reason": o.reason} for o in plan.left_out],
            "selected_bytes": plan.selected_bytes,
            "total_bytes": plan.total_bytes,
            "filter": plan.spec.summary(),
            "logged_models": [
                {"id": m.model_id, "name": m.name, "folder": m.folder} for m in self.report.logged_models
            ],
        }
        registered = self.report.registered_model
        if registered:
            document["registered_model"] = {
                "name": registered.name,
                "version": registered.version,
                "alias": registered.alias,
                "aliases": list(registered.aliases),
            }
        return document


@dataclass(frozen=True)
class ImportDocument:
    """``import``: the plan and the Kitfile; after a real import (``imported``), what was packed, pushed and
    attested."""

    plan: PlanReport
    kitfile: Kitfile
    artifact_format: str  # --format
    imported: ImportReport | None = None  # None for --dry-run

    def to_json(self) -> JsonObject:
        document = PlanDocument(self.plan).to_json()
        document["kitfile"] = self.kitfile.to_dict()
        imported = self.imported
        if imported is None:
            return document
        document.update(
            reference=imported.reference,
            digest=imported.digest,
            packer=imported.packer,
            format=self.artifact_format,
            size=imported.size,
            downloaded_bytes=imported.downloaded_bytes,
            reused_bytes=imported.reused_bytes,
        )
        if imported.pushed is not None:
            document["pushed"] = _pushed(imported.pushed)
        if imported.attestation is not None:
            document["attestation"] = _attestation(imported.attestation)
        return document


def _pushed(pushed: PushResult) -> JsonObject:
    return {
        "reference": pushed.reference,
        "digest": pushed.digest,
        "uploaded_bytes": pushed.uploaded_bytes,
        "uploaded_blobs": pushed.uploaded_blobs,
        "mounted_blobs": pushed.mounted_blobs,
        "existing_blobs": pushed.existing_blobs,
    }


def _attestation(attestation: Attestation) -> JsonObject:
    """Where the attestation went, what it is, which key signed it."""
    return {
        "predicate_type": attestation.predicate_type,
        "subject": {"name": attestation.subject_name, "digest": attestation.subject_digest},
        "signed": attestation.envelope is not None,
        "key_id": attestation.key.key_id if attestation.key is not None else None,
        "output": str(attestation.output) if attestation.output is not None else None,
        "attached": [{"layout": a.layout, "digest": a.digest, "where": a.where} for a in attestation.attached],
    }


@dataclass(frozen=True)
class DownloadDocument:
    """``download``: the plan, the folder the files are in and the bytes moved."""

    report: DownloadReport

    def to_json(self) -> JsonObject:
        document = PlanDocument(self.report).to_json()
        document.update(dest=str(self.report.dest.resolve()), downloaded_bytes=self.report.downloaded_bytes)
        return document


@dataclass(frozen=True)
class SyncDocument:
    """``sync``: the model, the repository, what happened to each version and the counts."""

    result: SyncResult

    def to_json(self) -> JsonObject:
        result = self.result
        return {
            "model": {"name": result.model, "tracking_uri": result.tracking_uri, "alias": result.alias},
            "target": result.target,
            "dry_run": result.dry_run,
            "records": [record.as_dict() for record in result.records],
            "summary": result.counts(),
            "exit_code": result.exit_code,
        }


@dataclass(frozen=True)
class VerifyDocument:
    """``verify``: the verdict, the attested run and files, what was checked; ``error`` when not verified."""

    result: VerifyResult
    key_path: Path  # --key
    error: KitmlflowError | None = None

    def to_json(self) -> JsonObject:
        result = self.result
        statement = result.statement
        registered = statement.registered_model if statement is not None else None
        document: JsonObject = {
            "verified": result.verified,
            "reference": result.reference,
            "digest": result.digest,
            "signer_key": result.key_id,
            "key_path": str(self.key_path),
            "run": (
                {
                    "tracking_uri": statement.tracking_uri,
                    "experiment_id": statement.experiment_id,
                    "run_id": statement.run_id,
                }
                if statement is not None
                else None
            ),
            "registered_model": (
                {"name": registered.name, "version": registered.version, "alias": registered.alias}
                if registered
                else None
            ),
            "source": statement.source if statement is not None else None,
            "files": (
                [{"path": f.path, "sha256": f.sha256, "size": f.size, "uri": f.uri} for f in statement.files]
                if statement is not None
                else []
            ),
            "found_in": result.where,
            "checked": list(result.checked),
            "problems": list(result.problems),
        }
        if self.error is not None:
            document.update(ErrorDocument(self.error.exit_code, self.error.message).to_json())
        return document
