"""Where a ModelKit's attestations live in a registry: written after a push, found again by ``verify``.

Two layouts carry the same DSSE envelope, so that every cosign reads it and ``verify`` finds it either way:

* a **Sigstore bundle referrer** (what cosign 3 writes and reads first): a manifest with ``subject`` = the ModelKit's
  manifest, ``artifactType`` ``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config and one layer, the
  bundle JSON ``{mediaType, verificationMaterial: {publicKey: {hint}, tlogEntries: []}, dsseEnvelope}``. It is listed by
  the registry's referrers API, else by the referrers tag ``sha256-<hex>`` (:mod:`kitmlflow_tui.core.registry.referrers`);
* **cosign's ``.att`` tag** (what cosign 2, and policy engines built on it such as Kyverno, read): the tag
  ``sha256-<hex>.att`` names a manifest whose layers are DSSE envelopes (``application/vnd.dsse.envelope.v1+json``,
  annotated with their predicate type); a new envelope is added to the ones already there.

Nothing here checks a signature: :mod:`.verify` does, on what :func:`find_envelopes` returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kitmlflow_tui.core.attest.dsse import (
    ENVELOPE_MEDIA_TYPE,
    Envelope,
    EnvelopeError,
    envelope_from_mapping,
    read_envelope,
)
from kitmlflow_tui.core.errors import KitmlflowError
from kitmlflow_tui.core.registry.client import OCI_MANIFEST, RegistryClient
from kitmlflow_tui.core.registry.referrers import listed_referrers, put_referrer, referrers_tag

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
IMAGE_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
ATT_SUFFIX = ".att"
BUNDLE_REFERRER = "sigstore-bundle-referrer"
COSIGN_ATT_TAG = "cosign-att-tag"
LAYOUTS = (BUNDLE_REFERRER, COSIGN_ATT_TAG)
MAX_ATTESTATION_BYTES = 32 * 1024 * 1024
MAX_MANIFESTS_READ = 64  # referrers opened per ModelKit: more is a registry flooding the listing
MAX_ENVELOPES = 256


@dataclass(frozen=True)
class Subject:
    """The manifest an attestation is attached to."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Attached:
    layout: str  # BUNDLE_REFERRER or COSIGN_ATT_TAG
    digest: str  # of the manifest that holds the envelope
    where: str  # how a reader finds it: "the referrers API", "tag sha256-…", "tag sha256-….att"


@dataclass(frozen=True)
class FoundEnvelope:
    envelope: Envelope
    where: str  # "referrer sha256:… (listed by …)" or "tag sha256-….att"


@dataclass(frozen=True)
class Found:
    envelopes: tuple[FoundEnvelope, ...]
    unreadable: tuple[str, ...]  # attestations that could not be read, with why
    looked_in: tuple[str, ...]  # where the registry was asked


def attach_envelope(
    client: RegistryClient,
    repository: str,
    subject: Subject,
    envelope: Envelope,
    predicate_type: str,
    *,
    created: str,
    layouts: Sequence[str] = LAYOUTS,
) -> tuple[Attached, ...]:
    """Attach ``envelope`` to ``subject`` in every layout of ``layouts``; ``created`` (RFC 3339) dates the referrer."""
    attached = []
    if BUNDLE_REFERRER in layouts:
        attached.append(_attach_bundle(client, repository, subject, envelope, predicate_type, created))
    if COSIGN_ATT_TAG in layouts:
        attached.append(_attach_att(client, repository, subject, envelope, predicate_type))
    return tuple(attached)


def bundle_bytes(envelope: Envelope) -> bytes:
    """A Sigstore bundle v0.3 around the envelope, for a key with no transparency log entry (cosign's
    ``--insecure-ignore-tlog``): the key is the verifier's, so the bundle names none (an empty hint)."""
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_mapping(),
    }
    return _compact(bundle)


def _attach_bundle(
    client: RegistryClient, repository: str, subject: Subject, envelope: Envelope, predicate_type: str, created: str
) -> Attached:
    bundle = bundle_bytes(envelope)
    client.put_small_blob(repository, EMPTY_CONFIG)
    client.put_small_blob(repository, bundle)
    stored = put_referrer(client, repository, bundle_referrer_manifest(subject, bundle, predicate_type, created))
    return Attached(BUNDLE_REFERRER, stored.digest, stored.listed_by)


