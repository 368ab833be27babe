"""MLflow, requests and socket failures mapped to the error family (one exit code each), and the
connect check that makes a dead server fail in seconds."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from kitmlflow_tui.core.errors import (
    AuthError,
    BadInputError,
    KitmlflowError,
    NotFoundError,
    ServerUnreachableError,
    scrub_secrets,
)
from kitmlflow_tui.core.reference import redact_uri

CONNECT_TIMEOUT_SECONDS = 5.0
_AUTH_HINT = (
    "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth) or MLFLOW_TRACKING_TOKEN "
    "(bearer token) for this server."
)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def translate_error(exc: BaseException, what: str, tracking_uri: str) -> KitmlflowError:
    """Map an MLflow / requests / socket failure to the error family (and its exit code)."""
    import requests
    from mlflow.exceptions import MlflowException

    server = redact_uri(tracking_uri)
    text = scrub_secrets(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if len(text) > 400:
        text = text[:400] + "…"
    if isinstance(exc, KitmlflowError):
        return exc
    status = _http_status(exc)
    code = getattr(exc, "error_code", None) if isinstance(exc, MlflowException) else None
    if code is None and status is not None:
        code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}.get(status)
    if code == "UNAUTHENTICATED":
        return AuthError(f"The tracking server {server} did not accept the credentials ({text}).", hint=_AUTH_HINT)
    if code == "PERMISSION_DENIED":
        return AuthError(
            f"No permission to read {what} on {server} ({text}).",
            hint="Ask an admin of the server for READ permission, or use credentials that have it.",
        )
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"):
        # ``what`` names one thing ("run R", "artifact store S") or, after "the ", several ("the runs of ...").
        verb = "were" if what.startswith("the ") else "was"
        return NotFoundError(f"{what[:1].upper()}{what[1:]} {verb} not found on {server} ({text}).")
    if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"):
        return BadInputError(f"The tracking server {server} rejected the request for {what}: {text}")
    if isinstance(exc, requests.exceptions.SSLError) or "SSL" in text or "CERTIFICATE" in text.upper():
        hint = "Check the server's certificate (MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_INSECURE_TLS)."
        if urlsplit(tracking_uri).scheme == "https":
            hint = (
                "If the server speaks plain HTTP, write mlflow+http://HOST/... (or an http:// --tracking-uri). " + hint
            )
        return ServerUnreachableError(f"TLS failed talking to {server}: {text}", hint=hint)
    cause = _socket_cause(exc)
    if cause is not None:  # the socket's own words, not urllib3's wrapping of them (as the first connect says it)
        host = urlsplit(tracking_uri).hostname or ""
        return _unreachable(server, host, cause, while_reading=what)
    if isinstance(exc, requests.exceptions.RequestException | OSError) or code in (None, "INTERNAL_ERROR"):
        return ServerUnreachableError(
            f"The tracking server {server} could not be reached or failed while reading {what}: {text}",
            hint="Check the address and that the server is up; MLFLOW_HTTP_REQUEST_TIMEOUT and "
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES tune how long kitmlflow waits.",
        )
    return ServerUnreachableError(f"The tracking server {server} failed while reading {what}: {text}")


@contextlib.contextmanager
def mlflow_errors(what: str, tracking_uri: str) -> Iterator[None]:
    """Turn anything MLflow raises inside the block into the error family."""
    try:
        yield
    except KitmlflowError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # MLflow raises many unrelated types; all are mapped, none escape raw
        raise translate_error(exc, what, tracking_uri) from exc


def check_reachable(tracking_uri: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """A TCP connect to an http(s) tracking server, so that a dead or black-holed address fails in
    seconds (exit 6) instead of after MLflow's retries. Other URIs (sqlite, file, databricks) pass."""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return
    server = redact_uri(tracking_uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadInputError(f"The tracking URI {server} has an invalid port.") from None
    host = parts.hostname or ""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise _unreachable(server, host, exc, timeout=timeout) from None


def _socket_cause(exc: BaseException) -> OSError | None:
    """The socket error under requests' and urllib3's wrappers (refused, reset, unresolved, timed out)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 20:
        if isinstance(current, socket.gaierror) or (
            isinstance(current, OSError) and type(current).__module__ == "builtins"
        ):
            return current
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None


def _unreachable(
    server: str, host: str, exc: OSError, *, timeout: float | None = None, while_reading: str = ""
) -> ServerUnreachableError:
    """The one wording of a server the socket could not talk to, at the first connect and while browsing."""
    reading = f" while reading {while_reading}" if while_reading else ""
    if isinstance(exc, socket.gaierror):
        return ServerUnreachableError(
            f"Cannot resolve the tracking server host {host!r} ({exc.strerror}){reading}.",
            hint="Check the host name in the URI, --tracking-uri or MLFLOW_TRACKING_URI.",
        )
    if isinstance(exc, TimeoutError):
        within = f" within {timeout:g} s" if timeout is not None else ""
        return ServerUnreachableError(
            f"The tracking server {server} did not answer{within}{reading}.",
            hint="Check the address, the port and any VPN or firewall in between; MLFLOW_HTTP_REQUEST_TIMEOUT "
            "sets how long kitmlflow waits.",
        )
    return ServerUnreachableError(
        f"Cannot connect to the tracking server {server} ({exc.strerror or exc}){reading}.",
        hint="Is the server running on that host and port?",
    )


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """A direct store's own failures (its SDK's errors) in the family, with that store's words: refused
    credentials are exit 3 naming the variables it reads, an unreachable store is exit 6 naming the store."""
    from kitmlflow_tui.core.download.transports import TransientTransferError, store_error

    try:
        yield
    except KitmlflowError:
        raise
    except Exception as exc:
        mapped = store_error(exc, uri)
        if isinstance(mapped, TransientTransferError):
            raise ServerUnreachableError(
                f"The artifact store {redact_uri(uri)} could not be reached or failed: {scrub_secrets(str(mapped))}"
            ) from exc
        if mapped is not exc:
            raise mapped from exc
        raise
