"""What every transport offers: a byte range of one artifact as a stream of chunks, cancellable, stall-guarded.

A transport reads one store (the MLflow artifact proxy, a local folder, S3, GCS, Azure Blob, SFTP, or any other
store through MLflow's own client). It knows nothing of destinations: the caller decides where each chunk goes
(a ``.part`` file today, an offset inside a layer blob tomorrow) and what to verify.

Every answer names the version of the object it came from (``versions.ObjectVersion``, through ``on_version``,
before its first byte), so that the caller never joins bytes of two versions; an answer whose bytes are not the
range asked for (``Content-Range``) is a failed attempt, never data (:func:`check_partial`, :func:`check_whole`).

Failures come out in three shapes, so callers need no knowledge of any SDK:
- a :class:`~kitmlflow_tui.core.errors.KitmlflowError` (credentials refused: exit 3; the listed file is missing; ...)
  is final;
- a :class:`TransientTransferError` (a stall, a reset connection, a 5xx) is worth another attempt from the
  offset reached so far;
- anything else is unexpected and final.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from typing import ClassVar, NoReturn

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.errors import InterruptedByUser

CHUNK_BYTES = 1024 * 1024  # the largest chunk a stream yields
WINDOW_BYTES = 8 * 1024 * 1024  # one ranged read of an SDK that reads into memory (``windowed``)
CONNECT_SECONDS = 30.0  # connecting to a store, for the SDKs that take the limit apart from the read's
DEFAULT_STALL_SECONDS = 30.0


class TransientTransferError(Exception):
    """A transfer broke in a way another attempt may fix; the caller resumes from the bytes it has."""


class TransferStalled(TransientTransferError):
    """No byte arrived for the stall limit (after the first byte); the stream was aborted."""


class ShortRange(TransientTransferError):
    """The store ended a bounded range before its end."""


class RangeMismatch(TransientTransferError):
    """An answer whose bytes are not the range asked for (its ``Content-Range``, or a whole object of another
    size): a failed attempt, never data."""


VersionCallback = Callable[[ObjectVersion], None]


def stall_seconds() -> float:
    """``KITMLFLOW_STALL_SECONDS`` (default 30): how long a started transfer may go without a byte."""
    return settings.STALL_SECONDS.seconds(DEFAULT_STALL_SECONDS)


class Transport(ABC):
    """Reads artifacts of one store root (one ``ArtifactFile.root_uri``). Safe to use from several threads."""

    kind: ClassVar[str]  # "http", "local", "s3", "gcs", "azure", "sftp", "generic"
    # Whether ``stream(file, start > 0)`` costs only the bytes asked for. False: every stream reads the object
    # from its first byte (the generic fallback, or an HTTP server seen ignoring Range), so a resume gains nothing.
    supports_ranges: bool = True

    @abstractmethod
    def stream(
        self,
        file: ArtifactFile,
        start: int = 0,
        end: int | None = None,
        *,
        cancel: threading.Event | None = None,
        expect: ObjectVersion | None = None,
        on_version: VersionCallback | None = None,
    ) -> Generator[bytes, None, None]:
        """The bytes ``[start, end)`` of ``file`` in chunks of at most ``CHUNK_BYTES``, in order, as a generator:
        ``close()`` on it (or leaving it unfinished) ends the transfer and frees its connection.

        ``end=None`` reads to the end of the object as the store has it (which may differ from the listing:
        the caller checks sizes). With an ``end``, exactly ``end - start`` bytes come out, or ``ShortRange``.
        A ``start`` at the object's end yields nothing. A set ``cancel`` ends the stream at once, even inside a
        blocking read, with ``InterruptedByUser``. Memory is bounded by a few chunks whatever the size.

        ``on_version`` hears the version each answer names before any of its bytes come out (an exception it
        raises ends the stream); ``expect``: the version the caller's bytes so far came from, for a store that
        can refuse a range of any other (HTTP's ``If-Range``)."""

    def distrust(self, file: ArtifactFile) -> None:  # noqa: B027 - only a transport with two sources cares
        """The bytes this transport gave for ``file`` failed the store's checksum: read it another way if there is
        one (a presigned URL's file goes back through the proxy)."""

    def splittable(self, file: ArtifactFile) -> bool:
        """Whether parallel ranged streams of ``file`` each cost only their own bytes, so that splitting a large
        file into ranges read at once is faster than one stream (see ``kitmlflow_tui.core.download.transfer``)."""
        return self.supports_ranges

    def close(self) -> None:  # noqa: B027 - most transports hold nothing to release
        """Release connections; the transport is not used afterwards."""


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


def encode_path(path: str) -> str:
    """Every segment percent-encoded (``/`` stays the separator): ``a b/q?.txt`` → ``a%20b/q%3F.txt``."""
    return "/".join(urllib.parse.quote(segment, safe="") for segment in path.split("/"))


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def check_partial(content_range: str | None, start: int, end: int | None, size: int | None) -> None:
    """A partial answer (206) must carry the range asked for: ``Content-Range: bytes start-last/total`` with
    ``last`` = ``end - 1`` (the object's last byte when ``end`` is None) and ``total`` the listed ``size``."""
    match = _CONTENT_RANGE.match((content_range or "").strip())
    if match is None:
        raise RangeMismatch(f"a partial answer without a usable Content-Range ({(content_range or '')[:80]!r})")
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if size is not None and total != size:
        raise RangeMismatch(f"the store's object has {match.group(3)} bytes where {size:,} were listed")
    wanted_last = end - 1 if end is not None else (total - 1 if total is not None else last)
    if first != start or last != wanted_last:
        raise RangeMismatch(f"asked for bytes {start}-{wanted_last}, the answer holds {first}-{last}")


def check_whole(content_length: str | None, size: int | None) -> None:
    """A whole object (200) sent for a ranged request must be the listed size: only then do its bytes from the
    range's start on belong at that offset."""
    if size is not None and content_length is not None and content_length.strip() != str(size):
        raise RangeMismatch(f"asked for a range, the store sent a whole object of {content_length.strip()} bytes")


def range_header(start: int, end: int | None) -> str | None:
    """The HTTP ``Range`` value for ``[start, end)`` (``end`` None: to the end), or None for the whole object."""
    if not start and end is None:
        return None
    return f"bytes={start}-{'' if end is None else end - 1}"


def bounded(chunks: Iterator[bytes], start: int, end: int | None) -> Iterator[bytes]:
    """``chunks`` (the object from ``start`` on) cut at ``end``; ``ShortRange`` if they stop before it."""
    if end is None:
        yield from chunks
        return
    remaining = end - start
    for chunk in chunks:
        if not remaining:
            return
        if len(chunk) > remaining:
            chunk = chunk[:remaining]
        remaining -= len(chunk)
        yield chunk
        if not remaining:
            return
    if remaining:
        raise ShortRange(f"the store ended the range [{start}, {end}) {remaining:,} bytes early")


def windowed(
    read: Callable[[int, int], bytes],
    start: int,
    end: int | None,
    cancel: threading.Event | None,
    window: int = WINDOW_BYTES,
) -> Iterator[bytes]:
    """``[start, end)`` read one window at a time by ``read(position, length)``, which returns up to ``length``
    bytes (fewer only where the object ends, ``b""`` past its end). For SDKs that read ranges into memory."""
    position = start
    while end is None or position < end:
        if cancel is not None and cancel.is_set():
            raise InterruptedByUser("Download cancelled.")
        wanted = window if end is None else min(window, end - position)
        data = read(position, wanted)
        yield from slices(data)
        position += len(data)
        if len(data) < wanted:
            break
    if end is not None and position < end:
        raise ShortRange(f"the store ended the range [{start}, {end}) at byte {position:,}")


def slices(data: bytes) -> Iterator[bytes]:
    """A buffer in chunks of at most ``CHUNK_BYTES``."""
    view = memoryview(data)
    for offset in range(0, len(view), CHUNK_BYTES):
        yield bytes(view[offset : offset + CHUNK_BYTES])


def reraise(exc: BaseException, mapped: BaseException) -> NoReturn:
    """Raise ``mapped`` (a translation of ``exc``), or ``exc`` itself when there was nothing to translate."""
    if mapped is exc:
        raise exc
    raise mapped from exc
