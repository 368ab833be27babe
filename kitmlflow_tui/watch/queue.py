"""The watch's work, on disk: which models wait for a sync, and which deliveries were already taken.

One SQLite file under ``--state-dir`` (``queue.sqlite3``), so a restart, or a SIGKILL in the middle of a sync,
loses nothing: a model leaves the queue only when its sync is done. Work is per model, not per event: a second
event for a model that already waits changes nothing but its generation, so a burst of events costs one sync,
and an event that arrives while its model is being synced (a newer generation) makes it wait again.

A delivery's id is written in the same transaction as the work it queued: a delivery is acted on once, a
replay (within the freshness window; older ones are refused by their timestamp) is refused, across restarts.
Ids older than the window are pruned.

Durability: WAL with ``synchronous=NORMAL``. A committed event survives the process dying (SIGKILL); a power
cut may lose the last ones, which the reconcile at start makes good (every model is synced then anyway).
One connection serves every thread of the process, behind a lock (SQLite serialises writers anyway).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    model TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    queued_at REAL NOT NULL,
    generation INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_seen_at ON deliveries (seen_at);
"""


@dataclass(frozen=True)
class Pending:
    model: str
    reason: str  # what queued it last: an event's name, "start", "reconcile", "retry"
    queued_at: float
    generation: int
    attempts: int


class WorkQueue:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- putting work in ---------------------------------------------------------------------------
    def accept_delivery(self, delivery_id: str, model: str | None, reason: str, now: float | None = None) -> bool:
        """Remember the delivery and queue its model (None: remembered only); False for a delivery seen before."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO deliveries (id, seen_at) VALUES (?, ?)", (delivery_id, now)
                ).rowcount
                if inserted and model is not None:
                    self._queue(model, reason, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if inserted and model is not None:
                self._changed.notify_all()
            return bool(inserted)

    def enqueue(self, model: str, reason: str, now: float | None = None) -> None:
        with self._lock:
            self._queue(model, reason, time.time() if now is None else now)
            self._changed.notify_all()

    def _queue(self, model: str, reason: str, now: float) -> None:
        # A model already waiting keeps its place; its generation says there is news since it was taken.
        self._db.execute(
            "INSERT INTO pending (model, reason, queued_at, generation) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (model) DO UPDATE SET reason = excluded.reason, generation = generation + 1, "
            "not_before = 0",
            (model, reason, now),
        )

    # -- taking work out ---------------------------------------------------------------------------
    def next_ready(self, now: float | None = None) -> Pending | None:
        """The model that has waited longest among those due now."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT model, reason, queued_at, generation, attempts FROM pending WHERE not_before <= ? "
                "ORDER BY queued_at LIMIT 1",
                (now,),
            ).fetchone()
        return Pending(*row) if row else None

    def wait(self, timeout: float) -> None:
        """Block until work is queued or ``timeout`` passes (whichever first)."""
        with self._lock:
            self._changed.wait(timeout)

    def wake(self) -> None:
        with self._lock:
            self._changed.notify_all()

    def done(self, item: Pending) -> bool:
        """The sync of ``item`` is done: out of the queue, unless news arrived meanwhile (True when it left)."""
        with self._lock:
            removed = self._db.execute(
                "DELETE FROM pending WHERE model = ? AND generation = ?", (item.model, item.generation)
            ).rowcount
        return bool(removed)

    def retry_later(self, item: Pending, delay: float, now: float | None = None) -> None:
        """The sync of ``item`` failed: again after ``delay`` s (at once if news arrived meanwhile)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute(
                "UPDATE pending SET attempts = attempts + 1, reason = 'retry', not_before = ? "
                "WHERE model = ? AND generation = ?",
                (now + delay, item.model, item.generation),
            )

    # -- looking ------------------------------------------------------------------------------------
    def waiting(self) -> list[Pending]:
        with self._lock:
            rows = self._db.execute(
                "SELECT model, reason, queued_at, generation, attempts FROM pending ORDER BY queued_at"
            ).fetchall()
        return [Pending(*row) for row in rows]

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def forget_deliveries(self, older_than: float) -> int:
        with self._lock:
            return int(self._db.execute("DELETE FROM deliveries WHERE seen_at < ?", (older_than,)).rowcount)
