"""kit's local storage: where it lives and safe writes into it.

Layout (kit ≥ 1.0, checked against kit 1.7.0's ``pkg/lib/repo/local`` and oras-go's OCI store)::

    <kit home>/storage/oci-layout                      {"imageLayoutVersion":"1.0.0"}
    <kit home>/storage/index.json                      oras' shared OCI index (every manifest, by digest)
    <kit home>/storage/blobs/sha256/<hex>              every blob, content addressed
    <kit home>/storage/<b64url(registry/repo)>-index.json   the repository's manifests
    <kit home>/storage/<b64url(registry/repo)>-tags.json    the repository's tag → manifest map

kit itself rewrites these JSON files in place without locking. Here every file is written to a
temporary file, fsynced and renamed over the target, and the read-modify-write of the index and
tag files happens under an ``flock`` so that two of our packs never lose each other's update.
Temporary files live in ``storage/.kitmlflow-tmp/`` (kit reads none of it); a pack that finds no
other pack of ours running deletes what dead ones left there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kitmlflow_tui.core import locking, settings
from kitmlflow_tui.core.errors import PackError
from kitmlflow_tui.core.modelkit_reference import ModelKitRef, repo_file_stem
from kitmlflow_tui.core.packing import gojson

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
TEMP_DIR_NAME = ".kitmlflow-tmp"
LOCK_FILE_NAME = ".kitmlflow.lock"
ACTIVE_LOCK_NAME = ".kitmlflow-active.lock"


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor as kit writes it for blobs it created (no urls, no platform)."""

    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()

    def to_go(self) -> dict[str, Any]:
        value: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            value["annotations"] = gojson.GoMap(self.annotations)
        return value


# -- where kit keeps things ----------------------------------------------------------------------
def resolve_kit_home(explicit: Path | str | None = None) -> Path:
    """kit's home folder (what ``kit --config`` takes), resolved the way kit resolves it.

    ``explicit`` (like ``--config``), else ``$KITOPS_HOME``, else ``$XDG_DATA_HOME/kitops`` or
    ``~/.local/share/kitops`` on Linux, ``~/Library/Caches/kitops`` on macOS,
    ``%LOCALAPPDATA%\\kitops`` on Windows. Relative paths are made absolute, as kit does.
    """
    if explicit is not None and str(explicit) != "":
        return Path(os.path.abspath(os.path.expanduser(str(explicit))))
    env_home = settings.KITOPS_HOME.raw()
    if env_home:
        return Path(os.path.abspath(env_home))
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "kitops"
    if sys.platform == "win32":
        local = settings.LOCALAPPDATA.raw()
        if not local:
            raise PackError("Cannot find kit's storage: %LOCALAPPDATA% is not set.")
        return Path(local) / "kitops"
    data_home = settings.XDG_DATA_HOME.raw()
    if not data_home:
        home = settings.HOME.raw()
        if not home:
            raise PackError(
                "Cannot find kit's storage: $HOME is not set.",
                hint="Set KITOPS_HOME to the folder kit should use.",
            )
        data_home = os.path.join(home, ".local", "share")
    return Path(data_home) / "kitops"


