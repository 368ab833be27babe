"""The core against other real set-ups: S3 artifact stores (moto, proxied and direct) and basic auth."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import (
    AuthConfig,
    MlflowServer,
    create_user,
    deterministic_bytes,
    grant,
    mlflow_server,
    moto_s3,
    seed_run,
)

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


# -- presigned URLs: a proxied S3 store's large file read from the store itself ------------------------------
BIG = 40_000_000  # above PRESIGNED_MIN_BYTES, and large enough for the transfer engine to split


def _big_file_run(s3_servers) -> tuple[SeededServer, str]:
    seeded: SeededServer = s3_servers["proxied"]
    _, run = seed_run(
        seeded.server.url,
        experiment_name="presigned",
        files={"weights/big.bin": BIG, "notes.txt": b"small files go through the proxy\n"},
        env=seeded.server.client_env(),
    )
    return seeded, f"mlflow://{seeded.server.url.removeprefix('http://')}/runs/{run}"


def _moto_gets(s3, name: str, since: int) -> list[str]:
    """moto's access-log lines of GETs of ``name`` after ``since``, without werkzeug's colour codes."""
    with open(s3.log_path, encoding="utf-8", errors="replace") as log:
        log.seek(since)
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in log]
    return [line for line in lines if '"GET ' in line and name in line]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_large_file_of_a_proxied_s3_store_is_read_from_the_store_through_a_presigned_url(
    s3_servers, kitmlflow, tmp_path: Path
) -> None:
    """MLflow >= 3.9 signs URLs for a proxied S3 store (server-info: multipart_downloads_enabled): the large file's
    bytes come from the store in ranges, the server only signs; small files still come through the proxy; the
    signature is never printed."""
    seeded, uri = _big_file_run(s3_servers)
    s3 = s3_servers["s3"]
    server_offset, moto_offset = seeded.server.log_offset(), s3.log_path.stat().st_size
    dest = tmp_path / "dest"
    out = kitmlflow("download", uri, "--dest", str(dest), "--yes", "--json", "--jobs", "4")
    assert out.code == 0, out.stderr
    expected = b"".join(deterministic_bytes(BIG, f"weights/big.bin:{BIG}"))
    assert hashlib.sha256((dest / "weights/big.bin").read_bytes()).digest() == hashlib.sha256(expected).digest()
    served = seeded.server.requests_since(server_offset)
    assert any(r.startswith("GET /api/3.0/mlflow/server-info 200") for r in served), served
    assert [r for r in served if "/mlflow-artifacts/presigned/" in r and "big.bin" in r and r.endswith(" 200")]
    assert not [r for r in served if "/mlflow-artifacts/artifacts/" in r and "big.bin" in r], served
    assert [r for r in served if "/mlflow-artifacts/artifacts/" in r and "notes.txt" in r], served
    gets = _moto_gets(s3, "big.bin", moto_offset)
    assert len(gets) >= 2 and any('" 206 ' in line for line in gets), f"not read in parallel ranges: {gets}"
    assert "X-Amz-Signature" not in out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_presigned_urls_are_not_asked_for_when_the_user_turned_them_off(s3_servers, kitmlflow, tmp_path: Path) -> None:
    """``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false`` means what it means to MLflow's own client: the proxy
    serves every byte."""
    seeded, uri = _big_file_run(s3_servers)
    offset = seeded.server.log_offset()
    out = kitmlflow(
        "download",
        uri,
        "--dest",
        str(tmp_path / "dest"),
        "--yes",
        "--json",
        env={"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"},
    )
    assert out.code == 0, out.stderr
    assert (tmp_path / "dest/weights/big.bin").stat().st_size == BIG
    served = seeded.server.requests_since(offset)
    assert not [r for r in served if "/presigned/" in r or "server-info" in r], served
    assert [r for r in served if "/mlflow-artifacts/artifacts/" in r and "big.bin" in r], served


LONE = 80_000_000  # a half of it still over twice the split size, for the workers that wake late


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_a_lone_large_file_of_an_s3_store_is_read_as_parallel_ranges(
    s3_servers, mode: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 1: a file alone in its run (or alone in the selection) is split across the workers, through a
    presigned URL (proxied S3) and read directly (direct S3): moto's access log shows more than one GET of it."""
    seeded: SeededServer = s3_servers[mode]
    for key, value in seeded.server.client_env().items():
        monkeypatch.setenv(key, value)
    _, run = seed_run(
        seeded.server.url,
        experiment_name=f"lone-{mode}",
        files={"weights/lone.bin": LONE},
        env=seeded.server.client_env(),
    )
    s3 = s3_servers["s3"]
    since = s3.log_path.stat().st_size
    uri = f"mlflow://{seeded.server.url.removeprefix('http://')}/runs/{run}"
    out = kitmlflow("download", uri, "--dest", str(tmp_path / "dest"), "--yes", "--json", "--jobs", "4")
    assert out.code == 0, out.stderr
    expected = b"".join(deterministic_bytes(LONE, f"weights/lone.bin:{LONE}"))
    assert (
        hashlib.sha256((tmp_path / "dest/weights/lone.bin").read_bytes()).digest() == hashlib.sha256(expected).digest()
    )
    gets = _moto_gets(s3, "lone.bin", since)
    assert len(gets) >= 2 and any('" 206 ' in line for line in gets), f"read by one stream: {gets}"
