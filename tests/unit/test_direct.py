"""``direct.pack_direct`` over a local artifact store (MLflow's own ``LocalArtifactRepository``): the ModelKit is
the native packer's of the same folder, byte for byte; a cancel half-way leaves no tag and no blob, and the next
call fetches only what the journal lacks; a journal that is not the layout's (or cut mid-line) costs a refetch,
never a wrong byte. The downloader splits a large file the same way: cancelled half-way, its part has holes,
and the next call resumes from the part's range journal, not from its size."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kitmlflow_tui.core.catalogue.records import ArtifactFile, ArtifactTree
from kitmlflow_tui.core.download import range_journal
from kitmlflow_tui.core.download.transfer import ProgressEvent
from kitmlflow_tui.core.errors import InterruptedByUser
from kitmlflow_tui.core.events import Observer
from kitmlflow_tui.core.file_tree import FolderTree
from kitmlflow_tui.core.kitfile import build_kitfile
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.packing import direct
from kitmlflow_tui.core.packing.modelpack import ModelPackWriter
from kitmlflow_tui.core.packing.modelpack_config import RunFacts
from kitmlflow_tui.core.packing.native import pack_native
from kitmlflow_tui.core.selection.plan import FilterSpec, make_plan

FILES = {
    "model/model.pkl": 40 * 1024 * 1024 + 3,  # split into parallel ranges (over 2 x 16 MiB)
    "model/MLmodel": b"flavors:\n  sklearn:\n    sklearn_version: 1.5.0\n",
    "data/empty.csv": 0,
    "données/ü.bin": 5_000,
    "/".join(f"d{i:02d}" for i in range(30)) + "/deep.bin": 1_234,
    "LICENSE": b"Apache License\nVersion 2.0, January 2004\n",
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    for rel, value in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value if isinstance(value, bytes) else os.urandom(value))
    return root


def repository_for(root_uri: str):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    return LocalArtifactRepository(root_uri)


def plan_of(store: Path):
    files = tuple(
        ArtifactFile(p.relative_to(store).as_posix(), p.stat().st_size, str(store), p.relative_to(store).as_posix())
        for p in sorted(store.rglob("*"))
        if p.is_file()
    )
    return make_plan(ArtifactTree(files), FilterSpec())


def kitfile_of(tree):
    from kitmlflow_tui.core.catalogue.records import RunInfo

    run = RunInfo("http://127.0.0.1:1", "1", "e", "0" * 32, "r", "FINISHED", 0, 0, None, "")
    return build_kitfile(
        tree,
        run=run,
        logged_models=(),
        tag=parse_modelkit_reference("t:v1"),
        registered=None,
        filter_summary={},
        importer_version="test",
    ).kitfile


class Transferred(Observer):
    """Tells ``on_progress`` the direct pack's transfer events (the test cancels from it)."""

    def __init__(self, on_progress: Callable[[ProgressEvent], None]) -> None:
        self.on_progress = on_progress

    def progress(self, event: ProgressEvent) -> None:
        self.on_progress(event)


def pack(store: Path, home: Path, on_progress: Callable[[ProgressEvent], None] | None = None, **extra):
    the_plan = plan_of(store)
    contents = direct.fetch_contents([f for f in the_plan.selected if direct.content_needed(f)], repository_for, jobs=2)
    tree = direct.listed_tree(the_plan, contents)
    return direct.pack_direct(
        the_plan,
        tree,
        kitfile_of(tree),
        parse_modelkit_reference("t:v1"),
        repository_for=repository_for,
        run_key="run",
        storage_root=home,
        jobs=4,
        observer=Transferred(on_progress) if on_progress else None,
        **extra,
    )


# A ModelKit (the packers' default) and a ModelPack (its raw layers are one file region each) go the same way.
WRITERS = {"modelkit": None, "modelpack": ModelPackWriter(RunFacts("2026-01-02T03:04:05.678Z"), "t")}


