"""Listing a run of 10,000 files in 1,000 folders: kitmlflow's parallel listing vs MLflow's serial walk.

The run: ``shards/group-GG/shard-SSS/file-N.txt``, 10 groups x 100 shards = 1,000 folders of 10 tiny
files, written straight into the proxied server's artifact folder (plus the seed README).

What MLflow does: ``mlflow artifacts download -r RUN`` calls ``mlflow.artifacts.download_artifacts``,
which gets the run, builds the artifact repository of its artifact URI (``HttpArtifactRepository``
for ``mlflow-artifacts:``), and its ``download_artifacts("")`` lists the root once, then walks the tree
with ``ArtifactRepository._iter_artifacts_recursive``: one ``list_artifacts(path)`` request per folder,
one after the other (the downloads go to a thread pool; the listing does not). The peer below runs
exactly that: the root listing, then MLflow's own ``_iter_artifacts_recursive("")``, on the same
repository object. ``MlflowClient.list_artifacts(run_id, path)`` walked recursively is also timed, for
reference: with a path, every call builds a ``runs:/`` repository (another ``get_run``, a logged-model
search), so it is slower than what the download itself does, and the ratio uses the faster walk. That
reference walk is timed in the first round only (it takes minutes).

Measured, each in a fresh subprocess, alternating the order from one round to the next:
- in-process (imports done and the run fetched before the clock starts): kitmlflow's
  ``Catalogue(url).run_tree(run)`` (its default 8 listing threads; it also searches the run's logged
  models) vs the two walks above;
- for reference, a bare HTTP client (plain ``requests``, 8 threads, no MLflow code): the least any client
  can do per folder;
- whole command: ``kitmlflow import URI -t bench/listing:1 --dry-run --json`` vs a ``python -c`` script that
  imports mlflow and does MLflow's walk (MLflow's CLI has no recursive listing command). The dry run also
  builds its Kitfile preview after the listing, so this row measures more than listing.

Run: ``.venv/bin/python bench/listing.py [--quick] [--runs N] [--workdir DIR]``
"""

from __future__ import annotations

import sys

import _common as c

# Slow (≈1.5-2.5 min here) and only a reference: timed in the first round only.
ONCE = {"MlflowClient.list_artifacts walk (in-process)"}
GROUPS = 10
SHARDS = 100
FILES_PER_SHARD = 10

KIT_TREE = (
    c.PREAMBLE
    + """
from kitmlflow_tui.core.catalogue import Catalogue
url, run_id = sys.argv[1:3]
catalogue = Catalogue(url)
run = catalogue.get_run(run_id)
start, cpu = time.perf_counter(), time.process_time()
tree = catalogue.run_tree(run)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "files": len(tree.files), "jobs": catalogue.jobs}))
"""
)

# What mlflow.artifacts.download_artifacts(run_id=...) does before its first file transfer.
MLFLOW_WALK_BODY = """
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
url, run_id = sys.argv[1:3]
client = MlflowClient(url)
run = client.get_run(run_id)
repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=url)
start, cpu = time.perf_counter(), time.process_time()
root_listing = repo.list_artifacts("")  # download_artifacts("") lists the root first...
files = [f for f in repo._iter_artifacts_recursive("") if not f.is_dir]  # ...then walks, serially
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "files": len(files)}))
"""
MLFLOW_WALK = c.PREAMBLE + MLFLOW_WALK_BODY

CLIENT_WALK = (
    c.PREAMBLE
    + """
url, run_id = sys.argv[1:3]
client = MlflowClient(url)
client.get_run(run_id)

def walk(path=None):
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            yield from walk(info.path)
        else:
            yield info

start, cpu = time.perf_counter(), time.process_time()
files = list(walk())
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "files": len(files)}))
"""
)

