"""Step 2: the runs of one experiment, paged from the server, sortable, filtered by MLflow filter strings.

The table's columns are laid out for the width (``fit_columns``): the run's name, id and status always,
then the columns chosen for the experiment (metrics, params, start, duration, user; ``c`` picks them and
the choice is remembered per experiment, see ``column_prefs``) as long as they fit whole, then the rest
of the width goes to the name. A column that does not fit is left out and named, never clipped; a value
too long for its column is elided with a visible ``…``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from kitmlflow_tui.core.catalogue.records import RunPage, RunQuery, RunSummary
from kitmlflow_tui.core.errors import KitmlflowError
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.dialogs import ColumnChoice, ColumnsScreen
from kitmlflow_tui.tui.screens.base import SERVER_ERRORS, WizardScreen
from kitmlflow_tui.tui.text import (
    count,
    error_markup,
    format_duration,
    format_metric,
    format_time,
    not_finished_reason,
    status_text,
)

PAGE_SIZE = 100
LOAD_MORE_WITHIN = 15  # rows from the end at which the next page is fetched
MAX_METRIC_COLUMNS = 3  # metrics shown by default (the ones most runs have)
_PREFERRED_METRIC_WORDS = ("acc", "f1", "auc", "precision", "recall", "loss", "rmse", "mae")
CELL_PADDING = 1  # DataTable's, on each side of every cell
NAME_MIN, NAME_MAX = 24, 60  # the name is reserved up to NAME_MIN before optional columns
VALUE_MAX = 14  # widest a metric or param column grows; longer values are elided
SCROLLBAR = 2  # kept free for the table's vertical scrollbar

SORTABLE = {
    "name": "attributes.run_name",
    "status": "attributes.status",
    "start": "attributes.start_time",
    "user": "tags.`mlflow.user`",
}
BUILT_IN = {"start": "Start (UTC)", "duration": "Duration", "user": "User"}


@dataclass(frozen=True)
class Column:
    key: str  # "name", "id", "status", "start", "duration", "user", "metric:KEY", "param:KEY"
    title: str
    width: int
    right: bool = False  # numbers


def main_metrics(runs: Sequence[RunSummary]) -> list[str]:
    """The metrics most runs have, validation and quality ones first."""
    counts = Counter(key for run in runs for key in run.metrics)

    def rank(key: str) -> tuple[int, int, int, str]:
        lowered = key.lower()
        preferred = next((i for i, word in enumerate(_PREFERRED_METRIC_WORDS) if word in lowered), 99)
        return (-counts[key], 0 if lowered.startswith(("val", "test", "eval")) else 1, preferred, key)

    return sorted(counts, key=rank)


def default_columns(runs: Sequence[RunSummary]) -> list[str]:
    return [f"metric:{m}" for m in main_metrics(runs)[:MAX_METRIC_COLUMNS]] + ["start", "duration", "user"]


def available_columns(runs: Sequence[RunSummary], chosen: Sequence[str]) -> list[str]:
    """Every column the picker offers: metrics (most common first), params, the built-in ones, and any
    chosen column no loaded run has (a remembered one)."""
    params = sorted({key for run in runs for key in run.params})
    keys = [f"metric:{m}" for m in main_metrics(runs)] + [f"param:{p}" for p in params] + list(BUILT_IN)
    return keys + [key for key in chosen if key not in keys]


def sortable(key: str) -> bool:
    return key in SORTABLE or key.startswith(("metric:", "param:"))


def title_of(key: str) -> str:
    kind, _, name = key.partition(":")
    if kind in ("metric", "param"):
        return name
    return {"name": "Run", "id": "ID", "status": "Status", **BUILT_IN}.get(key, key)


def elide(text: str, width: int, *, keep: str = "start") -> str:
    """``text`` in ``width`` cells, with a visible ``…`` where characters were left out; ``keep`` says
    which part stays: "start", "end", or both ends ("ends")."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    if keep == "start":
        return text[: width - 1] + "…"
    if keep == "end":
        return "…" + text[-(width - 1) :]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def shared_prefix(names: Sequence[str]) -> int:
    """How many leading characters all the names share (a sweep's names differ at their end)."""
    if len(names) < 2:
        return 0
    first, last = min(names), max(names)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return length


