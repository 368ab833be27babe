"""Cases 2, 3, 5, 6, 8, 9 and 11 of docs/reliability.md, against the session's real mlflow server (``live``)
and, for a disk that fills up mid-transfer, the hostile stand-in (it can hold a transfer half-way)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.packing.direct import RESUME_DIR_NAME
from kitmlflow_tui.core.packing.kit_cli import find_kit
from tests.support.cli import kitmlflow_subprocess_env
from tests.support.disk import bytes_of
from tests.support.hostile_server import Content, Scenario, file, hostile_server
from tests.support.kit_storage import check_storage_consistent
from tests.support.live import LiveServer
from tests.support.servers import seed_run

HUGE = 300_000_000


@dataclass
class BigRun:
    live: LiveServer
    experiment_id: str
    run_id: str
    small_run_id: str

    def uri(self, run_id: str | None = None) -> str:
        return f"mlflow://{self.live.host}/experiments/{self.experiment_id}/runs/{run_id or self.run_id}"


@pytest.fixture(scope="module")
def big(live: LiveServer) -> BigRun:
    """A run with a 300 MB file (long enough to interrupt on loopback) and a small run, in their own experiment."""
    exp, run_id = seed_run(
        live.url,
        experiment_name="reliability",
        files={"huge.bin": b"0", "model/MLmodel": b"flavors: {}\n", "small.pt": 300_000},
    )
    huge = live.root / "art" / exp / run_id / "artifacts" / "huge.bin"
    with open(huge, "wb") as out:
        for _ in range(HUGE // 10_000_000):
            out.write(os.urandom(10_000_000))
    _, small_run = seed_run(live.url, experiment_name="reliability", files={"w.bin": 2_000_000, "README.md": b"x"})
    return BigRun(live, exp, run_id, small_run)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kitmlflow_tui.cli", *args]


def env_for(root: Path, **extra: str) -> dict[str, str]:
    return kitmlflow_subprocess_env(KITOPS_HOME=str(root / "kitops"), KITMLFLOW_CACHE_DIR=str(root / "cache"), **extra)


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited ({proc.returncode}) before {what}: {err[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def tags_in(kitops: Path) -> dict:
    found: dict = {}
    for path in (kitops / "storage").glob("*-tags.json"):
        found.update(json.loads(path.read_text()))
    return found


def leftovers(root: Path) -> list[str]:
    """Temporary files that must never survive an interrupted import."""
    temp = root / "kitops" / "storage" / ".kitmlflow-tmp"
    found = [str(p) for p in temp.iterdir()] if temp.exists() else []
    found += [str(p) for p in (root / "cache").glob("*/.*.stage-*")]
    return found


def the_part(root: Path) -> Path | None:
    return next(iter((root / "cache").glob("*/*/.kitmlflow-partial/huge.bin.part")), None)


# -- case 3: SIGINT ------------------------------------------------------------------------------------
def partial_blob_bytes(root: Path) -> int:
    """Bytes a direct import has put into its partial layer blobs so far (allocated: the blobs are sparse)."""
    resume = root / "kitops" / "storage" / RESUME_DIR_NAME
    return bytes_of(resume.glob("*/*.tar"), allocated=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", ["direct", "folder"])
def test_sigint_during_the_download_of_an_import(big: BigRun, tmp_path: Path, path: str) -> None:
    """``direct``: the bytes go into partial layer blobs; ``folder`` (``--keep-download``): into the cache."""
    command = cli("import", big.uri(), "-t", "sigint:v1", "--yes", "--json", "--packer", "native", "--jobs", "1")
    if path == "folder":
        command.append("--keep-download")
    proc = subprocess.Popen(command, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def kept() -> int:
        if path == "direct":
            return partial_blob_bytes(tmp_path)
        part = the_part(tmp_path)
        return part.stat().st_size if part is not None else 0

    wait_for(lambda: kept() > 20_000_000, proc, "the download")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert json.loads(out)["error"]["code"] == 130
    assert leftovers(tmp_path) == []
    assert kept() > 20_000_000, "the resumable bytes are kept"
    if path == "direct":
        journals = list((tmp_path / "kitops" / "storage" / RESUME_DIR_NAME).glob("*/*.journal"))
        assert any(b"\nR " in j.read_bytes() for j in journals), "and the journal that says where they are"
        blobs = tmp_path / "kitops" / "storage" / "blobs" / "sha256"
        assert not blobs.exists() or not list(blobs.iterdir()), "no blob before it is complete"
    assert tags_in(tmp_path / "kitops") == {}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("packer", ["native", "kit"])
def test_sigint_during_the_pack(big: BigRun, tmp_path: Path, packer: str) -> None:
    if packer == "kit" and find_kit() is None:
        pytest.skip("the kit binary was not found (set KIT_BIN or put kit on the PATH) - kit pack not interrupted")
    # --keep-download: the folder path, whose pack of the downloaded folder is what is interrupted here
    command = cli("import", big.uri(), "-t", "sigint:v1", "--yes", "--json", "--packer", packer, "--keep-download")
    env = env_for(tmp_path)
    cache = tmp_path / "cache"
    # First the import's download alone (into the folder the import caches the run in), so that the
    # interrupted run below goes straight to packing.
    run_cache = cache / hashlib.sha256(big.live.url.encode()).hexdigest()[:12] / big.run_id
    first = subprocess.run(cli("download", big.uri(), "--dest", str(run_cache), "--yes"), env=env, capture_output=True)
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if packer == "native":
        temp = tmp_path / "kitops" / "storage" / ".kitmlflow-tmp"

        def packing() -> bool:
            return any(bytes_of([p]) > 1_000_000 for p in temp.glob("layer-*"))

    else:

        def packing() -> bool:
            return any(child.name() == "kit" for child in psutil.Process(proc.pid).children())

    wait_for(packing, proc, "the pack")
    if packer == "kit":
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert leftovers(tmp_path) == []
    assert (run_cache / "huge.bin").stat().st_size == HUGE, "the complete download is kept for the next run"
    assert tags_in(tmp_path / "kitops") == {}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["downloaded_bytes"] == 0
    check_storage_consistent(tmp_path / "kitops")


# -- case 2: SIGKILL of the whole CLI while it packs ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ["direct", "folder"])
def test_sigkill_at_random_points_of_a_native_pack(big: BigRun, tmp_path: Path, path: str) -> None:
    """``folder`` (``--keep-download``): killed while it packs the downloaded folder; ``direct``: while the bytes
    go into the partial layer blobs, or while they are hashed and renamed."""
    command = cli("import", big.uri(), "-t", "killed:v1", "--yes", "--json", "--packer", "native")
    if path == "folder":
        command.append("--keep-download")
    env = env_for(tmp_path)
    home = tmp_path / "kitops"
    cache = tmp_path / "cache"
    kit = find_kit()
    rng = random.Random(5)
    kills = 0
    temp = home / "storage" / ".kitmlflow-tmp"

    def packed_bytes() -> int:  # what the packer has written to its temporary or partial blobs so far
        return bytes_of(temp.glob("*")) + partial_blob_bytes(tmp_path)

    def started() -> bool:
        if path == "folder":
            return bool(list(cache.glob("*/.*.stage-*")))
        return (home / "storage" / RESUME_DIR_NAME).is_dir()

    for _ in range(6):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(started, proc, "the stage or the partial blobs", timeout=180)
        # A random point inside the pack itself, measured in bytes written rather than in seconds: once
        # the blobs exist a re-pack is quick, and a sleep would often land after it ended.
        target = rng.uniform(0, HUGE)
        while proc.poll() is None and packed_bytes() < target:
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        check_storage_consistent(home)
        if kit:
            listed = subprocess.run([kit, "list", "--config", str(home)], capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
    assert kills >= 3, f"only {kills} of the runs were still packing when killed"
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    digest = json.loads(final.stdout)["digest"]
    assert tags_in(home)["v1"]["digest"] == digest
    assert check_storage_consistent(home) >= 1
    assert leftovers(tmp_path) == [], "a later pack clears what killed ones left"
    resume = home / "storage" / RESUME_DIR_NAME
    assert not resume.exists() or not any(p.is_file() for p in resume.rglob("*")), (
        "the finished import's resume folder goes"
    )
    if kit:
        listed = subprocess.run([kit, "list", "--config", str(home)], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "v1" in listed.stdout, listed.stderr


# -- case 11: concurrent imports into one storage ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_concurrent_imports_and_a_reader_share_one_storage(big: BigRun, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    home = tmp_path / "kitops"
    jobs = [
        ("same-run:a", big.uri(big.small_run_id)),
        ("same-run:b", big.uri(big.small_run_id)),
        ("other-run:c", big.live.uri()),
        ("big-run:d", big.uri()),
    ]
    kit = find_kit()
    failures: list[str] = []
    reads = 0
    stop = threading.Event()

    def read_loop() -> None:
        nonlocal reads
        while not stop.is_set():
            listed = subprocess.run([kit, "list", "--config", str(home)], capture_output=True, text=True, timeout=60)
            reads += 1
            if listed.returncode != 0:
                failures.append(listed.stderr)

    reader = threading.Thread(target=read_loop, daemon=True) if kit else None
    if reader:
        reader.start()
    procs = [
        subprocess.Popen(
            cli("import", uri, "-t", tag, "--yes", "--json", "--packer", "native"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, uri in jobs
    ]
    digests = {}
    try:
        for (tag, _), proc in zip(jobs, procs, strict=True):
            out, err = proc.communicate(timeout=400)
            assert proc.returncode == 0, (tag, err)
            digests[tag] = json.loads(out)["digest"]
    finally:
        stop.set()
        if reader:
            reader.join(60)
    tags = {}
    for path in (home / "storage").glob("*-tags.json"):
        for name, descriptor in json.loads(path.read_text()).items():
            tags[name] = descriptor["digest"]
    assert tags == {
        "a": digests["same-run:a"],
        "b": digests["same-run:b"],
        "c": digests["other-run:c"],
        "d": digests["big-run:d"],
    }
    assert check_storage_consistent(home) == 4
    assert leftovers(tmp_path) == []
    if kit:
        assert failures == [], failures[:3]
        assert reads >= 3
        print(f"kit list ran {reads} times during the imports, never failing")


# -- case 5: unreachable servers --------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_tls_against_a_plain_http_server_is_exit_6_and_suggests_mlflow_http(live: LiveServer, kitmlflow) -> None:
    assert live.server is not None
    offset = live.server.log_offset()
    out = kitmlflow(
        "import", f"mlflow+https://{live.host}/runs/{live.runs['full']}", "-t", "x:1", "--dry-run", "--json"
    )
    assert out.code == 6, out.stderr
    # Each TLS handshake is one request the plain server could not parse: MLflow's try and retries, no more.
    seen = live.server.requests_since(offset)
    assert 1 <= len(seen) <= 3 and set(seen) == {"INVALID"}, seen
    assert "mlflow+http://" in out.json["error"]["message"]
    assert "Traceback" not in out.stderr


@pytest.mark.timeout(180)
def test_unreachable_servers_fail_fast_for_download_and_import(kitmlflow, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    for uri in (f"mlflow://127.0.0.1:{closed}/runs/abc", "mlflow://no-such-host.invalid/runs/abc"):
        for args in (
            ("download", uri, "--dest", str(tmp_path / "d"), "--yes", "--json"),
            ("import", uri, "-t", "x:1", "--yes", "--json"),
        ):
            out = kitmlflow(*args)
            assert out.code == 6 and out.json["error"]["code"] == 6, (args, out.stderr)
            # kitmlflow's own connect probe (or name lookup) answered, not MLflow's minutes of retries
            assert "Cannot connect" in out.stderr or "Cannot resolve" in out.stderr, out.stderr
    assert not (tmp_path / "d").exists()


# -- case 6: unfinished runs --------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["failed", "running", "killed"])
def test_import_of_an_unfinished_run_is_exit_5_and_downloads_nothing(
    live: LiveServer, kitmlflow, isolated_env: Path, role: str
) -> None:
    out = kitmlflow("import", live.uri(role), "-t", "unfinished:v1", "--yes", "--json", "--packer", "native")
    assert out.code == 5, out.stderr
    assert role.upper() in out.json["error"]["message"]
    cache = isolated_env / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
    assert tags_in(isolated_env / "kitops") == {}


# -- case 12: a selection of zero files -------------------------------------------------------------------
@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
def test_an_import_that_selects_nothing_is_exit_2_with_the_nearest_reasons(
    live: LiveServer, kitmlflow, isolated_env: Path, dry_run: bool
) -> None:
    args = ["import", live.uri(), "-t", "empty:v1", "--yes", "--json", "--packer", "native", "--include", "*.nothing"]
    out = kitmlflow(*args, *(["--dry-run"] if dry_run else []))
    assert out.code == 2, out.stderr
    message = out.json["error"]["message"]
    files = re.fullmatch(
        r"Nothing selected: all (\d+) files of the run are left out \((\d+) matches no include pattern\)\.",
        message.splitlines()[0],
    )
    assert files and files.group(1) == files.group(2), message
    assert "Largest left out: weights/big.safetensors (8.0 MB, matches no include pattern)" in message
    assert tags_in(isolated_env / "kitops") == {}
    assert not (isolated_env / "cache").exists() or not [p for p in (isolated_env / "cache").rglob("*") if p.is_file()]


# -- case 23: a YAML bomb as the run's MLmodel ----------------------------------------------------------------
@pytest.mark.timeout(180)
@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
def test_a_billion_laughs_mlmodel_is_refused_with_exit_8_naming_it(
    live: LiveServer, kitmlflow, isolated_env: Path, dry_run: bool
) -> None:
    """Before: 1 KB of nested aliases went through yaml.safe_load, 2.3 GB and a MemoryError after 39 s."""
    from tests.support.yaml_bombs import billion_laughs

    bomb = billion_laughs().encode()
    assert len(bomb) < 1024
    exp, run_id = seed_run(
        live.url, experiment_name="yaml-bomb", files={"model/MLmodel": bomb, "model/model.pkl": b"w" * 100}
    )
    uri = f"mlflow://{live.host}/experiments/{exp}/runs/{run_id}"
    out = kitmlflow("import", uri, "-t", "bomb:v1", "--yes", "--json", "--packer", "native", *(["--dry-run"] * dry_run))
    assert out.code == 8, out.stderr
    message = out.json["error"]["message"]
    first, hint = message.splitlines()
    assert re.fullmatch(
        r"The run's model/MLmodel cannot be read safely at line \d+, column \d+: refused: more .+\.", first
    )
    assert "--exclude" in hint
    assert "MemoryError" not in out.stderr and "Traceback" not in out.stderr
    assert tags_in(isolated_env / "kitops") == {}


@pytest.mark.parametrize(("cap", "kept"), [("2000000", True), ("1999999", False), ("2MB", True)])
def test_a_file_of_exactly_the_size_cap_is_kept(live: LiveServer, kitmlflow, cap: str, kept: bool) -> None:
    """checkpoints/best.ckpt of the live run is 2,000,000 bytes: the cap is "larger files are left out"."""
    out = kitmlflow("import", live.uri(), "-t", "cap:v1", "--dry-run", "--json", "--max-file-size", cap)
    assert out.code == 0, out.stderr
    assert ("checkpoints/best.ckpt" in {f["path"] for f in out.json["selected"]}) is kept
    larger = {e["path"] for e in out.json["excluded"]}
    assert "weights/big.safetensors" in larger and ("checkpoints/best.ckpt" in larger) is not kept


def test_a_download_that_selects_nothing_is_exit_2_counting_each_reason(
    live: LiveServer, kitmlflow, tmp_path: Path
) -> None:
    dest = tmp_path / "d"
    out = kitmlflow(
        "download", live.uri(), "--dest", str(dest), "--yes", "--json", "--max-file-size", "0", "--exclude", "empty.txt"
    )
    assert out.code == 2, out.stderr
    first, hint = out.json["error"]["message"].splitlines()
    assert first.startswith("Nothing selected: all ") and first.endswith(
        " over the size cap of 0 B; 1 excluded by pattern 'empty.txt')."
    ), first
    assert hint.startswith("Largest left out: weights/big.safetensors (8.0 MB, over the size cap (8.0 MB > 0 B)), ")
    assert not dest.exists()


# -- case 8: a file whose size changed since the listing -------------------------------------------------
def test_an_import_whose_file_changed_size_packs_nothing(live: LiveServer, isolated_env: Path) -> None:
    from kitmlflow_tui.core import pipeline
    from kitmlflow_tui.core.errors import DownloadError
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.core.selection.plan import FilterSpec

    _, run_id = seed_run(live.url, experiment_name="reliability", files={"shrinks.bin": 5000, "ok.txt": b"ok"})
    session = pipeline.plan(parse_reference(f"mlflow://{live.host}/runs/{run_id}"), FilterSpec())
    (live.root / "art" / session.resolved.run.experiment_id / run_id / "artifacts" / "shrinks.bin").write_bytes(b"x")
    with pytest.raises(DownloadError) as caught:
        pipeline.run_import(
            session, pipeline.ImportOptions(tag=parse_modelkit_reference("changed:v1"), packer="native")
        )
    assert caught.value.exit_code == 7 and "shrinks.bin" in caught.value.message
    assert tags_in(isolated_env / "kitops") == {}
    assert not list((isolated_env / "cache").rglob("shrinks.bin"))
    assert not list((isolated_env / "cache").glob("*/.*.stage-*"))


# -- case 9: not enough disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator:
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}) - disk-full cases not run"
            )
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("path", ["direct", "folder"])
def test_not_enough_disk_is_refused_before_the_first_byte(
    live: LiveServer, kitmlflow, small_disk, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """``folder`` (``--keep-download``): the download cache is on the small disk; ``direct``: kit's storage is."""
    disk = small_disk(f"{path}-disk", "8m")
    extra: tuple[str, ...] = ()
    if path == "folder":
        monkeypatch.setenv("KITMLFLOW_CACHE_DIR", str(disk))
        extra = ("--keep-download",)
    else:
        monkeypatch.setenv("KITOPS_HOME", str(disk / "kitops"))
    out = kitmlflow("import", live.uri(), "-t", "full:v1", "--yes", "--json", "--packer", "native", *extra)
    assert out.code == 7, out.stderr
    assert "Not enough disk space" in out.json["error"]["message"]
    assert not [p for p in disk.rglob("*") if p.is_file() and not p.name.endswith(".lock")], "not a byte written"
    dest = small_disk("dest-disk", "8m")
    out = kitmlflow("download", live.uri(), "--dest", str(dest / "d"), "--yes", "--json")
    assert out.code == 7 and "Not enough disk space" in out.stderr
    assert not [p for p in dest.rglob("*") if p.is_file()]


