"""The wizard driven by keys and the mouse against a real local MLflow store (the demo store)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from textual.widgets import DataTable

from kitmlflow_tui.core.reference import BrowseRef, RunRef
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.core.selection.profiles import load_profile
from kitmlflow_tui.tui.app import KitmlflowApp
from kitmlflow_tui.tui.screens import runs as runs_screen
from kitmlflow_tui.tui.selection_model import reproduces
from tests.support.cli import run_cli
from tests.support.tui import notifications, screen_text, shows, wait_for

REPO = Path(__file__).resolve().parents[2]


def app_for(store, reference=None, **options) -> KitmlflowApp:
    return KitmlflowApp(reference, tracking_uri_flag=store.tracking_uri, cursor_blink=False, **options)


def on(app: KitmlflowApp, name: str) -> bool:
    return type(app.screen).__name__ == name


def rows(app: KitmlflowApp) -> int:
    return app.screen.query_one(DataTable).row_count


def tree_listed(app: KitmlflowApp) -> bool:
    browser = getattr(app.screen, "browser", None)
    return on(app, "ArtifactsScreen") and browser is not None and browser.listed


SIGNING = ["kitmlflow_tui.core.attest", "cryptography", "nacl"]
# Steps the first paint (the connect step) does not show, so it loads none of their modules (issue 27).
LATER_STEPS = [
    f"kitmlflow_tui.tui.screens.{name}" for name in ("experiments", "runs", "artifacts", "review", "importing", "done")
]
# Nor what only they or MLflow need: the dialogs, the selection model, the catalogue's package (its
# gateway), saved profiles (PyYAML), the attestation code and its cryptography (the review's "Sign with").
LATER_PARTS = [
    "kitmlflow_tui.tui.dialogs",
    "kitmlflow_tui.tui.selection_model",
    "kitmlflow_tui.core.catalogue",
    "kitmlflow_tui.core.selection.profiles",
    "yaml",
    *SIGNING,
]


def test_importing_the_app_does_not_import_mlflow() -> None:
    # Nor requests (the registry client's, ~0.15 s), nor the pipeline, the Kitfile builder, the transfer engine
    # or the packers (~0.1 s together): the first paint pays for none of them, the steps that use them do.
    later = [
        "mlflow",
        "requests",
        "kitmlflow_tui.core.pipeline",
        "kitmlflow_tui.core.kitfile",
        "kitmlflow_tui.core.download.transfer",
    ]
    later += ["kitmlflow_tui.core.packing", "kitmlflow_tui.core.download.downloader"]
    later += ["kitmlflow_tui.tui.screens.base", "kitmlflow_tui.tui.screens.connect", *LATER_STEPS, *LATER_PARTS]
    code = f"import sys, kitmlflow_tui.tui.app; print([m for m in {later!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


FIRST_PAINT = """
import asyncio, sys, threading
from kitmlflow_tui.tui.app import KitmlflowApp

release = threading.Event()

def held(reference, flag):  # connecting until the modules are read: the connect step stays on screen
    release.wait(60)
    raise RuntimeError("the test is over")

async def main():
    app = KitmlflowApp(None, tracking_uri_flag="http://127.0.0.1:9", connector=held, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while type(app.screen).__name__ != "ConnectScreen":
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        print([m for m in LATER if m in sys.modules])
        release.set()

asyncio.run(main())
"""


def test_the_first_paint_loads_no_step_it_does_not_show() -> None:
    """Issue 27, item 4: each step's module is loaded when the step is first shown (the App names the steps'
    messages from tui/messages.py), so the connect step paints without the others, their dialogs and data."""
    later = ["mlflow", "requests", "kitmlflow_tui.core.pipeline", *LATER_STEPS, *LATER_PARTS]
    code = f"LATER = {later!r}\n{FIRST_PAINT}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip().splitlines()[-1:] == ["[]"], out.stdout + out.stderr


REVIEW_WITHOUT_A_KEY = """
import asyncio, sys
from kitmlflow_tui.tui.widgets.sign_status import SignStatus
from tests.support.tui import fixed_app, wait_for
from tests.tui.test_tui_snapshots import RUN, review

