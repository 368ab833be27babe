"""The watch's counters, and ``GET /metrics`` in Prometheus' text exposition format (version 0.0.4).

Written here rather than with ``prometheus_client``: the format of a few counters and gauges is a handful of
lines, while the library brings a process-wide registry, its own HTTP server and a dependency that every
``pip install kitmlflow`` would carry for a command most users never run.

Label values are model names and event names as MLflow sent them (only after a delivery is authentic), and
the fixed reasons of ``delivery.Refused``; they are escaped as the format requires.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

_HELP = {
    "kitmlflow_watch_events_received_total": ("counter", "Authentic, fresh, new webhook deliveries, by event."),
    "kitmlflow_watch_events_refused_total": ("counter", "Requests answered 4xx and not acted on, by reason."),
    "kitmlflow_watch_events_dropped_total": ("counter", "Authentic events not acted on, by reason."),
    "kitmlflow_watch_syncs_total": ("counter", "Syncs of a model, by outcome."),
    "kitmlflow_watch_queue_depth": ("gauge", "Models waiting for a sync."),
    "kitmlflow_watch_seconds_since_in_step": (
        "gauge",
        "Seconds since the model's last sync that ended in step (+Inf: not yet).",
    ),
}


class Metrics:
    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self._lock = threading.Lock()
        self._received: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._syncs: Counter[tuple[str, str]] = Counter()
        self._in_step_at: dict[str, float | None] = {}  # model -> time.monotonic() of its last in-step sync
        self._queue_depth = queue_depth

    def received(self, event: str) -> None:
        with self._lock:
            self._received[event] += 1

    def refused(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] += 1

    def dropped(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def watching(self, models: Iterable[str]) -> None:
        """Models whose in-step age is reported from now on (+Inf until their first sync in step)."""
        with self._lock:
            for model in models:
                self._in_step_at.setdefault(model, None)

    def synced(self, model: str, outcome: str, in_step: bool) -> None:
        with self._lock:
            self._syncs[(model, outcome)] += 1
            if in_step:
                self._in_step_at[model] = time.monotonic()
            else:
                self._in_step_at.setdefault(model, None)

    def render(self) -> str:
        now = time.monotonic()
        depth = self._queue_depth()
        with self._lock:
            samples: dict[str, list[tuple[dict[str, str], float]]] = {
                "kitmlflow_watch_events_received_total": [({"event": k}, v) for k, v in sorted(self._received.items())],
                "kitmlflow_watch_events_refused_total": [({"reason": k}, v) for k, v in sorted(self._refused.items())],
                "kitmlflow_watch_events_dropped_total": [({"reason": k}, v) for k, v in sorted(self._dropped.items())],
                "kitmlflow_watch_syncs_total": [
                    ({"model": model, "outcome": outcome}, v) for (model, outcome), v in sorted(self._syncs.items())
                ],
                "kitmlflow_watch_queue_depth": [({}, depth)],
                "kitmlflow_watch_seconds_since_in_step": [
                    ({"model": model}, math.inf if at is None else now - at)
                    for model, at in sorted(self._in_step_at.items())
                ],
            }
        lines: list[str] = []
        for name, values in samples.items():
            kind, text = _HELP[name]
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in values]
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
