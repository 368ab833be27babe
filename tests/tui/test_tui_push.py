"""The wizard's push (issue 13): "Push to" on the review, push progress, the pushed reference on the done
screen, a refused push kept local with a retry. Against the demo MLflow store and a real registry
(Debian's ``docker-registry``, started by tests/support/registry_servers.py on 127.0.0.1)."""

from __future__ import annotations

import pytest
import requests
from textual.widgets import Input

from kitmlflow_tui.core.reference import RunRef
from kitmlflow_tui.tui.app import KitmlflowApp
from kitmlflow_tui.tui.widgets.push_status import PushStatus
from kitmlflow_tui.tui.widgets.sign_status import SignStatus
from tests.support.attest_tools import cosign_missing, cosign_verify_attestation, pem_key_pair
from tests.support.cli import run_cli
from tests.support.registry_servers import module_registry, registry_available
from tests.support.tui import screen_text, shows, wait_for

pytestmark = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory):
    yield from module_registry(tmp_path_factory, "tui-open-registry")


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory):
    yield from module_registry(tmp_path_factory, "tui-locked-registry", users={"alice": "s3cret-Pa55word!"})


def finished_run_app(demo_store, tag: str) -> KitmlflowApp:
    return KitmlflowApp(
        RunRef(None, demo_store.runs["finished"]),
        tracking_uri_flag=demo_store.tracking_uri,
        tag=tag,
        cursor_blink=False,
    )


def on(app: KitmlflowApp, name: str) -> bool:
    return type(app.screen).__name__ == name


async def to_review_with_push(pilot, app: KitmlflowApp, target: str) -> None:
    browser = lambda: getattr(app.screen, "browser", None)  # noqa: E731
    await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and browser() is not None and browser().listed)
    await pilot.press("c")
    await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
    field = app.screen.query_one("#field-push_to", Input)
    field.focus()
    await pilot.pause()
    await pilot.press(*target)
    await wait_for(pilot, lambda: field.value == target)


async def test_push_to_on_the_review_pushes_and_the_done_screen_names_the_pushed_reference(
    isolated_env, demo_store, open_registry
) -> None:
    target = f"{open_registry.host}/demo/resnet:v1"
    app = finished_run_app(demo_store, "resnet:v1")
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review_with_push(pilot, app, target)
        await shows(pilot, "No login stored for")  # loopback http needs none here
        assert "--push" in app.screen.command_line() and f"-t {target}" in app.screen.command_line()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen")
        text = screen_text(app)
        assert "pushed" in text and target in text
        pushed = app.screen.result.pushed
        assert pushed is not None and pushed.reference == target
        assert f"kit pull {target}" in text
        # kit reaches a loopback registry over HTTP only when told (the push found it plain HTTP): every kit command
        # that talks to it says so, as the CLI's do; those on local storage need nothing.
        commands, _notes = app.screen.next_commands()
        assert ["kit", "pull", target, "--plain-http"] in commands
        assert all(words[1] in ("list", "unpack") and "--plain-http" not in words for words in commands[:2])
        assert f"kit pull {target} --plain-http" in text
    answer = requests.get(
        f"http://{open_registry.host}/v2/demo/resnet/manifests/v1", headers={"Accept": MANIFEST}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.headers["Docker-Content-Digest"] == pushed.digest


async def test_a_refused_push_keeps_the_modelkit_and_names_the_login_then_retries(
    isolated_env, demo_store, locked_registry
) -> None:
    target = f"{locked_registry.host}/demo/locked:v1"
    app = finished_run_app(demo_store, "locked:v1")
    async with app.run_test(size=(120, 36)) as pilot:
        await to_review_with_push(pilot, app, target)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "ImportScreen") and not app.screen.running, timeout=180)
        text = screen_text(app)
        assert "kitmlflow login" in text
        assert "s3cret" not in text
        assert "is kept in local storage" in text and "r retry the push" in text
        assert app.screen.outcome.exit_code == 3
        # Log in as `kitmlflow login` does (kit's credential store), then r: only the push runs again.
        from kitmlflow_tui.core.registry import Credential, CredentialStore

        CredentialStore.default().put(locked_registry.host, Credential("alice", "s3cret-Pa55word!"))
        await pilot.press("r")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen after the retry")
        assert app.screen.result.pushed is not None and app.screen.result.pushed.reference == target