@pytest.mark.parametrize("over", [0, 1], ids=["needed+margin-is-free", "one-byte-short"])
def test_the_disk_check_keeps_its_margin_to_the_byte(live: LiveServer, kitmlflow, small_disk, over: int) -> None:
    """A real 20 MiB tmpfs, and a run whose file is sized from its free space: with exactly needed + margin
    free the download goes ahead; one byte less (free = needed + margin - 1) is refused before the first byte."""
    from kitmlflow_tui.core.download.downloader import DISK_MARGIN_BYTES

    dest = small_disk(f"exact-disk-{over}", "20m") / "d"
    dest.mkdir()
    free = shutil.disk_usage(dest).free
    size = free - DISK_MARGIN_BYTES + over
    _, run_id = seed_run(live.url, experiment_name="disk-margin", files={"exact.bin": size})
    assert shutil.disk_usage(dest).free == free
    out = kitmlflow("download", f"mlflow://{live.host}/runs/{run_id}", "--dest", str(dest), "--yes", "--json")
    if over:
        assert out.code == 7, out.stderr
        assert "Not enough disk space" in out.json["error"]["message"]
        assert not [p for p in dest.rglob("*") if p.is_file()]
    else:
        assert out.code == 0, out.stderr
        assert (dest / "exact.bin").stat().st_size == size


