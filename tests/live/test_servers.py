"""Checks of the test servers themselves (tests/support/servers.py): they start, store where they should,
enforce auth, survive a kill + restart, and leave no process behind."""

from __future__ import annotations

import os

import psutil
import pytest
import requests

from tests.support.servers import (
    AuthConfig,
    ServerStartError,
    create_user,
    free_port,
    grant,
    mlflow_server,
    moto_s3,
    seed_run,
    temp_env,
)

SEARCH = "/api/2.0/mlflow/experiments/search"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _tree(pid: int) -> list[int]:
    return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]


def test_free_port_is_bindable_and_not_repeated():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 <= p <= 65535 for p in ports)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["moto", "mlflow"])
def test_a_port_taken_before_the_server_binds_it_is_retried_on_another(kind: str, tmp_path) -> None:
    """The race free_port() cannot see: another process binds the port before the server does. The first
    start is handed a port held by a real listening socket; the server fails to bind, and the next start
    gets a free port and serves."""
    import socket

    from tests.support import servers

    with socket.socket() as taken:
        taken.bind((servers.HOST, 0))
        taken.listen()
        held = taken.getsockname()[1]
        ports: list[int] = []
        log = tmp_path / f"{kind}.log"

        def start(port: int):
            port = held if not ports else port
            ports.append(port)
            if kind == "moto":
                cmd, health = [servers.MOTO_BIN, "-H", servers.HOST, "-p", str(port)], "/moto-api/"
            else:
                db = f"sqlite:///{tmp_path / 'mlflow.db'}"
                cmd = [servers.MLFLOW_BIN, "server", "--backend-store-uri", db, "--host", servers.HOST]
                cmd, health = [*cmd, "--port", str(port), "--workers", "1"], "/health"
            proc = servers._spawn(cmd, servers._server_env({}), log, tmp_path)
            servers._wait_ready(proc, f"http://{servers.HOST}:{port}{health}", log, kind)
            return proc

        proc = servers.start_on_a_free_port(start, log)
        try:
            assert ports[0] == held and len(ports) == 2 and ports[1] != held, ports
            assert proc.poll() is None
        finally:
            servers._terminate(proc)


def test_temp_env_restores_everything(monkeypatch):
    monkeypatch.setenv("KITMLFLOW_A", "1")
    monkeypatch.delenv("KITMLFLOW_B", raising=False)
    with temp_env(KITMLFLOW_A=None, KITMLFLOW_B="2"):
        assert "KITMLFLOW_A" not in os.environ
        assert os.environ["KITMLFLOW_B"] == "2"
        os.environ["KITMLFLOW_C"] = "3"
    assert os.environ["KITMLFLOW_A"] == "1"
    assert "KITMLFLOW_B" not in os.environ
    assert "KITMLFLOW_C" not in os.environ


@pytest.mark.slow
def test_plain_server_health_seed_list_kill_restart(tmp_path):
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path / "mlf") as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert requests.get(f"{srv.url}/health", timeout=5).status_code == 200
        tree = _tree(srv.pid)
        assert len(tree) == 2, "mlflow supervisor + one uvicorn worker, no job runner"

        exp_id, run_id = seed_run(
            srv.url,
            experiment_name="plain",
            files={"weights/model.bin": 3000, "config.json": b"{}", "data/a/b.txt": b"x"},
        )
        client = MlflowClient(tracking_uri=srv.url)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.experiment_id == exp_id
        top = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
        assert top == {("config.json", False, 2), ("data", True, None), ("weights", True, None)}
        assert [(f.path, f.file_size) for f in client.list_artifacts(run_id, "weights")] == [
            ("weights/model.bin", 3000)
        ]
        assert (srv.root / "art" / exp_id / run_id / "artifacts" / "weights" / "model.bin").stat().st_size == 3000

        # a crash, then a restart on the same port with the same store
        port, old_pid = srv.port, srv.pid
        srv.kill()
        assert all(_gone(pid) for pid in tree)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{srv.url}/health", timeout=5)
        srv.restart()
        assert srv.port == port and srv.pid != old_pid
        assert MlflowClient(tracking_uri=srv.url).get_run(run_id).info.status == "FINISHED"
        tree = _tree(srv.pid)
    assert all(_gone(pid) for pid in tree), "stop() leaves no process behind"
    assert "GET /health" in srv.log_path.read_text()


