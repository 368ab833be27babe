"""Step 4 of the data flow: transfer exactly the planned files, in parallel, verified and resumable.

Every file is written under ``<dest>/.kitmlflow-partial/<path>.part`` and moved to ``<dest>/<path>``
only once its size (and the store's checksum, where it gives one) matches, so ``<dest>`` never holds a truncated
file under a real name. A re-run skips complete files and continues a partial file wherever the store's transport
reads ranges (``kitmlflow_tui.core.download.transports``: the proxy, local, S3, GCS, Azure, SFTP) and the part's
range journal names the version of the object its bytes came from: from its size, or, for a large file the
transfer split into parallel ranges, from the ranges the journal lists (``_PartFile``); the engine then joins
only bytes of that version. A part without a journal (a small one, or one a killed run left before its first
MiB) starts over. A transfer that breaks or stalls is retried from the offset it reached. Progress is reported
per chunk, not per file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.range_journal import JournalState, JournalWriter, read_journal
from kitmlflow_tui.core.download.transfer import RETRIES, FileJob, ProgressCallback, ProgressEvent, Transfer, pwrite_all
from kitmlflow_tui.core.download.transports import Transport, stall_seconds
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.errors import DownloadError
from kitmlflow_tui.core.selection.plan import Plan, format_size

PARTIAL_DIR = ".kitmlflow-partial"
JOURNALS_DIR = ".journals"  # inside PARTIAL_DIR: the range journals of parts
# A part gets its journal once it holds this much (or is split): a smaller one a killed run leaves starts over,
# which costs less than a journal file for every small file of a run.
JOURNAL_MIN_BYTES = 1024 * 1024
DISK_MARGIN_BYTES = 16 * 1024 * 1024
__all__ = [
    "RETRIES",
    "Destinations",
    "DownloadResult",
    "Downloader",
    "ProgressCallback",
    "ProgressEvent",
]


@dataclass(frozen=True)
class DownloadResult:
    dest: Path
    paths: tuple[str, ...]  # every planned file, now complete under dest
    downloaded_bytes: int  # moved over the network (or copied) by this call
    reused_bytes: int  # already there from an earlier call (complete files and resumed parts)
    total_bytes: int


class Destinations:
    """Where the files of one download go under ``dest``, each refused if it would land outside it.

    ``fresh_folder``: ``dest`` is a folder this process has just made and filled itself, so it holds no symlink to
    resolve. Otherwise ``dest`` is resolved once and each parent folder once (resolving every file's path cost two
    path walks a file, 0.46 s per 10,000 files); a file whose own name is a symlink is resolved whole."""

    def __init__(self, dest: Path, *, fresh_folder: bool = False) -> None:
        self.dest = dest
        self._trusted = fresh_folder
        self._root: Path | None = None
        self._folders: dict[str, bool] = {}  # a parent folder, relative → whether it resolves inside dest

    def path(self, relative: str) -> Path:
        pure = PurePosixPath(relative)
        if (
            not relative
            or pure.is_absolute()
            or "\\" in relative
            or "\x00" in relative
            or any(part in ("..", ".", "") for part in relative.split("/"))
            or relative.split("/")[0] == PARTIAL_DIR
        ):
            raise DownloadError(f"Refusing to write the artifact path {relative!r}: it would land outside {self.dest}.")
        target = self.dest.joinpath(*pure.parts)
        if not self._trusted and not self._lands_inside(relative, target):
            raise DownloadError(f"Refusing to write {relative!r}: it resolves outside {self.dest} (a symlink?).")
        return target

    def _lands_inside(self, relative: str, target: Path) -> bool:
        if self._root is None:
            self._root = self.dest.resolve()
        folder = relative.rpartition("/")[0]
        inside = self._folders.get(folder)
        if inside is None:
            inside = self._folders[folder] = target.parent.resolve().is_relative_to(self._root)
        if inside and os.path.islink(target):  # the file's own name is a link: where it points decides
            inside = target.resolve().is_relative_to(self._root)
        return inside


class _Folders:
    """The folders made so far by one download (a ``mkdir`` for every file of a folder of 1,000 costs 1,000 system
    calls). Called from the transfer's workers."""

    def __init__(self) -> None:
        self._made: set[Path] = set()
        self._lock = threading.Lock()

    def make(self, folder: Path) -> None:
        with self._lock:
            if folder in self._made:
                return
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._made.add(folder)


