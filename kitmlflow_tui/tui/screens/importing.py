"""Step 5: the import with byte-level progress (download, pack, push), a log of steps, a confirmed cancel,
and after a failure the ways on: retry (a resume), back, the headless command, the kept downloads."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.progress_bar import ProgressBar as BarRenderable
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, RichLog, Static

from kitmlflow_tui.core.errors import InterruptedByUser, KitmlflowError, scrub_secrets
from kitmlflow_tui.core.events import Observer, ProgressEvent, Step
from kitmlflow_tui.core.selection.plan import format_size
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.commands import choice_words
from kitmlflow_tui.tui.dialogs import ConfirmScreen
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import count, format_seconds, markup_text
from kitmlflow_tui.tui.widgets.laid_out import CommandView

if TYPE_CHECKING:
    from kitmlflow_tui.core.pipeline import ImportResult

RATE_WINDOW_SECONDS = 5.0
SHOWN_FILES = 4
REFRESH_SECONDS = 0.1


@dataclass
class ProgressState:
    """A copy of what the import did so far, taken under the observer's lock."""

    steps: list[str] = field(default_factory=list)
    phase: str = "download"  # "download", then "push" once the push has planned its blobs
    total: int = 0
    done: int = 0
    files_total: int = 0
    files_done: int = 0
    active: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (done, size)
    pack: tuple[int, int] | None = None
    rate: float | None = None  # bytes per second over the last few seconds
    present: int = 0  # blobs the registry had already
    packed: ImportResult | None = None  # the ModelKit in local storage, once packed


class ImportProgress(Observer):
    """The pipeline's observer: worker threads write under a lock, the screen reads a copy on a timer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.state = ProgressState()
        self.samples: deque[tuple[float, int]] = deque()

    def step(self, step: Step, message: str) -> None:
        with self.lock:
            self.state.steps.append(message)

    def progress(self, event: ProgressEvent) -> None:
        with self.lock:
            state = self.state
            if event.kind == "plan":
                state.total, state.files_total, state.done, state.files_done = event.size, event.files, 0, 0
                state.active.clear()
                self.samples.clear()
                self.samples.append((self.clock(), 0))
            elif event.kind == "file_start":
                state.active[event.path] = (0, event.size)
            elif event.kind == "bytes":
                state.done += event.size
                done, size = state.active.get(event.path, (0, 0))
                state.active[event.path] = (done + event.size, size)
                now = self.clock()
                self.samples.append((now, state.done))
                while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_SECONDS:
                    self.samples.popleft()
            elif event.kind == "file_done":
                state.files_done += 1
                state.active.pop(event.path, None)

    def pack_progress(self, done: int, total: int) -> None:
        with self.lock:
            self.state.pack = (done, total)

    def packed(self, result: ImportResult) -> None:
        with self.lock:
            self.state.packed = result

    def push_progress(self, event: ProgressEvent) -> None:
        """The push's blobs as the files of a second transfer: its plan starts the counts afresh."""
        if event.kind == "file_skipped":
            with self.lock:
                self.state.present += 1
            return
        if event.kind == "plan":
            with self.lock:
                self.state.phase, self.state.pack = "push", None
        self.progress(event)

    def snapshot(self) -> ProgressState:
        with self.lock:
            state = self.state
            rate = None
            if len(self.samples) >= 2:
                (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
                rate = (b1 - b0) / (t1 - t0) if t1 > t0 else None
            return dataclasses.replace(state, steps=list(state.steps), active=dict(state.active), rate=rate)


def overall_line(state: ProgressState) -> str:
    unit = "blob" if state.phase == "push" else "file"
    parts = [
        f"[b]{format_size(state.done)}[/] of {format_size(state.total)}" + (" pushed" if state.phase == "push" else ""),
        f"{state.files_done:,}/{count(state.files_total, unit)}",
    ]
    if state.phase == "push" and state.present:
        parts.append(f"{count(state.present, 'blob')} already there")
    if state.rate:
        parts.append(f"{format_size(int(state.rate))}/s")
        left = max(state.total - state.done, 0)
        parts.append(f"ETA {format_seconds(left / state.rate)}")
    return " · ".join(parts)


def files_table(state: ProgressState, width: int) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(ratio=3, no_wrap=True, overflow="ellipsis")
    table.add_column(ratio=2)
    table.add_column(justify="right", no_wrap=True)
    busiest = sorted(state.active.items(), key=lambda item: -item[1][1])[:SHOWN_FILES]
    for path, (done, size) in busiest:
        name = path if len(path) <= width // 2 else "…" + path[-(width // 2 - 1) :]
        table.add_row(
            Text(name),
            BarRenderable(total=max(size, 1), completed=min(done, max(size, 1))),
            f"{format_size(done)} / {format_size(size)}",
        )
    if state.pack is not None:
        done, total = state.pack
        table.add_row(
            Text("packing layers"),
            BarRenderable(total=max(total, 1), completed=done),
            f"{format_size(done)} / {format_size(total)}",
        )
    return table


class FollowingLog(RichLog):
    """The steps' log, its last line kept in view when it gets shorter (the panel after a failure takes
    rows from it, and the error is that last line)."""

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        if self.auto_scroll:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)