def loaded():
    return [m for m in SIGNING if m in sys.modules]

async def main():
    app = fixed_app(RUN, tag="resnet18-baseline:v1")
    async with app.run_test(size=(100, 30)) as pilot:
        await review(pilot)
        await pilot.pause(0.5)
        print("shown", loaded())
        app.screen.query_one("#field-push_to").value = "registry.example.com/ml/resnet:v1"
        app.screen.query_one("#field-sign_key").value = KEY
        await wait_for(pilot, lambda: app.screen.query_one(SignStatus).info is not None)
        print("checked", loaded())

asyncio.run(main())
"""


def test_the_review_loads_the_attestation_code_only_to_check_a_key(tmp_path: Path) -> None:
    """The review is shown without the attestation code and cryptography (the first paint's list above, and the
    review's own module); a key typed in "Sign with" loads them, in the worker that checks it."""
    from tests.support.attest_tools import pem_key_pair

    key, _public = pem_key_pair(tmp_path)
    code = f"SIGNING = {SIGNING!r}\nKEY = {str(key)!r}\n{REVIEW_WITHOUT_A_KEY}"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("KITMLFLOW_SIGN", "COSIGN"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["shown []", f"checked {SIGNING[:2]!r}"], out.stdout + out.stderr


async def test_experiments_filter_as_you_type_and_open_runs(isolated_env, demo_store) -> None:
    app = app_for(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: on(app, "ExperimentsScreen") and rows(app) == 4, what="experiments")
        await shows(pilot, "image-classifier")
        await pilot.press(*"sweeps")
        await wait_for(pilot, lambda: rows(app) == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(app, "RunsScreen") and rows(app) == 12, what="the sweep runs")
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "ExperimentsScreen"))


async def test_runs_not_finished_are_refused_with_the_reason(isolated_env, demo_store) -> None:
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["vision"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and rows(app) >= 5, what="runs")
        table = app.screen.query_one(DataTable)
        assert app.screen.runs[0].status == "RUNNING"  # newest first
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert on(app, "RunsScreen")
        await shows(pilot, "RUNNING, not FINISHED")
        finished = next(i for i, run in enumerate(app.screen.runs) if run.run_id == demo_store.runs["finished"])
        table.move_cursor(row=finished)
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))


async def test_a_bad_filter_shows_mlflows_message(isolated_env, demo_store) -> None:
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["vision"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and rows(app) >= 5)
        await pilot.press("slash", *"metrics.val_accuracy >>> 1", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#filter-error").display, what="the filter error")
        await shows(pilot, "Invalid")
        await pilot.press("slash", "ctrl+u", *"metrics.val_accuracy > 0.9", "enter")
        await wait_for(pilot, lambda: not app.screen.query_one("#filter-error").display and rows(app) == 1)


async def test_runs_page_in_as_the_cursor_nears_the_end_and_sort(isolated_env, demo_store, monkeypatch) -> None:
    monkeypatch.setattr(runs_screen, "PAGE_SIZE", 4)
    monkeypatch.setattr(runs_screen, "LOAD_MORE_WITHIN", 2)
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["sweeps"]))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and rows(app) == 4, what="the first page")
        for _ in range(12):
            await pilot.press("down")
            await pilot.pause(0.1)
        await wait_for(pilot, lambda: rows(app) == 12, what="every page")
        for _ in range(len(app.screen.sort_keys())):  # s cycles through the shown columns, to the name
            await pilot.press("s")
            await wait_for(pilot, lambda: rows(app) >= 4)
            if app.screen.sort_column == "name":
                break
        await wait_for(pilot, lambda: app.screen.sort_column == "name" and rows(app) >= 4)
        names = [run.run_name for run in app.screen.runs]
        assert names == sorted(names, reverse=True)
        await pilot.press("d")
        await wait_for(pilot, lambda: not app.screen.descending and rows(app) >= 4)
        names = [run.run_name for run in app.screen.runs]
        assert names == sorted(names)


