"""Secrets, tested where they travel.

The scrubber (``errors.scrub_secrets``, the last filter before any message is printed) directly, then end
to end: a hostile server that echoes the Authorization header it received, and the password it decodes
from it, into its error bodies; whatever kitmlflow does with those errors, the secret appears in none of
stdout, stderr (MLflow's own logging included), the --json document, the files it writes (cache, kit
storage: the ModelKit's blobs, manifest and config) or the wizard's screen."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kitmlflow_tui.core.errors import register_secret, scrub_secrets
from tests.support.cli import kitmlflow_subprocess_env
from tests.support.hostile_server import Content, Scenario, file, hostile_server
from tests.support.tui import screen_text, wait_for

# -- the scrubber ------------------------------------------------------------------------------------------
# Every variable holding a secret that MLflow (its tracking client and the artifact stores' SDKs it calls)
# or kitmlflow reads. Named here one by one, so that dropping one from the scrubber fails a test.
SECRET_ENV_VARS = [
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "MLFLOW_S3_UPLOAD_EXTRA_ARGS",
    "KITMLFLOW_SIGN_KEY_PASSWORD",
    "COSIGN_PASSWORD",
]


@pytest.mark.parametrize("name", SECRET_ENV_VARS)
def test_a_secret_from_each_variable_is_masked(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"v4lue-of-{name.lower()}"
    monkeypatch.setenv(name, value)
    text = f"request failed: {{'header': '{value}'}} and again {value}."
    assert scrub_secrets(text) == "request failed: {'header': '***'} and again ***."


def test_a_registry_password_registered_at_login_is_masked() -> None:
    """Registry credentials come from kit's credential store, not the environment: they are registered."""
    register_secret("registry-pw-7f3a9c")
    assert (
        scrub_secrets("401 from registry for user bob / registry-pw-7f3a9c") == "401 from registry for user bob / ***"
    )


def test_several_secrets_at_once_and_a_secret_inside_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "AKIA-secret-key")
    assert scrub_secrets("a hunter2hunter2 b AKIA-secret-key c") == "a *** b *** c"


def test_short_values_are_not_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3-character "secret" would mask every "abc" in a message; such values are too short to be one."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "abc")
    assert scrub_secrets("abcdef") == "abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pw@host/x", "https://***@host/x"),
        ("git clone https://bob:gh_pat_123@github.com/o/r.git", "git clone https://***@github.com/o/r.git"),
        ("postgresql://admin:P4ss%21@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        ("s3://AKIAX:SeCrEt@bucket/key", "s3://***@bucket/key"),
        ("no credentials in https://host/path", "no credentials in https://host/path"),
        ("mail me: user@example.com", "mail me: user@example.com"),
    ],
)
def test_user_info_in_urls_is_masked(text: str, expected: str) -> None:
    assert scrub_secrets(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A token alone as the user (how GitHub tokens go into clone URLs)
        ("https://ghp_R4nd0mT0kenR4nd0mT0kenR4nd0mT0ken12@github.com/o/r", "https://***@github.com/o/r"),
        ("https://0123456789abcdef0123456789abcdef01234567@github.com/o/r", "https://***@github.com/o/r"),
        ("https://u:p@ss@host/x", "https://***@host/x"),  # a password holding an @
        ("host=db user=admin password=hunter2 dbname=x", "host=db user=admin password=*** dbname=x"),
        ("Server=db;Uid=sa;Pwd=Hunter2!;", "Server=db;Uid=sa;Pwd=***;"),
        ("--password='two words' --lr 0.1", "--password='***' --lr 0.1"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=9f",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        (
            "https://a.blob.core.windows.net/c/b?sv=2022&sig=abc%3D&se=2026",
            "https://a.blob.core.windows.net/c/b?sv=2022&sig=***&se=2026",
        ),
        ("https://api.example.com/v1?api_key=k-123&page=2", "https://api.example.com/v1?api_key=***&page=2"),
        ('{"client_secret": "s3cr3t", "lr": "0.1"}', '{"client_secret": "***", "lr": "0.1"}'),
        ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "***"),
        # ... and what only looks like it stays
        ("monkey=banana keyboard=qwerty learning_rate=0.1", "monkey=banana keyboard=qwerty learning_rate=0.1"),
        ("https://host/path?email=a@b.com", "https://host/path?email=a@b.com"),
        ("wasbs://container@account.blob.core.windows.net/p", "wasbs://container@account.blob.core.windows.net/p"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("the token is needed; set a password", "the token is needed; set a password"),
    ],
)
def test_secret_shaped_values_are_masked(text: str, expected: str) -> None:
    assert scrub_secrets(text) == expected


