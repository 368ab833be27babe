"""A registry-shaped server that plays the attacker (or the broken proxy) in front of a real ``docker-registry``.

Real registries do not lie on purpose; what this server does, they do by accident or by design of what stands
in front of them: a TLS-terminating proxy whose registry builds ``Location: http://...`` (the registry sees a
plain-HTTP request and no ``X-Forwarded-Proto``), an upload session or a blob on another host (blob storage), a
host that answers with a challenge of its own, an error body that repeats what it was sent, an answer that never
ends, a status line sent one byte at a time, an upload that is never answered.

It runs as a thread of the test process on 127.0.0.1, optionally over TLS with a certificate of
``registry_servers.make_pki`` (a request that arrives in plain text on that port is recorded, and refused: that
is the leak the TLS tests look for). What the ``RegistryScenario`` does not answer itself is forwarded to the
``upstream`` real registry with the client's own ``Host`` header, so the registry builds its ``Location`` URLs
for this server, exactly as behind a proxy. Everything it received is in ``seen``.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.support.registry_servers import Pki, Registry
from tests.support.served import ServedInThread, serving

HOST = "127.0.0.1"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: ``tls`` False on a TLS port means it came in plain text."""

    method: str
    path: str
    headers: dict[str, str]
    tls: bool
    body_length: int = 0

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass(frozen=True)
class Reply:
    """An answer the scenario gives instead of the upstream registry's.

    ``stream`` yields the body piece by piece (no Content-Length: it lasts until it ends or the client
    leaves); ``raw`` yields the whole answer as bytes on the wire, status line included."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Callable[[], Iterator[bytes]] | None = None
    raw: Callable[[], Iterator[bytes]] | None = None


@dataclass
class RegistryScenario:
    upstream: Registry | None = None  # where requests the scenario does not answer go (a real registry)
    upstream_authorization: str | None = None  # sent upstream instead of the client's (a storage backend's own)
    tls: Pki | None = None  # serve HTTPS with this PKI's server certificate
    reply: Callable[[Seen], Reply | None] = lambda _seen: None
    location: Callable[[str], str] = lambda location: location  # rewrites the upstream's Location headers
    stall: Callable[[Seen], bool] = lambda _seen: False  # read the request, then never answer it
    stall_after_forwarding: bool = False  # a stalled request still reaches the upstream registry first


class HostileRegistry(ServedInThread):
    def __init__(self, scenario: RegistryScenario) -> None:
        self.scenario = scenario
        self.seen: list[Seen] = []
        self.stalled = threading.Event()  # a request is being held
        self.client_closed = threading.Event()  # a client closed a connection whose answer was held or streamed
        self.sent_bytes = 0  # bytes of streamed and raw answers written
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._tls_context: ssl.SSLContext | None = None
        if scenario.tls is not None:
            self._tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls_context.load_cert_chain(scenario.tls.server_cert, scenario.tls.server_key)
        self.httpd = _Server(self, (HOST, 0), _make_handler(self))
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hostile-registry", daemon=True)

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.scenario.tls else 'http'}://{self.host}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            if len(self.seen) < 10_000:
                self.seen.append(seen)

    def count_sent(self, count: int) -> None:
        with self._lock:
            self.sent_bytes += count

    def plaintext(self) -> list[Seen]:
        """Requests that came in plain text to a TLS port."""
        return [seen for seen in self.seen if self.scenario.tls is not None and not seen.tls]


def hostile_registry(scenario: RegistryScenario) -> contextlib.AbstractContextManager[HostileRegistry]:
    return serving(HostileRegistry(scenario))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: HostileRegistry, address: tuple[str, int], handler: type) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # In the connection's own thread: a TLS port answers a TLS handshake, and lets a plain-text request in
        # only to record it (a handshake's first byte is 0x16).
        context = self.owner._tls_context
        if context is not None:
            request.settimeout(30)
            try:
                first = request.recv(1, socket.MSG_PEEK)
                if first == b"\x16":
                    request = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def _make_handler(server: HostileRegistry) -> type[BaseHTTPRequestHandler]:  # noqa: C901
    scenario = server.scenario

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {key.lower(): value for key, value in self.headers.items()},
                isinstance(self.connection, ssl.SSLSocket),
                length,
            )
            server.record(seen)
            try:
                if scenario.tls is not None and not seen.tls:
                    self._drain(length)
                    self._send(Reply(400, body=b"a plain-HTTP request to a TLS port\n"))
                    return
                if scenario.stall(seen):
                    if scenario.stall_after_forwarding:
                        self._forward(seen, length, answer=False)
                    else:
                        self._drain(length)
                    self._hold()
                    return
                reply = scenario.reply(seen)
                if reply is not None:
                    self._drain(length)
                    self._send(reply)
                    return
                if scenario.upstream is None:
                    self._drain(length)
                    self._send(Reply(404, body=b'{"errors":[{"code":"NOT_FOUND","message":"no upstream"}]}'))
                    return
                self._forward(seen, length)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
                self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 - http.server's naming

        def _drain(self, length: int) -> None:
            while length > 0:
                data = self.rfile.read(min(length, 1 << 20))
                if not data:
                    break
                length -= len(data)

        def _hold(self) -> None:
            """Answer nothing, until the client closes the connection (recorded) or the server stops."""
            server.stalled.set()
            while not server.stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.2)
                if readable:
                    with contextlib.suppress(OSError):
                        if self.connection.recv(1) == b"":
                            server.client_closed.set()
                            break
            self.close_connection = True

        def _send(self, reply: Reply) -> None:
            if reply.raw is not None:
                self._write_until_gone(reply.raw())
                self.close_connection = True
                return
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if reply.stream is not None:
                self.send_header("Connection", "close")
                self.end_headers()
                self._write_until_gone(reply.stream())
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        def _write_until_gone(self, pieces: Iterator[bytes]) -> None:
            try:
                for piece in pieces:
                    if server.stopping.is_set():
                        return
                    self.wfile.write(piece)
                    self.wfile.flush()
                    server.count_sent(len(piece))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                server.client_closed.set()

        def _forward(self, seen: Seen, length: int, *, answer: bool = True) -> None:
            assert scenario.upstream is not None
            upstream = http.client.HTTPConnection(HOST, scenario.upstream.port, timeout=120)
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() in _HOP_BY_HOP or (
                        key.lower() == "authorization" and scenario.upstream_authorization is not None
                    ):
                        continue
                    upstream.putheader(key, value)
                if scenario.upstream_authorization is not None:
                    upstream.putheader("Authorization", scenario.upstream_authorization)
                upstream.endheaders()
                remaining = length
                while remaining > 0:
                    data = self.rfile.read(min(remaining, 1 << 20))
                    if not data:
                        break
                    upstream.send(data)
                    remaining -= len(data)
                response = upstream.getresponse()
                body = response.read()
                if not answer:
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() in _HOP_BY_HOP or key.lower() == "content-length":
                        continue
                    if key.lower() == "location":
                        value = scenario.location(value)
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            finally:
                upstream.close()

    return Handler


# -- building blocks for scenarios ----------------------------------------------------------------------------
def is_upload(seen: Seen) -> bool:
    """A request of a blob upload session (POST, PATCH or the PUT that ends it)."""
    return "/blobs/uploads/" in urlsplit(seen.path).path


def moved_to(location: str, base: str) -> str:
    """``location`` (absolute or not) with its scheme and host replaced by ``base`` (``scheme://host:port``)."""
    split = urlsplit(location)
    path = split.path + (f"?{split.query}" if split.query else "")
    return base.rstrip("/") + path
