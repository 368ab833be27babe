"""``kitmlflow watch``: the real ``mlflow server`` (SQLite backend, webhooks on) sends its webhooks to a real
``kitmlflow watch`` process, which keeps the real ``docker-registry`` (token auth) in step.

The server gets one webhook at start, before any registry event (MLflow caches a webhook's subscribers per
event for 60 s: a webhook created after an event of its type would miss the next ones), pointing at a port
the tests' watches listen on in turn. What happened is read from the registry (its manifests, its access log),
from the watch's JSON log lines and from its ``/metrics``; waits are bounded, never asserted as durations.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.live import LiveServer
from tests.support.registered_models import make_model, remote_manifest, remote_provenance
from tests.support.registry_servers import (
    Registry,
    TokenIssuer,
    manifest_puts,
    module_registry,
    registry_available,
    uploaded_digest_list,
)
from tests.support.servers import free_port, mlflow_server

SECRET = "watch-tests-secret-5f1c0e2a"
PASSWORD = "watch-Pa55word!"
IN_STEP_SECONDS = 30  # the contract: a tag is in step within 30 s of the event on an idle machine
STARTUP_SECONDS = 120  # a watch process imports MLflow: slow on a loaded machine
needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")
WEBHOOK_EVENTS = [
    "model_version.created",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.deleted",
    "model_version_tag.set",
    "registered_model.created",
]


@dataclass
class Hooked:
    """The tracking server with its webhook to ``port``, where each test's watch listens."""

    live: LiveServer
    port: int


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooked]:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("watch-mlflow")
    port = free_port()
    with mlflow_server(root, webhooks=True) as server:
        MlflowClient(server.url).create_webhook(
            name="kitmlflow-tests",
            url=f"http://127.0.0.1:{port}/webhooks/mlflow",
            events=WEBHOOK_EVENTS,
            secret=SECRET,
        )
        yield Hooked(LiveServer(server.url, root, "0", server=server), port)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    issuer = TokenIssuer({"alice": PASSWORD}, grant=("pull", "push", "delete"))
    yield from module_registry(tmp_path_factory, "reg-watch", issuer=issuer)


@pytest.fixture
def home(isolated_env: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kit home with the registry's credentials (kitmlflow login), shared by the watch processes."""
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_env / "docker"))
    out = run_cli("login", registry.host, "-u", "alice", "-p", PASSWORD)
    assert out.code == 0, out.stderr
    return isolated_env


def watch_env(home: Path, **extra: str) -> dict[str, str]:
    values = {
        "KITOPS_HOME": str(home / "kitops"),
        "KITMLFLOW_CACHE_DIR": str(home / "cache"),
        "DOCKER_CONFIG": str(home / "docker"),
        "XDG_STATE_HOME": str(home / "state"),
        "KITMLFLOW_WEBHOOK_SECRET": SECRET,
    }
    return kitmlflow_subprocess_env(**{**values, **extra})


def wait_until(what: str, check: Callable[[], object], timeout: float, *, while_alive=None) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if while_alive is not None:
            while_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


@dataclass
class WatchProcess:
    """``kitmlflow watch ... --json`` as a subprocess: its JSON log lines, its /metrics, its signals."""

    args: list[str]
    env: dict[str, str]
    folder: Path
    port: int
    proc: subprocess.Popen | None = None
    runs: int = 0
    out_path: Path = field(default_factory=Path)

    def start(self, *, healthy: bool = True) -> WatchProcess:
        self.runs += 1
        self.out_path = self.folder / f"watch-{self.port}-{self.runs}.jsonl"
        command = [sys.executable, "-m", "kitmlflow_tui.cli", "watch", *self.args, "--json"]
        with open(self.out_path, "wb") as out, open(self.out_path.with_suffix(".err"), "wb") as err:
            self.proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=err)
        if healthy:
            wait_until(f"the watch on {self.port} is healthy", self.healthy, STARTUP_SECONDS, while_alive=self.alive)
        return self

    def alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the watch exited with {self.proc.returncode}: {self.stderr()}\n{self.stdout()}")

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.out_path.with_suffix(".err").read_text(errors="replace")

    def lines(self, kind: str | None = None) -> list[dict]:
        found = []
        for text in self.stdout().splitlines():
            if text.startswith("{") and text.endswith("}"):
                line = json.loads(text)
                if kind is None or line.get("kind") == kind:
                    found.append(line)
        return found

    def syncs(self, model: str) -> list[dict]:
        return [line for line in self.lines("sync") if line["model"] == model]

    def wait_syncs(self, model: str, count: int, timeout: float = IN_STEP_SECONDS) -> list[dict]:
        wait_until(
            f"{count} syncs of {model}", lambda: len(self.syncs(model)) >= count, timeout, while_alive=self.alive
        )
        return self.syncs(model)

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError("the watch did not stop within 120 s of the signal") from None


