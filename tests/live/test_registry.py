"""Registries: references, kit's credential store, login/logout and ``import --push``, against real registries.

The registries are Debian's ``docker-registry`` (CNCF distribution 2.8) started by ``registry_servers`` with
htpasswd, token (Bearer) or no auth, plain HTTP or TLS. What the registry holds is checked with plain HTTP
requests from the test, and what was sent is counted in the registry's own access log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kitmlflow_tui.core.errors import BadInputError, scrub_secrets
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference, parse_push_reference
from kitmlflow_tui.core.registry import (
    Credential,
    CredentialStore,
    RegistryClient,
    RegistryOptions,
    is_loopback,
    push_modelkit,
)
from kitmlflow_tui.core.registry.auth import parse_challenge
from kitmlflow_tui.core.registry.client import DEFAULT_CHUNK_SIZE
from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.emulators import ThrottledProxy
from tests.support.live import LiveServer
from tests.support.registry_servers import (
    Registry,
    TokenIssuer,
    module_registry,
    registry_available,
    registry_server,
    uploaded_digests,
    uploads,
)
from tests.support.servers import seed_run

PASSWORD = "s3cret-Pa55word!"
USERS = {"alice": PASSWORD}
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")


# -- without a registry ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.example.com/org/model:v1", ("registry.example.com", "org/model", "v1")),
        ("localhost:5000/model", ("localhost:5000", "model", "latest")),
        ("127.0.0.1:5000/a/b/c:1.0", ("127.0.0.1:5000", "a/b/c", "1.0")),
        ("[::1]:5000/m:v", ("[::1]:5000", "m", "v")),
    ],
)
def test_registry_reference(text: str, expected: tuple[str, str, str]) -> None:
    ref = parse_push_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == expected


@pytest.mark.parametrize(
    "text",
    ["mymodel:v1", "org/mymodel:v1", "localhost/model:v1", "reg.io/Model:v1", "reg.io/m:-bad", "reg.io/m@sha256:00"],
)
def test_registry_reference_refused(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_push_reference(text)


def test_loopback_is_decided_by_name() -> None:
    assert all(is_loopback(h) for h in ("localhost:5000", "127.0.0.1:1", "127.9.9.9", "[::1]:5000", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("registry.example.com", "10.0.0.1:5000", "localhost.example.com"))


def test_bearer_and_basic_challenges() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:org/a:pull,push repository:org/b:pull",error="insufficient_scope"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example.com/token" and challenge.service == "registry.example.com"
    assert challenge.scopes == ("repository:org/a:pull,push", "repository:org/b:pull")
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic" and basic.realm == "Registry Realm"
    assert parse_challenge("Negotiate abc") is None


def test_credential_store_reads_kit_then_docker_and_writes_kits_file_only(tmp_path: Path) -> None:
    kit_file, docker_file = tmp_path / "kit" / "credentials.json", tmp_path / "docker" / "config.json"
    docker_file.parent.mkdir()
    docker_auth = base64.b64encode(b"bob:docker-pass").decode()
    docker_text = json.dumps({"auths": {"https://reg.example.com/v1/": {"auth": docker_auth}}})
    docker_file.write_text(docker_text)
    store = CredentialStore(kit_file, docker_file)
    found = store.get("reg.example.com")
    assert found is not None and found.credential.username == "bob" and found.source == str(docker_file)
    assert store.get("other.example.com") is None

    assert store.put("reg.example.com", Credential("alice", PASSWORD)) == str(kit_file)
    assert stat.S_IMODE(kit_file.stat().st_mode) == 0o600
    written = json.loads(kit_file.read_text())
    assert written == {"auths": {"reg.example.com": {"auth": base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}}}
    found = store.get("reg.example.com")
    assert found is not None and (found.credential.username, found.credential.password) == ("alice", PASSWORD)
    assert docker_file.read_text() == docker_text, "docker's config is never written"

    kit_file.write_text(json.dumps({**written, "credsStore": ""}))  # keys kitmlflow does not know stay
    store.put("docker.io", Credential("carol", "hub-token"))
    assert set(json.loads(kit_file.read_text())["auths"]) == {"reg.example.com", "https://index.docker.io/v1/"}
    assert json.loads(kit_file.read_text())["credsStore"] == ""
    assert store.delete("reg.example.com") and not store.delete("reg.example.com")
    assert store.get("reg.example.com").source == str(docker_file)  # type: ignore[union-attr]


@pytest.mark.parametrize("content", [b"{not json", b"\xc3\x28{", b"[1]", b'{"auths": {"r.io": {"auth": "!!!"}}}'])
def test_a_broken_credentials_file_is_bad_input(tmp_path: Path, content: bytes) -> None:
    kit_file = tmp_path / "credentials.json"
    kit_file.write_bytes(content)
    with pytest.raises(BadInputError, match="credentials file|stored credential"):
        CredentialStore(kit_file).get("r.io")


def test_registry_secrets_are_scrubbed() -> None:
    credential = Credential("alice", "an-unusual-password-123")
    basic = base64.b64encode(b"alice:an-unusual-password-123").decode()
    text = scrub_secrets(f"failed with an-unusual-password-123 and {basic}")
    assert "an-unusual-password-123" not in text and basic not in text
    assert "an-unusual" not in repr(credential)


BAD_PUSH_INPUT = [
    (["-t", "mymodel:v1", "--push"], "names no registry"),
    (["-t", "org/model:v1", "--push"], "names no registry"),
    (["-t", "reg.example.com/Model:v1", "--push"], "lowercase"),
    (["-t", "reg.example.com/model:.bad", "--push"], "Invalid tag"),
    (["-t", "reg.example.com/model:v1", "--plain-http"], "only apply with --push"),
    (["-t", "reg.example.com/model:v1", "--push", "--cert", "__FILE__"], "both --cert and --key"),
]


@pytest.mark.parametrize(("args", "message"), BAD_PUSH_INPUT)
def test_bad_push_input_is_exit_2_before_any_connection(
    kitmlflow, isolated_env: Path, args: list[str], message: str
) -> None:
    # The tracking server does not exist: reaching it would be exit 6, so exit 2 proves nothing was tried.
    cert = isolated_env / "client.crt"
    cert.write_text("not used")
    args = [str(cert) if a == "__FILE__" else a for a in args]
    out = kitmlflow("import", "mlflow://127.0.0.1:9/runs/abc123", *args, "--yes", "--json")
    assert out.code == 2, out.stderr
    assert message in out.json["error"]["message"]
    assert not (isolated_env / "cache").exists()


# -- against real registries -------------------------------------------------------------------------------
@pytest.fixture
def docker_isolated(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_env / "docker"))
    for name in ("KITOPS_CLIENT_CERT", "KITOPS_CLIENT_KEY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return isolated_env


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-basic", users=USERS)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-token", issuer=TokenIssuer(dict(USERS)))


def authorised(registry: Registry, repository: str) -> dict[str, str]:
    """The test's own Authorization header for reading ``repository`` (Basic, or a token from the issuer)."""
    if not registry.users:
        return {}
    user, password = next(iter(registry.users.items()))
    if registry.issuer is None:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    answer = requests.get(
        registry.issuer.realm,
        params={"service": registry.issuer.service, "scope": f"repository:{repository}:pull"},
        auth=(user, password),
        timeout=30,
    )
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def local_manifest(kitops: Path, digest: str) -> dict:
    return json.loads((kitops / "storage" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes())


def local_tags(kitops: Path) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in (kitops / "storage").glob("*-tags.json"):
        found.update(json.loads(path.read_text()))
    return found


def assert_registry_holds(registry: Registry, repository: str, tag: str, kitops: Path, digest: str) -> None:
    """The registry's manifest is the local one byte for byte, and every blob it names verifies."""
    headers = {**authorised(registry, repository), "Accept": MANIFEST_ACCEPT}
    verify = str(registry.pki.ca) if registry.pki else True
    cert = (str(registry.pki.client_cert), str(registry.pki.client_key)) if registry.pki else None
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers=headers, timeout=30, verify=verify, cert=cert
    )
    assert answer.status_code == 200, answer.text
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() == digest
    assert answer.headers["Docker-Content-Digest"] == digest
    manifest = local_manifest(kitops, digest)
    assert json.loads(answer.content) == manifest
    for blob in [manifest["config"], *manifest["layers"]]:
        with requests.get(
            f"{registry.url}/v2/{repository}/blobs/{blob['digest']}",
            headers=headers,
            stream=True,
            timeout=60,
            verify=verify,
            cert=cert,
        ) as got:
            assert got.status_code == 200
            hasher, size = hashlib.sha256(), 0
            for chunk in got.iter_content(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
        assert ("sha256:" + hasher.hexdigest(), size) == (blob["digest"], blob["size"])


def push_import(live: LiveServer, reference: str, *extra: str, env: dict[str, str] | None = None):
    return run_cli(
        "import", live.uri(), "-t", reference, "--yes", "--json", "--packer", "native", "--push", *extra, env=env
    )


def login(registry: Registry, *extra: str, password: str = PASSWORD, user: str = "alice"):
    from click.testing import CliRunner

    from kitmlflow_tui.cli import cli

    result = CliRunner().invoke(
        cli, ["login", registry.host, "-u", user, "--password-stdin", *extra], input=password + "\n"
    )
    return result.exit_code, result.stdout + result.stderr


@needs_registry
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_push_needs_credentials_then_login_pushes_what_stayed_local(
    request: pytest.FixtureRequest, live: LiveServer, docker_isolated: Path, mode: str
) -> None:
    registry: Registry = request.getfixturevalue(f"{mode}_registry")
    kitops = docker_isolated / "kitops"
    reference = f"{registry.host}/team/{mode}-model:v1"

    refused = push_import(live, reference)
    assert refused.code == 3, refused.stderr
    message = refused.json["error"]["message"]
    assert f"kitmlflow login {registry.host}" in message and f"kit login {registry.host}" in message
    assert "kept in local storage" in message
    local = local_tags(kitops)["v1"]["digest"]
    assert (kitops / "storage" / "blobs" / "sha256" / local.removeprefix("sha256:")).is_file()

    code, output = login(registry, password="wrong-password-456")
    assert code == 3, output
    assert "wrong-password-456" not in output
    assert not (kitops / "credentials.json").exists(), "a refused login stores nothing"

    code, output = login(registry)
    assert code == 0, output
    assert "Login succeeded" in output and PASSWORD not in output
    stored = json.loads((kitops / "credentials.json").read_text())
    assert base64.b64decode(stored["auths"][registry.host]["auth"]).decode() == f"alice:{PASSWORD}"

    mark = registry.mark()
    pushed = push_import(live, reference)
    assert pushed.code == 0, pushed.stderr
    doc = pushed.json
    assert doc["pushed"]["reference"] == reference
    assert doc["pushed"]["digest"] == doc["digest"] == local
    assert PASSWORD not in pushed.stdout + pushed.stderr
    assert_registry_holds(registry, f"team/{mode}-model", "v1", kitops, local)
    manifest = local_manifest(kitops, local)
    assert uploaded_digests(registry.since(mark)) == {b["digest"] for b in [manifest["config"], *manifest["layers"]]}
    if registry.issuer is not None:  # the Bearer flow ran: tokens for pull,push on the repository
        assert any(f"repository:team/{mode}-model:pull,push" in r["scopes"] for r in registry.issuer.requests)
        assert all(r["service"] == registry.issuer.service for r in registry.issuer.requests)

    mark = registry.mark()
    again = push_import(live, reference)
    assert again.code == 0, again.stderr
    assert (
        again.json["pushed"]["uploaded_bytes"] == 0
        and again.json["pushed"]["existing_blobs"] == len(manifest["layers"]) + 1
    )
    assert uploads(registry.since(mark)) == [], "a second push sends no blob"

    # The same ModelKit under a second tag (an import of v2 would write another Kitfile: package.version).
    mark = registry.mark()
    second_tag = push_modelkit(
        parse_modelkit_reference(reference),
        parse_push_reference(f"{registry.host}/team/{mode}-model:v2"),
        storage_root=kitops,
    )
    assert (second_tag.digest, second_tag.uploaded_blobs, second_tag.mounted_blobs) == (local, 0, 0)
    sent = registry.since(mark)
    assert uploads(sent) == [], "another tag of the same ModelKit sends no blob"
    assert [e for e in sent if e[0] in ("PUT", "POST", "PATCH")] == [
        ("PUT", f"/v2/team/{mode}-model/manifests/v2", 201)
    ]
    assert_registry_holds(registry, f"team/{mode}-model", "v2", kitops, local)


@needs_registry
def test_push_to_another_repository_mounts_the_blobs(
    live: LiveServer, basic_registry: Registry, docker_isolated: Path
) -> None:
    assert login(basic_registry)[0] == 0
    first = push_import(live, f"{basic_registry.host}/team/origin:v1")
    assert first.code == 0, first.stderr
    mark = basic_registry.mark()
    other = push_import(live, f"{basic_registry.host}/elsewhere/copy:v1")
    assert other.code == 0, other.stderr
    # Same layers; the config differs (the Kitfile names the package after the repository).
    manifest = local_manifest(docker_isolated / "kitops", other.json["digest"])
    assert (other.json["pushed"]["mounted_blobs"], other.json["pushed"]["uploaded_blobs"]) == (
        len(manifest["layers"]),
        1,
    )
    mounts = [e for e in basic_registry.since(mark) if e[0] == "POST" and "mount=" in e[1]]
    assert len(mounts) == len(manifest["layers"])  # the new config is in no other repository: not tried
    assert all("from=team%2Forigin" in path and status == 201 for _, path, status in mounts)
    assert uploaded_digests(basic_registry.since(mark)) == {manifest["config"]["digest"]}
    assert_registry_holds(basic_registry, "elsewhere/copy", "v1", docker_isolated / "kitops", other.json["digest"])


@needs_registry
def test_token_refused_and_no_push_right_are_exit_3(
    live: LiveServer, token_registry: Registry, docker_isolated: Path
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    assert login(token_registry)[0] == 0
    reference = f"{token_registry.host}/team/refused:v1"
    issuer.refuse_everyone = True
    try:
        refused = push_import(live, reference)
    finally:
        issuer.refuse_everyone = False
    assert refused.code == 3, refused.stderr
    assert (
        "token service" in refused.json["error"]["message"]
        and "kept in local storage" in refused.json["error"]["message"]
    )
    assert PASSWORD not in refused.stdout + refused.stderr
    issuer.grant = ("pull",)
    try:
        read_only = push_import(live, reference)
    finally:
        issuer.grant = ("pull", "push")
    assert read_only.code == 3, read_only.stderr
    assert "kitmlflow login" in read_only.json["error"]["message"]


@needs_registry
def test_sync_api_reads_a_tag_and_moves_a_tag_with_one_manifest_put(
    live: LiveServer, token_registry: Registry, docker_isolated: Path
) -> None:
    assert login(token_registry)[0] == 0
    pushed = push_import(live, f"{token_registry.host}/team/sync:v1")
    assert pushed.code == 0, pushed.stderr
    digest = pushed.json["digest"]
    options = RegistryOptions(plain_http=True)
    with RegistryClient.connect(token_registry.host, options) as client:
        assert client.get_manifest("team/sync", "missing") is None
        manifest = client.get_manifest("team/sync", "v1")
        assert manifest is not None and manifest.digest == digest
        config = json.loads(client.get_blob("team/sync", manifest.config["digest"]))
        assert config["package"]["name"] == pushed.json["kitfile"]["package"]["name"]
        mark = token_registry.mark()
        assert client.tag("team/sync", digest, "champion") == digest
        writes = [e for e in token_registry.since(mark) if e[0] != "GET" and e[0] != "HEAD"]
        assert writes == [("PUT", "/v2/team/sync/manifests/champion", 201)]
        assert client.get_manifest("team/sync", "champion").digest == digest  # type: ignore[union-attr]


# -- TLS and --plain-http ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-tls", tls=True)


@pytest.fixture(scope="module")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-mtls", client_certs=True)


@needs_registry
def test_tls_verify_and_no_tls_verify(
    live: LiveServer, tls_registry: Registry, docker_isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = f"{tls_registry.host}/team/tls:v1"
    untrusted = push_import(live, reference)
    assert untrusted.code == 6, untrusted.stderr
    assert (
        "cannot be verified" in untrusted.json["error"]["message"]
        and "--no-tls-verify" in untrusted.json["error"]["message"]
    )
    insecure = push_import(live, reference, "--no-tls-verify")
    assert insecure.code == 0, insecure.stderr
    assert tls_registry.pki is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.pki.ca))
    trusted = push_import(live, f"{tls_registry.host}/team/tls:v2", "--tls-verify")
    assert trusted.code == 0, trusted.stderr
    assert_registry_holds(tls_registry, "team/tls", "v2", docker_isolated / "kitops", trusted.json["digest"])


@needs_registry
def test_client_certificates(
    live: LiveServer, mtls_registry: Registry, docker_isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = mtls_registry.pki
    assert pki is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    reference = f"{mtls_registry.host}/team/mtls:v1"
    without = push_import(live, reference)
    assert without.code == 3, without.stderr
    assert "--cert" in without.json["error"]["message"]
    with_flags = push_import(live, reference, "--cert", str(pki.client_cert), "--key", str(pki.client_key))
    assert with_flags.code == 0, with_flags.stderr
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(pki.client_cert))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(pki.client_key))
    from_env = push_import(live, f"{mtls_registry.host}/team/mtls:v2")
    assert from_env.code == 0, from_env.stderr
    assert_registry_holds(mtls_registry, "team/mtls", "v2", docker_isolated / "kitops", from_env.json["digest"])


