"""One tar per Kitfile entry, byte for byte as ``kit pack`` writes it (kit 1.7, ``pkg/lib/kitfile/layer.go``).

What kit does, and so what this module reproduces:

* It walks the WHOLE context folder from ``.`` in Go's ``filepath.Walk`` order (each folder's names
  sorted by their bytes, a folder before its contents, symlinks never followed) and keeps a path
  when it is the layer's path, inside it, or one of its parent folders: a single-file entry
  ``models/m.pkl`` gives the entries ``models`` and ``models/m.pkl``. Only regular files and folders
  go in. kit decides "inside" with ``filepath.Rel`` and a substring test for ``..``, so a path below
  the layer whose relative name contains ``..`` (``w..bin``) is left out; so is it here.
* A path is skipped when ``.kitignore`` (Docker-style patterns, plus ``Kitfile``, ``kitfile``,
  ``.kitfile`` and ``.kitignore`` themselves) matches it or a parent, or when it starts with the
  path of ANOTHER entry (a plain string prefix, as kit compares, unless that entry is the current
  one or one of its parents). A skipped folder is not descended into unless ``.kitignore`` has
  ``!`` exceptions.
* Headers come from Go's ``tar.FileInfoHeader`` then kit's sanitising: name = the relative path
  without a trailing slash, mode = permission bits plus setuid/setgid/sticky, uid 1000, gid 0, no
  user or group names, all times zero (written as 0). Go's writer picks USTAR when it can (names up
  to 100 bytes, or 255 split at a slash, ASCII only, files under 8 GiB), else PAX with ``path`` /
  ``size`` records. The archive ends with two zero blocks and no further padding.

The walk reads a :class:`~kitmlflow_tui.core.file_tree.FileTree`: a folder, or a run's listing. The tar's bytes
are then a pure function of the entries (:func:`tar_layout`): the headers and padding around each file and
where its bytes go, which is what lets the direct import write downloaded bytes at their final offsets.
The path rules (Go's cleaning, ``.kitignore``) are in :mod:`.kitignore`, the headers in :mod:`.tar_format`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from kitmlflow_tui.core.errors import InterruptedByUser, PackError
from kitmlflow_tui.core.file_tree import FileTree, TreeEntry
from kitmlflow_tui.core.packing.kitignore import (
    IgnoreRules,
    same_dir_tree,
)
from kitmlflow_tui.core.packing.tar_format import BLOCK, padding, tar_header

if TYPE_CHECKING:
    from kitmlflow_tui.core.packing.file_digests import FileDigest

CHUNK = 1 << 20


# -- the walk ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TarEntry:
    name: str  # relative, "/"-separated, no trailing slash
    is_dir: bool
    mode: int  # permission bits + setuid/setgid/sticky
    size: int


def walk_layer(tree: FileTree, layer_path: str, rules: IgnoreRules) -> list[TarEntry]:
    """The entries kit puts in the layer for ``layer_path`` (already cleaned), in kit's order."""
    if not tree.exists(layer_path):
        raise PackError(f"The Kitfile names {layer_path!r}, which does not exist in {tree.describe()}.")
    entries: list[TarEntry] = []
    _walk_dir(tree, "", layer_path, rules, entries)
    return entries


def _sorted_entries(tree: FileTree, relative_dir: str) -> list[TreeEntry]:
    try:
        found = tree.entries(relative_dir)
    except OSError as exc:
        where = f"{tree.describe()}/{relative_dir}" if relative_dir else tree.describe()
        raise PackError(f"Cannot list {where}: {exc.strerror or exc}") from exc
    return sorted(found, key=lambda entry: os.fsencode(entry.name))


def _walk_dir(tree: FileTree, relative_dir: str, layer_path: str, rules: IgnoreRules, out: list[TarEntry]) -> None:
    for entry in _sorted_entries(tree, relative_dir):
        relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
        is_dir = entry.kind == "dir"
        if not is_dir and entry.kind != "file":
            continue  # symlinks, sockets, devices: kit leaves them out
        if not same_dir_tree(layer_path, relative):
            continue
        if rules.ignored(relative, layer_path):
            if is_dir and rules.has_exclusions:
                _walk_dir(tree, relative, layer_path, rules, out)
            continue
        out.append(TarEntry(relative, is_dir, entry.mode, 0 if is_dir else entry.size))
        if is_dir:
            _walk_dir(tree, relative, layer_path, rules, out)


