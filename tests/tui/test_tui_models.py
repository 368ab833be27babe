"""The wizard opened at a registered model (issue 22, item 15): the tag it proposes and what it shows.
Against the demo store, whose demo-classifier has version 1 with the alias champion."""

from __future__ import annotations

import shlex

import pytest
from textual.widgets import Input

from kitmlflow_tui.core.reference import ModelRef
from kitmlflow_tui.tui.app import KitmlflowApp
from tests.support.tui import screen_text, shows, wait_for


def on(app: KitmlflowApp, name: str) -> bool:
    return type(app.screen).__name__ == name


@pytest.mark.parametrize(
    ("alias", "version", "tag", "shown"),
    [
        ("champion", None, "demo-classifier:champion", "demo-classifier@champion (version 1)"),
        (None, "1", "demo-classifier:v1", "demo-classifier version 1"),
    ],
    ids=["alias", "version"],
)
async def test_a_registered_model_is_tagged_by_its_alias_or_version(
    isolated_env, demo_store, alias, version, tag, shown
) -> None:
    model = ModelRef(None, demo_store.registered_model, version=version, alias=alias)
    app = KitmlflowApp(model, tracking_uri_flag=demo_store.tracking_uri, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = lambda: getattr(app.screen, "browser", None)  # noqa: E731
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and browser() is not None and browser().listed)
        await shows(pilot, f"registered model {shown}")
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
        assert app.screen.query_one("#field-tag", Input).value == tag
        step_line = screen_text(app).splitlines()[0]
        assert shown[:20] in step_line, step_line  # the model first: the step line cuts its end at 80 columns
        words = shlex.split(app.screen.command_line())
        assert words[2] == f"mlflow://models/demo-classifier{'@' + alias if alias else '/' + str(version)}"
        assert words[words.index("-t") + 1] == tag
