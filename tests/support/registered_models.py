"""Registered models of a real ``mlflow server`` and what a real registry holds for them, as the sync and watch
tests make and read them (the registry read by the test itself, never through the client under test)."""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

from kitmlflow_tui.core.provenance import read_provenance
from tests.support.live import LiveServer
from tests.support.registry_servers import Registry
from tests.support.servers import seed_run

MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
MLMODEL = (
    b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
    b"    python_version: 3.11.9\nmlflow_version: 3.17.2\n"
)


@dataclass
class SyncModel:
    """A registered model of the live server whose versions the test adds one by one."""

    live: LiveServer
    name: str
    runs: dict[str, str] = field(default_factory=dict)  # version -> run id

    def uri(self, suffix: str = "") -> str:
        return f"mlflow://{self.live.host}/models/{self.name}{suffix}"

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.live.url)

    def add_version(self, *, status: str = "FINISHED", big: int = 0) -> str:
        number = len(self.runs) + 1
        files: dict[str, bytes | int] = {
            "model/MLmodel": MLMODEL,
            "model/weights.bin": 20_000 + number,  # deterministic bytes, different for every version
            "model/notes.txt": f"{self.name} version {number}\n".encode(),
        }
        if big:
            files["model/big.bin"] = b"0"
        experiment_id, run_id = seed_run(
            self.live.url, experiment_name="sync", files=files, status=status, run_name=f"{self.name}-{number}"
        )
        if big:  # written into the store: logging it would take long
            path = self.live.root / "art" / experiment_id / run_id / "artifacts" / "model" / "big.bin"
            with open(path, "wb") as out:
                out.truncate(big)
        version = self.client().create_model_version(self.name, f"runs:/{run_id}/model", run_id=run_id)
        self.runs[str(version.version)] = run_id
        return str(version.version)

    def alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.name, alias, version)


def make_model(live: LiveServer, name: str, versions: int = 3) -> SyncModel:
    model = SyncModel(live, name)
    model.client().create_registered_model(name)
    for _ in range(versions):
        model.add_version()
    return model


def bearer(registry: Registry, repository: str, actions: str = "pull") -> dict[str, str]:
    """The header a request to ``registry`` needs (nothing for a registry without token auth)."""
    if registry.issuer is None:
        return {}
    user, password = next(iter(registry.issuer.users.items()))
    answer = requests.get(
        registry.issuer.realm,
        params={"service": registry.issuer.service, "scope": f"repository:{repository}:{actions}"},
        auth=(user, password),
        timeout=30,
    )
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def remote_manifest(registry: Registry, repository: str, tag: str) -> tuple[str, dict] | None:
    """(digest, manifest) the registry holds under the tag, read by the test itself."""
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={**bearer(registry, repository), "Accept": MANIFEST_ACCEPT},
        timeout=30,
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.headers["Docker-Content-Digest"], answer.json()


def copy_tag(registry: Registry, repository: str, source: str, tag: str) -> str:
    """Point ``tag`` at the manifest ``source`` names, as ``kit tag`` + push would (by hand, not by kitmlflow)."""
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{source}",
        headers={**bearer(registry, repository), "Accept": MANIFEST_ACCEPT},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    put = requests.put(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        data=answer.content,
        headers={**bearer(registry, repository, "pull,push"), "Content-Type": MANIFEST_ACCEPT},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    return put.headers["Docker-Content-Digest"]


def remote_provenance(registry: Registry, repository: str, tag: str) -> dict:
    held = remote_manifest(registry, repository, tag)
    assert held is not None, f"{repository}:{tag} is not in the registry"
    config = requests.get(
        f"{registry.url}/v2/{repository}/blobs/{held[1]['config']['digest']}",
        headers=bearer(registry, repository),
        timeout=30,
    ).json()
    provenance = read_provenance(config)
    assert provenance is not None
    return provenance.to_mapping()


def blobs_of(manifest: dict) -> set[str]:
    return {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}


def writes(entries: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [e for e in entries if e[0] not in ("GET", "HEAD")]