async def test_ticking_updates_the_total_and_the_spec_reproduces_it(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app), what="the artifact tree")
        browser = app.screen.browser
        await shows(pilot, "20 files · 851.")
        await shows(pilot, "◆ model")
        await pilot.press("down", "down", "space")  # checkpoints/
        await pilot.pause()
        assert browser.state("checkpoints", True) == "none"
        await shows(pilot, "14 files · 7")
        await pilot.press("enter", "down", "space")  # open it, tick best.ckpt
        assert browser.state("checkpoints", True) == "some"
        spec = browser.spec()
        assert reproduces(browser.index.tree, spec, browser.chosen())
        assert spec == FilterSpec(exclude=tuple(f"/checkpoints/epoch_00{n}.pt" for n in range(1, 6)))
        await pilot.press("x")
        assert browser.totals().files == 0
        await pilot.press("c")
        assert on(app, "ArtifactsScreen")  # nothing ticked: no way on, and the CLI's reasons why
        (told,) = notifications(app)  # toasts are not in the screenshot that screen_text reads
        assert told.startswith("Nothing selected: all 20 files of the run are left out (6 excluded by pattern")
        await pilot.press("a")
        assert browser.totals().files == 20


async def test_a_folder_opened_before_the_whole_listing_is_listed_alone(isolated_env, demo_store) -> None:
    """The whole-tree listing is held back (a server slow to list everything): opening a folder lists just
    that folder, its files can be ticked, and the ticks hold once the whole tree arrives."""
    from kitmlflow_tui.tui.backend import CatalogueBackend, connect

    whole_tree_may_go = threading.Event()
    folder_listings: list[str] = []

    class SlowWholeTree(CatalogueBackend):
        def run_tree(self, run, **options):
            assert whole_tree_may_go.wait(60)
            return super().run_tree(run, **options)

        def folder_level(self, run, folder, logged_models):
            folder_listings.append(folder)
            return super().folder_level(run, folder, logged_models)

    def slow_connector(reference, flag):
        return SlowWholeTree(connect(reference, flag).catalogue)

    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]), connector=slow_connector)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await shows(pilot, "checkpoints/")
            browser = app.screen.browser
            await pilot.press("down", "down", "enter")  # open checkpoints/
            await shows(pilot, "epoch_005.pt")
            assert "listing…" not in screen_text(app) and not browser.listed
            assert folder_listings == ["checkpoints"]
            await pilot.press("down", "space")  # untick best.ckpt
            assert browser.state("checkpoints", True) == "some"
            await pilot.press(*["down"] * 8, "enter")  # model/ (a logged model, in a store of its own)
            await shows(pilot, "MLmodel")
            assert folder_listings == ["checkpoints", "model"]
            whole_tree_may_go.set()
            await wait_for(pilot, lambda: tree_listed(app), what="the whole tree")
            assert browser.chosen() == {f.path for f in browser.index.tree.files} - {"checkpoints/best.ckpt"}
            await shows(pilot, "19 files · ")
            assert browser.spec() == FilterSpec(exclude=("/checkpoints/best.ckpt",))
    finally:
        whole_tree_may_go.set()


async def test_the_mouse_ticks_boxes(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app), what="the artifact tree")
        tree = app.screen.query_one("#artifact-tree")
        await pilot.click(tree, offset=(1, 0))  # the box of LICENSE
        assert app.screen.browser.state("LICENSE", False) == "none"
        await pilot.click(tree, offset=(4, 2))  # the ▸ of checkpoints/ opens it (and ticks nothing)
        await shows(pilot, "epoch_001.pt")
        assert app.screen.browser.state("checkpoints", True) == "all"
        await shows(pilot, "▾ checkpoints/")


