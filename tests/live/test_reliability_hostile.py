"""Case 7 of docs/reliability.md: a hostile tracking server (tests/support/hostile_server.py plays the attacker).

Exit codes, as docs/reliability.md decides them: a server that breaks the protocol while kitmlflow reads
the run or lists its artifacts (unsafe paths, endless or oversized listings, huge documents, a listing
that never answers) is a broken tracking server, exit 6; one that breaks it while a file moves (more or
fewer bytes than listed, a transfer that never ends or stalls) is a failed download, exit 7. Every case
has a hard timeout, and nothing may appear outside the download folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitmlflow_tui.core.catalogue import http_limits, listing
from kitmlflow_tui.core.catalogue import pages as pages_module
from kitmlflow_tui.core.download.downloader import RETRIES
from tests.support.hostile_server import (
    ARTIFACTS,
    ROOT,
    SIGNATURE,
    Content,
    Scenario,
    file,
    folder,
    hostile_server,
)

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
    inside tmp_path, where the snapshot sees it; returns (outcome, dest)."""
    dest = tmp_path / "a" / "b" / "c" / "dest"
    before = snapshot(tmp_path, skip=(dest, tmp_path / "cache"))
    out = kitmlflow("download", server.uri(), "--dest", str(dest), "--yes", "--json", *extra)
    after = snapshot(tmp_path, skip=(dest, tmp_path / "cache"))
    assert after - before <= {"a", "a/b", "a/b/c"}, f"written outside the destination: {after - before}"
    assert "Traceback" not in out.stdout + out.stderr
    return out, dest


# How often one call may reach the server: MLflow's first try plus the 2 retries kitmlflow asks MLflow for
# (MLFLOW_HTTP_REQUEST_MAX_RETRIES, unless the user set it), and the downloader's RETRIES attempts per file.
# The tests bound what the server saw instead of the seconds it took: a loaded CI machine is slow, not wrong.
CALLS_PER_REQUEST = 1 + 2


def requests_for(server, prefix: str) -> list[str]:
    return [r for r in server.requests if r.startswith(prefix)]


def artifact_gets(server, name: str = "") -> list[str]:
    return requests_for(server, f"GET {ARTIFACTS}/{ROOT}/{name}")


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
        out, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, (case, out.stderr)
    assert out.json["error"]["code"] == BROKEN_SERVER
    assert "refus" in out.stderr.lower() or "unsafe" in out.stderr.lower(), out.stderr
    assert server.listings <= 2 and artifact_gets(server) == [], "refused at listing time, nothing fetched"
    assert not dest.exists() or real_files(dest) == set()
    assert not Path("/tmp/kitmlflow-escape.txt").exists()


@pytest.mark.timeout(60)
def test_a_percent_escaped_name_is_a_literal_name_that_is_left_out_not_decoded(kitmlflow, tmp_path: Path) -> None:
    """``%252e%252e%252f`` is ``../`` only to a client that decodes it (MLflow's own does, until it stops changing):
    the name stays exactly as listed, and since MLflow's proxy decodes the paths it is asked for, it cannot serve
    the file, which the plan leaves out with that reason. Nothing is requested or written for it."""
    layout = {"": [file("%252e%252e%252fescape.txt", 5), file("ok.txt", 2)]}
    contents = {"%252e%252e%252fescape.txt": Content(b"owned"), "ok.txt": Content(b"ok")}
    with hostile_server(Scenario(listing=tree(layout), contents=contents)) as server:
        out, dest = run_download(kitmlflow, server, tmp_path)
        requests = list(server.requests)
    assert out.code == 0, out.stderr
    assert [f["path"] for f in out.json["selected"]] == ["ok.txt"]
    (excluded,) = out.json["excluded"]
    assert excluded["path"] == "%252e%252e%252fescape.txt"
    assert "decodes %XX escapes" in excluded["reason"]
    assert real_files(dest) == {"ok.txt"}
    assert not any("escape" in line for line in requests if not line.startswith("LIST")), requests
    assert not list(tmp_path.rglob("escape.txt"))


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
        out, dest = run_download(kitmlflow, server, tmp_path)
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
        out, dest = run_download(kitmlflow, server, tmp_path, "--jobs", "1")
    assert out.code == DOWNLOAD_FAILED, (case, out.stderr)
    assert "lie.bin" in out.json["error"]["message"]
    assert 1 <= len(artifact_gets(server, "lie.bin")) <= RETRIES  # attempts, never a retry loop
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
        out, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == DOWNLOAD_FAILED, out.stderr
    assert "stall.bin" in out.json["error"]["message"]
    # the first GET moved 1,000,000 bytes, which resets the count; then RETRIES ranged GETs stall at that byte
    assert len(artifact_gets(server, "stall.bin")) == 1 + RETRIES, "each attempt timed out, then it gave up"
    part = dest / ".kitmlflow-partial" / "stall.bin.part"
    assert part.exists() and part.stat().st_size == 1_000_000  # kept for a resume
    assert not (dest / "stall.bin").exists()


