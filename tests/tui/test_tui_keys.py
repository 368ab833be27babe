"""Keys that must reach the right place (issue 22): the help key on every step and in every field, a
burst typed after "/" on the runs, the column picker's ticks without colour. Against the demo store."""

from __future__ import annotations

import pytest
from textual import events
from textual.widgets import DataTable, Input

from kitmlflow_tui.core.reference import BrowseRef, RunRef
from kitmlflow_tui.tui.app import KitmlflowApp
from tests.support.tui import screen_text, wait_for


def app_for(store, reference=None, **options) -> KitmlflowApp:
    return KitmlflowApp(reference, tracking_uri_flag=store.tracking_uri, cursor_blink=False, **options)


def on(app: KitmlflowApp, name: str) -> bool:
    return type(app.screen).__name__ == name


def focused_id(app: KitmlflowApp) -> str | None:
    return app.focused.id if app.focused is not None else None


async def help_opens_and_closes(pilot, app: KitmlflowApp, key: str, back_to: str) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: on(app, "HelpScreen"), what=f"the key map after {key}")
    await pilot.press(key)  # the same key closes it
    await wait_for(pilot, lambda: on(app, back_to), what=f"{back_to} again")


async def test_the_help_key_works_in_every_field_and_question_mark_stays_text_where_it_is_text(
    isolated_env, demo_store
) -> None:
    """Item 16: the rule is F1 everywhere (every step, every field); ? too, except in a field whose text may
    hold a "?" (a glob, a filter, a description): there it is typed. The tag and "Push to" hold references,
    which never contain one, so there ? opens the key map."""
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]), tag="keys:v1")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and app.screen.browser.listed, what="the tree")
        await help_opens_and_closes(pilot, app, "question_mark", "ArtifactsScreen")
        await help_opens_and_closes(pilot, app, "f1", "ArtifactsScreen")
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
        assert focused_id(app) == "field-tag"
        await help_opens_and_closes(pilot, app, "question_mark", "ReviewScreen")
        assert app.screen.query_one("#field-tag", Input).value == "keys:v1"  # no ? typed into the tag
        help_rows = []
        await pilot.press("f1")
        await wait_for(pilot, lambda: on(app, "HelpScreen"))
        help_rows = [key for key, _what, _now in app.screen.keys]
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "ReviewScreen"))
        assert "f1" in help_rows and "?" in help_rows
        description = app.screen.query_one("#field-description", Input)
        description.focus()
        await pilot.press("ctrl+u", *"Ready?")
        assert on(app, "ReviewScreen") and description.value == "Ready?"  # a ? in free text is text
        await help_opens_and_closes(pilot, app, "f1", "ReviewScreen")  # F1 works in that field too
        assert description.value == "Ready?"


async def test_f1_opens_the_help_while_typing_a_runs_filter(isolated_env, demo_store) -> None:
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["sweeps"]))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and app.screen.query_one(DataTable).row_count == 12)
        await pilot.press("slash", *"tags.note = 'why?'")
        assert app.screen.query_one("#run-filter", Input).value == "tags.note = 'why?'"
        await help_opens_and_closes(pilot, app, "f1", "RunsScreen")


def burst(app: KitmlflowApp, keys: list[str]) -> None:
    """Keys as a terminal delivers a fast typist's burst: all posted before the first is handled."""
    for key in keys:
        character = {"slash": "/", "space": " ", "enter": "\r"}.get(key, key)
        app.post_message(events.Key(key, character))


async def test_keys_typed_in_the_same_burst_as_slash_all_go_to_the_runs_filter(isolated_env, demo_store) -> None:
    """Item 17: "/" then the filter at once. The text has an s (sort), a d (flip) and a c (the columns
    dialog): none may reach the table."""
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["sweeps"]))
    text = "metrics.val_accuracy > 0.9 and params.seed != 'd'"
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and app.screen.query_one(DataTable).row_count == 12)
        runs = app.screen
        sorted_by, descending = runs.sort_column, runs.descending
        burst(app, ["slash", *("space" if c == " " else c for c in text), "enter"])
        await wait_for(pilot, lambda: runs.filter_string == text, what="the filter applied")
        assert on(app, "RunsScreen"), "no dialog opened by a key of the text"
        assert (runs.sort_column, runs.descending) == (sorted_by, descending)
        await wait_for(pilot, lambda: not runs.page_loading)
        assert {run.run_id for run in runs.runs} < set(demo_store.runs.values())


async def test_keys_typed_in_the_same_burst_as_slash_all_go_to_the_glob_field(isolated_env, demo_store) -> None:
    """The artifacts' "/" opens the glob dialog; the keys typed with it go into its field, none to the tree. The
    glob holds a (tick all), x (untick all), p (profiles), s (save a profile) and c (continue)."""
    app = app_for(demo_store, RunRef(None, demo_store.runs["finished"]))
    text = "*.pt !epoch_005.pt !xa/ !sc/"
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and app.screen.browser.listed, what="the tree")
        artifacts = app.screen
        burst(app, ["slash", *("space" if c == " " else c for c in text), "enter"])
        await wait_for(pilot, lambda: artifacts.last_glob == text, what="the glob applied")
        assert on(app, "ArtifactsScreen"), "no dialog opened by a key of the glob"
        assert artifacts.browser.chosen() == {f"checkpoints/epoch_00{n}.pt" for n in range(1, 5)}


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "colour"])
async def test_the_column_pickers_ticks_read_without_colour(isolated_env, demo_store, monkeypatch, no_color) -> None:
    """Item 18: a ticked and an unticked column differ by their characters, not only their colour."""
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = app_for(demo_store, BrowseRef(None, demo_store.experiments["sweeps"]))
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: on(app, "RunsScreen") and app.screen.query_one(DataTable).row_count == 12)
        chosen = list(app.screen.chosen_columns)
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ColumnsScreen"), what="the column picker")
        await pilot.pause(0.2)
        rows = screen_text(app).splitlines()
        offered = [(key, title) for key, title, _kind in app.screen.offered]
        assert app.no_color is no_color
        for key, title in offered:
            (row,) = [row for row in rows if f"] {title} " in row or row.rstrip().endswith(f"] {title}")]
            box = "[x]" if key in chosen else "[ ]"
            assert f"{box} {title}" in row, (key, row)
        assert any(key not in chosen for key, _ in offered) and any(key in chosen for key, _ in offered)
        await pilot.press("space")  # the first row flips, and so does its box
        await pilot.pause(0.1)
        first_key, first_title = offered[0]
        flipped = "[ ]" if first_key in chosen else "[x]"
        assert f"{flipped} {first_title}" in screen_text(app)
