"""The core against other real set-ups: S3 artifact stores (moto, proxied and direct) and basic auth."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import AuthConfig, MlflowServer, create_user, grant, mlflow_server, moto_s3, seed_run

FILES: dict[str, bytes | int] = {
    "weights/model.safetensors": 6_000_000,
    "checkpoints/epoch_001.pt": 200_000,
    "README.md": b"# s3 run\n",
    "empty.txt": b"",
}


@dataclass
class SeededServer:
    server: MlflowServer
    experiment_id: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"mlflow://{self.server.url.removeprefix('http://')}/runs/{self.run_id}"


@pytest.fixture(scope="module")
def s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SeededServer]]:
    root = tmp_path_factory.mktemp("s3")
    with (
        moto_s3(root / "moto") as s3,
        mlflow_server(root / "proxied", artifacts="proxied-s3", s3=s3) as proxied,
        mlflow_server(root / "direct", artifacts="direct-s3", s3=s3) as direct,
    ):
        seeded = {}
        for name, server in (("proxied", proxied), ("direct", direct)):
            exp, run = seed_run(
                server.url, experiment_name=name, files=FILES, logged_model=True, env=server.client_env()
            )
            seeded[name] = SeededServer(server, exp, run)
        seeded["s3"] = s3  # type: ignore[assignment]
        yield seeded


def expected_digest(path: str) -> str:
    from tests.support.servers import deterministic_bytes

    content = FILES[path]
    data = content if isinstance(content, bytes) else b"".join(deterministic_bytes(content, f"{path}:{content}"))
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_s3_artifact_stores_download_verified(
    s3_servers, mode: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded: SeededServer = s3_servers[mode]
    for key, value in seeded.server.client_env().items():
        monkeypatch.setenv(key, value)
    s3 = s3_servers["s3"]
    assert any(key.startswith(mode + "/") and key.endswith("weights/model.safetensors") for key in s3.keys(""))
    dest = tmp_path / "dest"
    out = kitmlflow("download", seeded.uri, "--dest", str(dest), "--yes", "--json", "--exclude", "*.pt")
    assert out.code == 0, out.stderr
    doc = out.json
    paths = {f["path"] for f in doc["selected"]}
    assert {"weights/model.safetensors", "README.md", "empty.txt", "model/MLmodel"} <= paths
    assert "checkpoints/epoch_001.pt" not in paths
    assert doc["downloaded_bytes"] == doc["selected_bytes"]
    for path in ("weights/model.safetensors", "README.md", "empty.txt"):
        assert hashlib.sha256((dest / path).read_bytes()).hexdigest() == expected_digest(path), path


@dataclass
class AuthServer:
    server: MlflowServer
    experiment_id: str
    run_id: str

    def uri(self) -> str:
        return f"mlflow://{self.server.url.removeprefix('http://')}/experiments/{self.experiment_id}/runs/{self.run_id}"


PASSWORD = "alice-secret-password-42"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("auth")
    with mlflow_server(root, auth=AuthConfig()) as server:
        exp, run = seed_run(server.url, experiment_name="private", files={"a.txt": b"a"}, env=server.client_env())
        create_user(server, "alice", PASSWORD)
        create_user(server, "mallory", "mallory-password-1234")
        grant(server, "mallory", exp, "NO_PERMISSIONS")
        yield AuthServer(server, exp, run)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("case", "env"),
    [
        ("no credentials", {}),
        ("wrong password", {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "wrong-" + PASSWORD}),
        ("bogus token", {"MLFLOW_TRACKING_TOKEN": "bogus-token-" + PASSWORD}),
        ("denied user", {"MLFLOW_TRACKING_USERNAME": "mallory", "MLFLOW_TRACKING_PASSWORD": "mallory-password-1234"}),
    ],
)
def test_auth_failures_are_exit_3_fast_and_never_print_the_secret(
    auth_server: AuthServer, kitmlflow, case: str, env: dict[str, str]
) -> None:
    offset = auth_server.server.log_offset()
    out = kitmlflow("import", auth_server.uri(), "-t", "x:1", "--dry-run", "--json", env=env)
    assert out.code == 3, (case, out.stderr)
    seen = auth_server.server.requests_since(offset)  # refused at the first request, never retried
    assert 1 <= len(seen) <= 2 and all(r.endswith((" 401", " 403")) for r in seen), seen
    message = out.json["error"]["message"]
    if case == "denied user":
        assert "permission" in message.lower()
    else:
        assert "MLFLOW_TRACKING_USERNAME" in message and "MLFLOW_TRACKING_TOKEN" in message
    for secret in (PASSWORD, "mallory-password-1234"):
        assert secret not in out.stdout + out.stderr


@pytest.mark.slow
def test_the_right_credentials_work(auth_server: AuthServer, kitmlflow) -> None:
    out = kitmlflow(
        "import",
        auth_server.uri(),
        "-t",
        "x:1",
        "--dry-run",
        "--json",
        env={"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD},
    )
    assert out.code == 0, out.stderr
    assert [f["path"] for f in out.json["selected"]] == ["a.txt"]
    assert PASSWORD not in out.stdout + out.stderr
