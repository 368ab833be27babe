"""The direct import (``--packer native``, uncompressed: bytes straight into the layer blobs) against a real
``mlflow server``: the same ModelKit, byte for byte, as the folder path (``--keep-download``, which downloads into
a folder and packs it), over the proxy and over a local store read directly (where a large file is fetched as
parallel ranges); no download folder; a kill -9 half-way leaves nothing referenced and the re-run fetches only
what its journal lacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kitmlflow_tui.core.packing.direct import RESUME_DIR_NAME
from kitmlflow_tui.core.packing.kit_cli import find_kit
from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.emulators import ThrottledProxy
from tests.support.servers import mlflow_server, seed_run

MIT = (
    b"MIT License\n\nCopyright (c) 2026 The Authors\n\nPermission is hereby granted, free of charge, to any person "
    b'obtaining a copy of this software and associated documentation files (the "Software"), to deal in the '
    b"Software without restriction, including without limitation the rights to use, copy, modify, merge, publish, "
    b"distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is "
    b"furnished to do so, subject to the following conditions:\n"
)
DEEP = "/".join(f"level-{i:02d}" for i in range(14)) + "/weights-with-a-long-name-past-the-ustar-limit.bin"
CORPUS: dict[str, bytes | int] = {
    "empty.txt": b"",
    "data/empty.csv": b"",
    "data/train.csv": b"a,b\n1,2\n",
    DEEP: 70_001,
    "données/modèle-ü.bin": 123_457,
    "日本語/重み.pt": 4_097,
    "checkpoints/best.ckpt": 3_000_000,
    "LICENSE": MIT,
    "README.md": b"# direct\n",
    "notes/odd name (1).txt": b"spaces and parens",
}
LARGE = "weights/large.safetensors"
LARGE_SIZE = 40 * 1024 * 1024 + 12_345  # over 2 x 16 MiB: the local transport splits it into parallel ranges
SLOW = "slow/weights.bin"
SLOW_SIZE = 24_000_000
RATE = 4_000_000  # bytes/s through the relay: the slow file takes about 6 s


@dataclass
class Seeded:
    url: str
    root: Path
    runs: dict[str, str]

    def uri(self, role: str, url: str | None = None) -> str:
        host = (url or self.url).removeprefix("http://")
        return f"mlflow://{host}/runs/{self.runs[role]}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("direct")
    with mlflow_server(root / "mlflow") as server:
        runs = {}
        _, runs["proxied"] = seed_run(server.url, experiment_name="proxied", files=CORPUS, logged_model=True)
        _, runs["local"] = seed_run(
            server.url,
            experiment_name="local",
            files={**CORPUS, LARGE: LARGE_SIZE},
            artifact_location=str(root / "local-store"),
        )
        _, runs["slow"] = seed_run(server.url, experiment_name="slow", files={SLOW: SLOW_SIZE, "a.txt": b"a"})
        yield Seeded(server.url, root, runs)


def import_into(home: Path, uri: str, tag: str, *extra: str) -> dict:
    out = run_cli("import", uri, "-t", tag, "--yes", "--json", *extra, env=env_for(home))
    assert out.code == 0, out.stderr
    return out.json


def env_for(home: Path) -> dict[str, str]:
    return {"KITOPS_HOME": str(home / "kitops"), "KITMLFLOW_CACHE_DIR": str(home / "cache")}


def stored(home: Path, digest: str) -> tuple[dict, dict]:
    """The manifest of ``digest`` and its config, as kit's storage holds them."""
    blobs = home / "kitops" / "storage" / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    return manifest, config


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["proxied", "local"])
def test_the_direct_import_writes_the_folder_paths_modelkit_byte_for_byte(
    seeded: Seeded, role: str, tmp_path: Path
) -> None:
    direct = import_into(tmp_path / "direct", seeded.uri(role), "corpus:v1", "--packer", "native")
    folder = import_into(tmp_path / "folder", seeded.uri(role), "corpus:v1", "--packer", "native", "--keep-download")
    assert direct["digest"] == folder["digest"]
    direct_manifest, direct_config = stored(tmp_path / "direct", direct["digest"])
    folder_manifest, folder_config = stored(tmp_path / "folder", folder["digest"])
    assert direct_manifest == folder_manifest and direct_config == folder_config
    assert len(direct_manifest["layers"]) >= 2
    assert direct["downloaded_bytes"] + direct["reused_bytes"] == direct["selected_bytes"]
    # no download folder, nothing left to resume, no temporary file
    assert files_under(tmp_path / "direct" / "cache") == []
    storage = tmp_path / "direct" / "kitops" / "storage"
    assert files_under(storage / RESUME_DIR_NAME) == [] and files_under(storage / ".kitmlflow-tmp") == []
    kit = find_kit()
    if kit is not None:  # kit packs the same folder into the same layers
        packed = import_into(tmp_path / "kit", seeded.uri(role), "corpus:v1", "--packer", "kit")
        kit_manifest, _ = stored(tmp_path / "kit", packed["digest"])
        assert [layer["digest"] for layer in kit_manifest["layers"]] == [
            layer["digest"] for layer in direct_manifest["layers"]
        ]


def test_the_dry_run_reads_the_listing_and_downloads_nothing_to_disk(seeded: Seeded, tmp_path: Path) -> None:
    out = run_cli("import", seeded.uri("proxied"), "-t", "dry:v1", "--dry-run", "--json", env=env_for(tmp_path))
    assert out.code == 0, out.stderr
    assert out.json["kitfile"]["model"]["license"].startswith("MIT")  # the root LICENSE was read, in memory
    assert out.json["kitfile"]["model"]["framework"]  # and the logged model's MLmodel
    assert not (tmp_path / "cache").exists() and not (tmp_path / "kitops").exists()


@pytest.mark.timeout(300)
def test_a_direct_import_killed_half_way_leaves_nothing_referenced_and_resumes(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    storage = home / "kitops" / "storage"
    port = int(seeded.url.rsplit(":", 1)[1])
    with ThrottledProxy(port, RATE) as relay:
        uri = seeded.uri("slow", f"127.0.0.1:{relay.port}")  # the same URI for every import: the same Kitfile
        command = [str(Path(sys.executable).parent / "kitmlflow"), "import", uri]
        command += ["-t", "slow:v1", "--yes", "--json", "--packer", "native", "--jobs", "1"]
        child_env = kitmlflow_subprocess_env(**env_for(home))
        child = subprocess.Popen(command, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 240
            while not any(b"\nR " in p.read_bytes() for p in (storage / RESUME_DIR_NAME).glob("*/*.journal")):
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                assert time.monotonic() < deadline, "the journal never listed a range"
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=30)
        assert not list(storage.glob("*-tags.json")), "no tag before every blob is complete"
        index = storage / "index.json"
        assert not index.exists() or json.loads(index.read_text()).get("manifests") in (None, [])
        assert [p.name for p in files_under(storage / "blobs")] == [], "no layer blob before it is complete"
        resumed = import_into(home, uri, "slow:v1", "--packer", "native")
        assert resumed["reused_bytes"] > 0
        assert resumed["downloaded_bytes"] == resumed["selected_bytes"] - resumed["reused_bytes"]
        fresh = import_into(tmp_path / "fresh", uri, "slow:v1", "--packer", "native", "--keep-download")
    assert resumed["digest"] == fresh["digest"]
    assert files_under(storage / RESUME_DIR_NAME) == []
