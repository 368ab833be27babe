"""A ModelKit in kit's local storage, read for a push: its manifest bytes and the files of its blobs.

Read-only; the layout is the one ``packing.storage`` writes (``<b64url(registry/repo)>-tags.json`` maps a tag
to its manifest descriptor, ``blobs/sha256/<hex>`` holds every blob). Every JSON file is read with a bound:
kit or another tool may have written it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitmlflow_tui.core.errors import NotFoundError, PackError, PushError
from kitmlflow_tui.core.modelkit_reference import ModelKitRef, repo_file_stem
from kitmlflow_tui.core.packing.storage import MANIFEST_MEDIA_TYPE, Descriptor, KitStorage, resolve_kit_home

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LocalModelKit:
    reference: str  # as stored: "registry/repository:tag"
    manifest: Descriptor
    manifest_bytes: bytes
    config: Descriptor
    layers: tuple[Descriptor, ...]
    storage: KitStorage

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)

    def blob_file(self, descriptor: Descriptor) -> Path:
        return self.storage.blob_path(descriptor.digest)


def read_local_modelkit(ref: ModelKitRef, storage_root: Path | None = None) -> LocalModelKit:
    """The ModelKit ``ref`` of kit's storage, every blob present with its size."""
    storage = KitStorage(resolve_kit_home(storage_root))
    reference = str(ref)
    tags = _read_json(storage.root / f"{repo_file_stem(ref.registry, ref.repository)}-tags.json", default={})
    entry = tags.get(ref.tag) if isinstance(tags, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        raise NotFoundError(f"No ModelKit {reference} in kit's local storage ({storage.root}).")
    digest = entry["digest"]
    manifest_bytes = _read_blob(storage, digest, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(manifest_bytes)
        config = _descriptor(manifest["config"])
        layers = tuple(_descriptor(layer) for layer in manifest["layers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PushError(f"The manifest of {reference} in kit's storage is malformed ({exc}).") from None
    media_type = str(entry.get("mediaType") or manifest.get("mediaType") or MANIFEST_MEDIA_TYPE)
    for blob in (config, *layers):
        if not storage.has_blob(blob.digest, blob.size):
            raise PushError(
                f"kit's storage lacks the blob {blob.digest} ({blob.size} bytes) of {reference}.",
                hint="Pack the ModelKit again.",
            )
    return LocalModelKit(
        reference, Descriptor(media_type, digest, len(manifest_bytes)), manifest_bytes, config, layers, storage
    )


def repositories_holding(storage: KitStorage, registry: str, digests: set[str]) -> dict[str, list[str]]:
    """For each digest, the other repositories of ``registry`` in local storage whose ModelKits use it.

    A push into one repository can then ask the registry to mount the blob from one of them: those are where
    it was pulled from or pushed to before (a refused mount costs nothing: it opens a normal upload).
    """
    found: dict[str, list[str]] = {}
    if not digests:
        return found
    for index_file in sorted(storage.root.glob("*-index.json")):
        name = _repository_of(index_file)
        if name is None:
            continue
        file_registry, _, repository = name.partition("/")
        if file_registry != registry or not repository:
            continue
        index = _read_json(index_file, default={})
        for item in index.get("manifests") or [] if isinstance(index, dict) else []:
            digest = item.get("digest") if isinstance(item, dict) else None
            if not isinstance(digest, str) or not storage.has_blob(digest, int(item.get("size") or -1)):
                continue
            try:
                manifest = json.loads(_read_blob(storage, digest, MAX_MANIFEST_BYTES))
                used = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
            except (ValueError, KeyError, TypeError, PushError):
                continue
            for blob in used & digests:
                if repository not in found.setdefault(blob, []):
                    found[blob].append(repository)
    return found


def _repository_of(index_file: Path) -> str | None:
    stem = index_file.name.removesuffix("-index.json")
    try:
        return base64.urlsafe_b64decode(stem.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        return None  # oras' own index.json and anything else that is not a repository file


def _descriptor(value: Any) -> Descriptor:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("digest"), str)
        or not isinstance(value.get("size"), int)
    ):
        raise TypeError("a descriptor without digest or size")
    return Descriptor(str(value.get("mediaType") or ""), value["digest"], value["size"])


def _read_blob(storage: KitStorage, digest: str, limit: int) -> bytes:
    try:
        path = storage.blob_path(digest)
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except (OSError, PackError) as exc:  # blob_path raises PackError for a digest it cannot use
        raise PushError(f"Cannot read the blob {digest} from kit's storage: {exc}.") from None
    if len(data) > limit:
        raise PushError(f"The manifest {digest} in kit's storage is larger than {limit} bytes.")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise PushError(f"The blob {digest} in kit's storage does not match its digest.", hint="Pack it again.")
    return data


def _read_json(path: Path, *, default: Any) -> Any:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise PushError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_JSON_BYTES:
        raise PushError(f"kit's storage file {path} is larger than {MAX_JSON_BYTES} bytes; not read.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PushError(f"kit's storage file {path} is not valid JSON ({exc}).") from None
