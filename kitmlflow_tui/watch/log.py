"""The watch's log: one line per event received and per sync outcome (and per start, stop and reconcile).

Human lines (``2026-12-06T21:03:46Z sync model=fraud outcome=changed ...``) on stderr, or with ``--json``
one JSON object per line on stdout (``{"time", "kind", ...}``), for a log collector. Every value goes through
``scrub_secrets`` (the webhook secret is registered there at start), so no secret reaches a line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from kitmlflow_tui.core.errors import scrub_secrets, secrets_to_mask


class WatchLog:
    def __init__(self, *, json_lines: bool, stream: IO[str] | None = None) -> None:
        self.json_lines = json_lines
        self._stream = stream or (sys.stdout if json_lines else sys.stderr)
        self._lock = threading.Lock()

    def line(self, kind: str, **fields: Any) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        secrets = secrets_to_mask()  # once a line: reading the environment costs more than the rules
        clean = {key: _clean(value, secrets) for key, value in fields.items() if value not in (None, [], {})}
        if self.json_lines:
            text = json.dumps({"time": stamp, "kind": kind, **clean}, ensure_ascii=False, default=str)
        else:
            text = " ".join([stamp, kind, *(f"{key}={_shown(value)}" for key, value in clean.items())])
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def _clean(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub_secrets(value, secrets)
    if isinstance(value, dict):
        return {str(k): _clean(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, secrets) for v in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not any(c in value for c in ' "=\n') else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)