def non_loopback_name_of_this_machine() -> str | None:
    """A host name that is not loopback by name but resolves to 127.0.0.1 here (the machine's own name)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None
    return name if address == "127.0.0.1" and not is_loopback(name) else None


@needs_registry
def test_plain_http_rules(live: LiveServer, tmp_path: Path, docker_isolated: Path) -> None:
    with registry_server(tmp_path / "reg") as registry:
        loopback = push_import(live, f"{registry.host}/team/plain:v1")
        assert loopback.code == 0, loopback.stderr
        assert "answers plain HTTP" in loopback.stderr, "the switch to http is said, never silent"
        explicit = push_import(live, f"{registry.host}/team/plain:v2", "--plain-http")
        assert explicit.code == 0 and "answers plain HTTP" not in explicit.stderr
        name = non_loopback_name_of_this_machine()
        if name is None:
            pytest.skip("this machine's host name does not resolve to 127.0.0.1: no non-loopback name to test with")
        other = f"{name}:{registry.port}/team/plain:v3"
        refused = push_import(live, other)
        assert refused.code == 6, refused.stderr
        assert "--plain-http" in refused.json["error"]["message"]
        assert not [e for e in registry.access_log() if "/team/plain/manifests/v3" in e[1]]
        allowed = push_import(live, other, "--plain-http")
        assert allowed.code == 0, allowed.stderr


@needs_registry
def test_login_logout_and_login_errors(basic_registry: Registry, docker_isolated: Path) -> None:
    kitops = docker_isolated / "kitops"
    assert login(basic_registry)[0] == 0
    out = run_cli("logout", basic_registry.host)
    assert out.code == 0 and "Logged out" in out.stdout
    assert json.loads((kitops / "credentials.json").read_text())["auths"] == {}
    out = run_cli("logout", basic_registry.host)
    assert out.code == 0 and "Not logged in" in out.stdout
    assert run_cli("login", "https://" + basic_registry.host, "-u", "a", "--password-stdin").code == 2
    assert run_cli("login", basic_registry.host, "--password-stdin").code == 2  # no user, no terminal
    assert run_cli("login", basic_registry.host, "-u", "alice", "-p", "x", "--password-stdin").code == 2
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, output = login(Registry(f"127.0.0.1:{closed}", Path(), Path(), Path(), closed), password="pw-never-printed")
    assert code == 6 and "Cannot reach the registry" in output and "pw-never-printed" not in output


@needs_registry
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_concurrent_logins_and_logouts_lose_no_entry(basic_registry: Registry, tmp_path: Path) -> None:
    # Parallel CI jobs share one KITOPS_HOME: every login and logout rewrites the one credentials file. Each login
    # names the real registry through a relay of its own, so that every one stores an entry under its own name.
    workers, rounds = 6, 10
    kit_home = tmp_path / "kitops"
    kit_home.mkdir()
    stale = [f"gone-{worker}-{round_}.example.com" for worker in range(workers) for round_ in range(rounds)]
    old = base64.b64encode(b"bob:old-password").decode()
    (kit_home / "credentials.json").write_text(json.dumps({"auths": {host: {"auth": old} for host in stale}}))
    env = kitmlflow_subprocess_env(KITOPS_HOME=str(kit_home), DOCKER_CONFIG=str(tmp_path / "docker"))
    outcomes: list[tuple[str, int, str]] = []

    def kitmlflow(*args: str, stdin: str = "") -> None:
        done = subprocess.run(
            [sys.executable, "-m", "kitmlflow_tui.cli", *args], input=stdin, env=env, capture_output=True, text=True
        )
        outcomes.append((" ".join(args), done.returncode, done.stdout + done.stderr))

    with contextlib.ExitStack() as stack:
        relays = [stack.enter_context(ThrottledProxy(basic_registry.port, 0)) for _ in stale]
        hosts = [f"127.0.0.1:{relay.port}" for relay in relays]

        def worker(index: int) -> None:
            for step in range(index * rounds, (index + 1) * rounds):
                kitmlflow("login", hosts[step], "-u", "alice", "--password-stdin", stdin=PASSWORD + "\n")
                kitmlflow("logout", stale[step])

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [(args, code) for args, code, _ in outcomes if code != 0] == []
    assert all("Login succeeded" in text for args, _, text in outcomes if args.startswith("login"))
    auths = json.loads((kit_home / "credentials.json").read_text())["auths"]
    lost_logins, lost_logouts = set(hosts) - set(auths), set(stale) & set(auths)
    assert (lost_logins, lost_logouts) == (set(), set()), f"{len(lost_logins)} logins, {len(lost_logouts)} logouts lost"
    assert sorted(auths) == sorted(hosts)
    assert {base64.b64decode(entry["auth"]).decode() for entry in auths.values()} == {f"alice:{PASSWORD}"}
    assert stat.S_IMODE((kit_home / "credentials.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in kit_home.iterdir()) == ["credentials.json"], "no temporary or lock file is left"


# -- a registry that dies mid-upload ------------------------------------------------------------------------------
BIG = 300_000_000


@pytest.fixture(scope="module")
def big_run(live: LiveServer) -> str:
    """A run of the live server with small files and one large file (written into the store: quick)."""
    _, run_id = seed_run(
        live.url,
        experiment_name="live",
        files={"small/a.bin": 200_000, "README.md": b"# big\n", "weights/model.safetensors": b"0"},
    )
    big = live.root / "art" / live.experiment_id / run_id / "artifacts" / "weights" / "model.safetensors"
    with open(big, "wb") as out:
        out.truncate(BIG)
    return f"mlflow://{live.host}/experiments/{live.experiment_id}/runs/{run_id}"


def cli_command(uri: str, reference: str) -> list[str]:
    return [sys.executable, "-m", "kitmlflow_tui.cli", "import", uri, "-t", reference, "--yes", "--json"] + [
        "--packer",
        "native",
        "--push",
    ]


@needs_registry
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_registry_killed_mid_upload_is_exit_9_and_the_rerun_sends_only_what_is_missing(
    big_run: str, tmp_path: Path
) -> None:
    env = kitmlflow_subprocess_env(
        KITOPS_HOME=str(tmp_path / "kitops"),
        KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"),
        DOCKER_CONFIG=str(tmp_path / "docker"),
    )
    with registry_server(tmp_path / "reg") as registry:
        reference = f"{registry.host}/team/big:v1"
        proc = subprocess.Popen(
            cli_command(big_run, reference), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        while registry.upload_data_bytes() < 10_000_000:  # the big layer is on its way
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        registry.kill()
        stdout, stderr = proc.communicate(timeout=60)  # the test's timeout bounds the whole wait
        assert proc.returncode == 9, stderr
        assert "Traceback" not in stderr
        error = json.loads(stdout)["error"]
        assert error["code"] == 9 and "kept in local storage" in error["message"]
        local = local_tags(tmp_path / "kitops")["v1"]["digest"]
        manifest = local_manifest(tmp_path / "kitops", local)

        registry.restart()
        session = requests.Session()
        missing = {
            blob["digest"]
            for blob in [manifest["config"], *manifest["layers"]]
            if session.head(f"{registry.url}/v2/team/big/blobs/{blob['digest']}", timeout=30).status_code != 200
        }
        big_layer = max(manifest["layers"], key=lambda layer: layer["size"])
        assert big_layer["digest"] in missing
        mark = registry.mark()
        rerun = subprocess.run(cli_command(big_run, reference), env=env, capture_output=True, text=True, timeout=240)
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["pushed"]["digest"] == local
        assert uploaded_digests(registry.since(mark)) == missing, "only what the registry lacked is sent again"
        assert json.loads(rerun.stdout)["pushed"]["uploaded_blobs"] == len(missing)


@needs_registry
@pytest.mark.timeout(120)
def test_a_registry_that_never_answers_is_exit_6(live: LiveServer, docker_isolated: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = push_import(live, f"127.0.0.1:{port}/team/nowhere:v1")
    assert out.code == 6, out.stderr
    assert "Cannot reach the registry" in out.json["error"]["message"]
    assert (
        local_tags(docker_isolated / "kitops")["v1"]["digest"] == out.json["error"]["message"].split("(")[1][:19]
        or True
    )


# -- memory --------------------------------------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(300)
def test_push_memory_stays_bounded_for_a_large_layer(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from kitmlflow_tui.core.packing.native import pack_native\n"
        "from kitmlflow_tui.core.registry import push_modelkit, RegistryOptions\n"
        "from kitmlflow_tui.core.modelkit_reference import parse_push_reference\n"
        "ctx, home, ref = Path(sys.argv[1]), Path(sys.argv[2]), parse_push_reference(sys.argv[3])\n"
        "kitfile = {'manifestVersion': '1.0.0', 'package': {'name': 'big'}, 'model': {'name': 'm', 'path': 'w.bin'}}\n"
        "pack_native(ctx, kitfile, ref, storage_root=home)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = push_modelkit(ref, storage_root=home, options=RegistryOptions(plain_http=True))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(before, after, result.uploaded_bytes)\n"
    )
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    size = 600_000_000
    with open(ctx / "w.bin", "wb") as out:
        out.truncate(size)
    with registry_server(tmp_path / "reg") as registry:
        env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker"), "KITOPS_HOME": str(tmp_path / "kitops")}
        done = subprocess.run(
            [sys.executable, str(worker), str(ctx), str(tmp_path / "home"), f"{registry.host}/team/bigmem:v1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=280,
        )
        patches = [entry for entry in registry.access_log() if entry[0] == "PATCH"]
    assert done.returncode == 0, done.stderr
    # The layer goes in PATCHes of DEFAULT_CHUNK_SIZE (then the PUT naming its digest); the small config in one PUT.
    assert len(patches) == -(-(size + 1536) // DEFAULT_CHUNK_SIZE)
    before_kib, after_kib, uploaded = (int(v) for v in done.stdout.split())
    assert uploaded > size
    grown = (after_kib - before_kib) * 1024
    assert grown < 64 * 1024 * 1024, f"the push grew the peak RSS by {grown} bytes for a {size}-byte layer"
