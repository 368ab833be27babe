"""Run every benchmark in bench/ one after the other and print a summary table of their targets.

Each benchmark is a script of this folder (``bench/*.py`` except ``_*.py`` and this file), run as its own
subprocess with its output shown as it goes. ``--quick``, ``--runs``, ``--workdir`` and ``--json-out``
are passed to a script only when its ``--help`` lists them. Targets print PASS or MISS; the exit code
is 0 whatever they say, and 1 only when a benchmark itself failed (crashed, or exited non-zero).

Run: ``.venv/bin/python bench/run_all.py [--quick] [--runs N] [--workdir DIR] [--only NAME ...] [--skip NAME ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# These run first, in this order; any other script of the folder follows, alphabetically.
FIRST = ["download_vs_mlflow", "listing", "big_file_rss"]


def discover() -> list[str]:
    names = sorted(p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.stem != "run_all")
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


def options_of(script: Path) -> set[str]:
    """The long options a script's --help lists (an empty set if --help fails)."""
    try:
        done = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=BENCH.parent
        )
    except subprocess.TimeoutExpired:
        return set()
    return set(re.findall(r"(--[a-z][a-z-]*)", done.stdout)) if done.returncode == 0 else set()


def fmt_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick (one run of each measurement)")
    p.add_argument("--runs", type=int, help="pass --runs N")
    p.add_argument(
        "--workdir", type=Path, help="parent folder for the benchmarks' work folders (one subfolder per benchmark)"
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    p.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="do not run these benchmarks")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args()

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [n for n in (args.only or []) + args.skip if n not in names]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
    selected = [n for n in names if (not args.only or n in args.only) and n not in args.skip]

    started = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="kitmlflow-bench-results-") as results_dir:
        for name in selected:
            script = BENCH / f"{name}.py"
            supported = options_of(script)
            cmd = [sys.executable, str(script)]
            if args.quick and "--quick" in supported:
                cmd.append("--quick")
            if args.runs is not None and "--runs" in supported:
                cmd += ["--runs", str(args.runs)]
            workdir = args.workdir / name if args.workdir is not None else None
            if workdir is not None and "--workdir" in supported:
                # Its own subfolder: most scripts make a temporary folder inside and remove it, but a
                # script may keep a cache in the folder it is given (tui_startup does).
                workdir.mkdir(parents=True, exist_ok=True)
                cmd += ["--workdir", str(workdir)]
            json_path = Path(results_dir) / f"{name}.json"
            if "--json-out" in supported:
                cmd += ["--json-out", str(json_path)]
            print(f"\n{'=' * 100}\n{name}: {' '.join(cmd[1:])}\n{'=' * 100}", flush=True)
            t0 = time.perf_counter()
            code = subprocess.run(cmd, cwd=BENCH.parent).returncode
            elapsed = time.perf_counter() - t0
            if workdir is not None:
                with contextlib.suppress(OSError):
                    workdir.rmdir()  # only if the script left it empty
            data = json.loads(json_path.read_text()) if json_path.exists() else None
            outcomes.append((name, code, elapsed, data))

    total = time.perf_counter() - started
    print(f"\n{'=' * 100}\nSummary ({'--quick' if args.quick else 'full'} run)\n{'=' * 100}")
    rows = []
    for name, code, elapsed, data in outcomes:
        head = [name, fmt_duration(elapsed), "ok" if code == 0 else f"exit {code}"]
        targets = (data or {}).get("targets") or []
        if not targets:
            note = "no targets reported" if data else "no JSON results: see its output above"
            rows.append([*head, "-", note])
        for i, t in enumerate(targets):
            rows.append([*(head if i == 0 else ["", "", ""]), t["status"], f"{t['name']}: {t['detail']}"])
    widths = [max(len(str(r[i])) for r in rows + [["benchmark", "time", "exit", "target", ""]]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(["benchmark", "time", "exit", "target"], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    machine = next((d["machine"] for _, _, _, d in outcomes if d and "machine" in d), None)
    if machine:
        print(
            f"\nmachine: {machine['cpus']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
            f"Python {machine['python']}, mlflow {machine['mlflow']}"
        )
    passed = sum(1 for *_, d in outcomes for t in ((d or {}).get("targets") or []) if t["status"] == "PASS")
    missed = sum(1 for *_, d in outcomes for t in ((d or {}).get("targets") or []) if t["status"] == "MISS")
    failed = [name for name, code, _, _ in outcomes if code != 0]
    print(
        f"{len(outcomes)} benchmark(s) in {fmt_duration(total)}: {passed} target(s) PASS, {missed} MISS"
        + (f"; FAILED to run: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