@pytest.fixture
def watches() -> Iterator[list[WatchProcess]]:
    """Every watch a test starts, stopped (by PID) at its end whatever happened."""
    started: list[WatchProcess] = []
    yield started
    for watch in started:
        if watch.proc is not None and watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(timeout=30)


def a_watch(watches: list[WatchProcess], env: dict[str, str], folder: Path, port: int, *args: str) -> WatchProcess:
    watch = WatchProcess([*args, "--listen", f"127.0.0.1:{port}"], env, folder, port)
    watches.append(watch)
    return watch


def model_args(hooked: Hooked, registry: Registry, name: str, repository: str, *extra: str) -> list[str]:
    uri = f"mlflow://{hooked.live.host}/models/{name}"
    return [uri, "--to", f"{registry.host}/{repository}", "--packer", "native", *extra]


def signed(body: bytes, *, secret: str = SECRET, delivery_id: str | None = None, stamp: int | None = None) -> dict:
    """The headers MLflow sends with ``body`` (its signature formula, written out independently here)."""
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp_text = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(secret.encode(), f"{delivery_id}.{stamp_text}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp_text,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def event_body(model: str, event: str = "model_version.created") -> bytes:
    entity, action = event.split(".")
    data = {"name": model, "version": "1", "source": "models:/m-0", "run_id": None, "tags": {}, "description": None}
    return json.dumps(
        {"entity": entity, "action": action, "timestamp": "2026-12-06T00:00:00+00:00", "data": data}
    ).encode()


# -- the story: a version, an alias set, moved and deleted --------------------------------------------------
@needs_registry
@pytest.mark.timeout(900)
def test_versions_and_aliases_follow_mlflow_through_its_webhooks(
    hooked: Hooked, registry: Registry, home: Path, watches: list[WatchProcess]
) -> None:
    model = make_model(hooked.live, "watch-story", 0)
    repository = "team/watch-story"
    watch = a_watch(
        watches,
        watch_env(home),
        home,
        hooked.port,
        *model_args(hooked, registry, model.name, repository, "--prune-aliases", "--reconcile-every", "0"),
    ).start()
    watch.wait_syncs(model.name, 1)  # the sync every model gets at start: nothing to do yet

    one = model.add_version()
    wait_until("v1 in the registry", lambda: remote_manifest(registry, repository, "v1"), IN_STEP_SECONDS)
    provenance = remote_provenance(registry, repository, "v1")
    assert provenance["registered_model"] == {**provenance["registered_model"], "name": model.name, "version": one}
    assert provenance["run"]["id"] == model.runs[one]
    webhooks = [line for line in watch.lines("webhook") if line.get("model") == model.name]
    assert any(line["event"] == "model_version.created" and line["outcome"] == "queued" for line in webhooks)

    def champion_is(tag: str) -> Callable[[], bool]:
        def check() -> bool:
            held, wanted = remote_manifest(registry, repository, "champion"), remote_manifest(registry, repository, tag)
            return held is not None and wanted is not None and held[0] == wanted[0]

        return check

    model.alias("champion", one)
    wait_until("champion on v1", champion_is("v1"), IN_STEP_SECONDS)
    two = model.add_version()
    model.alias("champion", two)
    wait_until("champion moved to v2", champion_is("v2"), IN_STEP_SECONDS)

    model.client().delete_registered_model_alias(model.name, "champion")

    def pruned() -> list[dict]:
        return [line for line in watch.syncs(model.name) if "stale_alias champion" in line.get("changes", [])]

    wait_until("the sync that pruned champion", pruned, IN_STEP_SECONDS, while_alive=watch.alive)
    assert pruned()[0]["summary"]["stale_alias"] == 1
    assert remote_manifest(registry, repository, "champion") is None
    assert remote_manifest(registry, repository, "v1") is not None and remote_manifest(registry, repository, "v2")

    metrics = watch.metrics()
    assert metrics['kitmlflow_watch_events_received_total{event="model_version.created"}'] >= 2
    assert metrics['kitmlflow_watch_events_received_total{event="model_version_alias.deleted"}'] >= 1
    assert metrics[f'kitmlflow_watch_syncs_total{{model="{model.name}",outcome="changed"}}'] >= 4
    assert metrics["kitmlflow_watch_queue_depth"] == 0
    assert not [name for name in metrics if name.startswith("kitmlflow_watch_events_refused_total")]
    assert watch.stop() == 0
    assert SECRET not in watch.stdout() + watch.stderr()


# -- what is refused ---------------------------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(600)
def test_forged_stale_replayed_and_oversized_deliveries_are_refused_counted_and_never_acted_on(
    hooked: Hooked, registry: Registry, home: Path, watches: list[WatchProcess]
) -> None:
    model = make_model(hooked.live, "watch-guard", 1)
    port = free_port()  # not the webhook's: only what this test sends arrives
    watch = a_watch(
        watches,
        watch_env(home),
        home,
        port,
        *model_args(hooked, registry, model.name, "team/watch-guard", "--reconcile-every", "0"),
    ).start()
    watch.wait_syncs(model.name, 1)
    url = f"http://127.0.0.1:{port}/webhooks/mlflow"

    body = event_body(model.name)
    headers = signed(body)
    accepted = requests.post(url, data=body, headers=headers, timeout=10)
    assert accepted.status_code == 202, accepted.text
    watch.wait_syncs(model.name, 2)

    refused = {
        "forged": requests.post(url, data=body, headers=signed(body, secret="not-the-secret"), timeout=10),
        "unsigned": requests.post(
            url, data=body, headers={k: v for k, v in signed(body).items() if k != "X-MLflow-Signature"}, timeout=10
        ),
        "tampered": requests.post(url, data=body.replace(b'"1"', b'"2"'), headers=signed(body), timeout=10),
        "stale": requests.post(url, data=body, headers=signed(body, stamp=int(time.time()) - 600), timeout=10),
        "replayed": requests.post(url, data=body, headers=headers, timeout=10),
        "too_large": requests.post(url, data=b"{" + b" " * 10_000_000 + b"}", headers=signed(b"x"), timeout=30),
        "not_json": requests.post(url, data=b"{'a': 1}", headers=signed(b"{'a': 1}"), timeout=10),
    }
    assert {name: answer.status_code for name, answer in refused.items()} == {
        "forged": 401,
        "unsigned": 401,
        "tampered": 401,
        "stale": 400,
        "replayed": 409,
        "too_large": 413,
        "not_json": 400,
    }
    metrics = watch.metrics()
    counted = {
        name.split('reason="')[1].rstrip('"}'): value
        for name, value in metrics.items()
        if name.startswith("kitmlflow_watch_events_refused_total")
    }
    assert counted == {
        "bad_signature": 2,
        "no_signature": 1,
        "stale_timestamp": 1,
        "replayed": 1,
        "too_large": 1,
        "bad_body": 1,
    }
    assert metrics["kitmlflow_watch_queue_depth"] == 0, "nothing refused was queued"
    assert metrics['kitmlflow_watch_events_received_total{event="model_version.created"}'] == 1
    assert len(watch.syncs(model.name)) == 2, "no sync but the start's and the accepted event's"
    assert watch.stop() == 0
    assert SECRET not in watch.stdout() + watch.stderr()


# -- restarts ------------------------------------------------------------------------------------------------
@needs_registry
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_watch_killed_or_stopped_mid_push_resumes_after_a_restart_and_nothing_goes_twice(
    hooked: Hooked, registry: Registry, home: Path, watches: list[WatchProcess]
) -> None:
    model = make_model(hooked.live, "watch-killed", 1)
    repository = "team/watch-killed"
    args = model_args(hooked, registry, model.name, repository, "--reconcile-every", "0")
    first = a_watch(watches, watch_env(home), home, hooked.port, *args).start()
    wait_until("v1 pushed at start", lambda: remote_manifest(registry, repository, "v1"), IN_STEP_SECONDS)
    first.wait_syncs(model.name, 1)

    # A big version 2: the event arrives, the worker downloads, packs and starts the upload; SIGKILL then.
    baseline = registry.upload_data_bytes()
    model.add_version(big=200_000_000)
    wait_until(
        "version 2's upload under way",
        lambda: registry.upload_data_bytes() > baseline + 10_000_000,
        300,
        while_alive=first.alive,
    )
    first.stop(signal.SIGKILL)
    assert remote_manifest(registry, repository, "v2") is None

    # Restarted: the queued model is resumed; SIGTERM in the middle of its push: exit 0, still queued.
    second = a_watch(watches, watch_env(home), home, hooked.port, *args).start()
    assert second.lines("start")[0]["resumed"] == [model.name], second.stdout()
    baseline = registry.upload_data_bytes()
    wait_until(
        "version 2's upload under way again",
        lambda: registry.upload_data_bytes() > baseline + 10_000_000,
        300,
        while_alive=second.alive,
    )
    assert second.stop(signal.SIGTERM) == 0
    assert second.lines("stopped")[-1]["queued"] == 1, second.stdout()
    assert remote_manifest(registry, repository, "v2") is None

    third = a_watch(watches, watch_env(home), home, hooked.port, *args).start()
    assert third.lines("start")[0]["resumed"] == [model.name]
    wait_until("v2 pushed after the restarts", lambda: remote_manifest(registry, repository, "v2"), 300)
    assert third.stop() == 0

    ours = [entry for entry in registry.since(0) if f"/v2/{repository}/" in entry[1]]
    assert manifest_puts(ours).count("v2") == 1 and manifest_puts(ours).count("v1") == 1
    completed = uploaded_digest_list(ours)
    assert len(completed) == len(set(completed)), "no blob was uploaded twice"


@needs_registry
@pytest.mark.timeout(600)
def test_without_events_the_reconcile_loop_brings_the_registry_in_step(
    hooked: Hooked, registry: Registry, home: Path, watches: list[WatchProcess]
) -> None:
    port = free_port()  # no webhook points here: events never arrive
    repository = "team/watch-reconcile"
    watch = a_watch(
        watches,
        watch_env(home),
        home,
        port,
        *model_args(hooked, registry, "watch-reconcile", repository, "--reconcile-every", "2s"),
    ).start()
    make_model(hooked.live, "watch-reconcile", 1)
    wait_until("v1 through the reconcile", lambda: remote_manifest(registry, repository, "v1"), 120)
    metrics = watch.metrics()
    assert not [name for name in metrics if name.startswith("kitmlflow_watch_events_received_total")]
    reasons = {line["reason"] for line in watch.lines("reconcile")}
    assert reasons == {"start", "reconcile"}
    assert watch.stop() == 0


@needs_registry
@pytest.mark.timeout(600)
def test_the_single_model_form_syncs_in_the_format_it_was_given(
    hooked: Hooked, registry: Registry, home: Path, watches: list[WatchProcess]
) -> None:
    port = free_port()
    repository = "team/watch-modelpack"
    args = model_args(
        hooked, registry, "watch-modelpack", repository, "--format", "modelpack", "--reconcile-every", "2s"
    )
    watch = a_watch(watches, watch_env(home), home, port, *args).start()
    make_model(hooked.live, "watch-modelpack", 1)
    found = wait_until("v1 through the reconcile", lambda: remote_manifest(registry, repository, "v1"), 120)
    _digest, manifest = found
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"  # a ModelPack, as asked
    assert watch.stop() == 0


# -- the webhook, registered by the watch ----------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_register_webhook_creates_one_whose_test_event_verifies_and_updates_it_by_name(
    hooked: Hooked, isolated_env: Path, watches: list[WatchProcess]
) -> None:
    from mlflow import MlflowClient

    port = free_port()
    args = [
        f"mlflow://{hooked.live.host}/models/watch-register",
        "--to",
        "127.0.0.1:9/team/watch-register",
        "--reconcile-every",
        "0",
        "--register-webhook",
        "--public-url",
        f"http://127.0.0.1:{port}",
        "--webhook-name",
        "kitmlflow-register-test",
    ]
    client = MlflowClient(hooked.live.url)
    first = a_watch(watches, watch_env(isolated_env), isolated_env, port, *args).start()
    registered = wait_until("the webhook registered", lambda: first.lines("webhook_registered"), 60)[0]  # type: ignore[index]
    assert registered["created"] is True and registered["url"] == f"http://127.0.0.1:{port}/webhooks/mlflow"
    assert any("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" in need for need in registered["server_needs"])
    try:
        result = client.test_webhook(registered["id"])
        assert result.success, (result.response_status, result.response_body, result.error_message)
        assert result.response_status == 200 and json.loads(result.response_body) == {"dropped": "not_configured"}
        metrics = first.metrics()
        assert metrics['kitmlflow_watch_events_dropped_total{reason="not_configured"}'] == 1
        assert not [name for name in metrics if name.startswith("kitmlflow_watch_events_refused_total")]
        assert first.stop() == 0

        again = a_watch(watches, watch_env(isolated_env), isolated_env, port, *args).start()
        updated = wait_until("registered again", lambda: again.lines("webhook_registered"), 60)[0]  # type: ignore[index]
        assert (updated["created"], updated["id"]) == (False, registered["id"]), "updated in place, by name"
        named = [hook for hook in client.list_webhooks() if hook.name == "kitmlflow-register-test"]
        assert len(named) == 1 and sorted(str(e) for e in named[0].events) == WEBHOOK_EVENTS
        assert client.test_webhook(registered["id"]).success
        assert again.stop() == 0

        # Signed with another secret, the same test event is refused (401): MLflow reports the failure.
        other = a_watch(
            watches,
            watch_env(isolated_env, KITMLFLOW_WEBHOOK_SECRET="another-secret-000"),
            isolated_env,
            port,
            *args[:5],
        )
        other.start()
        refused = client.test_webhook(registered["id"])
        assert not refused.success and refused.response_status == 401
        assert other.metrics()['kitmlflow_watch_events_refused_total{reason="bad_signature"}'] == 1
        assert other.stop() == 0
    finally:
        client.delete_webhook(registered["id"])


