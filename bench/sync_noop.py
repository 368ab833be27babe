"""``kitmlflow sync`` of a registered model with 20 small versions when nothing changed: the no-op pass.

A real proxied ``mlflow server`` and a real ``docker-registry`` (CNCF distribution 2.8, plain HTTP, no auth),
both on 127.0.0.1. The model ``bench-noop`` gets ``--versions`` versions (default 20), each from its own
FINISHED run whose artifacts hold a small model folder (``MLmodel``, 20 kB of weights, a note), registered
as ``runs:/RUN/model``; the alias ``champion`` points at the newest. A first sync pushes every version and
the alias's tag (timed too, for reference). Then each round runs the same sync again, when the registry is
in step, in a fresh subprocess, two ways:

- the command: ``kitmlflow sync mlflow://127.0.0.1:PORT/models/bench-noop --to HOST/bench/noop --yes --json
  --packer native`` (wall time, Python start-up and ``import mlflow`` included);
- in-process: a ``python -c`` driver that imports everything first, then times ``run_sync`` alone.

Requests: the registry's access log and the mlflow server's (uvicorn's access lines) during the command,
per version. Every no-op pass is checked to push nothing (no blob upload, no manifest PUT in the registry's
log) and to report every version as skipped. Target: the no-op pass under 5 s.

Run: ``.venv/bin/python bench/sync_noop.py [--quick] [--runs N] [--workdir DIR] [--versions N]``
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import _common as c

from tests.support.registry_servers import manifest_puts, registry_available, registry_server, uploads

MODEL = "bench-noop"
REPOSITORY = "bench/noop"
TARGET_SECONDS = 5.0
MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
_SERVER_REQUEST = re.compile(r'"(GET|POST|PATCH|DELETE|PUT) (/api/\S+|/ajax-api/\S+) HTTP/1\.1" \d{3}')

DRIVER = (
    c.PREAMBLE
    + """
start = time.perf_counter()
from kitmlflow_tui.core.reference import parse_reference
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.core.sync import SyncOptions, parse_target, run_sync
imported = time.perf_counter()
reference = parse_reference(sys.argv[1], all_versions=True)
result = run_sync(reference, SyncOptions(target=parse_target(sys.argv[2]), spec=FilterSpec(), packer="native"))
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "sync_s": done - imported, "exit_code": result.exit_code,
                  "counts": result.counts()}))
"""
)


def register_versions(url: str, count: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    client.create_registered_model(MODEL)
    version = "0"
    for number in range(1, count + 1):
        _, run_id = c.seed_run(
            url,
            experiment_name="bench-sync",
            files={
                "model/MLmodel": MLMODEL,
                "model/weights.bin": 20_000 + number,
                "model/notes.txt": f"version {number}\n".encode(),
            },
        )
        version = str(client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id).version)
    client.set_registered_model_alias(MODEL, "champion", version)


def server_requests(log: Path, offset: int) -> int:
    with open(log, "rb") as handle:
        handle.seek(offset)
        return len(_SERVER_REQUEST.findall(handle.read().decode(errors="replace")))


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--versions", type=int, default=20, help="versions of the registered model (default 20)")
    args = p.parse_args()
    report = c.Report("sync_noop", args)
    if registry_available():
        print(f"skipped: {registry_available()}")
        report.notes.append("skipped: no registry")
        report.finish()
        return 0
    with c.workdir(args, "sync") as work, c.server(work) as srv, registry_server(work / "registry") as registry:
        register_versions(srv.url, args.versions)
        uri = f"mlflow://127.0.0.1:{srv.port}/models/{MODEL}"
        to = f"{registry.host}/{REPOSITORY}"
        env = c.client_env(
            {
                "KITOPS_HOME": str(work / "kitops"),
                "KITMLFLOW_CACHE_DIR": str(work / "cache"),
                "DOCKER_CONFIG": str(work / "docker"),
            }
        )
        command = [*c.KITMLFLOW_CLI, "sync", uri, "--to", to, "--yes", "--json", "--packer", "native"]
        first = c.measure("sync-first", command, env=env, logs=work / "logs")
        counts = json.loads(first.stdout)["summary"]
        if counts["pushed"] != args.versions or counts["tag_created"] != 1:
            raise RuntimeError(f"the first sync did not push every version: {counts}")
        report.measurements.append(first.json())
        print(f"first sync: {args.versions} versions pushed and the alias's tag created in {c.fmt_s(first.wall)}")

        commands: list[c.Measurement] = []
        inside: list[float] = []
        requests_registry: list[int] = []
        requests_mlflow: list[int] = []
        for r in range(c.runs_of(args)):
            c.settle()
            mark, offset = registry.mark(), srv.log_path.stat().st_size
            m = c.measure(f"sync-noop-{r}", command, env=env, logs=work / "logs")
            sent = registry.since(mark)
            doc = json.loads(m.stdout)
            if uploads(sent) or manifest_puts(sent) or doc["summary"]["skipped"] != args.versions + 1:
                raise RuntimeError(f"the no-op sync changed something: {doc['summary']}, {len(uploads(sent))} uploads")
            requests_registry.append(len(sent))
            requests_mlflow.append(server_requests(srv.log_path, offset))
            commands.append(m)
            d = c.measure(f"sync-noop-inprocess-{r}", [c.PYTHON, "-c", DRIVER, uri, to], env=env, logs=work / "logs")
            inside.append(c.last_json(d.stdout)["sync_s"])
            report.measurements.extend([m.json(), d.json()])
            print(
                f"  round {r + 1}: command {c.fmt_s(m.wall)} (CPU {m.cpu:.1f} s), run_sync alone {c.fmt_s(inside[-1])}; "
                f"{requests_registry[-1]} registry + {requests_mlflow[-1]} mlflow requests",
                flush=True,
            )
    per_version = c.median(requests_registry) / args.versions
    rows = [
        {"case": "first sync (push everything)", "best_s": round(first.wall, 3), "median_s": round(first.wall, 3)},
        {
            "case": "no-op sync, command",
            "best_s": round(c.best([m.wall for m in commands]), 3),
            "median_s": round(c.median([m.wall for m in commands]), 3),
            "peak_rss_tree_bytes": max(m.rss_tree for m in commands),
        },
        {
            "case": "no-op sync, run_sync alone",
            "best_s": round(c.best(inside), 3),
            "median_s": round(c.median(inside), 3),
        },
    ]
    report.rows.extend(rows)
    print()
    print(
        c.table(
            [f"{args.versions} versions + 1 alias", "best", "median"],
            [[row["case"], c.fmt_s(row["best_s"]), c.fmt_s(row["median_s"])] for row in rows],
        )
    )
    print(
        f"requests of a no-op pass (median): {c.median(requests_registry):.0f} to the registry "
        f"({per_version:.2f} per version), {c.median(requests_mlflow):.0f} to the mlflow server"
    )
    report.notes.append(
        json.dumps(
            {
                "versions": args.versions,
                "registry_requests": requests_registry,
                "mlflow_requests": requests_mlflow,
                "registry_requests_per_version": per_version,
            }
        )
    )
    median_command = rows[1]["median_s"]
    report.target(
        f"no-op sync of {args.versions} versions under {TARGET_SECONDS:.0f} s",
        median_command < TARGET_SECONDS,
        f"median {c.fmt_s(median_command)} for the command (start-up included), "
        f"{c.fmt_s(rows[2]['median_s'])} for run_sync alone",
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