@pytest.mark.parametrize("artifact", list(WRITERS))
def test_the_direct_pack_is_the_native_packers_byte_for_byte(store: Path, tmp_path: Path, artifact: str) -> None:
    result = pack(store, tmp_path / "direct", writer=WRITERS[artifact])
    folder = pack_native(
        store,
        kitfile_of(FolderTree(store)),
        parse_modelkit_reference("t:v1"),
        storage_root=tmp_path / "folder",
        writer=WRITERS[artifact],
    )
    assert result.packed.digest == folder.digest and result.packed.config_digest == folder.config_digest
    assert result.downloaded_bytes + result.reused_bytes == result.total_bytes
    assert not (tmp_path / "direct" / "storage" / direct.RESUME_DIR_NAME / "run").exists()


@pytest.mark.parametrize("artifact", list(WRITERS))
def test_a_cancelled_pack_leaves_no_tag_nor_blob_and_the_next_fetches_only_what_is_missing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifact: str
) -> None:
    writer = WRITERS[artifact]
    monkeypatch.setattr(range_journal, "EVERY_SECONDS", 0.0)  # journal every chunk
    home = tmp_path / "home"
    cancel = threading.Event()
    moved = 0

    def cancel_half_way(event: ProgressEvent) -> None:
        nonlocal moved
        if event.kind == "bytes":
            moved += event.size
            if moved > 20 * 1024 * 1024:
                cancel.set()

    with pytest.raises(InterruptedByUser):
        pack(store, home, on_progress=cancel_half_way, cancel=cancel, writer=writer)
    storage = home / "storage"
    assert not list(storage.glob("*-tags.json")) and not list((storage / "blobs" / "sha256").iterdir())
    assert list((storage / direct.RESUME_DIR_NAME / "run").glob("*.journal"))
    resumed = pack(store, home, writer=writer)
    assert resumed.reused_bytes >= 20 * 1024 * 1024 - 8 * 1024 * 1024  # at most a chunk per worker refetched
    assert resumed.downloaded_bytes == resumed.total_bytes - resumed.reused_bytes
    fresh = pack(store, tmp_path / "fresh", writer=writer)
    assert resumed.packed.digest == fresh.packed.digest


