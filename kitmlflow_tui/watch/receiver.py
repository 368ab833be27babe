"""The watch's HTTP server: ``POST /webhooks/mlflow``, ``GET /healthz``, ``GET /metrics``.

The standard library's ``ThreadingHTTPServer``: three routes, no framework needed. A delivery is answered in
milliseconds: it is checked (``delivery``), written to the queue with its id in one transaction, and the sync
happens later, in the worker. What it answers:

- 202: queued (its model is followed); 200: authentic but not acted on (a model not followed, another event);
- 4xx, counted by reason and never acted on: 401 signature missing or wrong, 400 stale timestamp or malformed
  request or body, 409 a delivery id seen before, 411 no Content-Length, 413 over 1 MiB (not read), 415 not
  JSON, 404/405 anything else; 429 (answered and closed at once) when more connections are open than the
  server serves at once (MLflow retries a 429).

Bounds: at most ``MAX_CONNECTIONS`` requests in flight (one thread each; more get a 429), a socket
timeout per read, a body read only up to its announced size and only when that is at most 1 MiB. Refusals are
logged at most once per reason every ``REFUSAL_LOG_SECONDS``, with the count since, so a flood of forged
requests cannot flood the log.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.watch.config import WatchConfig
from kitmlflow_tui.watch.delivery import MAX_BODY_BYTES, Refused, check_delivery, parse_event
from kitmlflow_tui.watch.log import WatchLog
from kitmlflow_tui.watch.metrics import Metrics
from kitmlflow_tui.watch.queue import WorkQueue

WEBHOOK_PATH = "/webhooks/mlflow"
MAX_CONNECTIONS = 64
SOCKET_TIMEOUT_SECONDS = 10.0
REFUSAL_LOG_SECONDS = 10.0
# What is read and dropped of a refused body, so the peer reads the answer rather than a reset (a socket
# closed with unread data sends RST): bounded in bytes and time, never kept.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 2.0
_TOO_MANY = b"HTTP/1.0 429 Too Many Requests\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Receiver:
    """The server and what its requests need; ``start`` binds (exit 2 when the address cannot be used)."""

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        secret: str | None,
        config: WatchConfig,
        queue: WorkQueue,
        metrics: Metrics,
        log: WatchLog,
        healthy: Callable[[], bool],
    ) -> None:
        self.listen = listen
        self.secret = secret
        self.config = config
        self.queue = queue
        self.metrics = metrics
        self.log = log
        self.healthy = healthy
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._refusals = _RefusalLog(log)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        try:
            self._server = _Server(self.listen, _Handler, self)
        except OSError as exc:
            host, port = self.listen
            raise BadInputError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                hint="Choose another --listen HOST:PORT (is another watch running there?).",
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="watch-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- one delivery ---------------------------------------------------------------------------------
    def take(self, header: Callable[[str], str | None], body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, answer) for a delivery whose size and type were checked; raises Refused."""
        delivery = check_delivery(header, body, self.secret, time.time())
        event = parse_event(body)
        followed = event.model is not None and bool(self.config.entries_for(event.model))
        if not self.queue.accept_delivery(delivery.delivery_id, event.model if followed else None, event.name):
            raise Refused("replayed", 409, "This delivery id was taken before.")
        self.metrics.received(event.name)
        fields = {"event": event.name, "model": event.model, "delivery": delivery.delivery_id}
        if followed:
            self.log.line("webhook", outcome="queued", **fields, version=event.version, alias=event.alias)
            return 202, {"queued": event.model}
        reason = "not_configured" if event.model is not None else "not_a_model_event"
        self.metrics.dropped(reason)
        self.log.line("webhook", outcome="dropped", reason=reason, **fields)
        return 200, {"dropped": reason}

    def refused(self, refusal: Refused, peer: str) -> None:
        self.metrics.refused(refusal.reason)
        self._refusals.note(refusal, peer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The kernel's queue of connections not yet accepted (socketserver's default is 5): a burst (MLflow
    # delivers from up to 10 threads) waits there in order instead of being refused or reordered.
    request_queue_size = 2 * MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], receiver: Receiver) -> None:
        self.receiver = receiver
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Answered from the accepting thread without reading: a few bytes into a new socket's empty send
            # buffer, never blocking (MLflow retries a 429).
            self.receiver.refused(Refused("too_many_connections", 429, "Too many requests at once."), "")
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_TOO_MANY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_SECONDS
    server_version = "kitmlflow-watch"
    sys_version = ""
    _unread = 0  # bytes of a refused body still to come from the peer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass  # the watch logs what happened to each request itself

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        receiver = self.server.receiver
        self._unread = 0
        try:
            if self.path.split("?", 1)[0] != WEBHOOK_PATH:
                raise Refused("not_found", 404, f"Webhooks go to POST {WEBHOOK_PATH}.")
            body = self._body()
            status, answer = receiver.take(self.headers.get, body)
        except (sqlite3.Error, OSError) as exc:  # the queue cannot be written: MLflow retries a 503
            receiver.log.line("webhook", outcome="failed", reason="queue", error=f"{type(exc).__name__}: {exc}")
            self._answer(503, {"error": "queue", "message": "The work queue cannot be written."})
            return
        except Refused as refusal:
            receiver.refused(refusal, self.client_address[0])
            self._answer(refusal.status, {"error": refusal.reason, "message": refusal.message})
            if self._unread:
                self._drain(self._unread)
            return
        self._answer(status, answer)

    def do_GET(self) -> None:  # noqa: N802
        receiver = self.server.receiver
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            healthy = receiver.healthy()
            self._answer(200 if healthy else 503, {"healthy": healthy, "queue_depth": receiver.queue.depth()})
        elif path == "/metrics":
            self._answer(200, receiver.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
        else:
            receiver.refused(Refused("not_found", 404, "No such page."), self.client_address[0])
            self._answer(404, {"error": "not_found"})

    def _not_allowed(self) -> None:
        self.server.receiver.refused(Refused("method", 405, "Method not allowed."), self.client_address[0])
        self._answer(405, {"error": "method"}, headers={"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise Refused("no_length", 411, "Send the body with a Content-Length, not chunked.")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise Refused("no_length", 411, "A Content-Length is required.")
        if not length_text.isdigit() or len(length_text) > 12:
            raise Refused("bad_request", 400, "The Content-Length is not a number.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._unread = length
            raise Refused("too_large", 413, f"A delivery is at most {MAX_BODY_BYTES} bytes.")
        media_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            self.close_connection = True
            self._unread = length
            raise Refused("bad_content_type", 415, "A delivery is application/json.")
        try:
            body = self.rfile.read(length)
        except OSError:  # the peer stalled past the socket timeout, or went away
            body = b""
        if len(body) != length:
            self.close_connection = True
            raise Refused("bad_request", 400, "The body ended before its Content-Length.")
        return body

    def _drain(self, length: int) -> None:
        """Drop what the peer still sends of a refused body (see DRAIN_BYTES), never keeping it."""
        left = min(length, DRAIN_BYTES)
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(DRAIN_SECONDS)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(64 * 1024, left))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _answer(
        self, status: int, answer: dict[str, Any] | str, *, content_type: str = "application/json", headers=None
    ) -> None:
        data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "5")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the peer is gone; nothing to tell it


class _RefusalLog:
    """One log line per refusal reason at most every REFUSAL_LOG_SECONDS, with how many since the last."""

    def __init__(self, log: WatchLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, refusal: Refused, peer: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._since[refusal.reason] = self._since.get(refusal.reason, 0) + 1
            if now - self._last.get(refusal.reason, -REFUSAL_LOG_SECONDS) < REFUSAL_LOG_SECONDS:
                return
            count, self._since[refusal.reason] = self._since[refusal.reason], 0
            self._last[refusal.reason] = now
        self._log.line(
            "webhook",
            outcome="refused",
            reason=refusal.reason,
            status=refusal.status,
            peer=peer or None,
            count=count,
            message=refusal.message,
        )
