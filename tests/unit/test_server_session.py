"""``ServerSession`` sends what MLflow's ``http_request`` sends, and fails as it fails: the same request line and
headers (MLflow's, the credentials', requests'), redirects followed, MLflow's exception when no answer comes, MLflow's
retries for a listing and none for a transfer. A recording HTTP server on 127.0.0.1 sees both; an MLflow upgrade that
changes what ``http_request`` sends (or moves what the session relies on) fails here."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kitmlflow_tui.core.catalogue.http_limits import configure_http
from kitmlflow_tui.core.download.transports.server_session import ServerSession


class Recorder:
    """What the server saw: (path, headers) of each request; ``/busy`` answers 503 ``busy`` times, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.busy = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                recorder.requests.append((self.path, dict(self.headers.items())))
                if self.path.startswith("/moved"):
                    self.send_response(302)
                    self.send_header("Location", "/target")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 200
                if self.path.startswith("/busy") and recorder.busy:
                    recorder.busy -= 1
                    status = 503
                body = self.path.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    configure_http()  # as every command does before its first request
    server = Recorder()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def creds(url: str, **fields: object):
    from mlflow.utils.rest_utils import MlflowHostCreds

    return MlflowHostCreds(url, **fields)


@pytest.mark.parametrize(
    "fields",
    [{}, {"username": "ann", "password": "s3cret"}, {"token": "tok-123"}],
    ids=["anonymous", "basic", "bearer"],
)
def test_a_get_sends_what_mlflows_http_request_sends(recorder: Recorder, fields: dict) -> None:
    from mlflow.utils.rest_utils import http_request

    target = "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/a%20b/c.bin"
    extra = {"Range": "bytes=5-9", "If-Range": '"etag"'}
    http_request(creds(recorder.url, **fields), target, "GET", stream=True, extra_headers=extra, max_retries=0).close()
    session = ServerSession(creds(recorder.url, **fields))
    assert session.direct, "MLflow moved what the session relies on: every GET would go through http_request"
    session.get(target, headers=extra, stream=True).close()
    query = {"path": "1/r/artifacts/dir with spaces/ü"}
    http_request(creds(recorder.url, **fields), "/api/2.0/mlflow-artifacts/artifacts", "GET", params=query)
    session.get("/api/2.0/mlflow-artifacts/artifacts", query=query, stream=False)
    (mlflow_file, ours_file), (mlflow_list, ours_list) = recorder.requests[:2], recorder.requests[2:]
    assert ours_file == mlflow_file
    assert ours_list == mlflow_list
    if fields:
        assert "Authorization" in ours_file[1]


def test_credentials_that_sign_each_request_go_through_http_request(recorder: Recorder) -> None:
    assert not ServerSession(creds(recorder.url, aws_sigv4=True)).direct


def test_a_listing_reads_its_answer_and_a_transfer_leaves_it_to_the_caller(recorder: Recorder) -> None:
    session = ServerSession(creds(recorder.url))
    listing = session.get("/list", query={"path": "x"}, stream=False)
    assert listing.content == b"/list?path=x"
    transfer = session.get("/file", stream=True)
    assert transfer.raw.read() == b"/file"


def test_a_redirect_is_followed_as_mlflow_follows_it(recorder: Recorder) -> None:
    response = ServerSession(creds(recorder.url)).get("/moved", stream=True)
    assert response.status_code == 200 and response.raw.read() == b"/target"
    assert [path for path, _ in recorder.requests][-2:] == ["/moved", "/target"]


def test_a_listing_is_retried_as_mlflow_retries_it_and_a_transfer_is_not(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    session = ServerSession(creds(recorder.url))
    recorder.busy = 1
    assert session.get("/busy", stream=False).content == b"/busy"  # a 503, then the answer
    recorder.busy = 1
    with pytest.raises(MlflowException, match="/busy"):
        session.get("/busy", stream=True)  # the transfer engine retries from the byte it reached, not here
    assert [path for path, _ in recorder.requests] == ["/busy"] * 3


def test_no_answer_is_mlflows_exception_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    configure_http()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(MlflowException, match=f"127.0.0.1:{port}/file") as refused:
        ServerSession(creds(f"http://127.0.0.1:{port}")).get("/file", stream=True)
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in str(refused.value)  # refused, not timed out
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts; nobody answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(MlflowException, match="MLFLOW_HTTP_REQUEST_TIMEOUT"):
            ServerSession(creds(url)).get("/file", stream=True)
