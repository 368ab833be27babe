"""The runs table: columns fit the width whole, a column picker remembered per experiment, sorting by what is shown."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import DataTable

from kitmlflow_tui.core.catalogue.records import RunSummary
from kitmlflow_tui.core.reference import BrowseRef
from kitmlflow_tui.tui.app import KitmlflowApp
from kitmlflow_tui.tui.screens.runs import CELL_PADDING, cell_text, default_columns, elide, fit_columns
from tests.support.tui import FIXED_NOW, screen_text, shows, wait_for

SWEEP = [
    RunSummary(
        f"{n:032x}",
        f"sweep-vit-b16-lr{lr}-bs{bs}",
        "3",
        "FINISHED",
        1_700_000_000_000,
        1_700_000_900_000,
        "dana",
        {"val_accuracy": 0.878 + n / 1000, "val_loss": 0.4 + n / 100},
        {"lr": lr, "batch_size": str(bs), "optimizer": "adamw-with-a-long-name-for-a-param"},
    )
    for n, (lr, bs) in enumerate((lr, bs) for lr in ("0.001", "0.0003", "0.0001") for bs in (32, 64, 128))
]


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(min_value=40, max_value=240),
    picks=st.lists(
        st.sampled_from(
            ["metric:val_accuracy", "metric:val_loss", "param:lr", "param:optimizer", "start", "duration", "user"]
        ),
        unique=True,
    ),
)
def test_the_columns_fit_the_width_and_numbers_are_never_clipped(width: int, picks: list[str]) -> None:
    columns, hidden = fit_columns(width, SWEEP, picks, FIXED_NOW)
    shown = [c.key for c in columns[3:]]
    assert [c.key for c in columns[:3]] == ["name", "id", "status"]
    if shown:  # the optional columns only come when they fit
        assert sum(c.width + 2 * CELL_PADDING for c in columns) <= width
    assert sorted(shown + hidden) == sorted(picks)
    assert shown == [key for key in picks if key in shown]  # in the order picked
    for column in columns:
        if column.key.startswith("metric:"):  # a number is shown whole
            assert all(len(cell_text(run, column.key, FIXED_NOW)) <= column.width for run in SWEEP)


def test_at_80_columns_sweep_names_are_whole_and_metrics_whole() -> None:
    columns, hidden = fit_columns(78, SWEEP, default_columns(SWEEP), FIXED_NOW)
    name = columns[0]
    assert name.key == "name" and name.width >= max(len(run.run_name) for run in SWEEP)
    assert [c.key for c in columns[3:]] == ["metric:val_accuracy", "metric:val_loss"]
    assert hidden == ["start", "duration", "user"]


def test_elision_is_visible() -> None:
    assert elide("adamw-with-a-long-name", 10) == "adamw-wit…"
    assert elide("sweep-vit-b16-lr0.0003", 12, keep="end") == "…16-lr0.0003"
    assert elide("sweep-vit-b16-lr0.0003", 12, keep="ends") == "sweep-….0003"
    assert elide("short", 10) == "short"


def app_for(store, reference=None, **options) -> KitmlflowApp:
    return KitmlflowApp(reference, tracking_uri_flag=store.tracking_uri, cursor_blink=False, **options)


def headers(app: KitmlflowApp) -> list[str]:
    return [str(key.value) for key in app.screen.query_one(DataTable).columns]


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_the_column_picker_is_remembered_per_experiment_and_sort_cycles_what_is_shown(
    isolated_env, demo_store, size
) -> None:
    sweeps = BrowseRef(None, demo_store.experiments["sweeps"])
    app = app_for(demo_store, sweeps)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and app.screen.runs, what="runs")
        shown = headers(app)
        assert shown[:3] == ["name", "id", "status"]
        sortable = app.screen.sort_keys()
        assert set(sortable) <= set(shown)
        seen = set()
        for _ in range(len(sortable) + 1):
            await pilot.press("s")
            await wait_for(pilot, lambda: app.screen.runs, what="the sorted runs")
            seen.add(app.screen.sort_column)
        assert seen == set(sortable)  # every shown sortable column, and nothing hidden
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ColumnsScreen")
        await shows(pilot, "batch_size")
        options = app.screen.query_one("#column-list")
        keys = [options.get_option_at_index(i).value for i in range(options.option_count)]
        options.deselect_all()
        options.select("param:lr")
        options.select("metric:val_loss")
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen")
        assert "param:lr" in keys
        assert headers(app) == ["name", "id", "status", "metric:val_loss", "param:lr"]
        await shows(pilot, "lr")
    state = json.loads((isolated_env / "state" / "kitmlflow" / "runs-columns.json").read_text())
    assert list(state.values()) == [["metric:val_loss", "param:lr"]]
    again = app_for(demo_store, sweeps)
    async with again.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: type(again.screen).__name__ == "RunsScreen" and again.screen.runs)
        assert headers(again) == ["name", "id", "status", "metric:val_loss", "param:lr"]
        assert "0.0003" in screen_text(again)
    other = app_for(demo_store, BrowseRef(None, demo_store.experiments["vision"]))
    async with other.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: type(other.screen).__name__ == "RunsScreen" and other.screen.runs)
        assert "param:lr" not in headers(other)  # another experiment keeps its own columns
