"""`kitmlflow import ... --yes` end to end against a real mlflow server, into a private kit storage."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kitmlflow_tui.core.packing.kit_cli import find_kit
from tests.support.live import LiveServer


def tags_of(kitops_home: Path) -> dict[str, dict]:
    found = {}
    for path in (kitops_home / "storage").glob("*-tags.json"):
        found.update(json.loads(path.read_text()))
    return found


def test_import_writes_a_modelkit_with_provenance_and_cleans_the_cache(
    live: LiveServer, kitmlflow, isolated_env: Path
) -> None:
    out = kitmlflow(
        "import",
        live.uri(),
        "-t",
        "live-model:v1",
        "--yes",
        "--json",
        "--packer",
        "native",
        "--exclude",
        "*.safetensors",
    )
    assert out.code == 0, out.stderr
    doc = out.json
    assert doc["reference"] == "live-model:v1"  # the name kit list shows
    assert doc["digest"].startswith("sha256:") and doc["packer"] == "native"
    kitfile = doc["kitfile"]
    assert kitfile["package"]["name"] == "live-model" and kitfile["package"]["version"] == "v1"
    assert kitfile["model"]["path"] == "model" and kitfile["model"]["framework"]
    mlflow_meta = kitfile["model"]["parameters"]["mlflow"]
    assert mlflow_meta["run"]["id"] == live.runs["full"]
    assert mlflow_meta["experiment"] == {"id": live.experiment_id, "name": "live"}
    assert mlflow_meta["params"] == {"lr": "0.01"}
    assert mlflow_meta["tags"]["team"] == "vision"
    assert mlflow_meta["filter"]["exclude"] == ["*.safetensors"]
    assert mlflow_meta["tracking_uri"] == live.url
    assert "v1" in tags_of(isolated_env / "kitops")
    cache = isolated_env / "cache"
    assert not any(p.is_file() for p in cache.rglob("*")), "the download cache is removed after success"


def test_the_same_import_twice_gives_the_same_digest(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    first = kitmlflow(
        "import",
        live.uri(),
        "-t",
        "again:v1",
        "--yes",
        "--json",
        "--packer",
        "native",
        "--include",
        "model/",
        "--include",
        "*.pt",
    )
    second = kitmlflow(
        "import",
        live.uri(),
        "-t",
        "again:v1",
        "--yes",
        "--json",
        "--packer",
        "native",
        "--include",
        "model/",
        "--include",
        "*.pt",
        "--keep-download",
    )
    assert first.code == second.code == 0
    assert first.json["digest"] == second.json["digest"]
    assert any(p.is_file() for p in (isolated_env / "cache").rglob("*.pt")), "--keep-download keeps the cache"


def test_a_stale_cache_does_not_leak_into_the_modelkit(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    wide = kitmlflow("import", live.uri(), "-t", "wide:v1", "--yes", "--json", "--packer", "native", "--keep-download")
    narrow = kitmlflow(
        "import", live.uri(), "-t", "narrow:v1", "--yes", "--json", "--packer", "native", "--include", "model/"
    )
    assert wide.code == narrow.code == 0
    kitfile = narrow.json["kitfile"]
    paths = [kitfile["model"]["path"]] + [
        e["path"] for key in ("code", "datasets", "docs") for e in kitfile.get(key, [])
    ]
    assert paths == ["model"], paths


def test_invalid_tag_fails_before_any_download(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    out = kitmlflow("import", live.uri(), "-t", "Not A Tag", "--yes", "--json")
    assert out.code == 2 and out.json["error"]["code"] == 2
    assert not (isolated_env / "cache").exists()


def test_user_kitfile_is_used_as_is_and_a_bad_one_is_exit_2(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    good = isolated_env / "Kitfile"
    good.write_text("manifestVersion: 1.0.0\npackage:\n  name: custom\nmodel:\n  name: mine\n  path: model\n")
    out = kitmlflow(
        "import",
        live.uri(),
        "-t",
        "custom:v1",
        "--yes",
        "--json",
        "--kitfile",
        str(good),
        "--include",
        "model/",
        "--packer",
        "native",
    )
    assert out.code == 0, out.stderr
    assert out.json["kitfile"]["model"] == {"name": "mine", "path": "model"}
    bad = isolated_env / "Bad.kitfile"
    bad.write_text("manifestVersion: 1.0.0\nmodel:\n  name: x\n  path: model\n  flavour: sklearn\n")
    out = kitmlflow(
        "import", live.uri(), "-t", "custom:v2", "--yes", "--json", "--kitfile", str(bad), "--include", "model/"
    )
    assert out.code == 2
    assert "flavour" in out.json["error"]["message"] and "line 5" in out.json["error"]["message"]
    assert "v2" not in tags_of(isolated_env / "kitops")


def test_dry_run_shows_the_kitfile_without_downloading(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    out = kitmlflow("import", live.uri(), "-t", "dry:v1", "--dry-run", "--json")
    assert out.code == 0
    assert out.json["kitfile"]["model"]["path"] == "model"
    assert "reference" not in out.json and "digest" not in out.json
    assert not (isolated_env / "cache").exists()
    assert not (isolated_env / "kitops").exists()


@pytest.mark.kit
def test_kit_sees_a_native_import_and_unpacks_it_byte_identical(
    live: LiveServer, kitmlflow, isolated_env: Path
) -> None:
    kit = find_kit()
    if kit is None:
        pytest.skip("the real kit binary is not installed (set KIT_BIN or put kit on PATH; see README)")
    out = kitmlflow("import", live.uri(), "-t", "kitcheck:v1", "--yes", "--json", "--packer", "native")
    assert out.code == 0, out.stderr
    home = isolated_env / "kitops"
    listed = subprocess.run([kit, "list", "--config", str(home)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "kitcheck" in listed.stdout and out.json["digest"] in listed.stdout
    unpacked = isolated_env / "unpacked"
    done = subprocess.run(
        [kit, "unpack", "kitcheck:v1", "-d", str(unpacked), "--config", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for entry in out.json["selected"]:
        assert (
            (unpacked / entry["path"]).read_bytes() == (live.artifact_dir() / entry["path"]).read_bytes()
            if not entry["path"].startswith("model/")
            else (unpacked / entry["path"]).exists()
        )
    shutil.rmtree(unpacked)
