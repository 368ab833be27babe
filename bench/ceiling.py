"""kitmlflow download and import against the bare-client ceiling: the least work any client can do, per run shape.

A real proxied ``mlflow server`` on 127.0.0.1 (local artifact store) serves four runs, written straight into its
artifact folder (their bytes stay in the page cache: the subject is the clients, not the disk):

- ``small``: 1,200 files of 4-200 KB in 40 folders (≈123 MB);
- ``large``: one 2 GiB file;
- ``mix``: 512 MiB + 2 × 128 MiB + 400 files of 4-200 KB in 20 folders (≈860 MB);
- ``startup``: the seeded README alone: what each command pays before its first file (start-up, imports, the run).

Cases, each a fresh subprocess into fresh folders (``sync`` before each), the order reversed every other round:

- ``bare client``: ``bench/_bare_client.py``: the proxy's REST listing folder by folder, then 8 threads of plain
  ``http.client`` keep-alive GETs (a file of 32 MiB or more as 8 ranges), no MLflow import, no checks: the ceiling;
- ``curl``: the same listing, then ``curl --parallel --parallel-max 8`` for the files (one stream per file): a C client,
  for its CPU;
- ``kitmlflow download``: ``kitmlflow download URI --dest DIR --yes --json``;
- ``kitmlflow import``: ``kitmlflow import URI -t bench:v1 --yes --json --packer native`` (the direct import);
- ``kitmlflow import --sign-key``: the same, with ``--sign-key`` (ECDSA P-256) and ``--attestation-output``: every file
  hashed for the attestation;
- ``mlflow artifacts download -r RUN -d DIR``;
- ``sha256sum``: every file of the run on the server's disk, hashed (the CPU of one SHA-256 pass over the bytes);
- with ``--baseline REF``: ``kitmlflow download`` and ``import`` (with and without the key) of that git ref's package
  (``git archive`` into the work folder, first on ``PYTHONPATH``): before and after in one run. Both packages are
  compiled to ``.pyc`` first (``_common.compile_package``): start-up as an installed kitmlflow pays it.

Wall time and CPU (user + system of the process and its children) from ``wait4``; peak RSS of the process tree and
the allocated bytes of the destination or kit home, cache and ``TMPDIR`` polled every 50 ms (``_common``,
``pack_vs_kit.measure_disk``). CPU is given per 1,000 files (``small``) and per GB (``large``), whole and above the
``startup`` run's (the marginal cost of a file or a gigabyte).

Targets: download ≤ 1.05 × the bare client on each shape; import ≤ 1.05 × its own download; the import's peak disk ≤
1.02 × the ModelKit; peak RSS < 300 MB on the 2 GiB run. With ``--baseline``: the download's and import's CPU per
1,000 files above start-up at most half the baseline's.

Run: ``.venv/bin/python bench/ceiling.py [--quick] [--runs N] [--shapes small,large,mix,startup] [--cases NAMES]
[--baseline REF] [--workdir DIR] [--json-out FILE]``
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import _common as c
import pack_vs_kit as pk
from attest_overhead import signing_key

TAG = "bench:v1"
BARE = c.BENCH / "_bare_client.py"
TIME_TARGET = 1.05
DISK_TARGET = 1.02
RSS_TARGET = 300 * c.MB
CPU_TARGET = 0.5
SHAPES = ("small", "large", "mix", "startup")
CASES = (
    "bare client",
    "curl",
    "kitmlflow download",
    "kitmlflow import",
    "kitmlflow import --sign-key",
    "mlflow artifacts download",
    "sha256sum",
)
BASELINE_CASES = ("kitmlflow download", "kitmlflow import", "kitmlflow import --sign-key")


def small_files(count: int, folders: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {
        f"samples/group-{i % folders:02d}/item-{i // folders:03d}.json": rng.randint(4_000, 200_000)
        for i in range(count)
    }


def shape_files(shape: str) -> dict[str, int]:
    if shape == "small":
        return small_files(1200, 40, 20250101)
    if shape == "large":
        return {"model/weights.bin": 2048 * c.MiB}
    if shape == "mix":
        return {
            "model/weights.safetensors": 512 * c.MiB,
            "checkpoints/ckpt-1.bin": 128 * c.MiB,
            "checkpoints/ckpt-2.bin": 128 * c.MiB,
            **small_files(400, 20, 20250102),
        }
    return {}


@dataclass
class Seeded:
    """One shape's run on the server: its ids, its folder on the server's disk, (files, bytes)."""

    exp_id: str
    run_id: str
    folder: Path
    size: tuple[int, int]


Results = dict[tuple[str, str], list[dict]]


def parse_args() -> tuple[argparse.Namespace, list[str], list[str]]:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated case names (see the docstring)")
    p.add_argument("--baseline", metavar="REF", help="also measure kitmlflow of this git ref (e.g. main)")
    p.add_argument("--jobs", type=int, default=8, help="parallel requests of the bare client and curl (default 8)")
    args = p.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    cases = [name for name in args.cases.split(",") if name]
    if unknown := [s for s in shapes if s not in SHAPES] + [n for n in cases if n not in CASES]:
        p.error(f"unknown shapes or cases: {unknown}")
    if args.baseline:
        cases += [f"{name} @{args.baseline}" for name in BASELINE_CASES if name in cases]
    return args, shapes, cases


def seed(srv: c.MlflowServer, shapes: list[str]) -> dict[str, Seeded]:
    seeded = {}
    for shape in shapes:
        exp_id, run_id, folder = c.seeded_run(srv, f"bench-ceiling-{shape}")
        for rel, size in shape_files(shape).items():
            c.write_file(folder / rel, size)
        seeded[shape] = Seeded(exp_id, run_id, folder, c.tree_bytes(folder))
        files, size = seeded[shape].size
        print(f"{shape}: run {run_id}, {files} files, {c.fmt_mb(size)}", flush=True)
    c.settle()
    return seeded


def command(tool: str, run: Seeded, srv: c.MlflowServer, dest: Path, key: Path, jobs: int) -> list[str]:
    uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run.run_id}"
    importing = [*c.KITMLFLOW_CLI, "import", uri, "-t", TAG, "--yes", "--json", "--packer", "native"]
    bare = [c.PYTHON, str(BARE), srv.url, f"{run.exp_id}/{run.run_id}/artifacts", str(dest), "--jobs", str(jobs)]
    return {
        "bare client": bare,
        "curl": [*bare, "--fetch", "curl"],
        "kitmlflow download": [*c.KITMLFLOW_CLI, "download", uri, "--dest", str(dest), "--yes", "--json"],
        "kitmlflow import": importing,
        "kitmlflow import --sign-key": [
            *importing, "--sign-key", str(key), "--attestation-output", str(dest.parent / "tmp" / "attestation.json"),
        ],
        "mlflow artifacts download": [*c.MLFLOW_CLI, "artifacts", "download", "-r", run.run_id, "-d", str(dest)],
        "sha256sum": ["sh", "-c", 'find "$1" -type f -print0 | xargs -0 sha256sum >/dev/null', "sh", str(run.folder)],
    }[tool]  # fmt: skip


def measure_case(
    label: str, name: str, run: Seeded, srv: c.MlflowServer, work: Path, key: Path, args: argparse.Namespace,
    baseline: Path | None,
) -> tuple[dict, dict]:  # fmt: skip
    """One case in fresh folders: its row (wall, CPU, RSS, disk, the server's CPU) and the raw measurement."""
    home = pk.kit_home(work / "home")
    cache, dest, tmp = work / "cache", work / "dest", work / "tmp"
    for old in cache, dest, tmp:
        c.remove(old)
    tmp.mkdir()
    env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
    env.update(KITOPS_HOME=str(home), KITMLFLOW_CACHE_DIR=str(cache), TMPDIR=str(tmp))
    tool, _, ref = name.partition(" @")
    if ref and baseline is not None:
        env["PYTHONPATH"] = f"{baseline}:{env['PYTHONPATH']}"
    c.settle()
    server_before = c.server_cpu_seconds(srv)
    cmd = command(tool, run, srv, dest, key, args.jobs)
    measured = pk.measure_disk(label, cmd, env=env, logs=work / "logs", watch=[home, cache, dest, tmp])
    row = {
        "wall": measured.m.wall,
        "cpu": measured.m.cpu,
        "rss": max(measured.m.rss_tree, measured.m.maxrss),
        "disk_peak": measured.disk_peak,
        "storage": pk.disk_usage([home / "storage"]),
        "server_cpu": c.server_cpu_seconds(srv) - server_before,
    }
    if tool in ("bare client", "curl", "kitmlflow download", "mlflow artifacts download"):
        row["complete"] = c.tree_bytes(dest) == run.size
    return row, measured.m.json()


def print_row(r: int, runs: int, shape: str, name: str, row: dict) -> None:
    print(
        f"  round {r + 1}/{runs} {shape:<8} {name:<34} {c.fmt_s(row['wall']):>9}  CPU "
        f"{c.fmt_s(row['cpu']):>8}  server CPU {c.fmt_s(row['server_cpu']):>8}  peak RSS "
        f"{c.fmt_mb(row['rss']):>9}  disk peak {c.fmt_mb(row['disk_peak']):>10}"
        + (f"  ModelKit {c.fmt_mb(row['storage'])}" if row["storage"] else "")
        + ("" if row.get("complete", True) else "  INCOMPLETE"),
        flush=True,
    )


def med(results: Results, shape: str, name: str, key: str = "wall") -> float:
    return c.median([x[key] for x in results[(shape, name)]])


def print_shapes(results: Results, seeded: dict[str, Seeded], cases: list[str], report: c.Report) -> None:
    for shape, run in seeded.items():
        ceiling = med(results, shape, "bare client") if "bare client" in cases else None
        rows = []
        for name in cases:
            ms = results[(shape, name)]
            median = med(results, shape, name)
            rows.append(
                [
                    name,
                    c.fmt_s(c.best([x["wall"] for x in ms])),
                    c.fmt_s(median),
                    c.fmt_ratio(median / ceiling) if ceiling else "-",
                    c.fmt_s(med(results, shape, name, "cpu")),
                    c.fmt_s(med(results, shape, name, "server_cpu")),
                    c.fmt_mb(max(x["rss"] for x in ms)),
                    c.fmt_mb(med(results, shape, name, "disk_peak")),
                ]
            )
            report.rows.append(
                {"shape": shape, "case": name, **{k: med(results, shape, name, k) for k in ms[0] if k != "complete"}}
            )
        files, size = run.size
        print(f"\n{shape}: {files} files, {c.fmt_mb(size)}")
        print(c.table(["case", "best", "median", "/ ceiling", "CPU", "server CPU", "peak RSS", "peak disk"], rows))
    print(
        "Medians of the rounds (peak RSS: the highest). / ceiling: median wall over the bare client's. CPU: user + system "
        "of the process and its children (wait4); server CPU: the mlflow server's during the case."
    )


def cpu_per(results: Results, shapes: list[str], shape: str, name: str, unit: float) -> tuple[float, float | None]:
    """CPU per unit (1,000 files, or a GB): whole, and above the start-up run's."""
    whole = med(results, shape, name, "cpu") / unit
    if "startup" not in shapes:
        return whole, None
    return whole, (med(results, shape, name, "cpu") - med(results, "startup", name, "cpu")) / unit


def print_cpu(results: Results, seeded: dict[str, Seeded], cases: list[str]) -> None:
    shapes = list(seeded)
    units = {"small": seeded["small"].size[0] / 1000 if "small" in seeded else 0.0}
    units["large"] = seeded["large"].size[1] / 1e9 if "large" in seeded else 0.0
    cpu_rows = []
    for name in cases:
        row = [name]
        for shape in ("small", "large"):
            if shape in seeded:
                whole, above = cpu_per(results, shapes, shape, name, units[shape])
                row += [f"{whole:.2f} s", f"{above:.2f} s" if above is not None else "-"]
            else:
                row += ["-", "-"]
        row.append(c.fmt_s(med(results, "startup", name, "cpu")) if "startup" in seeded else "-")
        cpu_rows.append(row)
    print("\nclient CPU")
    headers = ["case", "per 1,000 files", "above start-up", "per GB", "above start-up", "start-up run"]
    print(c.table(headers, cpu_rows))
    print()


def check_targets(results: Results, seeded: dict[str, Seeded], args: argparse.Namespace, report: c.Report) -> None:
    shapes = list(seeded)

    def target_time(shape: str, name: str, peer: str, what: str) -> None:
        if (shape, name) in results and (shape, peer) in results:
            ratio = med(results, shape, name) / med(results, shape, peer)
            report.target(f"{what} ({shape})", ratio <= TIME_TARGET, f"{c.fmt_ratio(ratio)} (target ≤ {TIME_TARGET}x)")

    # The start-up run is the fixed cost every command pays (its CPU is subtracted above): no target of its own.
    for shape in (s for s in shapes if s != "startup"):
        target_time(shape, "kitmlflow download", "bare client", "download / bare-client ceiling")
        target_time(shape, "kitmlflow import", "kitmlflow download", "import / its download")
        if (shape, "kitmlflow import") in results:
            disk = med(results, shape, "kitmlflow import", "disk_peak") / med(
                results, shape, "kitmlflow import", "storage"
            )
            report.target(
                f"import peak disk / ModelKit ({shape})", disk <= DISK_TARGET, f"{disk:.3f}x (target ≤ {DISK_TARGET}x)"
            )
    for name in ("kitmlflow download", "kitmlflow import", "kitmlflow import --sign-key"):
        if ("large", name) in results:
            peak = max(x["rss"] for x in results[("large", name)])
            report.target(f"peak RSS, 2 GiB run ({name})", peak < RSS_TARGET, f"{c.fmt_mb(peak)} (< 300 MB)")
    if args.baseline and "small" in seeded:
        unit = seeded["small"].size[0] / 1000
        for name in BASELINE_CASES:
            before = f"{name} @{args.baseline}"
            if ("small", name) in results and ("small", before) in results:
                now, then = (
                    cpu_per(results, shapes, "small", name, unit),
                    cpu_per(results, shapes, "small", before, unit),
                )
                ratio = (now[1] if now[1] is not None else now[0]) / (then[1] if then[1] is not None else then[0])
                report.target(
                    f"CPU per 1,000 small files, {name} / {args.baseline}",
                    ratio <= CPU_TARGET,
                    f"{ratio:.2f}x (target ≤ {CPU_TARGET}x; above start-up when measured)",
                )


def main() -> int:
    args, shapes, cases = parse_args()
    runs = c.runs_of(args)
    report = c.Report("ceiling", args)
    results: Results = {}
    with c.workdir(args, "ceiling") as work, c.server(work) as srv:
        key = signing_key(work)
        c.compile_package()
        baseline = c.baseline_tree(args.baseline, work) if args.baseline else None
        seeded = seed(srv, shapes)
        for r in range(runs):
            for shape in shapes:
                for name in cases if r % 2 == 0 else list(reversed(cases)):
                    label = f"{shape}-{name}-{r}"
                    row, raw = measure_case(label, name, seeded[shape], srv, work, key, args, baseline)
                    results.setdefault((shape, name), []).append(row)
                    report.measurements.append({**raw, **row, "shape": shape, "case": name})
                    print_row(r, runs, shape, name, row)
        for old in work / "home", work / "cache", work / "dest", work / "tmp":
            c.remove(old)
    print_shapes(results, seeded, cases, report)
    print_cpu(results, seeded, cases)
    check_targets(results, seeded, args, report)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
