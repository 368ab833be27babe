"""Step 2: the runs of one experiment, paged from the server, sortable, filtered by MLflow filter strings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from kitmlflow_tui.catalogue.records import RunPage, RunQuery, RunSummary
from kitmlflow_tui.errors import KitmlflowError
from kitmlflow_tui.tui.screens.base import SERVER_EXIT_CODES, WizardScreen
from kitmlflow_tui.tui.text import (
    error_markup,
    format_duration,
    format_metric,
    format_time,
    not_finished_reason,
    status_text,
)

PAGE_SIZE = 100
LOAD_MORE_WITHIN = 15  # rows from the end at which the next page is fetched
MAX_METRIC_COLUMNS = 3
WIDE = 110  # from this width on, the table shows every metric column and the user
_PREFERRED_METRIC_WORDS = ("acc", "f1", "auc", "precision", "recall", "loss", "rmse", "mae")


@dataclass(frozen=True)
class SortKey:
    column: str
    order_by: str  # MLflow's name for it


SORTABLE = {
    "name": "attributes.run_name",
    "status": "attributes.status",
    "start": "attributes.start_time",
    "user": "tags.`mlflow.user`",
}


def main_metrics(runs: tuple[RunSummary, ...]) -> list[str]:
    """The metrics most runs have, validation and quality ones first."""
    counts = Counter(key for run in runs for key in run.metrics)

    def rank(key: str) -> tuple[int, int, int, str]:
        lowered = key.lower()
        preferred = next((i for i, word in enumerate(_PREFERRED_METRIC_WORDS) if word in lowered), 99)
        return (-counts[key], 0 if lowered.startswith(("val", "test", "eval")) else 1, preferred, key)

    return sorted(counts, key=rank)[:MAX_METRIC_COLUMNS]


class RunsScreen(WizardScreen):
    STEP = "Runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=False),
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("d", "flip", "Asc/desc"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    class Chosen(Message):
        """A finished run was opened: the App shows its artifacts."""

        def __init__(self, run: RunSummary) -> None:
            super().__init__()
            self.run = run

    def __init__(self, experiment_id: str, experiment_name: str | None = None) -> None:
        super().__init__()
        self.experiment_id = experiment_id
        self.experiment_name = experiment_name
        self.runs: list[RunSummary] = []
        self.metric_columns: list[str] = []
        self.next_token: str | None = None
        self.tokens_seen: set[str] = set()  # a server that sends one again would page forever: stop there
        self.page_loading = False
        self.generation = 0  # bumped by every reload, so a late page of an old query is dropped
        self.sort_column = "start"
        self.descending = True
        self.filter_string = ""
        self._built_wide = True

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.experiment_name or 'experiment ' + self.experiment_id}"

    def compose_body(self) -> ComposeResult:
        yield Input(
            placeholder="MLflow filter (/), e.g. metrics.val_accuracy > 0.9",
            id="run-filter",
        )
        yield Static("", id="filter-error", classes="error-line")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("Loading runs…", id="run-detail", classes="status-line")

    def on_mount(self) -> None:
        self.query_one("#run-filter", Input).cursor_blink = self.wizard.cursor_blink
        self.query_one("#filter-error").display = False
        self.query_one(DataTable).focus()
        self.action_reload()

    # -- loading ---------------------------------------------------------------------------------
    def order_by(self) -> list[str]:
        direction = "DESC" if self.descending else "ASC"
        if self.sort_column.startswith("metric:"):
            key = self.sort_column.removeprefix("metric:")
            return [f"metrics.`{key}` {direction}"]
        return [f"{SORTABLE[self.sort_column]} {direction}"]

    def action_reload(self) -> None:
        self.generation += 1
        self.runs, self.next_token, self.page_loading = [], None, True
        self.tokens_seen = set()
        self.query_one("#run-detail", Static).update("Loading runs…")
        self.background(self.fetcher(None), self.first_page, self.load_failed, group="runs")

    def load_more(self) -> None:
        if self.page_loading or not self.next_token:
            return
        self.page_loading = True
        self.background(self.fetcher(self.next_token), self.more, self.load_failed, group="runs-more")

    def fetcher(self, page_token: str | None) -> Callable[[], tuple[int, RunPage]]:
        """A worker's job: one page of the current query, tagged with the query's generation."""
        backend, experiment_id, generation = self.wizard.backend, self.experiment_id, self.generation
        query = RunQuery(self.filter_string, tuple(self.order_by()), PAGE_SIZE, page_token)
        return lambda: (generation, backend.search_runs(experiment_id, query))

    def first_page(self, result: tuple[int, RunPage]) -> None:
        generation, page = result
        if generation != self.generation:
            return
        self.query_one("#filter-error").display = False
        self.metric_columns = main_metrics(page.runs)
        self._build_columns(page.runs)
        self.more(result)

    def more(self, result: tuple[int, RunPage]) -> None:
        generation, page = result
        if generation != self.generation:
            return
        self.page_loading = False
        token = page.next_page_token
        self.next_token = None if token in self.tokens_seen else token
        if token:
            self.tokens_seen.add(token)
        table = self.query_one(DataTable)
        for run in page.runs:
            if run.run_id in table.rows:
                continue
            self.runs.append(run)
            table.add_row(*self._cells(run), key=run.run_id)
        self.show_detail()

    def load_failed(self, error: KitmlflowError) -> None:
        self.page_loading = False
        if error.exit_code in SERVER_EXIT_CODES:
            self.show_error(error, retry=self.action_reload)
            return
        line = self.query_one("#filter-error", Static)
        line.update(error_markup(error))
        line.display = True
        self.query_one("#run-detail", Static).update("The filter was not applied; fix it and press enter.")

    def wide(self) -> bool:
        return self.app.size.width >= WIDE

    def shown_metrics(self) -> list[str]:
        return self.metric_columns if self.wide() else self.metric_columns[:1]

    def on_resize(self) -> None:
        if self.runs and self.wide() != self._built_wide:
            self._build_columns(self.runs)
            table = self.query_one(DataTable)
            for run in self.runs:
                table.add_row(*self._cells(run), key=run.run_id)

    def _build_columns(self, runs: list[RunSummary] | tuple[RunSummary, ...]) -> None:
        self._built_wide = self.wide()
        table = self.query_one(DataTable)
        table.clear(columns=True)
        arrow = "↓" if self.descending else "↑"

        def title(label: str, key: str) -> str:
            return f"{label} {arrow}" if key == self.sort_column else label

        longest = max((len(run.run_name) for run in runs), default=10)
        table.add_column(title("Run", "name"), key="name", width=min(max(longest, 6), 28 if self._built_wide else 17))
        table.add_column("ID", key="id")
        table.add_column(title("Status", "status"), key="status")
        table.add_column(title("Start (UTC)", "start"), key="start")
        table.add_column("Duration", key="duration")
        for metric in self.shown_metrics():
            table.add_column(title(metric, f"metric:{metric}"), key=f"metric:{metric}")
        if self._built_wide:
            table.add_column(title("User", "user"), key="user")

    def _cells(self, run: RunSummary) -> list[Text]:
        style = "" if run.status == "FINISHED" else "dim"
        status = status_text(run.status)
        if style:
            status.stylize("dim")
        cells = [
            Text(run.run_name or "—", style=style, overflow="ellipsis", no_wrap=True),
            Text(run.run_id[:8], style=style or "dim"),
            status,
            Text(format_time(run.start_time), style=style),
            Text(format_duration(run.start_time, run.end_time, self.wizard.now()), style=style),
        ]
        cells += [Text(format_metric(run.metrics.get(m)), style=style, justify="right") for m in self.shown_metrics()]
        if self._built_wide:
            cells.append(Text(run.user or "", style=style))
        return cells

    # -- interaction -----------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#runs")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        if event.cursor_row >= len(self.runs) - LOAD_MORE_WITHIN:
            self.load_more()

    def current(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def show_detail(self) -> None:
        detail = self.query_one("#run-detail", Static)
        shown = f"{len(self.runs):,} runs" + (" (more below)" if self.next_token else "")
        run = self.current()
        if run is None:
            detail.update(f"No runs{' match the filter' if self.filter_string else ''}.")
            return
        reason = not_finished_reason(run.status)
        facts = [run.user or ""] + [f"{k} {format_metric(v)}" for k, v in sorted(run.metrics.items())[:4]]
        head = f"[b]{escape(run.run_name or run.run_id)}[/] [dim]{run.run_id[:8]} · {escape(' · '.join(f for f in facts if f))}[/]"
        if reason:
            detail.update(f"{head}\n[$warning]{escape(reason)}[/]")
        else:
            detail.update(f"{head}\n[dim]enter: choose its artifacts · {shown}[/]")

    @on(DataTable.RowSelected, "#runs")
    def row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        run = self.current()
        if run is None:
            return
        reason = not_finished_reason(run.status)
        if reason:
            self.notify(f"Run {run.run_name or run.run_id} is {reason}.", severity="warning", timeout=6)
            return
        self.post_message(self.Chosen(run))

    def action_focus_filter(self) -> None:
        self.query_one("#run-filter", Input).focus()

    @on(Input.Submitted, "#run-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_string = event.value.strip()
        self.query_one(DataTable).focus()
        self.action_reload()

    def sort_keys(self) -> list[str]:
        return ["start", "name", "status", "user"] + [f"metric:{m}" for m in self.metric_columns]

    def action_sort(self, column: str | None = None) -> None:
        keys = self.sort_keys()
        if column is None:
            column = keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column in keys else keys[0]
        elif column == self.sort_column:
            self.descending = not self.descending
        self.sort_column = column
        self.action_reload()

    def action_flip(self) -> None:
        self.descending = not self.descending
        self.action_reload()

    @on(DataTable.HeaderSelected, "#runs")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE or key.startswith("metric:"):
            self.action_sort(key)

    def action_back(self) -> None:
        filter_box = self.query_one("#run-filter", Input)
        if filter_box.has_focus:
            self.query_one(DataTable).focus()
            return
        super().action_back()
