"""The last step: the ModelKit that was made, and what to do with it next."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static

from kitmlflow_tui.selection import format_size
from kitmlflow_tui.tui.backend import ImportChoice
from kitmlflow_tui.tui.screens.base import WizardScreen

if TYPE_CHECKING:
    from kitmlflow_tui.pipeline import ImportResult


class DoneScreen(WizardScreen):
    STEP = "Import"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+y", "copy", "Copy unpack command"),
        Binding("escape", "app.quit", "Quit", show=False),
    ]

    def __init__(self, choice: ImportChoice, result: ImportResult) -> None:
        super().__init__()
        self.choice = choice
        self.result = result

    def where(self) -> str:
        return f"{self.wizard.display_uri} · {self.choice.run.run_name}"

    def unpack_command(self) -> str:
        folder = self.result.reference.rsplit("/", 1)[-1].split(":", 1)[0]
        return f"kit unpack {self.result.reference} -d ./{folder}"

    def compose_body(self) -> ComposeResult:
        result = self.result
        remote = "REGISTRY/ORG/" + result.reference.rsplit("/", 1)[-1]
        with Vertical(id="done-box"):
            yield Static(f"[b green]✓ ModelKit ready[/]  [b]{escape(result.reference)}[/]", id="done-title")
            table = Table.grid(padding=(0, 2))
            table.add_column(style="dim")
            table.add_column(overflow="fold")
            table.add_row("digest", result.digest)
            table.add_row("size", f"{format_size(result.size)}  (packed by {result.packer})")
            table.add_row("files", f"{len(result.download.paths):,} from run {self.choice.run.run_id}")
            table.add_row("storage", escape(str(result.storage_root)))
            yield Static(table, id="done-facts")
            yield Static(
                "[b]Next[/]\n"
                "  kit list\n"
                f"  {escape(self.unpack_command())}\n"
                f"  kit tag {escape(result.reference)} {escape(remote)}\n"
                f"  kit push {escape(remote)}",
                id="done-next",
            )
            yield Static("[dim]q quits · ctrl+y copies the unpack command[/]")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.unpack_command())
        self.notify("Copied.", title="kit unpack")

    def action_back(self) -> None:
        self.app.exit(0)
