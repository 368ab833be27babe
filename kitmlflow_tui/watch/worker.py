"""The watch's two loops: the worker, which syncs the models the queue holds, and the reconcile, which queues
every followed model at start and every ``--reconcile-every``.

An event is a hint: whatever it said, the worker re-reads the model from MLflow and runs the same core as
``kitmlflow sync mlflow://HOST/models/NAME`` (the in-step check first, one lock per target), so a duplicated,
lost or out-of-order event costs nothing. One model at a time: syncs share the machine's disk, network and the
target locks. A model leaves the queue when its sync is done; a failed sync (the server or the registry down, a
version that failed) is tried again later, with a growing delay; a stop (SIGTERM) abandons the version being
imported at its next check, and the model stays queued for the next start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitmlflow_tui.core.errors import (
    BadInputError,
    InterruptedByUser,
    KitmlflowError,
    NotFoundError,
    as_kitmlflow_error,
    scrub_secrets,
)
from kitmlflow_tui.watch.config import WatchConfig, WatchedModel
from kitmlflow_tui.watch.delivery import FRESHNESS_SECONDS
from kitmlflow_tui.watch.log import WatchLog
from kitmlflow_tui.watch.metrics import Metrics
from kitmlflow_tui.watch.queue import Pending, WorkQueue

if TYPE_CHECKING:
    from kitmlflow_tui.core.registry import RegistryOptions

RETRY_FIRST_SECONDS = 10.0
RETRY_MAX_SECONDS = 600.0
IDLE_WAKE_SECONDS = 30.0  # the worker looks for retries that fell due and forgets old delivery ids


@dataclass(frozen=True)
class SyncSettings:
    """What every model's sync shares (the command line's options)."""

    tracking_uri: str
    registry: RegistryOptions | None = None
    packer: str = "auto"
    compression: str = "none"
    jobs: int = 8
    prune_aliases: bool = False


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    outcome: str  # in_step, changed, failed, interrupted
    retry: bool  # whether trying again could help


class Worker:
    def __init__(
        self,
        config: WatchConfig,
        settings: SyncSettings,
        queue: WorkQueue,
        metrics: Metrics,
        log: WatchLog,
        stop: threading.Event,
    ) -> None:
        self.config = config
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.log = log
        self.stop = stop

    def run(self) -> None:
        while not self.stop.is_set():
            self.queue.forget_deliveries(time.time() - 2 * FRESHNESS_SECONDS)
            item = self.queue.next_ready()
            if item is None:
                self.queue.wait(IDLE_WAKE_SECONDS)
                continue
            outcome = self.sync_model(item.model)
            if self.stop.is_set():
                break  # still queued: the next start resumes it
            if outcome.retry:
                self.queue.retry_later(item, _backoff(item))
            else:
                self.queue.done(item)

    def sync_model(self, model: str) -> ModelOutcome:
        """Sync every target the model's name matches; the worst outcome of them."""
        entries = self.config.entries_for(model)
        outcomes = [self._sync_target(model, entry) for entry in entries if not self.stop.is_set()]
        if self.stop.is_set() and len(outcomes) < len(entries):
            outcomes.append(ModelOutcome(model, "interrupted", True))
        order = ("interrupted", "failed", "changed", "in_step")
        worst = min(outcomes, key=lambda o: order.index(o.outcome), default=ModelOutcome(model, "in_step", False))
        return ModelOutcome(model, worst.outcome, any(o.retry for o in outcomes))

    def _sync_target(self, model: str, entry: WatchedModel) -> ModelOutcome:
        from kitmlflow_tui.core.reference import ModelRef
        from kitmlflow_tui.core.sync import SyncOptions, TagTemplate, parse_target, run_sync

        target_text = entry.target_text(model)
        started = time.monotonic()
        try:
            options = SyncOptions(
                target=parse_target(target_text),
                spec=entry.spec,
                template=TagTemplate.parse(entry.tag_template),
                registry=self.settings.registry,
                packer=self.settings.packer,
                compression=self.settings.compression,
                jobs=self.settings.jobs,
                prune_aliases=self.settings.prune_aliases,
                format=entry.format,
                sign_key=entry.sign_key,
            )
            result = run_sync(ModelRef(self.settings.tracking_uri, model), options, cancel=self.stop)
        except Exception as exc:  # noqa: BLE001 - one model's failure is logged; the watch goes on
            error: KitmlflowError = as_kitmlflow_error(exc)
            outcome = "interrupted" if isinstance(error, InterruptedByUser) else "failed"
            self._record(model, target_text, outcome, started, exit_code=error.exit_code, error=error.message)
            # Bad input (a glob's model whose name makes no repository) and a model that is gone stay so.
            retry = outcome == "interrupted" or not isinstance(error, BadInputError | NotFoundError)
            return ModelOutcome(model, outcome, retry)
        interrupted = any(r.exit_code == InterruptedByUser.exit_code for r in result.records)
        changed = [r for r in result.records if r.action in ("pushed", "tag_created", "tag_moved")] + [
            r for r in result.records if r.action == "stale_alias" and r.digest is None and not r.exit_code
        ]
        failed = [r for r in result.records if r.exit_code]
        if interrupted:
            outcome = "interrupted"
        elif result.exit_code:
            outcome = "failed"
        else:
            outcome = "changed" if changed else "in_step"
        self._record(
            model,
            target_text,
            outcome,
            started,
            exit_code=result.exit_code,
            summary={action: count for action, count in result.counts().items() if count},
            changes=[f"{r.action} {r.tag}" for r in changed],
            problems=[f"{r.action} {r.tag or r.version}: {r.reason}" for r in failed[:5]],
        )
        retry = interrupted or any(r.action == "failed" for r in result.records)
        return ModelOutcome(model, outcome, retry)

    def _record(self, model: str, target: str, outcome: str, started: float, **fields: object) -> None:
        if outcome != "interrupted":
            self.metrics.synced(model, outcome, in_step=outcome in ("in_step", "changed"))
        error = fields.pop("error", None)
        self.log.line(
            "sync",
            model=model,
            target=target,
            outcome=outcome,
            seconds=round(time.monotonic() - started, 3),
            error=scrub_secrets(str(error)) if error else None,
            **fields,
        )