BASIC = base64.b64encode(b"alice:correct horse battery").decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.J9.sig-_x", "Authorization: Bearer ***"),
        (f"authorization={{'Basic {BASIC}'}}", "authorization={'Basic ***'}"),
        (f'{{"Authorization": "Basic {BASIC}"}}', '{"Authorization": "Basic ***"}'),
        # A server that repeats the header's value without its name (as the hostile one below does)
        (f"access denied for Basic {BASIC}", "access denied for Basic ***"),
        ("access denied for Bearer tok-8f7e6d5c4b3a", "access denied for Bearer ***"),
        # ... but prose is not a credential
        (
            "Basic authentication failed; a Bearer token is needed",
            "Basic authentication failed; a Bearer token is needed",
        ),
    ],
)
def test_authorization_values_are_masked(text: str, expected: str) -> None:
    assert scrub_secrets(text) == expected


def test_the_basic_credentials_of_the_tracking_user_are_masked_however_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Authorization header MLflow sends is base64 of user:password: that is a secret too."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "correct horse battery")
    assert scrub_secrets(f"header {BASIC}, decoded alice:correct horse battery") == "header ***, decoded alice:***"


# -- end to end: a server that echoes the credentials ------------------------------------------------------
PASSWORD = "pw-Zq7-very-secret-1234"
TOKEN = "tok-9f8e7d6c5b4a39281706"
CREDENTIALS = {
    "basic": {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD},
    "token": {"MLFLOW_TRACKING_TOKEN": TOKEN},
}


def forbidden(kind: str) -> list[str]:
    """The strings that must never appear: the secret, and the header that carries it."""
    if kind == "basic":
        encoded = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        return [PASSWORD, encoded, encoded[:16]]
    return [TOKEN, TOKEN[:12]]


def leaks(kind: str, *texts: str) -> list[str]:
    return [secret for secret in forbidden(kind) for text in texts if secret in text]


def files_with_leaks(kind: str, root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in forbidden(kind) if s.encode() in data]
    return found


