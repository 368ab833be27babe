"""The direct import: a plan's bytes go straight into the ModelKit's layer blobs (``--packer native``, no gzip).

No download folder, no stage folder, no second copy. The Kitfile is built from the run's listing held in memory
(:class:`~kitmlflow_tui.core.file_tree.ListedTree`: paths, listed sizes, and the few small contents a Kitfile reads,
:func:`fetch_contents`), kit's layer walk runs over the same listing, and each layer tar's layout
(:func:`~kitmlflow_tui.core.packing.layers.tar_layout`) says where every file's bytes lie in it. :func:`pack_direct`
makes one partial blob per layer in kit's storage (``storage/.kitmlflow-resume/<run>/``), writes the headers and
padding, has the transfer engine put every file's bytes at its final offset (a large file as parallel ranges),
hashes each blob once (an uncompressed layer's digest is its diffId) and renames it into ``blobs/``; the config,
the manifest and last the tag follow as the native packer writes them.

Resume: next to each partial blob a journal (:mod:`kitmlflow_tui.core.download.range_journal`) lists the ranges of its files
whose bytes are on disk, and the version of each file's object they came from. A re-run of the same import (same
files and Kitfile, hence the same layout, named by its hash) fetches only what the journal does not list, and joins
it to those bytes only if the store still has that version (else the file starts over); partial blobs of another
layout are removed. Nothing references a partial blob until
it is complete and renamed, so kill -9, a full disk or a cancel leave only the resume folder, which a
successful import of the run removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.range_journal import JournalState, JournalWriter, read_journal
from kitmlflow_tui.core.download.transfer import (
    FileJob,
    MemoryTarget,
    ProgressEvent,
    Transfer,
    pwrite_all,
)
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.errors import DownloadError, InterruptedByUser, KitmlflowError, PackError
from kitmlflow_tui.core.events import Observer, Step
from kitmlflow_tui.core.file_tree import ListedFile, ListedTree
from kitmlflow_tui.core.kitfile.model import Kitfile
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.packing.file_digests import FileDigest, RegionDigests
from kitmlflow_tui.core.packing.layers import FileRegion, TarLayout
from kitmlflow_tui.core.packing.native import DEFAULT_CLI_VERSION, ArtifactWriter, Layer, ModelKitWriter
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.packing.storage import Descriptor, KitStorage, resolve_kit_home
from kitmlflow_tui.core.selection.plan import Plan, format_size

RESUME_DIR_NAME = ".kitmlflow-resume"
DISK_MARGIN_BYTES = 16 * 1024 * 1024
CONTENT_NEEDED_MAX_BYTES = 1024 * 1024
_HASH_CHUNK = 4 * 1024 * 1024
_ROOT_FILES_READ = ("mlflow-provenance.yaml",)  # an earlier import's provenance (a run's .kitignore is never applied)


def content_needed(file: ArtifactFile) -> bool:
    """Whether the Kitfile or kit's layer walk reads this file's content: every ``MLmodel`` (the framework), a root
    license or readme (the SPDX id), a root provenance file. Small files only (as listed; one
    listed without a size is read up to the same bound)."""
    name = file.path.rsplit("/", 1)[-1]
    lower = name.lower()
    at_root = "/" not in file.path
    return (
        (file.size or 0) <= CONTENT_NEEDED_MAX_BYTES  # an unknown size is read into memory up to this
        and (
            lower == "mlmodel"
            or (at_root and (lower.startswith("license") or lower.startswith("readme") or name in _ROOT_FILES_READ))
        )
    )


def fetch_contents(
    files: Sequence[ArtifactFile],
    repository_for: Callable[[str], Any],
    *,
    cancel: threading.Event | None = None,
    tracking_uri: str = "",
    jobs: int = 8,
) -> dict[str, bytes]:
    """The contents of a few small files, in memory (sizes checked against the listing)."""
    if not files:
        return {}
    targets = {file.path: MemoryTarget(file.path, file.size or 0, CONTENT_NEEDED_MAX_BYTES) for file in files}
    with tempfile.TemporaryDirectory(prefix="kitmlflow-contents-") as spool:
        transfer = Transfer(
            repository_for, destination=Path(spool), jobs=jobs, cancel=cancel, tracking_uri=tracking_uri, split=False
        )
        try:
            transfer.run([FileJob(file, targets[file.path], [(0, file.size or 0)]) for file in files])
        finally:
            transfer.close()
    return {path: bytes(target.data) for path, target in targets.items()}


def listed_tree(plan: Plan, contents: Mapping[str, bytes]) -> ListedTree:
    """The plan's files as the tree a download would give (listed sizes; modes a download would set)."""
    return ListedTree((ListedFile(file.path, file.size or 0) for file in plan.selected), contents)


