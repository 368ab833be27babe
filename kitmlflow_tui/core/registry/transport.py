"""The HTTP under the registry client: one exchange with a registry (or its token service) that is bounded in size
and time, ends at once on a cancel, and never carries credentials where they do not belong.

- **Origins.** An origin is a scheme, a host and a port (the default port filled in), compared as such, never as
  text. The ``Authorization`` a caller gives goes only to the origin it names. Redirects are followed for GET and
  HEAD only (at most ``MAX_REDIRECTS``): to another origin without the ``Authorization``, and never from HTTPS to
  plain HTTP. docker's and oras-go's clients drop the header on a redirect to another host in the same way.
- **Limits.** ``requests``' timeout bounds each socket read, not an answer: a server that sends its status line
  one byte a second, or a body that never ends, holds the client for ever (and its memory). Here the answer's
  status line and headers must arrive within ``first_byte_seconds`` of the request being sent, the whole answer
  within ``answer_seconds``, and its body is read in pieces up to ``max_bytes``. A blob upload's own body is not
  limited in total (a large blob on a slow link takes as long as it takes); each send waits at most the connect
  timeout.
- **Cancel.** A cancel closes the connection of every exchange in flight within ``POLL_SECONDS``: a read blocked on
  a registry that takes minutes to answer the PUT ending a big upload returns at once. (Connecting, TLS handshake
  included, is bounded by the connect timeout alone.)

How: each exchange registers itself while it runs; the connections of the requests session (urllib3
connections of our own class) tell it which socket they use and when the request is sent and the headers are
in. One watcher thread shuts down the socket of an exchange whose limit passed or whose cancel was set.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kitmlflow_tui.core.catalogue.http_limits import iter_body
from kitmlflow_tui.core.errors import InterruptedByUser

SEND_BLOCK_SIZE = 1024 * 1024  # what a connection reads from a request body at a time
READ_BLOCK_SIZE = 64 * 1024
MAX_REDIRECTS = 10
POLL_SECONDS = 0.1
_REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """Where a URL's requests go: scheme, host (lower case, without brackets) and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        try:
            port = split.port
        except ValueError:
            port = None
        return cls(scheme, (split.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0))

    def weakened_by(self, other: Origin) -> bool:
        """Whether going from here to ``other`` drops TLS."""
        return self.scheme == "https" and other.scheme != "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Limits:
    connect_seconds: float
    first_byte_seconds: float  # from the request sent to the answer's status line and headers
    answer_seconds: float  # from the request sent to the answer's last byte


@dataclass(frozen=True)
class Answer:
    """A whole answer: its status, headers, body (bounded) and the URL that gave it (after redirects)."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes
    url: str


class AnswerRefused(Exception):
    """An answer broke a limit (size, time) or redirected somewhere it may not go; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- one exchange under watch ---------------------------------------------------------------------------------------
Fired = Literal["cancel", "first_byte", "answer", "stall"]


class _Exchange:
    """One request under watch. A streamed answer (a layer read as it arrives) has no total limit: each of its
    chunks must come within ``first_byte_seconds`` of the one before (``arrived``), as a stall."""

    def __init__(self, limits: Limits, cancel: threading.Event, *, streamed: bool = False) -> None:
        self.limits = limits
        self.cancel = cancel
        self.streamed = streamed
        self.fired: Fired | None = None
        self._socket: socket.socket | None = None
        self._sent_at: float | None = None
        self._last_byte_at: float | None = None
        self._headers_in = False

    def attach(self, sock: socket.socket | None) -> None:
        if sock is not None:
            self._socket = sock

    def sent(self) -> None:
        self._sent_at = time.monotonic()

    def headers_in(self) -> None:
        self._last_byte_at = time.monotonic()
        self._headers_in = True

    def arrived(self) -> None:
        self._last_byte_at = time.monotonic()

    def due(self, now: float) -> Fired | None:
        if self.cancel.is_set():
            return "cancel"
        if self._sent_at is None:
            return None
        waited = now - self._sent_at
        if not self._headers_in:
            return "first_byte" if waited > self.limits.first_byte_seconds else None
        if self.streamed:
            last = self._last_byte_at or self._sent_at
            return "stall" if now - last > self.limits.first_byte_seconds else None
        return "answer" if waited > self.limits.answer_seconds else None

    def fire(self, reason: Fired) -> None:
        self.fired = reason
        sock = self._socket
        if sock is not None:
            # The base class's shutdown, also for a TLS socket: it wakes a read or a send blocked in another
            # thread, and leaves the TLS object alone (that thread still uses it until its call returns).
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watcher:
    """The one thread that ends the exchanges whose limit passed or whose cancel was set."""

    def __init__(self) -> None:
        self._exchanges: set[_Exchange] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def add(self, exchange: _Exchange) -> None:
        with self._lock:
            self._exchanges.add(exchange)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="kitmlflow-registry-watch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def remove(self, exchange: _Exchange) -> None:
        """Once this returns the exchange is never fired: its connection may go back to the pool."""
        with self._lock:
            self._exchanges.discard(exchange)

    def _run(self) -> None:
        while True:
            with self._lock:  # fired under the lock: never after ``remove``, on a connection reused since
                while not self._exchanges:
                    self._wake.wait()
                now = time.monotonic()
                for exchange in self._exchanges:
                    reason = exchange.due(now) if exchange.fired is None else None
                    if reason is not None:
                        exchange.fire(reason)
            time.sleep(POLL_SECONDS)


