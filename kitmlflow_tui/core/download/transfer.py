"""Artifact bytes from their stores to their offsets: parallel, ranged, retried from the byte reached.

The engine behind every byte kitmlflow moves (``download.Downloader`` into ``.part`` files, the direct import
into layer blobs, the preview's few small files into memory). The caller describes each file as a
:class:`FileJob`: the artifact, the byte ranges still missing, and a :class:`Target` that puts bytes at an
offset of the file (``os.pwrite`` into a part file or a layer blob). The engine:

- runs ``jobs`` workers over the files, largest first;
- splits a large file into ranges fetched in parallel when its store reads ranges cheaply
  (``Transport.splittable``): a worker that finds nothing to start takes the second half of the largest range
  still in flight (at least ``2 × MIN_SPLIT_BYTES`` left), so a lone 50 GB file is read by every worker
  while a run of many files is read file by file;
- checks every size against the listing: the last range of a file reads to the end of the object (more bytes
  than listed is refused, fewer is an error naming the file), a file whose tail was already there is checked
  with a read at its listed end;
- retries a broken or stalled range from the byte it reached (``RETRIES`` failures in a row without progress,
  ``MAX_ATTEMPTS`` in all), and sorts failures into the error family: credentials refused (3), missing (4),
  our disk full or unwritable, or the store's failure (7);
- joins only bytes of one version of the object: every answer names its version (``transports.versions``)
  before its first byte; the first one of a file is recorded (``Target.versioned``, into the journal a re-run
  resumes from), and an answer of another version, or of none where bytes are already there, drops what the
  file holds (``Target.reset``) and starts it over (``MAX_RESTARTS`` times at most);
- checks a finished file against the store's checksum of that version, where the store gives one (a mismatch
  starts the file over too, through another way to the store when the transport has one).

Progress is reported per chunk (``ProgressEvent``); a target hears of every written range (``Target.written``,
for journals and hashing) and of its file's end (``Target.finished``, after the size and checksum checks).

The module is longer than most: the pieces, their splitting, the versions and the restarts all move under one
discipline of locks (the transfer's lock over the pieces, each job's condition over its writes and restarts),
which splitting the module would spread over several.
"""

from __future__ import annotations

import collections
import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.transports import TransientTransferError, Transport, transport_for
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.errors import (
    AuthError,
    DownloadError,
    InterruptedByUser,
    KitmlflowError,
    NotFoundError,
    scrub_secrets,
)
from kitmlflow_tui.core.events import ProgressCallback, ProgressEvent
from kitmlflow_tui.core.selection.plan import format_size

# Transient failures in a row, without a byte of progress between them, before a file fails. An attempt that
# moved bytes resets the count (a stall costs one stall limit, not an attempt); MAX_ATTEMPTS bounds a server
# that sends a few bytes and stalls, forever.
RETRIES = 3
MAX_ATTEMPTS = 50
MIN_SPLIT_BYTES = 16 * 1024 * 1024  # no range is split into pieces smaller than this
SPLIT_ALIGN_BYTES = 1024 * 1024
# How often one file may start over within one run: its object changed, failed its checksum, or names no version
# by which a broken transfer could resume (MLflow's proxy of a remote store). An object rewritten while it is
# read, over and over, is not worth reading; a transfer that breaks every time fails as a broken transfer does.
MAX_RESTARTS = 3
_VERIFY_CHUNK = 4 * 1024 * 1024
_IDLE_POLL_SECONDS = 0.2


class Target(Protocol):
    """Where the bytes of one file go. Called from worker threads; each offset is written once per attempt."""

    def versioned(self, version: ObjectVersion) -> None:
        """The bytes about to be written come from this version of the object (recorded before the first)."""

    def write(self, offset: int, data: bytes) -> None:
        """Put ``data`` at ``offset`` of the file (``OSError`` on a local disk failure)."""

    def written(self, start: int, end: int) -> None:
        """``[start, end)`` of the file has been written (for journals and hashing)."""

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` of what was written (to check the store's checksum)."""

    def reset(self) -> None:
        """Forget every byte written so far, this run's and an earlier run's: the file starts over."""

    def finished(self) -> None:
        """Every byte of the file arrived and its size (and checksum, if the store gave one) matched."""


@dataclass(eq=False)
class FileJob:
    """One file to fetch: ``missing`` are the byte ranges still needed (``[(0, size)]`` for a new file;
    ``[(0, 0)]`` for an empty one, which is still checked); ``version``: the version of the object the bytes
    already there came from (None when there are none, or nothing says which)."""

    file: ArtifactFile
    target: Target
    missing: Sequence[tuple[int, int]]
    version: ObjectVersion | None = None

    def missing_bytes(self) -> int:
        return sum(end - start for start, end in self.missing)

    def held_bytes(self) -> int:
        """Bytes already in the target when the job starts."""
        if self.file.size is None:
            return self.missing[0][0] if self.missing else 0
        return self.file.size - self.missing_bytes()


def pwrite_all(fd: int, offset: int, data: bytes | memoryview) -> None:
    """All of ``data`` at ``offset`` of ``fd`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        count = os.pwrite(fd, view, offset)
        view, offset = view[count:], offset + count


