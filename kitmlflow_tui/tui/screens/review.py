"""Step 4: the Kitfile the import will write, the package fields, where to push (signed or not), in which format,
disk space, the headless twin."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Select, Static

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.catalogue.records import ArtifactTree, RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.errors import BadInputError, KitmlflowError
from kitmlflow_tui.core.modelkit_reference import ModelKitRef, parse_modelkit_reference
from kitmlflow_tui.core.pipeline import FORMATS, check_format
from kitmlflow_tui.core.selection.plan import FilterSpec, format_size, make_plan
from kitmlflow_tui.core.selection.profiles import PackageDefaults
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.commands import draft_words, one_line
from kitmlflow_tui.tui.messages import ReviewFields, split_authors
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import count, error_markup, model_version
from kitmlflow_tui.tui.widgets.laid_out import CommandView, RolesView, YamlView
from kitmlflow_tui.tui.widgets.push_status import PushStatus
from kitmlflow_tui.tui.widgets.reference_input import ReferenceInput
from kitmlflow_tui.tui.widgets.sign_status import SignStatus

if TYPE_CHECKING:
    from kitmlflow_tui.core.kitfile import Kitfile, KitfileOverrides
    from kitmlflow_tui.core.pipeline import KitfilePreview

PREVIEW_DELAY = 0.4  # seconds of quiet typing before the Kitfile is generated again
LABELS = {  # the text fields, in the form's order; "Format" (a choice) follows "Sign with"
    "tag": "Tag",
    "push_to": "Push to",
    "sign_key": "Sign with",
    "name": "Name",
    "version": "Version",
    "description": "Description",
    "authors": "Authors",
}


def default_tag(run: RunInfo, registered: RegisteredModelInfo | None = None) -> str:
    """The run's name and id (``resnet18:1fb16229``); for a registered model its name and the alias or
    version it was opened by (``churn:champion``, ``churn:v3``: the tags ``kitmlflow sync`` gives)."""
    if registered is not None:
        label = registered.alias or f"v{registered.version}"
        tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).lstrip(".-")[:128] or f"v{registered.version}"
        return f"{repository_name(registered.name)}:{tag}"
    return f"{repository_name(run.run_name)}:{run.run_id[:8]}"


def repository_name(name: str) -> str:
    """A name as a ModelKit repository: lowercase letters, digits and ``._-``."""
    return re.sub(r"[^a-z0-9._-]+", "-", (name or "model").lower()).strip("-._") or "model"


def entry_roles(kitfile: Kitfile) -> list[tuple[str, str, str]]:
    """(role, path, details) for every entry of a Kitfile, as the review table shows them."""
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


NO_LAYER_ROWS = 5  # files left out of every layer, listed by name (the rest counted)
FORMAT_LINES = {
    "modelkit": "Writes a [b]KitOps ModelKit[/]",
    "modelpack": "Writes a [b]CNCF ModelPack[/] (model-spec v1; this Kitfile in its manifest)",
}


class ReviewScreen(WizardScreen):
    STEP = "Review"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "start_import", "Import", priority=True),
        Binding("ctrl+y", "copy_command", "Copy command", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self,
        run: RunInfo,
        tree: ArtifactTree,
        spec: FilterSpec,
        package: PackageDefaults | None = None,
        registered: RegisteredModelInfo | None = None,
        fields: ReviewFields | None = None,
    ) -> None:
        super().__init__()
        self.run = run
        self.artifact_tree = tree
        self.spec = spec
        self.package = package or PackageDefaults()
        self.registered = registered
        self.initial_fields = fields
        self.plan = make_plan(tree, spec)
        self.kitfile: Kitfile | None = None
        self.free: int | None = None
        self.tag_error: str | None = None
        self._debounce: Timer | None = None

    def where(self) -> str:
        if self.registered is not None:  # first: the step line cuts its end at 80 columns
            return f"{model_version(self.registered)} · {self.wizard.display_uri}"
        return f"{self.wizard.display_uri} · {self.run.run_name}"

    def compose_body(self) -> ComposeResult:
        start = self.starting_fields()
        with Horizontal(id="review-top"):
            with VerticalScroll(id="package-form"):
                for key, label in LABELS.items():
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label")
                        field = ReferenceInput if key in ("tag", "push_to") else Input
                        yield field(
                            getattr(start, key), placeholder=self._placeholder(key), id=f"field-{key}", compact=True
                        )
                    if key == "sign_key":
                        with Horizontal(classes="field"):
                            yield Label("Format", classes="field-label")
                            yield Select(
                                [(name, name) for name in FORMATS],
                                value=start.format,
                                allow_blank=False,
                                id="field-format",
                                compact=True,
                            )
                yield Static("", id="tag-error", classes="error-line")
                yield PushStatus(
                    self.wizard.backend.stored_login,
                    self.background,
                    empty="[dim]Push to: empty, the ModelKit stays in local storage.[/]",
                    id="push-status",
                    classes="error-line",
                )
                yield SignStatus(
                    self.wizard.backend.check_sign_key, self.background, id="sign-status", classes="error-line"
                )
                yield Static("", id="format-line", classes="error-line")
                yield Static("", id="disk")
                yield RolesView(id="roles")
                yield Static("", id="no-layer")
                with Horizontal(classes="review-buttons"):
                    yield Button("Import ^g", id="import", variant="success", compact=True)
                    yield Button("Copy command ^y", id="copy", compact=True)
            with VerticalScroll(id="kitfile-pane"):
                yield YamlView(placeholder="[dim]Generating the Kitfile…[/]", id="kitfile")
        with VerticalScroll(id="command-box"):
            yield CommandView("[b]Headless equivalent[/] [dim](ctrl+y copies it on one line)[/]", id="command")

    def starting_fields(self) -> ReviewFields:
        if self.initial_fields is not None:
            return self.initial_fields.with_package(self.package)
        return ReviewFields(
            tag=self.wizard.initial_tag or default_tag(self.run, self.registered),
            push_to=self.wizard.initial_push_to or "",
            sign_key=self.wizard.initial_sign_key or settings.SIGN_KEY.value() or "",
            format=self.wizard.initial_format or "modelkit",
            description=self.package.description or "",
            authors=", ".join(self.package.authors),
            package=self.package,
        )

    def _placeholder(self, key: str) -> str:
        return {
            "tag": "repository:tag, e.g. mymodel:v1",
            "push_to": "registry/repository:tag · empty: local only",
            "sign_key": "cosign.key · empty: unsigned",
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
        self.check_push_to()
        self.show_format()
        self.show_command()
        self.show_disk()
        self.background(self.wizard.backend.free_bytes, self.free_known, group="disk")
        self.preview()

    # -- the choice ------------------------------------------------------------------------------
    def value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def artifact_format(self) -> str:
        chosen = self.query_one("#field-format", Select).value
        return chosen if isinstance(chosen, str) else "modelkit"

    def fields(self) -> ReviewFields:
        typed = {f.name: self.value(f.name) for f in fields(ReviewFields) if f.name in LABELS}
        return ReviewFields(**typed, format=self.artifact_format(), package=self.package)

    def overrides(self) -> KitfileOverrides:
        from kitmlflow_tui.core.kitfile import KitfileOverrides  # off the first paint (docs/architecture.md)

        return KitfileOverrides(
            name=self.value("name") or None,
            version=self.value("version") or None,
            description=self.value("description") or None,
            authors=split_authors(self.value("authors")) or None,
            license=self.package.license,
        )

    def push_target(self) -> ModelKitRef | None:
        """The registry reference typed in "Push to" (None when empty or not valid)."""
        return self.query_one(PushStatus).target

    def check_push_to(self) -> None:
        self.query_one(PushStatus).check(self.value("push_to"))
        self.check_sign_key()

    def check_sign_key(self) -> None:
        self.query_one(SignStatus).check(self.value("sign_key"), pushing=bool(self.value("push_to")))

    def sign_key(self) -> Path | None:
        """The key that signs the pushed ModelKit's attestation: none without a push."""
        return self.query_one(SignStatus).path if self.push_target() is not None else None

    def tag_reference(self) -> ModelKitRef:
        """The tag typed in "Tag", or BadInputError (exit 2's message) when kit would not take it."""
        return parse_modelkit_reference(self.value("tag"))

    def choice(self) -> ImportChoice:
        """What the import will do; BadInputError while the tag is not valid."""
        artifact_format = self.artifact_format()
        check_format(artifact_format, "auto", "none")  # the wizard's packer and compression
        return ImportChoice(
            self.run,
            self.artifact_tree,
            self.spec,
            self.tag_reference(),
            self.overrides(),
            self.registered,
            self.push_target(),
            artifact_format,
            self.sign_key(),
        )

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        self.post_message(messages.ReviewEdited(self.run.run_id, self.fields()))
        if event.input.id == "field-push_to":
            self.check_push_to()
        elif event.input.id == "field-sign_key":
            self.check_sign_key()
        self.show_command()
        if event.input.id in ("field-push_to", "field-sign_key"):
            return  # the Kitfile does not depend on where it goes, nor on its signature
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(PREVIEW_DELAY, self.preview)

    @on(Select.Changed, "#field-format")
    def format_changed(self) -> None:
        """The Kitfile is the same in both formats (a ModelPack carries it in its manifest): no new preview."""
        self.post_message(messages.ReviewEdited(self.run.run_id, self.fields()))
        self.show_format()
        self.show_command()

    def show_format(self) -> None:
        self.query_one("#format-line", Static).update(FORMAT_LINES[self.artifact_format()])

    # -- the Kitfile -----------------------------------------------------------------------------
    def preview(self) -> None:
        try:
            choice = self.choice()
        except BadInputError as exc:
            self.preview_failed(exc)
            return

        def build() -> KitfilePreview:
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
        from kitmlflow_tui.core.kitfile import dump_kitfile  # loaded by the preview's worker already

        self.query_one("#kitfile", YamlView).show(dump_kitfile(kitfile))
        self.query_one("#roles", RolesView).show(entry_roles(kitfile))

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
        self.query_one("#kitfile", YamlView).show(placeholder="[dim]No Kitfile until the problem above is fixed.[/]")

    # -- disk and command ------------------------------------------------------------------------
    def free_known(self, free: int | None) -> None:
        self.free = free
        self.show_disk()

    def show_disk(self) -> None:
        need = self.plan.selected_bytes
        # Two lines: the column is narrow at 80-100 columns, and a size must not wrap between number and unit.
        text = f"Download [b]{format_size(need)}[/] ({count(len(self.plan.selected), 'file')})\n"
        if self.free is None:
            text += "[dim]free space: checking…[/]"
        elif self.free >= need:
            text += f"free {format_size(self.free)} [green]✓[/]"
        else:
            text += f"free {format_size(self.free)} [b $error]✗ not enough space[/]"
        self.query_one("#disk", Static).update(text)

    def command_words(self) -> list[str]:
        return draft_words(
            self.run,
            self.registered,
            self.spec,
            self.value("tag"),
            self.push_target(),
            self.overrides(),
            self.wizard.backend.display_uri,
            artifact_format=self.artifact_format(),
            sign_key=self.sign_key(),
        )

    def command_line(self) -> str:
        return one_line(self.command_words())

    def command_notes(self) -> list[str]:
        notes = []
        overrides = self.overrides()
        if overrides.name or overrides.version:
            notes.append("name and version come from -t headless (no flags for them)")
        target = self.push_target()
        if target is not None:
            try:
                tag = self.tag_reference()
                differs = (target.name, target.tag) != (tag.name, tag.tag)
            except BadInputError:
                differs = False
            if differs:
                notes.append(
                    f"headless, -t is the registry reference: the local name, and so the Kitfile's name and version, come from {target}"
                )
        if overrides.license:
            notes.append(f"the license ({overrides.license}) comes from the profile: add --profile for it")
        if self.sign_key() is not None:
            notes.append(
                f"--sign-key reads the key's password, if it has one, from {settings.SIGN_KEY_PASSWORD.name} "
                f"({settings.COSIGN_PASSWORD.name} for a cosign key), as the wizard did"
            )
        return notes

    def show_command(self) -> None:
        self.query_one("#command", CommandView).show([self.command_words()], notes=self.command_notes())

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
        push_error = self.query_one(PushStatus).error
        if push_error is not None:
            self.notify(f"Push to: {push_error.message}", severity="error")
            return
        if self.sign_key() is not None:
            sign = self.query_one(SignStatus)
            if sign.error is not None:
                self.notify(f"Sign with: {sign.error.message}", severity="error")
                return
            if sign.checking:
                self.notify("Sign with: the key is still being checked.", severity="warning")
                return
        if self.free is not None and self.free < self.plan.selected_bytes:
            self.notify("Not enough free disk space for the download.", severity="error")
            return
        self.post_message(messages.ImportRequested(self.choice()))
