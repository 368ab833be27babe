"""Dialogs: an error with a retry, a yes/no confirm, the glob filter with its preview, profiles.

Each is a modal that knows no wizard step: it is given what it shows and dismisses with its answer,
so any step may open one and await the answer, as it would use a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from rich.table import Table
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from kitmlflow_tui.core.catalogue.records import ArtifactTree
from kitmlflow_tui.core.errors import BadInputError, KitmlflowError
from kitmlflow_tui.core.selection.plan import FilterSpec, format_size, make_plan
from kitmlflow_tui.tui.selection_model import GlobMode
from kitmlflow_tui.tui.text import error_markup
from kitmlflow_tui.tui.widgets.tick_list import TickList

PREVIEW_ROWS = 200


class ErrorScreen(ModalScreen[bool]):
    """The same message and advice as the CLI, with a retry when there is something to retry."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("escape", "dismiss_error", "Close"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, error: KitmlflowError, retry: Callable[[], None] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.error = error
        self.retry = retry

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(f"[b]Error[/] [dim](exit code {self.error.exit_code})[/]", classes="dialog-title")
            yield Static(error_markup(self.error), id="error-text")
            with Horizontal(classes="dialog-buttons"):
                if self.retry is not None:
                    yield Button("Retry (r)", id="retry", variant="primary", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Quit (q)", id="quit", variant="error", compact=True)

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        if self.retry is None:
            return
        self.dismiss(True)
        self.retry()

    @on(Button.Pressed, "#close")
    def action_dismiss_error(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#quit")
    def quit_app(self) -> None:
        self.app.exit(self.error.exit_code)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes (y)", no: str = "No (n)") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.labels = (yes, no)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.labels[0], id="yes", variant="error", compact=True)
                yield Button(self.labels[1], id="no", variant="primary", compact=True)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass(frozen=True)
class GlobChoice:
    spec: FilterSpec
    mode: GlobMode


class GlobScreen(ModalScreen[GlobChoice | None]):
    """Type patterns, see what they match, then apply: only / add / remove."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+o", "apply('only')", "Only these"),
        Binding("ctrl+a", "apply('add')", "Add"),
        Binding("ctrl+r", "apply('remove')", "Remove"),
    ]

    def __init__(self, tree: ArtifactTree, initial: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.artifact_tree = tree
        self.initial = initial
        self.spec: FilterSpec | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog glob-dialog"):
            yield Static(
                "[b]Glob filter[/]  [dim]patterns separated by spaces · !pattern excludes · * and ? within a name,"
                " ** across folders, \\[abc] a class, \\ escapes · dir/ is a folder[/]",
                id="glob-help",
            )
            yield Input(
                self.initial, placeholder="e.g. model/ *.safetensors !checkpoints/", id="glob-input", compact=True
            )
            yield Static("", id="glob-summary")
            yield OptionList(id="glob-preview")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Only these ^o", id="only", variant="primary", compact=True)
                yield Button("Add ^a", id="add", compact=True)
                yield Button("Remove ^r", id="remove", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)

    def on_mount(self) -> None:
        field = self.query_one("#glob-input", Input)
        field.cursor_blink = self.app.cursor_blink  # type: ignore[attr-defined]
        self.set_focus(field)  # now, not on the screen's resume: the keys typed with "/" are already on their way
        self.preview(self.initial)

    @on(Input.Changed, "#glob-input")
    def changed(self, event: Input.Changed) -> None:
        self.preview(event.value)

    @on(Input.Submitted, "#glob-input")
    def submitted(self) -> None:
        self.action_apply("only")

    def preview(self, text: str) -> None:
        summary = self.query_one("#glob-summary", Static)
        options = self.query_one("#glob-preview", OptionList)
        options.clear_options()
        self.spec = None
        words = text.split()
        if not words:
            summary.update("[dim]Type a pattern to see the files it matches.[/]")
            return
        spec = FilterSpec(
            include=tuple(w for w in words if not w.startswith("!")),
            exclude=tuple(w[1:] for w in words if w.startswith("!") and len(w) > 1),
        )
        try:
            plan = make_plan(self.artifact_tree, spec)
        except BadInputError as exc:
            summary.update(error_markup(exc))
            return
        self.spec = spec
        summary.update(
            f"[b]{len(plan.selected):,}[/] of {len(self.artifact_tree.files):,} files match · "
            f"[b]{format_size(plan.selected_bytes)}[/] of {format_size(plan.total_bytes)}"
        )
        options.add_options(
            Option(f"{escape(f.path)}  [dim]{format_size(f.size)}[/]") for f in plan.selected[:PREVIEW_ROWS]
        )
        if len(plan.selected) > PREVIEW_ROWS:
            options.add_option(Option(f"[dim]… and {len(plan.selected) - PREVIEW_ROWS:,} more[/]", disabled=True))

    def action_apply(self, mode: GlobMode) -> None:
        if self.spec is not None:
            self.dismiss(GlobChoice(self.spec, mode))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.action_cancel()
        elif event.button.id in ("only", "add", "remove"):
            self.action_apply(event.button.id)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProfileChoice:
    action: str  # "load" or "save"
    name: str


class ProfileScreen(ModalScreen[ProfileChoice | None]):
    """Load a saved profile, or save the current ticks as one (the YAML ``--profile`` reads).

    ``saving``: the user came to save, so the name field has the focus. Typing while the list has the
    focus goes to the name field too, so that Enter after a typed name saves it and never loads the
    profile the list happens to highlight."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, names: list[str], folder: str, *, can_save: bool, saving: bool = False, summary: str = ""
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.names = names
        self.folder = folder
        self.can_save = can_save
        self.saving = saving or not names
        self.summary = summary

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog profile-dialog"):
            yield Label(f"[b]Profiles[/]  [dim]{escape(self.folder)}[/]")
            if self.names:
                yield Label("Load one (enter):", classes="dialog-hint")
                yield OptionList(*[Option(escape(n), id=n) for n in self.names], id="profile-list")
            else:
                yield Static("[dim]No profiles saved yet.[/]", id="profile-list-empty")
            yield Label(
                "Save the current selection as (enter):" + (f" [dim]{escape(self.summary)}[/]" if self.summary else ""),
                classes="dialog-hint",
            )
            yield Input(
                placeholder="a profile name, e.g. weights-only",
                id="profile-name",
                disabled=not self.can_save,
                select_on_focus=False,  # a key typed in the list moves here: selecting it would let the next replace it
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load", id="load", variant="primary", disabled=not self.names, compact=True)
                yield Button("Save", id="save", disabled=not self.can_save, compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#profile-name", Input).cursor_blink = self.app.cursor_blink  # type: ignore[attr-defined]
        if self.saving and self.can_save:
            self.query_one("#profile-name", Input).focus()
        elif self.names:
            self.query_one("#profile-list", OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        name = self.query_one("#profile-name", Input)
        if event.is_printable and event.character and not name.has_focus and self.can_save:
            name.focus()
            name.insert_text_at_cursor(event.character)
            event.prevent_default()
            event.stop()

    @on(OptionList.OptionSelected, "#profile-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(ProfileChoice("load", str(event.option.id)))

    @on(Input.Submitted, "#profile-name")
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() and self.can_save:
            self.save(event.value.strip())

    def save(self, name: str) -> None:
        """Dismiss with the name to save under, or say what a name is and stay open (a name is never a path)."""
        from kitmlflow_tui.core.errors import BadInputError
        from kitmlflow_tui.core.selection.profiles import check_name

        try:
            check_name(name)
        except BadInputError as exc:
            self.notify(exc.message, title="Not a profile name", severity="error")
            return
        self.dismiss(ProfileChoice("save", name))

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load":
            options = self.query_one("#profile-list", OptionList)
            if options.highlighted is not None:
                option = options.get_option_at_index(options.highlighted)
                self.dismiss(ProfileChoice("load", str(option.id)))
        elif event.button.id == "save":
            name = self.query_one("#profile-name", Input).value.strip()
            if name:
                self.save(name)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class ColumnChoice:
    columns: tuple[str, ...]  # the keys ticked, in the order offered


class ColumnsScreen(ModalScreen[ColumnChoice | None]):
    """Tick the columns of the runs table: metrics, params, start, duration, user."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter,ctrl+s", "apply", "Apply", priority=True),
    ]

    def __init__(self, offered: list[tuple[str, str, str]], chosen: list[str]) -> None:
        """``offered``: (key, title, kind) for every column; ``chosen``: the keys ticked now."""
        super().__init__(classes="dialog-screen")
        self.offered = offered
        self.chosen = set(chosen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog columns-dialog"):
            yield Static(
                "[b]Columns[/]  [dim]space ticks · enter or ^s applies. The run, its id and status are always shown;"
                " the columns ticked here follow, as many as fit the width, in this order.[/]",
                classes="dialog-title",
            )
            yield TickList[str](
                *[
                    Selection(f"{escape(title)} [dim]{kind}[/]" if kind else escape(title), key, key in self.chosen)
                    for key, title, kind in self.offered
                ],
                id="column-list",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply ^s", id="apply", variant="primary", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_apply(self) -> None:
        ticked = set(self.query_one(SelectionList).selected)
        self.dismiss(ColumnChoice(tuple(key for key, _, _ in self.offered if key in ticked)))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen it was opened from: (key, what it does, whether it applies now)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,f1,q", "close", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str, bool]]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False, expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description, enabled in self.keys:
            table.add_row(escape(key), escape(description) if enabled else f"[dim]{escape(description)} (not now)[/]")
        with Vertical(classes="dialog help-dialog"):
            yield Static(
                f"[b]Keys[/] [dim]· {escape(self.title_text)} · Ctrl+P: all commands · esc closes[/]",
                classes="dialog-title",
            )
            with VerticalScroll(id="help-keys"):
                yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
