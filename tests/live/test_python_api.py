"""The Python API against the real ``mlflow server`` (the ``live`` fixture) and a real ``docker-registry``: what a
training script or a notebook calls, checked by what the registry holds and by what reached stdout and stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kitmlflow_tui import download_artifacts, import_modelkit, sync_model
from kitmlflow_tui.api import ImportReport, PlanReport, StepEvent
from kitmlflow_tui.core.errors import NotFoundError, RunNotFinishedError, SyncFailedError
from kitmlflow_tui.core.events import ProgressEvent
from kitmlflow_tui.core.sync import SyncAction, SyncRecord
from tests.support.live import FULL_RUN_FILES, LiveServer
from tests.support.registry_servers import Registry, module_registry, registry_available

needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-api")  # no auth: anonymous pushes on loopback


def held(registry: Registry, repository: str, tag: str) -> tuple[str, dict] | None:
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.headers["Docker-Content-Digest"], answer.json()


@needs_registry
@pytest.mark.timeout(600)
def test_import_and_push_at_the_end_of_training_prints_nothing_and_returns_what_happened(
    live: LiveServer, registry: Registry, isolated_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_id = live.runs["full"]
    events: list[object] = []
    result = import_modelkit(
        f"mlflow://runs/{run_id}",
        f"{registry.host}/ml/churn:v3",
        tracking_uri=live.url,
        exclude=["checkpoints/"],
        max_file_size="5MB",
        description="Churn model",
        authors=["Data Team"],
        push=True,
        progress=events.append,
    )
    assert capfd.readouterr() == ("", "")  # a notebook cell shows nothing it did not ask for
    assert isinstance(result, ImportReport) and not result.dry_run
    assert result.run.run_id == run_id and result.run.status == "FINISHED"
    assert result.reference == f"{registry.host}/ml/churn:v3"
    assert result.pushed is not None and result.pushed.digest == result.digest
    assert held(registry, "ml/churn", "v3") is not None
    assert held(registry, "ml/churn", "v3")[0] == result.digest  # type: ignore[index]
    selected = {f.path for f in result.selected}
    assert "README.md" in selected and not any(p.startswith("checkpoints/") for p in selected)
    reasons = {f.path: f.reason for f in result.excluded}
    assert "checkpoints/" in reasons["checkpoints/best.ckpt"]
    assert "size cap" in reasons["weights/big.safetensors"]
    assert result.selected_bytes == sum(f.size or 0 for f in result.selected)
    assert result.total_bytes >= sum(s if isinstance(s, int) else len(s) for s in FULL_RUN_FILES.values())
    assert result.downloaded_bytes == result.selected_bytes
    assert result.kitfile.to_dict()["package"]["description"] == "Churn model"
    assert result.kitfile.to_dict()["package"]["authors"] == ["Data Team"]
    # The callable saw the steps, the plan before the download, and the bytes of both transfers.
    steps = [e.step for e in events if isinstance(e, StepEvent)]
    assert steps[0] == "connect" and "push" in steps
    plans = [e for e in events if isinstance(e, PlanReport)]
    assert len(plans) == 1 and {f.path for f in plans[0].selected} == selected
    assert events.index(plans[0]) < next(i for i, e in enumerate(events) if isinstance(e, ProgressEvent))
    moved = sum(e.size for e in events if isinstance(e, ProgressEvent) and e.kind == "bytes")
    assert moved >= result.downloaded_bytes


@pytest.mark.timeout(300)
def test_dry_run_returns_the_kitfile_and_packs_nothing(live: LiveServer, isolated_env: Path) -> None:
    result = import_modelkit(live.uri(), "churn:v1", include=["README.md", "weights/"], dry_run=True)
    assert result.dry_run and result.reference is None and result.digest is None and result.pushed is None
    assert [f.path for f in result.selected] == ["README.md", "weights/big.safetensors"]
    assert result.kitfile.to_dict()["package"]["name"] == "churn"
    assert not (isolated_env / "kitops").exists() or not any((isolated_env / "kitops").rglob("*.json"))


@pytest.mark.timeout(300)
def test_errors_are_raised_as_the_family_with_the_clis_exit_codes(live: LiveServer, isolated_env: Path) -> None:
    with pytest.raises(RunNotFinishedError) as raised:
        import_modelkit(live.uri("running"), "m:v1")
    assert raised.value.exit_code == 5
    with pytest.raises(NotFoundError) as missing:
        import_modelkit(f"mlflow://{live.host}/runs/{'0' * 32}", "m:v1")
    assert missing.value.exit_code == 4


@pytest.mark.timeout(300)
def test_download_artifacts_fetches_only_the_selection(live: LiveServer, isolated_env: Path) -> None:
    dest = isolated_env / "out"
    result = download_artifacts(live.uri(), dest, include=["*.json", "README.md"])
    assert sorted(result.paths) == ["README.md", "nested/a/b/c/deep.json"]
    assert (dest / "README.md").read_bytes() == FULL_RUN_FILES["README.md"]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(result.paths)
    again = download_artifacts(live.uri(), dest, include=["*.json", "README.md"])
    assert again.downloaded_bytes == 0 and again.reused_bytes == result.downloaded_bytes


@needs_registry
@pytest.mark.timeout(600)
def test_sync_model_pushes_then_is_in_step_and_raises_on_a_conflict(
    live: LiveServer, registry: Registry, isolated_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    to = f"{registry.host}/api/sync"
    events: list[object] = []
    first = sync_model(f"mlflow://{live.host}/models/{live.model_name}", to, progress=events.append)
    assert [(r.action, r.tag) for r in first.records] == [
        (SyncAction.PUSHED, "v1"),
        (SyncAction.TAG_CREATED, "champion"),  # a new alias tag (sync reports created, not moved)
    ]
    assert [e for e in events if isinstance(e, SyncRecord)] == list(first.records)
    assert any(isinstance(e, StepEvent) and e.step == "push" for e in events)
    assert held(registry, "api/sync", "v1")[0] == first.records[0].digest  # type: ignore[index]
    again = sync_model(f"mlflow://{live.host}/models/{live.model_name}", to)
    assert {r.action for r in again.records} == {SyncAction.SKIPPED} and again.exit_code == 0
    assert capfd.readouterr() == ("", "")

    # v1 of another repository holds a ModelKit of a run imported directly: not this model's version 1.
    import_modelkit(live.uri(), f"{registry.host}/api/taken:v1", push=True)
    with pytest.raises(SyncFailedError) as raised:
        sync_model(f"mlflow://{live.host}/models/{live.model_name}/1", f"{registry.host}/api/taken")
    assert raised.value.exit_code == 9
    (conflict,) = raised.value.result.records
    assert conflict.action == SyncAction.CONFLICT and "imported directly" in conflict.reason
    manifest = held(registry, "api/taken", "v1")
    assert manifest is not None and json.dumps(manifest[1])  # left as it was
