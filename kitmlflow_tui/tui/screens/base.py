"""What every wizard step shares: the step line, the footer, worker plumbing and the way back.

A step knows its inputs (constructor arguments and the App's :class:`WizardContext`) and its outputs
(messages it posts, ``tui/messages.py``: its choice, or ``BackRequested``). The App handles them and
decides which step comes next; no step constructs another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from kitmlflow_tui.core.errors import (
    AuthError,
    KitmlflowError,
    ServerUnreachableError,
    as_kitmlflow_error,
    scrub_secrets,
)
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.context import WizardContext

T = TypeVar("T")
STEPS = ("Experiments", "Runs", "Artifacts", "Review", "Import")
# Errors that mean the server itself is not usable: they get the full error screen with a retry.
SERVER_ERRORS = (AuthError, ServerUnreachableError)


class StepLine(Static):
    """Experiments › Runs › [Artifacts] › Review › Import       server"""

    def __init__(self, step: str, where: str) -> None:
        super().__init__(classes="step-line")
        self.step = step
        self.where = where

    def render(self) -> str:
        parts = [f"[b reverse] {name} [/]" if name == self.step else f"[dim]{name}[/]" for name in STEPS]
        return " › ".join(parts) + (f"  [dim]{escape(self.where)}[/]" if self.where else "")


class WizardScreen(Screen[None]):
    STEP: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    @property
    def wizard(self) -> WizardContext:
        return cast(WizardContext, self.app)

    def compose(self) -> ComposeResult:
        yield StepLine(self.STEP, self.where())
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def where(self) -> str:
        """The context shown after the steps (the server, the experiment, the run)."""
        return self.wizard.display_uri

    def action_back(self) -> None:
        self.post_message(messages.BackRequested(self.STEP))

    def on_screen_suspend(self) -> None:
        """A toast belongs to the step that raised it: the next screen starts without it over its lines."""
        self.app.clear_notifications()

    # -- workers ---------------------------------------------------------------------------------
    def background(
        self,
        job: Callable[[], T],
        done: Callable[[T], Any],
        failed: Callable[[KitmlflowError], Any] | None = None,
        *,
        group: str = "default",
        exclusive: bool = True,
    ) -> None:
        """Run ``job`` in a thread worker; ``done``/``failed`` run on the UI thread unless the worker was
        superseded (exclusive) or the screen went away meanwhile."""

        def deliver(callback: Callable[..., Any], value: Any) -> None:
            if not get_current_worker().is_cancelled and self.is_attached:
                with contextlib.suppress(RuntimeError):  # the app is closing
                    self.app.call_from_thread(callback, value)

        def run() -> None:
            try:
                result = job()
            except Exception as exc:  # every failure reaches the user as text, never as a traceback
                deliver(failed or self.show_error, as_kitmlflow_error(exc))
                return
            deliver(done, result)

        self.run_worker(run, thread=True, group=group, exclusive=exclusive, exit_on_error=False)

    def show_error(self, exc: KitmlflowError, retry: Callable[[], None] | None = None) -> None:
        """Server-level failures get the full error screen; anything else a notification."""
        if isinstance(exc, SERVER_ERRORS) or retry is not None:
            from kitmlflow_tui.tui.dialogs import ErrorScreen  # the dialogs are not needed before an error

            self.app.push_screen(ErrorScreen(exc, retry=retry))
        else:
            self.notify(scrub_secrets(str(exc)), title="Error", severity="error", timeout=8)
