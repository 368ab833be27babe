"""How quick the wizard feels: first paint, first runs page, first tree level, keys during a download.

- first paint: ``run_wizard`` started in a real terminal (tmux), from the process start until the
  screen shows where it is connecting (Python start-up and Textual import included; MLflow is not,
  it loads in a worker after the paint);
- first runs page: an experiment with 5,000 runs (sqlite store, made with MlflowClient and cached in the
  work folder); from the runs screen being shown (connected) until its table has rows, and from the
  process start (MLflow import and connect included);
- first tree level: a run with 10,000 files in 100 folders; from the artifact screen being shown until
  its first level is on screen, and until the whole tree is listed;
- keystroke to repaint while an import downloads 1 GB: Escape (opens the cancel dialog) until the dialog
  is the active, refreshed screen, ten times, then ``n``.

Targets (issue 4): first paint < 0.5 s, first runs page < 1 s, first tree level < 1 s, no keystroke
waits on I/O. Run: ``.venv/bin/python bench/tui_startup.py [--workdir DIR]``; prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUNS = 5_000
TREE_FOLDERS, TREE_FILES_PER_FOLDER = 100, 100
BIG_FILES, BIG_FILE_BYTES = 40, 50_000_000
KEYSTROKES = 10


# The same measurement for the smallest Textual app, to tell kitmlflow's share from Python's and Textual's.
HELLO = (
    "from textual.app import App\nfrom textual.widgets import Static\n"
    "class Hello(App):\n    def compose(self):\n        yield Static('Connecting to nowhere')\nHello().run()"
)


def first_paint(tracking_uri: str | None, rounds: int = 5) -> list[float]:
    if shutil.which("tmux") is None:
        return []
    program = (
        "import sys; from kitmlflow_tui.tui.app import run_wizard; "
        f"sys.exit(run_wizard(None, tracking_uri_flag={tracking_uri!r}))"
        if tracking_uri
        else HELLO
    )
    times = []
    for _ in range(rounds):
        name = f"kitmlflow-bench-{uuid.uuid4().hex[:8]}"
        command = f"cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} -c {shlex.quote(program)}"
        start = time.perf_counter()
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command], check=True)
        try:
            while True:
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True)
                if "Connecting to" in screen.stdout or "Type to filter" in screen.stdout:
                    times.append(time.perf_counter() - start)
                    break
                if time.perf_counter() - start > 60:
                    raise RuntimeError("the wizard never painted")
                time.sleep(0.005)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return times


def make_runs_store(root: Path) -> tuple[str, str]:
    marker = root / "runs-store.json"
    if marker.exists():
        data = json.loads(marker.read_text())
        return data["tracking_uri"], data["experiment_id"]
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root}/runs.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("five-thousand-runs", artifact_location=(root / "runs-art").as_uri())
    base = 1_700_000_000_000
    for n in range(RUNS):
        run = client.create_run(experiment, run_name=f"sweep-{n:05d}", start_time=base + n * 60_000)
        client.log_batch(run.info.run_id, metrics=[Metric("val_accuracy", (n % 997) / 997, base, 0)])
        client.set_terminated(run.info.run_id, "FINISHED", end_time=base + n * 60_000 + 30_000)
    marker.write_text(json.dumps({"tracking_uri": uri, "experiment_id": experiment}))
    return uri, experiment


def make_big_tree_run(store) -> str:
    """A run of the demo store with 10,000 small files in 100 folders, written into its artifact folder."""
    from mlflow import MlflowClient

    client = MlflowClient(store.tracking_uri)
    found = client.search_runs([store.experiments["vision"]], "tags.bench = 'tree'")
    if found:
        return found[0].info.run_id
    run = client.create_run(store.experiments["vision"], run_name="ten-thousand-files", tags={"bench": "tree"})
    folder = Path(run.info.artifact_uri.removeprefix("file://"))
    for d in range(TREE_FOLDERS):
        sub = folder / f"shard-{d:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(TREE_FILES_PER_FOLDER):
            (sub / f"part-{f:03d}.bin").write_bytes(b"x" * (f + 1))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def make_big_files_run(store) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(store.tracking_uri)
    found = client.search_runs([store.experiments["vision"]], "tags.bench = 'big2'")
    if found:
        return found[0].info.run_id
    run = client.create_run(store.experiments["vision"], run_name="two-gigabytes", tags={"bench": "big2"})
    folder = Path(run.info.artifact_uri.removeprefix("file://")) / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1_000_000)
    for n in range(BIG_FILES):
        with open(folder / f"shard-{n:02d}.bin", "wb") as out:
            for _ in range(BIG_FILE_BYTES // len(block)):
                out.write(block)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


async def wait(pilot, condition, timeout: float = 120.0) -> float:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out on {pilot.app.screen!r}")
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def runs_page(tracking_uri: str, experiment_id: str) -> dict[str, float]:
    from textual.widgets import DataTable

    from kitmlflow_tui.reference import BrowseRef
    from kitmlflow_tui.tui.app import KitmlflowApp

    launched = time.perf_counter()
    app = KitmlflowApp(BrowseRef(None, experiment_id), tracking_uri_flag=tracking_uri, cursor_blink=False)
    async with app.run_test(size=(120, 36)) as pilot:
        shown = await wait(pilot, lambda: type(app.screen).__name__ == "RunsScreen")
        filled = await wait(pilot, lambda: any(table.row_count for table in app.screen.query(DataTable)))
    return {"from_screen_s": filled - shown, "from_launch_s": filled - launched}


async def tree_level(tracking_uri: str, run_id: str) -> dict[str, float]:
    from kitmlflow_tui.reference import RunRef
    from kitmlflow_tui.tui.app import KitmlflowApp
    from kitmlflow_tui.tui.screens.artifacts import ArtifactsScreen

    # Timestamps taken inside the app: the screen's mount and the moments its tree is filled.
    marks: dict[str, float] = {}
    originals = {name: getattr(ArtifactsScreen, name) for name in ("on_mount", "first_level_listed", "tree_listed")}

    def marking(name: str):
        def wrapper(self, *args):
            original = originals[name]
            result = original(self, *args[: original.__code__.co_argcount - 1])
            marks.setdefault(name, time.perf_counter())
            return result

        return wrapper

    for name in originals:
        setattr(ArtifactsScreen, name, marking(name))
    try:
        app = KitmlflowApp(RunRef(None, run_id), tracking_uri_flag=tracking_uri, cursor_blink=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait(pilot, lambda: "tree_listed" in marks)
            await pilot.pause()
    finally:
        for name, method in originals.items():
            setattr(ArtifactsScreen, name, method)
    shown = marks["on_mount"]
    first = min(marks.get("first_level_listed", marks["tree_listed"]), marks["tree_listed"])
    return {
        "first_level_s": first - shown,
        "whole_tree_s": marks["tree_listed"] - shown,
        "files": TREE_FOLDERS * TREE_FILES_PER_FOLDER,
    }


async def keys_during_download(tracking_uri: str, run_id: str, workdir: Path) -> dict[str, object]:
    from kitmlflow_tui.reference import RunRef
    from kitmlflow_tui.tui.app import KitmlflowApp

    os.environ["KITMLFLOW_CACHE_DIR"] = str(workdir / "cache")
    os.environ["KITOPS_HOME"] = str(workdir / "kitops")
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    app = KitmlflowApp(RunRef(None, run_id), tracking_uri_flag=tracking_uri, tag="bench/keys:1", cursor_blink=False)
    latencies: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        await wait(pilot, lambda: getattr(getattr(app.screen, "browser", None), "listed", False))
        await pilot.press("c")
        await wait(pilot, lambda: getattr(app.screen, "kitfile", None) is not None)
        await pilot.press("ctrl+g")
        await wait(pilot, lambda: type(app.screen).__name__ == "ImportScreen")
        importing = app.screen
        await wait(pilot, lambda: importing.observer.snapshot().done > 0)
        for _ in range(KEYSTROKES):
            if not importing.running:
                break
            start = time.perf_counter()
            await pilot.press("escape")
            await wait(pilot, lambda: type(app.screen).__name__ in ("ConfirmScreen", "DoneScreen"))
            await pilot.pause()  # the refresh that paints it
            if type(app.screen).__name__ != "ConfirmScreen":
                break
            latencies.append(time.perf_counter() - start)
            await pilot.press("n")
            await wait(pilot, lambda: type(app.screen).__name__ in ("ImportScreen", "DoneScreen"))
            await asyncio.sleep(0.05)
        downloading = importing.running
        importing.cancel.set()
        await wait(pilot, lambda: not importing.running)
        moved = importing.observer.snapshot().done
    return {
        "samples": len(latencies),
        "median_ms": 1000 * statistics.median(latencies) if latencies else None,
        "max_ms": 1000 * max(latencies) if latencies else None,
        "still_downloading_at_the_end": downloading,
        "bytes_moved_meanwhile": moved,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "kitmlflow-bench-tui")
    parser.add_argument("--only", nargs="*", help="measure only these (first_paint, first_runs_page_5000, ...)")
    args = parser.parse_args()
    workdir: Path = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CONFIG_HOME", str(workdir / "config"))

    from kitmlflow_tui.demo import build_demo_store

    store = build_demo_store(workdir / "demo")
    measures = {
        "first_paint": lambda: summary(first_paint(store.tracking_uri)),
        "first_paint_of_a_hello_textual_app": lambda: summary(first_paint(None)),
        "first_runs_page_5000": lambda: asyncio.run(runs_page(*make_runs_store(workdir / "runs"))),
        "first_tree_level_10000": lambda: asyncio.run(tree_level(store.tracking_uri, make_big_tree_run(store))),
        "keystroke_during_download": lambda: asyncio.run(
            keys_during_download(store.tracking_uri, make_big_files_run(store), workdir)
        ),
    }
    results: dict[str, object] = {}
    for name, measure in measures.items():
        if args.only and name not in args.only:
            continue
        results[name] = measure()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(json.dumps(results, indent=2))


def summary(times: list[float]) -> dict[str, object]:
    return {"rounds_s": [round(t, 3) for t in times], "median_s": statistics.median(times) if times else None}


if __name__ == "__main__":
    main()