def run_kitmlflow(kind: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = kitmlflow_subprocess_env(
        KITOPS_HOME=str(tmp_path / "kitops"),
        KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        **CREDENTIALS[kind],
    )
    command = [sys.executable, "-m", "kitmlflow_tui.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


FILES = {"model.bin": b"weights" * 100, "README.md": b"# echo\n"}


def echo_scenario(route: str, status: int, times: int | None = None) -> Scenario:
    listing = [file(name, len(data)) for name, data in FILES.items()]
    return Scenario(
        listing=lambda d: listing if d == "" else [],
        contents={name: Content(data) for name, data in FILES.items()},
        echo_on=(route,),
        echo_status=status,
        echo_times=times,
    )


ECHOES = {
    # case: (route, status, exit code). 4xx bodies reach the message (MLflow's retry layer keeps 5xx ones).
    "run-401": ("run", 401, 3),
    "run-403": ("run", 403, 3),
    "listing-403": ("list", 403, 3),
    "download-401": ("download", 401, 3),
    "download-403": ("download", 403, 3),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
@pytest.mark.parametrize("case", sorted(ECHOES))
def test_a_server_echoing_the_credentials_leaks_nothing(case: str, kind: str, tmp_path: Path) -> None:
    route, status, code = ECHOES[case]
    with hostile_server(echo_scenario(route, status)) as server:
        done = run_kitmlflow(kind, tmp_path, "download", server.uri(), "--dest", str(tmp_path / "d"), "--yes", "--json")
        echoed, received = dict(server.echoed), set(server.authorizations)
    assert received and echoed.get(route), "the server received the credentials and echoed them back"
    assert done.returncode == code, done.stderr
    assert "access denied for" in done.stderr and "access denied for" in done.stdout  # its words, masked
    assert leaks(kind, done.stdout, done.stderr) == [], done.stderr
    assert files_with_leaks(kind, tmp_path) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_an_import_after_an_echoed_error_packs_no_secret(kind: str, tmp_path: Path) -> None:
    """The logged-models search fails with the credentials in the body (404 ENDPOINT_NOT_FOUND: an older
    server, tolerated); the import goes on, so there is a ModelKit (blobs, manifest, config), a cache and
    a --json document to search."""
    with hostile_server(echo_scenario("models", 404)) as server:
        done = run_kitmlflow(
            kind, tmp_path, "import", server.uri(), "-t", "echo:v1", "--yes", "--json", "--packer", "native"
        )
        echoed = dict(server.echoed)
    assert echoed == {"models": 1}
    assert done.returncode == 0, done.stderr
    assert '"digest": "sha256:' in done.stdout
    assert leaks(kind, done.stdout, done.stderr) == []
    blobs = [b for b in (tmp_path / "kitops" / "storage" / "blobs").rglob("*") if b.is_file()]
    assert len(blobs) >= 3  # config, manifest, at least one layer
    assert files_with_leaks(kind, tmp_path) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
async def test_the_wizard_shows_the_error_without_the_secret(
    kind: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.tui.app import KitmlflowApp

    for name, value in CREDENTIALS[kind].items():
        monkeypatch.setenv(name, value)
    with hostile_server(echo_scenario("run", 403)) as server:
        app = KitmlflowApp(parse_reference(server.uri()), cursor_blink=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: "permission" in screen_text(app).lower(), what="the error")
            shown = screen_text(app)
        echoed = dict(server.echoed)
    assert echoed.get("run")
    assert "access denied for" in shown  # the server's own words are shown ...
    assert leaks(kind, shown) == [], shown  # ... without what it repeated


# -- credentials inside the run: its params, tags, source and note are published with the ModelKit ----------
RUN_SECRETS = ["DbPass-4f7a", "GitPass-8c2e", "tok-q1w2e3r4t5", "NotePass-3d9b", "ApiKey-77aa", "RunPass-5e1f"]
RUN_PARAMS = {
    "db_uri": "postgres://admin:DbPass-4f7a@db.internal/x",
    "feature_service": "https://features.example.com/v1?token=tok-q1w2e3r4t5&region=eu",
    "learning_rate": "1e-05",
}
RUN_TAGS = {
    "mlflow.source.name": "https://ci:GitPass-8c2e@git.example.com/team/repo.git",
    "mlflow.note.content": "Trained against db with password=NotePass-3d9b",
    "service": '{"api_key": "ApiKey-77aa", "host": "svc"}',
    "team": "vision",
}


@pytest.mark.timeout(300)
def test_credentials_in_params_tags_and_source_reach_no_output_nor_the_modelkit(live, tmp_path: Path) -> None:
    from tests.support.servers import seed_run

    exp, run_id = seed_run(
        live.url,
        experiment_name="run-secrets",
        files={"model/MLmodel": b"flavors: {}\n", "model/model.pkl": b"w" * 50},
        params=RUN_PARAMS,
        tags=RUN_TAGS,
        run_name="nightly from https://bot:RunPass-5e1f@ci.example.com/job/7",
    )
    uri = f"mlflow://{live.host}/experiments/{exp}/runs/{run_id}"
    env = kitmlflow_subprocess_env(
        KITOPS_HOME=str(tmp_path / "kitops"),
        KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    command = [sys.executable, "-m", "kitmlflow_tui.cli", "import", uri, "-t", "secrets:v1", "--yes", "--json"]
    done = subprocess.run([*command, "--packer", "native"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert [s for s in RUN_SECRETS if s in done.stdout or s in done.stderr] == []
    stored = [p for p in (tmp_path / "kitops").rglob("*") if p.is_file()]
    assert len(stored) >= 3
    assert [f"{p}: {s}" for p in stored for s in RUN_SECRETS if s.encode() in p.read_bytes()] == []

    provenance = json.loads(done.stdout)["kitfile"]["model"]["parameters"]["mlflow"]
    assert provenance["params"]["db_uri"] == "postgres://***@db.internal/x"
    assert provenance["params"]["feature_service"] == "https://features.example.com/v1?token=***&region=eu"
    assert provenance["params"]["learning_rate"] == "1e-05"  # the rest as logged
    assert provenance["source"]["name"] == "https://***@git.example.com/team/repo.git"
    assert provenance["tags"]["service"] == '{"api_key": "***", "host": "svc"}'
    assert provenance["masked"]["fields"] == [
        "run.name", "source.name", "params.db_uri", "params.feature_service", "tags.service", "package.description",
    ]  # fmt: skip
    assert json.loads(done.stdout)["run"]["run_name"] == "nightly from https://***@ci.example.com/job/7"
    assert "replaced with ***" in provenance["masked"]["note"]
