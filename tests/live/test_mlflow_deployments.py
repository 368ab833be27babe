"""MLflow's deployment target ``kitops``, driven through MLflow's own CLI (``mlflow deployments …`` as a subprocess,
which finds the plugin by its entry point) against the real ``mlflow server`` (the ``live`` fixture) and a real
``docker-registry``. The real ``kit`` is not installable here: the pushed manifest and config are checked instead,
and the digest against what ``kitmlflow import`` packs for the same model version and tag."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kitmlflow_tui.core.provenance import read_provenance
from kitmlflow_tui.core.registry.client import TagListing
from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.live import LiveServer
from tests.support.registry_servers import Registry, manifest_puts, module_registry, registry_available
from tests.support.servers import MLFLOW_BIN

pytestmark = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-deploy")


def mlflow(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = kitmlflow_subprocess_env(MLFLOW_TRACKING_URI=live.url)
    return subprocess.run([MLFLOW_BIN, "deployments", *args], capture_output=True, text=True, env=env, timeout=300)


def held(registry: Registry, repository: str, tag: str) -> tuple[str, dict, dict] | None:
    """(digest, manifest, config) the registry holds under the tag, read by the test itself."""
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    manifest = answer.json()
    config = requests.get(f"{registry.url}/v2/{repository}/blobs/{manifest['config']['digest']}", timeout=30).json()
    return answer.headers["Docker-Content-Digest"], manifest, config


@pytest.mark.timeout(900)
def test_mlflow_deployments_create_get_list_update_delete_predict(
    live: LiveServer, registry: Registry, isolated_env: Path
) -> None:
    target = f"kitops:/{registry.host}/ml/churn"

    created = mlflow(live, "create", "-t", target, "--name", "churn", "-m", f"models:/{live.model_name}/1")
    assert created.returncode == 0, created.stderr
    assert "modelkit deployment churn is created" in created.stdout
    found = held(registry, "ml/churn", "churn")
    assert found is not None
    digest, manifest, config = found
    assert manifest["config"]["mediaType"] == KITOPS_CONFIG
    assert any(".modelkit.model." in layer["mediaType"] for layer in manifest["layers"])
    provenance = read_provenance(config)
    assert provenance is not None and provenance.registered_model is not None
    assert (provenance.registered_model.name, provenance.registered_model.version) == (live.model_name, "1")
    assert config["package"]["name"] == "churn" and config["package"]["version"] == "churn"

    # What `kitmlflow import` packs for the same version and tag is the same ModelKit, byte for byte.
    imported = run_cli(
        "import",
        f"mlflow://{live.host}/models/{live.model_name}/1",
        "-t",
        f"{registry.host}/ml/churn:churn",
        "--yes",
        "--json",
        env={"KITOPS_HOME": str(isolated_env / "kitops-cli")},
    )
    assert imported.code == 0, imported.stderr
    assert imported.json["digest"] == digest

    # An alias, a tag of its own (-C tag=), a config key the plugin passes on (-C exclude=).
    by_alias = mlflow(
        live,
        "create",
        "-t",
        target,
        "--name",
        "champion-deploy",
        "-m",
        f"models:/{live.model_name}@champion",
        "-C",
        "tag=champion",
        "-C",
        "exclude=requirements.txt,*.yaml",
    )
    assert by_alias.returncode == 0, by_alias.stderr
    champion = held(registry, "ml/churn", "champion")
    assert champion is not None and champion[0] != digest  # another tag, so another package version
    recorded = read_provenance(champion[2])
    assert recorded is not None and recorded.registered_model is not None
    assert recorded.registered_model.alias == "champion"
    assert list(recorded.filter["exclude"]) == ["requirements.txt", "*.yaml"]

    # The listing under `list`: distribution 2.8 ignores the page size (n) and sends every tag in one answer,
    # which ends the listing (no second request); the bound still holds.
    from kitmlflow_tui.core.registry import RegistryClient

    with RegistryClient.connect(registry.host) as client:
        mark = registry.mark()
        assert sorted(client.list_tags("ml/churn", page_size=1).tags) == ["champion", "churn"]
        assert len([e for e in registry.since(mark) if "/tags/list" in e[1]]) == 1
        bounded = client.list_tags("ml/churn", limit=1)
        assert bounded.truncated and len(bounded.tags) == 1
        assert client.list_tags("ml/nothing-here") == TagListing((), False)

    got = mlflow(live, "get", "-t", target, "--name", "churn")
    assert got.returncode == 0, got.stderr
    assert "name: churn" in got.stdout and "flavor: modelkit" in got.stdout
    assert f"digest: {digest}" in got.stdout and f"model_uri: models:/{live.model_name}/1" in got.stdout

    listed = mlflow(live, "list", "-t", target)
    assert listed.returncode == 0, listed.stderr
    assert "'name': 'churn'" in listed.stdout and "'name': 'champion'" in listed.stdout

    mark = registry.mark()
    updated = mlflow(live, "update", "-t", target, "--name", "churn")  # no -m: the version the tag records
    assert updated.returncode == 0, updated.stderr
    assert "Deployment churn is updated (with flavor modelkit)" in updated.stdout
    assert manifest_puts(registry.since(mark)) == ["churn"]
    assert held(registry, "ml/churn", "churn")[0] == digest  # type: ignore[index]  # same version, same ModelKit

    predicted = mlflow(live, "predict", "-t", target, "--name", "churn", "--input-path", str(_inputs(isolated_env)))
    assert predicted.returncode != 0 and "does not serve predictions" in predicted.stderr

    refused = mlflow(live, "delete", "-t", target, "--name", "churn")
    assert refused.returncode != 0 and "not a deployment to tear down" in refused.stderr
    assert held(registry, "ml/churn", "churn") is not None
    deleted = mlflow(live, "delete", "-t", target, "--name", "churn", "-C", "force=true")
    assert deleted.returncode == 0, deleted.stderr
    assert held(registry, "ml/churn", "churn") is None
    assert held(registry, "ml/churn", "champion") is not None  # another ModelKit: untouched

    gone = mlflow(live, "get", "-t", target, "--name", "churn")
    assert gone.returncode != 0 and "No deployment churn" in gone.stderr


@pytest.mark.timeout(300)
def test_run_local_packs_into_kits_local_storage_and_pushes_nothing(
    live: LiveServer, registry: Registry, isolated_env: Path
) -> None:
    from kitmlflow_tui.core.modelkit_reference import parse_push_reference
    from kitmlflow_tui.core.registry.local import read_local_modelkit

    mark = registry.mark()
    reference = f"{registry.host}/ml/local:v1"  # MLflow hands run-local no target: --name is the reference
    local = mlflow(live, "run-local", "-t", "kitops", "--name", reference, "-m", f"models:/{live.model_name}/1")
    assert local.returncode == 0, local.stderr
    packed = read_local_modelkit(parse_push_reference(reference))  # KITOPS_HOME: isolated_env's
    assert packed.reference == reference
    assert registry.since(mark) == []  # nothing asked of the registry


@pytest.mark.timeout(300)
def test_target_help_and_bad_input_name_what_to_do(live: LiveServer, registry: Registry, isolated_env: Path) -> None:
    helped = mlflow(live, "help", "-t", "kitops")
    assert helped.returncode == 0 and "kitops:/REGISTRY/REPOSITORY" in helped.stdout
    no_repository = mlflow(live, "create", "-t", "kitops", "--name", "x", "-m", "models:/m/1")
    assert no_repository.returncode != 0 and "names no repository" in no_repository.stderr
    unknown = mlflow(
        live, "create", "-t", f"kitops:/{registry.host}/ml/x", "--name", "x", "-m", "models:/m/1", "-C", "colour=red"
    )
    assert unknown.returncode != 0 and "Unknown -C key 'colour'" in unknown.stderr
    not_a_model = mlflow(live, "create", "-t", f"kitops:/{registry.host}/ml/x", "--name", "x", "-m", "s3://b/m")
    assert not_a_model.returncode != 0 and "models:/NAME/VERSION" in not_a_model.stderr


def _inputs(folder: Path) -> Path:
    path = folder / "inputs.json"
    path.write_text('{"inputs": [[1, 2]]}')
    return path
