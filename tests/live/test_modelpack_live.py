"""``--format modelpack`` against a real ``mlflow server`` and the real ``docker-registry``: a scikit-learn run
(``mlflow.sklearn.log_model``), a safetensors run and a GGUF run import as CNCF ModelPacks whose config validates
against model-spec's schema, which Docker Model Runner's and kit's unpack rules (``tests/support/
modelpack_readers.py``) turn back into the run's files byte for byte, which push and pull back byte-identical, and
which the real modctl pulls and extracts where it is installed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import modelpack_readers as readers
from tests.support.cli import run_cli
from tests.support.live import mlflow_globals_restored
from tests.support.registry_servers import Registry, module_registry, registry_available
from tests.support.servers import mlflow_server, seed_run
from tests.unit.test_modelpack import safetensors

needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
HF_CONFIG = json.dumps({"model_type": "llama", "torch_dtype": "float16", "transformers_version": "4.44.0"}).encode()
TRANSFORMERS_MLMODEL = b"artifact_path: model\nflavors:\n  transformers:\n    transformers_version: 4.44.0\n"
SAFETENSORS_FILES: dict[str, bytes | int] = {
    "model/MLmodel": TRANSFORMERS_MLMODEL,
    "model/model.safetensors": safetensors({"embed": ("F16", [512, 64], 2), "head": ("F16", [64, 8], 2)}),
    "model/config.json": HF_CONFIG,
    "model/tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}',
    "README.md": b"# tiny llama\n",
}
GGUF_FILES: dict[str, bytes | int] = {
    "tiny-q4.gguf": b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 400,
    "README.md": b"# tiny gguf\n",
}


@dataclass
class Runs:
    url: str
    root: Path
    runs: dict[str, str]
    sklearn_model_id: str

    def uri(self, role: str) -> str:
        return f"mlflow://{self.url.removeprefix('http://')}/runs/{self.runs[role]}"


def _log_sklearn_run(url: str) -> tuple[str, str]:
    """A real scikit-learn model logged by MLflow's own flavor: (run id, logged model id)."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=200).fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]], [0, 1, 0, 1])
    with mlflow_globals_restored():
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("modelpack-sklearn")
        with mlflow.start_run(run_name="churn-sklearn") as run:
            mlflow.log_param("max_iter", 200)
            info = mlflow.sklearn.log_model(model, name="model")
    return run.info.run_id, info.model_id


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("modelpack")
    with mlflow_server(root / "mlflow") as server:
        runs: dict[str, str] = {}
        runs["sklearn"], model_id = _log_sklearn_run(server.url)
        _, runs["safetensors"] = seed_run(server.url, experiment_name="mp-safetensors", files=SAFETENSORS_FILES)
        _, runs["gguf"] = seed_run(server.url, experiment_name="mp-gguf", files=GGUF_FILES)
        yield Runs(server.url, root, runs, model_id)


def local_blob(kitops: Path):
    return lambda digest: kitops / "storage" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def local_json(kitops: Path, digest: str) -> dict[str, Any]:
    return json.loads(local_blob(kitops)(digest).read_bytes())


def import_modelpack(seeded: Runs, role: str, tag: str, *extra: str):
    out = run_cli(
        "import", seeded.uri(role), "-t", tag, "--format", "modelpack", "--packer", "native", "--yes", "--json", *extra
    )
    assert out.code == 0, out.stderr
    return out.json


def expected_files(seeded: Runs, role: str, tmp_path: Path) -> dict[str, bytes]:
    """The run's files as MLflow itself gives them (for the sklearn run: its logged model, downloaded by MLflow)."""
    if role == "safetensors":
        return {k: v for k, v in SAFETENSORS_FILES.items() if isinstance(v, bytes)}
    if role == "gguf":
        return {k: v for k, v in GGUF_FILES.items() if isinstance(v, bytes)}
    import mlflow

    with mlflow_globals_restored():
        mlflow.set_tracking_uri(seeded.url)
        folder = mlflow.artifacts.download_artifacts(f"models:/{seeded.sklearn_model_id}", dst_path=str(tmp_path))
    # registered_model_meta is what MLflow's models:/ download adds locally; the logged model does not hold it.
    found = readers.tree_bytes(Path(folder))
    return {f"model/{name}": data for name, data in found.items() if name != "registered_model_meta"}


WEIGHTS = {"sklearn": "model/model.skops", "safetensors": "model/model.safetensors", "gguf": "tiny-q4.gguf"}
FORMATS = {"sklearn": "skops", "safetensors": "safetensors", "gguf": "gguf"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["sklearn", "safetensors", "gguf"])
def test_a_run_imports_as_a_modelpack_its_readers_unpack_byte_for_byte(
    seeded: Runs, role: str, isolated_env: Path, tmp_path: Path
) -> None:
    document = import_modelpack(seeded, role, f"mp-{role}:v1")
    assert document["format"] == "modelpack" and document["packer"] == "native"
    assert document["kitfile"]["model"]["parameters"]["mlflow"]["run"]["id"] == seeded.runs[role]
    kitops = isolated_env / "kitops"
    manifest = local_json(kitops, document["digest"])
    config = local_json(kitops, manifest["config"]["digest"])
    readers.validate_config(config)
    assert config["descriptor"]["name"] == f"mp-{role}"
    assert config["config"]["format"] == FORMATS[role]
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in manifest["layers"]]
    weight = next(layer for layer in manifest["layers"] if layer["mediaType"] == readers.WEIGHT_RAW)
    assert weight["annotations"][readers.FILEPATH] == WEIGHTS[role], "the model's weight file is a raw layer"

    files = expected_files(seeded, role, tmp_path / "mlflow")
    fields = readers.dmr_unpack(manifest, config, local_blob(kitops), tmp_path / "dmr")
    assert (tmp_path / "dmr" / "model" / WEIGHTS[role]).read_bytes() == files[WEIGHTS[role]]
    assert fields == ({FORMATS[role]: WEIGHTS[role]} if role != "sklearn" else {})

    readers.kit_unpack(manifest, local_blob(kitops), tmp_path / "kit")
    unpacked = readers.tree_bytes(tmp_path / "kit")
    assert {path: unpacked.get(path) for path in files} == files, "every file of the run, byte for byte"
    assert set(unpacked) - set(files) <= {"mlflow-provenance.yaml"}
    if role == "safetensors":
        assert config["config"] == {
            "architecture": "transformer",
            "format": "safetensors",
            "paramSize": "33.3k",
            "precision": "float16",
        }