def can_go_direct(plan: Plan, packer: str, compression: str, keep_download: bool) -> bool:
    """The direct import needs the native packer, uncompressed layers (their bytes are the files' bytes at fixed
    offsets), no download folder to keep, and every size listed (the layout depends on them)."""
    return (
        packer == "native"
        and compression == "none"
        and not keep_download
        and all(file.size is not None for file in plan.selected)
    )


@dataclass(frozen=True)
class DirectResult:
    packed: PackResult
    resume_dir: Path
    downloaded_bytes: int  # moved over the network by this call (the Kitfile's few contents included)
    reused_bytes: int  # found in the partial blobs of an earlier call
    total_bytes: int  # of the run's files the layers hold


def pack_direct(
    plan: Plan,
    tree: ListedTree,
    kitfile: Kitfile,
    reference: ModelKitRef,
    *,
    repository_for: Callable[[str], Any],
    run_key: str,
    storage_root: Path | None = None,
    jobs: int = 8,
    observer: Observer | None = None,
    cancel: threading.Event | None = None,
    tracking_uri: str = "",
    cli_version: str = DEFAULT_CLI_VERSION,
    writer: ArtifactWriter | None = None,
    digest_files: bool = False,
) -> DirectResult:
    """Fetch the plan's files into the layer blobs of ``kitfile`` over ``tree`` and store the ModelKit under
    ``reference`` (see the module's docstring). ``run_key`` names the run's resume folder; the caller holds the
    run's lock, so no other import of the run writes there. ``writer`` decides the artifact (an uncompressed
    ModelKit by default; a ModelPack's raw layers are layouts of one file region each). With ``digest_files``
    every file's sha256 is taken in the pass that hashes the layers (:mod:`~kitmlflow_tui.core.packing.file_digests`;
    a raw layer's file digest is the layer's own). ``observer`` is told the transfer's progress, the hashing step
    and its progress."""
    observer = observer or Observer()
    cancel = cancel or threading.Event()
    writer = writer or ModelKitWriter("none", cli_version)
    planned = writer.plan(tree, kitfile)
    by_path = {file.path: file for file in plan.selected}
    storage = KitStorage(resolve_kit_home(storage_root))
    resume_dir = storage.root / RESUME_DIR_NAME / run_key
    blobs = [_PartialBlob(resume_dir, layer, writer.layout(layer), by_path, digest_files) for layer in planned.layers]
    _check_disk_space(storage.root, sum(blob.bytes_to_allocate() for blob in blobs))  # before a byte is written
    try:
        with storage.session():
            resume_dir.mkdir(parents=True, exist_ok=True)
            _remove_other_partials(resume_dir, {blob.layout_id for blob in blobs})
            try:
                for blob in blobs:
                    blob.open(tree.contents)
                filled = _fill_blobs(
                    blobs, plan, by_path, tree, repository_for, resume_dir, jobs, observer, cancel, tracking_uri
                )
                observer.step(Step.PACK, f"Packing {reference} (native packer: hashing the layers)")
                descriptors, files = _commit_layers(storage, blobs, writer, observer.pack_progress, cancel)
            finally:
                for blob in blobs:
                    blob.close()
            packed = writer.store(storage, planned, descriptors, reference, cancel)
            packed = dataclasses.replace(packed, files=files)
    except KitmlflowError:
        raise
    except OSError as exc:
        raise PackError(f"Writing the ModelKit into {storage.root} failed: {exc.strerror or exc}") from exc
    shutil.rmtree(resume_dir, ignore_errors=True)
    return DirectResult(packed, resume_dir, filled.downloaded_bytes, filled.reused_bytes, filled.total_bytes)


@dataclass(frozen=True)
class _Filled:
    """What filling the layer blobs took, as :class:`DirectResult` counts it."""

    downloaded_bytes: int  # fetched now, the Kitfile's in-memory contents included
    reused_bytes: int  # already in the partial blobs, less what a changed file dropped
    total_bytes: int


