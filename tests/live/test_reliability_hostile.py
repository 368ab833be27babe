"""Case 7 of docs/reliability.md: a hostile tracking server (tests/support/hostile_server.py plays the attacker).

Exit codes, as docs/reliability.md decides them: a server that breaks the protocol while kitmlflow reads
the run or lists its artifacts (unsafe paths, endless or oversized listings, huge documents, a listing
that never answers) is a broken tracking server, exit 6; one that breaks it while a file moves (more or
fewer bytes than listed, a transfer that never ends or stalls) is a failed download, exit 7. Every case
has a hard timeout, and nothing may appear outside the download folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kitmlflow_tui.catalogue import http_limits, listing
from tests.support.hostile_server import Content, Scenario, file, folder, hostile_server

BROKEN_SERVER = 6
DOWNLOAD_FAILED = 7


def snapshot(root: Path, *, skip: tuple[Path, ...]) -> set[str]:
    found = set()
    for path in root.rglob("*"):
        if any(path == s or path.is_relative_to(s) for s in skip):
            continue
        found.add(str(path.relative_to(root)))
    return found


def run_download(kitmlflow, server, tmp_path: Path, *extra: str):
    """``kitmlflow download`` into a folder nested deep in tmp_path, so that any ``..`` escape still lands
    inside tmp_path, where the snapshot sees it; returns (outcome, seconds, dest)."""
    dest = tmp_path / "a" / "b" / "c" / "dest"
    before = snapshot(tmp_path, skip=(dest, tmp_path / "cache"))
    started = time.monotonic()
    out = kitmlflow("download", server.uri(), "--dest", str(dest), "--yes", "--json", *extra)
    elapsed = time.monotonic() - started
    after = snapshot(tmp_path, skip=(dest, tmp_path / "cache"))
    assert after - before <= {"a", "a/b", "a/b/c"}, f"written outside the destination: {after - before}"
    assert "Traceback" not in out.stdout + out.stderr
    return out, elapsed, dest


def real_files(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".kitmlflow-partial" not in p.parts}


def tree(layout: dict[str, list[dict]]):
    return lambda directory: layout.get(directory, [])


UNSAFE_LISTINGS = {
    "parent": {"": [file("../escape.txt", 5)]},
    "parent-deep": {"": [folder("sub")], "sub": [file("../../../../escape.txt", 5)]},
    "parent-folder": {"": [folder("..")], "..": [file("escape.txt", 5)]},
    "absolute": {"": [file("/tmp/kitmlflow-escape.txt", 5)]},
    "backslash-parent": {"": [file("..\\escape.txt", 5)]},
    "backslash": {"": [file("a\\b.txt", 5)]},
    "encoded-parent": {"": [file("%2e%2e/escape.txt", 5)]},
    "double-encoded-parent": {"": [file("%252e%252e%252fescape.txt", 5)]},
    "nested-name": {"": [file("sub/x.txt", 5)]},
    "dot": {"": [file(".", 5)]},
    "empty-name": {"": [file("", 5)]},
    "file-uri": {"": [file("file:///etc/passwd", 5)]},
    "file-and-folder": {"": [file("x", 3), folder("x")], "x": [file("y", 2)]},
    "negative-size": {"": [file("neg.bin", -5)]},
    "not-a-size": {"": [file("nan.bin", "lots")]},  # type: ignore[arg-type]
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(UNSAFE_LISTINGS))
def test_unsafe_listings_are_refused(case: str, kitmlflow, tmp_path: Path) -> None:
    contents = {name: Content(b"owned") for name in ("../escape.txt", "x", "x/y", "neg.bin", "nan.bin")}
    with hostile_server(Scenario(listing=tree(UNSAFE_LISTINGS[case]), contents=contents)) as server:
        out, elapsed, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, (case, out.stderr)
    assert out.json["error"]["code"] == BROKEN_SERVER
    assert "refus" in out.stderr.lower() or "unsafe" in out.stderr.lower(), out.stderr
    assert elapsed < 30
    assert not dest.exists() or real_files(dest) == set()
    assert not Path("/tmp/kitmlflow-escape.txt").exists()


@pytest.mark.timeout(60)
def test_an_unsafe_listing_is_refused_by_import_too(kitmlflow, tmp_path: Path) -> None:
    with hostile_server(Scenario(listing=tree(UNSAFE_LISTINGS["parent-deep"]))) as server:
        out = kitmlflow("import", server.uri(), "-t", "evil:v1", "--yes", "--json", "--packer", "native")
    assert out.code == BROKEN_SERVER, out.stderr
    assert not (tmp_path / "kitops").exists() or not list((tmp_path / "kitops").rglob("*-tags.json"))
    assert not list(tmp_path.rglob("escape.txt"))


@pytest.mark.timeout(60)
def test_a_name_listed_twice_is_downloaded_once(kitmlflow, tmp_path: Path) -> None:
    layout = {"": [file("w.bin", 4), file("w.bin", 4), folder("d"), folder("d")], "d": [file("x", 1)]}
    contents = {"w.bin": Content(b"wwww"), "d/x": Content(b"x")}
    with hostile_server(Scenario(listing=tree(layout), contents=contents)) as server:
        out, _, dest = run_download(kitmlflow, server, tmp_path)
        listings = server.listings
    assert out.code == 0, out.stderr
    assert [f["path"] for f in out.json["selected"]] == ["d/x", "w.bin"]
    assert real_files(dest) == {"d/x", "w.bin"}
    assert listings == 2  # the folder listed twice is listed once


SIZE_LIES = {
    # case: (listed size, what the download sends)
    "more-than-listed": (10, Content(b"y" * 20)),
    "fewer-than-listed": (20, Content(b"y" * 10)),
    "cut-short": (20, Content(b"y" * 10, declared_length=20)),  # claims 20, sends 10 and hangs up
    "endless": (1_000_000, Content(b"", endless=True)),
    "unsized-but-not-empty": (None, Content(b"surprise")),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", sorted(SIZE_LIES))
def test_transfers_that_do_not_match_the_listing_are_exit_7(case: str, kitmlflow, tmp_path: Path) -> None:
    listed, content = SIZE_LIES[case]
    entry = {"path": "lie.bin", "is_dir": False} | ({"file_size": listed} if listed is not None else {})
    layout = {"": [entry, file("ok.txt", 2)]}
    scenario = Scenario(listing=tree(layout), contents={"lie.bin": content, "ok.txt": Content(b"ok")})
    with hostile_server(scenario) as server:
        out, elapsed, dest = run_download(kitmlflow, server, tmp_path, "--jobs", "1")
    assert out.code == DOWNLOAD_FAILED, (case, out.stderr)
    assert "lie.bin" in out.json["error"]["message"]
    assert elapsed < 60
    assert not (dest / "lie.bin").exists(), "a file that does not match its listing is never under its real name"


@pytest.mark.timeout(90)
def test_a_lying_size_in_an_import_packs_nothing(kitmlflow, tmp_path: Path) -> None:
    layout = {"": [file("model.bin", 10)]}
    with hostile_server(Scenario(listing=tree(layout), contents={"model.bin": Content(b"m" * 50)})) as server:
        out = kitmlflow("import", server.uri(), "-t", "liar:v1", "--yes", "--json", "--packer", "native")
    assert out.code == DOWNLOAD_FAILED, out.stderr
    storage = tmp_path / "kitops" / "storage"
    assert not storage.exists() or not list(storage.glob("*-tags.json"))


@pytest.mark.timeout(90)
def test_a_stalled_transfer_times_out(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    data = os.urandom(4_000_000)
    layout = {"": [file("stall.bin", len(data))]}
    scenario = Scenario(listing=tree(layout), contents={"stall.bin": Content(data, stall_after=1_000_000)})
    with hostile_server(scenario) as server:
        out, elapsed, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == DOWNLOAD_FAILED, out.stderr
    assert "stall.bin" in out.json["error"]["message"]
    assert elapsed < 45, f"a stalled transfer took {elapsed:.0f}s to fail"
    part = dest / ".kitmlflow-partial" / "stall.bin.part"
    assert part.exists() and part.stat().st_size == 1_000_000  # kept for a resume
    assert not (dest / "stall.bin").exists()


@pytest.mark.timeout(90)
def test_a_listing_that_never_answers_times_out(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with hostile_server(Scenario(stall_listing=True)) as server:
        out, elapsed, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert elapsed < 45, f"took {elapsed:.0f}s"


@pytest.mark.timeout(120)
def test_an_endlessly_deep_listing_is_refused(kitmlflow, tmp_path: Path) -> None:
    def deeper(_directory: str) -> list[dict]:
        return [folder("d"), file("f.txt", 1)]

    with hostile_server(Scenario(listing=deeper)) as server:
        out, elapsed, _ = run_download(kitmlflow, server, tmp_path)
        listings = server.listings
    assert out.code == BROKEN_SERVER, out.stderr
    assert "deeper than" in out.stderr
    assert listings <= listing.MAX_TREE_DEPTH + 2


@pytest.mark.timeout(120)
def test_an_endlessly_wide_listing_is_bounded(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only folders, 40 more in every folder: depth alone never stops it (40^64 folders).
    monkeypatch.setattr(listing, "MAX_TREE_FILES", 3_000)

    def wider(_directory: str) -> list[dict]:
        return [folder(f"d{i}") for i in range(40)]

    with hostile_server(Scenario(listing=wider)) as server:
        out, _, _ = run_download(kitmlflow, server, tmp_path)
        listings = server.listings
    assert out.code == BROKEN_SERVER, out.stderr
    assert "more than" in out.stderr
    assert listings <= 3_000 // 40 + 2 * 8  # the bound, plus what was in flight


@pytest.mark.timeout(120)
def test_a_huge_flat_folder_is_bounded(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_TREE_FILES", 10_000)
    flat = [file(f"f{i:06d}.bin", 1) for i in range(20_000)]
    with hostile_server(Scenario(listing=lambda d: flat if d == "" else [])) as server:
        out, _, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert "more than 10,000" in out.stderr
    assert not dest.exists() or real_files(dest) == set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["huge", "endless"])
def test_huge_json_documents_are_bounded(case: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_limits, "MAX_RESPONSE_BYTES", 8 * 2**20)
    scenario = Scenario(run_json_padding=40 * 2**20) if case == "huge" else Scenario(run_json_endless=True)
    with hostile_server(scenario) as server:
        out, elapsed, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert "larger than" in out.stderr, out.stderr
    assert elapsed < 60


@pytest.mark.timeout(120)
def test_a_document_that_trickles_forever_times_out(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read gets a byte within MLFLOW_HTTP_REQUEST_TIMEOUT, so only a deadline on the whole answer stops it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with hostile_server(Scenario(run_json_trickle=True)) as server:
        out, elapsed, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert elapsed < 60, f"took {elapsed:.0f}s"
