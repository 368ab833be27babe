"""What a ModelKit's layers hold, read from the registry as a stream: each file's path, size and sha256.

``verify --deep`` compares this with the files an attestation records. A layer is read once, chunk by chunk, never
written to disk and never held whole: its blob digest is checked against the manifest while it streams, a gzip layer
is decompressed as it streams, and a tar is walked header by header.

The tar reader is written here rather than taken from ``tarfile`` because ``tarfile`` reads an extended (PAX) header
or a GNU long name wholly into memory, whatever size its header claims, and these bytes come from a registry anyone
may push to. It reads what kit and Go's ``archive/tar`` write: USTAR headers (name with its prefix), PAX ``path`` and
``size`` records, GNU long names, base-256 sizes; regular files and folders. Anything else (a link, a device) is
reported: a ModelKit layer holds neither.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

BLOCK = 512
MAX_HEADER_RECORD_BYTES = 1024 * 1024  # one PAX header or GNU long name
MAX_ENTRIES = 1_000_000  # entries in one layer
FILEPATH_ANNOTATION = "org.cncf.model.filepath"  # a ModelPack raw layer's file
_OUT_CHUNK = 1024 * 1024
_ZERO_BLOCK = bytes(BLOCK)


class LayerError(ValueError):
    """A layer that cannot be read as what its media type says, or that holds more than it may."""


@dataclass(frozen=True)
class LayerFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class LayerContents:
    files: list[LayerFile]
    problem: str | None = None  # the blob is not the one its descriptor names (its files are still listed)


def layer_files(
    chunks: Iterable[bytes],
    media_type: str,
    digest: str,
    size: int,
    annotations: Mapping[str, str],
    budget: ByteBudget,
) -> LayerContents:
    """The files of one layer blob (``chunks`` as the registry sends them), and whether the blob is its descriptor's
    (digest, size). Raises LayerError when it is not readable as ``media_type`` or spends more than ``budget``;
    then too a blob that is not its descriptor's is what is reported."""
    blob = _CheckedBlob(chunks, digest, size)
    try:
        found = _files(blob, media_type, annotations, budget)
    except LayerError:
        # A blob read past the budget is not read further; any other is, to tell a wrong blob from a bad tar.
        mismatch = blob.mismatch() if budget.spent <= budget.limit else None
        if mismatch:
            raise LayerError(mismatch) from None
        raise
    return LayerContents(found, blob.mismatch())


def _files(blob: _CheckedBlob, media_type: str, annotations: Mapping[str, str], budget: ByteBudget) -> list[LayerFile]:
    if ".tar" in media_type:
        if media_type.endswith(("+gzip", ".gzip")):
            stream: Iterable[bytes] = _gunzip(blob)
        elif media_type.endswith(("+zstd", ".zstd")):
            raise LayerError(f"a zstd layer ({media_type}) cannot be read here")
        else:
            stream = blob
        return list(_walk_tar(_Reader(stream, budget.spend)))
    path = annotations.get(FILEPATH_ANNOTATION)
    if not path:
        raise LayerError(
            f"a layer of type {media_type} that is neither a tar nor names its file ({FILEPATH_ANNOTATION})"
        )
    digest_of, count = _Reader(blob, budget.spend).hash_rest()
    return [LayerFile(path, count, digest_of)]