def bundle_referrer_manifest(subject: Subject, bundle: bytes, predicate_type: str, created: str) -> bytes:
    """The referrer manifest of a bundle: cosign 3's layout (``WriteAttestationNewBundleFormat``)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": _sha256(EMPTY_CONFIG), "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": _sha256(bundle), "size": len(bundle)}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {
            BUNDLE_CONTENT_ANNOTATION: "dsse-envelope",
            BUNDLE_PREDICATE_ANNOTATION: predicate_type,
            CREATED_ANNOTATION: created,
        },
    }
    return _compact(manifest)


def _attach_att(
    client: RegistryClient, repository: str, subject: Subject, envelope: Envelope, predicate_type: str
) -> Attached:
    tag = referrers_tag(subject.digest) + ATT_SUFFIX
    data = envelope.to_bytes()
    client.put_small_blob(repository, data)
    existing = client.get_manifest(repository, tag)
    kept = [
        layer
        for layer in (_json(existing.data).get("layers") or [] if existing is not None else [])
        if isinstance(layer, dict) and layer.get("mediaType") == ENVELOPE_MEDIA_TYPE
    ]
    layers = att_layers(kept, data, predicate_type)
    config = att_config(layers)
    client.put_small_blob(repository, config)
    digest = client.put_manifest(repository, tag, att_manifest(layers, config), OCI_MANIFEST)
    return Attached(COSIGN_ATT_TAG, digest, f"tag {tag}")


def att_layers(kept: list[dict[str, Any]], envelope: bytes, predicate_type: str) -> list[dict[str, Any]]:
    """The ``.att`` manifest's layers: the envelopes already there, then this one (once)."""
    layer = {
        "mediaType": ENVELOPE_MEDIA_TYPE,
        "digest": _sha256(envelope),
        "size": len(envelope),
        "annotations": {COSIGN_SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type},
    }
    return [*(entry for entry in kept if entry.get("digest") != layer["digest"]), layer]


def att_config(layers: list[dict[str, Any]]) -> bytes:
    """An OCI image config naming the layers (uncompressed: each diffId is its digest), as cosign's empty image has."""
    rootfs = {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}
    return _compact({"architecture": "", "os": "", "config": {}, "rootfs": rootfs})


def att_manifest(layers: list[dict[str, Any]], config: bytes) -> bytes:
    return _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": _sha256(config), "size": len(config)},
            "layers": layers,
        }
    )


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- finding them --------------------------------------------------------------------------------------------------
def find_envelopes(client: RegistryClient, repository: str, subject_digest: str) -> Found:
    """Every DSSE envelope attached to ``subject_digest`` in either layout (and the referrer layout cosign 2 writes
    with ``--registry-referrers-mode oci-1-1``: DSSE layers in a referrer). Bounded: at most MAX_MANIFESTS_READ
    manifests, MAX_ENVELOPES envelopes, each at most MAX_ATTESTATION_BYTES."""
    envelopes: list[FoundEnvelope] = []
    unreadable: list[str] = []
    tag = referrers_tag(subject_digest)
    looked_in = ("the referrers API", f"tag {tag}", f"tag {tag}{ATT_SUFFIX}")
    sources: list[tuple[str, str]] = [
        (entry["digest"], f"referrer {entry['digest'][:19]}…")
        for entry in listed_referrers(client, repository, subject_digest)[:MAX_MANIFESTS_READ]
    ]
    sources.append((tag + ATT_SUFFIX, f"tag {tag}{ATT_SUFFIX}"))
    for reference, where in sources:
        manifest = client.get_manifest(repository, reference)
        if manifest is None:
            continue
        for layer in _json(manifest.data).get("layers") or []:
            if len(envelopes) >= MAX_ENVELOPES:
                break
            kind = layer.get("mediaType") if isinstance(layer, dict) else None
            if kind not in (BUNDLE_MEDIA_TYPE, ENVELOPE_MEDIA_TYPE) or not isinstance(layer.get("digest"), str):
                continue
            try:
                data = client.get_blob(repository, layer["digest"], max_bytes=MAX_ATTESTATION_BYTES)
                envelope = _bundle_envelope(data) if kind == BUNDLE_MEDIA_TYPE else read_envelope(data)
            except (EnvelopeError, KitmlflowError) as exc:
                unreadable.append(f"{where}: {exc}")
                continue
            envelopes.append(FoundEnvelope(envelope, where))
    return Found(tuple(envelopes), tuple(unreadable), looked_in)


def _bundle_envelope(data: bytes) -> Envelope:
    bundle = _json(data)
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE or "dsseEnvelope" not in bundle:
        raise EnvelopeError("a Sigstore bundle without a DSSE envelope")
    return envelope_from_mapping(bundle["dsseEnvelope"])


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
