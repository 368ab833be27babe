"""What a wizard screen may read from the App: its inputs, never its neighbours.

Screens see the App through this protocol (``WizardScreen.wizard``), so no screen module imports
the App, and the App, which builds every screen, stays the one place that knows the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kitmlflow_tui.core.selection.profiles import PackageDefaults
    from kitmlflow_tui.tui.backend import Backend


class WizardContext(Protocol):
    planned_uri: str | None  # where the wizard connects, when known before MLflow is imported
    initial_tag: str | None  # the -t of `kitmlflow import`, for the review's tag field
    initial_push_to: str | None  # the -t of `kitmlflow import --push`, for the review's push field
    initial_format: str | None  # the --format of `kitmlflow import`, for the review's format
    initial_sign_key: str | None  # the --sign-key of `kitmlflow import`, for the review's "Sign with"
    cursor_blink: bool
    now: Callable[[], float]  # wall clock for the age of running runs; tests pin it
    monotonic: Callable[[], float]  # for transfer rates; tests pin it

    @property
    def backend(self) -> Backend: ...

    @property
    def display_uri(self) -> str: ...

    def open_backend(self) -> Backend: ...

    def package_defaults(self, run_id: str) -> PackageDefaults | None: ...
