"""A plain ``pip install kitmlflow`` in a fresh venv: MLflow's client only (mlflow-skinny), no server-side MLflow,
and still a working import against a real ``mlflow server``; a local tracking store or the demo says which extra it
needs (exit 7). Also the container recipe: the Dockerfile's install command, run as it is in a fresh venv.

Slow (each venv is a real ``pip install`` of the working tree, from pip's cache where it can)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.cli import kitmlflow_subprocess_env
from tests.support.live import LiveServer
from tests.support.registry_servers import Registry, module_registry, registry_available

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# What the full MLflow brings and a plain install must not (pip's names, lower case).
SERVER_SIDE = ("pandas", "scipy", "scikit-learn", "pyarrow", "flask", "gunicorn", "docker")
PIP_TIMEOUT = 1200


def source_copy(dest: Path) -> Path:
    """The files the package is built from (the Dockerfile copies the same), outside the work tree: a build
    there would leave build/ and egg-info folders behind."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "kitmlflow_tui", dest / "kitmlflow_tui", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True, timeout=120
    )
    return {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with ``pip install .`` (no extras)."""
    root = tmp_path_factory.mktemp("lean")
    source = source_copy(root / "src")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    bin_dir = root / "venv" / "bin"
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-lean")


def test_a_plain_install_has_mlflows_client_only(lean: Path) -> None:
    names = installed(lean / "python")
    assert "mlflow-skinny" in names and "mlflow" not in names
    assert not names & set(SERVER_SIDE), f"server-side packages installed: {sorted(names & set(SERVER_SIDE))}"


@pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
@pytest.mark.timeout(900)
def test_import_push_and_the_deployment_target_work_from_a_plain_install(
    lean: Path, live: LiveServer, registry: Registry, isolated_env: Path
) -> None:
    env = kitmlflow_subprocess_env()
    imported = subprocess.run(
        [
            str(lean / "kitmlflow"),
            "import",
            f"mlflow://{live.host}/runs/{live.runs['full']}",
            "-t",
            f"{registry.host}/lean/model:v1",
            "--yes",
            "--json",
            "--push",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert imported.returncode == 0, imported.stderr
    document = json.loads(imported.stdout)
    answer = requests.get(
        f"{registry.url}/v2/lean/model/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert answer.headers["Docker-Content-Digest"] == document["pushed"]["digest"] == document["digest"]

    deployed = subprocess.run(
        [
            str(lean / "mlflow"),
            "deployments",
            "create",
            "-t",
            f"kitops:/{registry.host}/lean/deployed",
            "--name",
            "v1",
            "-m",
            f"models:/{live.model_name}/1",
        ],
        capture_output=True,
        text=True,
        env={**env, "MLFLOW_TRACKING_URI": live.url},
        timeout=600,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "modelkit deployment v1 is created" in deployed.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["import", "mlflow://runs/0123456789abcdef", "--tracking-uri", "sqlite:///x.db", "-t", "m:v1", "--yes"],
        ["import", "mlflow://runs/0123456789abcdef", "--tracking-uri", "./mlruns", "-t", "m:v1", "--yes"],
        ["download", "mlflow://runs/0123456789abcdef", "--tracking-uri", "file:./mlruns", "-d", "out", "--yes"],
        ["demo", "--print-uri", "--root", "demo"],
    ],
    ids=["sqlite", "folder", "file-uri", "demo"],
)
@pytest.mark.timeout(300)
def test_a_local_store_or_the_demo_names_the_local_extra(lean: Path, tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run(
        [str(lean / "kitmlflow"), *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**kitmlflow_subprocess_env(), "KITMLFLOW_CACHE_DIR": str(tmp_path / "cache")},
        timeout=240,
    )
    assert done.returncode == 7, done.stderr
    assert "pip install 'kitmlflow[local]'" in done.stderr
    assert "Traceback" not in done.stderr
    made = {p.name for p in tmp_path.iterdir()} - {"cache"}
    assert made == set(), f"MLflow got as far as creating {made}"


# -- the container recipe ------------------------------------------------------------------------------------------
def dockerfile_install() -> tuple[str, dict[str, str]]:
    """The build stage's install command and the default of each ARG it reads."""
    text = (REPO / "Dockerfile").read_text()
    build = text.split(" AS build", 1)[1].split("\nFROM ", 1)[0]
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", build, flags=re.M))
    (command,) = re.findall(r"^RUN (.*pip install.*)$", build, flags=re.M)
    return command, args


@pytest.mark.timeout(PIP_TIMEOUT + 300)
def test_the_dockerfiles_install_step_gives_the_store_clients_and_no_server_side_mlflow(tmp_path: Path) -> None:
    command, args = dockerfile_install()
    assert args["EXTRAS"] == "s3,gcs,azure"
    source = source_copy(tmp_path / "src")
    venv = tmp_path / "opt-kitmlflow"
    local = command.replace("/opt/kitmlflow", str(venv)).replace("/src", str(source))
    assert "/opt/" not in local and " /src" not in local and '"/src' not in local  # nothing outside tmp_path
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python` as in the base image
    done = subprocess.run(
        ["sh", "-c", local],
        capture_output=True,
        text=True,
        env={**os.environ, **args, "PATH": path},
        timeout=PIP_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    python = venv / "bin" / "python"
    version = subprocess.run([str(venv / "bin" / "kitmlflow"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "kitmlflow" in version.stdout
    clients = "import boto3, google.cloud.storage, azure.storage.blob, azure.identity"
    assert subprocess.run([str(python), "-c", clients], capture_output=True, timeout=120).returncode == 0
    names = installed(python)
    assert not names & set(SERVER_SIDE), f"server-side packages installed: {sorted(names & set(SERVER_SIDE))}"
