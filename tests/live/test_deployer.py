"""What a deployer reads, end to end: the Kitfile of a real MLflow 3 run, the commands printed next, the messages.

The scenario (built once for the module): a real ``mlflow server`` on 127.0.0.1 with an experiment ``churn`` where a
run logs a dataset input, ``data/train.csv``, a root ``requirements.txt``, a 47 MB safetensors checkpoint (a valid
header and zeros, generated here) and a scikit-learn model through MLflow 3's ``log_model(...,
registered_model_name="churn")``; two more runs register versions 1 and 3 around it (so the run under test is churn
version 2) and the alias ``champion`` points at version 2; a FAILED and a RUNNING run beside them. The registry is
the real ``docker-registry`` with htpasswd, over plain HTTP on 127.0.0.1.

The printed commands are checked as bash reads them: each ``next:`` line goes through ``bash -c`` to a ``printf``
that shows the words.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.live import mlflow_globals_restored
from tests.support.registry_servers import Registry, module_registry
from tests.support.servers import MlflowServer, mlflow_server

pytestmark = [pytest.mark.timeout(900)]

PASSWORD = "churn-Pa55word!"
USERS = {"deployer": PASSWORD}
CHECKPOINT_BYTES = 47_000_000
NOTE = "# Churn model\n\nPredicts which customers leave next month.\n\nTrained on the Q3 snapshot."
LONG_NAME = "a-rather-long-artifact-name-" + "x" * 90 + ".csv"


@dataclass
class Scenario:
    server: MlflowServer
    experiment_id: str
    run_id: str  # the run registered as churn version 2
    model_id: str
    failed_run_id: str
    running_run_id: str
    plain_run_id: str  # a run whose model nobody registered

    def uri(self, run_id: str | None = None) -> str:
        host = self.server.url.removeprefix("http://")
        return f"mlflow://{host}/experiments/{self.experiment_id}/runs/{run_id or self.run_id}"

    @property
    def host(self) -> str:
        return self.server.url.removeprefix("http://")


def write_safetensors(path: Path, data_bytes: int) -> None:
    """A valid safetensors file: an 8-byte little-endian header length, the JSON header, then the tensor's bytes."""
    count = data_bytes // 4
    header = json.dumps(
        {"weight": {"dtype": "F32", "shape": [count], "data_offsets": [0, count * 4]}, "__metadata__": {"format": "pt"}}
    ).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + count * 4)  # zeros, without holding them in memory


