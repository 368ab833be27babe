"""kitmlflow download vs `mlflow artifacts download` on the same run, through a real proxied server.

The run (≈1 GB): three 300 MiB files (``model/weights.safetensors``, ``checkpoints/ckpt-{1,2}.bin``) and
400 small files of 4-200 KB in 40 folders (``samples/group-NN/item-NNN.json``), plus the seed README.

Measured, each in a fresh subprocess with a fresh, empty destination, alternating the order of the tools
from one round to the next:

(a) the whole run: ``mlflow artifacts download -r RUN -d DEST`` vs ``kitmlflow download URI --dest DEST --yes``;
(b) a filtered selection, ``--exclude '*.bin'`` (the small files and the safetensors file) vs the same
    peer, since MLflow's CLI can only take the whole run or one path;
and, to separate start-up from transfer, the same two whole-run downloads in-process: a subprocess imports
mlflow (and kitmlflow) first, then times only ``mlflow.artifacts.download_artifacts(run_id=...)`` (what the
CLI calls) or ``pipeline.plan`` + ``pipeline.download`` (what ``kitmlflow download`` calls).

Run: ``.venv/bin/python bench/download_vs_mlflow.py [--quick] [--runs N] [--workdir DIR]``
"""

from __future__ import annotations

import random
import sys

import _common as c

LARGE = {
    "model/weights.safetensors": 300 * c.MiB,
    "checkpoints/ckpt-1.bin": 300 * c.MiB,
    "checkpoints/ckpt-2.bin": 300 * c.MiB,
}
SMALL_FOLDERS = 40
SMALL_PER_FOLDER = 10
EXCLUDE = "*.bin"

