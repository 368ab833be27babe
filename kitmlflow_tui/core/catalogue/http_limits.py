"""Hardening of MLflow's HTTP client: a short retry policy, and a size cap and deadline on every answer.

One knob bounds how long any MLflow request waits for its answer: ``MLFLOW_HTTP_REQUEST_TIMEOUT``, MLflow's own
(``REQUEST_TIMEOUT_SECONDS`` unless the user set it). MLflow's retries would multiply it (a paused server took
3 × 60 s to fail an import), so they are bounded by it too (``_DeadlineRetry``): a request that timed out
waiting for its answer is not asked again (a server silent for that long is not coming back within it), and a
refused connection or a 5xx answer is retried only while less than the timeout has passed since the request
began. A request therefore fails within the timeout when the server takes the connection and never answers, and
within twice it at worst (an attempt started just before the deadline).

The limits ride on a private MLflow function, ``request_utils._cached_get_request_session`` (the
factory of the requests sessions MLflow uses); if a later MLflow moves it, the limits are skipped
rather than breaking the client. tests/unit/test_http_limits.py pins the behaviour.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

REQUEST_TIMEOUT_SECONDS = 30
# MLflow retries an unreachable server for about four minutes by default. A person at a terminal
# wants to know within seconds, so unless the user chose otherwise we ask for a short policy.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_SECONDS),
}
# A metadata answer (a run, a listing, a search page) larger than this, or one that is still arriving
# after RESPONSE_DEADLINE_FACTOR x MLFLOW_HTTP_REQUEST_TIMEOUT seconds, is refused: requests only bounds
# each read, so a server that trickles or never ends its document would otherwise hold us forever.
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
RESPONSE_DEADLINE_FACTOR = 3


def configure_http(pool_size: int = 10) -> None:
    """Short retry policy and a connection pool large enough for ``pool_size`` parallel transfers,
    without overriding anything the user set."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if int(os.environ.get("MLFLOW_HTTP_POOL_MAXSIZE", "10")) < pool_size:
        os.environ["MLFLOW_HTTP_POOL_MAXSIZE"] = str(pool_size)
    _install_response_limits()


def iter_body(response, chunk_size: int) -> Iterator[bytes]:
    """A response body in pieces of at most ``chunk_size``, each handed over as soon as it arrives.

    ``requests``' ``iter_content`` fills every piece before yielding it: bytes that arrived before a
    stall or a reset are lost with the exception, and a deadline checked between pieces never runs
    while a server trickles. One read per piece (``read1``) avoids both. urllib3's errors are raised
    as the ``requests`` ones ``iter_content`` would raise, so callers classify them the same way."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(chunk_size)
        return
    try:
        while chunk := raw.read1(chunk_size, decode_content=True):
            yield chunk
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class ResponseTooLarge(Exception):
    """A metadata answer broke MAX_RESPONSE_BYTES or its deadline (raised inside MLflow's request)."""


def bounded_response(response, *, stream: bool | None = False, timeout=None, **_kwargs):
    """A requests response hook: read a non-streamed body under a size cap and a whole-answer deadline.

    requests runs response hooks before it reads a non-streamed body, so the body read here is the
    one MLflow later parses. Streamed responses (our own downloads) are left alone: they are bounded
    by the listed size and the per-read timeout."""
    if stream:
        return response
    limit = MAX_RESPONSE_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLarge(f"the server's answer is larger than {limit:,} bytes ({int(declared):,} declared)")
    per_read = timeout[-1] if isinstance(timeout, tuple) else timeout
    allowed = RESPONSE_DEADLINE_FACTOR * float(per_read or 60)
    deadline = time.monotonic() + allowed
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in iter_body(response, 64 * 1024):
            received += len(chunk)
            if received > limit:
                raise ResponseTooLarge(f"the server's answer is larger than {limit:,} bytes")
            if time.monotonic() > deadline:
                raise ResponseTooLarge(f"the server's answer was still arriving after {allowed:.0f} s")
            chunks.append(chunk)
    except ResponseTooLarge:
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True
    return response


def _install_response_limits() -> None:
    """Add ``bounded_response`` to every requests session MLflow makes (it caches one per retry
    policy in ``request_utils._cached_get_request_session``). If a later MLflow moves that function,
    the limits are skipped rather than breaking the client."""
    from mlflow.utils import request_utils

    factory = getattr(request_utils, "_cached_get_request_session", None)
    if factory is None or getattr(factory, "_kitmlflow_bounded", False):
        return

    def bounded_session(*args, **kwargs):
        session = factory(*args, **kwargs)
        hooks = session.hooks.setdefault("response", [])
        if bounded_response not in hooks:
            hooks.append(bounded_response)
        _bound_retries(session)
        return session

    bounded_session._kitmlflow_bounded = True  # type: ignore[attr-defined]
    request_utils._cached_get_request_session = bounded_session  # type: ignore[assignment]


_request = threading.local()  # when the request on this thread began, and its timeout (``_bound_retries``)


def _bound_retries(session: Any) -> None:
    """MLflow's retry policy on ``session``, bounded by the request's timeout (see the module's docstring). The
    session notes when each request begins, on the thread that makes it (urllib3 retries on the same thread)."""
    if getattr(session, "_kitmlflow_deadline", False):
        return
    deadline_retry = _deadline_retry()
    for adapter in session.adapters.values():
        retries = getattr(adapter, "max_retries", None)
        if retries is not None and not isinstance(retries, deadline_retry):
            fields = {name: getattr(retries, name) for name in _RETRY_FIELDS if hasattr(retries, name)}
            adapter.max_retries = deadline_retry(**fields)
    send = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        note_request_start(kwargs.get("timeout"))
        return send(method, url, *args, **kwargs)

    session.request = request
    session._kitmlflow_deadline = True


def note_request_start(timeout: Any) -> None:
    """A request begins on this thread with this timeout (what bounds its retries; requests' number or tuple)."""
    _request.began, _request.timeout = time.monotonic(), timeout[-1] if isinstance(timeout, tuple) else timeout


@functools.cache
def _deadline_retry() -> Any:
    """urllib3's ``Retry`` that gives up on a read timeout, and once the request's timeout has passed (built on
    first use: urllib3 loads with MLflow, never on the path of ``--help``)."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
    from urllib3.util.retry import Retry

    class DeadlineRetry(Retry):
        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            reason = error or ResponseError(f"{getattr(response, 'status', '')} answers")
            if isinstance(error, ReadTimeoutError):
                raise MaxRetryError(_pool, url, reason) from error
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
            began, timeout = getattr(_request, "began", None), getattr(_request, "timeout", None)
            if began is not None and timeout and time.monotonic() - began + retry.get_backoff_time() >= timeout:
                raise MaxRetryError(_pool, url, reason) from error
            return retry

    return DeadlineRetry


# What MLflow sets on its Retry (request_utils._cached_get_request_session), carried over to the bounded one.
_RETRY_FIELDS = (
    "total",
    "connect",
    "read",
    "redirect",
    "status",
    "other",
    "allowed_methods",
    "status_forcelist",
    "backoff_factor",
    "backoff_max",
    "backoff_jitter",
    "raise_on_redirect",
    "raise_on_status",
    "history",
    "respect_retry_after_header",
    "remove_headers_on_redirect",
)
