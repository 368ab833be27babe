"""Deleting one tag, on registries that delete manifests but not tags.

The OCI distribution spec lets a client ``DELETE /v2/<repo>/manifests/<tag>``, but the CNCF distribution
registry 2.8 (Debian's ``docker-registry``, and what many hosted registries run) answers 400 DIGEST_INVALID:
it deletes a manifest by digest only, and with it every tag that names that manifest. An alias tag names the
same manifest as its version's tag, so deleting that digest would delete the version too.

So the tag is first pointed at a manifest of its own, a "tombstone" that no other tag can name (it records
the repository and the tag), and that tombstone is deleted by digest: the tag goes with it, nothing else does.
Before the tag is touched, the same tombstone is stored untagged and deleted once, so a registry that does not
delete at all (distribution's default: 405 UNSUPPORTED) fails before the tag changes. The tombstone and its
empty config (``{}``, OCI's empty descriptor) are a few hundred bytes the registry's garbage collection removes.
"""

from __future__ import annotations

import hashlib
import json

from kitmlflow_tui.core.errors import PushError
from kitmlflow_tui.core.registry.client import OCI_MANIFEST, RegistryClient

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
TOMBSTONE_ARTIFACT_TYPE = "application/vnd.kitmlflow.deleted-tag.v1"


def empty_descriptor(client: RegistryClient, repository: str) -> dict[str, object]:
    """OCI's empty descriptor, its blob stored in the repository (registries check a manifest's blobs exist)."""
    digest = client.put_small_blob(repository, EMPTY_DATA)
    return {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest, "size": len(EMPTY_DATA)}


def delete_tag(client: RegistryClient, repository: str, tag: str, *, expected_digest: str) -> bool:
    """Delete ``tag`` alone, when it still names ``expected_digest``; False when it names something else (or
    nothing) by now: left as it is. Raises PushError (exit 9) when the registry cannot delete."""
    empty = empty_descriptor(client, repository)
    tombstone = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": TOMBSTONE_ARTIFACT_TYPE,
            "config": empty,
            "layers": [empty],
            "annotations": {"org.kitmlflow.deleted-tag": f"{repository}:{tag}"},
        },
        sort_keys=True,
    ).encode()
    digest = client.put_manifest(repository, _digest_of(tombstone), tombstone)
    client.delete_manifest(repository, digest)  # the registry deletes, or this raises with the hint
    current = client.get_manifest(repository, tag)
    if current is None or current.digest != expected_digest:
        return False
    client.put_manifest(repository, tag, tombstone)
    if not client.delete_manifest(repository, digest):
        raise PushError(f"The registry {client.registry} lost the manifest that stood in for {repository}:{tag}.")
    return True


def _digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
