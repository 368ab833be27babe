"""The review's delivery choices against the demo store: the format (a ModelKit or a CNCF ModelPack) and the key
that signs what is pushed ("Sign with", checked without signing). The signed push itself: test_tui_push.py."""

from __future__ import annotations

import json
import shlex

import pytest
from textual.widgets import Input, Select

from kitmlflow_tui.core.reference import RunRef
from kitmlflow_tui.tui.app import KitmlflowApp
from kitmlflow_tui.tui.widgets.sign_status import SignStatus
from tests.support.attest_tools import cosign_generate_key_pair, cosign_missing, pem_key_pair
from tests.support.cli import run_cli
from tests.support.tui import notifications, screen_text, shows, wait_for

KEY_PASSWORD = "Wizard-Key-Pa55!"


def app_for(store, **options) -> KitmlflowApp:
    return KitmlflowApp(
        RunRef(None, store.runs["finished"]), tracking_uri_flag=store.tracking_uri, cursor_blink=False, **options
    )


def on(app: KitmlflowApp, name: str) -> bool:
    return type(app.screen).__name__ == name


async def to_review(pilot, app: KitmlflowApp) -> None:
    browser = lambda: getattr(app.screen, "browser", None)  # noqa: E731
    await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and browser() is not None and browser().listed)
    await pilot.press("c")
    await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")


async def choose_modelpack(pilot, app: KitmlflowApp) -> None:
    """From the "Sign with" field: tab to "Format", open it, take the next format."""
    app.screen.query_one("#field-sign_key", Input).focus()
    await pilot.press("tab")
    assert app.focused is app.screen.query_one("#field-format", Select)
    await pilot.press("enter", "down", "enter")
    await wait_for(pilot, lambda: app.screen.artifact_format() == "modelpack", what="modelpack chosen")


async def type_into(pilot, app: KitmlflowApp, field_id: str, text: str) -> None:
    field = app.screen.query_one(f"#{field_id}", Input)
    field.focus()
    await pilot.press("ctrl+u", *text)
    await wait_for(pilot, lambda: field.value == text)


def sign_status(app: KitmlflowApp) -> SignStatus:
    return app.screen.query_one(SignStatus)


@pytest.mark.slow
async def test_a_modelpack_chosen_on_the_review_is_what_its_headless_twin_writes(isolated_env, demo_store) -> None:
    """Format: modelpack goes into the import and into the command as --format modelpack; the Kitfile preview is the
    same; the review and the done screen say a ModelPack; the pasted command gives the same digest."""
    app = app_for(demo_store, tag="wizard-pack:v1")
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review(pilot, app)
        await shows(pilot, "Writes a KitOps ModelKit")
        assert "--format" not in app.screen.command_line()
        kitfile = app.screen.kitfile
        await choose_modelpack(pilot, app)
        await shows(pilot, "Writes a CNCF ModelPack")
        assert app.screen.kitfile == kitfile  # one Kitfile for both formats: no new preview
        command = app.screen.command_line()
        assert "--format modelpack" in command
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the import")
        wizard = app.screen.result
        await shows(pilot, "ModelPack ready")
        assert "kit 1.10 or later" in screen_text(app)
    words = shlex.split(command)
    headless = run_cli(*words[1:], "--json")
    assert headless.code == 0, headless.stderr
    assert headless.json["digest"] == wizard.digest
    from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
    from kitmlflow_tui.core.registry.local import read_local_modelkit

    stored = read_local_modelkit(parse_modelkit_reference("wizard-pack:v1"))
    assert json.loads(stored.manifest_bytes)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"


async def test_the_format_and_the_key_survive_a_trip_back_to_the_artifacts(
    isolated_env, demo_store, tmp_path, monkeypatch
) -> None:
    private, _public = pem_key_pair(tmp_path / "keys")
    app = app_for(demo_store, tag="trip-pack:v1")
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review(pilot, app)
        await type_into(pilot, app, "field-push_to", "registry.example.com/ml/trip:v1")
        await type_into(pilot, app, "field-sign_key", str(private))
        await choose_modelpack(pilot, app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen"))
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None)
        assert app.screen.artifact_format() == "modelpack"
        assert app.screen.value("sign_key") == str(private)
        await wait_for(pilot, lambda: sign_status(app).info is not None, what="the key checked again")
        words = shlex.split(app.screen.command_line())
        assert words[words.index("--format") + 1] == "modelpack"
        assert words[words.index("--sign-key") + 1] == str(private)