def _backoff(item: Pending) -> float:
    return min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** min(item.attempts, 10))


class Reconciler:
    """Queues every followed model at start, then every ``every`` seconds (0: only at start)."""

    def __init__(
        self,
        config: WatchConfig,
        tracking_uri: str,
        every: float,
        queue: WorkQueue,
        metrics: Metrics,
        log: WatchLog,
        stop: threading.Event,
    ) -> None:
        self.config = config
        self.tracking_uri = tracking_uri
        self.every = every
        self.queue = queue
        self.metrics = metrics
        self.log = log
        self.stop = stop

    def run(self) -> None:
        reason = "start"
        while not self.stop.is_set():
            self.reconcile(reason)
            if self.every <= 0:
                return
            reason = "reconcile"
            self.stop.wait(self.every)

    def reconcile(self, reason: str) -> list[str]:
        names = set(self.config.exact_names)
        error = None
        if self.config.has_globs:
            try:
                names |= {name for name in self._server_names() if self.config.entries_for(name)}
            except KitmlflowError as exc:  # the exact names are still queued; the globs next time
                error = exc.message
        for name in sorted(names):
            self.queue.enqueue(name, reason)
        self.metrics.watching(names)
        self.log.line("reconcile", reason=reason, models=sorted(names), error=error)
        return sorted(names)

    def _server_names(self) -> list[str]:
        from kitmlflow_tui.core.catalogue import Catalogue

        return Catalogue(self.tracking_uri).registered_model_names()
