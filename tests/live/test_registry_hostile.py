"""Registries that lie, leak, stall or sit behind a broken proxy: credentials stay where they belong, every answer
is bounded in size and time, and a cancel closes the connection at once.

A real ``docker-registry`` stands behind ``tests/support/hostile_registry.py`` (a TLS-terminating front, a
redirecting front, a host that challenges on its own); what each server received is in its ``seen`` list and
in the registry's access log. Rows 39, 40, 41, 44, 46 and 47 of docs/reliability.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import requests

from kitmlflow_tui.core.errors import KitmlflowError, PushError
from kitmlflow_tui.core.registry import Credential, RegistryClient, RegistryOptions, StoredCredential
from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.hostile_registry import (
    HostileRegistry,
    RegistryScenario,
    Reply,
    Seen,
    hostile_registry,
    is_upload,
    moved_to,
)
from tests.support.live import LiveServer
from tests.support.registry_servers import Registry, make_pki, module_registry, registry_available

PASSWORD = "Pa55 w/rd+!&=x"  # every character class that percent- and base64-encodings change
USERS = {"alice": PASSWORD}
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "hostile-basic", users=USERS)


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "hostile-open")


@pytest.fixture
def isolated(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_env / "docker"))
    for name in ("KITOPS_CLIENT_CERT", "KITOPS_CLIENT_KEY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return isolated_env


def login(host: str, *extra: str, password: str = PASSWORD):
    from click.testing import CliRunner

    from kitmlflow_tui.cli import cli

    result = CliRunner().invoke(cli, ["login", host, "-u", "alice", "--password-stdin", *extra], input=password + "\n")
    return result.exit_code, result.stdout + result.stderr


def client_for(host: str, **options) -> RegistryClient:
    client = RegistryClient(host, RegistryOptions(**options), StoredCredential(Credential("alice", PASSWORD), "test"))
    client.ping()
    return client


def put_blob(registry: Registry, repository: str, data: bytes) -> str:
    """A blob in the real registry, uploaded by the test itself (one POST, one PUT)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    session = requests.Session()
    session.trust_env = False
    session.auth = ("alice", PASSWORD)
    started = session.post(f"{registry.url}/v2/{repository}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    done = session.put(started.headers["Location"], params={"digest": digest}, data=data, timeout=30)
    assert done.status_code == 201, done.text
    return digest


# -- credentials go to the registry's own origin only ----------------------------------------------------------
@needs_registry
@pytest.mark.timeout(300)
def test_an_https_registry_never_sends_an_upload_to_plain_http(
    live: LiveServer, basic_registry: Registry, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TLS-terminating proxy in front of a registry that was not told so (no X-Forwarded-Proto): the registry
    # builds its upload Location as http://PROXY/... The blob and the Basic password would go out in clear text.
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    with hostile_registry(RegistryScenario(upstream=basic_registry, tls=pki)) as front:
        code, output = login(front.host)
        assert code == 0, output
        mark = basic_registry.mark()
        out = run_cli(
            "import", live.uri(), "-t", f"{front.host}/team/downgrade:v1", "--yes", "--json", "--packer", "native",
            "--push",
        )  # fmt: skip
    assert out.code == 9, out.stderr
    message = out.json["error"]["message"]
    assert f"http://{front.host}/" in message and "plain HTTP" in message, message
    assert "kept in local storage" in message
    assert front.plaintext() == [], "nothing went out in clear text: no blob, no password"
    assert [e for e in basic_registry.since(mark) if e[0] in ("PUT", "PATCH")] == []


@needs_registry
@pytest.mark.timeout(120)
def test_a_redirect_to_another_origin_is_followed_without_credentials_and_never_to_plain_http(
    basic_registry: Registry, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b'{"blob": "config"}'
    digest = put_blob(basic_registry, "team/redirected", data)
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    # Blob storage (another origin): it reads the real registry with credentials of its own.
    storage_scenario = RegistryScenario(upstream=basic_registry, upstream_authorization=BASIC, tls=pki)
    plain_scenario = RegistryScenario(upstream=basic_registry, upstream_authorization=BASIC)
    with hostile_registry(storage_scenario) as storage, hostile_registry(plain_scenario) as plain_storage:

        def to(base: str):
            def reply(seen: Seen) -> Reply | None:
                if seen.method == "GET" and "/blobs/sha256:" in seen.path:
                    return Reply(307, {"Location": moved_to(seen.path, base)})
                return None

            return reply

        with hostile_registry(RegistryScenario(upstream=basic_registry, tls=pki, reply=to(storage.url))) as front:
            with client_for(front.host) as client:
                assert client.get_blob("team/redirected", digest) == data
            assert any(seen.authorization == BASIC for seen in front.seen), "the registry itself gets them"
        assert [s.path for s in storage.seen] == [f"/v2/team/redirected/blobs/{digest}"]
        assert [s.authorization for s in storage.seen] == [""], "blob storage never gets the registry's credentials"

        downgrading = RegistryScenario(upstream=basic_registry, tls=pki, reply=to(plain_storage.url))
        with (
            hostile_registry(downgrading) as front,
            client_for(front.host) as client,
            pytest.raises(PushError) as refused,
        ):
            client.get_blob("team/redirected", digest)
        assert "plain HTTP" in refused.value.message and plain_storage.url in refused.value.message
        assert plain_storage.seen == [], "a redirect from HTTPS to plain HTTP is never followed"


@needs_registry
@pytest.mark.timeout(120)
def test_a_host_the_registry_sends_an_upload_to_cannot_obtain_the_credentials(
    basic_registry: Registry, isolated: Path, tmp_path: Path
) -> None:
    # The upload's Location names another host, which answers with a Bearer challenge naming a token service of
    # its own: that challenge must not replace the registry's, or the next request would send the password there.
    def elsewhere_reply(seen: Seen) -> Reply:
        if seen.path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, b'{"token": "a-token-from-elsewhere-1234"}')
        realm = f'Bearer realm="{elsewhere.url}/token",service="elsewhere"'
        return Reply(401, {"WWW-Authenticate": realm, "Content-Type": "application/json"}, b'{"errors": []}')

    with hostile_registry(RegistryScenario(reply=elsewhere_reply)) as elsewhere:
        scenario = RegistryScenario(
            upstream=basic_registry, location=lambda location: moved_to(location, elsewhere.url)
        )
        blob = tmp_path / "blob"
        blob.write_bytes(b"a layer")
        digest = "sha256:" + hashlib.sha256(b"a layer").hexdigest()
        with hostile_registry(scenario) as front, client_for(front.host, plain_http=True) as client:
            with pytest.raises(KitmlflowError) as failed:
                client.upload_blob("team/elsewhere", digest, blob.stat().st_size, blob)
            assert failed.value.exit_code == 9, failed.value.message
            assert elsewhere.host in failed.value.message
            assert client.blob_exists("team/elsewhere", digest) is False  # the next request: still the registry's Basic
    assert elsewhere.seen, "the upload went there"
    assert [s.authorization for s in elsewhere.seen] == [""] * len(elsewhere.seen), "no credential, no token request"
    assert not [s for s in elsewhere.seen if s.path.startswith("/token")]


# -- what a registry says back -----------------------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(120)
def test_the_registry_error_text_is_shown_for_every_request(basic_registry: Registry, isolated: Path) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [],
    }
    with client_for(basic_registry.host, plain_http=True) as client, pytest.raises(PushError) as refused:
        client.put_manifest("team/errors", "v1", json.dumps(manifest).encode())
    assert "MANIFEST_BLOB_UNKNOWN" in refused.value.message and "sha256:" + "0" * 64 in refused.value.message


def echo_of_the_password(seen: Seen) -> Reply:
    """A registry that repeats what it was sent in its error, in every encoding a server might use."""
    challenge = {"WWW-Authenticate": 'Basic realm="echo"', "Content-Type": "application/json"}
    if not seen.authorization:
        return Reply(401, challenge, b'{"errors": [{"code": "UNAUTHORIZED", "message": "log in"}]}')
    value = seen.authorization.split(" ", 1)[1]
    password = base64.b64decode(value).decode().partition(":")[2]
    said = (
        f"refused {quote(password, safe='')} / {quote_plus(password)} / {quote(password)} / "
        f"{base64.b64encode(password.encode()).decode()} / {base64.urlsafe_b64encode(password.encode()).decode()} / "
        f"header {quote(value, safe='')} / {base64.b64encode(seen.authorization.encode()).decode()}"
    )
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": said}]}).encode()
    return Reply(401, challenge, body)


ENCODED_SECRETS = (
    PASSWORD,
    quote(PASSWORD, safe=""),
    quote_plus(PASSWORD),
    quote(PASSWORD),
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.urlsafe_b64encode(PASSWORD.encode()).decode(),
    BASIC.split(" ", 1)[1],
    quote(BASIC.split(" ", 1)[1], safe=""),
    base64.b64encode(BASIC.encode()).decode(),
)


@pytest.mark.timeout(120)
def test_a_registry_echoing_the_password_encoded_shows_it_nowhere(isolated: Path) -> None:
    with hostile_registry(RegistryScenario(reply=echo_of_the_password)) as registry:
        code, output = login(registry.host)
    assert code == 3, output
    assert "UNAUTHORIZED" in output and "refused ***" in output, output  # the registry's words, masked
    leaked = [secret for secret in ENCODED_SECRETS if secret in output]
    assert leaked == [], f"{leaked} in {output!r}"


# -- every answer bounded in size and time ---------------------------------------------------------------------------
def endless(piece: bytes, pause: float = 0.0):
    def pieces() -> Iterator[bytes]:
        while True:
            yield piece
            if pause:
                time.sleep(pause)

    return pieces


def slow_status_line() -> Iterator[bytes]:
    """An answer that starts at once and never finishes its headers: one byte every 0.2 s."""
    text = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: a\r\n" * 10_000
    for byte in text:
        yield bytes([byte])
        time.sleep(0.2)


def token_realm(server: HostileRegistry) -> str:
    return f'Bearer realm="{server.url}/token",service="slow"'


SLOW_ANSWERS = {
    # (what the registry or its token service does) -> its reply to GET /v2/ and to GET /token
    "an endless /v2/": (
        lambda _r: Reply(200, {"Content-Type": "application/json"}, stream=endless(b"{" * 65536)),
        None,
    ),
    "a /v2/ status line that never ends": (lambda _r: Reply(raw=slow_status_line), None),
    "a /v2/ body that trickles forever": (lambda _r: Reply(200, stream=endless(b" ", 0.2)), None),
    "a token service whose status line never ends": (
        lambda r: Reply(401, {"WWW-Authenticate": token_realm(r)}),
        lambda _r: Reply(raw=slow_status_line),
    ),
    "a token service whose answer trickles forever": (
        lambda r: Reply(401, {"WWW-Authenticate": token_realm(r)}),
        lambda _r: Reply(200, stream=endless(b" ", 0.2)),
    ),
}


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a run-away read fails here, not on the machine


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(SLOW_ANSWERS))
def test_registry_answers_are_bounded_in_size_and_time(case: str, tmp_path: Path) -> None:
    ping, token = SLOW_ANSWERS[case]
    holder: list[HostileRegistry] = []

    def reply(seen: Seen) -> Reply:
        if seen.path.startswith("/token") and token is not None:
            return token(holder[0])
        return ping(holder[0])

    env = kitmlflow_subprocess_env(
        KITOPS_HOME=str(tmp_path / "kitops"),
        DOCKER_CONFIG=str(tmp_path / "docker"),
        KITMLFLOW_REGISTRY_FIRST_BYTE_SECONDS="2",
        KITMLFLOW_REGISTRY_ANSWER_SECONDS="4",
    )
    with hostile_registry(RegistryScenario(reply=reply)) as registry:
        holder.append(registry)
        done = subprocess.run(
            [sys.executable, "-m", "kitmlflow_tui.cli", "login", registry.host, "-u", "alice", "--password-stdin"],
            input=PASSWORD + "\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=90,  # the hang guard: before the bounds, each of these ran for minutes or until memory ran out
            preexec_fn=limited_memory,
        )
        assert registry.client_closed.wait(10), "kitmlflow closed the connection"
    assert done.returncode == 6, done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr
    said = done.stderr.replace("\n", " ")
    assert "larger than" in said or "within" in said, said
    assert registry.sent_bytes < 64 << 20, f"{registry.sent_bytes} bytes were read"
    assert not (tmp_path / "kitops" / "credentials.json").exists()


