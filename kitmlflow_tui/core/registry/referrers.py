"""OCI 1.1 referrers: manifests that name another manifest as their ``subject`` (signatures, attestations, SBOMs).

The distribution spec (v1.1) gives two ways to find them, and a client writes for both:

* a registry with the referrers API answers the manifest PUT with ``OCI-Subject: <subject digest>`` and lists the
  referrer at ``GET /v2/<name>/referrers/<digest>`` (an image index);
* without that header the client keeps the list itself: an image index tagged ``<alg>-<hex>`` (the referrers tag
  schema, e.g. ``sha256-0123…``), read, extended and written back. Two clients doing it at once may lose an entry
  (the spec leaves the race to clients): the write is read back and done again when the entry is missing.

Debian's ``docker-registry`` (distribution 2.8) has no referrers API: it stores the referrer and answers 404 to the
listing, so the tag is what lists it there. Nothing here knows what a referrer holds (that is ``attest.attach``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from kitmlflow_tui.core.errors import PushError
from kitmlflow_tui.core.registry.client import OCI_INDEX, OCI_MANIFEST, RegistryClient

INDEX_WRITE_ATTEMPTS = 3
MAX_REFERRERS = 10_000  # entries read from one listing
_TAG_CHARACTER = re.compile(r"[^a-zA-Z0-9._-]")


@dataclass(frozen=True)
class StoredReferrer:
    digest: str  # of the referrer manifest
    listed_by: str  # "the referrers API" or "tag sha256-…": where a reader finds it


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag of a subject: ``<alg>-<hex>``, truncated to 32 and 64 characters."""
    algorithm, _, encoded = digest.partition(":")
    return f"{_TAG_CHARACTER.sub('-', algorithm)[:32]}-{_TAG_CHARACTER.sub('-', encoded)[:64]}"


def put_referrer(client: RegistryClient, repository: str, manifest: bytes) -> StoredReferrer:
    """Store a referrer manifest (by its digest) and make sure readers find it: the registry's referrers API when it
    said it lists the referrer (``OCI-Subject``), else the referrers tag's index."""
    value = json.loads(manifest)
    subject = value["subject"]["digest"]
    reference = "sha256:" + hashlib.sha256(manifest).hexdigest()
    digest, headers = client.put_manifest_answered(repository, reference, manifest, OCI_MANIFEST)
    if headers.get("OCI-Subject") == subject:
        return StoredReferrer(digest, "the referrers API")
    descriptor: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}
    if value.get("artifactType"):
        descriptor["artifactType"] = value["artifactType"]
    if value.get("annotations"):
        descriptor["annotations"] = value["annotations"]
    add_to_referrers_tag(client, repository, subject, descriptor)
    return StoredReferrer(digest, f"tag {referrers_tag(subject)}")


def add_to_referrers_tag(client: RegistryClient, repository: str, subject: str, descriptor: dict[str, Any]) -> None:
    """Add ``descriptor`` to the index the referrers tag of ``subject`` names (created when there is none)."""
    tag = referrers_tag(subject)
    for _attempt in range(INDEX_WRITE_ATTEMPTS):
        entries = [e for e in tagged_referrers(client, repository, subject) if e.get("digest") != descriptor["digest"]]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*entries, descriptor]}
        client.put_manifest(repository, tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX)
        if any(e.get("digest") == descriptor["digest"] for e in tagged_referrers(client, repository, subject)):
            return
    raise PushError(
        f"The referrers tag {tag} of {client.registry}/{repository} kept losing the new entry: another client "
        "rewrites it at the same time."
    )


def listed_referrers(client: RegistryClient, repository: str, subject: str) -> list[dict[str, Any]]:
    """Every referrer of ``subject`` the registry lists: its referrers API's, then the referrers tag's (a client that
    saw no ``OCI-Subject`` may have written there even on a registry with the API); one entry per digest."""
    found: dict[str, dict[str, Any]] = {}
    data = client.get_referrers(repository, subject)
    for entry in (*(_index_entries(data) if data is not None else []), *tagged_referrers(client, repository, subject)):
        digest = entry.get("digest")
        if isinstance(digest, str) and digest not in found:
            found[digest] = entry
    return list(found.values())


def tagged_referrers(client: RegistryClient, repository: str, subject: str) -> list[dict[str, Any]]:
    """The entries of the referrers tag's index ([] when the tag does not exist)."""
    manifest = client.get_manifest(repository, referrers_tag(subject))
    return [] if manifest is None else _index_entries(manifest.data)


def _index_entries(data: bytes) -> list[dict[str, Any]]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return []
    manifests = value.get("manifests") if isinstance(value, dict) else None
    if not isinstance(manifests, list):
        return []
    return [entry for entry in manifests[:MAX_REFERRERS] if isinstance(entry, dict)]