@pytest.mark.timeout(90)
def test_a_listing_that_never_answers_times_out(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with hostile_server(Scenario(stall_listing=True)) as server:
        out, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert 1 <= server.listings <= CALLS_PER_REQUEST, server.requests


@pytest.mark.timeout(120)
def test_an_endlessly_deep_listing_is_refused(kitmlflow, tmp_path: Path) -> None:
    def deeper(_directory: str) -> list[dict]:
        return [folder("d"), file("f.txt", 1)]

    with hostile_server(Scenario(listing=deeper)) as server:
        out, _ = run_download(kitmlflow, server, tmp_path)
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
        out, _ = run_download(kitmlflow, server, tmp_path)
        listings = server.listings
    assert out.code == BROKEN_SERVER, out.stderr
    assert "more than" in out.stderr
    assert listings <= 3_000 // 40 + 2 * 8  # the bound, plus what was in flight


@pytest.mark.timeout(120)
def test_a_huge_flat_folder_is_bounded(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_TREE_FILES", 10_000)
    flat = [file(f"f{i:06d}.bin", 1) for i in range(20_000)]
    with hostile_server(Scenario(listing=lambda d: flat if d == "" else [])) as server:
        out, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert "more than 10,000" in out.stderr
    assert not dest.exists() or real_files(dest) == set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["huge", "endless"])
def test_huge_json_documents_are_bounded(case: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_limits, "MAX_RESPONSE_BYTES", 8 * 2**20)
    scenario = Scenario(run_json_padding=40 * 2**20) if case == "huge" else Scenario(run_json_endless=True)
    with hostile_server(scenario) as server:
        out, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert "larger than" in out.stderr, out.stderr
    assert 1 <= len(requests_for(server, "GET /api/2.0/mlflow/runs/get")) <= CALLS_PER_REQUEST


@pytest.mark.timeout(120)
def test_a_document_that_trickles_forever_times_out(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read gets a byte within MLFLOW_HTTP_REQUEST_TIMEOUT, so only a deadline on the whole answer stops it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with hostile_server(Scenario(run_json_trickle=True)) as server:
        out, _ = run_download(kitmlflow, server, tmp_path)
    assert out.code == BROKEN_SERVER, out.stderr
    assert 1 <= len(requests_for(server, "GET /api/2.0/mlflow/runs/get")) <= CALLS_PER_REQUEST


# -- names the OS refuses (case 12) ------------------------------------------------------------------------
LONG_FOLDERS = ["d" * 250 + f"{i:02d}" for i in range(17)]  # 252 bytes each: a 4,309-byte path to deep.txt


def long_names_listing(directory: str) -> list[dict]:
    if directory == "":
        return [
            file("n" * 251, 3),  # its part file would be 256 bytes
            file("k" * 250, 4),  # the longest file name that downloads (the part file is 255)
            file("ok.txt", 2),
            folder("f" * 256),
            folder(LONG_FOLDERS[0]),
        ]
    if directory == "f" * 256:
        return [file("inside.txt", 1)]
    depth = len(directory.split("/"))
    return [folder(LONG_FOLDERS[depth])] if depth < len(LONG_FOLDERS) else [file("deep.txt", 1)]


LONG_CONTENTS = {"n" * 251: Content(b"nnn"), "k" * 250: Content(b"kkkk"), "ok.txt": Content(b"ok")}
LONG_EXCLUDED = {
    "n" * 251: "a file name of 251 bytes, longer than the 250 a download can write",
    "f" * 256 + "/inside.txt": "a folder name of 256 bytes, longer than the 255 a file system allows",
    "/".join(LONG_FOLDERS) + "/deep.txt": "a path of 4,309 bytes, longer than the 3,840 a download can write",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["download", "import"])
def test_names_the_os_refuses_are_excluded_before_any_download(command: str, kitmlflow, tmp_path: Path) -> None:
    """A proxied store can list them (its own disk may allow more, or it lies); before, the download raised
    OSError "File name too long": exit 1, a traceback, no JSON."""
    with hostile_server(Scenario(listing=long_names_listing, contents=LONG_CONTENTS)) as server:
        if command == "download":
            out, dest = run_download(kitmlflow, server, tmp_path)
        else:
            out = kitmlflow("import", server.uri(), "-t", "long:v1", "--yes", "--json", "--packer", "native")
        fetched = artifact_gets(server)
    assert out.code == 0, out.stderr
    assert {e["path"]: e["reason"] for e in out.json["excluded"]} == LONG_EXCLUDED
    assert sorted(f["path"] for f in out.json["selected"]) == ["k" * 250, "ok.txt"]
    assert len(fetched) == 2 and not any("n" * 251 in r or "deep.txt" in r or "inside" in r for r in fetched)
    if command == "download":
        assert real_files(dest) == {"k" * 250, "ok.txt"}
    else:
        assert out.json["kitfile"]


@pytest.mark.timeout(120)
def test_a_destination_too_deep_for_a_listed_path_is_exit_7_before_any_byte(kitmlflow, tmp_path: Path) -> None:
    """A path the plan keeps (3,800 bytes) that the chosen folder makes too long: refused with the folder to
    change, before the first request for a file; the --json document still ends the output."""
    folders = ["e" * 250] * 15

    def listing(directory: str) -> list[dict]:
        depth = len(directory.split("/")) if directory else 0
        return [folder(folders[depth])] if depth < len(folders) else [file("w.bin", 1)]

    deep_dest = tmp_path.joinpath(*["x" * 200] * 2)
    with hostile_server(Scenario(listing=listing)) as server:
        out = kitmlflow("download", server.uri(), "--dest", str(deep_dest), "--yes", "--json")
        fetched = artifact_gets(server)
    assert out.code == DOWNLOAD_FAILED, out.stderr
    assert "over the 4,096 a path may have" in out.json["error"]["message"]
    assert "--dest" in out.json["error"]["message"]
    assert fetched == []
    assert "Traceback" not in out.stderr


@pytest.mark.timeout(120)
def test_listed_names_print_as_listed_never_as_emoji_or_markup(kitmlflow) -> None:
    name = "a:b:c [red]x[bold] :smile:.txt"  # (no "[/red]": a name has no slash)
    with hostile_server(Scenario(listing=lambda d: [file(name, 2)] if d == "" else [])) as server:
        out = kitmlflow("import", server.uri(), "-t", "names:v1", "--dry-run")
    assert out.code == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if line.startswith("✓")]
    assert row.split()[1:6] == ["a:b:c", "[red]x[bold]", ":smile:.txt", "2", "B"], (
        row
    )  # one unit style at every size (issue 15)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("status", ["FAILED", "RUNNING", "KILLED", "SCHEDULED"])
@pytest.mark.parametrize("command", ["download", "import"])
def test_only_finished_runs_are_taken(status: str, command: str, kitmlflow, tmp_path: Path) -> None:
    """The exit-code contract: exit 5 for a run that is not FINISHED, with nothing downloaded (its artifacts may be
    incomplete). The listing says the files are there; the status alone must stop it."""
    listing = [file("w.bin", 2)]
    scenario = Scenario(listing=lambda d: listing if d == "" else [], contents={"w.bin": Content(b"ww")}, status=status)
    with hostile_server(scenario) as server:
        if command == "download":
            out, dest = run_download(kitmlflow, server, tmp_path)
            assert not dest.exists() or real_files(dest) == set()
        else:
            out = kitmlflow("import", server.uri(), "-t", "unfinished:v1", "--yes", "--json", "--packer", "native")
        fetched = artifact_gets(server)
    assert out.code == 5, out.stderr
    assert f"is {status}, not FINISHED" in out.json["error"]["message"]
    assert fetched == []


# -- endless pagination (case 24) ----------------------------------------------------------------------------
def same_token(_page: int) -> str:
    return "the-same-token"


def fresh_token(page: int) -> str:
    return f"token-{page}"


SMALL_RUN = {"listing": lambda d: [file("w.bin", 4)] if d == "" else [], "contents": {"w.bin": Content(b"wwww")}}


@pytest.mark.timeout(120)
def test_a_repeated_page_token_of_the_logged_models_is_exit_6_at_the_second_page(kitmlflow, tmp_path: Path) -> None:
    """Before: a server whose logged-models/search always sends a next_page_token looped forever (618
    requests in 30 s)."""
    with hostile_server(Scenario(**SMALL_RUN, page_token=same_token)) as server:
        out = kitmlflow("import", server.uri(), "-t", "pages:v1", "--yes", "--json", "--packer", "native")
        pages = server.pages_sent["logged-models"]
    assert out.code == BROKEN_SERVER, out.stderr
    message = out.json["error"]["message"]
    assert "sent a page token it had sent before while listing the logged models of run" in message
    assert "(after 2 pages)" in message
    assert pages == 2
    assert artifact_gets(server) == []  # nothing downloaded


@pytest.mark.timeout(120)
def test_a_new_page_token_every_time_stops_at_the_page_limit(
    kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_module, "MAX_PAGES", 40)
    with hostile_server(Scenario(**SMALL_RUN, page_token=fresh_token)) as server:
        out = kitmlflow("import", server.uri(), "-t", "pages:v1", "--yes", "--json", "--packer", "native")
        pages = server.pages_sent["logged-models"]
    assert out.code == BROKEN_SERVER, out.stderr
    assert "in more than 40 pages and still sends a next page token" in out.json["error"]["message"]
    assert pages == 40


@pytest.mark.timeout(120)
def test_slow_endless_pages_stop_at_the_deadline(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_module, "PAGES_DEADLINE_SECONDS", 1.0)
    with hostile_server(Scenario(**SMALL_RUN, page_token=fresh_token, page_delay=0.25)) as server:
        out = kitmlflow("import", server.uri(), "-t", "pages:v1", "--yes", "--json", "--packer", "native")
        pages = server.pages_sent["logged-models"]
    assert out.code == BROKEN_SERVER, out.stderr
    assert "took more than 1 s" in out.json["error"]["message"]
    assert 2 <= pages < pages_module.MAX_PAGES  # stopped by the clock, long before the page limit


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["same", "fresh"])
def test_endless_experiment_pages_are_refused(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wizard's first screen lists the experiments through the same walk."""
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.errors import ServerUnreachableError

    monkeypatch.setattr(pages_module, "MAX_PAGES", 30)
    with hostile_server(Scenario(page_token=same_token if mode == "same" else fresh_token)) as server:
        expected = (
            "had sent before while listing the experiments" if mode == "same" else "the experiments in more than 30"
        )
        with pytest.raises(ServerUnreachableError, match=expected):
            Catalogue(server.url).list_experiments()
        pages = server.pages_sent["experiments"]
    assert pages == (2 if mode == "same" else 30)


@pytest.mark.timeout(120)
async def test_the_wizard_stops_paging_runs_at_a_repeated_token(isolated_env: Path) -> None:
    """The runs screen loads a page per scroll to the end: a token seen before ends the paging (before, every
    scroll asked for the same page again)."""
    from kitmlflow_tui.core.reference import BrowseRef
    from kitmlflow_tui.tui.app import KitmlflowApp
    from tests.support.hostile_server import EXPERIMENT_ID
    from tests.support.tui import wait_for

    with hostile_server(Scenario(page_token=same_token)) as server:
        app = KitmlflowApp(BrowseRef(server.url, EXPERIMENT_ID), cursor_blink=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and len(app.screen.runs) == 1)
            screen = app.screen
            await wait_for(pilot, lambda: not screen.page_loading)
            for _ in range(4):
                screen.load_more()
                await wait_for(pilot, lambda: not screen.page_loading)
            searches = requests_for(server, "POST /api/2.0/mlflow/runs/search")
            assert screen.next_token is None
            assert len(screen.runs) == 1  # the repeated page added nothing
    assert len(searches) == 2


# -- presigned URLs (MLflow >= 3.9 signs URLs of a proxied cloud store) --------------------------------------
PRESIGNED_BYTES = 20_000_000  # above PRESIGNED_MIN_BYTES


def presigned_scenario(**store: object) -> tuple[Scenario, bytes]:
    data = os.urandom(PRESIGNED_BYTES)
    layout = {"": [file("big.bin", len(data)), file("small.txt", 3)]}
    contents = {"big.bin": Content(data), "small.txt": Content(b"abc")}
    return Scenario(listing=tree(layout), contents=contents, presigned=True, **store), data  # type: ignore[arg-type]


@pytest.mark.timeout(90)
def test_a_presigned_url_serves_a_large_file_from_the_store_and_the_signature_is_never_printed(
    kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store gets the URL and the headers the server signed, never the tracking server's credentials."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tracking-token-for-the-server-only")
    scenario, data = presigned_scenario()
    with hostile_server(scenario) as server:
        out, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == 0, out.stderr
    assert (dest / "big.bin").read_bytes() == data
    assert [path for path, _ in server.store_reads] and {path for path, _ in server.store_reads} == {"big.bin"}
    assert artifact_gets(server, "big.bin") == [], "the proxy served none of the large file"
    assert artifact_gets(server, "small.txt"), "a small file still comes through the proxy"
    assert "Bearer tracking-token-for-the-server-only" in server.authorizations
    assert server.store_authorizations == [], "the tracking credentials went to the store"
    assert SIGNATURE.split("=")[1] not in out.stdout + out.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("case", "store"),
    [
        ("refused", {"store_status": 403}),
        ("unreachable", {"store_unreachable": True}),
        ("broken", {"store_status": 500}),
    ],
)
def test_a_presigned_url_that_fails_falls_back_to_the_proxy(case: str, store: dict, kitmlflow, tmp_path: Path) -> None:
    """Whatever goes wrong on the store's side, the file comes through the proxy: presigned URLs can make a
    download faster, never fail it. A refused URL (expired) is asked for once more first."""
    scenario, data = presigned_scenario(**store)
    with hostile_server(scenario) as server:
        out, dest = run_download(kitmlflow, server, tmp_path)
    assert out.code == 0, (case, out.stderr)
    assert (dest / "big.bin").read_bytes() == data
    assert artifact_gets(server, "big.bin"), "the proxy served it"
    signed = [r for r in server.requests if "/mlflow-artifacts/presigned/" in r]
    assert len(signed) == (2 if case == "refused" else 1), signed
    assert len(server.store_reads) == (0 if case == "unreachable" else len(signed))
    assert SIGNATURE.split("=")[1] not in out.stdout + out.stderr


@pytest.mark.timeout(90)
def test_an_expired_presigned_url_is_signed_again_and_the_store_still_serves(kitmlflow, tmp_path: Path) -> None:
    scenario, data = presigned_scenario(store_expired_first=1)
    with hostile_server(scenario) as server:
        out, dest = run_download(kitmlflow, server, tmp_path, "--jobs", "1")
    assert out.code == 0, out.stderr
    assert (dest / "big.bin").read_bytes() == data
    assert len([r for r in server.requests if "/mlflow-artifacts/presigned/" in r]) == 2
    assert len(server.store_reads) == 2 and artifact_gets(server, "big.bin") == []
