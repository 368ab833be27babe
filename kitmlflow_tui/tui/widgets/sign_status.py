"""The line under the review's "Sign with": whether the import can sign with the key typed there.

The key is opened as the import would open it (its password from the environment: never typed here, never
shown), in the step's worker, since cosign's key derivation takes a noticeable fraction of a second; nothing is
signed. A key matters only with a "Push to": the signed attestation is attached to the pushed ModelKit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from textual.timer import Timer
from textual.widgets import Static

from kitmlflow_tui.core.errors import KitmlflowError
from kitmlflow_tui.tui.text import error_markup
from kitmlflow_tui.tui.widgets.push_status import Background

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.keys import KeyInfo

CHECK_DELAY = 0.4  # seconds of quiet typing before the key is opened (a cosign key costs a key derivation)


class SignStatus(Static):
    def __init__(
        self,
        check: Callable[[Path], KeyInfo],
        background: Background,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("", id=id, classes=classes)
        self.check_key = check
        self.background = background
        self.path: Path | None = None  # the key typed
        self.info: KeyInfo | None = None  # the key, once it opened
        self.error: KitmlflowError | None = None  # why it does not open
        self.pushing = False  # a "Push to" is set: the key signs
        self._timer: Timer | None = None

    @property
    def checking(self) -> bool:
        return self.path is not None and self.info is None and self.error is None

    def check(self, text: str, *, pushing: bool) -> None:
        """The key typed (a path; ``~`` is the home folder) and whether the import pushes; a new key is opened
        after a pause in the typing."""
        self.pushing = pushing
        path = Path(text.strip()).expanduser() if text.strip() else None
        if path != self.path:
            self.path, self.info, self.error = path, None, None
            if self._timer is not None:
                self._timer.stop()
            if path is not None:
                self._timer = self.set_timer(CHECK_DELAY, self._open)
        self.show()

    def _open(self) -> None:
        path, check = self.path, self.check_key
        if path is None:
            return
        self.background(
            lambda: check(path),
            lambda info: self._opened(path, info, None),
            lambda error: self._opened(path, None, error),
            group="sign-key",
        )

    def _opened(self, path: Path, info: KeyInfo | None, error: KitmlflowError | None) -> None:
        if path != self.path:
            return  # typed on meanwhile
        self.info, self.error = info, error
        self.show()
        if error is not None:  # below the fields, and out of sight in a short terminal: a refusal must be seen
            self.call_after_refresh(self.scroll_visible, animate=False)

    def show(self) -> None:
        if self.path is None:
            self.update("[dim]Sign with: empty, not signed.[/]")
            return
        if self.error is not None:
            line = error_markup(self.error)
        elif self.info is not None:
            line = (
                f"Sign with [b]{escape(self.path.name)}[/] [green]✓[/] {escape(self.info.algorithm)} "
                f"{escape(self.info.key_id[:19])}…"
            )
        else:
            line = f"[dim]Sign with {escape(self.path.name)}: checking the key…[/]"
        if not self.pushing:
            line += "\n[$warning]Not used without a Push to[/] (the signed attestation goes with the push)"
        self.update(line)
