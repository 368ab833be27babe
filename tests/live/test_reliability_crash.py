"""Case 1 of docs/reliability.md: the tracking server dies (SIGKILL) in the middle of an import.

This module has a server of its own (it kills it), seeded with one run: small files that complete at
once and one large file that is still moving when the server dies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kitmlflow_tui.core.download.downloader import RETRIES
from kitmlflow_tui.core.packing.direct import RESUME_DIR_NAME
from tests.support.cli import kitmlflow_subprocess_env
from tests.support.disk import bytes_of
from tests.support.servers import MlflowServer, mlflow_server, seed_run

LARGE = 300_000_000
SMALL = {"small/a.bin": 200_000, "small/b.bin": 300_000, "README.md": b"# crash test\n"}


@dataclass
class CrashServer:
    server: MlflowServer
    experiment_id: str
    run_id: str

    def uri(self) -> str:
        return f"mlflow://127.0.0.1:{self.server.port}/experiments/{self.experiment_id}/runs/{self.run_id}"


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashServer]:
    root = tmp_path_factory.mktemp("crash-server")
    with mlflow_server(root) as server:
        exp, run = seed_run(server.url, experiment_name="crash", files={**SMALL, "large.bin": b"0"})
        large = root / "art" / exp / run / "artifacts" / "large.bin"
        with open(large, "wb") as out:  # written straight into the store: logging it would take long
            for _ in range(LARGE // 10_000_000):
                out.write(os.urandom(10_000_000))
        yield CrashServer(server, exp, run)


def import_command(uri: str, tag: str) -> list[str]:
    return [sys.executable, "-m", "kitmlflow_tui.cli", "import", uri, "-t", tag, "--yes", "--json"]


def env_for(root: Path) -> dict[str, str]:
    return kitmlflow_subprocess_env(KITOPS_HOME=str(root / "kitops"), KITMLFLOW_CACHE_DIR=str(root / "cache"))


def tags_in(kitops: Path) -> dict:
    found: dict = {}
    for path in (kitops / "storage").glob("*-tags.json"):
        found.update(json.loads(path.read_text()))
    return found


def journal_kept_bytes(journal: Path) -> int:
    """The bytes of unfinished files a range journal says are written (ranges merged per file)."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    done: set[str] = set()
    for line in journal.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[0] == "D":
            done.add(fields[1])
        elif fields[0] == "R":
            ranges.setdefault(fields[1], []).append((int(fields[2]), int(fields[3])))
    kept = 0
    for index, found in ranges.items():
        if index in done:
            continue
        position = 0
        for start, end in sorted(found):
            kept += max(0, end - max(start, position))
            position = max(position, end)
    return kept


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ["direct", "folder"])
def test_server_killed_mid_download_then_the_rerun_moves_only_the_missing_bytes(
    crash_server: CrashServer, tmp_path: Path, path: str
) -> None:
    """``direct``: the bytes go into the layer blobs (a journal records them); ``folder``: ``--keep-download``,
    into the download cache's part files, then packed."""
    uri = crash_server.uri()
    command = [*import_command(uri, "crash:v1"), "--packer", "native", "--jobs", "2"]
    if path == "folder":
        command.append("--keep-download")

    # The reference: the same import, never interrupted, into another kit home.
    clean = subprocess.run(command, env=env_for(tmp_path / "clean"), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    clean_digest = json.loads(clean.stdout)["digest"]

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(command, env=env_for(crashed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = crashed / "cache"
    resume = crashed / "kitops" / "storage" / RESUME_DIR_NAME
    deadline = time.monotonic() + 120

    def written() -> int:  # bytes of large.bin on disk so far (allocated: split into ranges, it has holes)
        if path == "folder":
            return bytes_of(cache.glob("*/*/.kitmlflow-partial/large.bin.part"), allocated=True)
        return max((bytes_of([p], allocated=True) for p in resume.glob("*/*.tar")), default=0)

    while written() < 60_000_000:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the large file never started"
        time.sleep(0.01)
    crash_server.server.kill()
    try:
        stdout, stderr = proc.communicate(timeout=120)  # a hang guard, not a speed check
        assert proc.returncode in (6, 7), stderr
        # It gave up after a bounded number of tries, not when a clock ran out
        attempts = re.search(r"failed after (\d+) attempt", stderr)
        assert attempts is None or int(attempts.group(1)) <= RETRIES, stderr
        assert json.loads(stdout)["error"]["code"] == proc.returncode
        assert "large.bin" in stderr or "reach" in stderr
        assert tags_in(crashed / "kitops") == {}, "no tag after a failed import"
        if path == "folder":
            (run_cache,) = [p for p in cache.glob("*/*") if p.is_dir() and ".stage-" not in p.name]
            assert not list(cache.glob("*/*.stage-*")), "no stage folder left behind"
            completed = {str(p.relative_to(run_cache)) for p in run_cache.rglob("*") if p.is_file()}
            assert {"small/a.bin", "small/b.bin", "README.md"} <= completed, completed  # kept
            assert not (run_cache / "large.bin").exists()
            # split into parallel ranges, the part has holes and its range journal says what is there
            journals = list(run_cache.glob(".kitmlflow-partial/.journals/*.journal"))
            part = run_cache / ".kitmlflow-partial" / "large.bin.part"
            kept_part = sum(journal_kept_bytes(j) for j in journals) if journals else part.stat().st_size
        else:
            assert not any(p.is_file() for p in cache.rglob("*")), "no download folder"
            blobs = crashed / "kitops" / "storage" / "blobs" / "sha256"
            assert not blobs.exists() or not list(blobs.iterdir()), "no blob before it is complete"
            kept_part = sum(journal_kept_bytes(j) for j in resume.glob("*/*.journal"))
        assert kept_part >= 60_000_000
    finally:
        crash_server.server.restart()

    selected = LARGE + sum(v if isinstance(v, int) else len(v) for v in SMALL.values())
    resumed = subprocess.run(command, env=env_for(crashed), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["selected_bytes"] == selected
    # (the direct import reads the root README into memory again, for the Kitfile: it is written from there)
    again = len(SMALL["README.md"]) if path == "direct" else 0  # type: ignore[arg-type]
    assert doc["downloaded_bytes"] == LARGE - kept_part + again, "only the missing bytes move"
    assert doc["reused_bytes"] == selected - (LARGE - kept_part) - again
    assert doc["digest"] == clean_digest, "the resumed import is byte-for-byte the uninterrupted one"
    assert tags_in(crashed / "kitops")["v1"]["digest"] == clean_digest


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_server_killed_before_the_import_is_exit_6_fast(crash_server: CrashServer, tmp_path: Path) -> None:
    crash_server.server.kill()  # the module's last test: the fixture's teardown deals with the corpse
    done = subprocess.run(
        import_command(crash_server.uri(), "gone:v1"),
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 6, done.stderr
    assert "Cannot connect to the tracking server" in done.stderr  # the connect probe, not MLflow's retries
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.part"))