# Not a tool: the least a client can do per folder (plain requests, one keep-alive session per thread,
# 8 threads, no MLflow code, no checks), to show how fast any client can list against this server.
BARE_CLIENT = (
    c.PREAMBLE
    + """
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from urllib.parse import urlsplit
import requests
url, run_id = sys.argv[1:3]
run = MlflowClient(url).get_run(run_id)
root = urlsplit(run.info.artifact_uri).path.lstrip("/")
local = threading.local()

def list_one(path):
    session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
    response = session.get(url + "/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{root}/{path}" if path else root})
    response.raise_for_status()
    return [(f"{path}/{f['path']}" if path else f["path"], f.get("is_dir", False)) for f in response.json().get("files", [])]

start, cpu = time.perf_counter(), time.process_time()
files = []
with ThreadPoolExecutor(8) as pool:
    pending = {pool.submit(list_one, "")}
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            for path, is_dir in future.result():
                if is_dir:
                    pending.add(pool.submit(list_one, path))
                else:
                    files.append(path)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "files": len(files)}))
"""
)


def seed(srv: c.MlflowServer) -> tuple[str, int]:
    _, run_id, folder = c.seeded_run(srv, "bench-listing")
    for g in range(GROUPS):
        for s in range(SHARDS):
            shard = folder / "shards" / f"group-{g:02d}" / f"shard-{s:03d}"
            shard.mkdir(parents=True)
            for n in range(FILES_PER_SHARD):
                (shard / f"file-{n}.txt").write_bytes(f"{g}/{s}/{n}\n".encode())
    c.settle()
    return run_id, GROUPS * SHARDS * FILES_PER_SHARD + 1


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    runs = c.runs_of(args)
    report = c.Report("listing", args)
    with c.workdir(args, "listing") as work, c.server(work) as srv:
        run_id, n_files = seed(srv)
        folders = 1 + 1 + GROUPS + GROUPS * SHARDS  # root, shards/, the groups, the shards
        print(f"run {run_id}: {n_files:,} files in {folders:,} folders; {runs} run(s) each", flush=True)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        log = c.ServerLog(srv)
        cases = {
            "kitmlflow run_tree (in-process)": [c.PYTHON, "-c", KIT_TREE, srv.url, run_id],
            "mlflow download walk (in-process)": [c.PYTHON, "-c", MLFLOW_WALK, srv.url, run_id],
            "MlflowClient.list_artifacts walk (in-process)": [c.PYTHON, "-c", CLIENT_WALK, srv.url, run_id],
            "bare HTTP client, 8 threads (in-process)": [c.PYTHON, "-c", BARE_CLIENT, srv.url, run_id],
            "kitmlflow import --dry-run (command)": [
                *c.KITMLFLOW_CLI,
                "import",
                uri,
                "-t",
                "bench/listing:1",
                "--dry-run",
                "--json",
            ],
            "python + mlflow download walk (command)": [c.PYTHON, "-c", MLFLOW_WALK, srv.url, run_id],
        }
        results: dict[str, list[c.Measurement]] = {name: [] for name in cases}
        for r in range(runs):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for name in order:
                if name in ONCE and results[name]:
                    continue
                c.settle()
                log.mark()
                cpu_before = c.server_cpu_seconds(srv)
                m = c.measure(f"{name}-{r}", cases[name], env=env, logs=work / "logs")
                m.extra["server_cpu"] = c.server_cpu_seconds(srv) - cpu_before
                doc = c.last_json(m.stdout)
                m.extra["files"] = doc["files"] if "files" in doc else len(doc["selected"])
                if "seconds" in doc and "(in-process)" in name:
                    m.extra["seconds"], m.extra["listing_cpu"] = doc["seconds"], doc["cpu"]
                else:
                    m.extra["seconds"] = m.wall
                if m.extra["files"] != n_files:
                    raise SystemExit(f"{name} listed {m.extra['files']} files, expected {n_files}")
                results[name].append(m)
                report.measurements.append(m.json())
                print(
                    f"  round {r + 1}/{runs} {name:<46} {c.fmt_s(m.extra['seconds']):>9}  "
                    f"(process {c.fmt_s(m.wall)}, cpu {m.cpu:.1f} s"
                    + (f", listing cpu {m.extra['listing_cpu']:.1f} s" if "listing_cpu" in m.extra else "")
                    + f", server cpu {m.extra['server_cpu']:.1f} s)",
                    flush=True,
                )

    def times(name: str) -> list[float]:
        return [m.extra["seconds"] for m in results[name]]

    rows = []
    pairs = [
        ("kitmlflow run_tree (in-process)", "mlflow download walk (in-process)"),
        ("mlflow download walk (in-process)", "mlflow download walk (in-process)"),
        ("MlflowClient.list_artifacts walk (in-process)", "mlflow download walk (in-process)"),
        ("bare HTTP client, 8 threads (in-process)", "mlflow download walk (in-process)"),
        ("kitmlflow import --dry-run (command)", "python + mlflow download walk (command)"),
        ("python + mlflow download walk (command)", "python + mlflow download walk (command)"),
    ]
    for name, peer in pairs:
        b, med = c.best(times(name)), c.median(times(name))
        pb, pm = c.best(times(peer)), c.median(times(peer))
        rows.append(
            {
                "tool": name,
                "best_s": round(b, 3),
                "median_s": round(med, 3),
                "speedup_vs_mlflow_best": round(pb / b, 2),
                "speedup_vs_mlflow_median": round(pm / med, 2),
                "client_cpu_s": round(c.median([m.cpu for m in results[name]]), 2),
                "listing_cpu_s": (
                    round(c.median([m.extra["listing_cpu"] for m in results[name]]), 2)
                    if "listing_cpu" in results[name][0].extra
                    else None
                ),
                "server_cpu_s": round(c.median([m.extra["server_cpu"] for m in results[name]]), 2),
                "peak_rss_tree_bytes": max(m.rss_tree for m in results[name]),
            }
        )
    report.rows = rows
    print()
    print(
        c.table(
            [
                "tool",
                "best",
                "median",
                "speedup best",
                "speedup median",
                "listing CPU",
                "process CPU",
                "server CPU",
                "peak RSS",
            ],
            [
                [
                    r["tool"],
                    c.fmt_s(r["best_s"]),
                    c.fmt_s(r["median_s"]),
                    c.fmt_ratio(r["speedup_vs_mlflow_best"]),
                    c.fmt_ratio(r["speedup_vs_mlflow_median"]),
                    f"{r['listing_cpu_s']:.1f} s" if r["listing_cpu_s"] is not None else "-",
                    f"{r['client_cpu_s']:.1f} s",
                    f"{r['server_cpu_s']:.1f} s",
                    c.fmt_mb(r["peak_rss_tree_bytes"]),
                ]
                for r in rows
            ],
        )
    )
    print(
        "speedup = MLflow's download walk time / this row's time (in-process rows against the in-process walk, "
        "command rows against the command). Listing CPU: the timed call's own CPU (process_time); process CPU: "
        "the whole process, imports included; server CPU: the mlflow server's during the measurement (medians)."
    )
    walk, kit, bare = rows[1], rows[0], rows[3]
    # The server's own work for one listing of the tree: the least CPU it spent on it across the tools
    # that send one request per folder. No client can finish before the server has done that work.
    server_work = min(r["server_cpu_s"] for r in (kit, walk, bare)) or float("nan")
    ceiling = walk["median_s"] / server_work
    report.notes.append(
        f"The server spends at least {server_work:.1f} s of CPU on the {folders:,} listing requests "
        f"({1000 * server_work / folders:.1f} ms each) in its one uvicorn worker; no client can list faster than "
        f"that, so against this server the speedup over MLflow's serial walk ({walk['median_s']:.1f} s) is capped "
        f"near {ceiling:.1f}x. A bare HTTP client with 8 threads reaches {bare['speedup_vs_mlflow_median']:.2f}x; "
        f"kitmlflow {kit['speedup_vs_mlflow_median']:.2f}x."
    )
    print(report.notes[-1])
    print()
    report.target(
        "listing at least 3x faster than MLflow's walk",
        kit["speedup_vs_mlflow_median"] >= 3.0,
        f"in-process median {c.fmt_s(kit['median_s'])} vs {c.fmt_s(rows[1]['median_s'])} "
        f"({c.fmt_ratio(kit['speedup_vs_mlflow_median'])}; best {c.fmt_ratio(kit['speedup_vs_mlflow_best'])}); "
        f"whole command {c.fmt_ratio(rows[4]['speedup_vs_mlflow_median'])}; server-bound ceiling ≈{ceiling:.1f}x",
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
