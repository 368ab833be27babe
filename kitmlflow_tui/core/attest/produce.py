"""An import's attestation: the statement of the packed ModelKit, signed with the user's key, written to
``--attestation-output``, and attached to the manifest once it is pushed (``import --push``, ``sync``).

The pipeline hands over what it knows of the import (:class:`ImportFacts`); this module reads the rest from the
ModelKit in local storage (its manifest and config), builds the statement and moves it where it goes. Without a key
the statement is written unsigned (a local record, or for ``cosign attest --predicate`` elsewhere) and nothing is
attached.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from kitmlflow_tui.core.attest.attach import Attached, Subject, attach_envelope
from kitmlflow_tui.core.attest.dsse import Envelope, read_envelope, sign_payload
from kitmlflow_tui.core.attest.keys import KeyInfo, SigningKey
from kitmlflow_tui.core.attest.statement import (
    PREDICATE_TYPE,
    Invocation,
    StatementInput,
    build_statement,
    statement_bytes,
)
from kitmlflow_tui.core.errors import BadInputError, PackError
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.packing.file_digests import FileDigest
from kitmlflow_tui.core.provenance import MlflowProvenance
from kitmlflow_tui.core.registry.client import RegistryClient
from kitmlflow_tui.core.registry.local import LocalModelKit, read_local_modelkit

MAX_SAVED_ENVELOPE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Attestation:
    subject_name: str
    subject_digest: str
    payload: bytes  # the statement as signed
    envelope: Envelope | None  # None: no key was given
    key: KeyInfo | None
    output: Path | None = None  # where --attestation-output wrote it
    attached: tuple[Attached, ...] = ()

    @property
    def predicate_type(self) -> str:
        return PREDICATE_TYPE

    def document(self) -> bytes:
        """What --attestation-output holds: the DSSE envelope, or the bare statement when unsigned."""
        return self.envelope.to_bytes() if self.envelope is not None else self.payload


@dataclass(frozen=True)
class ImportFacts:
    """What the pipeline knows of a packed import that its statement needs."""

    tag: ModelKitRef  # the ModelKit in local storage
    storage_root: Path | None
    subject_ref: ModelKitRef  # the name the subject gets: where it is pushed, else ``tag``
    provenance: MlflowProvenance
    files: tuple[FileDigest, ...]  # every file of the layers
    run_files: Mapping[str, str | None]  # the selected files, each with its logged-model folder
    kitfile_sha256: str | None
    packer: str
    compression: str
    format: str
    started_on: str


def import_attestation(facts: ImportFacts, key: SigningKey | None, output: Path | None) -> Attestation:
    """The attestation of the ModelKit ``facts.tag`` names in local storage, signed with ``key``, written to ``output``."""
    local = read_local_modelkit(facts.tag, storage_root=facts.storage_root)
    given = StatementInput(
        subject_name=str(facts.subject_ref).rsplit(":", 1)[0],
        subject_digest=local.manifest.digest,
        provenance=facts.provenance,
        files=facts.files,
        run_files=facts.run_files,
        config_media_type=local.config.media_type,
        config_digest=local.config.digest,
        invocation=Invocation(str(uuid.uuid4()), facts.started_on, now_rfc3339()),
        format=facts.format,
        kitfile_sha256=facts.kitfile_sha256,
        packer=facts.packer,
        compression=facts.compression,
    )
    return make_attestation(given, key, output)


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_attestation(given: StatementInput, key: SigningKey | None, output: Path | None) -> Attestation:
    payload = statement_bytes(build_statement(given))
    envelope = sign_payload(payload, key) if key is not None else None
    attestation = Attestation(
        given.subject_name, given.subject_digest, payload, envelope, key.info if key is not None else None
    )
    if output is not None:
        write_document(output, attestation.document())
        attestation = replace(attestation, output=output)
    return attestation


def check_output_path(path: Path) -> None:
    """Refuse an --attestation-output that cannot be written, before anything is downloaded (exit 2)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BadInputError(f"--attestation-output {path} is a folder; name a file.")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise BadInputError(f"--attestation-output {path}: the folder {folder} does not exist or is not writable.")


def write_document(path: Path, data: bytes) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        raise PackError(f"Writing the attestation to {path} failed: {exc.strerror or exc}.") from exc


def read_saved_envelope(path: Path) -> Envelope | None:
    """An envelope this machine saved (a sync that stopped before pushing), or None when it is not there or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SAVED_ENVELOPE_BYTES + 1)
        return read_envelope(data) if len(data) <= MAX_SAVED_ENVELOPE_BYTES else None
    except (OSError, ValueError):
        return None


def attach_to_pushed(
    client: RegistryClient, repository: str, local: LocalModelKit, envelope: Envelope
) -> tuple[Attached, ...]:
    """Attach a signed envelope to the manifest of ``local`` once the registry holds it (every layout cosign reads)."""
    subject = Subject(local.manifest.digest, local.manifest.media_type, len(local.manifest_bytes))
    return attach_envelope(client, repository, subject, envelope, PREDICATE_TYPE, created=now_rfc3339())