async def test_home_end_g_and_shift_g_move_the_list_cursors(isolated_env, demo_store) -> None:
    app = app_for(demo_store, BrowseRef(None, experiment_id=demo_store.experiments["sweeps"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and rows(app) == 12, what="the sweep runs")
        table = app.screen.query_one(DataTable)
        table.focus()
        await pilot.pause()
        for key, row in (("G", 11), ("g", 0), ("end", 11), ("home", 0)):
            await pilot.press(key)
            assert table.cursor_row == row, key
        await pilot.press("slash", "g")  # in the filter a g is a g
        assert app.screen.query_one("#run-filter").value == "g" and table.cursor_row == 0
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        tree = app.screen.query_one("#artifact-tree")
        for key, line in (("G", tree.last_line), ("g", 0), ("end", tree.last_line), ("home", 0)):
            await pilot.press(key)
            assert tree.cursor_line == line, key
        assert tree.last_line > 0
    app = app_for(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: on(app, "ExperimentsScreen") and rows(app) == 4)
        table = app.screen.query_one(DataTable)
        await pilot.press("end")
        assert table.cursor_row == 3
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_glob_previews_then_applies(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await pilot.press("slash", *"*.pt")
        await wait_for(pilot, lambda: on(app, "GlobScreen"))
        await pilot.pause(0.2)
        await shows(pilot, "5 of 20 files match")
        assert app.screen_stack[-2].browser.totals().files == 20  # nothing applied yet
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        browser = app.screen.browser
        assert browser.chosen() == {f"checkpoints/epoch_00{n}.pt" for n in range(1, 6)}
        assert browser.spec() == FilterSpec(include=("*.pt",))
        await pilot.press("slash", "ctrl+u", *"epoch_005.pt", "ctrl+r")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        assert len(app.screen.browser.chosen()) == 4
        assert browser.spec() == FilterSpec(include=("*.pt",), exclude=("epoch_005.pt",))  # globs stay globs


async def test_a_glob_removed_is_saved_and_run_as_that_glob(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        browser = app.screen.browser
        await pilot.press("slash", *"*.pt", "ctrl+r")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and len(browser.chosen()) == 15)
        await pilot.press("down", "space")  # and untick README.md
        assert browser.spec() == FilterSpec(exclude=("*.pt", "/README.md"))
        await pilot.press("p")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await pilot.press(*"no-pt", "enter")
        path = isolated_env / "config" / "kitmlflow" / "profiles" / "no-pt.yaml"
        await wait_for(pilot, path.exists, what="the profile file")
        assert load_profile("no-pt").spec == FilterSpec(exclude=("*.pt", "/README.md"))
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen"))
        words = shlex.split(app.screen.command_line())
        assert words[words.index("--exclude") + 1] == "*.pt"


async def test_a_saved_profile_is_what_profile_reads_and_loads_back(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        browser = app.screen.browser
        await pilot.press("down", "down", "space")  # no checkpoints
        wanted = browser.chosen()
        await pilot.press("p")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await pilot.press(*"no-ckpt", "enter")
        path = isolated_env / "config" / "kitmlflow" / "profiles" / "no-ckpt.yaml"
        await wait_for(pilot, path.exists, what="the profile file")
        assert load_profile("no-ckpt").spec == FilterSpec(exclude=("/checkpoints/",))
        await pilot.press("a")
        assert browser.totals().files == 20
        # Ticks no profile holds: the dialog opens on the name field (saving is what protects them) ...
        await pilot.press("p")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "profile-name", what="name focus")
        await pilot.press("enter")  # an empty name: nothing is saved, nothing is loaded
        assert on(app, "ProfileScreen") and browser.totals().files == 20
        # ... and loading over them asks first; "n" keeps the 20 ticks.
        await pilot.press("shift+tab", "enter")  # the list, its highlighted (only) profile
        await wait_for(pilot, lambda: on(app, "ConfirmScreen"), what="the question before loading")
        await shows(pilot, "Load profile no-ckpt? It replaces the 20 files ticked now")
        await pilot.press("n")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        assert browser.totals().files == 20
        await pilot.press("p")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await pilot.press("shift+tab", "enter")
        await wait_for(pilot, lambda: on(app, "ConfirmScreen"))
        await pilot.press("y")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and browser.chosen() == wanted, what="the profile")
        # Now the ticks are the profile's: the dialog opens on the list, and Enter loads without a question.
        await pilot.press("p")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "profile-list", what="list focus")
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"), what="loaded without asking")
        assert browser.chosen() == wanted
        # Typing while the list has the focus types the name: Enter saves it and never loads the highlighted one.
        await pilot.press("space", "p")  # one more tick: unsaved again
        ticked = browser.chosen()
        assert ticked != wanted
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "profile-name")
        await pilot.press("shift+tab", *"more", "enter")
        await wait_for(pilot, path.with_name("more.yaml").exists, what="the second profile file")
        assert on(app, "ArtifactsScreen") and browser.chosen() == ticked


