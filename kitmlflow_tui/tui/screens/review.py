"""Step 4: the Kitfile the import will write, the package fields, disk space, the headless twin."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static

from kitmlflow_tui.catalogue.records import ArtifactTree, RegisteredModelInfo, RunInfo
from kitmlflow_tui.errors import KitmlflowError
from kitmlflow_tui.kitfile import Kitfile, KitfileOverrides, dump_kitfile
from kitmlflow_tui.profiles import PackageDefaults
from kitmlflow_tui.reference import ModelRef, RunRef, format_reference
from kitmlflow_tui.selection import FilterSpec, format_size, make_plan
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.selection_model import headless_command
from kitmlflow_tui.tui.text import error_markup

if TYPE_CHECKING:
    from kitmlflow_tui.pipeline import KitfilePreview

PREVIEW_DELAY = 0.4  # seconds of quiet typing before the Kitfile is generated again
FIELDS = (
    ("tag", "Tag"),
    ("name", "Name"),
    ("version", "Version"),
    ("description", "Description"),
    ("authors", "Authors"),
)


def default_tag(run: RunInfo) -> str:
    repository = re.sub(r"[^a-z0-9._-]+", "-", (run.run_name or "model").lower()).strip("-._") or "model"
    return f"{repository}:{run.run_id[:8]}"


def entry_roles(kitfile: Kitfile) -> list[tuple[str, str, str]]:
    """(role, path, detail) for every entry of a Kitfile, as the review table shows them."""
    rows: list[tuple[str, str, str]] = []
    model = kitfile.model
    if model is not None:
        detail = " ".join(v for v in (model.framework, model.format) if v)
        rows.append(("model", model.path or "", detail or model.name or ""))
        rows += [("model part", part.path or "", part.type or part.name or "") for part in model.parts]
    rows += [("dataset", e.path or "", e.name or e.description or "") for e in kitfile.datasets]
    rows += [("code", e.path or "", e.description or "") for e in kitfile.code]
    rows += [("docs", e.path or "", e.description or "") for e in kitfile.docs]
    return rows


def headless_uri(run: RunInfo, registered: RegisteredModelInfo | None, tracking_uri: str) -> tuple[str, str | None]:
    """The mlflow:// URI of the choice and the --tracking-uri it needs (when the server is no http host)."""
    remote = tracking_uri.startswith(("http://", "https://"))
    host = tracking_uri if remote else None
    if registered is not None:
        ref: RunRef | ModelRef = ModelRef(
            host, registered.name, None if registered.alias else registered.version, registered.alias
        )
    else:
        ref = RunRef(host, run.run_id, run.experiment_id)
    return format_reference(ref), None if remote else tracking_uri


NO_LAYER_ROWS = 5  # files left out of every layer, listed by name (the rest counted)


