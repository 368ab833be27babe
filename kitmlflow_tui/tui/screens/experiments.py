"""Step 1: the experiments of the server, filtered as you type."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from kitmlflow_tui.core.catalogue.records import ExperimentSummary
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import count, format_time


class ExperimentsScreen(WizardScreen):
    STEP = "Experiments"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=True, priority=True),
        Binding("down", "move(1)", "Down", show=False, priority=True),
        Binding("up", "move(-1)", "Up", show=False, priority=True),
        Binding("pagedown", "move(10)", "Page down", show=False, priority=True),
        Binding("pageup", "move(-10)", "Page up", show=False, priority=True),
        Binding("home", "move(-1000000)", "First", show=False, priority=True),
        Binding("end", "move(1000000)", "Last", show=False, priority=True),
        Binding("escape", "clear", "Clear filter"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.experiments: list[ExperimentSummary] = []
        self.shown: list[ExperimentSummary] = []

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="Type to filter experiments by name or id", id="experiment-filter")
        yield DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
        yield Static("Loading experiments…", id="experiments-status", classes="status-line")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = self.wizard.cursor_blink
        self.query_one(Input).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.background(self.wizard.backend.list_experiments, self.loaded, group="experiments")

    def loaded(self, experiments: list[ExperimentSummary]) -> None:
        self.experiments = sorted(experiments, key=lambda e: -(e.last_update_time or 0))
        self.apply_filter(self.query_one(Input).value)

    @on(Input.Changed, "#experiment-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        self.shown = [e for e in self.experiments if needle in e.name.lower() or needle == e.experiment_id]
        table = self.query_one(DataTable)
        table.clear(columns=True)
        longest = max((len(e.name) for e in self.experiments), default=10)
        table.add_column("ID", key="id", width=max(4, max((len(e.experiment_id) for e in self.experiments), default=2)))
        table.add_column("Experiment", key="name", width=min(max(longest, 10), 60))
        table.add_column("Last update (UTC)", key="updated", width=17)
        for exp in self.shown:
            table.add_row(
                Text(exp.experiment_id), Text(exp.name), format_time(exp.last_update_time), key=exp.experiment_id
            )
        status = self.query_one("#experiments-status", Static)
        if not self.experiments:
            status.update("No experiments on this server.")
        elif needle:
            status.update(f"{len(self.shown):,} of {count(len(self.experiments), 'experiment')} match “{text.strip()}”")
        else:
            status.update(f"{count(len(self.experiments), 'experiment')} · type to filter · enter opens")

    def action_move(self, rows: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + rows)))

    @on(Input.Submitted, "#experiment-filter")
    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row >= len(self.shown):
            return
        self.open(self.shown[table.cursor_row])

    @on(DataTable.RowSelected, "#experiments")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open(self.shown[event.cursor_row])

    def open(self, experiment: ExperimentSummary) -> None:
        self.post_message(messages.ExperimentChosen(experiment))

    def action_clear(self) -> None:
        self.query_one(Input).value = ""

    def action_back(self) -> None:
        self.action_clear()