# -- two replicas on one state folder ------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_a_second_watch_on_the_same_state_folder_waits_then_takes_over(
    hooked: Hooked, isolated_env: Path, watches: list[WatchProcess]
) -> None:
    state = isolated_env / "shared-state"
    args = [
        f"mlflow://{hooked.live.host}/models/watch-replicas",
        "--to",
        "127.0.0.1:9/team/watch-replicas",
        "--reconcile-every",
        "0",
        "--state-dir",
        str(state),
    ]
    env = watch_env(isolated_env)
    first = a_watch(watches, env, isolated_env, free_port(), *args).start()
    second = a_watch(watches, env, isolated_env, free_port(), *args).start(healthy=False)
    wait_until("the second in standby", lambda: second.lines("standby"), STARTUP_SECONDS, while_alive=second.alive)
    assert not second.healthy() and not second.lines("start"), "a standby does not listen"
    assert first.stop() == 0
    wait_until("the second took over", second.healthy, STARTUP_SECONDS, while_alive=second.alive)
    assert second.lines("start")[0]["state_dir"] == str(state)
    assert second.stop() == 0


# -- floods ----------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_more_connections_than_it_serves_get_429_and_the_watch_recovers(
    hooked: Hooked, isolated_env: Path, watches: list[WatchProcess]
) -> None:
    from kitmlflow_tui.watch.receiver import MAX_CONNECTIONS

    port = free_port()
    args = [
        f"mlflow://{hooked.live.host}/models/watch-flood",
        "--to",
        "127.0.0.1:9/team/flood",
        "--reconcile-every",
        "0",
    ]
    watch = a_watch(watches, watch_env(isolated_env), isolated_env, port, *args).start()
    # Every connection is opened before any is read: the server accepts them in order, serves the first
    # MAX_CONNECTIONS (which send nothing) and answers the others at once. (One more may be answered: a slot
    # of the start's last /healthz may not be free yet when the connections arrive.)
    extra = 10
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS + extra)]
    answered: dict[socket.socket, bytes] = {}
    try:
        deadline = time.monotonic() + 30
        while len(answered) < extra and time.monotonic() < deadline:
            readable, _, _ = select.select([s for s in sockets if s not in answered], [], [], 1)
            for sock in readable:
                answered[sock] = sock.recv(100)
        readable, _, _ = select.select([s for s in sockets if s not in answered], [], [], 1)
        answered.update((sock, sock.recv(100)) for sock in readable)
    finally:
        for sock in sockets:
            sock.close()
    assert len(answered) in (extra, extra + 1), answered.values()
    assert all(answer.startswith(b"HTTP/1.0 429 ") for answer in answered.values()), answered.values()
    # The slots come back as the server sees the connections close: until then a request of ours may be
    # refused too (a 429, or a reset when the server closes with the request unread): counted as well.
    ours_refused = 0

    def served(path: str) -> requests.Response:
        nonlocal ours_refused
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
                if answer.status_code != 429:
                    return answer
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{path} still refused after 30 s"
            ours_refused += 1
            time.sleep(0.1)

    assert served("/healthz").status_code == 200
    text = served("/metrics").text
    refused = float(text.split('kitmlflow_watch_events_refused_total{reason="too_many_connections"} ')[1].split()[0])
    assert refused == len(answered) + ours_refused
    refusals = [line for line in watch.lines("webhook") if line.get("reason") == "too_many_connections"]
    assert len(refusals) == 1, "one log line for the burst, not one per connection"
    assert watch.stop() == 0