def cell_text(run: RunSummary, key: str, now: float) -> str:
    if key == "name":
        return run.run_name or "—"
    if key == "id":
        return run.run_id[:8]
    if key == "status":
        return run.status
    if key == "start":
        return format_time(run.start_time)
    if key == "duration":
        return format_duration(run.start_time, run.end_time, now)
    if key == "user":
        return run.user or ""
    kind, _, name = key.partition(":")
    if kind == "metric":
        return format_metric(run.metrics.get(name))
    return run.params.get(name, "")


def fit_columns(
    width: int, runs: Sequence[RunSummary], chosen: Sequence[str], now: float
) -> tuple[list[Column], list[str]]:
    """The columns shown in ``width`` cells (name, id, status, then the chosen ones that fit whole, in
    order), and the chosen ones left out for lack of width."""

    def natural(key: str, cap: int) -> int:
        """The column's width: its widest value and its title (with room for the sort arrow), capped."""
        longest = max((len(cell_text(run, key, now)) for run in runs), default=0)
        title = len(title_of(key)) + (2 if sortable(key) else 0)
        return max(min(max(longest, title), cap), 2)

    def cost(column_width: int) -> int:
        return column_width + 2 * CELL_PADDING

    name_ideal = max(min(max((len(run.run_name) for run in runs), default=NAME_MIN), NAME_MAX), 6)
    name = min(name_ideal, NAME_MIN)
    fixed = [Column("id", "ID", 8), Column("status", "Status", max(natural("status", 9), 6))]
    used = cost(name) + sum(cost(c.width) for c in fixed)
    shown: list[Column] = []
    hidden: list[str] = []
    for key in chosen:
        cap = 16 if key in ("start", "duration", "user") else VALUE_MAX
        column = Column(key, title_of(key), natural(key, cap), right=key.startswith("metric:"))
        if used + cost(column.width) <= width:
            shown.append(column)
            used += cost(column.width)
        else:
            hidden.append(key)
    name += max(min(width - used, name_ideal - name), 0)
    return [Column("name", "Run", name), *fixed, *shown], hidden


