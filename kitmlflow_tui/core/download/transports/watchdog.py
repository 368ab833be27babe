"""The stall detector: aborts a blocking read when no byte came for N seconds, or when the user cancels.

A per-read socket timeout cannot tell a stall from a slow first byte: a proxied 50 GB S3 object reaches the
client only once the tracking server has fetched it, minutes later, and MLflow's request timeout must allow
that. Once bytes flow, a silence of ``KITMLFLOW_STALL_SECONDS`` (30 s by default) means the transfer is stuck;
it is aborted and the caller resumes from the offset reached (with a ranged request) instead of waiting
MLflow's full timeout three times over.

One monitor thread watches every open stream; ``abort`` is the stream's way to wake a read blocked in another
thread (urllib3's ``HTTPResponse.shutdown``, closing an SSH connection).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal

from kitmlflow_tui.core.download.transports.base import TransferStalled
from kitmlflow_tui.core.errors import InterruptedByUser

POLL_SECONDS = 0.1


class Watch:
    """One stream under watch. Use as a context manager around the reads; call ``fed()`` on every chunk.

    ``first_byte_seconds``: the limit before the first chunk (None: the store's own request timeout governs
    it). After the first chunk the limit is ``stall_seconds``."""

    def __init__(
        self,
        abort: Callable[[], None],
        *,
        stall_seconds: float,
        cancel: threading.Event | None = None,
        first_byte_seconds: float | None = None,
    ) -> None:
        self._abort = abort
        self.stall_seconds = stall_seconds
        self.first_byte_seconds = first_byte_seconds
        self.cancel = cancel
        self.fired: Literal["stall", "cancel"] | None = None
        self._last = time.monotonic()
        self._started = False

    def fed(self) -> None:
        self._last = time.monotonic()
        self._started = True

    def track(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, each one noted as it arrives."""
        for chunk in chunks:
            self.fed()
            yield chunk

    def __enter__(self) -> Watch:
        self._last = time.monotonic()
        _monitor.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _monitor.remove(self)

    def check(self, what: str) -> None:
        """Raise what the watch did, if it did anything (a read it aborted may have ended as a clean EOF)."""
        if self.fired == "cancel":
            raise InterruptedByUser("Download cancelled.")
        if self.fired == "stall":
            raise TransferStalled(f"no byte of {what} arrived for {self.stall_seconds:g} s; the transfer was aborted")

    def _due(self, now: float) -> Literal["stall", "cancel"] | None:
        if self.cancel is not None and self.cancel.is_set():
            return "cancel"
        limit = self.stall_seconds if self._started else self.first_byte_seconds
        if limit is not None and now - self._last > limit:
            return "stall"
        return None

    def _fire(self, reason: Literal["stall", "cancel"]) -> None:
        self.fired = reason
        with contextlib.suppress(Exception):  # aborting a connection that is already broken may fail
            self._abort()


class _Monitor:
    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="kitmlflow-stall-watch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._watches:
                    self._wake.wait()
                now = time.monotonic()
                due = [(w, reason) for w in self._watches if w.fired is None and (reason := w._due(now))]
            for watch, reason in due:
                watch._fire(reason)
            time.sleep(POLL_SECONDS)


_monitor = _Monitor()