def _train_and_register(folder: Path, *, extra: bool) -> tuple[str, str]:
    """One run of the churn training: the sklearn model logged and registered as the next version of churn."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    features = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    labels = [0, 1, 1, 0]
    with mlflow.start_run(run_name="train" if extra else "retrain") as run:
        if extra:
            frame = pd.DataFrame(features, columns=["tenure", "spend"]).assign(churned=labels)
            dataset = mlflow.data.from_pandas(frame, source="s3://bucket/churn/train.csv", name="churn-train")
            mlflow.log_input(dataset, context="training")
            mlflow.set_tag("mlflow.note.content", NOTE)
            (folder / "data").mkdir(parents=True, exist_ok=True)
            frame.to_csv(folder / "data" / "train.csv", index=False)
            mlflow.log_artifact(str(folder / "data" / "train.csv"), "data")
            mlflow.log_text("scikit-learn\npandas\n", "requirements.txt")
            mlflow.log_text("a,b\n1,2\n", f"data/{LONG_NAME}")
            checkpoint = folder / "model.safetensors"
            write_safetensors(checkpoint, CHECKPOINT_BYTES)
            mlflow.log_artifact(str(checkpoint), "checkpoints")
        model = LogisticRegression().fit(features, labels)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="churn")
    return run.info.run_id, info.model_id


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    import mlflow
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("deployer")
    with mlflow_server(root / "mlflow") as server, mlflow_globals_restored():
        mlflow.set_tracking_uri(server.url)
        experiment_id = mlflow.set_experiment("churn").experiment_id
        _train_and_register(root / "v1", extra=False)
        run_id, model_id = _train_and_register(root / "v2", extra=True)
        _train_and_register(root / "v3", extra=False)
        client = MlflowClient(server.url)
        client.set_registered_model_alias("churn", "champion", "2")
        statuses = {}
        for status in ("FAILED", "RUNNING"):
            with mlflow.start_run(run_name=status.lower()) as run:
                mlflow.log_text("partial", "log.txt")
            client.update_run(run.info.run_id, status=status)
            statuses[status] = run.info.run_id
        with mlflow.start_run(run_name="unregistered") as run:
            mlflow.pyfunc.log_model(name="model", python_model=_Echo())
        yield Scenario(
            server, experiment_id, run_id, model_id, statuses["FAILED"], statuses["RUNNING"], run.info.run_id
        )


class _Echo:
    def __new__(cls):  # a PythonModel made lazily: mlflow is imported by the fixture
        import mlflow.pyfunc

        class Echo(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):  # noqa: ANN001, ANN201 - MLflow's signature
                return model_input

        return Echo()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "deployer-registry", users=USERS)


def dry_run(scenario: Scenario, *args: str, uri: str | None = None) -> dict:
    outcome = run_cli("import", uri or scenario.uri(), "-t", "churn:v2", "--dry-run", "--json", *args)
    assert outcome.code == 0, outcome.stderr
    return outcome.json


def bash_words(line: str) -> list[str]:
    """The words bash reads from a printed command line."""
    done = subprocess.run(
        ["bash", "-c", f'words() {{ printf "%s\\n" "$@"; }}\nwords {line.split(" ", 1)[1]}'],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def next_lines(text: str) -> list[str]:
    return [line.split("next: ", 1)[1] for line in text.splitlines() if "next: " in line]


# -- the Kitfile ---------------------------------------------------------------------------------------------------
def test_the_model_is_the_registered_model_at_its_version(scenario: Scenario, kitmlflow) -> None:
    """A plain run import: the model is named and versioned as registered (churn 2), the library's version is a
    parameter beside its flavor, and the provenance records the registration with its aliases."""
    import sklearn

    document = dry_run(scenario)
    assert document["warnings"] == []
    assert document["registered_model"] == {"name": "churn", "version": "2", "alias": None, "aliases": ["champion"]}
    model = document["kitfile"]["model"]
    assert (model["name"], model["path"], model["version"], model["framework"]) == ("churn", "model", "2", "sklearn")
    assert model["parameters"]["flavor"] == "sklearn"
    assert model["parameters"]["framework_version"] == sklearn.__version__
    assert (
        model["parameters"]["python_version"]
        == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    )
    registered = model["parameters"]["mlflow"]["registered_model"]
    assert registered == {
        "name": "churn", "version": "2", "alias": None, "aliases": ["champion"], "imported_from": "run",
    }  # fmt: skip
    assert model["parameters"]["mlflow"]["datasets"] == [
        {"name": "churn-train", "digest": model["parameters"]["mlflow"]["datasets"][0]["digest"],
         "source_type": "s3", "source": "s3://bucket/churn/train.csv", "context": "training"}
    ]  # fmt: skip


def test_a_registered_version_import_is_that_version(scenario: Scenario, kitmlflow) -> None:
    kitfile = dry_run(scenario, uri=f"mlflow://{scenario.host}/models/churn/3")["kitfile"]
    assert (kitfile["model"]["name"], kitfile["model"]["version"]) == ("churn", "3")
    kitfile = dry_run(scenario, uri=f"mlflow://{scenario.host}/models/churn@champion")["kitfile"]
    assert (kitfile["model"]["name"], kitfile["model"]["version"]) == ("churn", "2")
    registered = kitfile["model"]["parameters"]["mlflow"]["registered_model"]
    assert registered == {"name": "churn", "version": "2", "alias": "champion", "aliases": ["champion"]}
    assert kitfile["model"]["path"] == "model"  # the logged model's folder, not the registered name


def test_an_unregistered_model_takes_the_tags_version(scenario: Scenario, kitmlflow) -> None:
    uri = scenario.uri(scenario.plain_run_id)
    kitfile = dry_run(scenario, uri=uri)["kitfile"]
    assert (kitfile["model"]["name"], kitfile["model"]["version"]) == ("model", "v2")
    assert "registered_model" not in kitfile["model"]["parameters"]["mlflow"]
    outcome = run_cli("import", uri, "-t", "churn", "--dry-run", "--json")
    assert outcome.code == 0 and "version" not in outcome.json["kitfile"]["model"]


def test_the_note_heading_is_the_models_and_its_prose_the_packages(scenario: Scenario, kitmlflow) -> None:
    kitfile = dry_run(scenario)["kitfile"]
    assert kitfile["package"]["description"] == "Predicts which customers leave next month."
    assert kitfile["model"]["description"] == "Churn model"


def test_the_root_requirements_are_code_and_every_entry_has_a_name(scenario: Scenario, kitmlflow) -> None:
    kitfile = dry_run(scenario)["kitfile"]
    parts = kitfile["model"]["parts"]
    assert "requirements.txt" not in [p["path"] for p in parts]
    assert {"path": "requirements.txt", "description": "pip requirements of the run's Python environment"} in kitfile[
        "code"
    ]
    assert all(part.get("name") for part in parts), parts
    assert {"name": "checkpoints/model", "path": "checkpoints/model.safetensors"} in parts  # kit's own name
    # kit init makes data/ one dataset entry: it says which of its files is the input the run logged.
    (data,) = kitfile["datasets"]
    assert (data["name"], data["path"]) == ("data", "data")
    assert data["description"].startswith(
        "train.csv: Training data the run logged as an input (MLflow dataset churn-train"
    )
    assert "s3://bucket/churn/train.csv" in data["description"]
    (record,) = data["parameters"]["mlflow_datasets"]
    assert (record["name"], record["context"], record["source"]) == (
        "churn-train",
        "training",
        "s3://bucket/churn/train.csv",
    )
    assert all(d.get("name") and d.get("description") for d in kitfile["datasets"])
    assert all(c.get("description") for c in kitfile.get("code", []))


# -- filters that leave the model out ------------------------------------------------------------------------------
def test_leaving_out_the_whole_model_is_refused_with_yes(scenario: Scenario, kitmlflow) -> None:
    refused = run_cli("import", scenario.uri(), "-t", "churn:v2", "--yes", "--json", "--include", "checkpoints/")
    assert refused.code == 2, refused.stderr
    assert "no model" in refused.json["error"]["message"] and "--allow-no-model" in refused.json["error"]["message"]
    warned = run_cli("import", scenario.uri(), "-t", "churn:v2", "--dry-run", "--json", "--include", "checkpoints/")
    assert warned.code == 0
    assert len(warned.json["warnings"]) == 1 and "model/" in warned.json["warnings"][0]
    assert "warning:" in warned.stderr
    allowed = run_cli(
        "import", scenario.uri(), "-t", "churn:v2", "--yes", "--json", "--include", "checkpoints/",
        "--allow-no-model", "--packer", "native",
    )  # fmt: skip
    assert allowed.code == 0, allowed.stderr
    assert allowed.json["warnings"] and allowed.json["reference"] == "churn:v2"


def test_a_size_cap_that_drops_the_models_weights_is_said(scenario: Scenario, kitmlflow) -> None:
    outcome = run_cli("import", scenario.uri(), "-t", "churn:v2", "--dry-run", "--json", "--max-file-size", "5KB")
    assert outcome.code == 0, outcome.stderr
    (warning,) = outcome.json["warnings"]
    assert "model.skops" in warning and "may not load" in warning


# -- commands that work where they are pasted ----------------------------------------------------------------------
def test_the_printed_kit_commands_reach_a_loopback_http_registry(
    scenario: Scenario, registry: Registry, kitmlflow, isolated_env: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kitmlflow_tui.cli", "login", registry.host, "-u", "deployer", "--password-stdin"],
        input=PASSWORD, capture_output=True, text=True, env=kitmlflow_subprocess_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = isolated_env / "kitops" / "credentials.json"
    assert f"credentials stored in {stored}" in done.stdout.splitlines()[0]  # one line, however long the path
    target = f"{registry.host}/ml/churn:v2"
    pushed = run_cli("import", scenario.uri(), "-t", target, "--yes", "--push", "--exclude", "checkpoints/")
    assert pushed.code == 0, pushed.stderr
    lines = next_lines(pushed.stdout)
    assert [bash_words(line) for line in lines] == [
        ["pull", target, "--plain-http"],
        ["unpack", target, "-d", "DIR", "--plain-http"],
    ]
    # The run's whole import records churn 2, yet sync does not take it for the version (it holds the whole run).
    synced = run_cli(
        "sync", f"mlflow://{scenario.host}/models/churn/2", "--to", f"{registry.host}/ml/churn", "--dry-run", "--json"
    )
    (record,) = synced.json["records"]
    assert record["action"] == "conflict" and "imported directly" in record["reason"], record


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "deployer-tls-registry", tls=True)


def test_a_push_without_tls_verification_prints_kits_flag_for_it(
    scenario: Scenario, tls_registry: Registry, kitmlflow
) -> None:
    target = f"{tls_registry.host}/ml/churn:v2"
    pushed = run_cli(
        "import", scenario.uri(), "-t", target, "--yes", "--push", "--no-tls-verify", "--exclude", "checkpoints/",
        "--packer", "native",
    )  # fmt: skip
    assert pushed.code == 0, pushed.stderr
    assert [bash_words(line) for line in next_lines(pushed.stdout)] == [
        ["pull", target, "--tls-verify=false"],
        ["unpack", target, "-d", "DIR", "--tls-verify=false"],
    ]


def test_the_login_hint_of_a_refused_push_reaches_the_registry(
    scenario: Scenario, registry: Registry, kitmlflow
) -> None:
    refused = run_cli("import", scenario.uri(), "-t", f"{registry.host}/ml/churn:v9", "--yes", "--push",
                      "--exclude", "checkpoints/", "--packer", "native")  # fmt: skip
    assert refused.code == 3, refused.stderr
    assert f"kit login {registry.host} --plain-http" in refused.stderr
    assert f"kitmlflow login {registry.host} -u USER --password-stdin" in refused.stderr


def test_a_wrong_password_at_login_says_to_check_it(registry: Registry, kitmlflow) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kitmlflow_tui.cli", "login", registry.host, "-u", "deployer", "--password-stdin"],
        input="wrong-password", capture_output=True, text=True, env=kitmlflow_subprocess_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 3
    assert "Log in:" not in done.stderr
    assert f"Check the user name and the password (or token) for {registry.host}" in done.stderr


def test_piped_output_is_never_wrapped(scenario: Scenario, isolated_env: Path) -> None:
    """Off a terminal each record is one line: a long artifact path in the plan table, the next commands."""
    long_home = isolated_env / ("kit-home-" + "k" * 120)
    env = kitmlflow_subprocess_env(KITOPS_HOME=str(long_home), COLUMNS="80")
    done = subprocess.run(
        [sys.executable, "-m", "kitmlflow_tui.cli", "import", scenario.uri(), "-t", "churn:v2", "--yes",
         "--exclude", "checkpoints/", "--packer", "native"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert any(f"data/{LONG_NAME}" in line for line in done.stdout.splitlines()), done.stdout
    assert [bash_words(line) for line in next_lines(done.stdout)] == [
        ["push", "churn:v2", "REGISTRY/REPO:TAG"],
        ["unpack", "churn:v2", "-d", "DIR"],
    ]


def test_no_tracking_server_is_exit_2_and_creates_nothing(tmp_path: Path, isolated_env: Path) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {k: v for k, v in kitmlflow_subprocess_env().items() if not k.startswith("MLFLOW_")}
    commands = [
        ["import", "mlflow://runs/0123456789abcdef0123456789abcdef", "-t", "m:v1", "--yes"],
        ["download", "mlflow://runs/0123456789abcdef0123456789abcdef", "--dest", str(tmp_path / "d"), "--yes"],
        ["sync", "mlflow://models/churn", "--to", "127.0.0.1:1/ml/churn", "--yes"],
    ]
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "kitmlflow_tui.cli", *args], cwd=cwd, capture_output=True, text=True, env=env,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 2, (args, done.stderr)
        assert "No MLflow tracking server is configured" in done.stderr
        for way in ("--tracking-uri", "MLFLOW_TRACKING_URI", "kitmlflow demo"):
            assert way in done.stderr, (way, done.stderr)
        assert list(cwd.iterdir()) == [], args


# -- messages that say the right thing -----------------------------------------------------------------------------
def test_a_failed_run_is_not_told_to_wait(scenario: Scenario, kitmlflow, tmp_path: Path) -> None:
    imported = run_cli("import", scenario.uri(scenario.failed_run_id), "-t", "x:v1", "--yes")
    assert imported.code == 5
    assert "wait" not in imported.stderr.lower() and "will not finish" in imported.stderr
    downloaded = run_cli("download", scenario.uri(scenario.failed_run_id), "--dest", str(tmp_path / "d"), "--yes")
    assert downloaded.code == 5
    assert "Import" not in downloaded.stderr and "--any-status" in downloaded.stderr
    running = run_cli("import", scenario.uri(scenario.running_run_id), "-t", "x:v1", "--yes")
    assert running.code == 5 and "Wait for it to finish" in running.stderr


def test_download_any_status_takes_a_run_that_did_not_finish(scenario: Scenario, kitmlflow, tmp_path: Path) -> None:
    for run_id in (scenario.failed_run_id, scenario.running_run_id):
        dest = tmp_path / run_id
        outcome = run_cli("download", scenario.uri(run_id), "--dest", str(dest), "--yes", "--json", "--any-status")
        assert outcome.code == 0, outcome.stderr
        assert outcome.json["run"]["status"] in ("FAILED", "RUNNING")
        assert (dest / "log.txt").read_text() == "partial"
    refused = run_cli("import", scenario.uri(scenario.failed_run_id), "-t", "x:v1", "--yes", "--any-status")
    assert refused.code == 2  # import keeps the FINISHED rule: no such option


def test_sync_to_a_repository_without_a_registry_names_what_was_typed(scenario: Scenario, kitmlflow) -> None:
    sync = run_cli("sync", f"mlflow://{scenario.host}/models/churn", "--to", "ml/churn", "--yes")
    assert sync.code == 2
    assert "--to 'ml/churn' names no registry" in sync.stderr and ":latest" not in sync.stderr
    assert "-t " not in sync.stderr and "--to registry.example.com/ml/fraud" in sync.stderr


def test_a_missing_registered_model_is_named_once(scenario: Scenario, kitmlflow) -> None:
    missing = run_cli("sync", f"mlflow://{scenario.host}/models/nope", "--to", "127.0.0.1:1/ml/nope", "--dry-run")
    assert missing.code == 4
    (error,) = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: Registered model nope was not found"), missing.stderr


def test_a_run_prefix_in_a_missing_experiment_names_the_experiment(scenario: Scenario, kitmlflow) -> None:
    prefix = scenario.run_id[:8]
    outcome = run_cli("import", f"mlflow://{scenario.host}/experiments/99/runs/{prefix}", "-t", "x:v1", "--yes")
    assert outcome.code == 4
    assert "Experiment 99 was not found" in outcome.stderr, outcome.stderr
    found = run_cli("import", scenario.uri(prefix), "-t", "x:v1", "--dry-run")
    assert found.code == 0, found.stderr  # the same prefix in its own experiment names the run
