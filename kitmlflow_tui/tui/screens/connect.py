"""Step 0: say where we connect and load MLflow in a worker; the App then opens the step the URI points at."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.widgets import Static

from kitmlflow_tui.core.errors import KitmlflowError
from kitmlflow_tui.core.reference import redact_uri
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.text import error_markup


class ConnectScreen(WizardScreen):
    STEP = "Experiments"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.error: KitmlflowError | None = None

    def compose_body(self) -> ComposeResult:
        with Center(), Vertical(id="connect-box"):
            yield Static("[b]kitmlflow[/] [dim]· MLflow run → KitOps ModelKit[/]", id="connect-title")
            yield Static(self._connecting_text(), id="connect-status")
            yield Static("", id="connect-error")

    def where(self) -> str:
        return ""

    def _connecting_text(self) -> str:
        uri = self.wizard.planned_uri
        if not uri:
            return "Looking for the tracking server…"
        return f"Connecting to [b]{escape(redact_uri(uri))}[/]…\n[dim]Loading MLflow (the first start can take a few seconds).[/]"

    def on_mount(self) -> None:
        # After the first paint: importing MLflow in the worker holds the GIL for a second or more, and
        # started now it would halve the UI thread's share while it draws the first frame.
        self.call_after_refresh(self.connect)

    def connect(self) -> None:
        self.query_one("#connect-status", Static).update(self._connecting_text())
        self.query_one("#connect-error", Static).update("")
        self.refresh_bindings()
        self.background(self.wizard.open_backend, self.connected, self.failed, group="connect")

    def connected(self, _backend: object) -> None:
        self.post_message(messages.Connected())

    def failed(self, error: KitmlflowError) -> None:
        self.error = error
        self.post_message(messages.ConnectFailed(error))
        uri = self.wizard.planned_uri
        status = f"Could not connect to [b]{escape(redact_uri(uri))}[/]." if uri else "[b]No tracking server.[/]"
        self.query_one("#connect-status", Static).update(status)
        self.query_one("#connect-error", Static).update(error_markup(error) + "\n\n[b]r[/] retry · [b]q[/] quit")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.error is not None
        return True

    def action_retry(self) -> None:
        if self.error is not None:
            self.error = None
            self.post_message(messages.ConnectRetrying())
            self.connect()

    def action_back(self) -> None:
        pass