async def test_the_save_dialog_takes_a_name_never_a_path(isolated_env, demo_store, monkeypatch) -> None:
    """Issue 20 item 8: saving a profile named ``params.yaml`` overwrote ./params.yaml."""
    monkeypatch.chdir(isolated_env)
    (isolated_env / "params.yaml").write_text("lr: 0.1\n")
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await pilot.press("down", "down", "space", "s")
        await wait_for(pilot, lambda: on(app, "ProfileScreen"))
        await pilot.press(*"params.yaml", "enter")
        await wait_for(pilot, lambda: notifications(app), what="the refusal")
        assert "a profile is named without its .yaml" in notifications(app)[0]
        assert on(app, "ProfileScreen"), "the dialog stays open for another name"
        assert (isolated_env / "params.yaml").read_text() == "lr: 0.1\n"
        assert not (isolated_env / "config" / "kitmlflow" / "profiles").exists()


async def test_an_unreachable_server_shows_the_cli_message_and_retries(isolated_env) -> None:
    app = KitmlflowApp(None, tracking_uri_flag="http://127.0.0.1:9", cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.last_error is not None, what="the connection error")
        text = screen_text(app)
        assert "Cannot connect to the tracking server http://127.0.0.1:9" in text
        assert "Is the server running on that host and port?" in text
        await pilot.press("r")
        await wait_for(pilot, lambda: app.connect_attempts == 2 and app.last_error is not None, what="a retry")
        await pilot.press("q")
    assert app.return_value == 6


async def test_no_server_configured_says_so_and_creates_nothing_here(isolated_env, monkeypatch) -> None:
    """Issue 15, item 6: no flag, no URI, no MLFLOW_TRACKING_URI is no silent ./mlflow.db."""
    here = isolated_env / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    app = KitmlflowApp(None, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.last_error is not None, what="the no-server message")
        text = " ".join(screen_text(app).split())
        for named in ("--tracking-uri", "MLFLOW_TRACKING_URI", "kitmlflow demo"):
            assert named in text, text
        await pilot.press("q")
    assert app.return_value == 2
    assert list(here.iterdir()) == [], "nothing created in the user's folder"


async def test_a_run_that_is_not_finished_cannot_go_on(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["failed"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await shows(pilot, "FAILED, not FINISHED")
        await pilot.press("c")
        await pilot.pause(0.2)
        assert on(app, "ArtifactsScreen")


async def test_the_command_line_filter_and_tag_preset_the_wizard(isolated_env, demo_store) -> None:
    spec = FilterSpec(exclude=("checkpoints/",))
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]), tag="preset:v2", spec=spec)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        assert app.screen.browser.spec() == spec
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
        assert app.screen.value("tag") == "preset:v2"
        assert "--exclude checkpoints/" in app.screen.command_line()