@pytest.mark.timeout(300)
def test_two_imports_of_a_run_give_one_digest_direct_or_through_a_folder(seeded: Runs, isolated_env: Path) -> None:
    first = import_modelpack(seeded, "safetensors", "mp-twice:v1")
    again = import_modelpack(seeded, "safetensors", "mp-twice:v1")
    folder = import_modelpack(seeded, "safetensors", "mp-twice:v1", "--keep-download")
    assert first["digest"] == again["digest"] == folder["digest"]
    other_tag = import_modelpack(seeded, "safetensors", "mp-twice:v2")
    assert other_tag["digest"] != first["digest"], "the package version (the tag) is in the Kitfile"
    modelkit = run_cli(
        "import", seeded.uri("safetensors"), "-t", "mp-twice:kit", "--packer", "native", "--yes", "--json"
    )
    assert modelkit.code == 0 and modelkit.json["format"] == "modelkit"
    # The same Kitfile but for what the tag sets: the package, and the model's version (no registered version here).
    tagged = {"package": modelkit.json["kitfile"]["package"], "model": first["kitfile"]["model"] | {"version": "kit"}}
    assert modelkit.json["kitfile"] == first["kitfile"] | tagged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--packer", "kit"], "kit 1.7 has no ModelPack writer"),
        (["--compression", "gzip"], "uncompressed"),
    ],
)
def test_what_cannot_write_a_modelpack_is_exit_2_before_any_connection(
    kitmlflow, isolated_env: Path, args: list[str], message: str
) -> None:
    out = kitmlflow(
        "import", "mlflow://127.0.0.1:9/runs/abc123", "-t", "m:v1", "--format", "modelpack", *args, "--yes", "--json"
    )
    assert out.code == 2, out.stderr
    assert message in out.json["error"]["message"]
    unknown = kitmlflow("import", "mlflow://127.0.0.1:9/runs/abc123", "-t", "m:v1", "--format", "onnx", "--yes")
    assert unknown.code == 2


# -- a registry ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-modelpack")


def registry_get(registry: Registry, path: str) -> requests.Response:
    answer = requests.get(f"{registry.url}/v2/{path}", headers={"Accept": MANIFEST_ACCEPT}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


def push_modelpack(seeded: Runs, registry: Registry, repository: str) -> dict[str, Any]:
    document = import_modelpack(seeded, "safetensors", f"{registry.host}/{repository}:v1", "--push", "--plain-http")
    assert document["pushed"]["digest"] == document["digest"]
    return document


@needs_registry
@pytest.mark.timeout(300)
def test_a_pushed_modelpack_pulls_back_byte_identical(seeded: Runs, registry: Registry, isolated_env: Path) -> None:
    repository = "ml/tiny-llama"
    document = push_modelpack(seeded, registry, repository)
    kitops = isolated_env / "kitops"
    pulled = registry_get(registry, f"{repository}/manifests/v1")
    assert pulled.headers["Docker-Content-Digest"] == document["digest"]
    assert pulled.content == local_blob(kitops)(document["digest"]).read_bytes(), "the manifest, byte for byte"
    manifest = pulled.json()
    for blob in [manifest["config"], *manifest["layers"]]:
        data = registry_get(registry, f"{repository}/blobs/{blob['digest']}").content
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"] and len(data) == blob["size"]
        assert data == local_blob(kitops)(blob["digest"]).read_bytes()


@needs_registry
@pytest.mark.skipif(readers.modctl_binary() is None, reason="no modctl (KITMLFLOW_TEST_MODCTL_BIN, .tools/bin or PATH)")
@pytest.mark.timeout(300)
def test_modctl_pulls_and_extracts_a_pushed_modelpack(
    seeded: Runs, registry: Registry, isolated_env: Path, tmp_path: Path
) -> None:
    """The real modctl (github.com/modelpack/modctl): ``pull`` into its storage then ``extract``, and
    ``pull --extract-from-remote``, give the run's files byte for byte."""
    repository = "ml/tiny-llama-modctl"
    push_modelpack(seeded, registry, repository)
    modctl = readers.modctl_binary()
    assert modctl is not None
    storage, extracted = tmp_path / "modctl-storage", tmp_path / "modctl-out"
    common = [modctl, "--storage-dir", str(storage), "--log-dir", str(tmp_path / "modctl-logs"), "--no-progress"]
    env = {**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")}
    target = f"{registry.host}/{repository}:v1"
    from_remote = tmp_path / "modctl-remote"
    for args in (
        ["pull", "--plain-http", target],
        ["extract", target, "--output", str(extracted)],
        ["pull", "--plain-http", "--extract-from-remote", "--extract-dir", str(from_remote), target],
    ):
        ran = subprocess.run([*common, *args], capture_output=True, text=True, timeout=120, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    files = {k: v for k, v in SAFETENSORS_FILES.items() if isinstance(v, bytes)}
    for folder in (extracted, from_remote):
        got = readers.tree_bytes(folder)
        assert {path: got.get(path) for path in files} == files
