"""``kitmlflow watch``: how many webhook deliveries a second the receiver takes, and how long a new version of
a 100 MB model takes to answer in the registry after MLflow registered it.

A real ``mlflow server`` (SQLite backend, webhooks on, as ``tests/support/servers.py`` starts it with
``webhooks=True``), a real ``docker-registry`` (plain HTTP, no auth) and ``kitmlflow watch`` as a subprocess
following the model ``bench-watch`` (``--register-webhook`` creates its MLflow webhook before any event).

1. **Receiver throughput.** ``--events`` deliveries (default 2000), each a ``model_version.created`` of the
   followed model signed as MLflow signs it with its own delivery id, all prepared before the clock starts,
   then sent over ``--concurrency`` connections at once (raw sockets, one request per connection, as
   MLflow's client sends them). Events per second = deliveries answered 202 / the wall time from the first
   send to the last answer. Each was checked, written to the on-disk queue with its id and answered; the worker
   meanwhile syncs the model (coalesced: a few syncs, not one per event). Target: at least 500 a second.
2. **Event to tag.** ``--runs`` times (default 5): a new run with ``model/MLmodel`` and ``--size`` bytes of
   incompressible weights (default 100 MB, unique per version so no blob is shared), then the clock starts
   when ``MlflowClient.create_model_version`` returns and stops when ``GET /v2/bench/watch/manifests/vN``
   answers 200 (polled every 50 ms). The median is reported. Target (the contract): within 30 s.

Run: ``.venv/bin/python bench/watch.py [--quick] [--runs N] [--events N] [--concurrency N] [--size BYTES]``
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import _common as c
import requests

from tests.support.registry_servers import registry_available, registry_server
from tests.support.servers import free_port, mlflow_server

MODEL = "bench-watch"
REPOSITORY = "bench/watch"
SECRET = "bench-watch-secret-0123456789abcdef"
EVENTS_TARGET = 500.0
TAG_TARGET_SECONDS = 30.0
MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"


def delivery(port: int) -> bytes:
    """One signed ``model_version.created`` for the followed model, as raw HTTP/1.0 bytes."""
    body = json.dumps(
        {
            "entity": "model_version",
            "action": "created",
            "timestamp": "2026-12-06T00:00:00+00:00",
            "data": {"name": MODEL, "version": "1", "source": "models:/m-0", "run_id": None, "tags": {}},
        }
    ).encode()
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    head = (
        f"POST /webhooks/mlflow HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-MLflow-Delivery-Id: {delivery_id}\r\nX-MLflow-Timestamp: {stamp}\r\n"
        f"X-MLflow-Signature: v1,{base64.b64encode(mac).decode()}\r\n\r\n"
    )
    return head.encode() + body


def send_all(port: int, requests_bytes: list[bytes], concurrency: int) -> tuple[float, dict[str, int]]:
    """Send every request over ``concurrency`` connections at a time; (wall seconds, answers by status)."""
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    cursor = iter(requests_bytes)

    def sender() -> None:
        while True:
            with lock:
                data = next(cursor, None)
            if data is None:
                return
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(data)
                    answer = sock.recv(64)
                status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
            except OSError as exc:
                status = type(exc).__name__
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=sender) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, statuses


def metric(port: int, name: str) -> float:
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def add_version(srv, client, number: int, size: int) -> tuple[float, str]:
    """A new version with ``size`` bytes of weights; (the moment create_model_version returned, version)."""
    exp_id, run_id = c.seed_run(
        srv.url, experiment_name="bench-watch", files={"model/MLmodel": MLMODEL}, run_name=f"bench-watch-{number}"
    )
    weights = srv.root / "art" / exp_id / run_id / "artifacts" / "model" / "weights.bin"
    c.write_file(weights, size)
    with open(weights, "r+b") as handle:  # a prefix of its own: no blob of one version is another's
        handle.write(uuid.uuid4().bytes)
    c.settle()
    version = str(client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id).version)
    return time.perf_counter(), version


def wait_for_tag(registry, tag: str, timeout: float = 600) -> float:
    url = f"{registry.url}/v2/{REPOSITORY}/manifests/{tag}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if requests.get(url, headers=accept, timeout=10).status_code == 200:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"{tag} did not reach the registry within {timeout:.0f} s")


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000, help="deliveries sent to the receiver (default 2000)")
    p.add_argument("--concurrency", type=int, default=8, help="connections at once (default 8)")
    p.add_argument("--size", type=int, default=100 * c.MB, help="bytes of weights per version (default 100 MB)")
    p.set_defaults(runs=5)
    args = p.parse_args()
    report = c.Report("watch", args)
    if registry_available():
        print(f"skipped: {registry_available()}")
        report.notes.append("skipped: no registry")
        report.finish()
        return 0
    events = 500 if args.quick and args.events == 2000 else args.events
    from mlflow import MlflowClient

    with (
        c.workdir(args, "watch") as work,
        mlflow_server(work / "server", webhooks=True) as srv,
        registry_server(work / "registry") as registry,
    ):
        print(f"mlflow server {srv.url} ready in {srv.ready_seconds:.1f} s", flush=True)
        port = free_port()
        env = c.client_env(
            {
                "KITOPS_HOME": str(work / "kitops"),
                "KITMLFLOW_CACHE_DIR": str(work / "cache"),
                "DOCKER_CONFIG": str(work / "docker"),
                "KITMLFLOW_WEBHOOK_SECRET": SECRET,
            }
        )
        command = [
            *c.KITMLFLOW_CLI, "watch", f"mlflow://127.0.0.1:{srv.port}/models/{MODEL}",
            "--to", f"{registry.host}/{REPOSITORY}", "--packer", "native", "--reconcile-every", "0",
            "--listen", f"127.0.0.1:{port}", "--state-dir", str(work / "state"), "--json",
            "--register-webhook", "--public-url", f"http://127.0.0.1:{port}",
        ]  # fmt: skip
        (work / "logs").mkdir()
        with open(work / "logs" / "watch.jsonl", "wb") as log:
            watch = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.perf_counter() + 120
            while "webhook_registered" not in (work / "logs" / "watch.jsonl").read_text(errors="replace"):
                if watch.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError((work / "logs" / "watch.jsonl").read_text(errors="replace"))
                time.sleep(0.1)
            client = MlflowClient(srv.url)
            client.create_registered_model(MODEL)

            # 1. the receiver
            prepared = [delivery(port) for _ in range(events)]
            c.settle()
            wall, statuses = send_all(port, prepared, args.concurrency)
            accepted = statuses.get("202", 0)
            rate = accepted / wall
            received = metric(port, 'kitmlflow_watch_events_received_total{event="model_version.created"}')
            print(
                f"receiver: {accepted} of {events} deliveries accepted in {c.fmt_s(wall)} over "
                f"{args.concurrency} connections: {rate:.0f} events/s (answers {statuses}; the watch counted "
                f"{received:.0f})",
                flush=True,
            )
            report.rows.append({"case": "receiver, deliveries accepted per second", "value": round(rate, 1)})
            report.notes.append(json.dumps({"events": events, "statuses": statuses, "wall_s": wall}))

            # 2. event to tag
            latencies = []
            for r in range(c.runs_of(args)):
                registered, version = add_version(srv, client, r + 1, args.size)
                answered = wait_for_tag(registry, f"v{version}")
                latencies.append(answered - registered)
                print(f"  run {r + 1}: v{version} answered {c.fmt_s(latencies[-1])} after create_model_version")
            report.rows.append(
                {
                    "case": f"create_model_version to tag answering, {c.fmt_mb(args.size)}",
                    "best_s": round(c.best(latencies), 3),
                    "median_s": round(c.median(latencies), 3),
                }
            )
        finally:
            watch.terminate()
            code = watch.wait(timeout=120)
            if code != 0:
                print(f"the watch exited with {code} after SIGTERM", file=sys.stderr)
    print()
    print(
        c.table(
            ["", "value"],
            [
                ["deliveries accepted per second", f"{rate:.0f}"],
                [f"event to tag, {c.fmt_mb(args.size)} (median of {len(latencies)})", c.fmt_s(c.median(latencies))],
            ],
        )
    )
    report.target(f"receiver accepts at least {EVENTS_TARGET:.0f} events/s", rate >= EVENTS_TARGET, f"{rate:.0f}/s")
    report.target(
        f"a {c.fmt_mb(args.size)} version answers within {TAG_TARGET_SECONDS:.0f} s",
        c.median(latencies) <= TAG_TARGET_SECONDS,
        f"median {c.fmt_s(c.median(latencies))} ({', '.join(c.fmt_s(x) for x in latencies)})",
    )
    report.finish()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