@pytest.mark.slow
async def test_a_wizard_import_gives_the_digest_of_the_headless_command(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]), tag="wizard-check:v1")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await pilot.press("down", "down", "enter", "down", "space")  # leave out checkpoints/best.ckpt
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
        await pilot.press(
            "tab", "tab", "tab", "tab", *"Fraud-free demo"
        )  # the name field (after Push to, Sign with, Format)
        await wait_for(pilot, lambda: app.screen.kitfile.package.name == "Fraud-free demo", what="the preview")
        await pilot.press("ctrl+u")  # back to the default: headless has no --name flag
        await wait_for(pilot, lambda: app.screen.kitfile.package.name == "wizard-check", what="the preview")
        command = app.screen.command_line()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=120, what="the import")
        wizard = app.screen.result
        await shows(pilot, "ModelKit ready")
    assert app.return_value in (0, None)
    words = shlex.split(command)
    assert words[:2] == ["kitmlflow", "import"] and "--exclude" in words
    headless = run_cli(*words[1:], "--json")
    assert headless.code == 0, headless.stderr
    assert headless.json["digest"] == wizard.digest
    assert headless.json["reference"] == wizard.reference


async def test_review_fields_survive_a_trip_back_and_go_into_the_command_then_esc_on_done_goes_to_the_runs(
    isolated_env, demo_store
) -> None:
    """Issue 15, items 7 and 8: typed tag and description are kept when going back to the artifacts, the
    description reaches the headless command; after the import Esc opens the runs for another one."""
    from textual.widgets import Input

    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]), tag="trip:v1")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None)
        field = app.screen.query_one("#field-description", Input)
        field.focus()
        await pilot.press("ctrl+u", *"Kept across the trip")
        await wait_for(pilot, lambda: app.screen.kitfile.package.description == "Kept across the trip")
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None)
        assert app.screen.query_one("#field-description", Input).value == "Kept across the trip"
        assert "--description 'Kept across the trip'" in app.screen.command_line()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=120, what="the import")
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "RunsScreen"), what="the runs, for another import")
        assert app.is_running


async def test_question_mark_lists_the_keys_and_ctrl_p_opens_the_palette(isolated_env, demo_store) -> None:
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tree_listed(app))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: on(app, "HelpScreen"), what="the key map")
        text = screen_text(app)
        for key in ("space", "Glob", "Profiles", "Continue"):
            assert key in text, text
        listed = [(key, what) for key, what, _ in app.screen.keys]  # all of them, also those scrolled out of view
        assert not [k for k, what in listed if "Scroll" in what or k.startswith("super+")], listed
        assert [what for _, what in listed if "palette" in what.lower()] == [
            "Command palette: jump to an experiment or a run, any action"
        ]
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: on(app, "CommandPalette"), what="the command palette")
        await pilot.press(*"image-classifier-sweeps")
        await shows(pilot, "image-classifier-sweeps")


@pytest.mark.timeout(300)
async def test_cancel_asks_first_then_stops_a_real_transfer(isolated_env: Path) -> None:
    """The real import child process, downloading from the hostile server, which sends 1 MiB of big.bin at
    once and then keeps it trickling (never finishing) so the transfer is surely mid-file when the cancel
    comes. Afterwards: the message comes from the pipeline, the received bytes stay for the next run to resume
    (with kit: in the cache as the part file; without, the native packer's direct import: in the partial layer
    blob, listed by its journal), no tag, no stage folder, no blob without a manifest."""
    from kitmlflow_tui.core.reference import parse_reference
    from tests.support.hostile_server import hostile_server

    scenario, data = trickling_scenario()
    cache, kit_home = isolated_env / "cache", isolated_env / "kitops"
    with hostile_server(scenario) as server:
        app = KitmlflowApp(parse_reference(server.uri()), tag="cancel:v1", cursor_blink=False)
        async with app.run_test(size=(80, 24)) as pilot:
            importing = await import_until_mid_file(pilot, app, cache, kit_home)
            await pilot.press("escape")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"))
            await pilot.press("n")  # not yet: the import goes on
            assert not importing.cancel.is_set()
            await pilot.press("escape")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"))
            await pilot.press("y")
            await wait_for(pilot, lambda: not importing.running, timeout=120, what="the cancelled import")
            await shows(pilot, "Download cancelled; completed files are kept")
            await shows(pilot, "r retry: the import resumes")  # item 7: retry, back, and the headless twin
            assert "Headless equivalent" in screen_text(app) and "esc Cancel" not in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: on(app, "ReviewScreen"))
    assert_only_what_a_resume_uses(cache, kit_home, data)


