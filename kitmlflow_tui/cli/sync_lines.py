"""The lines of a sync for the CLI: one per version as it is decided, and each version's import progress.

Apart from ``progress``, so that no other command imports the core's sync at start-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from kitmlflow_tui.cli.progress import ProgressRenderer
from kitmlflow_tui.core.events import Observer, Step
from kitmlflow_tui.core.selection.plan import format_size
from kitmlflow_tui.core.sync import SyncAction, SyncObserver

if TYPE_CHECKING:
    from kitmlflow_tui.core.sync import SyncRecord

_SYNC_MARKS = {
    SyncAction.PUSHED: "[green]✓ pushed[/]",
    SyncAction.SKIPPED: "[dim]= skipped[/]",
    SyncAction.TAG_MOVED: "[green]→ tag moved[/]",
    SyncAction.TAG_CREATED: "[green]+ tag created[/]",
    SyncAction.STALE_ALIAS: "[yellow]~ stale alias[/]",
    SyncAction.CONFLICT: "[yellow]! conflict[/]",
    SyncAction.FAILED: "[red]✗ failed[/]",
    SyncAction.WOULD_PUSH: "[cyan]+ would push[/]",
    SyncAction.WOULD_MOVE_TAG: "[cyan]→ would move tag[/]",
}


class SyncLines(SyncObserver):
    """A sync for the CLI: one line per version as it is decided (``console``), steps and each version's
    import progress on ``err``."""

    def __init__(self, console: Console, err: Console, *, interactive: bool) -> None:
        self.console = console
        self.err = err
        self.interactive = interactive

    def step(self, step: Step, message: str) -> None:
        self.err.print(f"[dim]→[/] {escape(message)}")

    @contextlib.contextmanager
    def version(self, version: str) -> Iterator[Observer]:
        renderer = ProgressRenderer(self.err, interactive=self.interactive)
        with renderer.live():
            yield renderer

    def record(self, record: SyncRecord) -> None:
        sizes = []
        if record.action == SyncAction.WOULD_PUSH and record.selected_bytes is not None:
            sizes.append(f"{format_size(record.selected_bytes)} selected")
        if record.uploaded_bytes is not None:
            sizes.append(f"{format_size(record.uploaded_bytes)} sent in {record.uploaded_blobs} blobs")
        if record.existing_blobs:
            sizes.append(f"{record.existing_blobs} blobs there already")
        if record.size is not None and record.action in (SyncAction.PUSHED, SyncAction.SKIPPED):
            sizes.append(f"ModelKit {format_size(record.size)}")
        if record.exit_code:
            sizes.append(f"exit {record.exit_code}")
        detail = f" ({', '.join(sizes)})" if sizes else ""
        self.console.print(
            f"{_SYNC_MARKS[record.action]} version {record.version} {escape(record.tag or '-')}: "
            f"{escape(record.reason)}{detail}",
            soft_wrap=True,  # one line per version, also in a log
        )
        if record.hint and record.exit_code:
            self.console.print(f"  {escape(record.hint)}", style="yellow", soft_wrap=True)