_watcher = _Watcher()
_current = threading.local()  # the exchange the calling thread is running


def _exchange_here() -> _Exchange | None:
    return getattr(_current, "exchange", None)


class _Watched:
    """What every connection of a transport's sessions tells the exchange using it."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        exchange = _exchange_here()
        if exchange is not None:
            exchange.attach(self.sock)  # a new connection: before its request's body is sent

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = _exchange_here()
        if exchange is not None:
            exchange.attach(self.sock)  # a connection kept alive from an earlier request
        super().request(*args, **kwargs)  # type: ignore[misc]
        if exchange is not None:
            exchange.sent()

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        exchange = _exchange_here()
        if exchange is not None:
            exchange.headers_in()
        return response


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(HTTPAdapter):
    """Watched connections; request bodies read 1 MiB at a time (urllib3 reads 16 KiB by default: 1 MiB blocks
    cut the Python work of a multi-GB upload by 64)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = SEND_BLOCK_SIZE
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


# -- the transport -----------------------------------------------------------------------------------------------------
@dataclass
class Transport:
    """The HTTP of one registry client: a session per thread, its TLS settings, its limits and its cancel."""

    limits: Limits
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    user_agent: str = "kitmlflow"
    cancel: threading.Event = field(default_factory=threading.Event)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _sessions: list[requests.Session] = field(default_factory=list, init=False, repr=False)
    _sessions_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def exchange(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        authorization: str | None = None,
        credentials_for: Origin | None = None,
        max_bytes: int,
    ) -> Answer:
        """One request and its whole answer, following GET and HEAD redirects.

        ``authorization`` is sent to ``credentials_for`` only (default: the origin of ``url``). A body larger
        than ``max_bytes`` is refused for a success status; an error's first ``max_bytes`` are kept. Raises
        ``AnswerRefused`` for a limit passed or a redirect that would drop TLS, ``InterruptedByUser`` on a cancel,
        and ``requests``' own exceptions for the connection's failures."""
        start = Origin.of(url)
        owner = credentials_for or start
        for _hop in range(MAX_REDIRECTS + 1):
            send_headers = dict(headers or {})
            if authorization and Origin.of(url) == owner:
                send_headers["Authorization"] = authorization
            answer = self._one(method, url, send_headers, body, max_bytes)
            if answer.status not in _REDIRECTS or method not in ("GET", "HEAD") or "Location" not in answer.headers:
                return answer
            target = urljoin(url, answer.headers["Location"])
            if start.weakened_by(Origin.of(target)) or owner.weakened_by(Origin.of(target)):
                raise AnswerRefused(f"redirected {method} {urlsplit(url).path} to plain HTTP ({_shown(target)})")
            url = target
        raise AnswerRefused(f"redirected {method} more than {MAX_REDIRECTS} times")

    def _one(self, method: str, url: str, headers: dict[str, str], body: Any, max_bytes: int) -> Answer:
        exchange = _Exchange(self.limits, self.cancel)
        if self.cancel.is_set():
            raise InterruptedByUser("Cancelled.")
        _current.exchange = exchange
        _watcher.add(exchange)
        try:
            response = self._session().request(
                method,
                url,
                headers=headers,
                data=body,
                stream=True,
                timeout=(self.limits.connect_seconds, self.limits.first_byte_seconds),
                allow_redirects=False,
            )
            with response:
                data, truncated = _read(response, max_bytes)
            if truncated and response.status_code < 400:
                raise AnswerRefused(f"the answer to {method} {urlsplit(url).path} is larger than {max_bytes:,} bytes")
        except BaseException:
            self._raise_fired(exchange, method, url)
            raise
        finally:
            _watcher.remove(exchange)
            _current.exchange = None
        self._raise_fired(exchange, method, url)  # a read the watcher ended may look like a clean end
        return Answer(response.status_code, response.headers, data, url)

    @contextlib.contextmanager
    def streamed(
        self, url: str, *, authorization: str | None, credentials_for: Origin, chunk_size: int
    ) -> Iterator[tuple[int, CaseInsensitiveDict[str], Iterator[bytes]]]:
        """A GET whose body the caller reads as it arrives: ``(status, headers, chunks)``. Redirects are followed as
        :meth:`exchange` follows them (the ``Authorization`` only to ``credentials_for``, never to plain HTTP from
        HTTPS). The status line is bounded as any answer's; then each chunk must come within the first-byte limit of
        the one before, and the body as a whole takes as long as it takes. A cancel closes the connection."""
        start = url
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"Authorization": authorization} if authorization and Origin.of(url) == credentials_for else {}
            exchange = _Exchange(self.limits, self.cancel, streamed=True)
            if self.cancel.is_set():
                raise InterruptedByUser("Cancelled.")
            _current.exchange = exchange
            _watcher.add(exchange)
            try:
                try:
                    response = self._session().get(
                        url,
                        headers=headers,
                        stream=True,
                        timeout=(self.limits.connect_seconds, self.limits.first_byte_seconds),
                        allow_redirects=False,
                    )
                except BaseException:
                    self._raise_fired(exchange, "GET", url)
                    raise
                with response:
                    if response.status_code in _REDIRECTS and "Location" in response.headers:
                        target = urljoin(url, response.headers["Location"])
                        if Origin.of(start).weakened_by(Origin.of(target)) or credentials_for.weakened_by(
                            Origin.of(target)
                        ):
                            raise AnswerRefused(f"redirected GET {urlsplit(url).path} to plain HTTP ({_shown(target)})")
                        url = target
                        continue

                    yield response.status_code, response.headers, self._chunks(response, exchange, url, chunk_size)
                    return
            finally:
                _watcher.remove(exchange)
                _current.exchange = None
        raise AnswerRefused(f"redirected GET more than {MAX_REDIRECTS} times")

    def _chunks(self, response: requests.Response, exchange: _Exchange, url: str, chunk_size: int) -> Iterator[bytes]:
        try:
            for chunk in iter_body(response, chunk_size):
                exchange.arrived()
                yield chunk
        except BaseException:
            self._raise_fired(exchange, "GET", url)
            raise
        self._raise_fired(exchange, "GET", url)  # a read the watcher ended may look like an end

    def _raise_fired(self, exchange: _Exchange, method: str, url: str) -> None:
        what = f"{method} {urlsplit(url).path}"
        if exchange.fired == "cancel":
            raise InterruptedByUser("Cancelled.") from None
        if exchange.fired == "first_byte":
            raise AnswerRefused(
                f"the status line and headers of the answer to {what} did not arrive within "
                f"{self.limits.first_byte_seconds:g} s (KITMLFLOW_REGISTRY_FIRST_BYTE_SECONDS)"
            ) from None
        if exchange.fired == "stall":
            raise AnswerRefused(
                f"the answer to {what} stopped for more than {self.limits.first_byte_seconds:g} s "
                "(KITMLFLOW_REGISTRY_FIRST_BYTE_SECONDS)"
            ) from None
        if exchange.fired == "answer":
            raise AnswerRefused(
                f"the answer to {what} was not complete within {self.limits.answer_seconds:g} s "
                "(KITMLFLOW_REGISTRY_ANSWER_SECONDS)"
            ) from None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no ~/.netrc credentials (they would replace ours), no env proxies
            adapter = _Adapter(pool_connections=2, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self.user_agent
            session.verify = self.verify
            if self.cert is not None:
                session.cert = self.cert
            with self._sessions_lock:
                self._sessions.append(session)
            self._local.session = session
        return session


def _read(response: requests.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body, at most ``max_bytes`` of it, and whether there was more. A body read to its end leaves the
    connection to the pool (kept alive); one cut short closes it."""
    chunks: list[bytes] = []
    received = 0
    for chunk in iter_body(response, READ_BLOCK_SIZE):
        chunks.append(chunk)
        received += len(chunk)
        if received > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    response._content_consumed = True  # requests' close() then releases the connection instead of closing it
    return b"".join(chunks), False


def _shown(url: str) -> str:
    """A URL for a message: scheme, host and path (a query may hold a signature)."""
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc}{split.path}"