async def test_quit_while_importing_asks_then_stops_the_import_and_leaves_what_a_resume_uses(
    isolated_env: Path,
) -> None:
    """Ctrl+Q during the download asks as Esc does; "n" goes on, "y" cancels, waits for the clean-up, quits."""
    from kitmlflow_tui.core.reference import parse_reference
    from tests.support.hostile_server import hostile_server

    scenario, data = trickling_scenario()
    cache, kit_home = isolated_env / "cache", isolated_env / "kitops"
    with hostile_server(scenario) as server:
        app = KitmlflowApp(parse_reference(server.uri()), tag="quit:v1", cursor_blink=False)
        async with app.run_test(size=(80, 24)) as pilot:
            importing = await import_until_mid_file(pilot, app, cache, kit_home)
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"), what="the question before quitting")
            await shows(pilot, "Quit? The import stops")
            await pilot.press("n")
            await pilot.pause(0.3)
            assert app.is_running and importing.running and not importing.cancel.is_set()
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"))
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, timeout=120, what="the app to quit after the clean-up")
    assert app.return_value == 130
    assert_only_what_a_resume_uses(cache, kit_home, data)


async def test_d_deletes_what_a_cancelled_import_kept_for_its_resume(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a cancel the import screen says how much it kept and where; d (confirmed) deletes it. The import
    goes direct (the native packer: a KIT_BIN that is no executable hides any real kit), so what it kept are
    partial layer blobs in kit's storage, not the download cache the folder path keeps."""
    from kitmlflow_tui.core.reference import parse_reference
    from tests.support.hostile_server import hostile_server

    monkeypatch.setenv("KIT_BIN", str(isolated_env / "no-kit-here"))

    scenario, _data = trickling_scenario()
    cache, kit_home = isolated_env / "cache", isolated_env / "kitops"
    with hostile_server(scenario) as server:
        app = KitmlflowApp(parse_reference(server.uri()), tag="discard:v1", cursor_blink=False)
        async with app.run_test(size=(100, 30)) as pilot:
            importing = await import_until_mid_file(pilot, app, cache, kit_home)
            await pilot.press("escape")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"))
            await pilot.press("y")
            await wait_for(pilot, lambda: not importing.running, timeout=120, what="the cancelled import")
            await shows(pilot, "r retry: the import resumes")
            assert received(cache, kit_home) >= 1_048_576
            await shows(pilot, ".kitmlflow-resume")  # where the kept bytes are: the direct import's folder
            await pilot.press("d")
            await wait_for(pilot, lambda: on(app, "ConfirmScreen"), what="the question before deleting")
            await pilot.press("y")
            await shows(pilot, "r retry the import")
    assert received(cache, kit_home) == 0
    assert not list(resume_folder(kit_home).glob("*/*")), "no partial blob nor journal left"
    assert blobs_without_a_manifest(kit_home) == set()


def trickling_scenario():
    """A run whose big.bin (4 MiB) sends its first MiB at once, then trickles for ever: an import of it
    is surely mid-file when the test acts."""
    from tests.support.hostile_server import Content, Scenario, file

    data = bytes(range(256)) * (4 * 4096)
    scenario = Scenario(
        listing=lambda d: [file("big.bin", len(data)), file("README.md", 7)] if d == "" else [],
        contents={"big.bin": Content(data, trickle_after=1_048_576), "README.md": Content(b"# real\n")},
    )
    return scenario, data


async def import_until_mid_file(pilot, app: KitmlflowApp, cache: Path, kit_home: Path):
    """From the listed run to an import whose big.bin is half-way; the import screen."""
    await wait_for(pilot, lambda: tree_listed(app), what="the listing")
    await pilot.press("c")
    await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None)
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: on(app, "ImportScreen"))
    importing = app.screen
    await wait_for(pilot, lambda: received(cache, kit_home) >= 1_048_576, timeout=120, what="big.bin half-way")
    return importing


