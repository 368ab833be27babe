"""Every wizard state as a picture, at 80×24 and 120×36.

Snapshots need fixed run ids and sizes, which a fresh MLflow store cannot give, so these (and only
these) feed the screens from the fixed catalogue double in tests/support/tui.py; the pilot tests run the same
screens against a real store. Update with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from kitmlflow_tui.core.errors import ServerUnreachableError
from kitmlflow_tui.core.reference import BrowseRef, RunRef
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.core.selection.profiles import Profile, save_profile
from tests.support.tui import (
    BASELINE,
    FixedBackend,
    blocked_connector,
    failing_connector,
    fixed_app,
    wait_for,
)

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
RUN = RunRef("http://mlflow.example.com", BASELINE.run_id, "1")
Before = Callable[[Pilot], Awaitable[None]]


def screen_named(name: str) -> Before:
    async def before(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == name, what=name)
        await pilot.pause(0.2)

    return before


def then(first: Before, *keys: str, settle: Callable[[Pilot], bool] | None = None) -> Before:
    async def before(pilot: Pilot) -> None:
        await first(pilot)
        await pilot.press(*keys)
        if settle is not None:
            await wait_for(pilot, lambda: settle(pilot))
        await pilot.pause(0.2)

    return before


def artifacts_listed(pilot: Pilot) -> bool:
    browser = getattr(pilot.app.screen, "browser", None)
    return browser is not None and browser.listed


async def artifacts_ready(pilot: Pilot) -> None:
    await wait_for(pilot, lambda: artifacts_listed(pilot), what="the artifact tree")
    # Open checkpoints/ and untick two of its files.
    await pilot.press("down", "down", "enter", "down", "down", "space", "down", "space")
    await pilot.pause(0.2)


def review_ready(pilot: Pilot) -> bool:
    return getattr(pilot.app.screen, "kitfile", None) is not None


async def review(pilot: Pilot) -> None:
    await artifacts_ready(pilot)
    await pilot.press("c")
    await wait_for(pilot, lambda: review_ready(pilot), what="the Kitfile preview")
    await pilot.pause(0.2)


@SIZES
def test_connecting(snap_compare, size, held_connection) -> None:
    app = fixed_app(connector=blocked_connector(held_connection), release_on_exit=held_connection)
    assert snap_compare(app, terminal_size=size, run_before=screen_named("ConnectScreen"))


@SIZES
def test_connect_error(snap_compare, size) -> None:
    error = ServerUnreachableError(
        "Cannot connect to the tracking server http://mlflow.example.com (Connection refused).",
        hint="Is the server running on that host and port?",
    )
    app = fixed_app(connector=failing_connector(error))

    async def before(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.last_error is not None)  # type: ignore[attr-defined]
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_experiments(snap_compare, size) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=screen_named("ExperimentsScreen"))


@SIZES
def test_experiments_filtered(snap_compare, size) -> None:
    before = then(
        screen_named("ExperimentsScreen"),
        *"image",
        "down",
        settle=lambda pilot: pilot.app.screen.shown == pilot.app.screen.shown[:2],
    )
    assert snap_compare(fixed_app(), terminal_size=size, run_before=before)


@SIZES
def test_runs(snap_compare, size) -> None:
    app = fixed_app(BrowseRef("http://mlflow.example.com", "1"))
    assert snap_compare(app, terminal_size=size, run_before=screen_named("RunsScreen"))


@SIZES
def test_runs_finished_row(snap_compare, size) -> None:
    app = fixed_app(BrowseRef("http://mlflow.example.com", "1"))
    before = then(screen_named("RunsScreen"), "down", "down", "down", "down")
    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_runs_bad_filter(snap_compare, size) -> None:
    app = fixed_app(BrowseRef("http://mlflow.example.com", "1"))
    before = then(
        screen_named("RunsScreen"),
        "slash",
        *"bogus",
        "enter",
        settle=lambda pilot: pilot.app.screen.query_one("#filter-error").display,
    )
    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_artifacts(snap_compare, size) -> None:
    assert snap_compare(fixed_app(RUN), terminal_size=size, run_before=artifacts_ready)


@SIZES
def test_glob_preview(snap_compare, size) -> None:
    async def before(pilot: Pilot) -> None:
        await artifacts_ready(pilot)
        await pilot.press("slash", *"*.pt")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "GlobScreen", what="the glob dialog")
        await pilot.pause(0.2)

    assert snap_compare(fixed_app(RUN), terminal_size=size, run_before=before)


@SIZES
def test_profiles(snap_compare, size, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A config folder of this run only (a stray profile would change the picture); the dialog shows it
    # under the home folder, as ~/.config/kitmlflow/profiles, so the picture does not depend on where.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    for name, spec in (
        ("weights-only", FilterSpec(include=("model/",))),
        ("no-checkpoints", FilterSpec(exclude=("checkpoints/",))),
    ):
        save_profile(Profile(name, spec))

    async def before(pilot: Pilot) -> None:
        await artifacts_ready(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ProfileScreen")
        await pilot.pause(0.2)

    assert snap_compare(fixed_app(RUN), terminal_size=size, run_before=before)


@SIZES
def test_review(snap_compare, size) -> None:
    assert snap_compare(fixed_app(RUN, tag="resnet18-baseline:v1"), terminal_size=size, run_before=review)


@SIZES
def test_review_signed_modelpack(snap_compare, size, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A push signed with a key that opens, as a ModelPack. The key is fixed (its id is in the picture) and named
    relative to the working folder (so is the path in the command)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "sign.pem").write_bytes(pem)
    monkeypatch.chdir(tmp_path)

    async def before(pilot: Pilot) -> None:
        await review(pilot)
        await pilot.press("tab", *"registry.example.com/ml/resnet18:v1", "tab", *"sign.pem", "tab")
        await pilot.press("enter", "down", "enter")  # Format: modelpack
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#sign-status").info is not None, what="the key")
        await wait_for(pilot, lambda: pilot.app.screen.artifact_format() == "modelpack", what="the format")
        pilot.app.screen.query_one("#field-tag").focus()
        await pilot.pause(0.3)

    assert snap_compare(fixed_app(RUN, tag="resnet18-baseline:v1"), terminal_size=size, run_before=before)


@SIZES
def test_import_in_progress(snap_compare, size) -> None:
    app = fixed_app(RUN, backend=FixedBackend(import_blocks=True), tag="resnet18-baseline:v1")

    async def before(pilot: Pilot) -> None:
        await review(pilot)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "shown_steps", 0) >= 2, what="import steps")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_import_cancel_confirm(snap_compare, size) -> None:
    app = fixed_app(RUN, backend=FixedBackend(import_blocks=True), tag="resnet18-baseline:v1")

    async def before(pilot: Pilot) -> None:
        await review(pilot)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "shown_steps", 0) >= 2, what="import steps")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmScreen", what="the confirm")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=before)


@SIZES
def test_done(snap_compare, size) -> None:
    app = fixed_app(RUN, tag="resnet18-baseline:v1")

    async def before(pilot: Pilot) -> None:
        await review(pilot)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "DoneScreen", what="the done screen")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=before)
