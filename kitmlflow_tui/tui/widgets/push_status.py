"""The line under a "Push to" field (the review's, the done step's): what the typed reference means.

Empty: the ModelKit stays local. Not a reference: the error ``import --push`` would give. A reference:
the login stored for its registry (kit's credential store, docker's as a fallback), looked up in the
step's worker because reading a credential helper may take a while.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual.widgets import Static

from kitmlflow_tui.core.errors import BadInputError, KitmlflowError
from kitmlflow_tui.core.next_commands import RegistryAccess, kitmlflow_login_words, shell_line
from kitmlflow_tui.tui.text import error_markup

if TYPE_CHECKING:
    from kitmlflow_tui.core.modelkit_reference import ModelKitRef
    from kitmlflow_tui.core.registry import StoredCredential

Background = Callable[..., None]  # a step's ``WizardScreen.background``: job, done, failed, group=...


class PushStatus(Static):
    def __init__(
        self,
        lookup: Callable[[str], StoredCredential | None],
        background: Background,
        *,
        empty: str,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("", id=id, classes=classes)
        self.lookup = lookup
        self.background = background
        self.empty = empty  # what an empty field means where this line is
        self.target: ModelKitRef | None = None  # the reference typed, when it is one
        self.error: BadInputError | None = None  # why the text typed is none

    def check(self, text: str) -> None:
        """Parse ``text`` as ``import --push`` does; for a reference, look its registry's login up."""
        self.target, self.error = None, None
        text = text.strip()
        if not text:
            self.update(self.empty)
            return
        from kitmlflow_tui.core.modelkit_reference import parse_push_reference

        try:
            self.target = parse_push_reference(text)
        except BadInputError as exc:
            self.error = exc
            self.update(error_markup(exc))
            return
        registry, lookup = self.target.registry, self.lookup
        self.update(f"[dim]Push to {escape(registry)}: looking up the login…[/]")
        self.background(
            lambda: lookup(registry),
            lambda login: self.show_login(registry, login),
            self.lookup_failed,
            group="login",
        )

    def show_login(self, registry: str, login: StoredCredential | None) -> None:
        if self.target is None or self.target.registry != registry:
            return  # typed on meanwhile
        if login is not None:
            who = login.credential.username or "a token"
            self.update(
                f"Push to [b]{escape(registry)}[/] as {escape(who)} [dim](login from {escape(login.source)})[/]"
            )
        else:
            # The wizard reaches a registry as kitmlflow's defaults do (TLS; HTTP for loopback): no flag to add.
            login_command = shell_line(kitmlflow_login_words(registry, RegistryAccess()))
            self.update(
                f"[$warning]No login stored for {escape(registry)}[/] (fine if it needs none); to log in:\n"
                f"[b]{escape(login_command)}[/]"
            )

    def lookup_failed(self, error: KitmlflowError) -> Any:
        self.update(error_markup(error))
