"""Step 4 of the data flow: transfer exactly the planned files, in parallel, verified and resumable.

Every file is written under ``<dest>/.kitmlflow-partial/<path>.part`` and moved to ``<dest>/<path>``
only once its size matches the listing, so ``<dest>`` never holds a truncated file under a real name.
A re-run skips complete files and continues a partial file from its size wherever the store's transport
reads ranges (``kitmlflow_tui.transports``: the proxy, local, S3, GCS, Azure, SFTP). A transfer that breaks
or stalls is retried from the offset it reached. Progress is reported per chunk, not per file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeGuard

from kitmlflow_tui.catalogue import ArtifactFile
from kitmlflow_tui.errors import DownloadError, InterruptedByUser, KitmlflowError, scrub_secrets
from kitmlflow_tui.selection import Plan, format_size
from kitmlflow_tui.transports import TransientTransferError, Transport, stall_seconds, transport_for

PARTIAL_DIR = ".kitmlflow-partial"
# Transient failures in a row, without a byte of progress between them, before a file fails. An attempt that
# moved bytes resets the count (a stall costs one stall limit, not an attempt); MAX_ATTEMPTS bounds a server
# that sends a few bytes and stalls, forever.
RETRIES = 3
MAX_ATTEMPTS = 50
DISK_MARGIN_BYTES = 16 * 1024 * 1024
_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class ProgressEvent:
    """What the download tells its observer. ``kind``:
    - ``plan``: before the first byte; ``size`` = bytes still to move, ``total`` = bytes of the plan,
      ``files`` = files still to move (the rest are already complete);
    - ``file_start`` / ``file_done`` / ``file_skipped``: one file (``size`` = its size);
    - ``bytes``: ``size`` more bytes of ``path`` arrived (negative when a restart discards some)."""

    kind: Literal["plan", "file_start", "bytes", "file_done", "file_skipped"]
    path: str = ""
    size: int = 0
    total: int = 0
    files: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class DownloadResult:
    dest: Path
    paths: tuple[str, ...]  # every planned file, now complete under dest
    downloaded_bytes: int  # moved over the network (or copied) by this call
    reused_bytes: int  # already there from an earlier call (complete files and resumed parts)
    total_bytes: int


def safe_destination(dest: Path, relative: str, *, fresh_folder: bool = False) -> Path:
    """``dest/relative``, refusing anything that would land outside ``dest``. ``fresh_folder``: ``dest`` is
    a folder this process has just made and filled itself, so it holds no symlink to resolve (resolving
    costs two path walks, 0.46 s per 10,000 files)."""
    pure = PurePosixPath(relative)
    if (
        not relative
        or pure.is_absolute()
        or "\\" in relative
        or "\x00" in relative
        or any(part in ("..", ".", "") for part in relative.split("/"))
        or relative.split("/")[0] == PARTIAL_DIR
    ):
        raise DownloadError(f"Refusing to write the artifact path {relative!r}: it would land outside {dest}.")
    target = dest.joinpath(*pure.parts)
    if fresh_folder:
        return target
    resolved_dest = dest.resolve()
    if not target.resolve().is_relative_to(resolved_dest):
        raise DownloadError(f"Refusing to write {relative!r}: it resolves outside {dest} (a symlink?).")
    return target


class _Observer:
    """Serialises callbacks from worker threads and keeps the byte count of the call."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.moved = 0

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "bytes":
                self.moved += event.size
            if self._callback is not None:
                self._callback(event)


