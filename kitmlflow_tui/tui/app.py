"""The wizard's application object and its entry point, ``run_wizard``.

The App is the hub: it owns the wizard's state (the experiment, the run, its tree, the selection and
the Kitfile overrides, as the steps report them) and the route between the steps. Each step posts a
message with its outcome (``tui/messages.py``: ``ExperimentChosen``, ``RunChosen``, ``FilesChosen``,
``ImportRequested``, ``ImportFinished``, ``BackRequested``, ...) and the handlers below decide what
comes next; no step imports another (docs/architecture.md).

Importing this module must stay cheap: no MLflow, and no step. Each step's module is imported where the
App first builds that step, so the first paint loads only the connect step while a worker imports
MLflow and connects (``tests/tui/test_tui_pilot.py`` lists what it must not load).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType

from kitmlflow_tui.core.reference import BrowseRef, ModelRef, Reference, RunRef, redact_uri
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.backend import Backend, ImportChoice, connect, planned_tracking_uri
from kitmlflow_tui.tui.palette import WizardCommands

if TYPE_CHECKING:
    from textual.screen import Screen

    from kitmlflow_tui.core.catalogue.records import (
        ArtifactTree,
        ExperimentSummary,
        RegisteredModelInfo,
        RunInfo,
        RunSummary,
    )
    from kitmlflow_tui.core.errors import KitmlflowError
    from kitmlflow_tui.core.pipeline import ImportResult
    from kitmlflow_tui.core.selection.plan import FilterSpec
    from kitmlflow_tui.core.selection.profiles import PackageDefaults
    from kitmlflow_tui.tui.screens.artifacts import ArtifactsScreen
    from kitmlflow_tui.tui.screens.base import WizardScreen
    from kitmlflow_tui.tui.screens.importing import ImportScreen
    from kitmlflow_tui.tui.screens.runs import RunsScreen

Connector = Callable[[Reference | None, str | None], Backend]


@dataclass
class WizardState:
    """What the steps decided so far, as their messages reported it."""

    experiment_id: str | None = None
    experiment_name: str | None = None
    run: RunInfo | None = None
    tree: ArtifactTree | None = None
    spec: FilterSpec | None = None
    registered: RegisteredModelInfo | None = None
    choice: ImportChoice | None = None  # the tag and the Kitfile overrides of the review
    fields: dict[str, messages.ReviewFields] = field(default_factory=dict)  # run id -> the review's fields


_SCROLL_ACTIONS = frozenset(
    f"{kind}_{where}" for kind in ("scroll", "page") for where in ("up", "down", "left", "right", "home", "end")
)


def is_textual_scrolling(node: object, action: str) -> bool:
    """A scrolling key a Textual container brings (not one of the wizard's own widgets)."""
    return action in _SCROLL_ACTIONS and type(node).__module__.startswith("textual.")


class KitmlflowApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "kitmlflow"
    COMMANDS = App.COMMANDS | {WizardCommands}
    # The key map: F1 everywhere, ? wherever a ? is no text. A focused Input keeps printable keys, even
    # from priority bindings, so ? is typed in a glob, a filter or a description; a reference field
    # (widgets/reference_input.py) and everything that is no field give it up.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Keys of this screen", show=False, priority=True),
    ]

    def __init__(
        self,
        reference: Reference | None = None,
        *,
        tracking_uri_flag: str | None = None,
        tag: str | None = None,
        push: bool = False,
        spec: FilterSpec | None = None,
        artifact_format: str | None = None,
        sign_key: Path | None = None,
        connector: Connector = connect,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.reference = reference
        self.tracking_uri_flag = tracking_uri_flag
        self.initial_tag = tag
        self.initial_push_to = tag if push else None  # `import -t REF --push` without --yes
        self.initial_format = artifact_format
        self.initial_sign_key = str(sign_key) if sign_key is not None else None
        self.initial_spec = spec
        self.connector = connector
        self.now = now  # wall clock for the age of running runs; tests pin it
        self.monotonic = monotonic  # for transfer rates; tests pin it
        self.cursor_blink = cursor_blink
        self.planned_uri = planned_tracking_uri(reference, tracking_uri_flag)
        self._backend: Backend | None = None
        self.state = WizardState(experiment_id=getattr(reference, "experiment_id", None))
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

    def package_defaults(self, run_id: str) -> PackageDefaults | None:
        """The description and authors typed on the review of this run, for a profile saved meanwhile."""
        fields = self.state.fields.get(run_id)
        return fields.package_defaults() if fields is not None else None

    def take_initial_spec(self) -> FilterSpec | None:
        """The filter given on the command line, for the first tree shown (once)."""
        spec, self.initial_spec = self.initial_spec, None
        return spec

    def on_mount(self) -> None:
        from kitmlflow_tui.tui.screens.connect import ConnectScreen

        self.push_screen(ConnectScreen())

    # -- the steps, each module imported when the step is first built -------------------------------
    def experiments_screen(self) -> WizardScreen:
        from kitmlflow_tui.tui.screens.experiments import ExperimentsScreen

        return ExperimentsScreen()

    def runs_screen(self, experiment_id: str, experiment_name: str | None = None) -> RunsScreen:
        from kitmlflow_tui.tui.screens.runs import RunsScreen

        return RunsScreen(experiment_id, experiment_name)

    def artifacts_screen(
        self, *, run_id: str | None = None, experiment_id: str | None = None, model: ModelRef | None = None
    ) -> ArtifactsScreen:
        from kitmlflow_tui.tui.screens.artifacts import ArtifactsScreen

        spec = self.take_initial_spec()
        return ArtifactsScreen(run_id=run_id, experiment_id=experiment_id, model=model, initial_spec=spec)

    def import_screen(self, choice: ImportChoice, packed: ImportResult | None = None) -> ImportScreen:
        from kitmlflow_tui.tui.screens.importing import ImportScreen

        return ImportScreen(choice, packed)

    def runs_on_stack(self) -> RunsScreen | None:
        from kitmlflow_tui.tui.screens.runs import RunsScreen

        return next((s for s in reversed(self.screen_stack) if isinstance(s, RunsScreen)), None)

    def running_import(self) -> ImportScreen | None:
        from kitmlflow_tui.tui.screens.importing import ImportScreen

        return next((s for s in self.screen_stack if isinstance(s, ImportScreen) and s.running), None)

    # -- the route -----------------------------------------------------------------------------------
    @on(messages.ConnectFailed)
    def connect_failed(self, event: messages.ConnectFailed) -> None:
        self.last_error = event.error

    @on(messages.ConnectRetrying)
    def connect_retrying(self) -> None:
        self.last_error = None

    @on(messages.Connected)
    def connected(self) -> None:
        reference = self.reference
        if isinstance(reference, RunRef):
            target: Screen[None] = self.artifacts_screen(run_id=reference.run_id, experiment_id=reference.experiment_id)
        elif isinstance(reference, ModelRef):
            target = self.artifacts_screen(model=reference)
        elif isinstance(reference, BrowseRef) and reference.experiment_id:
            target = self.runs_screen(reference.experiment_id)
        else:
            target = self.experiments_screen()
        self.switch_screen(target)

    @on(messages.ExperimentChosen)
    def experiment_chosen(self, event: messages.ExperimentChosen) -> None:
        self.state.experiment_id, self.state.experiment_name = event.experiment.experiment_id, event.experiment.name
        self.push_screen(self.runs_screen(event.experiment.experiment_id, event.experiment.name))

    @on(messages.RunChosen)
    def run_chosen(self, event: messages.RunChosen) -> None:
        self.push_screen(self.artifacts_screen(run_id=event.run.run_id, experiment_id=event.run.experiment_id))

    @on(messages.RunLoaded)
    def run_loaded(self, event: messages.RunLoaded) -> None:
        self.state.run = event.run
        self.state.experiment_id, self.state.experiment_name = event.run.experiment_id, event.run.experiment_name

    @on(messages.FilesChosen)
    def files_chosen(self, event: messages.FilesChosen) -> None:
        from kitmlflow_tui.tui.screens.review import ReviewScreen

        self.state.tree, self.state.spec, self.state.registered = event.tree, event.spec, event.registered
        fields = self.state.fields.get(event.run.run_id)
        self.push_screen(ReviewScreen(event.run, event.tree, event.spec, event.package, event.registered, fields))

    @on(messages.ReviewEdited)
    def review_edited(self, event: messages.ReviewEdited) -> None:
        self.state.fields[event.run_id] = event.fields

    @on(messages.ImportRequested)
    def import_requested(self, event: messages.ImportRequested) -> None:
        self.state.choice = event.choice
        self.push_screen(self.import_screen(event.choice))

    @on(messages.ImportRetryRequested)
    def import_retried(self, event: messages.ImportRetryRequested) -> None:
        self.switch_screen(self.import_screen(event.choice, event.packed))

    @on(messages.PushRequested)
    def push_requested(self, event: messages.PushRequested) -> None:
        self.state.choice = event.choice
        self.switch_screen(self.import_screen(event.choice, event.packed))

    @on(messages.ImportFinished)
    def import_finished(self, event: messages.ImportFinished) -> None:
        from kitmlflow_tui.tui.screens.done import DoneScreen

        self.result_code = 0
        if event.quit_after:
            self.exit(0)
            return
        while self.screen is not event.screen:  # the cancel dialog may still be open: the question is moot
            self.pop_screen()
        self.switch_screen(DoneScreen(event.choice, event.result))

    @on(messages.ImportFailed)
    def import_failed(self, event: messages.ImportFailed) -> None:
        if event.quit_after:  # Ctrl+Q was confirmed: the import has now cleaned up after itself
            self.exit(event.error.exit_code)

    @on(messages.BackRequested)
    def back(self, event: messages.BackRequested) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
            return
        previous = self.step_before(event.step)
        if previous is not None:
            self.switch_screen(previous)

    def step_before(self, step: str) -> WizardScreen | None:
        """The step before ``step`` when the wizard was opened straight at it (nothing is below it)."""
        if step == "Runs":
            return self.experiments_screen()
        if step == "Artifacts" and self.state.experiment_id:
            return self.runs_screen(self.state.experiment_id, self.state.experiment_name)
        return None

    @on(messages.AnotherImportRequested)
    def back_to_runs(self) -> None:
        """After an import: the runs of the experiment, ready for another import."""
        runs = self.runs_on_stack()
        if runs is not None:
            while self.screen is not runs:
                self.pop_screen()
            return
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if self.state.experiment_id:
            self.switch_screen(self.runs_screen(self.state.experiment_id, self.state.experiment_name))
        else:
            self.switch_screen(self.experiments_screen())

    # -- help and the command palette -----------------------------------------------------------------
    def action_help(self) -> None:
        from kitmlflow_tui.tui.dialogs import HelpScreen

        if isinstance(self.screen, HelpScreen):  # the help key again closes it
            self.screen.dismiss(None)
            return
        keys = []
        for active in sorted(self.screen.active_bindings.values(), key=lambda active: active.binding.show is False):
            binding = active.binding
            if is_textual_scrolling(active.node, binding.action) or binding.key.startswith("super+"):
                continue  # a scroll container's own keys and macOS twins: noise beside the step's keys
            if binding.action == "command_palette":
                continue  # told below, with what it finds
            description = binding.description or binding.action.replace("_", " ")
            keys.append((self.get_key_display(binding), description, active.enabled))
        keys.append(("ctrl+p", "Command palette: jump to an experiment or a run, any action", True))
        name = getattr(self.screen, "STEP", "") or type(self.screen).__name__.removesuffix("Screen")
        self.push_screen(HelpScreen(name, keys))

    def known_experiments(self) -> list[ExperimentSummary]:
        return self._backend.list_experiments() if self._backend is not None else []

    def known_runs(self) -> list[RunSummary]:
        runs = self.runs_on_stack()
        return list(runs.runs) if runs is not None else []

    def jump_to_experiment(self, experiment: ExperimentSummary) -> None:
        if self.running_import() is not None:
            self.notify("An import is running: wait for it or cancel it first.", severity="warning")
            return
        self.state.experiment_id, self.state.experiment_name = experiment.experiment_id, experiment.name
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(self.experiments_screen())
        self.push_screen(self.runs_screen(experiment.experiment_id, experiment.name))

    def jump_to_run(self, run: RunSummary) -> None:
        if self.running_import() is not None:
            self.notify("An import is running: wait for it or cancel it first.", severity="warning")
            return
        runs = self.runs_on_stack()
        if runs is not None:
            while self.screen is not runs:
                self.pop_screen()
        self.push_screen(self.artifacts_screen(run_id=run.run_id, experiment_id=run.experiment_id))

    def action_quit(self) -> None:  # type: ignore[override]
        running = self.running_import()
        if running is not None:
            running.ask_to_quit()  # the import stops and cleans up first; its ImportFailed message ends the app
            return
        code = self.result_code
        if self.last_error is not None and self._backend is None:
            code = self.last_error.exit_code
        self.exit(code)


def run_wizard(
    reference: Reference | None,
    *,
    tracking_uri_flag: str | None = None,
    tag: str | None = None,
    push: bool = False,
    spec: FilterSpec | None = None,
    artifact_format: str | None = None,
    sign_key: Path | None = None,
) -> int:
    """Open the wizard (at the server, an experiment, or a run's artifacts) and return an exit code:
    0 after an import or a plain browse, 130 when an import the command asked for was abandoned, the
    error's code when the server could not be used."""
    app = KitmlflowApp(
        reference,
        tracking_uri_flag=tracking_uri_flag,
        tag=tag,
        push=push,
        spec=spec,
        artifact_format=artifact_format,
        sign_key=sign_key,
    )
    code = app.run()
    return code if code is not None else app.result_code