class _PartFile:
    """The transfer's target for one file: its ``.part`` file, written at offsets, renamed into place once the
    transfer has checked it.

    Its journal (``range_journal``) names the version of the object the part's bytes come from, from the moment
    the part holds ``JOURNAL_MIN_BYTES`` (or is split), and is written before those bytes count: while one
    stream writes the part from its start, the part's size is what a re-run resumes from; once the transfer
    splits the file into parallel ranges (a write past the end of what is written), the part has holes and the
    journal lists the ranges written too (the prefix so far, then every range), said before the first
    out-of-order byte lands, so that no re-run ever reads a hole as data."""

    def __init__(
        self,
        part: Path,
        target: Path,
        journal: Path,
        identity: str,
        resumed: JournalState | None,
        version: ObjectVersion | None,
        folders: _Folders,
    ) -> None:
        self.part = part
        self._folders = folders
        self.target = target
        self.journal_path = journal
        self.identity = identity
        self._resumed = resumed  # the journal of a part this call continues
        self._version = version  # of the bytes in the part (from the journal), or of the bytes about to come
        self._fd: int | None = None
        self._journal: JournalWriter | None = None
        self._high_water = 0  # every byte below it is written, while the file is not split
        self._split = False
        # Whether a journal may be on disk: this call's, or the one it resumes (a file without one, most files of a
        # run, is finished without a system call for a journal that is not there).
        self._journaled = resumed is not None
        self._lock = threading.Lock()

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                self._folders.make(self.part.parent)
                self._fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o666)
                self._high_water = os.fstat(self._fd).st_size
                if self._resumed is not None:
                    self._journal = self._new_journal(fresh=False)
                    self._split = self._resumed.split
            return self._fd

    def _new_journal(self, *, fresh: bool) -> JournalWriter:
        assert self._fd is not None
        self._journaled = True
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        return JournalWriter(self.journal_path, self.identity, self._fd, fresh=fresh)

    def versioned(self, version: ObjectVersion) -> None:
        with self._lock:
            self._version = version
            if self._journal is not None:
                self._journal.version(0, version)

    def write(self, offset: int, data: bytes) -> None:
        fd = self._open()
        with self._lock:
            out_of_order = offset > self._high_water and not self._split
            if self._journal is None and (out_of_order or offset + len(data) >= JOURNAL_MIN_BYTES):
                self._journal = self._new_journal(fresh=True)
                if self._version is not None:
                    self._journal.version(0, self._version)
                self._journal.flush()
            if out_of_order:
                assert self._journal is not None
                if self._high_water:
                    self._journal.written(0, 0, self._high_water)
                self._journal.out_of_order()
                self._split = True
        pwrite_all(fd, offset, data)
        with self._lock:
            self._high_water = max(self._high_water, offset + len(data))

    def written(self, start: int, end: int) -> None:
        with self._lock:
            journal = self._journal if self._split else None
        if journal is not None:
            journal.written(0, start, end)

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._open(), size, offset)

    def reset(self) -> None:
        fd = self._open()
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self.journal_path.unlink(missing_ok=True)
            os.ftruncate(fd, 0)
            self._high_water = 0
            self._split = False
            self._version = None

    def finished(self) -> None:
        self._open()  # an empty file was never written to
        self.close()
        self._folders.make(self.target.parent)
        os.replace(self.part, self.target)
        if self._journaled:
            self.journal_path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _journal_path(partial_root: Path, file: ArtifactFile) -> Path:
    """Short, fixed-length names (a file's own name may be as long as the file system allows), beside no part."""
    return (
        partial_root
        / JOURNALS_DIR
        / (hashlib.sha256(file.path.encode("utf-8", "surrogatepass")).hexdigest() + ".journal")
    )


