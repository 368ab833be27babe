"""The command palette (Ctrl+P, Textual's): jump to an experiment or a run, or run any key's action.

The App is the palette's host (``PaletteHost``): it knows the experiments and the runs loaded so far and
does the jumps, as it does every other route; this provider only lists them for Textual's fuzzy search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from kitmlflow_tui.core.catalogue.records import ExperimentSummary, RunSummary

# Keys the palette does not offer as commands: moving a cursor means nothing once the palette closes.
_NOT_COMMANDS = {"Up", "Down", "Page up", "Page down", "First", "Last", "First run", "Last run"}


class PaletteHost(Protocol):
    def known_experiments(self) -> list[ExperimentSummary]: ...  # called in a thread (it may ask the server)

    def known_runs(self) -> list[RunSummary]: ...

    def jump_to_experiment(self, experiment: ExperimentSummary) -> None: ...

    def jump_to_run(self, run: RunSummary) -> None: ...


class WizardCommands(Provider):
    async def startup(self) -> None:
        host = cast(PaletteHost, self.app)
        try:
            self.experiments = await asyncio.to_thread(host.known_experiments)
        except Exception:  # the server went away: the palette still offers the rest
            self.experiments = []
        self.runs = host.known_runs()

    def commands(self) -> list[tuple[str, Callable[[], object], str]]:
        """(name, what it does, help) of every command offered from the current screen."""
        host = cast(PaletteHost, self.app)
        rows: list[tuple[str, Callable[[], object], str]] = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not active.enabled or not binding.description or binding.description in _NOT_COMMANDS:
                continue
            run = partial(self.app.call_later, self.app.run_action, binding.action, active.node)
            rows.append((binding.description, run, f"key {self.app.get_key_display(binding)}"))
        rows += [
            (f"Open run {run.run_name or run.run_id}", partial(host.jump_to_run, run), f"{run.run_id} · {run.status}")
            for run in self.runs
        ]
        rows += [
            (f"Open experiment {e.name}", partial(host.jump_to_experiment, e), f"experiment id {e.experiment_id}")
            for e in self.experiments
        ]
        return rows

    async def discover(self) -> Hits:
        for name, command, help_text in self.commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help_text in self.commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)
