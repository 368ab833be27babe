"""Case 4 of docs/reliability.md: a basic-auth mlflow server. test_core_stores covers ``import --dry-run``;
this adds ``download`` and a real import, and looks for the password in every file the run left behind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import AuthConfig, MlflowServer, create_user, grant, mlflow_server, seed_run

PASSWORD = "alice-secret-password-42"
MALLORY_PASSWORD = "mallory-password-1234"
SECRETS = (PASSWORD, MALLORY_PASSWORD, "bogus-token-" + PASSWORD)


@dataclass
class AuthServer:
    server: MlflowServer
    experiment_id: str
    run_id: str
    root: Path

    def uri(self) -> str:
        return f"mlflow://{self.server.url.removeprefix('http://')}/experiments/{self.experiment_id}/runs/{self.run_id}"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("auth-reliability")
    with mlflow_server(root, auth=AuthConfig()) as server:
        exp, run = seed_run(
            server.url,
            experiment_name="private",
            files={"model/MLmodel": b"flavors: {}\n", "w.bin": 100_000},
            env=server.client_env(),
        )
        create_user(server, "alice", PASSWORD)
        create_user(server, "mallory", MALLORY_PASSWORD)
        grant(server, "mallory", exp, "NO_PERMISSIONS")
        yield AuthServer(server, exp, run, root)


def files_containing(root: Path, secrets: tuple[str, ...]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {s[:6]}..." for s in secrets if s.encode() in data]
    return found


CASES = [
    ("no credentials", {}),
    ("wrong password", {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "wrong-" + PASSWORD}),
    ("bogus token", {"MLFLOW_TRACKING_TOKEN": "bogus-token-" + PASSWORD}),
    ("denied user", {"MLFLOW_TRACKING_USERNAME": "mallory", "MLFLOW_TRACKING_PASSWORD": MALLORY_PASSWORD}),
]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["download", "import"])
@pytest.mark.parametrize(("case", "env"), CASES, ids=[c for c, _ in CASES])
def test_auth_failures_are_exit_3_fast_without_leaking(
    auth_server: AuthServer, kitmlflow, isolated_env: Path, command: str, case: str, env: dict[str, str]
) -> None:
    args = (
        ["download", auth_server.uri(), "--dest", str(isolated_env / "dest"), "--yes", "--json"]
        if command == "download"
        else ["import", auth_server.uri(), "-t", "private:v1", "--yes", "--json", "--packer", "native"]
    )
    offset = auth_server.server.log_offset()
    out = kitmlflow(*args, env=env)
    assert out.code == 3, (case, out.stderr)
    # "fast": refused at the first request, never retried (the server's access log, not a clock)
    seen = auth_server.server.requests_since(offset)
    assert 1 <= len(seen) <= 2 and all(r.endswith((" 401", " 403")) for r in seen), seen
    message = out.json["error"]["message"]
    if case == "denied user":
        assert "permission" in message.lower()
    else:
        assert "MLFLOW_TRACKING_USERNAME" in message and "MLFLOW_TRACKING_TOKEN" in message
    assert not any(s in out.stdout + out.stderr for s in SECRETS)
    assert not (isolated_env / "dest").exists()
    assert files_containing(isolated_env, SECRETS) == []


@pytest.mark.slow
def test_a_real_import_with_credentials_never_writes_the_password(
    auth_server: AuthServer, kitmlflow, isolated_env: Path
) -> None:
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    out = kitmlflow("import", auth_server.uri(), "-t", "private:v1", "--yes", "--json", "--packer", "native", env=env)
    assert out.code == 0, out.stderr
    dl = kitmlflow("download", auth_server.uri(), "--dest", str(isolated_env / "dest"), "--yes", "--json", env=env)
    assert dl.code == 0, dl.stderr
    assert (isolated_env / "dest" / "w.bin").stat().st_size == 100_000
    for text in (out.stdout, out.stderr, dl.stdout, dl.stderr):
        assert PASSWORD not in text
    assert "alice" not in out.json["kitfile"]["model"]["parameters"]["mlflow"]["tracking_uri"]
    # Everything the import wrote (kit storage: blobs, Kitfile, indexes; cache) and the server's own log.
    assert files_containing(isolated_env, SECRETS) == []
    assert PASSWORD not in auth_server.server.log_path.read_text(errors="replace")