def files_left_out(tree: FileTree, included: set[str], rules: IgnoreRules) -> list[str]:
    """Files (and symlinks) of ``tree`` that no layer holds and ``.kitignore`` does not name.

    These are what kit drops silently: symlinks, files no Kitfile entry covers, and the victims of
    its prefix rule (``model.pkl.bak`` next to a ``model.pkl`` entry) or of ``..`` in a name.
    """
    left_out: list[str] = []
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        try:
            found = tree.entries(relative_dir)
        except OSError:
            continue
        for entry in found:
            relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            ignored = rules.kitignore_matches(relative)
            if entry.kind == "dir":
                if not ignored or rules.has_exclusions:
                    pending.append(relative)
            elif not ignored and relative not in included:
                left_out.append(relative)
    return sorted(left_out, key=os.fsencode)


# -- the layout of a layer -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileRegion:
    """Where the bytes of one file lie inside a layer tar."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class TarLayout:
    """A layer tar as a pure function of its entries: the bytes kit writes around the files (headers, padding,
    the two end blocks) and where each file's bytes go. ``segments`` is the tar in order."""

    size: int
    segments: tuple[bytes | FileRegion, ...]

    def literals(self) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of everything that is not file content."""
        offset = 0
        for segment in self.segments:
            if isinstance(segment, FileRegion):
                offset = segment.offset + segment.size
            else:
                yield offset, segment
                offset += len(segment)

    @functools.cached_property
    def files(self) -> tuple[FileRegion, ...]:
        """The file regions in order (computed once: a layer of 10,000 files is asked for one region per file)."""
        return tuple(s for s in self.segments if isinstance(s, FileRegion))


def tar_layout(entries: Sequence[TarEntry]) -> TarLayout:
    segments: list[bytes | FileRegion] = []
    pending = bytearray()  # literal bytes since the last file (padding, folders' headers, its header): one segment
    offset = 0
    for entry in entries:
        header = tar_header(entry.name, entry.mode, entry.size, entry.is_dir)
        pending += header
        offset += len(header)
        if entry.is_dir:
            continue
        segments.append(bytes(pending))
        pending = bytearray()
        segments.append(FileRegion(entry.name, offset, entry.size))  # even an empty file: it is checked
        offset += entry.size
        pending += padding(entry.size)
        offset += len(padding(entry.size))
    pending += b"\x00" * (2 * BLOCK)
    segments.append(bytes(pending))
    return TarLayout(offset + 2 * BLOCK, tuple(segments))


# -- writing a layer -----------------------------------------------------------------------------------
class LayerSink:
    """Receives the tar stream: hashes it (diffId), optionally gzips it, hashes and writes the blob.

    Writing happens on a helper thread fed through a small bounded queue, so hashing, reading and
    writing overlap (hashlib and file I/O release the GIL) while memory stays at a few chunks. The
    written range is handed to the kernel for writeback as it goes (``POSIX_FADV_DONTNEED``), so
    the final fsync has little left to do and the page cache is not flooded by a big layer.
    """

    _QUEUE_CHUNKS = 4
    _WRITEBACK_EVERY = 64 * CHUNK

    def __init__(self, handle: IO[bytes], compression: str) -> None:
        self.handle = handle
        self.blob_hash = hashlib.sha256()
        self.blob_size = 0
        self.tar_hash = self.blob_hash if compression == "none" else hashlib.sha256()
        self._compressor = None
        self._crc = 0
        self._tar_size = 0
        self._pending = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(self._QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="kitmlflow-layer-writer", daemon=True)
        self._writer.start()
        if compression != "none":
            level = 1 if compression == "gzip-fastest" else 6
            self._compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
            # Go's gzip header: no name, mtime 0, XFL 4 only for BestSpeed, OS 255 (unknown).
            self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + (b"\x04" if level == 1 else b"\x00") + b"\xff")

    def _write_loop(self) -> None:
        written = 0
        advised = 0
        fileno = self.handle.fileno()
        while True:
            try:
                data = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._abandoned.is_set():
                    return
                continue
            if data is None or self._abandoned.is_set():
                return
            if self._error is not None:
                continue  # drain so the producer never blocks
            try:
                self.handle.write(data)
                written += len(data)
                if written - advised >= self._WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fileno, advised, written - advised, os.POSIX_FADV_DONTNEED)
                    advised = written
            except BaseException as exc:  # handed to the producing thread
                self._error = exc

    def _put(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def write(self, data: bytes | memoryview) -> None:
        if self._compressor is None:
            self._emit(data)
            return
        self.tar_hash.update(data)
        self._crc = zlib.crc32(data, self._crc)
        self._tar_size += len(data)
        compressed = self._compressor.compress(data)
        if compressed:
            self._emit(compressed)

    def _emit(self, data: bytes | memoryview) -> None:
        self.blob_hash.update(data)
        self.blob_size += len(data)
        if len(data) >= CHUNK:
            self.flush()
            self._put(bytes(data))  # the caller reuses its buffer
        else:
            self._pending += data
            if len(self._pending) >= CHUNK:
                self.flush()

    def flush(self) -> None:
        if self._pending:
            self._put(bytes(self._pending))
            self._pending = bytearray()

    def close(self) -> None:
        """Write what is left and wait for the writer; raises what the writer hit."""
        if self._compressor is not None:
            self._emit(self._compressor.flush())
            self._emit(self._crc.to_bytes(4, "little") + (self._tar_size & 0xFFFFFFFF).to_bytes(4, "little"))
        self.flush()
        self._stop()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the writer without finishing the blob (the caller discards the file). The writer is told by an
        event it polls, not through the queue: a Ctrl-C that lands inside ``Queue.put`` can leave the queue's
        wake-up lost (seen: the writer asleep in ``get`` and this thread in ``join``, forever)."""
        self._error = self._error or InterruptedByUser("Packing stopped.")
        self._abandoned.set()
        self._writer.join(timeout=10)

    def _stop(self) -> None:
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()

    @property
    def digest(self) -> str:
        return "sha256:" + self.blob_hash.hexdigest()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.tar_hash.hexdigest()


