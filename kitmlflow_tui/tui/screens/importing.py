"""Step 5: the import with byte-level progress, a log of steps and a confirmed cancel."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.progress_bar import ProgressBar as BarRenderable
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, RichLog, Static

from kitmlflow_tui.download import ProgressEvent
from kitmlflow_tui.errors import InterruptedByUser, KitmlflowError, scrub_secrets
from kitmlflow_tui.pipeline import Observer
from kitmlflow_tui.selection import format_size
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.dialogs import ConfirmScreen
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import format_seconds, markup_text

if TYPE_CHECKING:
    from kitmlflow_tui.pipeline import ImportResult

RATE_WINDOW_SECONDS = 5.0
SHOWN_FILES = 4
REFRESH_SECONDS = 0.1


@dataclass
class ProgressState:
    """A copy of what the import did so far, taken under the observer's lock."""

    steps: list[str] = field(default_factory=list)
    total: int = 0
    done: int = 0
    files_total: int = 0
    files_done: int = 0
    active: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (done, size)
    pack: tuple[int, int] | None = None
    rate: float | None = None  # bytes per second over the last few seconds


class ImportProgress(Observer):
    """The pipeline's observer: worker threads write under a lock, the screen reads a copy on a timer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.state = ProgressState()
        self.samples: deque[tuple[float, int]] = deque()

    def step(self, name: str, message: str) -> None:
        with self.lock:
            self.state.steps.append(message)

    def progress(self, event: ProgressEvent) -> None:
        with self.lock:
            state = self.state
            if event.kind == "plan":
                state.total, state.files_total, state.done = event.size, event.files, 0
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

    def snapshot(self) -> ProgressState:
        with self.lock:
            state = self.state
            rate = None
            if len(self.samples) >= 2:
                (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
                rate = (b1 - b0) / (t1 - t0) if t1 > t0 else None
            return ProgressState(
                list(state.steps),
                state.total,
                state.done,
                state.files_total,
                state.files_done,
                dict(state.active),
                state.pack,
                rate,
            )


def overall_line(state: ProgressState) -> str:
    parts = [
        f"[b]{format_size(state.done)}[/] of {format_size(state.total)}",
        f"{state.files_done:,}/{state.files_total:,} files",
    ]
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


class ImportScreen(WizardScreen):
    STEP = "Import"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("q", "quit_when_over", "Quit", show=False),
    ]

    class Finished(Message):
        """The ModelKit is packed: the App shows the result."""

        def __init__(self, screen: ImportScreen, choice: ImportChoice, result: ImportResult) -> None:
            super().__init__()
            self.screen, self.choice, self.result = screen, choice, result

    def __init__(self, choice: ImportChoice) -> None:
        super().__init__()
        self.choice = choice
        self.cancel = threading.Event()
        self.observer = ImportProgress(self.wizard_clock)
        self.shown_steps = 0
        self.running = True
        self.outcome: KitmlflowError | None = None

    def wizard_clock(self) -> float:
        return self.wizard.monotonic()

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.choice.run.run_name}"

    def compose_body(self) -> ComposeResult:
        with Vertical(id="import-box"):
            yield Static(
                f"Importing [b]{escape(self.choice.run.run_name)}[/] as [b]{escape(self.choice.tag)}[/]",
                id="import-title",
            )
            yield ProgressBar(total=None, show_eta=False, id="overall")
            yield Static("", id="overall-text")
            yield Static("", id="files")
            yield RichLog(id="steps", wrap=True, markup=True)
            yield Static("[dim]esc cancels (completed downloads are kept for the next run)[/]", id="import-hint")

    def on_mount(self) -> None:
        self.timer = self.set_interval(REFRESH_SECONDS, self.refresh_progress)
        backend, choice, observer, cancel = self.wizard.backend, self.choice, self.observer, self.cancel
        self.background(
            lambda: backend.run_import(choice, observer, cancel), self.finished, self.failed, group="import"
        )

    def on_unmount(self) -> None:
        self.cancel.set()

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
        self.post_message(self.Finished(self, self.choice, result))

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
        self.query_one("#import-hint", Static).update("[dim]esc back to the review · q quit[/]")

    def action_cancel(self) -> None:
        if not self.running:
            self.app.pop_screen()
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

    def action_quit_when_over(self) -> None:
        if not self.running:
            self.app.exit(self.outcome.exit_code if self.outcome else 0)