class ByteBudget:
    """How many bytes of layer content (decompressed) a verification reads at most: what the attestation lists plus
    room for headers. A layer that holds more (an added file, a decompression bomb) stops there."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, count: int) -> None:
        self.spent += count
        if self.spent > self.limit:
            raise LayerError(f"the layers hold more than the {self.limit} bytes the attestation accounts for")


class _CheckedBlob:
    """The blob's chunks, hashed and counted as they pass; :meth:`drain` reads what is left and checks the digest."""

    def __init__(self, chunks: Iterable[bytes], digest: str, size: int) -> None:
        self._chunks = iter(chunks)
        self._digest = digest
        self._size = size
        self._hash = hashlib.sha256()
        self._count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._count += len(chunk)
            if self._count > self._size:
                raise LayerError(f"the blob {self._digest[:19]}… is larger than its descriptor's {self._size} bytes")
            self._hash.update(chunk)
            yield chunk

    def mismatch(self) -> str | None:
        """Why the blob is not its descriptor's, or None; what is left of it is read first."""
        try:
            for _chunk in self:
                pass
        except LayerError as exc:
            return str(exc)
        if self._count != self._size or "sha256:" + self._hash.hexdigest() != self._digest:
            return f"the blob the registry sent for {self._digest[:19]}… is not that blob"
        return None


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompressed chunks of a gzip stream (several members, as Go's reader takes them), never more than _OUT_CHUNK
    at a time."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if decompressor.eof:
                    data, decompressor = decompressor.unused_data + data, zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = decompressor.decompress(data, _OUT_CHUNK)
                data = decompressor.unconsumed_tail
                if out:
                    yield out
        if not decompressor.eof:
            raise LayerError("the gzip stream ends early")
    except zlib.error as exc:
        raise LayerError(f"the layer is not valid gzip ({exc})") from None


class _Reader:
    """Exact reads over a stream of chunks (an offset into the current chunk, so a small read copies little); every
    byte handed out is charged to the budget."""

    def __init__(self, chunks: Iterable[bytes], spend: Callable[[int], None]) -> None:
        self._chunks = iter(chunks)
        self._spend = spend
        self._buffer = b""
        self._offset = 0

    def _available(self) -> int:
        return len(self._buffer) - self._offset

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._buffer = self._buffer[self._offset :] + chunk
        self._offset = 0
        return True

    def read_exact(self, count: int) -> bytes | None:
        """``count`` bytes, or None at the very end of the stream; LayerError when it ends in between."""
        while self._available() < count:
            if not self._more():
                if not self._available():
                    return None
                raise LayerError("the tar ends in the middle of an entry")
        data = self._buffer[self._offset : self._offset + count]
        self._offset += count
        self._spend(count)
        return data

    def pieces(self, count: int) -> Iterator[memoryview]:
        """The next ``count`` bytes as they come, without holding them."""
        left = count
        while left:
            if not self._available() and not self._more():
                raise LayerError("the tar ends in the middle of a file")
            size = min(left, self._available())
            piece = memoryview(self._buffer)[self._offset : self._offset + size]
            self._offset += size
            self._spend(size)
            left -= size
            yield piece

    def hash_rest(self) -> tuple[str, int]:
        digest, count = hashlib.sha256(), 0
        while self._available() or self._more():
            size = self._available()
            digest.update(memoryview(self._buffer)[self._offset :])
            self._offset += size
            self._spend(size)
            count += size
        return digest.hexdigest(), count


def _walk_tar(reader: _Reader) -> Iterator[LayerFile]:
    pax: dict[str, str] = {}
    long_name: str | None = None
    for _entry in range(MAX_ENTRIES):
        header = reader.read_exact(BLOCK)
        if header is None:
            raise LayerError("the tar has no end marker")
        if header == _ZERO_BLOCK:
            return  # the end; what follows (a second zero block) is read by the blob check
        _check_checksum(header)
        kind = header[156:157]
        size = _number(header[124:136])
        if kind in (b"x", b"g", b"L"):
            if size > MAX_HEADER_RECORD_BYTES:
                raise LayerError(f"an extended tar header of {size} bytes (at most {MAX_HEADER_RECORD_BYTES} are read)")
            record = reader.read_exact(size) or b""
            _skip(reader, -size % BLOCK)
            if kind == b"x":
                pax = _pax_records(record)
            elif kind == b"L":
                long_name = record.rstrip(b"\x00").decode("utf-8", "replace")
            continue
        name = _name(header)
        if "path" in pax:
            name = pax["path"]
        elif long_name is not None:
            name = long_name
        if "size" in pax:
            size = _pax_size(pax["size"])
        pax, long_name = {}, None
        name = name.removeprefix("./").rstrip("/")
        if kind in (b"0", b"\x00", b"7"):
            digest = hashlib.sha256()
            for piece in reader.pieces(size):
                digest.update(piece)
            yield LayerFile(name, size, digest.hexdigest())
        elif kind == b"5":
            _skip(reader, size)
        else:
            raise LayerError(f"the tar entry {name!r} is not a regular file or folder (type {kind!r})")
        _skip(reader, -size % BLOCK)
    raise LayerError(f"the tar has more than {MAX_ENTRIES} entries")


def _skip(reader: _Reader, count: int) -> None:
    for _piece in reader.pieces(count):
        pass


def _check_checksum(header: bytes) -> None:
    try:
        stored = _number(header[148:156])
    except LayerError:
        stored = -1
    computed = sum(header[:148]) + 32 * 8 + sum(header[156:])
    if stored != computed:
        raise LayerError("a tar header with a wrong checksum (not a tar, or damaged)")


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 (first byte 0x80) for large values."""
    if field and field[0] & 0x80:
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        return value
    text = field.rstrip(b"\x00 ").lstrip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise LayerError(f"a tar header field that is not a number ({text[:12]!r})") from None


def _name(header: bytes) -> str:
    name = header[0:100].split(b"\x00", 1)[0]
    if header[257:262] == b"ustar":
        prefix = header[345:500].split(b"\x00", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "replace")


def _pax_records(data: bytes) -> dict[str, str]:
    """PAX records ``"<length> <key>=<value>\\n"``."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            raise LayerError("a malformed PAX header")
        try:
            length = int(data[position:space])
        except ValueError:
            raise LayerError("a malformed PAX header") from None
        record = data[space + 1 : position + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise LayerError("a malformed PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        position += length
    return records


def _pax_size(text: str) -> int:
    if not text.isdigit():
        raise LayerError(f"a PAX size that is not a number ({text[:20]!r})")
    return int(text)