def raw_layout(entry: TarEntry) -> TarLayout:
    """A layer that is one file's bytes and nothing else (a ModelPack ``.raw`` layer): no header, no padding."""
    return TarLayout(entry.size, (FileRegion(entry.name, 0, entry.size),))


def write_layer(
    layout: TarLayout,
    sink: LayerSink,
    folder: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    digest_files: bool = False,
) -> tuple[FileDigest, ...]:
    """Stream the layer ``layout`` describes (files of ``folder`` between its literal bytes) into ``sink``: memory
    stays at one buffer whatever the file sizes. With ``digest_files``, each file's sha256 is computed from the same
    stream (no second read)."""
    from kitmlflow_tui.core.packing.file_digests import RegionDigests

    digests = RegionDigests(layout.files) if digest_files else None
    position = 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal position
        sink.write(data)
        if digests is not None:
            digests.update(position, data)
        position += len(data)

    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        for segment in layout.segments:
            if cancel is not None and cancel.is_set():
                raise InterruptedByUser("Packing cancelled.")
            if isinstance(segment, FileRegion):
                _copy_file(folder / segment.name, segment.size, emit, view, on_bytes, cancel)
            else:
                emit(segment)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return digests.result() if digests is not None else ()


def _copy_file(
    source_path: Path,
    size: int,
    emit: Callable[[memoryview], None],
    view: memoryview,
    on_bytes: Callable[[int], None] | None,
    cancel: threading.Event | None,
) -> None:
    remaining = size
    try:
        source = open(source_path, "rb", buffering=0)  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise PackError(f"Cannot read {source_path}: {exc.strerror or exc}") from exc
    try:
        while remaining:
            if cancel is not None and cancel.is_set():
                raise InterruptedByUser("Packing cancelled.")
            count = _read_into(source, view[: min(len(view), remaining)], source_path)
            if not count:
                raise PackError(f"{source_path} shrank while it was being packed; pack again.")
            emit(view[:count])  # write errors are the storage's, reported as such by the caller
            remaining -= count
            if on_bytes is not None:
                on_bytes(count)
        if _read_into(source, view[:1], source_path):
            raise PackError(f"{source_path} grew while it was being packed; pack again.")
    finally:
        source.close()


def _read_into(source: IO[bytes], target: memoryview, source_path: Path) -> int:
    try:
        return source.readinto(target) or 0  # type: ignore[attr-defined]
    except OSError as exc:
        raise PackError(f"Cannot read {source_path}: {exc.strerror or exc}") from exc
