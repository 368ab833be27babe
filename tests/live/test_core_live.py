"""The core (reference → catalogue → selection → download) against a real proxied mlflow server."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import kitmlflow_subprocess_env
from tests.support.live import FULL_RUN_FILES, LiveServer

MODEL_FILES = {
    "model/MLmodel",
    "model/conda.yaml",
    "model/python_env.yaml",
    "model/requirements.txt",
    "model/python_model.pkl",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_uri_form_resolves_to_the_same_run(live: LiveServer, kitmlflow) -> None:
    run_id, exp = live.runs["full"], live.experiment_id
    forms = [
        [f"mlflow://{live.host}/experiments/{exp}/runs/{run_id}"],
        [f"mlflow://{live.host}/runs/{run_id}"],
        [f"mlflow+http://{live.host}/runs/{run_id}"],
        [f"mlflow://experiments/{exp}/runs/{run_id}", "--tracking-uri", live.url],
        [f"mlflow://runs/{run_id}", "--tracking-uri", live.url],
    ]
    for form in forms:
        out = kitmlflow("import", *form, "-t", "live:v1", "--dry-run", "--json")
        assert out.code == 0, (form, out.stderr)
        doc = out.json
        assert doc["run"] == {
            "tracking_uri": live.url,
            "experiment_id": exp,
            "experiment_name": "live",
            "run_id": run_id,
            "run_name": "full-run",
            "status": "FINISHED",
        }
    via_env = kitmlflow(
        "import",
        f"mlflow://runs/{run_id}",
        "-t",
        "live:v1",
        "--dry-run",
        "--json",
        env={"MLFLOW_TRACKING_URI": live.url},
    )
    assert via_env.code == 0 and via_env.json["run"]["run_id"] == run_id


def test_the_tree_holds_run_artifacts_and_logged_models_with_sizes(live: LiveServer, kitmlflow) -> None:
    doc = kitmlflow("import", live.uri(), "-t", "live:v1", "--dry-run", "--json").json
    sizes = {f["path"]: f["size"] for f in doc["selected"]}
    for path, content in FULL_RUN_FILES.items():
        assert sizes[path] == (content if isinstance(content, int) else len(content)), path
    assert set(sizes) >= MODEL_FILES
    assert not any(p.endswith("registered_model_meta") for p in sizes)
    assert doc["logged_models"] == [{"id": live.model_id, "name": "model", "folder": "model"}]
    assert doc["selected_bytes"] == doc["total_bytes"] == sum(sizes.values())
    assert doc["excluded"] == []


def test_each_folder_listed_alone_agrees_with_the_whole_tree(live: LiveServer, isolated_env: Path) -> None:
    """What the wizard shows of a folder opened before the whole tree is listed (run folders, nested
    folders, a logged model's own store, an empty file over HTTP) is that folder of the full tree."""
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.tui.selection_model import FolderIndex

    catalogue = Catalogue(live.url)
    run = catalogue.get_run(live.runs["full"])
    whole = FolderIndex(catalogue.run_tree(run))
    top, models = catalogue.first_level(run)
    assert [(e.path, e.is_dir) for e in top] == [(e.path, e.is_dir) for e in whole.children("")]
    folders = [path for path in whole.folders if path]
    assert {"model", "nested/a/b/c", "checkpoints"} <= set(folders)
    for folder in folders:
        alone = catalogue.folder_level(run, folder, models)
        expected = whole.children(folder)
        assert [(e.path, e.is_dir) for e in alone] == [(e.path, e.is_dir) for e in expected], folder
        assert [e.size for e in alone if not e.is_dir] == [e.size for e in expected if not e.is_dir], folder
    assert next(e for e in catalogue.folder_level(run, "", models) if e.path == "empty.txt").size == 0


@pytest.mark.parametrize("form", ["models/live-model/1", "models/live-model@champion"])
def test_registered_models_resolve_to_their_logged_model_and_source_run(live: LiveServer, kitmlflow, form: str) -> None:
    out = kitmlflow("import", f"mlflow://{live.host}/{form}", "-t", "live:v1", "--dry-run", "--json")
    assert out.code == 0, out.stderr
    doc = out.json
    assert doc["run"]["run_id"] == live.runs["full"]
    assert {f["path"] for f in doc["selected"]} == MODEL_FILES
    assert doc["registered_model"]["name"] == "live-model" and doc["registered_model"]["version"] == "1"


def test_filters_and_reasons(live: LiveServer, kitmlflow) -> None:
    out = kitmlflow(
        "import",
        live.uri(),
        "-t",
        "live:v1",
        "--dry-run",
        "--json",
        "--include",
        "checkpoints/",
        "--include",
        "model",
        "--exclude",
        "best.ckpt",
        "--max-file-size",
        "305KB",
    )
    doc = out.json
    assert {f["path"] for f in doc["selected"]} == {"checkpoints/epoch_001.pt"} | MODEL_FILES
    reasons = {f["path"]: f["reason"] for f in doc["excluded"]}
    assert reasons["checkpoints/best.ckpt"] == "excluded by pattern 'best.ckpt'"
    assert reasons["checkpoints/epoch_002.pt"] == "over the size cap (310.0 kB > 305.0 kB)"
    assert reasons["README.md"] == "matches no include pattern"
    assert doc["selected_bytes"] == 300_000 + sum(f["size"] for f in doc["selected"] if f["path"].startswith("model/"))


def test_profile_and_flags_combine(live: LiveServer, kitmlflow, isolated_env: Path) -> None:
    profile = isolated_env / "weights.yaml"
    profile.write_text("include: ['*.safetensors', '*.pt']\nmax_file_size: 5MB\n")
    doc = kitmlflow(
        "import", live.uri(), "-t", "x:1", "--dry-run", "--json", "--profile", str(profile), "--exclude", "epoch_002.pt"
    ).json
    assert {f["path"] for f in doc["selected"]} == {"checkpoints/epoch_001.pt"}
    bad = kitmlflow("import", live.uri(), "-t", "x:1", "--dry-run", "--profile", "missing-profile")
    assert bad.code == 2 and "missing-profile" in bad.stderr


@pytest.mark.parametrize(("role", "status"), [("failed", "FAILED"), ("running", "RUNNING"), ("killed", "KILLED")])
def test_unfinished_runs_are_exit_5_and_nothing_is_downloaded(
    live: LiveServer, kitmlflow, tmp_path: Path, role: str, status: str
) -> None:
    out = kitmlflow("download", live.uri(role), "--dest", str(tmp_path / "d"), "--yes", "--json")
    assert out.code == 5
    assert status in out.json["error"]["message"]
    assert not (tmp_path / "d").exists()


def test_not_found_cases_are_exit_4(live: LiveServer, kitmlflow) -> None:
    missing_run = kitmlflow("import", f"mlflow://{live.host}/runs/{'0' * 32}", "-t", "x:1", "--dry-run", "--json")
    assert missing_run.code == 4 and missing_run.json["error"]["code"] == 4
    wrong_exp = kitmlflow(
        "import",
        f"mlflow://{live.host}/experiments/{live.experiment_id}/runs/{live.runs['other_experiment']}",
        "-t",
        "x:1",
        "--dry-run",
    )
    assert wrong_exp.code == 4
    assert f"not to experiment {live.experiment_id}" in wrong_exp.stderr
    missing_model = kitmlflow("import", f"mlflow://{live.host}/models/nope/1", "-t", "x:1", "--dry-run")
    assert missing_model.code == 4
    missing_alias = kitmlflow("import", f"mlflow://{live.host}/models/live-model@nope", "-t", "x:1", "--dry-run")
    assert missing_alias.code == 4


def test_a_deleted_run_is_not_found_whoever_points_at_it(live: LiveServer, kitmlflow, tmp_path: Path) -> None:
    """Issue 20 item 16: a run in MLflow's trash is exit 4 naming it, for ``import`` of the run, ``download`` of it
    and ``import`` of a registered version it produced (which packed it before, while ``sync`` said 4)."""
    from mlflow import MlflowClient

    from tests.support.servers import seed_run

    _, run = seed_run(live.url, experiment_name="trash", files={"model/MLmodel": b"flavors: {}\n", "a.txt": b"a"})
    client = MlflowClient(live.url)
    client.create_registered_model("trashed-model")
    version = client.create_model_version("trashed-model", f"runs:/{run}/model", run_id=run).version
    client.delete_run(run)
    cases = {
        "import of the run": ["import", f"mlflow://{live.host}/runs/{run}", "-t", "x:1", "--yes", "--json"],
        "download of the run": [
            "download",
            f"mlflow://{live.host}/runs/{run}",
            "--dest",
            str(tmp_path),
            "--yes",
            "--json",
        ],
        "import of its version": [
            "import",
            f"mlflow://{live.host}/models/trashed-model/{version}",
            *("-t", "x:1", "--yes", "--json"),
        ],
    }
    for case, args in cases.items():
        out = kitmlflow(*args)
        assert out.code == 4, (case, out.stderr)
        message = out.json["error"]["message"]
        assert run in message and "deleted" in message, (case, message)
    assert f"version {version}" in message  # the version is named too
    assert not list(tmp_path.iterdir())


def test_bad_input_is_exit_2_before_any_network(kitmlflow) -> None:
    # 127.0.0.1:9 is closed: exit 2 proves the input was refused before a connection was tried.
    cases = [
        ["import", "mlflow://127.0.0.1:9/runs/abc", "-t", "Bad Tag!", "--dry-run"],
        ["import", "http://127.0.0.1:9/runs/abc", "-t", "x:1", "--dry-run"],
        ["import", "mlflow://127.0.0.1:9/experiments/1", "-t", "x:1", "--dry-run"],
        ["import", "mlflow://127.0.0.1:9/runs/abc", "-t", "x:1", "--dry-run", "--include", "[oops"],
        ["import", "mlflow://127.0.0.1:9/runs/abc", "-t", "x:1", "--dry-run", "--max-file-size", "huge"],
        ["download", "mlflow://127.0.0.1:9/runs/abc", "--dest", "x", "--yes", "--jobs", "0"],
    ]
    for args in cases:
        out = kitmlflow(*args)
        assert out.code == 2, (args, out.stderr)


def test_without_yes_and_without_a_terminal_it_refuses(live: LiveServer, kitmlflow, tmp_path: Path) -> None:
    out = kitmlflow("download", live.uri(), "--dest", str(tmp_path / "d"))
    assert out.code == 2 and "--yes" in out.stderr
    out = kitmlflow("import", live.uri(), "-t", "x:1")
    assert out.code == 2 and "--yes" in out.stderr
    for wizard in ([live.uri()], ["--tracking-uri", live.url], ["browse", "--tracking-uri", live.url]):
        out = kitmlflow(*wizard)
        assert out.code == 2 and "The wizard needs a terminal" in out.stderr, (wizard, out.stderr)


@pytest.mark.timeout(120)
def test_an_unreachable_server_fails_fast_with_exit_6(kitmlflow) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = kitmlflow("import", f"mlflow://127.0.0.1:{port}/runs/abc", "-t", "x:1", "--dry-run", "--json")
    assert out.code == 6 and out.json["error"]["code"] == 6
    # Refused by kitmlflow's own connect probe, before MLflow's retries (about 4 minutes by default): the
    # timeout mark is the hang guard, the message says who refused.
    assert "Cannot connect to the tracking server" in out.json["error"]["message"], out.stderr
    unresolvable = kitmlflow("import", "mlflow://no-such-host.invalid/runs/abc", "-t", "x:1", "--dry-run")
    assert unresolvable.code == 6 and "resolve" in unresolvable.stderr


def test_download_moves_exactly_the_selection_verified(live: LiveServer, kitmlflow, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    out = kitmlflow("download", live.uri(), "--dest", str(dest), "--yes", "--json", "--exclude", "*.safetensors")
    assert out.code == 0, out.stderr
    doc = out.json
    selected = {f["path"]: f["size"] for f in doc["selected"]}
    assert "weights/big.safetensors" not in selected
    assert doc["downloaded_bytes"] == sum(selected.values()) == doc["selected_bytes"]
    files = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert files == set(selected)
    for path in FULL_RUN_FILES:
        if path in selected:
            assert sha256(dest / path) == sha256(live.artifact_dir() / path), path
    assert (dest / "empty.txt").stat().st_size == 0
    assert not (dest / ".kitmlflow-partial").exists()
    again = kitmlflow("download", live.uri(), "--dest", str(dest), "--yes", "--json", "--exclude", "*.safetensors")
    assert again.json["downloaded_bytes"] == 0  # everything complete: nothing moves


def test_a_cancel_mid_file_says_what_is_kept_and_keeps_it(live: LiveServer, tmp_path: Path, isolated_env) -> None:
    """The wizard's cancel (an event, not SIGINT) stopping a transfer halfway through a file."""
    from kitmlflow_tui.core import pipeline
    from kitmlflow_tui.core.download.downloader import ProgressEvent
    from kitmlflow_tui.core.errors import InterruptedByUser
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.core.selection.plan import FilterSpec

    session = pipeline.plan(parse_reference(live.uri()), FilterSpec(include=("weights/",)), jobs=1)

    class CancelAtFirstBytes(pipeline.Observer):
        def progress(self, event: ProgressEvent) -> None:
            if event.kind == "bytes":
                session.cancel.set()

    with pytest.raises(InterruptedByUser) as cancelled:
        pipeline.download(session, tmp_path / "dest", jobs=1, observer=CancelAtFirstBytes())
    assert cancelled.value.message == "Download cancelled; completed files are kept for the next run."
    (part,) = (tmp_path / "dest" / ".kitmlflow-partial").rglob("*.part")
    assert 0 < part.stat().st_size < FULL_RUN_FILES["weights/big.safetensors"]


def test_interrupted_download_resumes_moving_only_the_missing_bytes(live: LiveServer, tmp_path: Path) -> None:
    import json

    from tests.support.servers import seed_run

    # A file large enough that SIGINT lands mid-transfer on loopback: written straight into the
    # server's artifact store after the run is logged.
    _, run_id = seed_run(live.url, experiment_name="live", files={"huge.bin": b"0", "small.pt": 300_000})
    huge = live.root / "art" / live.experiment_id / run_id / "artifacts" / "huge.bin"
    with open(huge, "wb") as out:
        for _ in range(40):
            out.write(os.urandom(10_000_000))
    dest = tmp_path / "dest"
    command = [
        sys.executable,
        "-m",
        "kitmlflow_tui.cli",
        "download",
        f"mlflow://{live.host}/runs/{run_id}",
        "--dest",
        str(dest),
        "--yes",
        "--jobs",
        "1",
        "--json",
    ]
    proc = subprocess.Popen(command, env=kitmlflow_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = dest / ".kitmlflow-partial" / "huge.bin.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size >= 20_000_000):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    kept = part.stat().st_size
    assert 0 < kept < 400_000_000
    assert not (dest / "huge.bin").exists()  # never a truncated file under its real name
    assert not (dest / "small.pt").exists()  # --jobs 1, largest first: it had not started

    resumed = subprocess.run(command, env=kitmlflow_subprocess_env(), capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["downloaded_bytes"] == 400_000_000 + 300_000 - kept
    assert sha256(dest / "huge.bin") == sha256(huge)
    assert not (dest / ".kitmlflow-partial").exists()


def test_a_file_that_changed_size_since_listing_is_exit_7(live: LiveServer, tmp_path: Path) -> None:
    from kitmlflow_tui.core import pipeline
    from kitmlflow_tui.core.errors import DownloadError
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.core.selection.plan import FilterSpec
    from tests.support.servers import seed_run

    _, run_id = seed_run(live.url, experiment_name="live", files={"grows.bin": 1000})
    uri = f"mlflow://{live.host}/runs/{run_id}"
    session = pipeline.plan(parse_reference(uri), FilterSpec())
    (live.root / "art" / live.experiment_id / run_id / "artifacts" / "grows.bin").write_bytes(b"x" * 5000)
    with pytest.raises(DownloadError) as caught:
        pipeline.download(session, tmp_path / "dest")
    assert caught.value.exit_code == 7 and "grows.bin" in caught.value.message
    assert not (tmp_path / "dest" / "grows.bin").exists()


def test_help_does_not_import_mlflow() -> None:
    code = (
        "import sys; from kitmlflow_tui.cli import main; sys.argv=['kitmlflow','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'mlflow' not in sys.modules, 'mlflow imported'\n"
        "assert 'textual' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "import" in result.stdout and "download" in result.stdout


def test_secrets_never_appear_in_output(live: LiveServer, kitmlflow) -> None:
    secret = "hunter2-very-secret"
    out = kitmlflow(
        "import",
        f"mlflow://runs/{'0' * 32}",
        "-t",
        "x:1",
        "--dry-run",
        "--json",
        "--tracking-uri",
        live.url.replace("http://", f"http://bob:{secret}@"),
        env={"MLFLOW_TRACKING_PASSWORD": secret, "MLFLOW_TRACKING_USERNAME": "bob"},
    )
    assert secret not in out.stdout + out.stderr
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") != secret