def test_a_cancelled_pack_whose_file_was_replaced_packs_the_new_bytes(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 item 7 for the direct import: the journal names the version of each file's bytes, and a re-run
    that finds another version in the store starts that file over (same size, so only the version tells)."""
    monkeypatch.setattr(range_journal, "EVERY_SECONDS", 0.0)
    home = tmp_path / "home"
    cancel = threading.Event()
    moved = 0

    def cancel_half_way(event: ProgressEvent) -> None:
        nonlocal moved
        if event.kind == "bytes":
            moved += event.size
            if moved > 20 * 1024 * 1024:
                cancel.set()

    with pytest.raises(InterruptedByUser):
        pack(store, home, on_progress=cancel_half_way, cancel=cancel)
    big = store / "model/model.pkl"
    big.write_bytes(os.urandom(big.stat().st_size))
    resumed = pack(store, home)
    assert resumed.packed.digest == pack(store, tmp_path / "fresh").packed.digest
    assert resumed.downloaded_bytes >= big.stat().st_size  # the big file's kept bytes were dropped, all fetched anew


def test_a_journal_of_another_layout_or_cut_mid_line_costs_a_refetch_not_a_wrong_byte(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(range_journal, "EVERY_SECONDS", 0.0)
    home = tmp_path / "home"
    cancel = threading.Event()
    with pytest.raises(InterruptedByUser):
        pack(store, home, on_progress=lambda e: cancel.set() if e.kind == "bytes" else None, cancel=cancel)
    journals = [
        j for j in (home / "storage" / direct.RESUME_DIR_NAME / "run").glob("*.journal") if b"\nR " in j.read_bytes()
    ]
    assert journals
    for journal in journals:
        blob = journal.with_suffix(".tar")
        size = blob.stat().st_size
        blob.write_bytes(b"\xff" * size)  # garbage where the journal claims bytes
        header, *_ = journal.read_bytes().split(b"\n")
        journal.write_bytes(header + b"\nR 0 0 999999999\nR 0 0 10")  # out of bounds, and a line with no newline
    assert pack(store, home).packed.digest == pack(store, tmp_path / "fresh").packed.digest


# -- the downloader splits a large file too, and resumes it from its range journal ---------------------------
def download(store: Path, dest: Path, **extra):
    from kitmlflow_tui.core.download.downloader import Downloader

    return Downloader(repository_for, jobs=4, **extra).download(plan_of(store), dest)


def test_a_split_download_cancelled_half_way_resumes_from_its_journal_not_from_its_size(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitmlflow_tui.core.download.downloader import JOURNALS_DIR, PARTIAL_DIR

    monkeypatch.setattr(range_journal, "EVERY_SECONDS", 0.0)
    dest = tmp_path / "dest"
    cancel = threading.Event()
    moved = 0
    big = "model/model.pkl"
    size = FILES[big]
    assert isinstance(size, int)

    def cancel_half_way(event: ProgressEvent) -> None:
        nonlocal moved
        if event.kind == "bytes" and event.path == big:
            time.sleep(0.05)  # a local read is fast: slow enough that idle workers split the file
            moved += event.size
            if moved > size // 2:
                cancel.set()

    with pytest.raises(InterruptedByUser):
        download(store, dest, on_progress=cancel_half_way, cancel=cancel)
    part = dest / PARTIAL_DIR / (big + ".part")
    (journal,) = (dest / PARTIAL_DIR / JOURNALS_DIR).iterdir()
    lines = journal.read_text().splitlines()
    assert "S" in lines, "written as parallel ranges: out of order"
    assert part.stat().st_size > moved, "the part's size overstates what it holds: the journal says what is there"
    result = download(store, dest)
    assert (dest / big).read_bytes() == (store / big).read_bytes()
    assert result.reused_bytes >= moved - 4 * 1024 * 1024  # at most a chunk per worker fetched again
    assert result.downloaded_bytes + result.reused_bytes == result.total_bytes
    assert not (dest / PARTIAL_DIR).exists()


def cancelled_part(store: Path, dest: Path, big: str, at: int) -> int:
    """Download ``big`` alone, in one stream, cancelled once ``at`` bytes arrived: the part a killed run leaves.
    Returns the part's size."""
    from kitmlflow_tui.core.download.downloader import PARTIAL_DIR, Downloader

    cancel = threading.Event()
    moved = 0

    def cancel_at(event: ProgressEvent) -> None:
        nonlocal moved
        if event.kind == "bytes":
            moved += event.size
            if moved >= at:
                cancel.set()

    plan = make_plan(plan_of(store).tree, FilterSpec(include=(big,)))
    with pytest.raises(InterruptedByUser):
        Downloader(repository_for, jobs=1, on_progress=cancel_at, cancel=cancel).download(plan, dest)
    return (dest / PARTIAL_DIR / (big + ".part")).stat().st_size


def test_a_part_resumes_from_its_size_when_its_journal_names_the_version_still_in_the_store(
    store: Path, tmp_path: Path
) -> None:
    big = "model/model.pkl"
    kept = cancelled_part(store, tmp_path / "dest", big, 5_000_000)
    assert kept >= 5_000_000
    result = download(store, tmp_path / "dest")
    assert (tmp_path / "dest" / big).read_bytes() == (store / big).read_bytes()
    assert result.reused_bytes == kept


def test_a_part_whose_file_was_replaced_starts_over_instead_of_mixing_two_versions(store: Path, tmp_path: Path) -> None:
    """Issue 20 item 7: the artifact replaced (same size) between an interrupted download and its re-run."""
    big = "model/model.pkl"
    cancelled_part(store, tmp_path / "dest", big, 5_000_000)
    replaced = os.urandom(FILES[big])  # type: ignore[arg-type]
    (store / big).write_bytes(replaced)
    result = download(store, tmp_path / "dest")
    assert (tmp_path / "dest" / big).read_bytes() == replaced
    assert result.reused_bytes == 0


def test_a_part_without_a_journal_names_no_version_and_starts_over(store: Path, tmp_path: Path) -> None:
    """A part whose journal is gone (or a small one a killed run left before it had one) cannot say which version
    of the object it holds: it is fetched again, never continued."""
    from kitmlflow_tui.core.download.downloader import JOURNALS_DIR, PARTIAL_DIR

    big = "model/model.pkl"
    cancelled_part(store, tmp_path / "dest", big, 5_000_000)
    for journal in (tmp_path / "dest" / PARTIAL_DIR / JOURNALS_DIR).iterdir():
        journal.unlink()
    result = download(store, tmp_path / "dest")
    assert (tmp_path / "dest" / big).read_bytes() == (store / big).read_bytes()
    assert result.reused_bytes == 0
