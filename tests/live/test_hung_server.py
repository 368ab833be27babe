"""A hung tracking server (docs/reliability.md, "Waiting"): a real ``mlflow server`` paused with SIGSTOP keeps
accepting connections (the kernel answers for it) and never answers. One knob, ``MLFLOW_HTTP_REQUEST_TIMEOUT``
(30 s unless set), bounds every MLflow request, and MLflow's retries do not ask a silent server again. The
requests are counted by a relay in front of the server (a paused server logs nothing, and drops what its clients
gave up on); ``pytest.mark.timeout`` is the hang guard (before: three attempts of 60 s each, 186 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.emulators import ThrottledProxy
from tests.support.servers import mlflow_server, seed_run


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("timeout", [None, "3"])
def test_a_paused_tracking_server_fails_an_import_after_one_request_timeout_with_exit_6(
    timeout: str | None, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if timeout is None:
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)  # the default: 30 s
    else:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout)  # MLflow's own variable, as the user set it
    with mlflow_server(tmp_path / "server") as server, ThrottledProxy(server.port, 10**9) as relay:
        _, run = seed_run(server.url, experiment_name="hung", files={"a.txt": b"a"})
        server.pause()
        try:
            out = kitmlflow("import", f"mlflow://127.0.0.1:{relay.port}/runs/{run}", "-t", "hung:v1", "--yes", "--json")
        finally:
            server.resume()
        asked = list(relay.request_lines)
    assert out.code == 6, out.stderr
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" in out.json["error"]["message"]
    assert len(asked) == 1 and "/runs/get" in asked[0], f"the silent server was asked again: {asked}"