class RunsScreen(WizardScreen):
    STEP = "Runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=False),
        # Priority, and the focus moved at once: keys typed in the same burst as "/" reach the App after it,
        # and must go to the filter, not to the table (where s would sort and c open the columns).
        Binding("slash", "focus_filter", "Filter", priority=True),
        Binding("s", "sort", "Sort"),
        Binding("d", "flip", "Asc/desc"),
        Binding("c", "columns", "Columns"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("home,g", "first", "First run", show=False, priority=True),
        Binding("end,G", "last", "Last run", show=False, priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, experiment_id: str, experiment_name: str | None = None) -> None:
        super().__init__()
        self.experiment_id = experiment_id
        self.experiment_name = experiment_name
        self.runs: list[RunSummary] = []
        self.chosen_columns: list[str] | None = None  # None: the defaults of the first page
        self.columns: list[Column] = []
        self.hidden: list[str] = []
        self.next_token: str | None = None
        self.tokens_seen: set[str] = set()  # a server that sends one again would page forever: stop there
        self.page_loading = False
        self.generation = 0  # bumped by every reload, so a late page of an old query is dropped
        self.sort_column = "start"
        self.descending = True
        self.filter_string = ""
        self._built_width = 0
        self.name_keeps = "ends"

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
        from kitmlflow_tui.tui.column_prefs import load_columns

        display_uri, experiment_id = self.wizard.display_uri, self.experiment_id
        self.background(lambda: load_columns(display_uri, experiment_id), self.prefs_loaded, group="prefs")

    def prefs_loaded(self, columns: list[str] | None) -> None:
        self.chosen_columns = columns
        self.action_reload()

    # -- loading ---------------------------------------------------------------------------------
    def order_by(self) -> list[str]:
        direction = "DESC" if self.descending else "ASC"
        kind, _, name = self.sort_column.partition(":")
        if kind == "metric":
            return [f"metrics.`{name}` {direction}"]
        if kind == "param":
            return [f"params.`{name}` {direction}"]
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
        if self.chosen_columns is None:
            self.chosen_columns = default_columns(page.runs)
        self.runs = []
        self.take_token(page.next_page_token)
        self.page_loading = False
        self.runs = list(page.runs)
        self.rebuild()

    def take_token(self, token: str | None) -> None:
        """The next page's token, unless the server sent it before (it would page forever)."""
        self.next_token = None if token in self.tokens_seen else token
        if token:
            self.tokens_seen.add(token)

    def more(self, result: tuple[int, RunPage]) -> None:
        generation, page = result
        if generation != self.generation:
            return
        self.page_loading = False
        self.take_token(page.next_page_token)
        table = self.query_one(DataTable)
        known = set(table.rows)
        fresh = [run for run in page.runs if run.run_id not in known]
        self.runs += fresh
        widths = self.columns
        if fit_columns(self.table_width(), self.runs, self.chosen_columns or [], self.wizard.now())[0] != widths:
            self.rebuild()  # a wider value arrived: lay the columns out again
            return
        for run in fresh:
            table.add_row(*self._cells(run), key=run.run_id)
        self.show_detail()

    def load_failed(self, error: KitmlflowError) -> None:
        self.page_loading = False
        if isinstance(error, SERVER_ERRORS):
            self.show_error(error, retry=self.action_reload)
            return
        line = self.query_one("#filter-error", Static)
        line.update(error_markup(error))
        line.display = True
        self.query_one("#run-detail", Static).update("The filter was not applied; fix it and press enter.")

    # -- the table -------------------------------------------------------------------------------
    def table_width(self) -> int:
        table = self.query_one(DataTable)
        return (table.size.width or self.app.size.width) - SCROLLBAR

    def on_resize(self) -> None:
        if self.runs and self.table_width() != self._built_width:
            self.rebuild()

    def rebuild(self) -> None:
        """Lay the columns out for the width and fill the table again, keeping the cursor's run."""
        table = self.query_one(DataTable)
        current = self.current()
        self._built_width = self.table_width()
        self.columns, self.hidden = fit_columns(
            self._built_width, self.runs, self.chosen_columns or [], self.wizard.now()
        )
        # Names that share their start (a sweep) keep their end when elided; others keep both ends.
        self.name_keeps = "end" if shared_prefix([run.run_name for run in self.runs]) >= 4 else "ends"
        table.clear(columns=True)
        arrow = "↓" if self.descending else "↑"
        for column in self.columns:
            label = elide(column.title, column.width - (2 if column.key == self.sort_column else 0), keep="ends")
            if column.key == self.sort_column:
                label += f" {arrow}"
            table.add_column(
                Text(label, justify="right" if column.right else "left"), key=column.key, width=column.width
            )
        for run in self.runs:
            table.add_row(*self._cells(run), key=run.run_id)
        if current is not None and current.run_id in table.rows:
            table.move_cursor(row=table.get_row_index(current.run_id))
        self.show_detail()

    def _cells(self, run: RunSummary) -> list[Text]:
        style = "" if run.status == "FINISHED" else "dim"
        now = self.wizard.now()
        cells = []
        for column in self.columns:
            value = cell_text(run, column.key, now)
            if column.key == "status":
                text = status_text(run.status)
                if style:
                    text.stylize("dim")
            elif column.key == "name":
                text = Text(elide(value, column.width, keep=self.name_keeps), style=style)
            else:
                text = Text(elide(value, column.width), style=style or ("dim" if column.key == "id" else ""))
            if column.right:
                text.justify = "right"
            cells.append(text)
        return cells

    # -- interaction -----------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#runs")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        if event.cursor_row >= len(self.runs) - LOAD_MORE_WITHIN:
            self.load_more()

    def current(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs) or table.cursor_row < 0:
            return None
        return self.runs[table.cursor_row]

    def show_detail(self) -> None:
        """Three lines: the run and its full id (what the CLI takes), its facts, what keys do here."""
        detail = self.query_one("#run-detail", Static)
        run = self.current()
        if run is None:
            detail.update(f"No runs{' match the filter' if self.filter_string else ''}.")
            return
        now = self.wizard.now()
        facts = [run.user or "", format_time(run.start_time), format_duration(run.start_time, run.end_time, now)]
        facts += [f"{k} {format_metric(v)}" for k, v in sorted(run.metrics.items())]
        lines = [
            Text.assemble((run.run_name or run.run_id, "bold"), " ", (run.run_id, "dim")),
            Text(" · ".join(f for f in facts if f), style="dim"),
        ]
        reason = not_finished_reason(run.status)
        if reason:
            lines.append(Text(reason, style="yellow"))
        else:
            arrow = "↓" if self.descending else "↑"
            shown = count(len(self.runs), "run") + ("+" if self.next_token else "")
            hint = f"enter opens · {shown} · sorted by {title_of(self.sort_column)} {arrow}"
            if self.hidden:
                names = ", ".join(title_of(key) for key in self.hidden)
                hint += f" · c columns: {len(self.hidden)} left out for width ({names})"
            lines.append(Text(hint, style="dim"))
        text = Text("\n").join(lines)
        text.no_wrap, text.overflow = True, "ellipsis"  # one line each, cut visibly
        detail.update(text)

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
        self.post_message(messages.RunChosen(run))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("first", "last"):  # only for the table: in the filter they are the text's
            return self.query_one(DataTable).has_focus
        if action == "focus_filter":  # in the filter a "/" is text (a path in a tag's value)
            return not self.query_one("#run-filter", Input).has_focus
        return True

    def action_first(self) -> None:
        self.query_one(DataTable).move_cursor(row=0)

    def action_last(self) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(table.row_count - 1, 0))

    def action_focus_filter(self) -> None:
        self.set_focus(self.query_one("#run-filter", Input))  # now, not after the keys already queued

    @on(Input.Submitted, "#run-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_string = event.value.strip()
        self.query_one(DataTable).focus()
        self.action_reload()

    def sort_keys(self) -> list[str]:
        """The sortable columns on screen, in their order (s cycles through these only)."""
        return [c.key for c in self.columns if sortable(c.key)]

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
        if key in self.sort_keys():
            self.action_sort(key)

    def action_columns(self) -> None:
        chosen = self.chosen_columns or []
        offered = [
            (key, title_of(key), key.partition(":")[0] if ":" in key else "")
            for key in available_columns(self.runs, chosen)
        ]
        self.app.push_screen(ColumnsScreen(offered, chosen), self.columns_chosen)

    def columns_chosen(self, choice: ColumnChoice | None) -> None:
        if choice is None:
            return
        self.chosen_columns = list(choice.columns)
        if self.sort_column not in [*choice.columns, "name", "status"]:
            self.sort_column, self.descending = "start", True
            self.action_reload()
        else:
            self.rebuild()
        from kitmlflow_tui.tui.column_prefs import save_columns

        display_uri, experiment_id, columns = self.wizard.display_uri, self.experiment_id, list(choice.columns)
        self.background(
            lambda: save_columns(display_uri, experiment_id, columns),
            lambda path: None,
            lambda error: self.notify(f"The columns are not remembered: {error.message}", severity="warning"),
            group="prefs",
        )

    def action_back(self) -> None:
        filter_box = self.query_one("#run-filter", Input)
        if filter_box.has_focus:
            self.query_one(DataTable).focus()
            return
        super().action_back()