async def test_the_done_screen_pushes_what_was_just_packed(isolated_env, demo_store, open_registry) -> None:
    """Issue 22, item 19: after an import to local storage only, p and a "Push to" on the done screen push that
    ModelKit (only the push runs, in the import child process); a bad reference is refused where it is typed."""
    target = f"{open_registry.host}/demo/after:v1"
    app = finished_run_app(demo_store, "after:v1")
    async with app.run_test(size=(80, 24)) as pilot:
        browser = lambda: getattr(app.screen, "browser", None)  # noqa: E731
        await wait_for(pilot, lambda: on(app, "ArtifactsScreen") and browser() is not None and browser().listed)
        await pilot.press("c")
        await wait_for(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None, what="the review")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen")
        packed = app.screen.result
        assert packed.pushed is None
        await pilot.press("p", *"Bad Ref!", "enter")
        error = app.screen.query_one(PushStatus).error
        assert on(app, "DoneScreen") and error is not None  # refused, nothing pushed
        await shows(pilot, error.message[:30])
        await pilot.press("ctrl+u", *target)
        await shows(pilot, "No login stored for")  # the status the review's Push to gives
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(app, "ImportScreen"), what="the push")
        assert app.screen.packed is packed  # only the push runs: the ModelKit packed before
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen after the push")
        pushed = app.screen.result.pushed
        assert pushed is not None and pushed.reference == target
        assert app.screen.result.digest == packed.digest
        text = screen_text(app)
        assert f"kit pull {target}" in text and "pushed" in text
    answer = requests.get(
        f"http://{open_registry.host}/v2/demo/after/manifests/v1", headers={"Accept": MANIFEST}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.headers["Docker-Content-Digest"] == pushed.digest == packed.digest


def verify_words(app: KitmlflowApp) -> list[str]:
    commands, _notes = app.screen.next_commands()
    (words,) = [words for words in commands if words[:2] == ["kitmlflow", "verify"]]
    return words


async def test_a_signed_push_carries_its_attestation_and_the_done_screen_says_how_to_verify_it(
    isolated_env, demo_store, open_registry, tmp_path, monkeypatch
) -> None:
    """Sign with: the key (its password from the environment) signs the pushed ModelKit's provenance; the done
    screen names the attestation and the verify command, with the public key found beside the signing key, which
    `kitmlflow verify` (and cosign, when installed) accepts."""
    private, public = pem_key_pair(tmp_path / "keys", "Push-Key-Pa55!")
    monkeypatch.setenv("KITMLFLOW_SIGN_KEY_PASSWORD", "Push-Key-Pa55!")
    target = f"{open_registry.host}/demo/signed:v1"
    app = finished_run_app(demo_store, "signed:v1")
    async with app.run_test(size=(100, 36)) as pilot:
        await to_review_with_push(pilot, app, target)
        field = app.screen.query_one("#field-sign_key", Input)
        field.focus()
        await pilot.press(*str(private))
        status = app.screen.query_one(SignStatus)
        await wait_for(pilot, lambda: status.info is not None, what="the key checked")
        assert f"--sign-key {private}" in app.screen.command_line()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen")
        attestation = app.screen.result.attestation
        assert attestation is not None and attestation.attached and attestation.key.key_id == status.info.key_id
        await shows(pilot, "signed SLSA provenance")
        await wait_for(pilot, lambda: app.screen.public_key == public, what="the public key beside the key")
        words = verify_words(app)
        assert words == ["kitmlflow", "verify", target, "--key", str(public)]
        await shows(pilot, f"kitmlflow verify {target} --key")
        assert "Push-Key-Pa55!" not in screen_text(app)
        pushed = app.screen.result.pushed
    verified = run_cli(*words[1:], "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json["verified"] is True and verified.json["digest"] == pushed.digest
    if cosign_missing() is None:
        assert cosign_verify_attestation(target, public).code == 0


async def test_a_signed_push_refused_then_retried_attaches_the_attestation(
    isolated_env, demo_store, locked_registry, tmp_path, monkeypatch
) -> None:
    """r after a refused push runs only the push, and still signs: the attestation is made from the digests the
    import took and attached once the push went through."""
    private, public = pem_key_pair(tmp_path / "keys")
    target = f"{locked_registry.host}/demo/signed-retry:v1"
    app = finished_run_app(demo_store, "signed-retry:v1")
    async with app.run_test(size=(120, 36)) as pilot:
        await to_review_with_push(pilot, app, target)
        app.screen.query_one("#field-sign_key", Input).focus()
        await pilot.press(*str(private))
        await wait_for(pilot, lambda: app.screen.query_one(SignStatus).info is not None, what="the key checked")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: on(app, "ImportScreen") and not app.screen.running, timeout=180)
        assert app.screen.outcome.exit_code == 3 and app.screen.push_failed()
        from kitmlflow_tui.core.registry import Credential, CredentialStore

        CredentialStore.default().put(locked_registry.host, Credential("alice", "s3cret-Pa55word!"))
        await pilot.press("r")
        await wait_for(pilot, lambda: on(app, "DoneScreen"), timeout=180, what="the done screen after the retry")
        result = app.screen.result
        assert result.pushed is not None and result.attestation is not None and result.attestation.attached
        await wait_for(pilot, lambda: app.screen.public_key == public, what="the public key beside the key")
        words = verify_words(app)
    verified = run_cli(*words[1:], "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json["digest"] == result.pushed.digest
