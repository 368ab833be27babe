"""The packers, on real files: determinism, tar contents, memory, crash safety, concurrency, and
(when the real ``kit`` binary is found through ``KIT_BIN`` or the PATH) what kit makes of it all."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, PackError
from kitmlflow_tui.core.modelkit_reference import parse_model_reference, parse_modelkit_reference
from kitmlflow_tui.core.packing import (
    choose_packer,
    find_kit,
    gojson,
    pack_native,
    pack_with_kit,
    resolve_kit_home,
)
from kitmlflow_tui.core.packing.tar_format import tar_header
from tests.support.fuzz import examples
from tests.support.kit_storage import blob, check_storage_consistent, kit_home, manifest_of, storage_of, tags_file

REPO_ROOT = Path(__file__).resolve().parents[2]

KITFILE: dict[str, Any] = {
    "manifestVersion": "1.0.0",
    "package": {
        "name": "fixture-model",
        "version": "1.0.0",
        "description": "A <fixture> & friends",
        "license": "Apache-2.0",
        "authors": ["alice", "bob"],
    },
    "model": {
        "name": "clf",
        "path": "models/model.pkl",
        "framework": "sklearn",
        "parameters": {"mlflow": {"run_id": "abc", "lr": 0.001, "tiny": 1e-7, "steps": 10, "ok": True}},
        "parts": [{"name": "cfg", "path": "models/config.json", "type": "config"}, {"path": "models/extra"}],
    },
    "datasets": [{"name": "train", "path": "data", "parameters": {"rows": 2}}],
    "code": [{"path": ".", "description": "everything else"}],
    "docs": [{"path": "README.md"}],
}


def build_fixture(root: Path) -> Path:
    """A folder exercising kit's walk: nesting, long and non-ASCII names, modes, ignores, symlinks."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    (root / "models" / "extra").mkdir(parents=True)
    (root / "models" / "model.pkl").write_bytes(rng.randbytes(70_000))
    (root / "models" / "config.json").write_text('{"a": 1}')
    (root / "models" / "extra" / "weights.bin").write_bytes(rng.randbytes(5000))
    (root / "models" / "extra" / "v1..2.bin").write_bytes(b"kit drops names with '..' below a layer")
    (root / "models" / "model.pkl.bak").write_bytes(b"kit drops paths that start with another entry's path")
    (root / "data" / "sub" / "empty").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "data" / "sub" / "zero.txt").write_bytes(b"")
    (root / "main.py").write_text("print('main')\n")
    (root / "README.md").write_text("# readme\n")
    long_dir = root / "src" / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 90 + ".py")).write_text("long\n")
    (root / "src" / ("x" * 120)).write_text("a name over 100 bytes\n")
    (root / "src" / "ünïcødé-名前.py").write_text("unicode\n")
    (root / "src" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "src" / "run.sh", 0o4755)
    (root / "src" / "sticky").mkdir()
    os.chmod(root / "src" / "sticky", 0o1777)
    (root / "src" / "private.txt").write_text("ro\n")
    os.chmod(root / "src" / "private.txt", 0o400)
    os.symlink("main.py", root / "src" / "link.py")
    (root / "src" / "__pycache__").mkdir()
    (root / "src" / "__pycache__" / "x.pyc").write_bytes(b"pyc")
    (root / "src" / "keep.log").write_text("keep\n")
    (root / "debug.log").write_text("dropped by .kitignore\n")
    (root / "sub").mkdir()
    (root / "sub" / "Kitfile").write_text("a nested Kitfile is packed\n")
    (root / "Kitfile").write_text("the root Kitfile is never packed\n")
    (root / ".kitignore").write_text("# comment\n**/__pycache__\n*.log\n!src/keep.log\n")
    return root


@pytest.fixture
def fixture_folder(tmp_path: Path) -> Path:
    return build_fixture(tmp_path / "ctx")


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getmembers()


def tar_read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile(name)
        assert member is not None
        return member.read()


