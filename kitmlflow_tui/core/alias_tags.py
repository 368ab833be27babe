"""Which tags of a repository ``sync`` made as alias tags: a small record kept in the repository itself.

An alias tag (``champion``) names the same manifest as its version's tag (``v2``), so nothing in the registry
tells it apart from a tag someone made by hand (``kit tag``) or an ``import --push -t repo:prod`` of the same
version. ``sync --prune-aliases`` must delete only the tags sync made for an alias that MLflow no longer has,
so sync writes down, before it first points a tag at an alias's version, that the tag is the alias tag of that
registered model. The record lives where the tags live (any machine that syncs the repository reads the same
one): an OCI artifact under the tag ``kitmlflow.alias-tags`` (a dot, which an MLflow alias cannot hold, so no
alias tag can take its name), its entries in a manifest annotation as JSON::

    {"champion": {"model": "fraud"}, "staging": {"model": "fraud"}}

A record the registry holds under that tag that kitmlflow did not write (another artifact type, entries that
do not parse) is never overwritten and names no tag: nothing is pruned on its word.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kitmlflow_tui.core.errors import KitmlflowError, PushError

if TYPE_CHECKING:
    from kitmlflow_tui.core.registry import RegistryClient

RECORD_TAG = "kitmlflow.alias-tags"
ARTIFACT_TYPE = "application/vnd.kitmlflow.alias-tags.v1+json"
ENTRIES_ANNOTATION = "org.kitmlflow.alias-tags"
_DESCRIPTION = "The tags kitmlflow sync points at MLflow registered-model aliases (not a ModelKit)."


@dataclass(frozen=True)
class AliasTags:
    """The record as read: each alias tag and the registered model it is the alias tag of."""

    owners: Mapping[str, str] = field(default_factory=dict)
    foreign: str | None = None  # why the tag holds something kitmlflow will not overwrite, when it does

    def of_model(self, name: str) -> set[str]:
        return {tag for tag, owner in self.owners.items() if owner == name}

    def records(self, tag: str, name: str) -> bool:
        return self.owners.get(tag) == name

    def with_tag(self, tag: str, name: str) -> AliasTags:
        return AliasTags({**self.owners, tag: name})

    def without(self, tags: Iterable[str]) -> AliasTags:
        gone = set(tags)
        return AliasTags({tag: owner for tag, owner in self.owners.items() if tag not in gone})


def read_alias_tags(client: RegistryClient, repository: str) -> AliasTags:
    """The repository's record (empty when there is none yet); one bounded manifest GET."""
    manifest = client.get_manifest(repository, RECORD_TAG)
    if manifest is None:
        return AliasTags()
    try:
        document = manifest.json()
    except (ValueError, KitmlflowError):
        return AliasTags(foreign="it is not JSON")
    if document.get("artifactType") != ARTIFACT_TYPE:
        return AliasTags(foreign=f"it holds another artifact ({str(document.get('artifactType'))[:80]})")
    annotations = document.get("annotations")
    raw = annotations.get(ENTRIES_ANNOTATION) if isinstance(annotations, dict) else None
    try:
        entries = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        entries = None
    if not isinstance(entries, dict) or not all(
        isinstance(tag, str) and isinstance(entry, dict) and isinstance(entry.get("model"), str)
        for tag, entry in entries.items()
    ):
        return AliasTags(foreign="its entries do not parse")
    return AliasTags({tag: entry["model"] for tag, entry in entries.items()})


def write_alias_tags(client: RegistryClient, repository: str, record: AliasTags) -> None:
    """Store ``record`` under the record's tag (an OCI manifest with OCI's empty config and layer)."""
    from kitmlflow_tui.core.registry.client import OCI_MANIFEST
    from kitmlflow_tui.core.registry.untag import empty_descriptor

    if record.foreign:
        raise PushError(f"The tag {RECORD_TAG} holds something kitmlflow did not write ({record.foreign}).")
    entries = {tag: {"model": owner} for tag, owner in sorted(record.owners.items())}
    empty = empty_descriptor(client, repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "annotations": {
            ENTRIES_ANNOTATION: json.dumps(entries, sort_keys=True, separators=(",", ":")),
            "org.opencontainers.image.description": _DESCRIPTION,
        },
    }
    client.put_manifest(repository, RECORD_TAG, json.dumps(manifest, sort_keys=True).encode())