async def test_sign_with_says_whether_the_key_opens_and_never_shows_its_password(
    isolated_env, demo_store, tmp_path, monkeypatch
) -> None:
    """The key is checked as the import would open it, its password from KITMLFLOW_SIGN_KEY_PASSWORD (never typed):
    key ok, cannot be read, wrong password; a key that does not open stops the import before it starts; without a
    "Push to" the key signs nothing and the command has no --sign-key."""
    private, _public = pem_key_pair(tmp_path / "keys", KEY_PASSWORD)
    monkeypatch.setenv("KITMLFLOW_SIGN_KEY", str(private))  # pre-fills the field
    monkeypatch.setenv("KITMLFLOW_SIGN_KEY_PASSWORD", "not-the-password")
    app = app_for(demo_store, tag="signed:v1")
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review(pilot, app)
        assert app.screen.value("sign_key") == str(private)
        await shows(pilot, "Not used without a Push to")
        assert "--sign-key" not in app.screen.command_line()
        await wait_for(pilot, lambda: sign_status(app).error is not None, what="the key refused")
        assert "does not open the signing key" in sign_status(app).error.message
        await type_into(pilot, app, "field-push_to", "registry.example.com/ml/signed:v1")
        assert "Not used without a Push to" not in screen_text(app)
        await pilot.press("ctrl+g")
        assert on(app, "ReviewScreen")
        assert any("does not open the signing key" in note for note in notifications(app))

        monkeypatch.setenv("KITMLFLOW_SIGN_KEY_PASSWORD", KEY_PASSWORD)
        await type_into(pilot, app, "field-sign_key", str(tmp_path / "keys" / "missing.pem"))
        await wait_for(pilot, lambda: sign_status(app).error is not None, what="a missing key refused")
        assert "Cannot read the signing key" in sign_status(app).error.message
        await type_into(pilot, app, "field-sign_key", str(private))
        await wait_for(pilot, lambda: sign_status(app).info is not None, what="the key opened")
        await shows(pilot, "Sign with sign.pem ✓ ecdsa-p256-sha256")
        words = shlex.split(app.screen.command_line())
        assert words[words.index("--sign-key") + 1] == str(private)
        text = screen_text(app)
        assert KEY_PASSWORD not in text and "not-the-password" not in text


@pytest.mark.skipif(cosign_missing() is not None, reason=cosign_missing() or "")
async def test_a_cosign_key_opens_with_cosign_password(isolated_env, demo_store, tmp_path, monkeypatch) -> None:
    key, _public = cosign_generate_key_pair(tmp_path / "cosign", KEY_PASSWORD)
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    app = app_for(demo_store, tag="cosigned:v1")
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review(pilot, app)
        await type_into(pilot, app, "field-push_to", "registry.example.com/ml/cosigned:v1")
        await type_into(pilot, app, "field-sign_key", str(key))
        await wait_for(pilot, lambda: sign_status(app).error is not None, what="the wrong password refused")
        assert "The password in COSIGN_PASSWORD does not open the cosign key" in sign_status(app).error.message
        monkeypatch.setenv("COSIGN_PASSWORD", KEY_PASSWORD)
        await type_into(pilot, app, "field-sign_key", "")
        await type_into(pilot, app, "field-sign_key", str(key))
        await wait_for(pilot, lambda: sign_status(app).info is not None, what="the cosign key opened")
        assert sign_status(app).info.algorithm == "ecdsa-p256-sha256"


async def test_import_without_yes_opens_the_review_with_its_format_and_key(isolated_env, demo_store, tmp_path) -> None:
    """`kitmlflow import URI -t REF --push --format modelpack --sign-key KEY` without --yes opens the wizard: its
    review starts with that format and that key (cli/importing.py passes them as these arguments)."""
    private, _public = pem_key_pair(tmp_path / "keys")
    app = app_for(
        demo_store, tag="registry.example.com/ml/preset:v1", push=True, artifact_format="modelpack", sign_key=private
    )
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review(pilot, app)
        assert app.screen.artifact_format() == "modelpack"
        await wait_for(pilot, lambda: sign_status(app).info is not None, what="the key checked")
        words = shlex.split(app.screen.command_line())
        assert words[words.index("--format") + 1] == "modelpack"
        assert words[words.index("--sign-key") + 1] == str(private)