@pytest.mark.timeout(120)
def test_a_disk_that_fills_up_during_the_transfer_is_exit_7(small_disk, tmp_path: Path) -> None:
    disk = small_disk("filling", "48m")
    data = os.urandom(24_000_000)  # 24 MB + the 16 MB margin fit in 48 MB: the check lets it through
    gate = threading.Event()
    scenario = Scenario(
        listing=lambda d: [file("big.bin", len(data))] if d == "" else [],
        contents={"big.bin": Content(data, stall_after=2_000_000, gate=gate)},
    )
    with hostile_server(scenario) as server:
        proc = subprocess.Popen(
            cli("download", server.uri(), "--dest", str(disk / "d"), "--yes", "--json"),
            env=env_for(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        part = disk / "d" / ".kitmlflow-partial" / "big.bin.part"
        wait_for(lambda: part.exists() and part.stat().st_size >= 2_000_000, proc, "the first 2 MB")
        with open(disk / "another-writer.bin", "wb", buffering=0) as filler:  # someone else takes the rest of the disk
            try:
                while True:
                    filler.write(b"\0" * 1_000_000)
            except OSError:
                pass
        gate.set()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err
    message = json.loads(out)["error"]["message"]
    assert "disk filled up" in message and "big.bin" in message
    assert "Traceback" not in err
    assert not (disk / "d" / "big.bin").exists(), "nothing half-written under the real name"
