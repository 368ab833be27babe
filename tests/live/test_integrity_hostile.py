"""Every byte verified (docs/reliability.md, "Integrity"), against the hostile server of tests/support/hostile_server.py.

A ranged answer that is not the range asked for is a failed attempt, never data; a resumed file joins only bytes of
the version of the object its journal names; a presigned store whose answers are wrong (status, range, size,
checksum) sends the file through the proxy; the store is read with only the headers a store reads, and never at an
unspecified or link-local address. Each case is bounded by ``pytest.mark.timeout`` and checked by what the server
saw and what landed on disk, never by timing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kitmlflow_tui.core.download.downloader import PARTIAL_DIR, RETRIES
from tests.support.hostile_server import ARTIFACTS, ROOT, SIGNATURE, Content, Scenario, file, hostile_server

SIZE = 4_000_000


def one_file(content: Content, **scenario: object) -> Scenario:
    listing = {"": [file("big.bin", len(content.data)), file("small.txt", 3)]}
    contents = {"big.bin": content, "small.txt": Content(b"abc")}
    return Scenario(listing=lambda d: listing.get(d, []), contents=contents, **scenario)  # type: ignore[arg-type]


def proxy_gets(server, name: str) -> list[str]:
    return [r for r in server.requests if r.startswith(f"GET {ARTIFACTS}/{ROOT}/{name}")]


def download(kitmlflow, server, dest: Path, *extra: str):
    out = kitmlflow("download", server.uri(), "--dest", str(dest), "--yes", "--json", *extra)
    assert "Traceback" not in out.stdout + out.stderr
    return out


# -- a ranged answer must be the range asked for (issue 20 item 5) -------------------------------------------------
STALL_AT = 1_000_000


@pytest.mark.timeout(90)
@pytest.mark.parametrize("lie", ["shifted", "no-content-range", "wrong-total", "tail-as-200"])
def test_a_ranged_answer_that_is_not_the_range_asked_for_is_never_data(
    lie: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer stalls half-way; every resumed (ranged) answer lies about its range: each is a failed
    attempt, the part keeps exactly the true bytes it had, and nothing lands under the real name."""
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, stall_after=STALL_AT, stalls=1, ranges=lie))) as server:
        out = download(kitmlflow, server, tmp_path / "dest")
        downloads = [d for d in server.downloads if d[0] == "big.bin"]
    assert out.code == 7, out.stderr
    assert "big.bin" in out.json["error"]["message"]
    assert downloads == [("big.bin", "")] + [("big.bin", f"bytes={STALL_AT}-")] * RETRIES
    assert (tmp_path / "dest" / PARTIAL_DIR / "big.bin.part").read_bytes() == data[:STALL_AT]
    assert not (tmp_path / "dest" / "big.bin").exists()


# -- a resume joins only bytes of one version (issue 20 item 7) ----------------------------------------------------
KEPT = 2_000_000  # over the 1 MiB from which a part's journal names its version


def interrupted(kitmlflow, server, dest: Path) -> None:
    """A download whose file stalls at KEPT every time: exit 7, the part and its journal kept."""
    out = download(kitmlflow, server, dest)
    assert out.code == 7, out.stderr
    assert (dest / PARTIAL_DIR / "big.bin.part").stat().st_size == KEPT


@pytest.mark.timeout(120)
def test_a_resume_of_the_same_version_moves_only_the_missing_bytes_and_says_which_version(
    kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, stall_after=KEPT))) as server:
        interrupted(kitmlflow, server, tmp_path / "dest")
        server.scenario.contents["big.bin"] = Content(data)
        before = len(server.downloads)
        out = download(kitmlflow, server, tmp_path / "dest")
        resumed = [d for d in server.downloads[before:] if d[0] == "big.bin"]
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest" / "big.bin").read_bytes() == data
    assert resumed == [("big.bin", f"bytes={KEPT}-")]
    assert out.json["downloaded_bytes"] == SIZE - KEPT  # small.txt was complete already