class MemoryTarget:
    """A small file's bytes kept in memory (the few contents a Kitfile reads), at most ``limit`` of them (a file
    the store listed without a size may be anything)."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        self.path = path
        self.data = bytearray(size)
        self.limit = limit
        self._lock = threading.Lock()

    def versioned(self, version: ObjectVersion) -> None:
        pass

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            end = offset + len(data)
            if end > self.limit:
                raise DownloadError(f"{self.path}: more than the {format_size(self.limit)} read into memory.")
            if end > len(self.data):
                self.data.extend(b"\x00" * (end - len(self.data)))
            self.data[offset:end] = data

    def written(self, start: int, end: int) -> None:
        pass

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            return bytes(self.data[offset : offset + size])

    def reset(self) -> None:
        with self._lock:
            self.data[:] = b"\x00" * len(self.data)

    def finished(self) -> None:
        pass


class _Stopped(BaseException):
    """A worker stops its range because another one failed (not itself a failure to report)."""


class _Superseded(BaseException):
    """A worker stops its range because its file started over (a restart is not a failure)."""


@dataclass(eq=False)
class _Piece:
    job: _Job
    start: int
    end: int | None  # None: to the end of an object of unknown size
    to_eof: bool  # the file's last range: read to the end of the object, and check its size
    generation: int = 0  # the job's generation this piece belongs to (a restart makes a new one)
    pos: int = 0
    claimed: int = 0  # the end of the chunk being written: a split never starts before it
    attempt_started: bool = False

    def remaining(self) -> int:
        return (self.end - self.claimed) if self.end is not None else 0


@dataclass(eq=False)
class _Job:
    """A file in flight. ``version``: the version its bytes come from (None until the first answer of a fresh
    file names it); ``generation`` grows at every restart, and a piece of an older one writes nothing more."""

    spec: FileJob
    transport: Transport
    open_pieces: int = 0
    started: bool = False
    pieces: list[_Piece] = field(default_factory=list)
    version: ObjectVersion | None = None
    held: int = 0  # bytes of an earlier run in the target when the job started (until a restart drops them)
    holds_bytes: bool = False  # bytes of an earlier run, or of this one, are in the target
    answered: bool = False  # an answer of this generation named the version: its ranges may be split
    generation: int = 0
    restarts: int = 0
    writers: int = 0  # pieces between their generation check and the end of their write
    cond: threading.Condition = field(default_factory=threading.Condition)


def _pieces_of(job: _Job) -> list[_Piece]:
    """A job's missing ranges as pieces (set on the job too); the last reads to the end of the object."""
    spec = job.spec
    job.holds_bytes = job.held > 0
    size = spec.file.size
    ranges = sorted(spec.missing)
    if size is not None and (not ranges or ranges[-1][1] < size):
        ranges.append((size, size))  # the tail is there: check the object ends where it was listed
    for index, (start, end) in enumerate(ranges):
        last = index == len(ranges) - 1
        job.pieces.append(_Piece(job, start, None if size is None else end, to_eof=last, pos=start, claimed=start))
    job.open_pieces = len(job.pieces)
    return job.pieces