def _fill_blobs(
    blobs: list[_PartialBlob],
    plan: Plan,
    by_path: Mapping[str, ArtifactFile],
    tree: ListedTree,
    repository_for: Callable[[str], Any],
    resume_dir: Path,
    jobs: int,
    observer: Observer,
    cancel: threading.Event,
    tracking_uri: str,
) -> _Filled:
    """Fetch every selected file's missing bytes into its region of the open ``blobs``."""
    jobs_todo = [job for blob in blobs for job in blob.jobs(by_path, tree.contents)]
    still = sum(job.missing_bytes() for job in jobs_todo)
    regions = [region for blob in blobs for region in blob.layout.files if region.name in by_path]
    total = sum(region.size for region in regions)
    in_memory = sum(region.size for region in regions if region.name in tree.contents)
    transfer = Transfer(
        repository_for,
        destination=resume_dir,
        jobs=jobs,
        on_progress=observer.progress,
        cancel=cancel,
        tracking_uri=tracking_uri,
        split=True,
        spool_dir=resume_dir,
    )
    transfer.report(ProgressEvent("plan", size=still, total=plan.selected_bytes, files=len(jobs_todo)))
    try:
        transfer.run(jobs_todo)
    finally:
        transfer.close()
    reused = total - still - in_memory
    return _Filled(transfer.moved + in_memory, reused - transfer.dropped, total)


def _commit_layers(
    storage: KitStorage,
    blobs: Sequence[_PartialBlob],
    writer: ArtifactWriter,
    on_hash_progress: Callable[[int, int], None],
    cancel: threading.Event,
) -> tuple[list[Descriptor], tuple[FileDigest, ...]]:
    """Hash every complete blob once and rename it into ``blobs/``; their descriptors, in layer order, and the
    digests of their files when the blobs were asked to take them."""
    total = sum(blob.layout.size for blob in blobs)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        on_hash_progress(done, total)

    descriptors = []
    files: list[FileDigest] = []
    for blob in blobs:
        digest = blob.hash(advance, cancel)
        files += blob.file_digests(digest)
        blob.commit(storage, digest)
        descriptors.append(writer.descriptor(blob.layer, digest, digest, blob.layout.size))  # uncompressed
    return descriptors, tuple(files)


def _layout_id(layout: TarLayout, by_path: Mapping[str, ArtifactFile]) -> str:
    """Names a layout and the sources of its files: a partial blob resumes only for the same one."""
    digest = hashlib.sha256()
    for segment in layout.segments:
        if isinstance(segment, FileRegion):
            source = by_path.get(segment.name)
            where = f"{source.root_uri}\x00{source.remote_path}" if source else ""
            digest.update(f"F\x00{segment.name}\x00{segment.offset}\x00{segment.size}\x00{where}\x00".encode())
        else:
            digest.update(b"L\x00" + len(segment).to_bytes(8, "big") + segment)
    return digest.hexdigest()[:32]


def _remove_other_partials(resume_dir: Path, keep: set[str]) -> None:
    for entry in resume_dir.iterdir():
        if entry.name.split(".", 1)[0] not in keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