class ImportScreen(WizardScreen):
    """Runs the import of a choice, or (``packed`` given) only the push of a ModelKit packed before."""

    STEP = "Import"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("escape", "back", "Back to the review"),
        Binding("r", "retry", "Retry"),
        Binding("s", "skip_push", "Finish without the push"),
        Binding("d", "discard", "Delete kept downloads"),
        Binding("q", "quit_when_over", "Quit"),
    ]

    def __init__(self, choice: ImportChoice, packed: ImportResult | None = None) -> None:
        super().__init__()
        self.choice = choice
        self.packed = packed  # set: push this ModelKit again, nothing else
        self.cancel = threading.Event()
        self.observer = ImportProgress(self.wizard_clock)
        self.shown_steps = 0
        self.running = True
        self.outcome: KitmlflowError | None = None
        self.kept: tuple[Path, int] | None = None
        self.quit_after = False  # Ctrl+Q was confirmed: the App quits once the import has stopped

    def wizard_clock(self) -> float:
        return self.wizard.monotonic()

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.choice.run.run_name}"

    def compose_body(self) -> ComposeResult:
        choice = self.choice
        title = (
            f"Pushing [b]{escape(self.packed.reference)}[/]"
            if self.packed
            else f"Importing [b]{escape(choice.run.run_name)}[/] as [b]{escape(str(choice.tag))}[/]"
        )
        if choice.push_to is not None:
            title += f" → [b]{escape(str(choice.push_to))}[/]"
        with Vertical(id="import-box"):
            yield Static(title, id="import-title")
            yield ProgressBar(total=None, show_eta=False, id="overall")
            yield Static("", id="overall-text")
            yield Static("", id="files")
            yield FollowingLog(id="steps", wrap=True, markup=True)
            with VerticalScroll(id="import-after"):
                yield Static("", id="import-next")
                yield CommandView(
                    "[b]Headless equivalent[/] [dim](ctrl+y on the review copies it)[/]", id="import-command"
                )
            yield Static("[dim]esc cancels (completed downloads are kept for the next run)[/]", id="import-hint")

    def on_mount(self) -> None:
        self.query_one("#import-after").display = False
        self.timer = self.set_interval(REFRESH_SECONDS, self.refresh_progress)
        backend, choice, observer, cancel, packed = (
            self.wizard.backend,
            self.choice,
            self.observer,
            self.cancel,
            self.packed,
        )
        if packed is not None:
            self.background(
                lambda: backend.push(choice, packed, observer, cancel), self.finished, self.failed, group="import"
            )
        else:
            self.background(
                lambda: backend.run_import(choice, observer, cancel), self.finished, self.failed, group="import"
            )

    def on_unmount(self) -> None:
        self.cancel.set()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running
        if action in ("back", "retry", "quit_when_over"):
            return not self.running
        if action == "skip_push":
            return not self.running and self.push_failed()
        if action == "discard":
            return not self.running and self.kept is not None and self.kept[1] > 0
        return True

    def push_failed(self) -> bool:
        """The ModelKit is in local storage and only its push failed."""
        return self.choice.push_to is not None and self.local_result() is not None

    def local_result(self) -> ImportResult | None:
        return self.packed or self.observer.snapshot().packed

    def refresh_progress(self) -> None:
        state = self.observer.snapshot()
        log = self.query_one("#steps", RichLog)
        for message in state.steps[self.shown_steps :]:
            log.write(markup_text(f"[green]→[/] {escape(message)}"))
        self.shown_steps = len(state.steps)
        bar = self.query_one("#overall", ProgressBar)
        if state.total:
            bar.update(total=state.total, progress=state.done)
        if state.total or state.files_total:
            self.query_one("#overall-text", Static).update(overall_line(state))
        self.query_one("#files", Static).update(files_table(state, self.size.width))

    def finished(self, result: ImportResult) -> None:
        self.running = False
        self.timer.stop()
        self.refresh_progress()
        self.post_message(messages.ImportFinished(self, self.choice, result, self.quit_after))

    def failed(self, error: KitmlflowError) -> None:
        self.running = False
        while self.app.screen is not self:
            self.app.pop_screen()
        self.outcome = error
        self.timer.stop()
        self.refresh_progress()
        log = self.query_one("#steps", RichLog)
        if isinstance(error, InterruptedByUser):
            log.write(markup_text(f"[yellow]■[/] {escape(error.message)}"))
        else:
            log.write(markup_text(f"[b red]✗ {escape(scrub_secrets(error.message))}[/]"))
            if error.hint:
                log.write(markup_text(f"[yellow]{escape(scrub_secrets(error.hint))}[/]"))
        self.query_one("#import-hint", Static).display = False
        self.query_one("#files", Static).display = False  # nothing is moving any more: room for the way on
        self.query_one("#import-after").display = True
        self.query_one("#import-command", CommandView).show(
            [choice_words(self.choice, self.wizard.backend.display_uri)]
        )
        self.show_next()
        self.refresh_bindings()
        self.post_message(messages.ImportFailed(error, self.quit_after))
        if not self.push_failed():
            choice, backend = self.choice, self.wizard.backend
            self.background(lambda: backend.kept_download(choice), self.kept_known, group="kept")

    def kept_known(self, kept: tuple[Path, int]) -> None:
        self.kept = kept
        self.show_next()
        self.refresh_bindings()

    def show_next(self) -> None:
        """What the user can do now, with the keys."""
        lines = ["[b]What now[/]"]
        local = self.local_result()
        if self.push_failed() and local is not None:
            lines.append(
                f"  The ModelKit [b]{escape(local.reference)}[/] ({local.digest[:19]}) is kept in local storage."
            )
            lines.append("  [b]r[/] retry the push (only what the registry lacks is sent)")
            lines.append("  [b]s[/] finish without the push")
        else:
            kept = self.kept
            if kept is not None and kept[1] > 0:
                where = f"{format_size(kept[1])} downloaded so far kept in {escape(str(kept[0]))}"
                lines.append(f"  [b]r[/] retry: the import resumes ({where})")
                lines.append("  [b]d[/] delete the kept downloads")
            else:
                lines.append("  [b]r[/] retry the import")
        lines.append("  [b]esc[/] back to the review · [b]q[/] quit")
        self.query_one("#import-next", Static).update("\n".join(lines))

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if not self.running:
            return

        def answered(yes: bool | None) -> None:
            if yes and self.running:
                self.cancel.set()
                self.query_one("#steps", RichLog).write("[yellow]Cancelling…[/]")

        self.app.push_screen(
            ConfirmScreen(
                "Cancel the import? Completed downloads are kept for the next run.", "Cancel import (y)", "Go on (n)"
            ),
            answered,
        )

    def ask_to_quit(self) -> None:
        """Ctrl+Q while the import runs: confirm, then cancel it and quit once it has cleaned up."""
        if self.quit_after:  # asked twice: the user means it
            self.cancel.set()
            return
        choice, backend = self.choice, self.wizard.backend

        def ask(kept: tuple[Path, int]) -> None:
            folder, size = kept
            question = "Quit? The import stops and leaves no partial ModelKit."
            if size:
                question += f" The {format_size(size)} downloaded so far stay in {folder} for a later import of this run (delete the folder to free the space)."

            def answered(yes: bool | None) -> None:
                if yes and self.running:
                    self.quit_after = True
                    self.cancel.set()
                    self.query_one("#steps", RichLog).write("[yellow]Cancelling, then quitting…[/]")

            self.app.push_screen(ConfirmScreen(question, "Quit (y)", "Go on (n)"), answered)

        self.background(lambda: backend.kept_download(choice), ask, group="kept")

    def action_retry(self) -> None:
        if not self.running:
            packed = self.local_result() if self.push_failed() else None
            self.post_message(messages.ImportRetryRequested(self.choice, packed))

    def action_skip_push(self) -> None:
        local = self.local_result()
        if not self.running and local is not None:
            self.post_message(messages.ImportFinished(self, self.choice, local, self.quit_after))

    def action_discard(self) -> None:
        kept = self.kept
        if self.running or kept is None:
            return
        choice, backend = self.choice, self.wizard.backend

        def answered(yes: bool | None) -> None:
            if yes:
                self.background(lambda: backend.discard_download(choice), self.discarded, group="kept")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete the {format_size(kept[1])} of downloads kept in {kept[0]}?", "Delete (y)", "Keep (n)"
            ),
            answered,
        )

    def discarded(self, freed: int) -> None:
        self.kept = None
        self.notify(f"Deleted {format_size(freed)} of kept downloads.", title="Cache")
        self.show_next()
        self.refresh_bindings()

    def action_quit_when_over(self) -> None:
        if not self.running:
            self.app.exit(self.outcome.exit_code if self.outcome else 0)