class Transfer:
    """Fetches :class:`FileJob`s with ``jobs`` workers. ``repository_for(root_uri)`` gives MLflow's artifact
    repository of a store root; ``destination`` names where the bytes go in messages (disk full, ...);
    ``split``: whether large files may be read as parallel ranges."""

    def __init__(
        self,
        repository_for: Callable[[str], Any],
        *,
        destination: Path,
        jobs: int = 8,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        tracking_uri: str = "",
        split: bool = True,
        spool_dir: Path | None = None,
    ) -> None:
        self._repository_for = repository_for
        self._transports: dict[str, Transport] = {}
        self.destination = destination
        self.jobs = max(1, jobs)
        self.cancel = cancel or threading.Event()
        self.tracking_uri = tracking_uri
        self.split = split
        self.spool_dir = spool_dir or destination
        self._callback = on_progress
        self._report_lock = threading.Lock()
        self._transports_lock = threading.Lock()
        self._lock = threading.Condition()  # the pieces: queued, in flight, their positions
        self._queue: collections.deque[_Piece] = collections.deque()
        self._active: list[_Piece] = []
        self._failures: list[BaseException] = []
        self._stop = threading.Event()
        self.moved = 0  # bytes that arrived (a restart does not take back what crossed the network)
        self.dropped = 0  # bytes held from an earlier run that a restart threw away

    # -- progress ----------------------------------------------------------------------------------
    def report(self, event: ProgressEvent) -> None:
        """Tell the observer (serialised: workers call it too) and keep the count of bytes moved."""
        with self._report_lock:
            if event.kind == "bytes" and event.size > 0:
                self.moved += event.size
            if self._callback is not None:
                self._callback(event)

    # -- transports --------------------------------------------------------------------------------
    def transport(self, root_uri: str) -> Transport:
        with self._transports_lock:
            if root_uri not in self._transports:
                repository = self._repository_for(root_uri)
                self._transports[root_uri] = transport_for(repository, spool_dir=self.spool_dir)
            return self._transports[root_uri]

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    # -- running -----------------------------------------------------------------------------------
    def run(self, jobs: Sequence[FileJob]) -> None:
        """Fetch every job's missing ranges; returns when all are complete, else raises the first failure
        (``InterruptedByUser`` when cancelled or on Ctrl-C). Transports stay open for another ``run``."""
        pieces: list[_Piece] = []
        for spec in sorted(jobs, key=lambda j: j.missing_bytes(), reverse=True):  # long transfers start early
            job = _Job(spec, self.transport(spec.file.root_uri), version=spec.version, held=spec.held_bytes())
            pieces.extend(_pieces_of(job))
        self._queue = collections.deque(pieces)
        self._active = []
        self._failures = []
        self._stop.clear()
        # A lone large file is one piece: the workers beyond the pieces wait to take a half of it (``_split_one``)
        # as soon as its store is known to read ranges cheaply.
        splittable = self.split and any(p.end is not None and p.end - p.start >= 2 * MIN_SPLIT_BYTES for p in pieces)
        self._run_workers(self.jobs if splittable else min(self.jobs, max(len(pieces), 1)))
        self._raise_failure()

    def _run_workers(self, count: int) -> None:
        """Run ``count`` workers until the queue is done or they stop; Ctrl-C cancels them."""
        threads = [
            threading.Thread(target=self._worker, name=f"kitmlflow-transfer-{i}", daemon=True) for i in range(count)
        ]
        # Daemon threads: Ctrl-C must not wait for a multi-gigabyte transfer to finish.
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.cancel.set()
            _join_briefly(threads)
            raise InterruptedByUser("Download interrupted; completed files are kept for the next run.") from None

    def _raise_failure(self) -> None:
        """The failure the workers met, if any: a cancellation first."""
        if self.cancel.is_set() and all(isinstance(f, InterruptedByUser) for f in self._failures):
            # the transfers it stopped say only "cancelled"; the user wants to know what is kept
            raise InterruptedByUser("Download cancelled; completed files are kept for the next run.")
        if self._failures:
            interrupted = [f for f in self._failures if isinstance(f, InterruptedByUser)]
            raise (interrupted or self._failures)[0]

    def _worker(self) -> None:
        while True:
            with self._lock:
                piece = None
                while piece is None:
                    if self._stop.is_set() or self.cancel.is_set():
                        return
                    piece = self._queue.popleft() if self._queue else self._split_one()
                    if piece is None:
                        if not self._active:
                            return
                        self._lock.wait(_IDLE_POLL_SECONDS)  # a range may become splittable, or finish
                self._active.append(piece)
            try:
                self._fetch(piece)
            except (_Stopped, _Superseded):
                pass
            except BaseException as exc:  # reported to the main thread, which raises it
                if _is_local_disk_error(exc):
                    exc = _disk_error(piece.job.spec.file, self.destination, exc)
                with self._lock:
                    self._failures.append(exc)
                    self._stop.set()
            finally:
                with self._lock:
                    self._active.remove(piece)
                    self._lock.notify_all()

    def _split_one(self) -> _Piece | None:
        """The second half of the largest range in flight, taken off its end (called with the lock held)."""
        if not self.split:
            return None
        best = None
        for piece in self._active:
            if piece.end is None or not piece.attempt_started or piece.remaining() < 2 * MIN_SPLIT_BYTES:
                continue
            version = piece.job.version
            if piece.generation != piece.job.generation or not piece.job.answered or version is None or not version.tag:
                continue  # a stale range, or a file without a known version (another range could not be joined)
            if piece.job.restarts:
                continue  # its version changed under a split: one stream reads it (a version that changes at
                # every request, as a server's temporary copy would have, never matches a second range)
            if not piece.job.transport.splittable(piece.job.spec.file):
                continue
            if best is None or piece.remaining() > best.remaining():
                best = piece
        if best is None or best.end is None:
            return None
        middle = best.claimed + best.remaining() // 2
        middle -= (middle - best.start) % SPLIT_ALIGN_BYTES
        second = _Piece(
            best.job, middle, best.end, to_eof=best.to_eof, generation=best.generation, pos=middle, claimed=middle
        )
        best.end, best.to_eof = middle, False
        best.job.pieces.append(second)
        best.job.open_pieces += 1
        return second

    # -- one range -----------------------------------------------------------------------------------
    def _fetch(self, piece: _Piece) -> None:
        job = piece.job
        file = job.spec.file
        with self._lock:
            first = not job.started
            job.started = True
        if first:
            self.report(ProgressEvent("file_start", file.path, file.size or 0))
        failures_in_a_row = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            offset = piece.pos
            try:
                self._stream(piece)
                break
            except KitmlflowError:
                raise
            except Exception as caught:
                exc = caught
            if _is_local_disk_error(exc):
                raise _disk_error(file, self.destination, exc) from exc
            failures_in_a_row = 0 if piece.pos > offset else failures_in_a_row + 1
            if (
                _is_transient(exc)
                and failures_in_a_row < RETRIES
                and attempt < MAX_ATTEMPTS
                and not self.cancel.is_set()
            ):
                if failures_in_a_row:
                    time.sleep(min(2 ** (failures_in_a_row - 1), 8))
                continue
            raise self._failure(file, attempt, exc) from exc
        with self._lock:
            if piece.generation != job.generation:
                return  # the file started over while this range ended: the new pieces finish it
            job.open_pieces -= 1
            done = job.open_pieces == 0
        if done and self._checked(job):
            job.spec.target.finished()
            self.report(ProgressEvent("file_done", file.path, file.size or piece.pos))

    def _stream(self, piece: _Piece) -> None:
        """``[pos, end)`` of the piece into its target; a failure leaves ``pos`` at the first byte not written."""
        job = piece.job
        file = job.spec.file
        with self._lock:
            if piece.generation != job.generation:
                raise _Superseded
            if not piece.to_eof and piece.end is not None and piece.pos >= piece.end:
                return  # split away while it waited for its retry
            request_end = None if piece.to_eof else piece.end
            piece.attempt_started = True
        chunks = job.transport.stream(
            file,
            piece.pos,
            request_end,
            cancel=self.cancel,
            expect=job.version,
            on_version=lambda version: self._answered(piece, version),
        )
        try:
            for chunk in chunks:
                if self.cancel.is_set():
                    raise InterruptedByUser("Download cancelled.")
                if self._stop.is_set():
                    raise _Stopped  # another file failed: the whole transfer fails with it
                with self._lock:
                    offset, end = piece.pos, piece.end
                    if end is not None and offset + len(chunk) > end:
                        if piece.to_eof:
                            raise DownloadError(
                                f"{file.path}: the store sent more than the {format_size(end)} it listed; "
                                "refusing the file."
                            )
                        chunk = chunk[: end - offset]
                    piece.claimed = offset + len(chunk)
                self._write(piece, offset, chunk)
                with self._lock:
                    piece.pos = offset + len(chunk)
                self.report(ProgressEvent("bytes", file.path, len(chunk)))
                with self._lock:
                    if not piece.to_eof and piece.end is not None and piece.pos >= piece.end:
                        return  # its end was taken by another worker, or reached
        finally:
            chunks.close()
        if piece.to_eof and piece.end is not None and piece.pos < piece.end:
            raise DownloadError(
                f"{file.path}: received {piece.pos:,} bytes but the store listed {piece.end:,}.",
                hint="The artifact may have changed or the server cut the transfer; run the command again.",
            )

    def _write(self, piece: _Piece, offset: int, chunk: bytes) -> None:
        """The chunk into the target, unless the file started over since the piece began (a restart waits for
        writes in progress, so no byte of an older generation lands after it)."""
        job = piece.job
        with job.cond:
            if piece.generation != job.generation:
                raise _Superseded
            job.writers += 1
            job.holds_bytes = True
        try:
            job.spec.target.write(offset, chunk)
            job.spec.target.written(offset, offset + len(chunk))
        finally:
            with job.cond:
                job.writers -= 1
                job.cond.notify_all()

    # -- versions --------------------------------------------------------------------------------------
    def _answered(self, piece: _Piece, version: ObjectVersion) -> None:
        """An answer for ``piece`` came from ``version``: recorded when it is the file's first, accepted when it
        is the version of the bytes there, else the file starts over (and this answer is not used)."""
        job = piece.job
        with job.cond:
            if piece.generation != job.generation:
                raise _Superseded
            recorded = job.version
            if recorded is None and not job.holds_bytes:
                job.version = version
                job.spec.target.versioned(version)
            elif recorded is None or not version.same_as(recorded):
                changed = recorded is not None and recorded.tag is not None
                self._restart(
                    job,
                    "the store's object changed while it was read"
                    if changed
                    else "the store names no version of it, so a broken transfer cannot resume",
                )
                raise _Superseded
            elif recorded.checksum is None and version.checksum is not None:
                job.version = version
        with self._lock:
            job.answered = True
            self._lock.notify_all()  # idle workers may take a half of it now

    def _restart(self, job: _Job, why: str) -> None:
        """Drop what the file holds and queue it again from its first byte (called with ``job.cond`` held)."""
        file = job.spec.file
        job.restarts += 1
        if job.restarts > MAX_RESTARTS:
            raise DownloadError(
                f"{file.path} was started over {MAX_RESTARTS} times ({why}); its bytes were dropped.",
                hint="Run the same command again (once the artifact has stopped changing, if it is being rewritten).",
            )
        with self._lock:
            job.generation += 1
            job.answered = False
            held = sum(p.pos - p.start for p in job.pieces)
            self._queue = collections.deque(p for p in self._queue if p.job is not job)
        while job.writers:
            job.cond.wait()
        self.dropped += job.held
        job.held = 0
        job.spec.target.reset()
        job.version = None
        job.holds_bytes = False
        size = file.size
        fresh = _Piece(job, 0, size, to_eof=True, generation=job.generation, pos=0, claimed=0)
        with self._lock:
            job.pieces = [fresh]
            job.open_pieces = 1
            self._queue.appendleft(fresh)
            self._lock.notify_all()
        if held:
            self.report(ProgressEvent("bytes", file.path, -held))

    def _checked(self, job: _Job) -> bool:
        """Whether the complete file matches the store's checksum (True when the store gave none). A mismatch
        starts the file over, through another way to the store where the transport has one."""
        version = job.version
        checksum = version.checksum if version is not None else None
        hasher = checksum.hasher() if checksum is not None else None
        if checksum is None or hasher is None:
            return True
        size = job.spec.file.size or 0
        for offset in range(0, size, _VERIFY_CHUNK):
            hasher.update(job.spec.target.read(offset, min(_VERIFY_CHUNK, size - offset)))
        if hasher.digest() == checksum.digest:
            return True
        job.transport.distrust(job.spec.file)
        with job.cond:
            self._restart(job, f"its bytes did not match the store's checksum, {checksum.describe()}")
        return False

    def _failure(self, file: ArtifactFile, attempts: int, exc: BaseException) -> KitmlflowError:
        from kitmlflow_tui.core.catalogue import translate_error

        if not isinstance(exc, TransientTransferError):
            mapped = translate_error(exc, f"the artifact {file.path}", self.tracking_uri)
            if isinstance(mapped, AuthError | NotFoundError):  # final: retrying cannot change the answer
                return mapped
        return DownloadError(
            f"Downloading {file.path} failed after {attempts} attempt(s): {_describe(exc)}",
            hint="Run the same command again: complete files are kept and partial ones resume.",
        )


def _is_transient(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, TransientTransferError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | ConnectionError | TimeoutError):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status in (429, 500, 502, 503, 504)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub_secrets(text)[:300]


def _is_local_disk_error(exc: BaseException) -> TypeGuard[OSError]:
    """An OSError of our own disk (requests' errors are OSErrors too, but carry no errno)."""
    import requests

    return isinstance(exc, OSError) and not isinstance(exc, requests.RequestException) and exc.errno is not None


def _disk_error(file: ArtifactFile, dest: Path, exc: OSError) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            f"The disk filled up while downloading {file.path} into {dest}: {exc.strerror}.",
            hint="Free some space or pick another folder (--dest, or KITMLFLOW_CACHE_DIR for imports), then "
            "run again: the partial file resumes.",
        )
    return DownloadError(f"Cannot write {file.path} into {dest}: {exc.strerror or exc}.")


def _join_briefly(threads: list[threading.Thread], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