class ReviewScreen(WizardScreen):
    STEP = "Review"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "start_import", "Import", priority=True),
        Binding("ctrl+y", "copy_command", "Copy command", priority=True),
        Binding("escape", "back", "Back"),
    ]

    class ImportRequested(Message):
        """The review is done: the App runs the import of this choice."""

        def __init__(self, choice: ImportChoice) -> None:
            super().__init__()
            self.choice = choice

    def __init__(
        self,
        run: RunInfo,
        tree: ArtifactTree,
        spec: FilterSpec,
        package: PackageDefaults | None = None,
        registered: RegisteredModelInfo | None = None,
    ) -> None:
        super().__init__()
        self.run = run
        self.artifact_tree = tree
        self.spec = spec
        self.package = package or PackageDefaults()
        self.registered = registered
        self.plan = make_plan(tree, spec)
        self.kitfile: Kitfile | None = None
        self.free: int | None = None
        self.tag_error: str | None = None
        self._debounce: Timer | None = None

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.run.run_name}"

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="review-top"):
            with VerticalScroll(id="package-form"):
                for key, label in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label")
                        yield Input(
                            self._initial(key), placeholder=self._placeholder(key), id=f"field-{key}", compact=True
                        )
                yield Static("", id="tag-error", classes="error-line")
                yield Static("", id="disk")
                yield Static("", id="roles")
                yield Static("", id="no-layer")
                with Horizontal(classes="review-buttons"):
                    yield Button("Import ^g", id="import", variant="success", compact=True)
                    yield Button("Copy command ^y", id="copy", compact=True)
            with VerticalScroll(id="kitfile-pane"):
                yield Static("[dim]Generating the Kitfile…[/]", id="kitfile")
        with Vertical(id="command-box"):
            yield Static("", id="command")

    def _initial(self, key: str) -> str:
        if key == "tag":
            return self.wizard.initial_tag or default_tag(self.run)
        if key == "description":
            return self.package.description or ""
        if key == "authors":
            return ", ".join(self.package.authors)
        return ""

    def _placeholder(self, key: str) -> str:
        return {
            "tag": "repository:tag, e.g. mymodel:v1",
            "name": "from the tag",
            "version": "from the tag",
            "description": "from the run's note",
            "authors": f"{self.run.user or 'comma-separated'}",
        }[key]

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.wizard.cursor_blink
        self.query_one("#tag-error").display = False
        self.query_one("#field-tag", Input).focus()
        self.show_command()
        self.show_disk()
        self.background(self.wizard.backend.free_bytes, self.free_known, group="disk")
        self.preview()

    # -- the choice ------------------------------------------------------------------------------
    def value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def overrides(self) -> KitfileOverrides:
        authors = tuple(a.strip() for a in self.value("authors").split(",") if a.strip())
        return KitfileOverrides(
            name=self.value("name") or None,
            version=self.value("version") or None,
            description=self.value("description") or None,
            authors=authors or None,
            license=self.package.license,
        )

    def choice(self) -> ImportChoice:
        return ImportChoice(
            self.run, self.artifact_tree, self.spec, self.value("tag"), self.overrides(), self.registered
        )

    @on(Input.Changed)
    def changed(self) -> None:
        self.show_command()
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(PREVIEW_DELAY, self.preview)

    # -- the Kitfile -----------------------------------------------------------------------------
    def preview(self) -> None:
        choice = self.choice()

        def build() -> KitfilePreview:
            from kitmlflow_tui.pipeline import check_tag

            check_tag(choice.tag)
            return self.wizard.backend.preview(choice)

        self.background(build, self.previewed, self.preview_failed, group="preview")

    def previewed(self, preview: KitfilePreview) -> None:
        kitfile = preview.kitfile
        self.kitfile = kitfile
        self.plan = preview.plan  # without the files the ModelKit could not hold
        self.show_disk()
        self.show_no_layer(preview)
        self.tag_error = None
        self.query_one("#tag-error").display = False
        text = dump_kitfile(kitfile)
        self.query_one("#kitfile", Static).update(
            Syntax(text, "yaml", theme="ansi_dark", word_wrap=True, background_color="default")
        )
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
        table.add_column("role", style="magenta", no_wrap=True)
        table.add_column("path", overflow="fold")
        table.add_column("", style="dim", overflow="fold")
        for role, path, detail in entry_roles(kitfile):
            table.add_row(role, escape(path), escape(detail))
        self.query_one("#roles", Static).update(table)

    def show_no_layer(self, preview: KitfilePreview) -> None:
        """The selected files kit's layer rules would leave out of the ModelKit: excluded, and said so."""
        line = self.query_one("#no-layer", Static)
        line.display = bool(preview.no_layer)
        if preview.no_layer:
            shown = "\n".join(
                f"  · {escape(o.file.path)}: {escape(o.reason)}" for o in preview.no_layer[:NO_LAYER_ROWS]
            )
            more = len(preview.no_layer) - NO_LAYER_ROWS
            line.update(
                f"[b $warning]{len(preview.no_layer)} selected file{'s' if len(preview.no_layer) != 1 else ''} "
                f"left out[/] (the ModelKit could not hold them):\n{shown}"
                + (f"\n  … and {more} more" if more > 0 else "")
            )

    def preview_failed(self, error: KitmlflowError) -> None:
        self.kitfile = None
        self.tag_error = error.message
        line = self.query_one("#tag-error", Static)
        line.update(error_markup(error))
        line.display = True
        self.query_one("#kitfile", Static).update("[dim]No Kitfile until the problem above is fixed.[/]")

    # -- disk and command ------------------------------------------------------------------------
    def free_known(self, free: int | None) -> None:
        self.free = free
        self.show_disk()

    def show_disk(self) -> None:
        need = self.plan.selected_bytes
        files = len(self.plan.selected)
        text = f"Download [b]{format_size(need)}[/] ({files:,} file{'s' if files != 1 else ''})"
        if self.free is None:
            text += " · [dim]free space: checking…[/]"
        elif self.free >= need:
            text += f" · free {format_size(self.free)} [green]✓[/]"
        else:
            text += f" · free {format_size(self.free)} [b $error]✗ not enough space[/]"
        self.query_one("#disk", Static).update(text)

    def command_line(self) -> str:
        uri, tracking_uri = headless_uri(self.run, self.registered, self.wizard.backend.display_uri)
        return headless_command(uri, self.value("tag"), self.spec, tracking_uri)

    def show_command(self) -> None:
        note = ""
        overrides = self.overrides()
        if overrides.name or overrides.version:
            note = "\n[dim]# name and version come from the tag headless; description and authors from a profile[/]"
        elif overrides.description or overrides.authors:
            note = "\n[dim]# description and authors: put them under package: in a --profile[/]"
        self.query_one("#command", Static).update(
            f"[b]Headless equivalent[/] [dim](ctrl+y copies)[/]\n{escape(self.command_line())}{note}"
        )

    def action_copy_command(self) -> None:
        self.app.copy_to_clipboard(self.command_line())
        self.notify("The command is on the clipboard (if your terminal allows it).", title="Copied")

    @on(Button.Pressed, "#copy")
    def copy_pressed(self) -> None:
        self.action_copy_command()

    # -- go --------------------------------------------------------------------------------------
    @on(Button.Pressed, "#import")
    def action_start_import(self) -> None:
        if self.kitfile is None:
            self.notify(self.tag_error or "The Kitfile is still being generated.", severity="warning")
            return
        if self.free is not None and self.free < self.plan.selected_bytes:
            self.notify("Not enough free disk space for the download.", severity="error")
            return
        self.post_message(self.ImportRequested(self.choice()))