@dataclass(eq=False)
class _PartialBlob:
    """One layer's blob while its files arrive: ``<layout id>.tar`` and its journal ``<layout id>.journal``
    (one journal region per file of the layout)."""

    resume_dir: Path
    layer: Layer
    layout: TarLayout
    by_path: Mapping[str, ArtifactFile]
    digest_files: bool = False
    layout_id: str = ""
    fd: int | None = None
    journal_writer: JournalWriter | None = None
    hasher: _InOrderHasher | None = None
    files: RegionDigests | None = None
    state: JournalState = field(default_factory=JournalState)

    def __post_init__(self) -> None:
        self.layout_id = _layout_id(self.layout, self.by_path)
        self.path = self.resume_dir / f"{self.layout_id}.tar"
        self.journal = self.resume_dir / f"{self.layout_id}.journal"

    @property
    def identity(self) -> str:
        return f"layer {self.layout_id} {self.layout.size}"

    def open(self, contents: Mapping[str, bytes]) -> None:
        """Open (or create) the partial blob at its full size with every literal byte and in-memory content in
        place, and read what the journal says is there."""
        sizes = [region.size for region in self.layout.files]
        found = read_journal(self.journal, self.identity, sizes) if self._same_size() else None
        if found is None:
            self.path.unlink(missing_ok=True)
        self.state = found or JournalState()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, self.layout.size)
        for offset, data in self.layout.literals():
            pwrite_all(self.fd, offset, data)
        for index, region in enumerate(self.layout.files):
            content = contents.get(region.name)
            if content is not None and index not in self.state.complete and len(content) == region.size:
                pwrite_all(self.fd, region.offset, content)
                self.state.complete.add(index)
        self.journal_writer = JournalWriter(self.journal, self.identity, self.fd, fresh=found is None)
        for index in [index for index in self.state.done if index not in self.state.versions]:
            self.journal_writer.forget(index)  # bytes of no known version (an older journal): the file starts over
            self.state.forget(index)
        # A raw layer (one file, no tar around it) is its file: the layer's digest is the file's, hashed once.
        self.files = RegionDigests(self.layout.files) if self.digest_files and not self._is_raw() else None
        self.hasher = _InOrderHasher(self.fd, self.layout, self.state, self.files)

    def _same_size(self) -> bool:
        try:
            return self.path.stat().st_size == self.layout.size
        except OSError:
            return False

    def bytes_to_allocate(self) -> int:
        """What the blob still needs on disk (a partial blob of the same layout holds some already)."""
        try:
            held = self.path.stat().st_blocks * 512
        except OSError:
            held = 0
        return max(0, self.layout.size - held)

    def jobs(self, by_path: Mapping[str, ArtifactFile], contents: Mapping[str, bytes]) -> list[FileJob]:
        found = []
        for index, region in enumerate(self.layout.files):
            if index in self.state.complete:
                continue
            source = by_path.get(region.name)
            if source is None:
                raise PackError(f"{region.name} is in a layer of the Kitfile but not among the files to import.")
            missing = self.state.missing(index, region.size)
            if not missing and region.size:
                missing = [(region.size, region.size)]  # written but not checked: a read at its end checks it
            target = _RegionTarget(self, index, region)
            found.append(FileJob(source, target, missing or [(0, 0)], self.state.versions.get(index)))
        return found

    def hash(self, advance: Callable[[int], None], cancel: threading.Event) -> str:
        """The blob's digest, once every byte is there: what the hasher has not reached yet is hashed here."""
        assert self.journal_writer is not None and self.hasher is not None
        self.journal_writer.flush()
        return self.hasher.finish(advance, cancel)

    def _is_raw(self) -> bool:
        segments = self.layout.segments
        return len(segments) == 1 and isinstance(segments[0], FileRegion) and segments[0].size == self.layout.size

    def file_digests(self, digest: str) -> tuple[FileDigest, ...]:
        """Its files' digests (none unless asked for), taken while :meth:`hash` read the blob as ``digest``."""
        if not self.digest_files:
            return ()
        if self.files is None:  # raw: the file is the blob
            return (FileDigest(self.layout.files[0].name, self.layout.size, digest.removeprefix("sha256:")),)
        return self.files.result()

    def commit(self, storage: KitStorage, digest: str) -> None:
        assert self.fd is not None
        with open(self.fd, "rb", closefd=False) as handle:
            storage.commit_blob(self.path, handle, digest, self.layout.size)
        self.path.unlink(missing_ok=True)  # the blob was there already
        self.journal.unlink(missing_ok=True)

    def close(self) -> None:
        if self.hasher is not None:
            self.hasher.stop()
            self.hasher = None
        if self.journal_writer is not None:
            self.journal_writer.close()
            self.journal_writer = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _RegionTarget:
    """The transfer's target for one file of a layer: its bytes at their offset in the partial blob."""

    def __init__(self, blob: _PartialBlob, index: int, region: FileRegion) -> None:
        self.blob = blob
        self.index = index
        self.base = region.offset
        self.size = region.size

    def versioned(self, version: ObjectVersion) -> None:
        assert self.blob.journal_writer is not None
        self.blob.journal_writer.version(self.index, version)

    def write(self, offset: int, data: bytes) -> None:
        assert self.blob.fd is not None
        pwrite_all(self.blob.fd, self.base + offset, data)

    def written(self, start: int, end: int) -> None:
        assert self.blob.journal_writer is not None and self.blob.hasher is not None
        self.blob.journal_writer.written(self.index, start, end)
        self.blob.hasher.written(self.index, start, end)

    def read(self, offset: int, size: int) -> bytes:
        assert self.blob.fd is not None
        return os.pread(self.blob.fd, size, self.base + offset)

    def reset(self) -> None:
        assert self.blob.journal_writer is not None and self.blob.hasher is not None
        self.blob.journal_writer.forget(self.index)
        self.blob.hasher.forget(self.index)

    def finished(self) -> None:
        assert self.blob.journal_writer is not None and self.blob.hasher is not None
        self.blob.journal_writer.complete(self.index)
        self.blob.hasher.written(self.index, 0, self.size)


