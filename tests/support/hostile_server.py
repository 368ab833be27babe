"""A hostile stand-in for an MLflow tracking server: the one test double of the suite (it plays the attacker).

It speaks just enough of MLflow's REST API for ``kitmlflow import/download`` of one run, with the shapes a
real ``mlflow server`` 3.x answers (watched in its access log while kitmlflow talked to it):

- ``GET  /api/2.0/mlflow/runs/get?run_id=R``                      → ``{"run": {"info", "data", ...}}``
- ``GET  /api/2.0/mlflow/experiments/get?experiment_id=E``         → ``{"experiment": {...}}``
- ``POST /api/2.0/mlflow/logged-models/search``                    → ``{"models": []}``
- ``POST /api/2.0/mlflow/experiments/search``                      → ``{"experiments": [the one]}``
- ``POST /api/2.0/mlflow/runs/search``                             → ``{"runs": [the one]}``
- ``GET  /api/2.0/mlflow-artifacts/artifacts?path=E/R/artifacts[/DIR]`` → ``{"files": [{"path", "is_dir", "file_size"}]}``
  (``path`` is the name inside the listed folder)
- ``GET  /api/2.0/mlflow-artifacts/artifacts/E/R/artifacts/PATH`` → the bytes: ``Range`` honoured with a 206 and its
  ``Content-Range``, a strong ``ETag`` (and ``Last-Modified``) naming the content, ``If-Range`` honoured, as MLflow
  3.17 serves a local artifact store
- ``GET  /api/2.0/mlflow/model-versions/search``                  → one version of ``MODEL_NAME`` a page, and
  a ``next_page_token`` (for ``kitmlflow sync``); or every number of ``Scenario.model_versions`` in one page
- ``GET  /api/2.0/mlflow/model-versions/get?name=N&version=V``   → ``{"model_version": {...}}`` (one listed)
- ``GET  /api/2.0/mlflow/registered-models/get?name=N``           → ``{"registered_model": {...}}``, no aliases

Everything it lists and sends is decided by a :class:`Scenario`, which is where the attacks live:
listing entries with ``..``, absolute paths or backslashes, sizes that lie, endless or huge listings,
huge JSON documents, downloads that never end or stall. It runs as a thread in the test process on
127.0.0.1 and stops (stalled handlers included) when the context manager exits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.served import ServedInThread, serving

EXPERIMENT_ID = "7"
RUN_ID = "0123456789abcdef0123456789abcdef"
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PRESIGNED = "/api/2.0/mlflow-artifacts/presigned"
SERVER_INFO = "/api/3.0/mlflow/server-info"
STORE = "/store"  # the "cloud store" a presigned URL points at: this server again, on another route
SIGNATURE = "X-Amz-Signature=hostile-signature-0123456789abcdef"
ROOT = f"{EXPERIMENT_ID}/{RUN_ID}/artifacts"
MODEL_NAME = "hostile-model"

HOSTILE_EXPERIMENT = {
    "experiment_id": EXPERIMENT_ID,
    "name": "hostile",
    "artifact_location": f"mlflow-artifacts:/{EXPERIMENT_ID}",
    "lifecycle_stage": "active",
}

Listing = list[dict]  # [{"path": name, "is_dir": bool, "file_size": int}] as the server sends them


def file(name: str, size: int) -> dict:
    return {"path": name, "is_dir": False, "file_size": size}


def folder(name: str) -> dict:
    return {"path": name, "is_dir": True}


@dataclass
class Content:
    """What a download of one path sends. ``data`` is the honest content; the flags make it lie."""

    data: bytes = b""
    endless: bool = False  # after data, keep sending forever (no Content-Length)
    stall_after: int | None = None  # send this many bytes, then go silent (connection left open)
    declared_length: int | None = None  # Content-Length to claim (default: len(data))
    gate: threading.Event | None = None  # with stall_after: send the rest once this is set
    stalls: int | None = None  # with stall_after: stall only in the first N requests (None: in every one)
    first_byte_delay: float = 0.0  # seconds before the answer's first byte (a proxy fetching a big object)
    trickle_after: int | None = None  # send this many bytes at once, then 1 KiB every 50 ms (a live, slow transfer)
    # How a ranged request is answered: "honest" (206, the range, its Content-Range), or a lie: "shifted" (206,
    # as many bytes from offset 0, as their Content-Range says), "no-content-range" (206, the right bytes, no
    # Content-Range), "wrong-total" (206, the right bytes, a Content-Range total one byte larger than the data),
    # "tail-as-200" (200 with the range's bytes, as if they were the whole object).
    ranges: str = "honest"
    ignore_if_range: bool = False  # answer a range even when If-Range names another version


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@dataclass
class Scenario:
    """The run the server pretends to hold. ``listing(dir)`` answers a folder listing (dir relative to
    the run's artifact root, "" for the root); ``contents`` maps a path to what its download sends."""

    listing: Callable[[str], Listing] = lambda _dir: []
    contents: dict[str, Content] = field(default_factory=dict)
    status: str = "FINISHED"
    run_json_padding: int = 0  # bytes of junk tag values added to runs/get (a huge JSON document)
    run_json_endless: bool = False  # runs/get streams a JSON document that never ends
    run_json_trickle: bool = False  # runs/get sends its document one byte every 0.2 s, forever
    stall_listing: bool = False  # listings never answer
    # A server that leaks what it was sent: the Authorization header and the password it decodes from it,
    # in the body of an error (HTTP status ``echo_status``) on the routes named in ``echo_on`` ("run",
    # "list", "download", "models" for logged-models/search), for the first ``echo_times`` requests to each (None: every time).
    echo_status: int = 403
    echo_on: tuple[str, ...] = ()
    echo_times: int | None = None
    # The searches (model-versions, logged-models, experiments, runs) page as ``page_token`` says: the
    # next_page_token after page N (0, 1, ... of that search), None for the last page (a real server's one page
    # by default); each page after ``page_delay`` seconds.
    page_token: Callable[[int], str | None] = lambda _page: None
    page_delay: float = 0.0
    # Presigned URLs (MLflow >= 3.9): server-info says multipart_downloads_enabled and the presigned endpoint
    # signs a URL of the STORE route, which serves the contents with ranges, or answers ``store_status``
    # instead; ``store_unreachable`` signs a URL of a port nobody listens on.
    presigned: bool = False
    store_status: int | None = None
    store_unreachable: bool = False
    store_expired_first: int = 0  # the store answers 403 to this many first requests (URLs that expired)
    store_host: str | None = None  # the host the signed URL names (default 127.0.0.1): "0.0.0.0", "169.254.169.254"
    store_headers: dict[str, str] = field(default_factory=lambda: {"x-hostile": "1"})  # what the server signs with
    store_data: dict[str, bytes] = field(default_factory=dict)  # what the store holds instead of the listed bytes
    store_ranges: str = "honest"  # how the store answers a range (see ``Content.ranges``)
    store_stall_after: int | None = None  # the store's first answer goes silent after this many bytes
    store_md5: dict[str, bytes] = field(default_factory=dict)  # the MD5 its ETag claims (default: the data's, as S3)
    # The version numbers of MODEL_NAME, all in one page of model-versions/search (else one version a page).
    model_versions: tuple[str, ...] = ()


class HostileServer(ServedInThread):
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.stopping = threading.Event()
        self.requests: list[str] = []  # "METHOD path?query", in order
        self.listings = 0
        self.downloads: list[tuple[str, str]] = []  # (decoded path, Range header or ""), in order
        self.store_reads: list[tuple[str, str]] = []  # the same, of the STORE route (presigned URLs)
        self.store_authorizations: list[str] = []  # Authorization headers the STORE route received
        self.store_headers_seen: list[dict[str, str]] = []  # every header the STORE route received, per request
        self.pages_sent: dict[str, int] = {}  # search ("model-versions", "logged-models", ...) -> pages answered
        self.echoed: dict[str, int] = {}  # route -> error bodies sent with the credentials in them
        self.authorizations: set[str] = set()  # every Authorization header received
        self._lock = threading.Lock()
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        with socket.socket() as probe:  # a port that was free a moment ago and that nobody listens on
            probe.bind(("127.0.0.1", 0))
            self.closed_port = probe.getsockname()[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hostile-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri(self) -> str:
        return f"mlflow://127.0.0.1:{self.port}/experiments/{EXPERIMENT_ID}/runs/{RUN_ID}"

    def record(self, line: str, *, listing: bool = False) -> None:
        with self._lock:
            if len(self.requests) < 10_000:
                self.requests.append(line)
            if listing:
                self.listings += 1

    def should_echo(self, route: str) -> bool:
        with self._lock:
            times = self.scenario.echo_times
            if route not in self.scenario.echo_on or (times is not None and self.echoed.get(route, 0) >= times):
                return False
            self.echoed[route] = self.echoed.get(route, 0) + 1
            return True


def hostile_server(scenario: Scenario) -> contextlib.AbstractContextManager[HostileServer]:
    return serving(HostileServer(scenario))


def run_document(scenario: Scenario) -> dict:
    tags = [{"key": "mlflow.runName", "value": "hostile"}, {"key": "mlflow.user", "value": "eve"}]
    if scenario.run_json_padding:
        chunk = "x" * 1_000_000
        for index in range(scenario.run_json_padding // len(chunk) + 1):
            tags.append({"key": f"pad{index}", "value": chunk})
    return {
        "run": {
            "info": {
                "run_id": RUN_ID,
                "run_uuid": RUN_ID,
                "experiment_id": EXPERIMENT_ID,
                "run_name": "hostile",
                "user_id": "eve",
                "status": scenario.status,
                "start_time": 1_700_000_000_000,
                "end_time": 1_700_000_100_000,
                "artifact_uri": f"mlflow-artifacts:/{ROOT}",
                "lifecycle_stage": "active",
            },
            "data": {"metrics": [], "params": [], "tags": tags},
            "inputs": {},
            "outputs": {},
        }
    }


def model_version(number: str) -> dict:
    """A READY version of MODEL_NAME whose source is the run's ``model`` folder."""
    return {
        "name": MODEL_NAME,
        "version": number,
        "status": "READY",
        "run_id": RUN_ID,
        "source": f"mlflow-artifacts:/{ROOT}/model",
    }


def _make_handler(server: HostileServer) -> type[BaseHTTPRequestHandler]:  # noqa: C901
    scenario = server.scenario

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def handle(self) -> None:
            # a client that drops an answer it refuses resets the connection: no news
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        # -- helpers ---------------------------------------------------------------------------
        def _json(self, document: dict, status: int = 200) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _echo_credentials(self, route: str) -> bool:
            """The leak: answer with an error whose body repeats the credentials, when the scenario says so."""
            authorization = self.headers.get("Authorization", "")
            if authorization:
                with server._lock:
                    server.authorizations.add(authorization)
            if not server.should_echo(route):
                return False
            decoded = ""
            if authorization.startswith("Basic "):
                decoded = base64.b64decode(authorization[len("Basic ") :]).decode("utf-8", "replace")
            bare = authorization.split(" ", 1)[-1]
            message = f"access denied for {authorization} (user:password {decoded}); token={bare}"
            codes = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND"}
            self._json(
                {"error_code": codes.get(scenario.echo_status, "INTERNAL_ERROR"), "message": message},
                scenario.echo_status,
            )
            return True

        def _not_found(self) -> None:
            self._json({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No {self.path}"}, 404)

        def _sleep_until_stopped(self) -> None:
            while not server.stopping.wait(0.2):
                pass

        # -- routes ------------------------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            server.record(f"POST {self.path}")
            if urlsplit(self.path).path == f"{API}/logged-models/search" and self._echo_credentials("models"):
                return
            path = urlsplit(self.path).path
            if path == f"{API}/logged-models/search":
                self._page("logged-models", lambda _page: {"models": []})
            elif path == f"{API}/runs/search":
                self._page("runs", lambda _page: {"runs": [run_document(scenario)["run"]]})
            elif path == f"{API}/experiments/search":
                self._page("experiments", lambda _page: {"experiments": [HOSTILE_EXPERIMENT]})
            else:
                self._not_found()

        def _page(self, search: str, document_for: Callable[[int], dict]) -> None:
            """Page N of a search (``document_for(N)``), with the next_page_token the scenario gives it."""
            with server._lock:
                page = server.pages_sent.get(search, 0)
                server.pages_sent[search] = page + 1
            time.sleep(scenario.page_delay)
            document, token = document_for(page), scenario.page_token(page)
            self._json({**document, "next_page_token": token} if token else document)

        def do_GET(self) -> None:  # noqa: N802
            server.record(f"GET {self.path}")
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            try:
                route = {f"{API}/runs/get": "run", ARTIFACTS: "list"}.get(parts.path, "other")
                if parts.path.startswith(ARTIFACTS + "/"):
                    route = "download"
                if self._echo_credentials(route):
                    return
                if parts.path == f"{API}/runs/get":
                    self._run()
                elif parts.path == f"{API}/experiments/get":
                    self._json({"experiment": HOSTILE_EXPERIMENT})
                elif parts.path == ARTIFACTS:
                    self._list(query.get("path", [""])[0])
                elif parts.path == f"{API}/model-versions/search":
                    self._model_versions()
                elif (
                    parts.path == f"{API}/model-versions/get"
                    and query.get("version", [""])[0] in scenario.model_versions
                ):
                    self._json({"model_version": model_version(query["version"][0])})
                elif parts.path == f"{API}/registered-models/get" and query.get("name") == [MODEL_NAME]:
                    self._json({"registered_model": {"name": MODEL_NAME, "aliases": []}})
                elif parts.path.startswith(ARTIFACTS + "/" + ROOT + "/"):
                    self._download(unquote(parts.path[len(ARTIFACTS + "/" + ROOT + "/") :]))
                elif parts.path == SERVER_INFO:
                    self._json({"store_type": "SqlStore", "multipart_downloads_enabled": scenario.presigned})
                elif parts.path.startswith(PRESIGNED + "/" + ROOT + "/") and scenario.presigned:
                    self._sign(unquote(parts.path[len(PRESIGNED + "/" + ROOT + "/") :]))
                elif parts.path.startswith(STORE + "/"):
                    self._store(unquote(parts.path[len(STORE + "/") :]))
                else:
                    self._not_found()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on us: that is the point of most scenarios

        def _sign(self, path: str) -> None:
            content = scenario.contents.get(path)
            if content is None:
                self._not_found()
                return
            host = f"http://127.0.0.1:{server.closed_port}" if scenario.store_unreachable else server.url
            if scenario.store_host is not None:
                host = f"http://{scenario.store_host}:{server.port}"
            url = f"{host}{STORE}/{quote(path)}?{SIGNATURE}"
            self._json({"url": url, "headers": dict(scenario.store_headers), "file_size": len(content.data)})

        def _store(self, path: str) -> None:
            ranged = self.headers.get("Range", "")
            with server._lock:
                server.store_reads.append((path, ranged))
                server.store_headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                if self.headers.get("Authorization"):
                    server.store_authorizations.append(self.headers["Authorization"])
            content = scenario.contents.get(path)
            expired = len(server.store_reads) <= scenario.store_expired_first
            if content is None or scenario.store_status is not None or expired:
                self.send_response(403 if expired else scenario.store_status or 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = scenario.store_data.get(path, content.data)
            md5 = scenario.store_md5.get(path, hashlib.md5(data).digest())  # S3's ETag of a one-part object
            extra = {"x-amz-request-id": "hostile", "ETag": '"' + md5.hex() + '"'}
            stall = scenario.store_stall_after if len(server.store_reads) == 1 else None
            self._ranged(data, scenario.store_ranges, extra, stall_after=stall)

        def _ranged(
            self, data: bytes, ranges: str, extra: dict[str, str] | None = None, *, stall_after: int | None = None
        ) -> None:
            """``data`` as an HTTP server answers a GET, ``Range`` and ``If-Range`` included, or with the lie
            ``ranges`` names for a ranged request."""
            etag = etag_of(data)
            ranged = self.headers.get("Range", "")
            condition = self.headers.get("If-Range")
            if condition is not None and condition != etag and not (self._content_ignores_if_range()):
                ranged = ""  # another version: the whole object
            start, end = 0, len(data)
            if ranged.startswith("bytes="):
                first, _, last = ranged[len("bytes=") :].partition("-")
                start, end = int(first or 0), min(int(last) + 1 if last else len(data), len(data))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body, status = data[start:end], 206 if ranged else 200
            content_range: str | None = f"bytes {start}-{end - 1}/{len(data)}"
            if ranged and ranges == "shifted":
                body, content_range = data[: end - start], f"bytes 0-{end - start - 1}/{len(data)}"
            elif ranged and ranges == "no-content-range":
                content_range = None
            elif ranged and ranges == "wrong-total":
                content_range = f"bytes {start}-{end - 1}/{len(data) + 1}"
            elif ranged and ranges == "tail-as-200":
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", (extra or {}).get("ETag", etag))
            self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
            for name, value in (extra or {}).items():
                if name != "ETag":
                    self.send_header(name, value)
            if status == 206 and content_range is not None:
                self.send_header("Content-Range", content_range)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if stall_after is not None:
                self.wfile.write(body[:stall_after])
                self.wfile.flush()
                self._sleep_until_stopped()
                return
            self.wfile.write(body)

        def _content_ignores_if_range(self) -> bool:
            path = unquote(urlsplit(self.path).path)
            for name, content in scenario.contents.items():
                if path.endswith("/" + name):
                    return content.ignore_if_range
            return False

        def _run(self) -> None:
            if scenario.run_json_trickle:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                while not server.stopping.wait(0.2):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                return
            if not scenario.run_json_endless:
                self._json(run_document(scenario))
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no Content-Length: read until we close, which is never
            self.wfile.write(b'{"run": {"data": {"tags": [')
            chunk = b'{"key": "k", "value": "' + b"x" * 65_000 + b'"},'
            while not server.stopping.is_set():
                self.wfile.write(chunk)

        def _model_versions(self) -> None:
            if scenario.model_versions:
                self._json({"model_versions": [model_version(number) for number in scenario.model_versions]})
                return
            self._page("model-versions", lambda page: {"model_versions": [model_version(str(page + 1))]})

        def _list(self, path: str) -> None:
            server.record(f"LIST {path}", listing=True)
            if scenario.stall_listing:
                self._sleep_until_stopped()
                return
            if path != ROOT and not path.startswith(ROOT + "/"):
                self._json({"files": []})
                return
            relative = path[len(ROOT) + 1 :] if path != ROOT else ""
            self._json({"files": scenario.listing(relative)})

        def _download(self, path: str) -> None:  # noqa: C901
            with server._lock:
                server.downloads.append((path, self.headers.get("Range", "")))
                attempt = sum(1 for seen, _ in server.downloads if seen == path)
            content = scenario.contents.get(path)
            if content is None:
                self._not_found()
                return
            if content.first_byte_delay and server.stopping.wait(content.first_byte_delay):
                return
            stall_after = content.stall_after
            if content.stalls is not None and attempt > content.stalls:
                stall_after = None
            lying = content.endless or content.declared_length is not None or content.trickle_after is not None
            if stall_after is None and not lying:
                self._ranged(content.data, content.ranges)
                return
            data = content.data
            start, end = 0, len(data)
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and not content.endless:
                first, _, last = ranged[len("bytes=") :].partition("-")
                start, end = int(first or 0), min(int(last) + 1 if last else len(data), len(data))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            else:
                ranged = ""
            body = data[start:end]
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", etag_of(data))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            if content.endless or content.declared_length is not None:
                self.send_header("Connection", "close")  # and hang up after what we send
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if content.trickle_after is not None:
                sent = max(content.trickle_after - start, 0)
                self.wfile.write(body[:sent])
                while sent < len(body) and not server.stopping.wait(0.05):
                    self.wfile.write(body[sent : sent + 1024])
                    self.wfile.flush()
                    sent += 1024
                return
            if stall_after is not None:
                self.wfile.write(body[: max(stall_after - start, 0)])
                self.wfile.flush()
                if content.gate is None:
                    self._sleep_until_stopped()
                    return
                while not content.gate.wait(0.2):
                    if server.stopping.is_set():
                        return
                body = body[max(stall_after - start, 0) :]
            self.wfile.write(body)
            if content.endless:
                block = b"\0" * 65_536
                deadline = time.monotonic() + 120
                while not server.stopping.is_set() and time.monotonic() < deadline:
                    self.wfile.write(block)

    return Handler
