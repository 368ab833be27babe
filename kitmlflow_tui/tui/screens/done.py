"""The last step: the ModelKit that was made (where it was pushed, the attestation attached to it), what to do with
it next, and a "Push to" that sends it to a registry (only the push runs, as after a failed push of the review's)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static

from kitmlflow_tui.core.next_commands import kit_words
from kitmlflow_tui.core.selection.plan import format_size
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.commands import one_line
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import count
from kitmlflow_tui.tui.widgets.laid_out import CommandView
from kitmlflow_tui.tui.widgets.push_status import PushStatus
from kitmlflow_tui.tui.widgets.reference_input import ReferenceInput

if TYPE_CHECKING:
    from kitmlflow_tui.core.pipeline import ImportResult


class DoneScreen(WizardScreen):
    STEP = "Import"
    AUTO_FOCUS = "#done-box"  # not the push field: q, p and esc are keys here until p is pressed
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Another import"),
        Binding("p", "focus_push", "Push to a registry"),
        Binding("ctrl+y", "copy", "Copy unpack command"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, choice: ImportChoice, result: ImportResult) -> None:
        super().__init__()
        self.choice = choice
        self.result = result
        self.public_key: Path | None = None  # the key that verifies the attestation, when found beside the signing key

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.choice.run.run_name}"

    def local_reference(self) -> str:
        return self.result.reference

    def unpack_words(self) -> list[str]:
        return kit_words("unpack", self.local_reference(), "-d", f"./{self.choice.tag.name}")

    def signed(self) -> bool:
        attestation = self.result.attestation
        return attestation is not None and attestation.envelope is not None and bool(attestation.attached)

    def next_commands(self) -> tuple[list[list[str]], list[str]]:
        """The commands to paste next, and comments for what needs a value only the user knows. A kit command that
        talks to the registry carries the flags kit needs to reach it as the push did (the CLI's own rule)."""
        pushed = self.result.pushed
        commands = [kit_words("list"), self.unpack_words()]
        notes = []
        if self.choice.format == "modelpack":
            notes.append("a ModelPack: kit 1.10 or later lists and unpacks it (kit 1.7 does not)")
        if pushed is None:
            push = one_line(kit_words("push", self.local_reference(), "REGISTRY/REPOSITORY:TAG"))
            return commands, [*notes, f"to a registry: p (Push to, below), or {push}"]
        commands.append(kit_words("pull", pushed.reference, access=pushed.access))
        # verify needs no flag: the wizard reaches a registry as kitmlflow's defaults do (TLS; HTTP for loopback).
        if self.signed():
            commands.append(["kitmlflow", "verify", pushed.reference, "--key", str(self.public_key or "PUB")])
            if self.public_key is None:
                notes.append(f"PUB: the public key of {self.choice.sign_key} (cosign.pub beside a cosign.key)")
        return commands, notes

    def compose_body(self) -> ComposeResult:
        result = self.result
        with VerticalScroll(id="done-box"):
            made = "ModelPack" if self.choice.format == "modelpack" else "ModelKit"
            yield Static(f"[b green]✓ {made} ready[/]  [b]{escape(self.local_reference())}[/]", id="done-title")
            table = Table.grid(padding=(0, 1))
            table.add_column(style="dim", no_wrap=True)
            table.add_column(overflow="fold")
            table.add_row("digest", result.digest)
            pushed = result.pushed
            if pushed is not None:
                sent = f"{format_size(pushed.uploaded_bytes)} in {count(pushed.uploaded_blobs, 'blob')} sent"
                if pushed.mounted_blobs:
                    sent += f", {pushed.mounted_blobs} mounted"
                table.add_row("pushed", f"[b]{escape(pushed.reference)}[/]")
                table.add_row("", pushed.digest)
                table.add_row("", f"[dim]{sent}, {pushed.existing_blobs} already there[/]")
            attestation = result.attestation
            if attestation is not None and attestation.key is not None and self.signed():
                table.add_row("attested", f"signed SLSA provenance, key {escape(attestation.key.key_id[:19])}…")
                table.add_row("", f"[dim]attached: {escape(' · '.join(a.where for a in attestation.attached))}[/]")
            table.add_row("size", f"{format_size(result.size)}  (packed by {result.packer})")
            table.add_row("files", f"{count(len(result.download.paths), 'file')} from run {self.choice.run.run_id}")
            table.add_row("stored", escape(str(result.storage_root)))
            yield Static(table, id="done-facts")
            commands, notes = self.next_commands()
            yield CommandView("[b]Next[/]", commands, notes=notes, indent="  ", id="done-next")
            with Horizontal(classes="field", id="done-push"):
                yield Label("Push to", classes="field-label")
                yield ReferenceInput(placeholder="registry/repository:tag, then enter", id="push-to", compact=True)
            where = "another registry" if pushed is not None else "a registry"
            yield PushStatus(
                self.wizard.backend.stored_login,
                self.background,
                empty=f"[dim]p, then a reference and enter: pushes this ModelKit to {where}[/]",
                id="done-push-status",
            )
            yield Static(
                "[dim]esc another import · p push · ctrl+y copies the unpack command · q quits[/]",
                id="done-hint",
            )

    def on_mount(self) -> None:
        field = self.query_one("#push-to", Input)
        field.cursor_blink = self.wizard.cursor_blink
        self.query_one(PushStatus).check(field.value)
        attestation, sign_key, backend = self.result.attestation, self.choice.sign_key, self.wizard.backend
        if self.signed() and sign_key is not None and attestation is not None and attestation.key is not None:
            key_id = attestation.key.key_id
            self.background(lambda: backend.public_key_of(sign_key, key_id), self.public_key_found, group="public-key")

    def public_key_found(self, path: Path | None) -> None:
        self.public_key = path
        commands, notes = self.next_commands()
        self.query_one("#done-next", CommandView).show(commands, notes=notes)

    # -- the push ----------------------------------------------------------------------------------
    def action_focus_push(self) -> None:
        self.set_focus(self.query_one("#push-to", Input))

    @on(Input.Changed, "#push-to")
    def push_to_changed(self, event: Input.Changed) -> None:
        self.query_one(PushStatus).check(event.value)

    @on(Input.Submitted, "#push-to")
    def push(self) -> None:
        status = self.query_one(PushStatus)
        if status.error is not None:
            self.notify(f"Push to: {status.error.message}", severity="error")
            return
        if status.target is None:
            self.notify("Type where to push it: REGISTRY/REPOSITORY:TAG.", severity="warning")
            return
        self.post_message(messages.PushRequested(replace(self.choice, push_to=status.target), self.result))

    def action_back(self) -> None:
        if self.query_one("#push-to", Input).has_focus:  # leave the field; the next esc starts over
            self.set_focus(self.query_one("#done-box"))
            return
        self.post_message(messages.AnotherImportRequested())

    def unpack_command(self) -> str:
        """What Ctrl+Y copies: the unpack command on one line."""
        return one_line(self.unpack_words())

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.unpack_command())
        self.notify("Copied.", title="kit unpack")