@pytest.mark.timeout(120)
@pytest.mark.parametrize("if_range", ["honoured", "ignored"])
def test_a_file_replaced_between_an_interrupted_download_and_its_rerun_starts_over(
    if_range: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact is replaced by another of the same size: the re-run must not join the old bytes to the new
    ones. A server that honours If-Range answers the whole new object; one that ignores it answers the range with
    the new ETag: either way the file starts over."""
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    with hostile_server(one_file(Content(old, stall_after=KEPT))) as server:
        interrupted(kitmlflow, server, tmp_path / "dest")
        server.scenario.contents["big.bin"] = Content(new, ignore_if_range=if_range == "ignored")
        out = download(kitmlflow, server, tmp_path / "dest")
    assert out.code == 0, out.stderr
    assert hashlib.sha256((tmp_path / "dest" / "big.bin").read_bytes()).digest() == hashlib.sha256(new).digest()
    assert out.json["downloaded_bytes"] >= SIZE  # the kept bytes were dropped, the whole file fetched anew


# -- presigned URLs: wrong answers go back to the proxy (issue 20 item 6) --------------------------------------------
PRESIGNED_BYTES = 40_000_000  # over PRESIGNED_MIN_BYTES and twice the split size: read as parallel ranges


def presigned(data: bytes, **store: object) -> Scenario:
    return one_file(Content(data), presigned=True, **store)


def assert_served_by_the_proxy_from_its_first_byte(server, out, dest: Path, data: bytes) -> None:
    assert out.code == 0, out.stderr
    assert hashlib.sha256((dest / "big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert server.store_reads, "the store was tried first"
    gets = [r for r in server.downloads if r[0] == "big.bin"]
    assert ("big.bin", "") in gets, f"the proxy did not serve the file from its first byte: {gets}"
    assert SIGNATURE.split("=")[1] not in out.stdout + out.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("case", "store"),
    [
        ("a short object", {"store_data": "short"}),
        ("a longer object", {"store_data": "long"}),
        ("shifted ranges", {"store_ranges": "shifted", "store_stall_after": STALL_AT}),
        ("ranges without Content-Range", {"store_ranges": "no-content-range", "store_stall_after": STALL_AT}),
        ("a Content-Range of another size", {"store_ranges": "wrong-total", "store_stall_after": STALL_AT}),
        ("a range answered as a whole object", {"store_ranges": "tail-as-200", "store_stall_after": STALL_AT}),
        ("an MD5 of other bytes", {"store_md5": "other"}),
    ],
)
def test_a_presigned_store_whose_answers_are_wrong_sends_the_file_through_the_proxy_from_its_first_byte(
    case: str, store: dict, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong status, range, size or checksum from the store: what the store wrote is dropped and the proxy serves
    the whole file (presigned URLs may make a download faster, never fail it nor mix its bytes). The range cases
    stall the store's first answer half-way, so that the next one is a range."""
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    data = os.urandom(PRESIGNED_BYTES)
    if store.get("store_data") == "short":
        store = {"store_data": {"big.bin": data[: PRESIGNED_BYTES // 2]}}
    elif store.get("store_data") == "long":
        store = {"store_data": {"big.bin": data + b"more"}}
    elif store.get("store_md5") == "other":
        store = {"store_md5": {"big.bin": hashlib.md5(b"other bytes").digest()}}
    with hostile_server(presigned(data, **store)) as server:
        out = download(kitmlflow, server, tmp_path / "dest", "--jobs", "4")
        assert_served_by_the_proxy_from_its_first_byte(server, out, tmp_path / "dest", data)


# -- presigned URLs: what the store is sent, and where (issue 20 item 3) --------------------------------------------
@pytest.mark.timeout(90)
def test_the_store_is_sent_only_the_headers_a_store_reads(kitmlflow, tmp_path: Path) -> None:
    """The server decides the presigned URL's headers: credentials, cookies, a Host of its choosing and proxy
    headers are not sent to the store; a store's own headers (an SSE-C key's algorithm) are."""
    data = os.urandom(20_000_000)
    signed = {
        "Authorization": "Bearer stolen-token-0123456789",
        "Cookie": "session=stolen-session",
        "Host": "admin.internal",
        "Proxy-Authorization": "Basic c3RvbGVuOnBhc3N3b3Jk",
        "X-Forwarded-For": "10.0.0.1",
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
    }
    with hostile_server(presigned(data, store_headers=signed)) as server:
        out = download(kitmlflow, server, tmp_path / "dest")
        seen = list(server.store_headers_seen)
        port = server.port
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest" / "big.bin").read_bytes() == data
    assert seen, "the store served the file"
    for headers in seen:
        assert not {"authorization", "cookie", "proxy-authorization", "x-forwarded-for"} & set(headers), headers
        assert headers["host"] == f"127.0.0.1:{port}"
        assert headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("host", ["0.0.0.0", "169.254.169.254"])
def test_a_presigned_url_of_an_unspecified_or_link_local_address_is_not_read(
    host: str, kitmlflow, tmp_path: Path
) -> None:
    """``0.0.0.0`` reaches this very machine on Linux (the hostile server's own port here); 169.254.169.254 is the
    cloud metadata service. Neither is a store: the file comes through the proxy, the URL is never read."""
    data = os.urandom(20_000_000)
    with hostile_server(presigned(data, store_host=host)) as server:
        out = download(kitmlflow, server, tmp_path / "dest")
        reads = list(server.store_reads)
        served = proxy_gets(server, "big.bin")
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest" / "big.bin").read_bytes() == data
    assert reads == [] and served
