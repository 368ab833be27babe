"""The direct import (bytes straight into the layer blobs) against a plain download of the same run.

The run, on a real proxied ``mlflow server`` on 127.0.0.1 (local artifact store): ``weights/model.safetensors``
(``--size``, default 1 GiB of incompressible bytes), 200 small files in ``data/`` and ``src/`` (``--small``), a
README; the files are written straight into the server's artifact folder (as ``import_vs_manual.py`` does).

Cases, each a fresh subprocess into fresh folders, the server's files dropped from the page cache before each
(``posix_fadvise(DONTNEED)``), the order alternating between rounds:

- ``download``: ``kitmlflow download URI --dest DIR --yes --json`` (8 jobs; a part file per file, the large file in
  parallel ranges);
- ``import direct``: ``kitmlflow import URI -t bench:v1 --yes --json --packer native`` (8 jobs: the large file
  is fetched as parallel ranges into its layer blob, then the blob is hashed once and fsynced);
- ``import direct, 1 job``: the same with ``--jobs 1`` (one stream: the large file unsplit);
- ``import via folder``: ``--packer native --keep-download`` (download into the cache, stage, pack: the old path);
- ``mlflow artifacts download -r RUN -d DIR``.

Targets: import direct / download ≤ 1.10× (median wall), and the direct import's peak disk (kit home, cache,
TMPDIR, polled every 50 ms) over the ModelKit's size ≤ 1.05×. Peak RSS is the process tree's (see
``_common``). The large file alone: ranged-parallel (direct, 8 jobs) vs single stream (1 job) vs mlflow.

Run: ``.venv/bin/python bench/import_direct.py [--quick] [--runs N] [--size BYTES] [--small N] [--workdir DIR]``
"""

from __future__ import annotations

import sys

import _common as c
import pack_vs_kit as pk

TAG = "bench:v1"
TIME_TARGET = 1.10
DISK_TARGET = 1.05
CASES = ("download", "import direct", "import direct, 1 job", "import via folder", "mlflow artifacts download")


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024 * c.MiB, help="bytes of the large file (default 1 GiB; 0: none)")
    p.add_argument("--small", type=int, default=200, help="small files (10-12 kB and 2 kB, in data/ and src/)")
    args = p.parse_args()
    runs = c.runs_of(args)
    report = c.Report("import_direct", args)
    with c.workdir(args, "direct") as work, c.server(work) as srv:
        _, run_id, folder = c.seeded_run(srv, "bench-direct")
        if args.size:
            c.write_file(folder / "weights" / "model.safetensors", args.size)
        for i in range(args.small // 2):
            c.write_file(folder / "data" / f"part-{i:04d}.csv", 10_000 + i)
            c.write_file(folder / "src" / f"module_{i:04d}.py", 2_000 + i)
        files, total = c.tree_bytes(folder)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        print(f"run {run_id}: {files} files, {c.fmt_mb(total)}; {runs} round(s)", flush=True)
        base_env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        results: dict[str, list[dict]] = {name: [] for name in CASES}
        for r in range(runs):
            for name in CASES if r % 2 == 0 else tuple(reversed(CASES)):
                home = pk.kit_home(work / "home")
                cache, dest, tmp = work / "cache", work / "dest", work / "tmp"
                for old in cache, dest, tmp:
                    c.remove(old)
                tmp.mkdir()
                env = {**base_env, "KITOPS_HOME": str(home), "KITMLFLOW_CACHE_DIR": str(cache), "TMPDIR": str(tmp)}
                importing = [*c.KITMLFLOW_CLI, "import", uri, "-t", TAG, "--yes", "--json", "--packer", "native"]
                cmd = {
                    "download": [*c.KITMLFLOW_CLI, "download", uri, "--dest", str(dest), "--yes", "--json"],
                    "import direct": importing,
                    "import direct, 1 job": [*importing, "--jobs", "1"],
                    "import via folder": [*importing, "--keep-download"],
                    "mlflow artifacts download": [
                        *c.MLFLOW_CLI,
                        "artifacts",
                        "download",
                        "-r",
                        run_id,
                        "-d",
                        str(dest),
                    ],
                }[name]
                pk.evict(folder)
                measured = pk.measure_disk(
                    f"{name}-{r}", cmd, env=env, logs=work / "logs", watch=[home, cache, dest, tmp]
                )
                storage = pk.disk_usage([home / "storage"])
                row = {"wall": measured.m.wall, "rss": measured.m.rss_tree, "disk_peak": measured.disk_peak}
                row["storage"] = storage
                results[name].append(row)
                report.measurements.append({**measured.m.json(), "disk_peak": measured.disk_peak, "case": name})
                print(
                    f"  round {r + 1}/{runs} {name:<26} {c.fmt_s(measured.m.wall):>9}  peak RSS "
                    f"{c.fmt_mb(measured.m.rss_tree):>9}  disk peak {c.fmt_mb(measured.disk_peak):>10}  "
                    f"ModelKit {c.fmt_mb(storage):>10}",
                    flush=True,
                )
        for old in work / "home", work / "cache", work / "dest":
            c.remove(old)

    def med(name: str, key: str = "wall") -> float:
        return c.median([x[key] for x in results[name]])

    rows = [
        [
            name,
            c.fmt_s(c.best([x["wall"] for x in results[name]])),
            c.fmt_s(med(name)),
            c.fmt_mb(med(name, "rss")),
            c.fmt_mb(med(name, "disk_peak")),
        ]
        for name in CASES
    ]
    print("\n" + c.table(["case", "best", "median", "peak RSS", "peak disk"], rows))
    for name in CASES:
        report.rows.append({"case": name, **{k: med(name, k) for k in ("wall", "rss", "disk_peak", "storage")}})
    ratio = med("import direct") / med("download")
    report.target("import direct / download", ratio <= TIME_TARGET, f"{c.fmt_ratio(ratio)} (target ≤ {TIME_TARGET}x)")
    disk = med("import direct", "disk_peak") / med("import direct", "storage")
    report.target("direct peak disk / ModelKit", disk <= DISK_TARGET, f"{c.fmt_ratio(disk)} (target ≤ {DISK_TARGET}x)")
    single = med("import direct, 1 job") / med("import direct")
    mlflow = med("mlflow artifacts download") / med("import direct")
    report.notes.append(f"1 job / 8 jobs {single:.2f}x; mlflow artifacts download / import direct {mlflow:.2f}x")
    print(
        f"large file: 1 job (one stream) takes {single:.2f}x the 8-job import; mlflow artifacts download {mlflow:.2f}x"
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
