"""Whether one webhook delivery from MLflow may be acted on: its signature, its age, and its body.

MLflow (>= 3.3) signs a delivery as the Standard Webhooks do: ``X-MLflow-Signature: v1,<base64>`` where the
base64 is HMAC-SHA256, keyed with the webhook's secret, over ``{delivery id}.{timestamp}.{raw body}`` (the
body's exact bytes: MLflow's ``json.dumps`` spacing is not reproduced by re-serialising). The comparison is
constant-time. ``X-MLflow-Timestamp`` (unix seconds) must be within five minutes of now, so a captured delivery
cannot be replayed later; within those minutes the delivery id (``X-MLflow-Delivery-Id``, a uuid4 that
MLflow's own retries repeat) is refused the second time, by the queue that remembers it.

The body is read as MLflow builds it, ``{"entity", "action", "timestamp", "data"}`` (plus ``"workspace"``
when MLflow's workspaces are on), and nothing else: duplicate keys, NaN, other top-level keys or values of
the wrong type are refused. Each refusal names a reason (a metric label) and an HTTP status (4xx).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
FRESHNESS_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024
MAX_NAME_LENGTH = 512  # MLflow's names are far shorter; a longer one is not MLflow's
# The events that name a registered model (MLflow 3.17's model-registry events): each is a hint to sync it.
MODEL_EVENTS = frozenset(
    {
        "registered_model.created",
        "model_version.created",
        "model_version_tag.set",
        "model_version_tag.deleted",
        "model_version_alias.created",
        "model_version_alias.deleted",
    }
)
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_WORD = re.compile(r"^[a-z][a-z_]{0,63}$")
_TOP_KEYS = frozenset({"entity", "action", "timestamp", "data", "workspace"})


class Refused(Exception):
    """A delivery that is not acted on: ``reason`` (the metric's label), ``status`` (4xx) and what to answer."""

    def __init__(self, reason: str, status: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    timestamp: int


@dataclass(frozen=True)
class WebhookEvent:
    """One event as MLflow sent it; ``model`` is the registered model it names (None for other events)."""

    entity: str
    action: str
    model: str | None
    version: str | None = None
    alias: str | None = None

    @property
    def name(self) -> str:
        return f"{self.entity}.{self.action}"


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` MLflow sends for this delivery."""
    mac = hmac.new(secret.encode("utf-8"), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def check_delivery(header: Callable[[str], str | None], body: bytes, secret: str | None, now: float) -> Delivery:
    """The delivery's id and timestamp once its signature (unless ``secret`` is None) and age are right.
    ``header`` looks a header up by name (case-insensitive). Raises Refused."""
    delivery_id = header(DELIVERY_ID_HEADER) or ""
    if not _DELIVERY_ID.match(delivery_id):
        raise Refused("bad_delivery_id", 400, f"{DELIVERY_ID_HEADER} is missing or malformed.")
    stamp = header(TIMESTAMP_HEADER) or ""
    if not _TIMESTAMP.match(stamp):
        raise Refused("bad_timestamp", 400, f"{TIMESTAMP_HEADER} is missing or not unix seconds.")
    if secret is not None:
        given = header(SIGNATURE_HEADER)
        if not given:
            raise Refused("no_signature", 401, f"{SIGNATURE_HEADER} is missing.")
        expected = sign(secret, delivery_id, stamp, body)
        # A header may carry several space-separated signatures (secret rotation, as Standard Webhooks allow).
        if not any(hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in given.split()[:8]):
            raise Refused("bad_signature", 401, "The signature does not match.")
    if abs(now - int(stamp)) > FRESHNESS_SECONDS:
        raise Refused("stale_timestamp", 400, f"{TIMESTAMP_HEADER} is more than {FRESHNESS_SECONDS} s from now.")
    return Delivery(delivery_id, int(stamp))


def parse_event(body: bytes) -> WebhookEvent:
    """The event in a delivery's body, read strictly. Raises Refused (400)."""
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise Refused("bad_body", 400, f"The body is not a JSON document MLflow sends ({_first_line(exc)}).") from None
    if not isinstance(document, dict):
        raise Refused("bad_body", 400, "The body is not a JSON object.")
    unknown = set(document) - _TOP_KEYS
    missing = {"entity", "action", "timestamp", "data"} - set(document)
    if unknown or missing:
        raise Refused("bad_body", 400, f"Unexpected keys {sorted(unknown)} / missing keys {sorted(missing)}.")
    entity, action, data = document["entity"], document["action"], document["data"]
    if not (isinstance(entity, str) and _WORD.match(entity) and isinstance(action, str) and _WORD.match(action)):
        raise Refused("bad_body", 400, "entity and action must be lower-case words.")
    if not isinstance(document["timestamp"], str) or not isinstance(data, dict):
        raise Refused("bad_body", 400, "timestamp must be a string and data an object.")
    if document.get("workspace") is not None and not isinstance(document["workspace"], str):
        raise Refused("bad_body", 400, "workspace must be a string.")
    if f"{entity}.{action}" not in MODEL_EVENTS:
        return WebhookEvent(entity, action, None)
    return WebhookEvent(
        entity,
        action,
        _text(data, "name", required=True),
        _text(data, "version", required=False),
        _text(data, "alias", required=False),
    )


def _text(data: dict[str, Any], key: str, *, required: bool) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH or not value.isprintable():
        raise Refused("bad_body", 400, f"data.{key} must be a non-empty printable string.")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key[:40]!r}")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]