# -- a cancel closes the connection now --------------------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(300)
def test_sigint_during_a_stalled_upload_closes_the_connection_and_says_what_was_pushed(
    live: LiveServer, open_registry: Registry, tmp_path: Path
) -> None:
    def big_upload(seen: Seen) -> bool:
        return seen.method in ("PUT", "PATCH") and is_upload(seen) and seen.body_length >= 4_000_000

    env = kitmlflow_subprocess_env(
        KITOPS_HOME=str(tmp_path / "kitops"),
        KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"),
        DOCKER_CONFIG=str(tmp_path / "docker"),
    )
    with hostile_registry(RegistryScenario(upstream=open_registry, stall=big_upload)) as front:
        reference = f"{front.host}/team/stalled:v1"
        command = [sys.executable, "-m", "kitmlflow_tui.cli", "import", live.uri(), "-t", reference]
        command += ["--yes", "--json", "--packer", "native", "--push", "--plain-http"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert front.stalled.wait(240), proc.communicate()
            os.kill(proc.pid, signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)  # the hang guard: the registry's read timeout is 300 s
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert front.client_closed.wait(10), "the stalled connection was closed by kitmlflow"
    assert proc.returncode == 130, stderr
    error = json.loads(stdout)["error"]
    assert error["code"] == 130
    message = error["message"]
    manifest_path = next((tmp_path / "kitops" / "storage").glob("*-tags.json"))
    digest = json.loads(manifest_path.read_text())["v1"]["digest"]
    blob_dir = tmp_path / "kitops" / "storage" / "blobs" / "sha256"
    manifest = json.loads((blob_dir / digest.removeprefix("sha256:")).read_bytes())
    total = len(manifest["layers"]) + 1
    assert f"of {total} blobs" in message, message
    assert "re-run pushes only what the registry lacks" in message
    assert "completed downloads" not in message
    assert "Traceback" not in stderr