MLFLOW_INPROC = (
    c.PREAMBLE
    + """
url, run_id, dest = sys.argv[1:4]
start = time.perf_counter()
mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=dest, tracking_uri=url)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""
)

KIT_INPROC = (
    c.PREAMBLE
    + """
from pathlib import Path
from kitmlflow_tui.core import pipeline
from kitmlflow_tui.cli import download as command
from kitmlflow_tui.core.reference import parse_reference
from kitmlflow_tui.core.selection.plan import FilterSpec
uri, dest, *excludes = sys.argv[1:]
jobs = next(p.default for p in command.params if p.name == "jobs")  # the CLI's default --jobs
start = time.perf_counter()
session = pipeline.plan(parse_reference(uri), FilterSpec(exclude=tuple(excludes)), jobs=jobs)
result = pipeline.download(session, Path(dest), jobs=jobs)
print(json.dumps({"seconds": time.perf_counter() - start, "downloaded_bytes": result.downloaded_bytes, "jobs": jobs}))
"""
)


def small_files() -> dict[str, int]:
    rng = random.Random(20240601)
    return {
        f"samples/group-{g:02d}/item-{i:03d}.json": rng.randint(4_000, 200_000)
        for g in range(SMALL_FOLDERS)
        for i in range(SMALL_PER_FOLDER)
    }


def seed(srv: c.MlflowServer) -> tuple[str, dict[str, int]]:
    _, run_id, folder = c.seeded_run(srv, "bench-download")
    files = {"README.txt": (folder / "README.txt").stat().st_size, **LARGE, **small_files()}
    for rel, size in files.items():
        if rel != "README.txt":
            c.write_file(folder / rel, size)
    c.settle()
    return run_id, files


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    runs = c.runs_of(args)
    report = c.Report("download_vs_mlflow", args)
    with c.workdir(args, "download") as work, c.server(work) as srv:
        run_id, files = seed(srv)
        total = sum(files.values())
        selected = {p: s for p, s in files.items() if not p.endswith(".bin")}
        selected_bytes = sum(selected.values())
        print(
            f"run {run_id}: {len(files)} files, {c.fmt_mb(total)}; filtered (--exclude '{EXCLUDE}'): "
            f"{len(selected)} files, {c.fmt_mb(selected_bytes)}; {runs} run(s) each",
            flush=True,
        )
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        logs = work / "logs"
        log = c.ServerLog(srv)

        cases = {
            "mlflow-cli": lambda d: [*c.MLFLOW_CLI, "artifacts", "download", "-r", run_id, "-d", str(d)],
            "kitmlflow-cli": lambda d: [*c.KITMLFLOW_CLI, "download", uri, "--dest", str(d), "--yes", "--json"],
            "kitmlflow-cli-filtered": lambda d: [
                *c.KITMLFLOW_CLI,
                "download",
                uri,
                "--dest",
                str(d),
                "--yes",
                "--json",
                "--exclude",
                EXCLUDE,
            ],
            "mlflow-inproc": lambda d: [c.PYTHON, "-c", MLFLOW_INPROC, srv.url, run_id, str(d)],
            "kitmlflow-inproc": lambda d: [c.PYTHON, "-c", KIT_INPROC, uri, str(d)],
        }
        results: dict[str, list[c.Measurement]] = {name: [] for name in cases}
        for r in range(runs):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for name in order:
                dest = work / f"dest-{name}-{r}"
                c.remove(dest)
                c.settle()
                log.mark()
                cpu_before = c.server_cpu_seconds(srv)
                m = c.measure(f"{name}-{r}", cases[name](dest), env=env, logs=logs)
                m.extra["server_cpu"] = c.server_cpu_seconds(srv) - cpu_before
                fetched = log.fetched(run_id)
                m.extra["server_gets"] = len(fetched)
                m.extra["server_served"] = sum(files.get(path, 0) for path in fetched)
                m.extra["fetched_only_selected"] = sorted(fetched) == sorted(
                    selected if name.endswith("filtered") else files
                )
                n_files, n_bytes = c.tree_bytes(dest)
                m.extra["dest_files"], m.extra["dest_bytes"] = n_files, n_bytes
                if name.startswith("kitmlflow"):
                    doc = c.last_json(m.stdout)
                    m.extra["downloaded_bytes"] = doc["downloaded_bytes"]
                    if "selected_bytes" in doc:
                        m.extra["selected_bytes"] = doc["selected_bytes"]
                    if "seconds" in doc:
                        m.extra["jobs"] = doc.get("jobs")
                else:
                    m.extra["downloaded_bytes"] = n_bytes  # what MLflow moved: the size of DEST
                if "inproc" in name:
                    m.extra["transfer_seconds"] = c.last_json(m.stdout)["seconds"]
                want = selected if name.endswith("filtered") else files
                m.extra["complete"] = n_files == len(want) and n_bytes == sum(want.values())
                results[name].append(m)
                report.measurements.append(m.json())
                print(
                    f"  round {r + 1}/{runs} {name:<24} {c.fmt_s(m.wall):>9}  "
                    f"moved {c.fmt_mb(m.extra['downloaded_bytes']):>11}  "
                    f"served {m.extra['server_gets']} files, {c.fmt_mb(m.extra['server_served']):>11}  "
                    f"rss {c.fmt_mb(m.rss_tree):>9}  cpu {m.cpu:5.1f} s  server cpu {m.extra['server_cpu']:5.1f} s"
                    + (f"  (transfer {c.fmt_s(m.extra['transfer_seconds'])})" if "inproc" in name else ""),
                    flush=True,
                )
                c.remove(dest)
        c.settle()

    def stat(name: str) -> tuple[float, float]:
        """Best and median seconds: the process's wall time, or for in-process rows the timed call."""
        values = [m.extra.get("transfer_seconds", m.wall) for m in results[name]]
        return c.best(values), c.median(values)

    peer_best, peer_median = stat("mlflow-cli")
    rows = []
    for name, case, peer in [
        ("mlflow-cli", "(a) whole run, CLI", "mlflow-cli"),
        ("kitmlflow-cli", "(a) whole run, CLI", "mlflow-cli"),
        ("kitmlflow-cli-filtered", "(b) --exclude '*.bin', CLI", "mlflow-cli"),
        ("mlflow-inproc", "(a') whole run, in-process", "mlflow-inproc"),
        ("kitmlflow-inproc", "(a') whole run, in-process", "mlflow-inproc"),
    ]:
        b, med = stat(name)
        pb, pm = stat(peer)
        ms = results[name]
        row = {
            "case": case,
            "tool": name,
            "best_s": round(b, 3),
            "median_s": round(med, 3),
            "ratio_vs_mlflow_best": round(b / pb, 3),
            "ratio_vs_mlflow_median": round(med / pm, 3),
            "moved_bytes": ms[-1].extra["downloaded_bytes"],
            "server_served_bytes": max(m.extra["server_served"] for m in ms),
            "server_gets": max(m.extra["server_gets"] for m in ms),
            "client_cpu_s": round(c.median([m.cpu for m in ms]), 2),
            "server_cpu_s": round(c.median([m.extra["server_cpu"] for m in ms]), 2),
            "peak_rss_tree_bytes": max(m.rss_tree for m in ms),
            "maxrss_bytes": max(m.maxrss for m in ms),
            "complete": all(m.extra["complete"] for m in ms),
        }
        if "inproc" in name:
            row["process_median_s"] = round(c.median([m.wall for m in ms]), 3)
        rows.append(row)
    report.rows = rows
    print()
    print(
        c.table(
            [
                "case",
                "tool",
                "best",
                "median",
                "ratio best",
                "ratio median",
                "moved",
                "server served",
                "CPU",
                "server CPU",
                "peak RSS",
                "complete",
            ],
            [
                [
                    r["case"],
                    r["tool"],
                    c.fmt_s(r["best_s"]),
                    c.fmt_s(r["median_s"]),
                    c.fmt_ratio(r["ratio_vs_mlflow_best"]),
                    c.fmt_ratio(r["ratio_vs_mlflow_median"]),
                    c.fmt_mb(r["moved_bytes"]),
                    f"{c.fmt_mb(r['server_served_bytes'])} ({r['server_gets']} files)",
                    f"{r['client_cpu_s']:.1f} s",
                    f"{r['server_cpu_s']:.1f} s",
                    c.fmt_mb(r["peak_rss_tree_bytes"]),
                    "yes" if r["complete"] else "NO",
                ]
                for r in rows
            ],
            left=2,
        )
    )
    print(
        "ratio = kitmlflow time / mlflow time (below 1 is faster). CLI rows: wall time of the whole command. "
        "In-process rows: the download call alone, imports excluded, divided by MLflow's in-process row. "
        "moved: kitmlflow's downloaded_bytes, MLflow's DEST size. server served: files the server's access log "
        "shows as fetched. CPU: the client process (imports included); server CPU: the mlflow server's. "
        "Peak RSS: psutil, RSS of the process tree summed, sampled every 50 ms (the summed VmHWM is in the JSON as maxrss)."
    )
    print()
    kit_best, kit_median = stat("kitmlflow-cli")
    report.target(
        "full download no slower than MLflow's CLI",
        kit_median <= peer_median and rows[1]["complete"],
        f"median {c.fmt_s(kit_median)} vs {c.fmt_s(peer_median)} ({c.fmt_ratio(kit_median / peer_median)}), "
        f"best {c.fmt_s(kit_best)} vs {c.fmt_s(peer_best)} ({c.fmt_ratio(kit_best / peer_best)})",
    )
    filtered = results["kitmlflow-cli-filtered"]
    moved_ok = all(
        m.extra["downloaded_bytes"] == selected_bytes
        and m.extra.get("selected_bytes") == selected_bytes
        and m.extra["complete"]
        and m.extra["fetched_only_selected"]
        and m.extra["server_served"] == selected_bytes
        for m in filtered
    )
    report.target(
        "filtered download moves only the selected bytes",
        moved_ok,
        f"selected {c.fmt_mb(selected_bytes)}; kitmlflow moved {c.fmt_mb(filtered[-1].extra['downloaded_bytes'])} "
        f"(the server's access log: {filtered[-1].extra['server_gets']} files, "
        f"{c.fmt_mb(filtered[-1].extra['server_served'])}); "
        f"the peer moves the whole run, {c.fmt_mb(results['mlflow-cli'][-1].extra['downloaded_bytes'])}",
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
