"""The wizard's application object and its entry point, ``run_wizard``.

Importing this module must stay cheap (no MLflow): the first paint says where it is connecting while
a worker imports MLflow and connects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from kitmlflow_tui.errors import KitmlflowError
from kitmlflow_tui.reference import Reference, redact_uri
from kitmlflow_tui.selection import FilterSpec
from kitmlflow_tui.tui.backend import Backend, connect, planned_tracking_uri

Connector = Callable[[Reference | None, str | None], Backend]


class KitmlflowApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "kitmlflow"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(
        self,
        reference: Reference | None = None,
        *,
        tracking_uri_flag: str | None = None,
        tag: str | None = None,
        spec: FilterSpec | None = None,
        connector: Connector = connect,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.reference = reference
        self.tracking_uri_flag = tracking_uri_flag
        self.initial_tag = tag
        self.initial_spec = spec
        self.connector = connector
        self.now = now  # wall clock for the age of running runs; tests pin it
        self.monotonic = monotonic  # for transfer rates; tests pin it
        self.cursor_blink = cursor_blink
        self.planned_uri = planned_tracking_uri(reference, tracking_uri_flag)
        self._backend: Backend | None = None
        self.last_error: KitmlflowError | None = None
        self.connect_attempts = 0
        # 0 after an import; a quit before that is an interruption when the wizard was asked to import.
        self.result_code = 130 if tag is not None else 0

    @property
    def backend(self) -> Backend:
        assert self._backend is not None, "the backend is used only after the connect step"
        return self._backend

    @property
    def display_uri(self) -> str:
        if self._backend is not None:
            return self._backend.display_uri
        return redact_uri(self.planned_uri) if self.planned_uri else ""

    def open_backend(self) -> Backend:
        """Connect (from a worker): MLflow is imported here, not before the first paint."""
        self.connect_attempts += 1
        self._backend = self.connector(self.reference, self.tracking_uri_flag)
        return self._backend

    def take_initial_spec(self) -> FilterSpec | None:
        """The filter given on the command line, for the first tree shown (once)."""
        spec, self.initial_spec = self.initial_spec, None
        return spec

    def on_mount(self) -> None:
        from kitmlflow_tui.tui.screens.connect import ConnectScreen

        self.push_screen(ConnectScreen())

    def action_quit(self) -> None:  # type: ignore[override]
        code = self.result_code
        if self.last_error is not None and self._backend is None:
            code = self.last_error.exit_code
        self.exit(code)


def run_wizard(
    reference: Reference | None,
    *,
    tracking_uri_flag: str | None = None,
    tag: str | None = None,
    spec: FilterSpec | None = None,
) -> int:
    """Open the wizard (at the server, an experiment, or a run's artifacts) and return an exit code:
    0 after an import or a plain browse, 130 when an import the command asked for was abandoned, the
    error's code when the server could not be used."""
    app = KitmlflowApp(reference, tracking_uri_flag=tracking_uri_flag, tag=tag, spec=spec)
    code = app.run()
    return code if code is not None else app.result_code