# -- references and storage location ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mymodel:v1", ("localhost", "mymodel", "v1")),
        ("mymodel", ("localhost", "mymodel", "latest")),
        ("org/name:1.0", ("localhost", "org/name", "1.0")),
        ("localhost/name:v1", ("localhost", "localhost/name", "v1")),  # as kit reads it
        ("ghcr.io/org/model:v2", ("ghcr.io", "org/model", "v2")),
        ("localhost:5000/model:tag_1", ("localhost:5000", "model", "tag_1")),
        ("a.b:v1", ("localhost", "a.b", "v1")),
    ],
)
def test_parse_model_reference(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_model_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "MyModel:v1", "model:", "model:-bad", "model:v1,v2", "model@sha256:" + "0" * 64, "-model:v1", "bad__/x"],
)
def test_parse_model_reference_rejects(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_model_reference(text)


def test_kit_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "kh"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_kit_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_kit_home() == tmp_path / "kh"
    monkeypatch.delenv("KITOPS_HOME")
    if sys.platform.startswith("linux"):
        assert resolve_kit_home() == tmp_path / "xdg" / "kitops"
        monkeypatch.delenv("XDG_DATA_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert resolve_kit_home() == tmp_path / "home" / ".local" / "share" / "kitops"


def test_go_json_matches_go_encoding() -> None:
    value = {"b": 1, "a": gojson.GoMap({"z": 0.001, "y": 1e-7, "x": 1e21, "é": "<&>\u2028\x01\n"}), "n": None}
    expected = '{"b":1,"a":{"x":1e+21,"y":1e-7,"z":0.001,"é":"\\u003c\\u0026\\u003e\\u2028\\u0001\\n"},"n":null}'
    assert gojson.dumps(value) == expected.encode()
    assert gojson.encode_float(1.0) == "1"
    assert gojson.encode_float(123456789.0) == "123456789"
    assert gojson.encode_float(-0.0) == "-0"


# -- the native packer, without kit ------------------------------------------------------------------
def test_native_pack_is_deterministic(fixture_folder: Path, tmp_path: Path) -> None:
    first = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=tmp_path / "a")
    second = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=tmp_path / "b")
    again = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=tmp_path / "a")
    assert first.digest == second.digest == again.digest
    assert first.config_digest == second.config_digest
    assert first.reference == "fixture:v1"
    assert first.packer == "native"
    assert first.layer_count == 6
    assert first.left_out == ("models/extra/v1..2.bin", "models/model.pkl.bak", "src/link.py")
    manifest = manifest_of(tmp_path / "a", first.digest)
    assert first.size == sum(layer["size"] for layer in manifest["layers"])
    for name in ("index.json", "oci-layout"):
        assert (storage_of(tmp_path / "a") / name).read_bytes() == (storage_of(tmp_path / "b") / name).read_bytes()
    assert check_storage_consistent(tmp_path / "a") == 1
    assert not list((storage_of(tmp_path / "a") / ".kitmlflow-tmp").iterdir())


def test_native_pack_layout_and_layers(fixture_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=home)
    manifest = manifest_of(home, result.digest)
    assert list(manifest) == ["schemaVersion", "config", "layers", "annotations"]  # no mediaType, like kit
    assert manifest["annotations"] == {"ml.kitops.modelkit.cli-version": "kitmlflow-0.1.0"}
    assert manifest["config"]["mediaType"] == "application/vnd.kitops.modelkit.config.v1+json"
    kinds = [layer["mediaType"].split(".")[3] for layer in manifest["layers"]]
    assert kinds == ["model", "modelpart", "modelpart", "code", "dataset", "docs"]
    assert all(layer["mediaType"].endswith(".v1.tar") for layer in manifest["layers"])

    config = json.loads(blob(home, manifest["config"]["digest"]))
    assert list(config) == ["manifestVersion", "package", "model", "code", "datasets", "docs"]
    assert list(config["model"]) == ["name", "path", "framework", "parts", "parameters", "digest", "diffId"]
    entries = [config["model"], *config["model"]["parts"], *config["code"], *config["datasets"], *config["docs"]]
    assert [entry["digest"] for entry in entries] == [layer["digest"] for layer in manifest["layers"]]
    assert all(entry["diffId"] == entry["digest"] for entry in entries)

    def members(index: int) -> list[tarfile.TarInfo]:
        data = blob(home, manifest["layers"][index]["digest"])
        assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)
        return tar_members(data)

    model = members(0)
    assert [(m.name, m.type) for m in model] == [("models", tarfile.DIRTYPE), ("models/model.pkl", tarfile.REGTYPE)]
    for member in (m for i in range(6) for m in members(i)):
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (1000, 0, "", "", 0)
        assert not member.name.endswith("/")
    code = {m.name: m for m in members(3)}
    assert "main.py" in code and "sub/Kitfile" in code and "src/keep.log" in code
    for absent in ("Kitfile", ".kitignore", "debug.log", "README.md", "src/link.py", "src/__pycache__"):
        assert absent not in code
    assert not [name for name in code if name.startswith(("models/", "data/"))]  # other entries' files
    assert code["models"].isdir()  # kit keeps the folder entry itself
    assert code["src/run.sh"].mode == 0o4755
    assert code["src/sticky"].mode == 0o1777 and code["src/sticky"].isdir()
    assert code["src/private.txt"].mode == 0o400
    assert "src/" + "x" * 120 in code
    assert "src/ünïcødé-名前.py" in code
    code_blob = blob(home, manifest["layers"][3]["digest"])
    names = [m.name for m in tar_members(code_blob)]
    assert names == sorted(names, key=lambda n: [part.encode() for part in n.split("/")])
    model_blob = blob(home, manifest["layers"][0]["digest"])
    assert tar_read(model_blob, "models/model.pkl") == (fixture_folder / "models" / "model.pkl").read_bytes()