class _InOrderHasher:
    """Hashes a layer blob from its first byte while its files arrive, on a thread of its own: it follows the
    blob's written prefix (the literal bytes are there from the start; a file's bytes count once the range from
    its own start is written), so that once the last byte lands little is left to hash. The bytes are read back
    from the page cache (``pread``); each is written once, before the transfer reports it. ``files``, when given,
    gets the same chunks: each file's own digest from this one read."""

    def __init__(self, fd: int, layout: TarLayout, state: JournalState, files: RegionDigests | None = None) -> None:
        self._fd = fd
        self._files = files
        self._layout = layout
        self._regions = layout.files
        self._prefix = [0] * len(self._regions)  # per file: bytes written from its start
        self._beyond: list[list[tuple[int, int]]] = [[] for _ in self._regions]  # ranges past the prefix
        self._next = 0  # the first file not entirely written
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._stopped = False
        self._condition = threading.Condition()
        for index, region in enumerate(self._regions):
            if index in state.complete:
                self._prefix[index] = region.size
            for start, end in state.done.get(index, []):
                self._add(index, start, end)
        self._thread = threading.Thread(target=self._run, name="kitmlflow-layer-hash", daemon=True)
        self._thread.start()

    def written(self, index: int, start: int, end: int) -> None:
        with self._condition:
            self._add(index, start, end)
            self._condition.notify()

    def forget(self, index: int) -> None:
        """A file starts over: its bytes count again only as they are written anew. If the hash already went past
        its start, it starts over from the blob's first byte (the page cache usually holds what it rereads)."""
        self.stop()
        region = self._regions[index]
        with self._condition:
            self._prefix[index] = 0
            self._beyond[index] = []
            self._next = min(self._next, index)
            if self._hashed > region.offset:
                self._digest = hashlib.sha256()
                self._hashed = 0
            self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kitmlflow-layer-hash", daemon=True)
        self._thread.start()

    def _add(self, index: int, start: int, end: int) -> None:
        if start > self._prefix[index]:
            self._beyond[index].append((start, end))
            return
        self._prefix[index] = max(self._prefix[index], end)
        beyond = sorted(self._beyond[index])
        while beyond and beyond[0][0] <= self._prefix[index]:
            self._prefix[index] = max(self._prefix[index], beyond.pop(0)[1])
        self._beyond[index] = beyond

    def _frontier(self) -> int:
        """Every byte of the blob below this offset is written (called with the lock held)."""
        while self._next < len(self._regions) and self._prefix[self._next] >= self._regions[self._next].size:
            self._next += 1
        if self._next == len(self._regions):
            return self._layout.size
        region = self._regions[self._next]
        return region.offset + self._prefix[self._next]

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # what it could not hash, finish() hashes, and raises what it meets
            self._follow()

    def _follow(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and self._frontier() <= self._hashed:
                    self._condition.wait(0.5)
                if self._stopped:
                    return
                frontier = self._frontier()
            self._hash_to(frontier, lambda count: None, None)
            if self._hashed >= self._layout.size:
                return

    def _hash_to(self, end: int, advance: Callable[[int], None], cancel: threading.Event | None) -> None:
        while self._hashed < end:
            if self._stopped or (cancel is not None and cancel.is_set()):
                return
            chunk = os.pread(self._fd, min(_HASH_CHUNK, end - self._hashed), self._hashed)
            if not chunk:
                raise PackError("A partial layer blob shrank while it was being hashed; import again.")
            self._digest.update(chunk)
            if self._files is not None:
                self._files.update(self._hashed, chunk)
            self._hashed += len(chunk)
            advance(len(chunk))

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join()

    def finish(self, advance: Callable[[int], None], cancel: threading.Event) -> str:
        """Stop the thread where it is and hash the rest here (every byte is written by now)."""
        self.stop()
        self._stopped = False
        advance(self._hashed)
        self._hash_to(self._layout.size, advance, cancel)
        if cancel.is_set():
            raise InterruptedByUser("Import cancelled; the layers' bytes are kept for the next run.")
        return "sha256:" + self._digest.hexdigest()


def _check_disk_space(folder: Path, needed: int) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # kit's storage may not exist yet: the disk it will be on
    free = shutil.disk_usage(existing).free
    if needed + DISK_MARGIN_BYTES > free:
        raise DownloadError(
            f"Not enough disk space for the ModelKit in {folder}: its layers need {format_size(needed)} more and "
            f"{format_size(free)} is free.",
            hint="Free some space, set KITOPS_HOME to a kit storage on a larger disk, or select fewer files "
            "(--exclude, --max-file-size).",
        )