def resume_folder(kit_home: Path) -> Path:
    from kitmlflow_tui.core.packing.direct import RESUME_DIR_NAME

    return kit_home / "storage" / RESUME_DIR_NAME


def received(cache: Path, kit_home: Path) -> int:
    """Bytes of big.bin received so far: its part file (kit packs: the folder path), else the blocks of the
    direct import's sparse layer blobs."""
    from tests.support.disk import bytes_of

    parts = list(cache.glob("*/*/.kitmlflow-partial/big.bin.part"))
    if parts:
        return bytes_of(parts[:1])
    return bytes_of(resume_folder(kit_home).glob("*/*.tar"), allocated=True)


def assert_only_what_a_resume_uses(cache: Path, kit_home: Path, data: bytes) -> None:
    """After an abandoned import: the import process gone, the received bytes kept as the part file a
    resume continues, complete files complete, no stage folder, no tag, no blob without a manifest."""
    assert import_children() == [], "the import process ended"
    parts = list(cache.glob("*/*/.kitmlflow-partial/big.bin.part"))
    if parts:  # kit packs: the folder path
        kept = parts[0].read_bytes()
        assert 1_048_576 <= len(kept) < len(data) and kept == data[: len(kept)], "the bytes received, as sent"
        run_cache = parts[0].parents[1]
        assert (run_cache / "README.md").read_bytes() == b"# real\n"  # complete files stay complete
        assert not (run_cache / "big.bin").exists()
    else:  # the direct import: the journal says how much of big.bin its layer blob holds
        journals = resume_folder(kit_home).glob("*/*.journal")
        (journal,) = [j for j in journals if "\nR " in j.read_text()]
        written = sorted(
            (int(fields[2]), int(fields[3]))
            for fields in (line.split() for line in journal.read_text().splitlines()[1:])
            if fields[0] == "R"
        )
        kept_bytes = 0
        for start, end in written:
            kept_bytes = max(kept_bytes, end) if start <= kept_bytes else kept_bytes
        assert 1_048_576 <= kept_bytes < len(data)
        assert data[:kept_bytes] in journal.with_suffix(".tar").read_bytes(), "the bytes received, as sent"
    assert not list(cache.glob("*/.*.stage-*")), "no stage folder"
    assert blobs_without_a_manifest(kit_home) == set()
    assert list((kit_home / "storage").glob("*-tags.json")) == [], "no tag"


def import_children() -> list[int]:
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "kitmlflow_tui.tui.import_process" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child.pid)
    return found


def blobs_without_a_manifest(kit_home: Path) -> set[str]:
    """Blobs in kit storage that no manifest of its index refers to (what an interrupted pack could leave)."""
    storage = kit_home / "storage"
    blobs = {p.name for p in (storage / "blobs" / "sha256").glob("*")} if storage.exists() else set()
    referenced: set[str] = set()
    index = storage / "index.json"
    for descriptor in json.loads(index.read_bytes())["manifests"] if index.exists() else []:
        manifest_digest = descriptor["digest"].removeprefix("sha256:")
        manifest = json.loads((storage / "blobs" / "sha256" / manifest_digest).read_bytes())
        referenced |= {manifest_digest, manifest["config"]["digest"].removeprefix("sha256:")}
        referenced |= {layer["digest"].removeprefix("sha256:") for layer in manifest.get("layers") or []}
    return blobs - referenced
