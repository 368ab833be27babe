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
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import stat
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kitmlflow_tui.errors import InterruptedByUser, PackError

BLOCK = 512
CHUNK = 1 << 20
_USTAR_MAX_SIZE = 8**11  # the 12-byte octal size field
DEFAULT_IGNORES = ("Kitfile", "kitfile", ".kitfile", ".kitignore")


# -- Go path helpers -------------------------------------------------------------------------------
def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for ``/``-separated paths (``posixpath.normpath`` keeps ``//``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def clean_entry_path(path: str) -> str:
    # kit's cleanPath: filepath.Clean(strings.TrimSpace(path))
    return go_clean(path.strip())


def go_rel(base: str, target: str) -> str:
    """Go's ``filepath.Rel`` for two clean relative paths."""
    if base == target:
        return "."
    base_parts = [] if base == "." else base.split("/")
    target_parts = [] if target == "." else target.split("/")
    common = 0
    while common < min(len(base_parts), len(target_parts)) and base_parts[common] == target_parts[common]:
        common += 1
    parts = [".."] * (len(base_parts) - common) + target_parts[common:]
    return "/".join(parts) or "."


def same_dir_tree(layer_path: str, file_path: str) -> bool:
    # kit's sameDirTree: both relative paths contain ".." (as a substring, not a path element).
    return not (".." in go_rel(layer_path, file_path) and ".." in go_rel(file_path, layer_path))


# -- .kitignore (moby/patternmatcher v0.6 semantics, as kit uses them) ------------------------------
class _Pattern:
    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.dirs = cleaned.split("/")
        self.kind, self.regexp = _compile(cleaned)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.fullmatch(path) is not None


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    regex = "^"
    kind = "exact"
    position = 0
    index = 0
    length = len(pattern)
    while position < length:
        char = pattern[position]
        position += 1
        if char == "*":
            if position < length and pattern[position] == "*":
                position += 1
                if position < length and pattern[position] == "/":
                    position += 1
                if position >= length:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex += ".*"
                        kind = "regexp"
                else:
                    regex += "(.*/)?"
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                regex += "[^/]*"
                kind = "regexp"
        elif char == "?":
            regex += "[^/]"
            kind = "regexp"
        elif char in ".+()|{}$":
            regex += "\\" + char
        elif char == "\\":
            if position < length:
                regex += "\\" + pattern[position]
                position += 1
                kind = "regexp"
            else:
                regex += "\\"
        elif char in "[]":
            regex += char
            kind = "regexp"
        else:
            regex += char
        index += 1
    if kind != "regexp":
        return kind, None
    try:
        return kind, re.compile(regex)
    except re.error as exc:
        raise PackError(f"Invalid .kitignore pattern {pattern!r}: {exc}") from exc


class IgnoreRules:
    """kit's ignore decision: ``.kitignore`` patterns, then the paths of the other Kitfile entries."""

    def __init__(self, patterns: Sequence[str], layer_paths: Sequence[str]) -> None:
        self.patterns: list[_Pattern] = []
        self.has_exclusions = False
        for raw in [*patterns, *DEFAULT_IGNORES]:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise PackError('Invalid .kitignore pattern "!".')
                text = text[1:]
                self.has_exclusions = True
            self.patterns.append(_Pattern(text, exclusion))
        self.layer_paths = [clean_entry_path(path) for path in layer_paths]

    @classmethod
    def for_folder(cls, folder: Path, layer_paths: Sequence[str]) -> IgnoreRules:
        return cls(read_kitignore(folder / ".kitignore"), layer_paths)

    def kitignore_matches(self, path: str) -> bool:
        # patternmatcher.MatchesOrParentMatches
        matched = False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parent != ".":
                for depth in range(1, len(parent_dirs) + 1):
                    if pattern.match("/".join(parent_dirs[:depth])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def ignored(self, path: str, layer_path: str) -> bool:
        path = clean_entry_path(path)
        layer_path = clean_entry_path(layer_path)
        if self.kitignore_matches(path):
            return True
        for other in self.layer_paths:
            if layer_path.startswith(other):
                continue  # the current entry itself, or one that contains it
            if path.startswith(other):
                return True
        return False


def read_kitignore(path: Path) -> list[str]:
    """moby's ``ignorefile.ReadAll``: comments, blank lines, ``!``, cleaning, leading ``/`` dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PackError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    patterns: list[str] = []
    for line in raw.decode("utf-8", errors="surrogateescape").split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


# -- the walk ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TarEntry:
    name: str  # relative, "/"-separated, no trailing slash
    source: Path
    is_dir: bool
    mode: int  # permission bits + setuid/setgid/sticky
    size: int


def walk_layer(folder: Path, layer_path: str, rules: IgnoreRules) -> list[TarEntry]:
    """The entries kit puts in the layer for ``layer_path`` (already cleaned), in kit's order."""
    if not (folder / layer_path).exists():
        raise PackError(f"The Kitfile names {layer_path!r}, which does not exist in {folder}.")
    entries: list[TarEntry] = []
    _walk_dir(folder, "", layer_path, rules, entries)
    return entries


def _walk_dir(folder: Path, relative_dir: str, layer_path: str, rules: IgnoreRules, out: list[TarEntry]) -> None:
    directory = folder / relative_dir if relative_dir else folder
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise PackError(f"Cannot list {directory}: {exc.strerror or exc}") from exc
    names.sort(key=os.fsencode)
    for name in names:
        relative = f"{relative_dir}/{name}" if relative_dir else name
        source = directory / name
        try:
            info = os.lstat(source)
        except OSError as exc:
            raise PackError(f"Cannot read {source}: {exc.strerror or exc}") from exc
        is_dir = stat.S_ISDIR(info.st_mode)
        if not is_dir and not stat.S_ISREG(info.st_mode):
            continue  # symlinks, sockets, devices: kit leaves them out
        if not same_dir_tree(layer_path, relative):
            continue
        if rules.ignored(relative, layer_path):
            if is_dir and rules.has_exclusions:
                _walk_dir(folder, relative, layer_path, rules, out)
            continue
        mode = stat.S_IMODE(info.st_mode)
        out.append(TarEntry(relative, source, is_dir, mode, 0 if is_dir else info.st_size))
        if is_dir:
            _walk_dir(folder, relative, layer_path, rules, out)


def files_left_out(folder: Path, included: set[str], rules: IgnoreRules) -> list[str]:
    """Files (and symlinks) under ``folder`` that no layer holds and ``.kitignore`` does not name.

    These are what kit drops silently: symlinks, files no Kitfile entry covers, and the victims of
    its prefix rule (``model.pkl.bak`` next to a ``model.pkl`` entry) or of ``..`` in a name.
    """
    left_out: list[str] = []
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        directory = folder / relative_dir if relative_dir else folder
        try:
            names = sorted(os.listdir(directory), key=os.fsencode)
        except OSError:
            continue
        for name in names:
            relative = f"{relative_dir}/{name}" if relative_dir else name
            try:
                info = os.lstat(directory / name)
            except OSError:
                continue
            ignored = rules.kitignore_matches(relative)
            if stat.S_ISDIR(info.st_mode):
                if not ignored or rules.has_exclusions:
                    pending.append(relative)
            elif not ignored and relative not in included:
                left_out.append(relative)
    return sorted(left_out, key=os.fsencode)


# -- Go's tar header encoding --------------------------------------------------------------------------
def _put_string(block: bytearray, offset: int, width: int, value: bytes) -> None:
    chunk = value[:width]
    block[offset : offset + len(chunk)] = chunk
    if len(value) < width:
        block[offset + len(value)] = 0
    elif len(value) > width and chunk.endswith(b"/"):
        # Go never leaves a truncated name ending in "/" (a reader could take it for a folder).
        keep = len(value[: width - 1].rstrip(b"/"))
        block[offset + keep] = 0


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    if value < 0 or value >= 8 ** (width - 1):
        value = 0  # Go writes 0 when the number does not fit (a PAX record carries it)
    _put_string(block, offset, width, format(value, "o").rjust(width - 1, "0").encode())


def _finish(block: bytearray) -> bytes:
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b"        "
    checksum = sum(block)
    _put_octal(block, 148, 7, checksum)
    block[155] = 0x20
    return bytes(block)


def _main_header(name: bytes, mode: int, size: int, typeflag: bytes, prefix: bytes = b"") -> bytes:
    block = bytearray(BLOCK)
    block[156:157] = typeflag
    _put_string(block, 0, 100, name)
    _put_octal(block, 100, 8, mode)
    _put_octal(block, 108, 8, 1000)
    _put_octal(block, 116, 8, 0)
    _put_octal(block, 124, 12, size)
    _put_octal(block, 136, 12, 0)
    _put_octal(block, 329, 8, 0)
    _put_octal(block, 337, 8, 0)
    if prefix:
        _put_string(block, 345, 155, prefix)
    return _finish(block)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    length = len(name)
    if length <= 100 or not name.isascii():
        return None
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    cut = name.rfind(b"/", 0, length)
    suffix_length = len(name) - cut - 1
    if cut <= 0 or suffix_length > 100 or suffix_length == 0 or cut > 155:
        return None
    return name[:cut], name[cut + 1 :]


def _pax_record(key: str, value: bytes) -> bytes:
    body = f" {key}=".encode() + value + b"\n"
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def tar_header(name: str, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) Go's ``tar.Writer.WriteHeader`` writes for kit's sanitised header."""
    raw_name = os.fsencode(name)
    typeflag = b"5" if is_dir else b"0"
    records: dict[str, bytes] = {}
    ustar_ok = True
    if not raw_name.isascii() or len(raw_name) > 100:
        records["path"] = raw_name
        if _split_ustar(raw_name) is None:
            ustar_ok = False
    if size >= _USTAR_MAX_SIZE:
        records["size"] = str(size).encode()
        ustar_ok = False
    if ustar_ok:
        split = _split_ustar(raw_name)
        if split is not None:
            return _main_header(split[1], mode, size, typeflag, prefix=split[0])
        return _main_header(raw_name, mode, size, typeflag)
    data = b"".join(_pax_record(key, records[key]) for key in sorted(records))
    directory, _, base = raw_name.rpartition(b"/")
    pax_name = (directory + b"/PaxHeaders.0/" + base) if directory else b"PaxHeaders.0/" + base
    pax_name = bytes(byte for byte in pax_name if 0 < byte < 0x80)[:100].rstrip(b"/")
    block = bytearray(BLOCK)
    block[156:157] = b"x"
    _put_string(block, 0, 100, pax_name)
    for offset, width in ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12)):
        _put_octal(block, offset, width, len(data) if offset == 124 else 0)
    ascii_name = bytes(byte for byte in raw_name if 0 < byte < 0x80)
    return _finish(block) + data + _padding(len(data)) + _main_header(ascii_name, mode, size, typeflag)


def _padding(size: int) -> bytes:
    return b"\x00" * (-size % BLOCK)


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


def write_layer(
    entries: Sequence[TarEntry],
    sink: LayerSink,
    *,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Stream ``entries`` as one tar into ``sink``: memory stays at one buffer whatever the file sizes."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        for entry in entries:
            if cancel is not None and cancel.is_set():
                raise InterruptedByUser("Packing cancelled.")
            sink.write(tar_header(entry.name, entry.mode, entry.size, entry.is_dir))
            if entry.is_dir:
                continue
            _copy_file(entry, sink, view, on_bytes, cancel)
            sink.write(_padding(entry.size))
        sink.write(b"\x00" * (2 * BLOCK))
    except BaseException:
        sink.abort()
        raise
    sink.close()


def _copy_file(
    entry: TarEntry,
    sink: LayerSink,
    view: memoryview,
    on_bytes: Callable[[int], None] | None,
    cancel: threading.Event | None,
) -> None:
    remaining = entry.size
    try:
        source = open(entry.source, "rb", buffering=0)  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise PackError(f"Cannot read {entry.source}: {exc.strerror or exc}") from exc
    try:
        while remaining:
            if cancel is not None and cancel.is_set():
                raise InterruptedByUser("Packing cancelled.")
            count = _read_into(source, view[: min(len(view), remaining)], entry)
            if not count:
                raise PackError(f"{entry.source} shrank while it was being packed; pack again.")
            sink.write(view[:count])  # write errors are the storage's, reported as such by the caller
            remaining -= count
            if on_bytes is not None:
                on_bytes(count)
        if _read_into(source, view[:1], entry):
            raise PackError(f"{entry.source} grew while it was being packed; pack again.")
    finally:
        source.close()


def _read_into(source: IO[bytes], target: memoryview, entry: TarEntry) -> int:
    try:
        return source.readinto(target) or 0  # type: ignore[attr-defined]
    except OSError as exc:
        raise PackError(f"Cannot read {entry.source}: {exc.strerror or exc}") from exc