def _identity(file: ArtifactFile) -> str:
    source = "\x00".join((file.root_uri, file.remote_path)).encode("utf-8", "surrogatepass")
    return f"file {file.size} {hashlib.sha256(source).hexdigest()}"


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
        self.jobs = max(1, jobs)
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self.tracking_uri = tracking_uri

    def download(self, plan: Plan, dest: Path) -> DownloadResult:
        stall_seconds()  # a bad KITMLFLOW_STALL_SECONDS is bad input, before the first byte
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        partial_root = dest / PARTIAL_DIR
        destinations, partials, folders = Destinations(dest), Destinations(partial_root), _Folders()
        targets = {f.path: destinations.path(f.path) for f in plan.selected}
        _check_path_lengths(dest, plan.selected)
        transfer = Transfer(
            self._repository_for,
            destination=dest,
            jobs=self.jobs,
            on_progress=self.on_progress,
            cancel=self.cancel,
            tracking_uri=self.tracking_uri,
            split=True,
            spool_dir=partial_root,
        )
        todo: list[FileJob] = []
        parts: list[_PartFile] = []
        reused = 0
        complete: list[ArtifactFile] = []
        journals = _journal_names(partial_root)
        try:
            for file in plan.selected:
                target = targets[file.path]
                if file.size is not None and _is_file_of_size(target, file.size):
                    complete.append(file)
                    reused += file.size
                    continue
                part = partials.path(file.path + ".part")
                journal = _journal_path(partial_root, file)
                resumed, missing = _still_missing(
                    part, journal if journal.name in journals else None, file, transfer.transport(file.root_uri)
                )
                version = resumed.versions.get(0) if resumed is not None else None
                parts.append(_PartFile(part, target, journal, _identity(file), resumed, version, folders))
                todo.append(FileJob(file, parts[-1], missing, version))
                reused += todo[-1].held_bytes()
            still_to_move = sum(job.missing_bytes() for job in todo)
            _check_disk_space(dest, still_to_move)
            transfer.report(ProgressEvent("plan", size=still_to_move, total=plan.selected_bytes, files=len(todo)))
            for file in complete:
                transfer.report(ProgressEvent("file_skipped", file.path, file.size or 0))
            transfer.run(todo)
        finally:
            for part_file in parts:
                part_file.close()
            transfer.close()
        shutil.rmtree(partial_root, ignore_errors=True)
        return DownloadResult(
            dest=dest,
            paths=tuple(f.path for f in plan.selected),
            downloaded_bytes=transfer.moved,
            reused_bytes=reused - transfer.dropped,
            total_bytes=plan.selected_bytes,
        )


def _still_missing(
    part: Path, journal: Path | None, file: ArtifactFile, transport: Transport
) -> tuple[JournalState | None, list[tuple[int, int]]]:
    """What a file's part lacks: per its journal once it was split, else from the part's size (one stream wrote it
    from its start). A part that names no version of the object (no journal, or one of another file), that the
    store cannot resume, or that is longer than the file starts again. Returns the journal's state when it is
    resumed, and the missing ranges. ``journal``: the file's journal, None when there is none on disk."""
    offset = _part_size(part)
    state = (
        read_journal(journal, _identity(file), [file.size]) if journal is not None and file.size is not None else None
    )
    if offset and (
        not transport.supports_ranges
        or (file.size is not None and offset > file.size)
        or state is None
        or 0 not in state.versions
    ):
        part.unlink()  # a resume would cost the whole file anyway, could not be checked, or is not this file's
        offset = 0
    if not offset or state is None:
        if journal is not None:
            journal.unlink(missing_ok=True)
        return None, [(0, 0 if file.size is None else file.size)]
    assert file.size is not None
    if state.split:
        return state, state.missing(0, file.size) or [(file.size, file.size)]
    return state, [(offset, file.size)]


def _journal_names(partial_root: Path) -> frozenset[str]:
    """The names in the journals' folder, listed once (a stat and an unlink per file of a run would cost two system
    calls each for journals that, for most files, were never written)."""
    try:
        return frozenset(os.listdir(partial_root / JOURNALS_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def _is_file_of_size(path: Path, size: int) -> bool:
    """Whether ``path`` is a regular file (following a link, as ``Path.is_file``) of ``size`` bytes: one stat."""
    try:
        return stat.S_ISREG((info := os.stat(path)).st_mode) and info.st_size == size
    except (OSError, ValueError):
        return False


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
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
