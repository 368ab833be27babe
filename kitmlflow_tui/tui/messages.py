"""What the wizard's steps tell the App: one message class per outcome, and the values they carry.

The messages live apart from the steps that post them so that the App, whose ``@on`` handlers name
them, imports no step module: each step is loaded when it is first shown, and the first paint pays only
for the connect step (docs/architecture.md has the table of who posts what). Nothing here imports more
than Textual's ``Message``; the core's types are named for the type checker only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from textual.message import Message

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
    from kitmlflow_tui.tui.backend import ImportChoice


# -- connect -----------------------------------------------------------------------------------------
class Connected(Message):
    """The backend is open: the App shows the step the reference points at."""


class ConnectRetrying(Message):
    """The user asked to connect again: the last failure no longer decides the exit code."""


class ConnectFailed(Message):
    """The connection failed: quitting now exits with this error's code."""

    def __init__(self, error: KitmlflowError) -> None:
        super().__init__()
        self.error = error


# -- experiments, runs, artifacts --------------------------------------------------------------------
class ExperimentChosen(Message):
    """An experiment was opened: the App shows its runs."""

    def __init__(self, experiment: ExperimentSummary) -> None:
        super().__init__()
        self.experiment = experiment


class RunChosen(Message):
    """A finished run was opened: the App shows its artifacts."""

    def __init__(self, run: RunSummary) -> None:
        super().__init__()
        self.run = run


class RunLoaded(Message):
    """The run behind the artifacts step is known (the App keeps it: Escape may need its experiment)."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run


class FilesChosen(Message):
    """The files to import are ticked: the App shows the review."""

    def __init__(
        self,
        run: RunInfo,
        tree: ArtifactTree,
        spec: FilterSpec,
        package: PackageDefaults,
        registered: RegisteredModelInfo | None,
    ) -> None:
        super().__init__()
        self.run, self.tree, self.spec, self.package, self.registered = run, tree, spec, package, registered


# -- review ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewFields:
    """The review's fields as typed; the App keeps them, so a trip back to the artifacts loses none."""

    tag: str = ""
    push_to: str = ""  # a registry reference; empty: local storage only
    sign_key: str = ""  # the path of a private key; empty: no signature (a key signs only what is pushed)
    format: str = "modelkit"  # modelkit | modelpack (the import's ImportOptions.format)
    name: str = ""
    version: str = ""
    description: str = ""
    authors: str = ""  # comma-separated
    package: PackageDefaults | None = None  # the profile defaults the fields were started from

    def with_package(self, package: PackageDefaults) -> ReviewFields:
        """A newly loaded profile's description and authors replace the ones typed before."""
        if package == self.package:
            return self
        return replace(
            self,
            description=package.description or self.description,
            authors=", ".join(package.authors) or self.authors,
            package=package,
        )

    def package_defaults(self) -> PackageDefaults:
        """Description and authors as a profile's Kitfile defaults (the licence of the loaded profile kept)."""
        from kitmlflow_tui.core.selection.profiles import PackageDefaults

        license = self.package.license if self.package else None
        return PackageDefaults(self.description or None, split_authors(self.authors), license)


def split_authors(text: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in text.split(",") if a.strip())


class ReviewEdited(Message):
    """A field of the review changed: the App keeps the fields for the next review of this run."""

    def __init__(self, run_id: str, fields: ReviewFields) -> None:
        super().__init__()
        self.run_id, self.fields = run_id, fields


class ImportRequested(Message):
    """The review is done: the App runs the import of this choice."""

    def __init__(self, choice: ImportChoice) -> None:
        super().__init__()
        self.choice = choice


# -- import and after --------------------------------------------------------------------------------
class ImportFinished(Message):
    """The ModelKit is packed (and pushed when asked): the App shows the result. ``quit_after``: a quit
    was confirmed during the import, so the App ends now."""

    def __init__(self, screen: Screen[Any], choice: ImportChoice, result: ImportResult, quit_after: bool) -> None:
        super().__init__()
        self.screen, self.choice, self.result, self.quit_after = screen, choice, result, quit_after


class ImportFailed(Message):
    """The import failed or was cancelled (a quit waiting for the cancel may now go on)."""

    def __init__(self, error: KitmlflowError, quit_after: bool) -> None:
        super().__init__()
        self.error, self.quit_after = error, quit_after


class ImportRetryRequested(Message):
    """Run it again: the import (which resumes from the kept downloads), or only the push of ``packed``."""

    def __init__(self, choice: ImportChoice, packed: ImportResult | None) -> None:
        super().__init__()
        self.choice, self.packed = choice, packed


class PushRequested(Message):
    """After an import, push what it packed (``packed``) to ``choice.push_to``: only the push runs."""

    def __init__(self, choice: ImportChoice, packed: ImportResult) -> None:
        super().__init__()
        self.choice, self.packed = choice, packed


class AnotherImportRequested(Message):
    """Escape after an import: the App shows the runs again, for the next one."""


# -- every step --------------------------------------------------------------------------------------
class BackRequested(Message):
    """Escape on a step: the App pops it, or builds the step before when the wizard was opened straight
    at this one (``step`` is the step's name in the step line: "Runs", "Artifacts", ...)."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
