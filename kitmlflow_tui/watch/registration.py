"""``--register-webhook --public-url URL``: the MLflow webhook that sends this watch its events.

The URL is where MLflow reaches the receiver (``/webhooks/mlflow`` is added unless given). MLflow refuses, by
default, a webhook URL that is plain ``http`` or whose host is a private, loopback or link-local address (its
SSRF rules, MLflow >= 3.10): such a receiver needs settings on the tracking server, named here, as is the
fixed ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` every server with webhook secrets needs (without it each server
process makes up a key and cannot read the secrets back).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.watch.delivery import MODEL_EVENTS
from kitmlflow_tui.watch.receiver import WEBHOOK_PATH

WEBHOOK_EVENTS = tuple(sorted(MODEL_EVENTS))
RESOLVE_SECONDS = 3.0


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    name: str
    url: str
    created: bool
    server_settings: tuple[str, ...]  # what the tracking server needs for this URL


def webhook_url(public_url: str) -> str:
    """The webhook URL for ``--public-url`` (http(s), no credentials, no query; the path added if missing)."""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(
            f"--public-url {public_url!r} is not an http(s) URL.", hint="e.g. https://kitmlflow.example.com"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BadInputError("--public-url takes no credentials, query or fragment.")
    path = parts.path.rstrip("/")
    if not path.endswith(WEBHOOK_PATH):
        path += WEBHOOK_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def server_settings(url: str) -> tuple[str, ...]:
    """The tracking server's settings a webhook to ``url`` needs."""
    parts = urlsplit(url)
    needed = ["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY set to one fixed Fernet key (it encrypts the webhook secrets)"]
    if parts.scheme == "http":
        needed.append("MLFLOW_WEBHOOK_ALLOWED_SCHEMES set to http,https (the receiver speaks plain http)")
    if _private(parts.hostname or ""):
        needed.append("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS set to true (the receiver's address is private or loopback)")
    return tuple(needed)


def register_webhook(tracking_uri: str, public_url: str, secret: str | None, name: str) -> Registration:
    from kitmlflow_tui.core.catalogue.webhooks import ensure_webhook

    url = webhook_url(public_url)
    settings = server_settings(url)
    try:
        state = ensure_webhook(
            tracking_uri,
            name=name,
            url=url,
            events=WEBHOOK_EVENTS,
            secret=secret,
            description="kitmlflow watch: registry events that keep OCI registries in step",
        )
    except BadInputError as exc:
        raise BadInputError(
            f"{exc.message.rstrip('.')}.",
            hint="The tracking server needs (in its environment, then a restart): " + "; ".join(settings),
        ) from None
    return Registration(state.webhook_id, state.name, state.url, state.created, settings)


def _private(host: str) -> bool:
    """Whether ``host`` is (or resolves, within a few seconds, to) an address MLflow's SSRF rules refuse."""
    if host.lower() == "localhost":
        return True
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        addresses = _resolve(host)
    return any(a.is_private or a.is_loopback or a.is_link_local or a.is_reserved for a in addresses)


def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []

    def lookup() -> None:
        try:
            for info in socket.getaddrinfo(host, None):
                found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except (OSError, ValueError):
            pass

    worker = threading.Thread(target=lookup, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(RESOLVE_SECONDS)
    return list(found) if not worker.is_alive() else []
