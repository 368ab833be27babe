"""SFTP (``sftp://``): a seek and pipelined reads over pysftp/paramiko, the library MLflow's SFTP store uses.

Connections are opened with the settings MLflow derived for that URI (``SFTPArtifactRepository.config``: host,
port, user and password from the URI, completed from ``~/.ssh/config``; keys and ``~/.ssh/known_hosts`` as
pysftp finds them). They are this transport's own, one per concurrent stream, so a stalled or cancelled one can
be closed (which wakes the blocked read) without touching the connections MLflow lists with. A file's version is its
size and modification time (SFTP gives whole seconds).
"""

from __future__ import annotations

import contextlib
import posixpath
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.stores import credentials_error
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    TransientTransferError,
    Transport,
    VersionCallback,
    check_range,
    reraise,
    stall_seconds,
)
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.download.transports.watchdog import Watch
from kitmlflow_tui.core.errors import DownloadError, KitmlflowError

PREFETCH_REQUESTS = 64  # reads in flight per stream (paramiko's are 32 KiB each)
SEGMENT_BYTES = 8 * 1024 * 1024  # prefetched at once: the most a stream buffers
READ_BYTES = 32 * 1024  # paramiko's SFTP request size


class SftpTransport(Transport):
    kind = "sftp"

    def __init__(self, repository: Any) -> None:
        self._uri = repository.artifact_uri
        self._config = dict(repository.config)
        self._root = repository.path
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _connection(self) -> Any:
        import pysftp

        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return pysftp.Connection(**self._config)
        except Exception as exc:
            reraise(exc, classify(exc, self._uri))

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
        check_range(start, end)
        if end == start:
            return
        connection = self._connection()
        reusable = False
        limit = stall_seconds()
        try:
            with Watch(connection.close, stall_seconds=limit, cancel=cancel, first_byte_seconds=limit) as watch:
                try:
                    with connection.open(posixpath.join(self._root, file.remote_path), "rb") as handle:
                        stat = handle.stat()
                        if on_version is not None:
                            on_version(ObjectVersion(f"sftp {stat.st_size} {stat.st_mtime}"))
                        stop = end if end is not None else stat.st_size
                        yield from _pipelined(handle, start, stop, watch)
                    reusable = True
                except Exception as exc:
                    watch.check(file.path)
                    reraise(exc, classify(exc, self._uri, file))
                watch.check(file.path)
        finally:
            if reusable:
                self._idle.put(connection)
            else:
                _close_quietly(connection)

    def close(self) -> None:
        while True:
            try:
                _close_quietly(self._idle.get_nowait())
            except queue.Empty:
                return


def _pipelined(handle: Any, start: int, stop: int, watch: Watch) -> Iterator[bytes]:
    """``[start, stop)`` of an open SFTP file in chunks of ``CHUNK_BYTES``, one prefetched segment at a time.

    paramiko's prefetch keeps every answer it has not handed over yet, so one prefetch of a whole 50 GB file
    can fill memory when the disk is slower than the link; a segment bounds that. Reads take paramiko's own
    request size: larger ones are assembled from its buffers at a quadratic cost."""
    position = start
    while position < stop:
        segment_end = min(stop, position + SEGMENT_BYTES)
        handle.seek(position)
        handle.prefetch(segment_end, max_concurrent_requests=PREFETCH_REQUESTS)
        pieces: list[bytes] = []
        gathered = 0
        while position < segment_end:
            piece = handle.read(min(READ_BYTES, segment_end - position))
            if not piece:
                raise TransientTransferError(f"the file ended at byte {position:,}, before {stop:,}")
            watch.fed()
            position += len(piece)
            pieces.append(piece)
            gathered += len(piece)
            if gathered >= CHUNK_BYTES:
                yield b"".join(pieces)
                pieces, gathered = [], 0
        if pieces:
            yield b"".join(pieces)


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection may fail to close; it is dropped either way
        connection.close()


def classify(exc: BaseException, uri: str, file: ArtifactFile | None = None) -> BaseException:
    """paramiko/pysftp's failures as the transport family (see ``transports.base``); others unchanged."""
    import paramiko
    import pysftp

    if isinstance(exc, KitmlflowError):
        return exc
    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return credentials_error(uri, type(exc).__name__)
    if isinstance(exc, paramiko.SSHException) and ("hostkey" in str(exc).lower() or "host key" in str(exc).lower()):
        return credentials_error(uri, str(exc).strip()[:200])  # pysftp: "No hostkey for host ... found."
    if isinstance(exc, PermissionError):
        return credentials_error(uri, "permission denied")
    if isinstance(exc, FileNotFoundError) and file is not None:
        return DownloadError(f"The artifact {file.path} is listed but missing from the store.")
    transient = (pysftp.ConnectionException, paramiko.SSHException, EOFError, ConnectionError, TimeoutError, OSError)
    if isinstance(exc, transient):
        return TransientTransferError(f"{type(exc).__name__}: {exc}")
    return exc
