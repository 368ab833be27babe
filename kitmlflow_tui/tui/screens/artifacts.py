"""Step 3: the run's artifact tree, ticked file by file or folder by folder, with a live total."""

from __future__ import annotations

import threading
from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from kitmlflow_tui.core.catalogue.records import ArtifactTree, LevelEntry, LoggedModelInfo, RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.errors import BadInputError, KitmlflowError
from kitmlflow_tui.core.reference import ModelRef
from kitmlflow_tui.core.selection.plan import FilterSpec, format_size, make_plan, require_selection
from kitmlflow_tui.core.selection.profiles import PackageDefaults, Profile
from kitmlflow_tui.tui import messages
from kitmlflow_tui.tui.dialogs import ConfirmScreen, GlobChoice, GlobScreen, ProfileChoice, ProfileScreen
from kitmlflow_tui.tui.screens.base import WizardScreen
from kitmlflow_tui.tui.selection_model import BIG_BYTES, BIG_SHARE, ArtifactBrowser
from kitmlflow_tui.tui.text import (
    count,
    display_path,
    format_time,
    model_version,
    not_finished_reason,
    status_text,
)
from kitmlflow_tui.tui.widgets.checkbox_tree import CheckboxTree


class ArtifactsScreen(WizardScreen):
    STEP = "Artifacts"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "select_all(True)", "All"),
        Binding("x", "select_all(False)", "None"),
        # Priority, and the dialog mounted before the next key is read: keys typed in the same burst as "/" reach the
        # App after it, and must go to the glob field, not to the tree (where x would untick all and a tick all).
        Binding("slash", "glob", "Glob", priority=True),
        Binding("p", "profiles", "Profiles"),
        Binding("s", "profiles(True)", "Save profile"),
        Binding("c", "review", "Continue"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self,
        *,
        run_id: str | None = None,
        experiment_id: str | None = None,
        model: ModelRef | None = None,
        initial_spec: FilterSpec | None = None,
    ) -> None:
        super().__init__()
        self.initial_spec = initial_spec  # the command line's filter, applied once the tree is listed
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.model = model
        self.run: RunInfo | None = None
        self.registered: RegisteredModelInfo | None = None
        self.logged_models: tuple[LoggedModelInfo, ...] = ()
        self.browser = ArtifactBrowser()
        self.package = PackageDefaults()  # from a loaded profile, for the review step
        self.listed_so_far = 0
        self.folders_asked: set[str] = set()
        self.cancel_listing = threading.Event()
        self.last_glob = ""
        self.saved_spec: FilterSpec | None = None  # what the ticks were when listed, loaded or saved

    def where(self) -> str:
        return self.wizard.display_uri

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the run…", id="run-header", classes="header-line")
        yield CheckboxTree(self.browser, id="artifact-tree")
        yield Static("", id="totals", classes="status-line")

    def on_mount(self) -> None:
        self.query_one(CheckboxTree).focus()
        self.load()

    def on_unmount(self) -> None:
        self.cancel_listing.set()

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        backend = self.wizard.backend
        if self.model is not None:
            model = self.model
            self.background(lambda: backend.resolve_model(model), self.model_resolved, self.load_failed, group="run")
        else:
            run_id, experiment_id = self.run_id or "", self.experiment_id
            self.background(
                lambda: backend.get_run(run_id, experiment_id=experiment_id),
                self.run_loaded,
                self.load_failed,
                group="run",
            )

    def load_failed(self, error: KitmlflowError) -> None:
        self.query_one("#run-header", Static).update(f"[$error]Could not read the run: {escape(error.message)}[/]")
        self.show_error(error, retry=self.load)

    def model_resolved(self, result: tuple[RunInfo, ArtifactTree, RegisteredModelInfo | None]) -> None:
        run, tree, self.registered = result
        self.run_loaded(run, list_tree=False)
        self.tree_listed(tree)

    def run_loaded(self, run: RunInfo, list_tree: bool = True) -> None:
        self.run = run
        self.post_message(messages.RunLoaded(run))
        self.show_header()
        if not list_tree:
            return
        backend = self.wizard.backend
        self.background(lambda: backend.first_level(run), self.first_level_listed, group="first-level")

        def count(files: int) -> None:
            self.listed_so_far = files

        cancel = self.cancel_listing
        self.background(
            lambda: backend.run_tree(run, on_listed=count, cancel=cancel),
            self.tree_listed,
            lambda error: self.show_error(error, retry=lambda: self.run_loaded(run)),
            group="tree",
        )
        self.listing_timer = self.set_interval(0.25, self.show_totals)
        self.show_totals()

    def show_header(self) -> None:
        run = self.run
        assert run is not None
        status = status_text(run.status).markup
        head = (
            f"[b]{escape(run.run_name)}[/] [dim]{run.run_id[:8]}[/] · {status} · {format_time(run.start_time)} UTC"
            f" · [dim]{escape(run.experiment_name)}[/]"
        )
        if self.registered is not None:
            head += f"\nregistered model [b]{escape(model_version(self.registered))}[/]"
        reason = not_finished_reason(run.status)
        if reason:
            head += f"\n[$warning]This run is {escape(reason)}.[/]"
        self.query_one("#run-header", Static).update(head)

    def first_level_listed(self, result: tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]) -> None:
        if self.browser.listed:
            return  # the whole tree was faster
        entries, self.logged_models = result
        self.browser.set_level("", entries)
        self.query_one(CheckboxTree).reload()

    @on(CheckboxTree.FolderWanted)
    def list_folder(self, event: CheckboxTree.FolderWanted) -> None:
        """A folder opened before the whole tree is listed: list just that folder meanwhile."""
        run, path, models = self.run, event.path, self.logged_models
        if run is None or self.browser.listed or path in self.folders_asked:
            return
        self.folders_asked.add(path)
        backend = self.wizard.backend

        def failed(error: KitmlflowError) -> None:
            self.folders_asked.discard(path)  # opening it again retries
            self.show_error(error)

        self.background(
            lambda: backend.folder_level(run, path, models),
            lambda entries: self.folder_listed(path, entries),
            failed,
            group=f"folder:{path}",
        )

    def folder_listed(self, path: str, entries: list[LevelEntry]) -> None:
        if self.browser.listed:
            return  # the whole tree arrived first and is already shown
        self.browser.set_level(path, entries)
        self.query_one(CheckboxTree).fill_folder(path)

    def tree_listed(self, tree: ArtifactTree) -> None:
        timer = getattr(self, "listing_timer", None)
        if timer is not None:
            timer.stop()
        self.logged_models = tree.logged_models
        self.browser.set_tree(tree)
        initial, self.initial_spec = self.initial_spec, None
        if initial is not None:
            self.apply_spec(initial)
        self.saved_spec = self.browser.spec()
        self.query_one(CheckboxTree).reload()
        self.show_totals()

    # -- the live total --------------------------------------------------------------------------
    @on(CheckboxTree.Ticked)
    def show_totals(self) -> None:
        totals = self.browser.totals()
        bar = self.query_one("#totals", Static)
        if totals is None:
            if self.browser.children("") is None:
                bar.update("[dim]Listing the artifacts… reading the first level.[/]")
                return
            so_far = f" {self.listed_so_far:,} files so far." if self.listed_so_far else ""
            bar.update(f"[dim]Listing the whole tree…{so_far} You can open and tick folders already.[/]")
            return
        if totals.all_files == 0:
            bar.update("[$warning]This run has no artifacts: there is nothing to import.[/]")
            return
        models = len(self.logged_models)
        text = (
            f"[b]{count(totals.files, 'file')} · {format_size(totals.size)}[/] of {format_size(totals.all_size)}"
            f" [dim]· {count(totals.all_files, 'file')} in the run"
            + (f", {count(models, 'logged model')}" if models else "")
            + "[/]"
        )
        index = self.browser.index
        if index is not None and index.has_big:
            text += (
                f"\n[b yellow]big[/] [dim]= {format_size(index.big_threshold)} or more: {BIG_SHARE:.0%} of the"
                f" run's bytes (at most {format_size(BIG_BYTES)}), worth a look before it goes in[/]"
            )
        bar.update(text)

    def refresh_ticks(self) -> None:
        self.query_one(CheckboxTree).repaint_ticks()
        self.show_totals()

    # -- actions ---------------------------------------------------------------------------------
    def action_select_all(self, ticked: bool) -> None:
        self.browser.select_all(ticked)
        self.refresh_ticks()

    def _need_listing(self, what: str) -> bool:
        if self.browser.listed:
            return False
        self.notify(f"Still listing the artifacts; {what} once the listing is complete.", severity="warning")
        return True

    async def action_glob(self) -> None:
        if self._need_listing("the glob filter works"):
            return
        assert self.browser.index is not None
        # Awaited: the App reads the burst's next key only once the dialog's field is mounted and focused.
        await self.app.push_screen(GlobScreen(self.browser.index.tree, self.last_glob), self.glob_chosen)

    def glob_chosen(self, choice: GlobChoice | None) -> None:
        if choice is None or self.browser.index is None:
            return
        self.last_glob = " ".join([*choice.spec.include, *("!" + p for p in choice.spec.exclude)])
        self.browser.apply_glob(choice.spec, choice.mode)
        self.refresh_ticks()

    def apply_spec(self, spec: FilterSpec) -> None:
        self.browser.apply_spec(spec)
        self.refresh_ticks()

    def unsaved(self) -> bool:
        """Ticks that no profile holds: changed since the listing, the last profile loaded or saved."""
        return self.browser.listed and self.browser.spec() != self.saved_spec

    def action_profiles(self, saving: bool | None = None) -> None:
        from kitmlflow_tui.core.selection.profiles import list_profiles, profiles_dir

        def read() -> tuple[list[str], str]:
            return list_profiles(), display_path(profiles_dir())

        totals = self.browser.totals()
        summary = f"{count(totals.files, 'file')} · {format_size(totals.size)}" if totals else ""
        wants_save = self.unsaved() if saving is None else saving

        def show(result: tuple[list[str], str]) -> None:
            names, folder = result
            dialog = ProfileScreen(names, folder, can_save=self.browser.listed, saving=wants_save, summary=summary)
            self.app.push_screen(dialog, self.profile_chosen)

        self.background(read, show, group="profiles")

    def profile_chosen(self, choice: ProfileChoice | None) -> None:
        if choice is None:
            return
        from kitmlflow_tui.core.selection.profiles import load_profile

        if choice.action == "load":
            if self._need_listing("a profile can be applied"):
                return

            def load() -> None:
                self.background(lambda: load_profile(choice.name), self.profile_loaded, group="profiles")

            if not self.unsaved():
                load()
                return
            totals = self.browser.totals()
            ticked = f"the {count(totals.files, 'file')} ticked now" if totals else "the current ticks"
            question = f"Load profile {choice.name}? It replaces {ticked}, which no profile holds."
            self.app.push_screen(
                ConfirmScreen(question, "Load it (y)", "Keep my ticks (n)"), lambda yes: load() if yes else None
            )
            return
        self.save_profile(choice.name)

    def save_profile(self, name: str) -> None:
        from kitmlflow_tui.core.selection.profiles import save_profile

        package = self.package
        typed = self.run and self.wizard.package_defaults(self.run.run_id)
        if typed:  # the description and authors typed on the review go in as the profile's defaults
            package = PackageDefaults(
                typed.description or package.description, typed.authors or package.authors, package.license
            )
        spec = self.browser.spec()
        try:
            profile = Profile(name, spec, package)
        except BadInputError as exc:
            self.show_error(exc)
            return

        def saved(path: object) -> None:
            self.saved_spec = spec
            self.notify(f"Saved profile {name} to {path}", title="Profile saved")

        self.background(lambda: save_profile(profile), saved, group="profiles")

    def profile_loaded(self, profile: Profile) -> None:
        self.package = profile.package
        self.apply_spec(profile.spec)
        self.saved_spec = self.browser.spec()
        totals = self.browser.totals()
        picked = f"{count(totals.files, 'file')} · {format_size(totals.size)}" if totals else "applied"
        self.notify(f"Profile {profile.name}: {picked}", title="Profile loaded")

    def action_review(self) -> None:
        if self.run is None or self._need_listing("you can continue"):
            return
        reason = not_finished_reason(self.run.status)
        if reason:
            self.notify(f"This run is {reason}.", severity="error")
            return
        totals = self.browser.totals()
        assert self.browser.index is not None
        if totals is None or totals.files == 0:
            try:
                require_selection(make_plan(self.browser.index.tree, self.browser.spec()))
            except BadInputError as exc:  # the CLI's own "nothing selected", with the nearest reasons
                self.notify(f"{exc.message}\n{exc.hint}", severity="warning", timeout=10)
                return
        tree = self.browser.index.tree
        self.post_message(messages.FilesChosen(self.run, tree, self.browser.spec(), self.package, self.registered))