def _check_not_longer(file: ArtifactFile, written: int) -> None:
    if file.size is not None and written > file.size:
        raise DownloadError(
            f"{file.path}: the store sent more than the {format_size(file.size)} it listed; refusing the file."
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


class Downloader:
    """Downloads a plan into ``dest``; ``repository_for(root_uri)`` gives MLflow's artifact repository."""

    def __init__(
        self,
        repository_for: Callable[[str], Any],
        *,
        jobs: int = 8,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        tracking_uri: str = "",
    ) -> None:
        self._repository_for = repository_for
        self._transports: dict[str, Transport] = {}
        self._transports_lock = threading.Lock()
        self.jobs = max(1, jobs)
        self.observer = _Observer(on_progress)
        self.cancel = cancel or threading.Event()
        self.tracking_uri = tracking_uri

    def _transport(self, root_uri: str, spool_dir: Path) -> Transport:
        with self._transports_lock:
            if root_uri not in self._transports:
                self._transports[root_uri] = transport_for(self._repository_for(root_uri), spool_dir=spool_dir)
            return self._transports[root_uri]

    def download(self, plan: Plan, dest: Path) -> DownloadResult:
        stall_seconds()  # a bad KITMLFLOW_STALL_SECONDS is bad input, before the first byte
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        partial_root = dest / PARTIAL_DIR
        targets = {f.path: safe_destination(dest, f.path) for f in plan.selected}
        _check_path_lengths(dest, plan.selected)

        todo: list[ArtifactFile] = []
        reused = 0
        complete: list[ArtifactFile] = []
        for file in plan.selected:
            target = targets[file.path]
            if file.size is not None and target.is_file() and target.stat().st_size == file.size:
                complete.append(file)
                reused += file.size
                continue
            todo.append(file)
        resumed = sum(_part_size(partial_root, f) for f in todo)
        still_to_move = sum(max((f.size or 0) - _part_size(partial_root, f), 0) for f in todo)
        _check_disk_space(dest, still_to_move)

        self.observer(ProgressEvent("plan", size=still_to_move, total=plan.selected_bytes, files=len(todo)))
        for file in complete:
            self.observer(ProgressEvent("file_skipped", file.path, file.size or 0))
        # Largest first: the long transfers start early and the small ones fill the gaps.
        todo.sort(key=lambda f: f.size or 0, reverse=True)
        try:
            self._run_workers(todo, targets, partial_root)
        finally:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()
        shutil.rmtree(partial_root, ignore_errors=True)
        return DownloadResult(
            dest=dest,
            paths=tuple(f.path for f in plan.selected),
            downloaded_bytes=self.observer.moved,
            reused_bytes=reused + resumed,
            total_bytes=plan.selected_bytes,
        )

    def _run_workers(self, todo: list[ArtifactFile], targets: dict[str, Path], partial_root: Path) -> None:
        work: queue.Queue[ArtifactFile] = queue.Queue()
        for file in todo:
            work.put(file)
        failures: list[BaseException] = []
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set() and not self.cancel.is_set():
                try:
                    file = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._download_one(file, targets[file.path], partial_root)
                except BaseException as exc:  # reported to the main thread, which raises it
                    if _is_local_disk_error(exc):  # creating a folder, moving a file into place
                        exc = _disk_error(file, partial_root.parent, exc)
                    failures.append(exc)
                    stop.set()

        # Daemon threads: Ctrl-C must not wait for a multi-gigabyte transfer to finish.
        threads = [
            threading.Thread(target=worker, name=f"kitmlflow-download-{i}", daemon=True)
            for i in range(min(self.jobs, len(todo)))
        ]
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
        if self.cancel.is_set() and all(isinstance(f, InterruptedByUser) for f in failures):
            # the transfers it stopped say only "cancelled"; the user wants to know what is kept
            raise InterruptedByUser("Download cancelled; completed files are kept for the next run.")
        if failures:
            interrupted = [f for f in failures if isinstance(f, InterruptedByUser)]
            raise (interrupted or failures)[0]

    def _download_one(self, file: ArtifactFile, target: Path, partial_root: Path) -> None:
        part = safe_destination(partial_root, file.path + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        self.observer(ProgressEvent("file_start", file.path, file.size or 0))
        transport = self._transport(file.root_uri, partial_root)
        failures_in_a_row = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            offset = self._resume_offset(file, part, transport)
            try:
                self._transfer_from(transport, file, part, offset)
                break
            except KitmlflowError:
                raise
            except Exception as caught:
                exc = caught
            if _is_local_disk_error(exc):
                raise _disk_error(file, partial_root.parent, exc) from exc
            progressed = (part.stat().st_size if part.exists() else 0) > offset
            failures_in_a_row = 0 if progressed else failures_in_a_row + 1
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
        size = part.stat().st_size
        if file.size is not None and size != file.size:
            part.unlink(missing_ok=True)
            self.observer(ProgressEvent("bytes", file.path, -size))
            raise DownloadError(
                f"{file.path}: received {size:,} bytes but the store listed {file.size:,}; the file was discarded.",
                hint="The artifact may have changed or the server cut the transfer; run the command again.",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        self.observer(ProgressEvent("file_done", file.path, size))

    def _resume_offset(self, file: ArtifactFile, part: Path, transport: Transport) -> int:
        """Where the next attempt starts: the part's size, or 0 (the part emptied) where ranges cost the whole file."""
        offset = part.stat().st_size if part.exists() else 0
        if offset and not transport.supports_ranges:
            self.observer(ProgressEvent("bytes", file.path, -offset))
            part.unlink()
            return 0
        return offset

    def _transfer_from(self, transport: Transport, file: ArtifactFile, part: Path, offset: int) -> None:
        """Write the file's bytes from ``offset`` on into ``part`` at that offset (a failure leaves in the part
        every byte that arrived before it, for the next attempt)."""
        if file.size is not None and offset == file.size and offset:
            return  # a part complete before: nothing left to ask for
        written = offset
        chunks = transport.stream(file, offset, None, cancel=self.cancel)
        with open(part, "r+b" if offset else "wb") as out, contextlib.closing(chunks):
            out.seek(offset)
            for chunk in chunks:
                if self.cancel.is_set():
                    raise InterruptedByUser("Download cancelled.")
                _check_not_longer(file, written + len(chunk))
                out.write(chunk)
                written += len(chunk)
                self.observer(ProgressEvent("bytes", file.path, len(chunk)))

    def _failure(self, file: ArtifactFile, attempts: int, exc: BaseException) -> KitmlflowError:
        from kitmlflow_tui.catalogue import translate_error

        if not isinstance(exc, TransientTransferError):
            mapped = translate_error(exc, f"the artifact {file.path}", self.tracking_uri)
            if mapped.exit_code in (3, 4):
                return mapped
        return DownloadError(
            f"Downloading {file.path} failed after {attempts} attempt(s): {_describe(exc)}",
            hint="Run the same command again: complete files are kept and partial ones resume.",
        )


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


def _part_size(partial_root: Path, file: ArtifactFile) -> int:
    try:
        return (partial_root / (file.path + ".part")).stat().st_size
    except (OSError, ValueError):
        return 0


PATH_MAX_BYTES = 4096


def _check_path_lengths(dest: Path, files: tuple[ArtifactFile, ...]) -> None:
    """Before the first byte: a path the OS would refuse under ``dest`` (the plan leaves out only what no
    folder could hold) fails here with the folder to change, not mid-download."""
    prefix = len(os.fsencode(dest.resolve())) + len(f"/{PARTIAL_DIR}/") + len(".part")
    for file in files:
        size = prefix + len(file.path.encode("utf-8", "surrogatepass"))
        if size >= PATH_MAX_BYTES:
            raise DownloadError(
                f"{file.path[:80]}…: its path under {dest} would be {size:,} bytes, over the {PATH_MAX_BYTES:,} a "
                "path may have.",
                hint="Download into a folder with a shorter path (--dest, or KITMLFLOW_CACHE_DIR for imports), "
                "or leave the file out (--exclude).",
            )


def _check_disk_space(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    if needed + DISK_MARGIN_BYTES > free:
        raise DownloadError(
            f"Not enough disk space in {dest}: the download needs {format_size(needed)} and "
            f"{format_size(free)} is free.",
            hint="Free some space, pick another folder (--dest, or KITMLFLOW_CACHE_DIR for imports), "
            "or select fewer files (--exclude, --max-file-size).",
        )


def _join_briefly(threads: list[threading.Thread], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