# -- the storage ---------------------------------------------------------------------------------
class KitStorage:
    """kit's ``storage/`` folder: blobs, the shared index, per-repository index and tag files."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "storage"
        self.blobs = self.root / "blobs" / "sha256"
        self.temp_dir = self.root / TEMP_DIR_NAME
        self.written: list[str] | None = None  # blobs committed in the current session()

    # layout ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold for a whole pack: creates the layout and clears dead packs' temporary files.

        Every pack holds a shared lock on ``.kitmlflow-active.lock``; the one that can take it
        exclusively knows no other pack of ours is running, so every temporary file is a leftover.
        """
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.temp_dir.mkdir(exist_ok=True)
            fd = locking.open_lock_file(self.root / ACTIVE_LOCK_NAME)
        except OSError as exc:
            raise PackError(f"Cannot prepare kit's storage at {self.root}: {exc.strerror or exc}") from exc
        self.written = []
        try:
            if locking.try_lock(fd):
                self.remove_temp_files()
            locking.wait_lock(fd, shared=True)
            layout = self.root / "oci-layout"
            if not layout.exists():
                self.write_file_atomically(layout, b'{"imageLayoutVersion":"1.0.0"}')
            yield
        except BaseException:
            # A pack that stops (cancel, quit, error) leaves no blob it wrote that nothing references: a
            # committed layer of a cancelled pack would otherwise stay, unreachable, for ever. Only when no
            # other pack of ours runs (the lock converts to exclusive), as one could have just found it.
            if self.written and locking.try_lock(fd):
                with contextlib.suppress(PackError, OSError):  # an unreadable index: keep everything
                    self.remove_unreferenced(self.written)
            raise
        finally:
            self.written = None
            os.close(fd)

    def referenced_digests(self) -> set[str]:
        """Every manifest the indexes list, and the config and layers those manifests name."""
        referenced: set[str] = set()
        for index_path in [self.root / "index.json", *self.root.glob("*-index.json")]:
            index = _read_json(index_path, default={"manifests": []})
            for item in index.get("manifests") or []:
                digest = item.get("digest") if isinstance(item, dict) else None
                if not isinstance(digest, str):
                    continue
                referenced.add(digest)
                with contextlib.suppress(PackError, OSError):
                    manifest = _read_json(self.blob_path(digest), default={})
                    parts = [manifest.get("config"), *(manifest.get("layers") or [])]
                    referenced |= {
                        p["digest"] for p in parts if isinstance(p, dict) and isinstance(p.get("digest"), str)
                    }
        return referenced

    def remove_unreferenced(self, digests: list[str]) -> int:
        """Remove those of ``digests`` no manifest references; the count removed."""
        referenced = self.referenced_digests()
        removed = 0
        for digest in set(digests) - referenced:
            with contextlib.suppress(FileNotFoundError):
                self.blob_path(digest).unlink()
                removed += 1
        return removed

    def remove_temp_files(self) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self.temp_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # temporary files ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def temp_file(self, purpose: str) -> Iterator[tuple[Path, IO[bytes]]]:
        """A new temporary file in storage/; removed on exit unless it was renamed away."""
        path = self.temp_dir / f"{purpose}-{os.getpid()}-{secrets.token_hex(8)}.part"
        try:
            handle = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise PackError(f"Cannot create a temporary file in {self.temp_dir}: {exc.strerror or exc}") from exc
        try:
            yield path, handle
        finally:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def write_file_atomically(self, target: Path, data: bytes, *, mode: int = 0o644) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        with self.temp_file("json") as (path, handle):
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
            os.replace(path, target)
        _fsync_dir(target.parent)

    # blobs -----------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", encoded):
            raise PackError(f"Unexpected digest {digest!r}.")
        return self.blobs / encoded

    def has_blob(self, digest: str, size: int) -> bool:
        try:
            return self.blob_path(digest).stat().st_size == size
        except FileNotFoundError:
            return False

    def commit_blob(self, temp_path: Path, handle: IO[bytes], digest: str, size: int) -> None:
        """Move a finished, hashed temporary file into blobs/ (or drop it if the blob exists)."""
        if self.has_blob(digest, size):
            return
        os.fchmod(handle.fileno(), 0o444)
        os.fsync(handle.fileno())
        os.replace(temp_path, self.blob_path(digest))
        _fsync_dir(self.blobs)
        if self.written is not None:  # in a session: remembered, in case the pack does not finish
            self.written.append(digest)

    def put_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest, len(data)):
            with self.temp_file("blob") as (path, handle):
                handle.write(data)
                self.commit_blob(path, handle, digest, len(data))
        return Descriptor(media_type, digest, len(data))

    # indexes and tags ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise our read-modify-write of the index and tag files between processes."""
        with locking.locked(self.root / LOCK_FILE_NAME):
            yield

    def register(self, ref: ModelKitRef, manifest: Descriptor, *, list_in_repository: bool = True) -> None:
        """Add the manifest to the shared index and (``list_in_repository``) the repository's index, then point the
        tag at it. A manifest left out of the repository's index is one ``kit list`` would choke on (a ModelPack).

        Call only once the manifest and every blob it references are in blobs/: the tag file is
        written last, so a reader never finds a tag whose content is missing.
        """
        stem = repo_file_stem(ref.registry, ref.repository)
        with self.locked():
            self._add_to_shared_index(manifest)
            if list_in_repository:
                self._add_to_repo_index(self.root / f"{stem}-index.json", manifest)
            self._set_tag(self.root / f"{stem}-tags.json", ref.tag, manifest)

    def _add_to_shared_index(self, manifest: Descriptor) -> None:
        # oras-go's OCI store keeps every pushed manifest here, tagged by digest; kit relies on it
        # for garbage collection. oras creates it with a mediaType; kit's repo index has none.
        path = self.root / "index.json"
        index = _read_json(path, default={"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []})
        manifests = list(index.get("manifests") or [])
        if any(item.get("digest") == manifest.digest for item in manifests if isinstance(item, dict)):
            return
        manifests.append(manifest.to_go())
        self.write_file_atomically(path, gojson.dumps(_index_to_go(index, manifests)))

    def _add_to_repo_index(self, path: Path, manifest: Descriptor) -> None:
        index = _read_json(path, default={"schemaVersion": 2, "manifests": []})
        manifests: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in list(index.get("manifests") or []) + [manifest.to_go()]:
            digest = item.get("digest") if isinstance(item, dict) else None
            if not digest or digest in seen:
                continue  # kit dedupes by digest when it saves; an old manifest stays listed untagged
            seen.add(digest)
            manifests.append(item)
        self.write_file_atomically(path, gojson.dumps(_index_to_go(index, manifests)))

    def _set_tag(self, path: Path, tag: str, manifest: Descriptor) -> None:
        tags = _read_json(path, default={})
        if not isinstance(tags, dict):
            raise PackError(f"kit's tag file {path} is not a JSON object; fix or delete it.")
        updated = gojson.GoMap({name: _descriptor_to_go(value) for name, value in tags.items()})
        updated[tag] = manifest.to_go()
        self.write_file_atomically(path, gojson.dumps(updated))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_json(path: Path, *, default: Any) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise PackError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PackError(
            f"kit's storage file {path} is not valid JSON ({exc}).",
            hint="kit cannot read it either; restore or delete it, then pack again.",
        ) from exc


# Go's struct field order for ocispec.Index and ocispec.Descriptor; unknown keys are dropped,
# as Go's json.Unmarshal + Marshal round trip that kit does drops them.
_INDEX_FIELDS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")
_DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")


def _index_to_go(index: Any, manifests: list[Any]) -> dict[str, Any]:
    source = dict(index) if isinstance(index, dict) else {}
    source["manifests"] = manifests
    source.setdefault("schemaVersion", 2)
    value: dict[str, Any] = {}
    for field in _INDEX_FIELDS:
        item = source.get(field)
        if field == "manifests":
            value[field] = [_descriptor_to_go(m) for m in manifests]
        elif field == "schemaVersion":
            value[field] = item
        elif item not in (None, "", [], {}):
            value[field] = _descriptor_to_go(item) if field == "subject" else _as_go(item)
    return value


def _descriptor_to_go(descriptor: Any) -> dict[str, Any]:
    if not isinstance(descriptor, dict):
        raise PackError("kit's storage holds a malformed descriptor; fix or delete the index files.")
    value: dict[str, Any] = {}
    for field in _DESCRIPTOR_FIELDS:
        item = descriptor.get(field)
        if field in ("mediaType", "digest"):
            value[field] = item if isinstance(item, str) else ""
        elif field == "size":
            value[field] = item if isinstance(item, int) else 0
        elif item not in (None, "", [], {}):
            value[field] = _as_go(item)
    return value


def _as_go(value: Any) -> Any:
    if isinstance(value, dict):
        return gojson.GoMap({key: _as_go(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_go(item) for item in value]
    return value
