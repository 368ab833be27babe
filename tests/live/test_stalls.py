"""The stall detector (docs/reliability.md, "Stalls"), against the hostile server of tests/support/hostile_server.py.

A transfer that goes silent after its first byte is aborted after KITMLFLOW_STALL_SECONDS and resumed from the
offset it reached, with a ranged request; a slow *first* byte keeps MLflow's request timeout. Each case is bounded
by ``pytest.mark.timeout`` and checked by what the server saw (requests and their Range headers), never by timing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kitmlflow_tui.core import pipeline
from kitmlflow_tui.core.download import downloader as download_module
from kitmlflow_tui.core.errors import InterruptedByUser
from kitmlflow_tui.core.reference import parse_reference
from kitmlflow_tui.core.selection.plan import FilterSpec
from tests.support.hostile_server import Content, Scenario, file, hostile_server

SIZE = 4_000_000
STALL_AT = 1_000_000


def one_file(content: Content) -> Scenario:
    return Scenario(listing=lambda d: [file("big.bin", SIZE)] if d == "" else [], contents={"big.bin": content})


@pytest.mark.timeout(60)
def test_a_stall_costs_one_stall_limit_and_resumes_from_its_offset(
    kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's request timeout alone would take 120 s per stalled read: only the detector finishes in time.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, stall_after=STALL_AT, stalls=1))) as server:
        out = kitmlflow("download", server.uri(), "--dest", str(tmp_path / "dest"), "--yes", "--json")
        downloads = list(server.downloads)
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest" / "big.bin").read_bytes() == data
    assert downloads == [("big.bin", ""), ("big.bin", f"bytes={STALL_AT}-")]
    assert out.json["downloaded_bytes"] == SIZE  # no byte moved twice


@pytest.mark.timeout(60)
def test_a_slow_first_byte_is_not_a_stall(kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxied object from a remote store reaches the client only after the server fetched it all."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, first_byte_delay=3.0))) as server:
        out = kitmlflow("download", server.uri(), "--dest", str(tmp_path / "dest"), "--yes", "--json")
        downloads = list(server.downloads)
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest" / "big.bin").read_bytes() == data
    assert downloads == [("big.bin", "")]


@pytest.mark.timeout(90)
def test_stalls_without_progress_give_up_after_the_retries(
    kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt stalls at the same byte: the first moved bytes, then RETRIES attempts in a row move none."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "1")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, stall_after=STALL_AT))) as server:
        out = kitmlflow("download", server.uri(), "--dest", str(tmp_path / "dest"), "--yes", "--json")
        downloads = list(server.downloads)
    assert out.code == 7, out.stderr
    assert "big.bin" in out.json["error"]["message"]
    assert downloads == [("big.bin", "")] + [("big.bin", f"bytes={STALL_AT}-")] * download_module.RETRIES
    part = tmp_path / "dest" / ".kitmlflow-partial" / "big.bin.part"
    assert part.stat().st_size == STALL_AT  # kept for the next run


class _CancelWhenStalled(pipeline.Observer):
    """Sets the cancel once the transfer has bytes and the server has gone silent (its read is blocked then)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.timer: threading.Timer | None = None

    def progress(self, event) -> None:
        if event.kind == "bytes" and self.timer is None:
            self.timer = threading.Timer(0.5, self.cancel.set)
            self.timer.start()


@pytest.mark.timeout(30)
def test_a_cancel_ends_a_read_blocked_in_a_stall(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither limit would end the read within the test's timeout: only the cancel can.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", "120")
    data = os.urandom(SIZE)
    with hostile_server(one_file(Content(data, stall_after=STALL_AT))) as server:
        session = pipeline.plan(parse_reference(server.uri()), FilterSpec())
        observer = _CancelWhenStalled(session.cancel)
        with pytest.raises(InterruptedByUser, match="completed files are kept"):
            pipeline.download(session, isolated_env / "dest", observer=observer)
        downloads = list(server.downloads)
    assert downloads == [("big.bin", "")]
    assert (isolated_env / "dest" / ".kitmlflow-partial" / "big.bin.part").stat().st_size == STALL_AT


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_stall_limit_is_bad_input(value: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", value)
    with hostile_server(one_file(Content(os.urandom(10)))) as server:
        out = kitmlflow("download", server.uri(), "--dest", str(tmp_path / "dest"), "--yes", "--json")
    assert out.code == 2, out.stderr
    assert "KITMLFLOW_STALL_SECONDS" in out.json["error"]["message"]
