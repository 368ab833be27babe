"""Reading a kit storage folder (``$KITOPS_HOME/storage``) in tests: its blobs, manifests and tag files, and
the consistency check that every index and tag file points at blobs that exist with their digest."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any


def kit_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    # kit release builds ask GitHub for a newer version on every command unless told not to.
    (path / "disable-update-notifications").touch()
    return path


def storage_of(home: Path) -> Path:
    return home / "storage"


def blob(home: Path, digest: str) -> bytes:
    return (storage_of(home) / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def manifest_of(home: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob(home, digest))


def tags_file(home: Path, repo: str) -> Path:
    stem = base64.urlsafe_b64encode(repo.encode()).decode()
    return storage_of(home) / f"{stem}-tags.json"


def check_storage_consistent(home: Path) -> int:
    """Every index and tag file parses, and everything they point at exists with the right sha256."""
    storage = storage_of(home)
    checked = 0
    verified: set[str] = set()

    def verify(descriptor: dict[str, Any]) -> None:
        digest = descriptor["digest"]
        if digest in verified:
            return
        data = blob(home, digest)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        assert len(data) == descriptor["size"]
        verified.add(digest)

    def verify_manifest(descriptor: dict[str, Any]) -> None:
        verify(descriptor)
        manifest = manifest_of(home, descriptor["digest"])
        verify(manifest["config"])
        for layer in manifest["layers"] or []:
            verify(layer)

    for path in sorted(storage.glob("*-tags.json")):
        for descriptor in json.loads(path.read_bytes()).values():
            verify_manifest(descriptor)
            checked += 1
    for path in sorted(storage.glob("*-index.json")):
        for descriptor in json.loads(path.read_bytes())["manifests"]:
            verify_manifest(descriptor)
    if (storage / "index.json").exists():
        for descriptor in json.loads((storage / "index.json").read_bytes())["manifests"]:
            verify_manifest(descriptor)
    return checked
