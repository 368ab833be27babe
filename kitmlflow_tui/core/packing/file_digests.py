"""The sha256 of every packed file, for the attestation's ``resolvedDependencies``, computed in a pass that reads the
bytes anyway: never a second read of a 50 GB model.

* The direct import hashes each layer blob once, in order, to get the layer's digest
  (``direct._InOrderHasher``); :class:`RegionDigests` is fed the same chunks and cuts them along the tar layout's
  file regions (each file's offset and size, :func:`~kitmlflow_tui.core.packing.layers.tar_layout`).
* The native packer streams each layer tar through ``layers.write_layer``: the same :class:`RegionDigests` is fed
  the stream.
* ``kit pack`` reads the files itself: :func:`digest_file` reads each downloaded file once more, the one path that
  pays a read (only when an attestation is asked for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kitmlflow_tui.core.errors import PackError
from kitmlflow_tui.core.packing.layers import FileRegion

_READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    """One packed file: its path in the ModelKit (relative, ``/``-separated), its size and the sha256 of its bytes."""

    path: str
    size: int
    sha256: str  # lowercase hex


class RegionDigests:
    """The sha256 of each file region of one layer tar, fed the tar's bytes in order from its first byte.

    A chunk may span several files or none (headers, padding); each file's hash gets exactly its own bytes.
    """

    def __init__(self, regions: Sequence[FileRegion]) -> None:
        self._regions = sorted(regions, key=lambda region: region.offset)
        self._hashes = [hashlib.sha256() for _ in self._regions]
        self._index = 0  # the first region not entirely fed yet
        self._position = 0  # the tar offset the next chunk starts at

    def update(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset != self._position:
            raise PackError(f"Layer bytes were hashed out of order (at {offset}, expected {self._position}).")
        end = offset + len(data)
        view = memoryview(data)
        index = self._index
        while index < len(self._regions) and self._regions[index].offset < end:
            region = self._regions[index]
            start, stop = max(offset, region.offset), min(end, region.offset + region.size)
            if stop > start:
                self._hashes[index].update(view[start - offset : stop - offset])
            if region.offset + region.size > end:
                break
            index += 1
        self._index = index
        self._position = end

    def result(self) -> tuple[FileDigest, ...]:
        """Every file's digest; refused when the tar was not fed to its last file's end."""
        if self._index < len(self._regions):
            missing = self._regions[self._index].name
            raise PackError(f"The layer holding {missing} was not read to its end while it was hashed.")
        return tuple(
            FileDigest(region.name, region.size, digest.hexdigest())
            for region, digest in zip(self._regions, self._hashes, strict=True)
        )


def digest_file(path: Path, name: str) -> FileDigest:
    """The digest of one file on disk (``kit pack``'s path: kit reads the files itself, so this is one more read)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb", buffering=0) as source:
            while chunk := source.read(_READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise PackError(f"Cannot read {path} to hash it: {exc.strerror or exc}") from exc
    return FileDigest(name, size, digest.hexdigest())
