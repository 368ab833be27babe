"""``kitmlflow watch`` put together: the state folder and its lock, the queue, the receiver, the worker and the
reconcile loop, and an orderly stop.

One watch per state folder: the first takes ``STATE_DIR/watch.lock`` (flock) for as long as it runs; a second
one started on the same folder (a second replica on the same volume) waits as a standby, not listening, and
takes over when the first one exits. So the SQLite queue always has one writer, and two replicas never sync
the same target at once. (flock works across the processes of one machine and on NFSv4; a volume without
working locks is not a place for the state folder.)

A stop (``stop`` set by SIGTERM or SIGINT) closes the receiver first (MLflow retries what it cannot deliver,
and the reconcile at the next start covers the rest), then lets the worker abandon the version it imports at
its next check; what was queued stays on disk.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kitmlflow_tui.core import locking
from kitmlflow_tui.core.errors import DownloadError, as_kitmlflow_error
from kitmlflow_tui.core.reference import redact_uri
from kitmlflow_tui.watch.config import WatchConfig
from kitmlflow_tui.watch.log import WatchLog
from kitmlflow_tui.watch.metrics import Metrics
from kitmlflow_tui.watch.queue import WorkQueue
from kitmlflow_tui.watch.receiver import WEBHOOK_PATH, Receiver
from kitmlflow_tui.watch.worker import Reconciler, SyncSettings, Worker

STOP_WAIT_SECONDS = 60.0  # for the worker to leave the version it was importing


@dataclass(frozen=True)
class WatchSettings:
    listen: tuple[str, int]
    state_dir: Path
    reconcile_every: float  # seconds; 0: only at start
    secret: str | None  # None only with --insecure-no-signature
    sync: SyncSettings
    public_url: str | None = None  # with --register-webhook
    webhook_name: str = "kitmlflow-watch"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/kitmlflow/watch`` (platformdirs' user state dir elsewhere)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("kitmlflow", appauthor=False)) / "watch"


def run_watch(config: WatchConfig, settings: WatchSettings, log: WatchLog, stop: threading.Event) -> int:
    """Run until ``stop`` is set; 0 then, 1 if a loop of the watch died of a bug."""
    with contextlib.ExitStack() as held:
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(
                locking.locked(
                    settings.state_dir / "watch.lock",
                    cancel=stop,
                    on_wait=lambda: log.line(
                        "standby", state_dir=str(settings.state_dir), reason="another watch holds it"
                    ),
                )
            )
        except locking.LockWaitCancelled:
            log.line("stopped", reason="stopped while in standby")
            return 0
        except OSError as exc:
            raise DownloadError(
                f"Cannot use the state folder {settings.state_dir}: {exc.strerror or exc}.",
                hint="Give a writable --state-dir.",
            ) from None
        return _serve(config, settings, log, stop)


def _serve(config: WatchConfig, settings: WatchSettings, log: WatchLog, stop: threading.Event) -> int:
    queue = WorkQueue(settings.state_dir / "queue.sqlite3")
    metrics = Metrics(queue.depth)
    crashed = threading.Event()
    worker = Worker(config, settings.sync, queue, metrics, log, stop)
    reconciler = Reconciler(config, settings.sync.tracking_uri, settings.reconcile_every, queue, metrics, log, stop)
    # A daemon: a worker stuck in a call that does not end (a server that stopped answering) does not keep
    # the process from exiting STOP_WAIT_SECONDS after a stop; what it was doing stays queued.
    worker_thread = threading.Thread(
        target=_guarded, args=(worker.run, log, stop, crashed), name="watch-worker", daemon=True
    )
    receiver = Receiver(
        settings.listen,
        secret=settings.secret,
        config=config,
        queue=queue,
        metrics=metrics,
        log=log,
        healthy=worker_thread.is_alive,
    )
    try:
        resumed = queue.waiting()
        receiver.start()
        host, port = receiver.address
        log.line(
            "start",
            listen=f"{host}:{port}",
            tracking_uri=redact_uri(settings.sync.tracking_uri),
            webhook=WEBHOOK_PATH,
            signatures="checked" if settings.secret is not None else "NOT CHECKED (--insecure-no-signature)",
            models=[entry.name for entry in config.models],
            reconcile_every=settings.reconcile_every,
            state_dir=str(settings.state_dir),
            resumed=[item.model for item in resumed],
        )
        if settings.public_url is not None:
            _register(settings, log)
        worker_thread.start()
        threading.Thread(
            target=_guarded, args=(reconciler.run, log, stop, crashed), name="watch-reconcile", daemon=True
        ).start()
        stop.wait()
    finally:
        log.line("stopping", queued=queue.depth())
        receiver.stop()
        queue.wake()
        if worker_thread.is_alive():
            worker_thread.join(STOP_WAIT_SECONDS)
        left = queue.depth()
        if not worker_thread.is_alive():
            queue.close()
        log.line("stopped", queued=left)
    return 1 if crashed.is_set() else 0


def _register(settings: WatchSettings, log: WatchLog) -> None:
    from kitmlflow_tui.watch.registration import register_webhook

    assert settings.public_url is not None
    done = register_webhook(settings.sync.tracking_uri, settings.public_url, settings.secret, settings.webhook_name)
    log.line(
        "webhook_registered",
        name=done.name,
        id=done.webhook_id,
        url=done.url,
        created=done.created,
        server_needs=list(done.server_settings),
    )


def _guarded(body: Callable[[], None], log: WatchLog, stop: threading.Event, crashed: threading.Event) -> None:
    """A loop of the watch; a bug in it stops the watch (exit 1) rather than leave it half alive."""
    try:
        body()
    except Exception as exc:  # noqa: BLE001 - logged, and the process exits non-zero for its supervisor
        log.line("crashed", error=as_kitmlflow_error(exc).message)
        crashed.set()
        stop.set()
