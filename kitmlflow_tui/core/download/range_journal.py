"""Which byte ranges of a partly written file are on disk: an append-only journal next to it.

A file written at offsets by several workers at once (a layer blob of the direct import, a part file whose
large download was split into parallel ranges) has holes until it is complete, so its size no longer says how
much of it is there. Its journal does: one line per range written (``R <region> <start> <end>``; a layer blob
holds one region per file), ``D <region>`` once a region is complete and checked, ``S`` once a part file has
been written out of order, ``V <region> <version>`` naming the version of the object a region's bytes come
from (written before them; a resume continues only that version), ``X <region>`` when a region starts over
(what the lines before it say of that region no longer holds). Lines are appended after an ``fdatasync`` of the
data they describe (every ``EVERY_BYTES`` or ``EVERY_SECONDS``, before an ``S``, and on close), so a journal
never claims a byte that is not on disk, whatever kills the process; a line a kill cut short has no newline and
is ignored.

The first line names what the file is (``identity``: a layout's hash, a file's source and size): a journal
of anything else, too long, or unreadable is no journal, and the caller starts the file again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kitmlflow_tui.core.download.transports.versions import ObjectVersion

EVERY_BYTES = 256 * 1024 * 1024  # the journal catches up at least this often, or every
EVERY_SECONDS = 2.0  # ... this many seconds
MAX_BYTES = 64 * 1024 * 1024  # a longer journal is not ours
_HEADER = "kitmlflow-range-journal 1"


@dataclass
class JournalState:
    """What a journal says: the ranges written per region, the regions complete, the version each region's
    bytes come from, whether writes went out of order (a part file whose size is then no measure of what it
    holds)."""

    done: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    complete: set[int] = field(default_factory=set)
    versions: dict[int, ObjectVersion] = field(default_factory=dict)
    split: bool = False

    def forget(self, region: int) -> None:
        self.done.pop(region, None)
        self.complete.discard(region)
        self.versions.pop(region, None)

    def missing(self, region: int, size: int) -> list[tuple[int, int]]:
        """The ranges of ``[0, size)`` of ``region`` the journal does not list."""
        return missing_ranges(self.done.get(region, []), size)


def read_journal(path: Path, identity: str, region_sizes: Sequence[int]) -> JournalState | None:
    """The journal at ``path`` if it is the journal of ``identity``; ranges outside their region are dropped."""
    lines = _lines_after_header(path, identity)
    if lines is None:
        return None
    state = JournalState()
    for line in lines:
        _apply_line(state, line.split(), region_sizes)
    return state


def _lines_after_header(path: Path, identity: str) -> list[bytes] | None:
    """The journal's complete lines after its header; None when it is not the journal of ``identity``."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        lines = path.read_bytes().split(b"\n")[:-1]  # a line cut by a kill has no newline: dropped
    except OSError:
        return None
    if not lines or lines[0].decode("utf-8", "replace") != f"{_HEADER} {identity}":
        return None
    return lines[1:]


def _apply_line(state: JournalState, fields: list[bytes], region_sizes: Sequence[int]) -> None:
    """What one line says, added to ``state``; a line that is not one of the forms says nothing."""
    kind = fields[0] if fields else b""
    if kind == b"V":
        _apply_version(state, fields[1:], len(region_sizes))
        return
    try:
        numbers = [int(value) for value in fields[1:]]
    except ValueError:
        return
    if kind == b"S" and not numbers:
        state.split = True
    elif numbers and 0 <= numbers[0] < len(region_sizes):
        _apply_region_line(state, kind, numbers, region_sizes[numbers[0]])


def _apply_version(state: JournalState, fields: list[bytes], region_count: int) -> None:
    """``V <region> <version>``."""
    if len(fields) == 2 and _region(fields[0], region_count) is not None:
        version = ObjectVersion.from_token(fields[1].decode("ascii", "replace"))
        if version is not None:
            state.versions[int(fields[0])] = version


def _apply_region_line(state: JournalState, kind: bytes, numbers: list[int], region_size: int) -> None:
    """``X <region>``, ``D <region>`` or ``R <region> <start> <end>`` of a region that exists."""
    region = numbers[0]
    if kind == b"X" and len(numbers) == 1:
        state.forget(region)
    elif kind == b"D" and len(numbers) == 1:
        state.complete.add(region)
    elif kind == b"R" and len(numbers) == 3 and 0 <= numbers[1] < numbers[2] <= region_size:
        state.done.setdefault(region, []).append((numbers[1], numbers[2]))


class JournalWriter:
    """Appends to the journal of a file whose data is written through ``data_fd``. Thread-safe."""

    def __init__(self, path: Path, identity: str, data_fd: int, *, fresh: bool) -> None:
        self.path = path
        self._data_fd = data_fd
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._pending_bytes = 0
        if fresh:
            path.unlink(missing_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if fresh:
            os.write(self._fd, f"{_HEADER} {identity}\n".encode())
        self._flushed_at = time.monotonic()

    def written(self, region: int, start: int, end: int) -> None:
        with self._lock:
            self._pending.append(f"R {region} {start} {end}\n")
            self._pending_bytes += end - start
            if self._pending_bytes >= EVERY_BYTES or time.monotonic() - self._flushed_at >= EVERY_SECONDS:
                self._flush()

    def complete(self, region: int) -> None:
        """Not flushed at once: a layer of 10,000 small files would cost 10,000 fdatasyncs (a lost line only
        costs that file's bytes again)."""
        with self._lock:
            self._pending.append(f"D {region}\n")
            if time.monotonic() - self._flushed_at >= EVERY_SECONDS:
                self._flush()

    def version(self, region: int, version: ObjectVersion) -> None:
        """Say which version of the object the region's bytes come from (before any of them is claimed)."""
        with self._lock:
            self._pending.append(f"V {region} {version.token()}\n")

    def forget(self, region: int) -> None:
        """The region starts over: nothing said of it before this line holds."""
        with self._lock:
            self._pending.append(f"X {region}\n")

    def out_of_order(self) -> None:
        """Say, before the write that makes it so, that the file's size no longer measures what it holds."""
        with self._lock:
            self._pending.append("S\n")
            self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        """The data first, then the lines that say it is there (called with the lock held)."""
        if not self._pending or self._fd is None:
            return
        os.fdatasync(self._data_fd)
        os.write(self._fd, _coalesced(self._pending).encode())
        self._pending.clear()
        self._pending_bytes = 0
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                self._flush()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _region(text: bytes, count: int) -> int | None:
    try:
        region = int(text)
    except ValueError:
        return None
    return region if 0 <= region < count else None


def missing_ranges(done: Sequence[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, size)`` that ``done`` does not cover."""
    missing = []
    position = 0
    for start, end in sorted(done):
        if start > position:
            missing.append((position, start))
        position = max(position, end)
    if position < size:
        missing.append((position, size))
    return missing


def _coalesced(lines: Sequence[str]) -> str:
    """Journal lines with adjacent ranges of one region merged (a stream reports one range per chunk)."""
    out: list[str] = []
    last: list[int] | None = None

    def close_range() -> None:
        if last is not None:
            out.append(f"R {last[0]} {last[1]} {last[2]}\n")

    for line in lines:
        fields = line.split()
        if fields[0] == "R":
            region, start, end = (int(value) for value in fields[1:])
            if last is not None and last[0] == region and last[2] == start:
                last[2] = end
                continue
            close_range()
            last = [region, start, end]
            continue
        close_range()
        last = None
        out.append(line)
    close_range()
    return "".join(out)
