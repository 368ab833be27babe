"""Formatting shared by the screens: times (UTC, no clock), durations, statuses, counts, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text

from kitmlflow_tui.core.errors import KitmlflowError, scrub_secrets

if TYPE_CHECKING:
    from kitmlflow_tui.core.catalogue.records import RegisteredModelInfo


def markup_text(markup: str) -> Text:
    """Rich markup as Text with emoji codes off: user data such as ``a:b:c`` must not print as ``a🅱c``
    (DataTable and RichLog parse strings with Rich's defaults, which turn ``:b:`` into an emoji)."""
    return Text.from_markup(markup, emoji=False)


def display_path(path: Path) -> str:
    """A local path as a person reads it: ``~/...`` under the home folder."""
    home = Path.home()
    return "~/" + path.relative_to(home).as_posix() if path.is_relative_to(home) and path != home else str(path)


STATUS_STYLES = {
    "FINISHED": "green",
    "RUNNING": "cyan",
    "SCHEDULED": "magenta",
    "FAILED": "red",
    "KILLED": "yellow",
}


def format_time(millis: int | None) -> str:
    """Absolute UTC, so the same run reads the same everywhere (and in snapshots)."""
    if not millis:
        return "—"
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_seconds(seconds: float, *, precise: bool = True) -> str:
    """``45s``, ``3m 12s`` (or ``3m``), ``1h 40m``, ``2d 3h``."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s" if precise else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def format_duration(start: int | None, end: int | None, now: float | None = None) -> str:
    """A finished run's length; a running one's age so far, against ``now`` (seconds) when given."""
    if not start:
        return "—"
    if end:
        return format_seconds((end - start) / 1000, precise=False)
    if now is None:
        return "…"
    return format_seconds(now - start / 1000, precise=False) + "…"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def not_finished_reason(status: str) -> str | None:
    if status == "FINISHED":
        return None
    return f"{status}, not FINISHED: its artifacts may be incomplete; it cannot be imported"


def format_metric(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"


def monotonic() -> float:
    return time.monotonic()


def model_version(registered: RegisteredModelInfo) -> str:
    """``churn@champion (version 3)`` for a model opened by its alias, ``churn version 3`` by its number."""
    if registered.alias:
        return f"{registered.name}@{registered.alias} (version {registered.version})"
    return f"{registered.name} version {registered.version}"


def count(number: int, word: str, plural: str | None = None) -> str:
    """``1 experiment``, ``2 experiments``, ``1,204 files`` (``plural`` for words not made with an s)."""
    return f"{number:,} {word if number == 1 else plural or word + 's'}"


__all__ = [
    "count",
    "format_duration",
    "format_metric",
    "format_seconds",
    "format_time",
    "not_finished_reason",
    "status_text",
]


def error_markup(exc: KitmlflowError) -> str:
    text = f"[b $error]{escape(scrub_secrets(exc.message))}[/]"
    if exc.hint:
        text += f"\n[$warning]{escape(scrub_secrets(exc.hint))}[/]"
    return text
