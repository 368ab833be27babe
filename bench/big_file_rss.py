"""Memory and throughput while downloading one 2 GiB file: kitmlflow download vs `mlflow artifacts download`.

The run holds ``model/weights.bin`` (2 GiB, written in 8 MiB chunks straight into the proxied server's
artifact folder, never held in memory) and the seed README.

Measured, each in a fresh subprocess with a fresh, empty destination, alternating the order:
``kitmlflow download URI --dest DEST --yes --json`` and ``mlflow artifacts download -r RUN -d DEST``.
Memory: the peak of the process tree's summed RSS (psutil, every 50 ms) and the kernel's VmHWM of each
process (see ``_common.py``). Throughput two ways: bytes / wall time of the whole command (start-up
included), and bytes / transfer window, from the first byte on disk (DEST is polled every 50 ms) to
the process's exit.

Run: ``.venv/bin/python bench/big_file_rss.py [--quick] [--runs N] [--workdir DIR]``
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import _common as c

SIZE = 2 * 1024**3
PATH = "model/weights.bin"
RSS_TARGET = 300 * c.MB


def dest_bytes(dest: Path) -> int:
    total = 0
    for root, _, names in os.walk(dest):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # a part file renamed meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    runs = c.runs_of(args)
    report = c.Report("big_file_rss", args)
    with c.workdir(args, "bigfile") as work, c.server(work) as srv:
        _, run_id, folder = c.seeded_run(srv, "bench-big-file")
        c.write_file(folder / PATH, SIZE)
        c.settle()
        total = SIZE + (folder / "README.txt").stat().st_size
        print(f"run {run_id}: {PATH} ({c.fmt_mb(SIZE)}) + README.txt; {runs} run(s) each", flush=True)
        uri = f"mlflow://127.0.0.1:{srv.port}/runs/{run_id}"
        env = c.client_env({"MLFLOW_TRACKING_URI": srv.url})
        cases = {
            "kitmlflow download": lambda d: [*c.KITMLFLOW_CLI, "download", uri, "--dest", str(d), "--yes", "--json"],
            "mlflow artifacts download": lambda d: [*c.MLFLOW_CLI, "artifacts", "download", "-r", run_id, "-d", str(d)],
        }
        results: dict[str, list[c.Measurement]] = {name: [] for name in cases}
        for r in range(runs):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for name in order:
                dest = work / f"dest-{r}"
                c.remove(dest)
                c.settle()
                first_byte: list[float] = []

                def watch(elapsed: float, dest: Path = dest, first_byte: list[float] = first_byte) -> None:
                    if not first_byte and dest_bytes(dest) > 0:
                        first_byte.append(elapsed)

                m = c.measure(f"{name}-{r}", cases[name](dest), env=env, logs=work / "logs", on_sample=watch)
                n_files, n_bytes = c.tree_bytes(dest)
                m.extra["complete"] = n_files == 2 and n_bytes == total
                m.extra["first_byte_s"] = first_byte[0] if first_byte else m.wall
                m.extra["transfer_s"] = m.wall - m.extra["first_byte_s"]
                results[name].append(m)
                report.measurements.append(m.json())
                print(
                    f"  round {r + 1}/{runs} {name:<26} {c.fmt_s(m.wall):>9}  peak RSS {c.fmt_mb(m.rss_tree):>9} "
                    f"(VmHWM {c.fmt_mb(m.maxrss)})  first byte at {m.extra['first_byte_s']:.1f} s  "
                    f"cpu {m.cpu:.1f} s  complete {m.extra['complete']}",
                    flush=True,
                )
                c.remove(dest)
        c.settle()

    rows = []
    for name, ms in results.items():
        wall = c.median([m.wall for m in ms])
        transfer = c.median([m.extra["transfer_s"] for m in ms])
        rows.append(
            {
                "tool": name,
                "best_s": round(c.best([m.wall for m in ms]), 3),
                "median_s": round(wall, 3),
                "throughput_wall_MBps": round(total / wall / c.MB, 1),
                "throughput_transfer_MBps": round(total / transfer / c.MB, 1) if transfer > 0 else None,
                "first_byte_s": round(c.median([m.extra["first_byte_s"] for m in ms]), 2),
                "peak_rss_tree_bytes": max(m.rss_tree for m in ms),
                "vmhwm_bytes": max(m.maxrss for m in ms),
                "cpu_s": round(c.median([m.cpu for m in ms]), 2),
                "complete": all(m.extra["complete"] for m in ms),
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
                "MB/s (wall)",
                "MB/s (transfer)",
                "first byte",
                "peak RSS",
                "VmHWM",
                "CPU",
                "complete",
            ],
            [
                [
                    r["tool"],
                    c.fmt_s(r["best_s"]),
                    c.fmt_s(r["median_s"]),
                    f"{r['throughput_wall_MBps']:.1f}",
                    f"{r['throughput_transfer_MBps']:.1f}" if r["throughput_transfer_MBps"] else "-",
                    c.fmt_s(r["first_byte_s"]),
                    c.fmt_mb(r["peak_rss_tree_bytes"]),
                    c.fmt_mb(r["vmhwm_bytes"]),
                    f"{r['cpu_s']:.1f} s",
                    "yes" if r["complete"] else "NO",
                ]
                for r in rows
            ],
        )
    )
    print(
        "Medians over the runs except peak RSS and VmHWM (the highest of the runs). MB/s (wall): bytes / the whole "
        "command's time; MB/s (transfer): bytes / (exit - first byte on disk). CPU: the client process."
    )
    print()
    kit = rows[0]
    peak = max(kit["peak_rss_tree_bytes"], kit["vmhwm_bytes"])
    report.target(
        "peak RSS under 300 MB while downloading a 2 GB file",
        peak < RSS_TARGET and kit["complete"],
        f"kitmlflow peak {c.fmt_mb(peak)} (RSS {c.fmt_mb(kit['peak_rss_tree_bytes'])}, VmHWM "
        f"{c.fmt_mb(kit['vmhwm_bytes'])}); mlflow {c.fmt_mb(max(rows[1]['peak_rss_tree_bytes'], rows[1]['vmhwm_bytes']))}",
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