@pytest.mark.slow
def test_seed_run_statuses_and_logged_model(tmp_path):
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path / "mlf") as srv:
        exp_id, run_id = seed_run(
            srv.url, experiment_name="models", files={"notes.txt": b"n"}, logged_model=True, status="FAILED"
        )
        _, running_id = seed_run(srv.url, experiment_name="models", files={}, status="RUNNING")
        client = MlflowClient(tracking_uri=srv.url)
        assert client.get_run(run_id).info.status == "FAILED"
        assert client.get_run(running_id).info.status == "RUNNING"
        models = client.search_logged_models([exp_id], filter_string=f"source_run_id = '{run_id}'")
        assert [m.name for m in models] == ["model"]
        names = {f.path for f in client.list_logged_model_artifacts(models[0].model_id)}
        assert "MLmodel" in names
        # the run's own artifact root does not show the MLflow 3 logged model
        assert [f.path for f in client.list_artifacts(run_id)] == ["notes.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["proxied-s3", "direct-s3"])
def test_s3_artifacts_land_in_moto_bucket(tmp_path, mode):
    from mlflow.tracking import MlflowClient

    with moto_s3(tmp_path / "s3") as s3, mlflow_server(tmp_path / "mlf", artifacts=mode, s3=s3) as srv:
        env = srv.client_env()
        assert ("MLFLOW_S3_ENDPOINT_URL" in env) == (mode == "direct-s3")
        exp_id, run_id = seed_run(
            srv.url, experiment_name=mode, files={"w/model.bin": 1234, "README.md": b"hi"}, env=env
        )
        prefix = mode.split("-")[0]
        keys = s3.keys(prefix)
        assert f"{prefix}/{exp_id}/{run_id}/artifacts/w/model.bin" in keys
        assert f"{prefix}/{exp_id}/{run_id}/artifacts/README.md" in keys
        body = s3.client().get_object(Bucket=s3.bucket, Key=f"{prefix}/{exp_id}/{run_id}/artifacts/README.md")
        assert body["Body"].read() == b"hi"
        with temp_env(env):
            client = MlflowClient(tracking_uri=srv.url)
            run = client.get_run(run_id)
            assert run.info.artifact_uri.startswith("s3://" if mode == "direct-s3" else "mlflow-artifacts:")
            listed = {(f.path, f.file_size) for f in client.list_artifacts(run_id, "w")}
            assert listed == {("w/model.bin", 1234)}
        assert not (srv.root / "art").exists()
    assert _gone(s3.pid) and _gone(srv.pid)


@pytest.mark.slow
def test_basic_auth(tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    auth = AuthConfig()
    with mlflow_server(tmp_path / "mlf", auth=auth) as srv:
        url = f"{srv.url}{SEARCH}"
        assert requests.get(f"{srv.url}/health", timeout=5).status_code == 200
        assert requests.get(url, params={"max_results": 5}, timeout=5).status_code == 401
        wrong = (auth.admin_user, "not-the-password")
        assert requests.get(url, params={"max_results": 5}, auth=wrong, timeout=5).status_code == 401
        admin = (auth.admin_user, auth.admin_password)
        assert requests.get(url, params={"max_results": 5}, auth=admin, timeout=5).status_code == 200

        exp_id, run_id = seed_run(srv.url, experiment_name="secret", files={"a.txt": b"a"}, env=srv.client_env())
        open_exp, open_run = seed_run(srv.url, experiment_name="open", files={"b.txt": b"b"}, env=srv.client_env())
        create_user(srv, "alice", "alice-password-123")
        grant(srv, "alice", exp_id, "NO_PERMISSIONS")
        alice = ("alice", "alice-password-123")
        get_run = f"{srv.url}/api/2.0/mlflow/runs/get"
        assert requests.get(get_run, params={"run_id": run_id}, auth=alice, timeout=5).status_code == 403
        assert requests.get(get_run, params={"run_id": open_run}, auth=alice, timeout=5).status_code == 200
        assert requests.get(get_run, params={"run_id": run_id}, auth=admin, timeout=5).status_code == 200

        with temp_env(MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD="alice-password-123"):
            client = MlflowClient(tracking_uri=srv.url)
            with pytest.raises(MlflowException) as err:
                client.get_run(run_id)
            assert err.value.error_code == "PERMISSION_DENIED"
            assert client.get_run(open_run).info.experiment_id == open_exp
        with temp_env(MLFLOW_TRACKING_USERNAME=None, MLFLOW_TRACKING_PASSWORD=None):
            with pytest.raises(MlflowException) as err:
                MlflowClient(tracking_uri=srv.url).get_run(run_id)
            assert err.value.error_code == "UNAUTHENTICATED"


@pytest.mark.slow
def test_failed_start_fails_early_with_the_log_tail(tmp_path):
    with pytest.raises(ServerStartError) as err, mlflow_server(tmp_path / "bad", extra_args=["--no-such-option"]):
        pass
    assert "exited with code" in str(err.value), "an exited server is reported at once, not after the timeout"
    assert "no-such-option" in str(err.value)  # click's message, from the log tail
