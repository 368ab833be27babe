"""Headless progress for the CLI: rich bars on a terminal, plain timestamped lines otherwise (CI logs)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from rich.console import Console
from rich.markup import escape

from kitmlflow_tui.core.events import Observer, ProgressEvent, Step
from kitmlflow_tui.core.selection.plan import format_size

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

PLAIN_INTERVAL_SECONDS = 5.0


class ProgressRenderer(Observer):
    def __init__(self, console: Console, *, interactive: bool) -> None:
        self.console = console
        self.interactive = interactive
        self._progress: Progress | None = None
        self._overall = cast("TaskID", 0)  # the overall bar's task, once live() shows bars
        self._tasks: dict[str, TaskID] = {}
        self._total = 0
        self._done = 0
        self._files_total = 0
        self._files_done = 0
        self._started = time.monotonic()
        self._last_line = 0.0
        self._unit = "files"

    # -- Observer ------------------------------------------------------------------------------
    def step(self, step: Step, message: str) -> None:
        self.console.print(f"[dim]→[/] {escape(message)}")

    def progress(self, event: ProgressEvent) -> None:
        if event.kind == "plan":
            self._total, self._files_total, self._started = event.size, event.files, time.monotonic()
            if self._progress is not None:
                self._progress.update(self._overall, total=max(event.size, 1), completed=0)
            return
        if event.kind == "bytes":
            self._done += event.size
            if self._progress is not None:
                self._progress.advance(self._overall, event.size)
                if event.path in self._tasks:
                    self._progress.advance(self._tasks[event.path], event.size)
            else:
                self._plain_line()
        elif event.kind == "file_start" and self._progress is not None:
            self._tasks[event.path] = self._progress.add_task(_short(event.path), total=max(event.size, 1))
        elif event.kind == "file_done":
            self._files_done += 1
            if self._progress is not None:
                task = self._tasks.pop(event.path, None)
                if task is not None:
                    self._progress.remove_task(task)
                self._progress.update(self._overall, description=self._overall_label())
            else:
                self.console.print(
                    f"  [{self._files_done}/{self._files_total}] {escape(event.path)} ({format_size(event.size)})"
                )

    def push_progress(self, event: ProgressEvent) -> None:
        """The push's blobs as files of a second transfer: its plan starts the counts afresh."""
        if event.kind == "file_skipped":
            return
        if event.kind != "plan":
            self.progress(event)
            return
        self._unit, self._done, self._files_done = "blobs", 0, 0
        self.progress(event)
        if self._progress is not None:
            self._progress.update(self._overall, description=self._overall_label())
        if event.files == 0:
            self.console.print("  every blob is in the registry already: only the manifest is sent")
        else:
            self.console.print(f"  {event.files} blobs to send ({format_size(event.size)})")

    # -- rendering -----------------------------------------------------------------------------
    def _overall_label(self) -> str:
        return f"[bold]{self._files_done}/{self._files_total} {self._unit}"

    def _plain_line(self) -> None:
        now = time.monotonic()
        if now - self._last_line < PLAIN_INTERVAL_SECONDS:
            return
        self._last_line = now
        elapsed = max(now - self._started, 1e-6)
        rate = self._done / elapsed
        percent = 100 * self._done / self._total if self._total else 100.0
        eta = (self._total - self._done) / rate if rate > 0 else float("inf")
        eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
        self.console.print(
            f"  {percent:5.1f}%  {format_size(self._done)} / {format_size(self._total)}  "
            f"{format_size(int(rate))}/s  ETA {eta_text}"
        )

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Show bars while the block runs (a no-op for plain output)."""
        if not self.interactive:
            yield
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            expand=True,
        )
        self._overall = self._progress.add_task(self._overall_label(), total=max(self._total, 1))
        try:
            with self._progress:
                yield
        finally:
            self._progress = None
            self._tasks.clear()


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]
