"""MLflow's webhooks (MLflow >= 3.3, SQL backends only): one webhook, found by its name, created or updated.

Used by ``kitmlflow watch --register-webhook``: running it twice, or with a new URL, events or secret, leaves
one webhook of that name (updated in place, ACTIVE). The secret goes only to the tracking server, which keeps
it encrypted with its ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kitmlflow_tui.core.catalogue.mlflow_errors import check_reachable, mlflow_errors
from kitmlflow_tui.core.catalogue.pages import all_pages

MAX_WEBHOOK_PAGES = 100


@dataclass(frozen=True)
class WebhookState:
    webhook_id: str
    name: str
    url: str
    events: tuple[str, ...]
    created: bool  # False: an existing webhook of that name was updated


def ensure_webhook(
    tracking_uri: str, *, name: str, url: str, events: Sequence[str], secret: str | None, description: str
) -> WebhookState:
    """The webhook ``name`` on the tracking server, pointing at ``url`` for ``events`` with ``secret``."""
    from mlflow import MlflowClient
    from mlflow.entities.webhook import WebhookEvent, WebhookEventStr

    check_reachable(tracking_uri)
    wanted: list[WebhookEventStr | WebhookEvent] = [WebhookEvent(*event.split(".", 1)) for event in events]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with mlflow_errors("the webhooks", tracking_uri):
        existing = next(
            (
                hook
                for hook in all_pages(
                    lambda token: client.list_webhooks(max_results=100, page_token=token),
                    "the webhooks",
                    tracking_uri,
                    max_pages=MAX_WEBHOOK_PAGES,
                )
                if hook.name == name
            ),
            None,
        )
        if existing is None:
            hook = client.create_webhook(
                name=name, url=url, events=wanted, description=description, secret=secret, status="ACTIVE"
            )
        else:
            hook = client.update_webhook(
                existing.webhook_id,
                url=url,
                events=wanted,
                description=description,
                secret=secret,
                status="ACTIVE",
            )
    return WebhookState(
        str(hook.webhook_id), str(hook.name), str(hook.url), tuple(str(e) for e in hook.events), existing is None
    )