def test_tar_headers_for_huge_files_use_pax() -> None:
    header = tar_header("big/file.bin", 0o644, 9 * 2**30, is_dir=False)
    assert len(header) == 3 * 512  # PAX header, its records, then the USTAR-style header
    info = tarfile.TarInfo.frombuf(header[1024:], "utf-8", "surrogateescape")
    assert info.name == "big/file.bin" and info.size == 0  # the real size lives in the PAX record
    assert b"size=9663676416\n" in header[512:1024]
    assert header[:100].rstrip(b"\0") == b"big/PaxHeaders.0/file.bin"


def test_gzip_layers(fixture_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = pack_native(
        fixture_folder, KITFILE, parse_modelkit_reference("fixture:gz"), storage_root=home, compression="gzip"
    )
    again = pack_native(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:gz"),
        storage_root=tmp_path / "other",
        compression="gzip",
    )
    plain = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:plain"), storage_root=home)
    assert result.digest == again.digest
    manifest = manifest_of(home, result.digest)
    plain_manifest = manifest_of(home, plain.digest)
    config = json.loads(blob(home, manifest["config"]["digest"]))
    for layer, plain_layer, entry in zip(
        manifest["layers"], plain_manifest["layers"], [config["model"], *config["model"]["parts"]], strict=False
    ):
        assert layer["mediaType"].endswith(".v1.tar+gzip")
        data = blob(home, layer["digest"])
        assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # Go's header: no name, mtime 0
        assert entry["digest"] == layer["digest"]
        assert entry["diffId"] == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
        assert entry["diffId"] == plain_layer["digest"]


def test_progress_and_cancel(fixture_folder: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    pack_native(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:v1"),
        storage_root=tmp_path / "home",
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 70_000

    cancel = threading.Event()

    def cancel_midway(done: int, total: int) -> None:
        if done > 10_000:
            cancel.set()

    home = tmp_path / "cancelled"
    with pytest.raises(InterruptedByUser):
        pack_native(
            fixture_folder,
            KITFILE,
            parse_modelkit_reference("fixture:v1"),
            storage_root=home,
            on_progress=cancel_midway,
            cancel=cancel,
        )
    assert not list((storage_of(home) / ".kitmlflow-tmp").iterdir())
    assert not list(storage_of(home).glob("*-tags.json"))


def test_a_pack_cancelled_after_its_first_layers_leaves_no_blob_nothing_references(
    fixture_folder: Path, tmp_path: Path
) -> None:
    """The model layer (70 kB) is committed before the cancel comes in a later layer: a quit mid-pack
    must not leave it behind (issue 15, item 5); blobs of ModelKits already stored stay."""
    home = tmp_path / "home"
    kept = pack_native(
        fixture_folder,
        {"manifestVersion": "1.0.0", "docs": [{"path": "README.md"}]},
        parse_modelkit_reference("kept:v1"),
        storage_root=home,
    )
    before = {p.name for p in (storage_of(home) / "blobs" / "sha256").iterdir()}
    from kitmlflow_tui.core.packing.native import plan_layers

    layers = plan_layers(fixture_folder, KITFILE).layers
    first_layer = sum(entry.size for entry in layers[0].entries)
    assert first_layer >= 70_000 and len(layers) > 2
    cancel = threading.Event()

    def cancel_late(done: int, total: int) -> None:
        if done > first_layer:  # the first layer is committed: the cancel comes inside a later one
            cancel.set()

    with pytest.raises(InterruptedByUser):
        pack_native(
            fixture_folder,
            KITFILE,
            parse_modelkit_reference("fixture:v1"),
            storage_root=home,
            on_progress=cancel_late,
            cancel=cancel,
        )
    after = {p.name for p in (storage_of(home) / "blobs" / "sha256").iterdir()}
    assert after == before, "only the blobs of the ModelKit stored before"
    assert check_storage_consistent(home) == 1
    assert manifest_of(home, kept.digest)["layers"]


def test_repacking_a_tag_moves_it_and_keeps_the_old_manifest(fixture_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=home)
    (fixture_folder / "main.py").write_text("print('changed')\n")
    second = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=home)
    assert first.digest != second.digest
    tags = json.loads(tags_file(home, "localhost/fixture").read_bytes())
    assert tags == {
        "v1": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": second.digest,
            "size": tags["v1"]["size"],
        }
    }
    index = json.loads(
        tags_file(home, "localhost/fixture")
        .with_name(tags_file(home, "localhost/fixture").name.replace("-tags", "-index"))
        .read_bytes()
    )
    assert [m["digest"] for m in index["manifests"]] == [first.digest, second.digest]
    check_storage_consistent(home)


@pytest.mark.parametrize(
    ("kitfile", "message"),
    [
        ({"model": {"path": "missing.bin"}}, "does not exist"),
        ({"model": {"path": "/etc/passwd"}}, "absolute"),
        ({"model": {"path": "../outside"}}, "leaves the packed folder"),
        ({"code": [{"path": "src"}, {"path": "src/"}]}, "same path"),
        ({"model": {"path": "main.py", "weights": 1}}, "Unknown key 'weights'"),
        ({"bogus": {}}, "Unknown key 'bogus'"),
        ({"model": {"path": "main.py", "parameters": {1: "x"}}}, "non-string key"),
        ({"model": {"path": "main.py", "parameters": {"x": float("nan")}}}, "cannot write as JSON"),
    ],
)
def test_native_pack_errors(fixture_folder: Path, tmp_path: Path, kitfile: dict[str, Any], message: str) -> None:
    with pytest.raises(PackError, match=message) as raised:
        pack_native(
            fixture_folder,
            {"manifestVersion": "1.0.0", **kitfile},
            parse_modelkit_reference("fixture:v1"),
            storage_root=tmp_path / "h",
        )
    assert raised.value.exit_code == 8


def test_choose_packer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("KIT_BIN", str(tmp_path / "no-such-kit"))
    assert find_kit() is None
    assert choose_packer("auto") == "native"
    assert choose_packer("native") == "native"
    with pytest.raises(PackError, match="KIT_BIN"):
        choose_packer("kit")
    with pytest.raises(BadInputError):
        choose_packer("docker")


# -- memory, crash safety and concurrency, in real subprocesses --------------------------------------------
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
    from kitmlflow_tui.core.packing import pack_native

    mode, folder, home = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    kitfile = json.loads(sys.argv[4])
    if mode == "rss":
        import psutil
        process = psutil.Process()
        baseline = process.memory_info().rss
        peak = baseline
        def sample(done, total):
            global peak
            peak = max(peak, process.memory_info().rss)
        started = time.perf_counter()
        result = pack_native(folder, kitfile, parse_modelkit_reference("big:v1"), storage_root=home, on_progress=sample)
        print(json.dumps({{"baseline": baseline, "peak": peak, "seconds": time.perf_counter() - started,
                          "size": result.size}}))
    elif mode == "loop":
        counter = 0
        while True:
            (folder / "counter.txt").write_text(str(counter))
            pack_native(folder, kitfile, parse_modelkit_reference(f"crash:t{{counter % 3}}"), storage_root=home)
            counter += 1
    elif mode == "once":
        start_at = float(sys.argv[6])
        while time.time() < start_at:
            time.sleep(0.001)
        result = pack_native(folder, kitfile, parse_modelkit_reference(sys.argv[5]), storage_root=home)
        print(result.digest)
    """
)


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "pack_worker.py"
    path.write_text(WORKER.format(repo=str(REPO_ROOT)))
    return path


def make_sparse_folder(root: Path, size: int) -> Path:
    root.mkdir(parents=True)
    with open(root / "weights.bin", "wb") as handle:
        handle.truncate(size)
        for offset in range(0, size, 32 * 2**20):  # some real data among the holes
            handle.seek(offset)
            handle.write(os.urandom(4096))
    (root / "MLmodel").write_text("flavors: {}\n")
    return root


def test_memory_stays_bounded_for_a_large_file(tmp_path: Path, worker: Path) -> None:
    folder = make_sparse_folder(tmp_path / "big", 300 * 2**20)
    kitfile = {
        "manifestVersion": "1.0.0",
        "package": {"name": "big"},
        "model": {"path": "weights.bin"},
        "code": [{"path": "MLmodel"}],
    }
    completed = subprocess.run(
        [sys.executable, str(worker), "rss", str(folder), str(tmp_path / "home"), json.dumps(kitfile)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    stats = json.loads(completed.stdout)
    growth = stats["peak"] - stats["baseline"]
    print(f"packed 300 MiB in {stats['seconds']:.2f}s, RSS growth {growth / 2**20:.1f} MiB")
    assert stats["size"] > 300 * 2**20
    assert growth < 100 * 2**20


def test_sigkill_at_any_moment_leaves_storage_consistent(tmp_path: Path, worker: Path) -> None:
    folder = make_sparse_folder(tmp_path / "crash", 48 * 2**20)
    kitfile = {"manifestVersion": "1.0.0", "model": {"path": "weights.bin"}, "code": [{"path": "."}]}
    home = tmp_path / "home"
    rng = random.Random(1234)
    for _ in range(8):
        process = subprocess.Popen(
            [sys.executable, str(worker), "loop", str(folder), str(home), json.dumps(kitfile)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.2, 2.0))
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        if process.stderr:
            process.stderr.close()
        check_storage_consistent(home)
    leftovers = list((storage_of(home) / ".kitmlflow-tmp").iterdir())
    result = pack_native(folder, kitfile, parse_modelkit_reference("crash:final"), storage_root=home)
    assert not list((storage_of(home) / ".kitmlflow-tmp").iterdir()), f"not cleaned: {leftovers}"
    assert check_storage_consistent(home) >= 1
    assert json.loads(tags_file(home, "localhost/crash").read_bytes())["final"]["digest"] == result.digest
    kit = find_kit()
    if kit:
        listed = subprocess.run(
            [kit, "list", "--config", str(kit_home(home))], capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert "final" in listed.stdout


def _has_open(pid: int, path: Path) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(Path(f.path) == path for f in psutil.Process(pid).open_files())
    return False


@pytest.mark.timeout(300)
def test_a_pack_waits_for_the_index_lock_another_process_holds(tmp_path: Path, worker: Path) -> None:
    """The read-modify-write of kit's index and tag files is serialised between processes: while another
    one holds the storage's lock, a pack that has opened the lock file to take it (it cannot have it: we
    do) has not tagged, and it tags once the lock is free. Concurrent packs alone rarely overlap in that
    short step, so this holds the lock on purpose."""
    from kitmlflow_tui.core.packing.storage import LOCK_FILE_NAME

    home = tmp_path / "home"
    folder = make_sparse_folder(tmp_path / "ctx", 2**20)
    kitfile = {"manifestVersion": "1.0.0", "model": {"path": "weights.bin"}}
    storage = storage_of(home)
    storage.mkdir(parents=True)
    lock_file = (storage / LOCK_FILE_NAME).resolve()
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what another pack in the middle of its update holds
    process = subprocess.Popen(
        [sys.executable, str(worker), "once", str(folder), str(home), json.dumps(kitfile), "locked:v1", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while process.poll() is None and not _has_open(process.pid, lock_file):
            time.sleep(0.02)
        assert process.poll() is None, "the pack went ahead while another process held the lock"
        assert not tags_file(home, "localhost/locked").exists()
    finally:
        os.close(fd)  # releases the lock
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(tags_file(home, "localhost/locked").read_bytes())["v1"]["digest"] == out.strip()


def test_concurrent_packs_into_one_storage(tmp_path: Path, worker: Path) -> None:
    home = tmp_path / "home"
    folders = []
    for index in range(4):
        folder = make_sparse_folder(tmp_path / f"ctx{index}", 8 * 2**20)
        (folder / "which.txt").write_text(str(index))
        folders.append(folder)
    kitfile = {"manifestVersion": "1.0.0", "model": {"path": "weights.bin"}, "code": [{"path": "."}]}
    references = ["same:a", "same:b", "other:a", "org/third:x"]
    start_at = time.time() + 1.5
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                "once",
                str(folder),
                str(home),
                json.dumps(kitfile),
                reference,
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder, reference in zip(folders, references, strict=True)
    ]
    digests = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        digests.append(out.strip())
    assert json.loads(tags_file(home, "localhost/same").read_bytes()).keys() == {"a", "b"}
    assert json.loads(tags_file(home, "localhost/same").read_bytes())["a"]["digest"] == digests[0]
    assert json.loads(tags_file(home, "localhost/other").read_bytes())["a"]["digest"] == digests[2]
    assert json.loads(tags_file(home, "localhost/org/third").read_bytes())["x"]["digest"] == digests[3]
    shared = json.loads((storage_of(home) / "index.json").read_bytes())
    assert {m["digest"] for m in shared["manifests"]} == set(digests)
    assert check_storage_consistent(home) == 4


# -- against the real kit ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kit() -> str:
    found = find_kit()
    if found is None:
        pytest.skip("the kit binary was not found (set KIT_BIN or put kit on the PATH) - kit interop not checked")
    return found


def run_kit(kit: str, home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [kit, *args, "--config", str(kit_home(home)), "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return completed


@functools.cache
def kit_version(kit: str) -> str:
    output = subprocess.run([kit, "version"], capture_output=True, text=True, timeout=60).stdout
    for line in output.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no version in {output!r}")


def test_kit_lists_inspects_and_unpacks_a_native_modelkit(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:v1"), storage_root=kit_home(home))

    listed = json.loads(run_kit(kit, home, "list", "--format", "json").stdout)
    assert len(listed) == 1
    entry = listed[0]
    assert (entry["repo"], entry["tags"], entry["digest"]) == ("fixture", ["v1"], result.digest)
    assert (entry["author"], entry["modelName"]) == ("alice", "fixture-model")
    assert entry["size"].endswith("KiB") and float(entry["size"].split()[0]) == int(result.size / 1024 * 10) / 10

    inspected = json.loads(run_kit(kit, home, "inspect", "fixture:v1").stdout)
    assert inspected["digest"] == result.digest
    manifest = manifest_of(home, result.digest)
    assert inspected["kitfile"] == json.loads(blob(home, manifest["config"]["digest"]))
    assert inspected["kitfile"]["package"]["name"] == "fixture-model"

    out = tmp_path / "unpacked"
    run_kit(kit, home, "unpack", "fixture:v1", "-d", str(out))
    packed_names = set()
    for layer in manifest["layers"]:
        for member in tar_members(blob(home, layer["digest"])):
            packed_names.add(member.name)
            if member.isfile():
                assert (out / member.name).read_bytes() == (fixture_folder / member.name).read_bytes(), member.name
    assert "models/model.pkl" in packed_names and "src/ünïcødé-名前.py" in packed_names
    assert result.left_out and not [name for name in result.left_out if (out / name).exists()]


def test_kit_pack_gives_the_same_modelkit(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    kit_result = pack_with_kit(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:v1"),
        kit_bin=kit,
        storage_root=kit_home(tmp_path / "kit"),
    )
    native_result = pack_native(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:v1"),
        storage_root=tmp_path / "native",
        cli_version=kit_version(kit),
    )
    assert kit_result.packer == "kit" and kit_result.reference == "fixture:v1"
    assert native_result.config_digest == kit_result.config_digest
    assert native_result.digest == kit_result.digest  # byte-identical manifest, layers and config
    assert native_result.size == kit_result.size
    assert native_result.left_out == kit_result.left_out
    for name in (
        "bG9jYWxob3N0L2ZpeHR1cmU=-index.json",
        "bG9jYWxob3N0L2ZpeHR1cmU=-tags.json",
        "index.json",
        "oci-layout",
    ):
        assert (storage_of(tmp_path / "kit") / name).read_bytes() == (
            storage_of(tmp_path / "native") / name
        ).read_bytes()


def test_kit_gzip_layers_share_diff_ids(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    # Go's deflate and zlib compress differently, so only the uncompressed tars (diffIds) can agree.
    kit_result = pack_with_kit(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:gz"),
        kit_bin=kit,
        storage_root=kit_home(tmp_path / "kit"),
        compression="gzip",
    )
    native_result = pack_native(
        fixture_folder,
        KITFILE,
        parse_modelkit_reference("fixture:gz"),
        storage_root=tmp_path / "native",
        compression="gzip",
    )

    def diff_ids(home: Path, digest: str) -> list[str]:
        config = json.loads(blob(home, manifest_of(home, digest)["config"]["digest"]))
        entries = [config["model"], *config["model"]["parts"], *config["code"], *config["datasets"], *config["docs"]]
        return [entry["diffId"] for entry in entries]

    assert diff_ids(tmp_path / "kit", kit_result.digest) == diff_ids(tmp_path / "native", native_result.digest)


def test_kit_pack_failure_is_a_pack_error(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(PackError, match="kit pack failed"):
        pack_with_kit(
            fixture_folder,
            {**KITFILE, "bogus": 1},
            parse_modelkit_reference("fixture:v1"),
            kit_bin=kit,
            storage_root=kit_home(tmp_path / "h"),
        )


def test_kit_reads_native_and_kit_modelkits_side_by_side(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    home = kit_home(tmp_path / "home")
    pack_with_kit(fixture_folder, KITFILE, parse_modelkit_reference("fixture:kit"), kit_bin=kit, storage_root=home)
    (fixture_folder / "main.py").write_text("print('v2')\n")
    native = pack_native(fixture_folder, KITFILE, parse_modelkit_reference("fixture:native"), storage_root=home)
    listed = {tuple(item["tags"]): item for item in json.loads(run_kit(kit, home, "list", "--format", "json").stdout)}
    assert listed[("native",)]["digest"] == native.digest
    assert ("kit",) in listed
    check_storage_consistent(home)


def test_prompts_are_code_layers_with_a_subtype(fixture_folder: Path, tmp_path: Path) -> None:
    # kit 1.7 rejects a `prompts` key; later kits pack each prompt as a code layer marked "prompt".
    (fixture_folder / "prompts").mkdir()
    (fixture_folder / "prompts" / "system.prompt.md").write_text("You are helpful.\n")
    kitfile = {**KITFILE, "prompts": [{"path": "prompts/system.prompt.md", "description": "system"}]}
    home = tmp_path / "home"
    result = pack_native(fixture_folder, kitfile, parse_modelkit_reference("fixture:prompts"), storage_root=home)
    manifest = manifest_of(home, result.digest)
    last = manifest["layers"][-1]
    assert last["mediaType"] == "application/vnd.kitops.modelkit.code.v1.tar"
    assert last["annotations"] == {"ml.kitops.modelkit.layer-subtype": "prompt"}
    config = json.loads(blob(home, manifest["config"]["digest"]))
    assert list(config)[-1] == "prompts" and config["prompts"][0]["digest"] == last["digest"]
    code = {m.name for m in tar_members(blob(home, manifest["layers"][3]["digest"]))}
    assert "prompts" in code and "prompts/system.prompt.md" not in code


# -- differential: random folders, kit and the native packer must write the same bytes --------------------
NAMES = [
    "data",
    "database.py",
    "model.pkl",
    "model.pkl.bak",
    "a..b",
    ".hidden",
    "ünï",
    "x" * 110,
    "sub",
    "Kitfile",
    "c d",
]
IGNORE_LINES = ["*.bak", "**/x*", "!sub/keep", "sub", ".hidden", "/data", "# note", "**/a..b", "!model.pkl.bak"]


@st.composite
def folder_and_kitfile(draw: st.DrawFn) -> tuple[dict[str, bytes | None], list[str], dict[str, Any]]:
    tree: dict[str, bytes | None] = {}  # path -> content, None for a folder
    for _ in range(draw(st.integers(1, 10))):
        parts = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
        path = "/".join(parts)
        if any(path.startswith(p + "/") for p, c in tree.items() if c is not None):
            continue  # a file cannot also be a folder
        if any(p.startswith(path + "/") for p in tree) or path in tree:
            continue
        for depth in range(1, len(parts)):
            tree.setdefault("/".join(parts[:depth]), None)
        tree[path] = draw(st.one_of(st.none(), st.binary(max_size=700)))
    ignores = draw(st.lists(st.sampled_from(IGNORE_LINES), max_size=3))
    candidates = sorted(p for p in tree if p != "Kitfile")
    chosen = draw(st.lists(st.sampled_from([".", *candidates]), unique=True, max_size=4)) if candidates else []
    kitfile: dict[str, Any] = {"manifestVersion": "1.0.0", "package": {"name": "diff", "authors": ["prop"]}}
    roles = ["model", "code", "datasets", "docs"]
    for path, role in zip(chosen, draw(st.permutations(roles)), strict=False):
        if role == "model":
            kitfile["model"] = {"name": "m", "path": path, "parameters": {"seed": draw(st.integers(0, 9))}}
        else:
            kitfile.setdefault(role, []).append({"path": path})
    return tree, ignores, kitfile


@settings(
    max_examples=examples(int(os.environ.get("KITMLFLOW_DIFF_EXAMPLES", "40"))),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=folder_and_kitfile())
def test_native_matches_kit_on_random_folders(kit: str, tmp_path_factory: pytest.TempPathFactory, case: Any) -> None:
    tree, ignores, kitfile = case
    base = tmp_path_factory.mktemp("diff")
    folder = base / "ctx"
    folder.mkdir()
    for path, content in sorted(tree.items()):
        if content is None:
            (folder / path).mkdir(parents=True, exist_ok=True)
        else:
            (folder / path).write_bytes(content)
    if ignores:
        (folder / ".kitignore").write_text("\n".join(ignores) + "\n")
    kit_result = pack_with_kit(
        folder, kitfile, parse_modelkit_reference("diff:v1"), kit_bin=kit, storage_root=kit_home(base / "kit")
    )
    native_result = pack_native(
        folder, kitfile, parse_modelkit_reference("diff:v1"), storage_root=base / "native", cli_version=kit_version(kit)
    )
    assert native_result.digest == kit_result.digest, (tree, ignores, kitfile)


def test_kit_pushes_and_pulls_a_native_modelkit(kit: str, fixture_folder: Path, tmp_path: Path) -> None:
    registry_bin = os.environ.get("KITMLFLOW_TEST_REGISTRY_BIN", "")
    if not registry_bin or not Path(registry_bin).is_file():
        pytest.skip("set KITMLFLOW_TEST_REGISTRY_BIN to a CNCF distribution `registry` binary to check kit push")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        [registry_bin, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.1)
        reference = f"127.0.0.1:{port}/team/fixture:v1"
        pushed = pack_native(
            fixture_folder, KITFILE, parse_modelkit_reference(reference), storage_root=kit_home(tmp_path / "push")
        )
        run_kit(kit, tmp_path / "push", "push", reference, "--plain-http")
        run_kit(kit, tmp_path / "pull", "pull", reference, "--plain-http")
        listed = json.loads(run_kit(kit, tmp_path / "pull", "list", "--format", "json").stdout)
        assert [(item["repo"], item["digest"]) for item in listed] == [
            (f"127.0.0.1:{port}/team/fixture", pushed.digest)
        ]
        out = tmp_path / "unpacked"
        run_kit(kit, tmp_path / "pull", "unpack", reference, "-d", str(out))
        assert (out / "models" / "model.pkl").read_bytes() == (fixture_folder / "models" / "model.pkl").read_bytes()
    finally:
        server.terminate()
        server.wait(30)
