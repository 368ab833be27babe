"""``kitmlflow verify``: is this ModelKit what its signed provenance says, and is that provenance still true?

1. The manifest the reference names is read (its digest is what everything below is checked against).
2. Its attestations are found (:func:`~kitmlflow_tui.core.attest.attach.find_envelopes`: the referrers API, the
   referrers tag, cosign's ``.att`` tag). One is accepted when it is signed by the key (DSSE, over the PAE), is an
   in-toto statement of SLSA provenance v1 made by kitmlflow, and names this manifest as its subject.
3. ``deep``: the layers are streamed (:mod:`.layer_contents`) and must hold exactly the files the statement lists,
   with those digests; the config must be the recorded one.
4. ``mlflow``: the tracking server is asked whether the run still exists, is FINISHED, and still lists every file with
   the recorded size (for a registered model: whether the version still comes from that run).

The result names every problem found; the command exits 10 when there is one. A registry or tracking server that
cannot be reached is its own error (6), not a failed verification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.attest.attach import Found, find_envelopes
from kitmlflow_tui.core.attest.dsse import IN_TOTO_PAYLOAD_TYPE
from kitmlflow_tui.core.attest.keys import VerifyingKey, load_verifying_key
from kitmlflow_tui.core.attest.layer_contents import ByteBudget, LayerError, LayerFile, layer_files
from kitmlflow_tui.core.attest.statement import (
    BUILD_TYPE,
    PREDICATE_TYPE,
    AttestedStatement,
    StatementError,
    read_statement,
)
from kitmlflow_tui.core.errors import BadInputError, NotFoundError, PushError, VerificationError
from kitmlflow_tui.core.registry.client import RegistryClient, RegistryOptions, RemoteManifest

HEADER_ALLOWANCE_PER_FILE = 4096  # tar headers, PAX records and padding per attested file
HEADER_ALLOWANCE = 16 * 1024 * 1024  # and for the folders' headers and the end marker


@dataclass(frozen=True)
class VerifyTarget:
    """``REGISTRY/REPOSITORY:TAG`` or ``REGISTRY/REPOSITORY@sha256:…``."""

    registry: str
    repository: str
    reference: str  # the tag or the digest

    def __str__(self) -> str:
        separator = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{separator}{self.reference}"


@dataclass(frozen=True)
class VerifyOptions:
    key: Path
    deep: bool = False
    mlflow: bool = False
    tracking_uri_flag: str | None = None
    registry: RegistryOptions | None = None


@dataclass(frozen=True)
class VerifyResult:
    reference: str
    digest: str
    key_id: str  # the key the signature was checked with
    statement: AttestedStatement | None  # the accepted one (None when none was)
    where: str | None  # where the accepted one was found
    checked: tuple[str, ...]  # "signature", "subject", "layers", "mlflow"
    problems: tuple[str, ...]

    @property
    def verified(self) -> bool:
        return self.statement is not None and not self.problems


def parse_target(text: str) -> VerifyTarget:
    """A registry reference with a tag or a digest (exit 2 otherwise)."""
    from kitmlflow_tui.core.modelkit_reference import parse_push_reference

    raw = text.strip()
    name, at, digest = raw.partition("@")
    if at:
        if not (
            digest.startswith("sha256:") and len(digest) == 71 and all(c in "0123456789abcdef" for c in digest[7:])
        ):
            raise BadInputError(f"Invalid digest {digest!r} in {raw!r}: use @sha256:<64 hex digits>.")
        ref = parse_push_reference(name + ":latest")
        return VerifyTarget(ref.registry, ref.repository, digest)
    ref = parse_push_reference(raw)
    return VerifyTarget(ref.registry, ref.repository, ref.tag)


def verify_modelkit(
    target: VerifyTarget, options: VerifyOptions, on_step: Callable[[str], None] | None = None
) -> VerifyResult:
    step = on_step or (lambda message: None)
    key = load_verifying_key(options.key)  # a bad key is exit 2 before the registry is asked
    try:
        result = _verify_in_registry(target, options, key, step)
    except PushError as exc:  # the registry answered, but not what a registry answers: nothing could be verified
        raise VerificationError(f"{target} cannot be verified: {exc.message}", hint=exc.hint) from None
    statement = result.statement
    if options.mlflow and statement is not None:
        tracking_uri = _tracking_uri(options, statement)
        step(f"Asking {tracking_uri} about run {statement.run_id}")
        result = replace(
            result,
            checked=(*result.checked, "mlflow"),
            problems=(*result.problems, *_check_mlflow(statement, tracking_uri)),
        )
    return result


def _verify_in_registry(
    target: VerifyTarget, options: VerifyOptions, key: VerifyingKey, step: Callable[[str], None]
) -> VerifyResult:
    with RegistryClient.connect(target.registry, options.registry, on_note=step) as client:
        manifest = client.get_manifest(target.repository, target.reference)
        if manifest is None:
            raise NotFoundError(f"The registry {target.registry} holds no {target}.")
        step(f"{target} is {manifest.digest}; looking for its attestations")
        found = find_envelopes(client, target.repository, manifest.digest)
        accepted, problems = _accepted(found, key, manifest.digest)
        result = VerifyResult(str(target), manifest.digest, key.info.key_id, None, None, ("signature", "subject"), ())
        if accepted is None:
            return replace(result, problems=problems)
        statement, where = accepted
        result = replace(result, statement=statement, where=where)
        if options.deep:
            step(f"Reading the layers of {target}")
            result = replace(
                result, checked=(*result.checked, "layers"), problems=_check_layers(client, target, manifest, statement)
            )
    return result


# -- the attestations ----------------------------------------------------------------------------------------------
def _accepted(
    found: Found, key: VerifyingKey, digest: str
) -> tuple[tuple[AttestedStatement, str] | None, tuple[str, ...]]:
    """The newest attestation that passes every check, or None and why each one failed."""
    if not found.envelopes:
        where = ", ".join(found.looked_in)
        unreadable = f"; unreadable: {'; '.join(found.unreadable)}" if found.unreadable else ""
        return None, (f"no attestation is attached to {digest} (looked in {where}){unreadable}",)
    problems: list[str] = []
    good: list[tuple[AttestedStatement, str]] = []
    for item in found.envelopes:
        envelope, where = item.envelope, item.where
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            problems.append(f"{where}: not an in-toto attestation (payload type {envelope.payload_type[:80]!r})")
            continue
        if not envelope.signed_by(key):
            problems.append(
                f"{where}: the signature does not verify with the key {key.info.key_id} ({key.info.path}): another key "
                "signed it, or the statement was changed after signing"
            )
            continue
        try:
            statement = read_statement(envelope.payload)
        except StatementError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if statement.predicate_type != PREDICATE_TYPE:
            problems.append(f"{where}: a {statement.predicate_type[:80]!r} attestation, not SLSA provenance v1")
            continue
        if digest not in statement.subject_digests:
            named = ", ".join(statement.subject_digests) or "no digest"
            problems.append(
                f"{where}: the attestation's subject is {named}, not this manifest {digest} (copied from another "
                "ModelKit?)"
            )
            continue
        if statement.build_type != BUILD_TYPE:
            problems.append(f"{where}: made by another builder (build type {statement.build_type[:80]!r})")
            continue
        good.append((statement, where))
    problems += [f"unreadable attestation: {text}" for text in found.unreadable]
    if not good:
        return None, tuple(dict.fromkeys(problems))
    return max(good, key=lambda pair: pair[0].finished_on), ()


# -- the layers ------------------------------------------------------------------------------------------------
def _check_layers(
    client: RegistryClient, target: VerifyTarget, manifest: RemoteManifest, statement: AttestedStatement
) -> tuple[str, ...]:
    problems: list[str] = []
    config = manifest.config.get("digest")
    if statement.config_digest is not None and config != statement.config_digest:
        problems.append(f"the manifest's config is {config}, the attestation records {statement.config_digest}")
    budget = ByteBudget(
        sum(file.size or 0 for file in statement.files)
        + HEADER_ALLOWANCE_PER_FILE * len(statement.files)
        + HEADER_ALLOWANCE
    )
    held = _held_files(client, target, manifest, budget)
    return (*problems, *held.problems, *_differences(held.files, statement))


@dataclass(frozen=True)
class _HeldFiles:
    """The files the layers hold, by path, and what was wrong with the layers while reading them."""

    files: dict[str, LayerFile]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _LayerDescriptor:
    digest: str
    size: int
    media_type: str
    annotations: dict[str, str]

    @classmethod
    def of(cls, layer: dict[str, Any]) -> _LayerDescriptor | None:
        """The descriptor, or None when it lacks a digest, a size or a media type."""
        digest, size, media_type = layer.get("digest"), layer.get("size"), layer.get("mediaType")
        if not isinstance(digest, str) or not isinstance(size, int) or not isinstance(media_type, str):
            return None
        annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
        return cls(digest, size, media_type, annotations or {})


def _held_files(
    client: RegistryClient, target: VerifyTarget, manifest: RemoteManifest, budget: ByteBudget
) -> _HeldFiles:
    """Every layer streamed and read; reading stops when the layers hold more than ``budget``."""
    problems: list[str] = []
    held: dict[str, LayerFile] = {}
    for layer in manifest.layers:
        descriptor = _LayerDescriptor.of(layer)
        if descriptor is None:
            problems.append("a layer descriptor without digest, size or media type")
            continue
        digest = descriptor.digest
        try:
            contents = layer_files(
                client.stream_blob(target.repository, digest),
                descriptor.media_type,
                digest,
                descriptor.size,
                descriptor.annotations,
                budget,
            )
        except (LayerError, PushError) as exc:
            problems.append(f"layer {digest[:19]}…: {exc}")
            if isinstance(exc, LayerError) and budget.spent > budget.limit:
                break
            continue
        if contents.problem:
            problems.append(f"layer {digest[:19]}…: {contents.problem}")
        for file in contents.files:
            if file.path in held:
                problems.append(f"{file.path} is in the layers twice")
            held[file.path] = file
    return _HeldFiles(held, tuple(problems))


def _differences(held: dict[str, LayerFile], statement: AttestedStatement) -> list[str]:
    """The files added, changed or removed between the attestation and the layers."""
    expected = {file.path: file for file in statement.files}
    problems: list[str] = []
    for path, file in sorted(held.items()):
        attested = expected.get(path)
        if attested is None:
            problems.append(f"{path} is in the layers but not in the attestation (added)")
        elif attested.sha256 != file.sha256 or (attested.size is not None and attested.size != file.size):
            problems.append(
                f"{path} changed: sha256 {file.sha256[:16]}… ({file.size} bytes) in the layers, "
                f"{attested.sha256[:16]}… attested"
            )
    problems += [
        f"{path} of the attestation is not in the layers (removed)" for path in sorted(expected) if path not in held
    ]
    return problems


# -- MLflow ------------------------------------------------------------------------------------------------------
def _tracking_uri(options: VerifyOptions, statement: AttestedStatement) -> str:
    chosen = options.tracking_uri_flag or settings.TRACKING_URI.value() or statement.tracking_uri
    if not chosen:
        raise BadInputError(
            "The attestation names no tracking server.", hint="Give one with --tracking-uri or MLFLOW_TRACKING_URI."
        )
    if "***" in chosen:
        raise BadInputError(
            f"The attested tracking URI {chosen} had credentials, masked when it was recorded.",
            hint="Give the server with --tracking-uri (credentials in MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN).",
        )
    return chosen


def _check_mlflow(statement: AttestedStatement, tracking_uri: str) -> tuple[str, ...]:
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.reference import ModelRef, RunRef

    catalogue = Catalogue(tracking_uri)
    registered = statement.registered_model
    try:
        if registered is not None:
            resolved = catalogue.resolve(
                ModelRef(tracking_uri, registered.name, version=registered.version), require_finished=False
            )
        else:
            resolved = catalogue.resolve(
                RunRef(tracking_uri, statement.run_id, statement.experiment_id or None), require_finished=False
            )
    except NotFoundError as exc:
        return (f"MLflow: {exc.message}",)
    run = resolved.run
    problems = []
    if run.run_id != statement.run_id:
        assert registered is not None
        problems.append(
            f"MLflow: {registered.name} version {registered.version} now comes from run {run.run_id}, not from the "
            f"attested run {statement.run_id}"
        )
    if run.lifecycle_stage == "deleted":
        problems.append(f"MLflow: run {run.run_id} is deleted")
    if run.status != "FINISHED":
        problems.append(f"MLflow: run {run.run_id} is {run.status}, not FINISHED")
    listed = {file.path: file.size for file in resolved.tree.files}
    for file in statement.files:
        if file.uri is None:
            continue  # a file kitmlflow wrote, not the run's
        if file.path not in listed:
            problems.append(f"MLflow: {file.path} is no longer listed in run {run.run_id}")
        elif file.size is not None and listed[file.path] is not None and listed[file.path] != file.size:
            problems.append(f"MLflow: {file.path} is listed with {listed[file.path]} bytes, {file.size} attested")
    return tuple(problems)
