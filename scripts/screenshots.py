"""Render every wizard step on the demo store to SVG (and PNG when rsvg-convert or cairosvg is there).

Run: ``.venv/bin/python scripts/screenshots.py [--out screenshots] [--size 100x30]``. The import it
shows is real: it goes into a throw-away kit storage and cache, not yours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


async def until(pilot, condition: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the wizard did not get there: {condition}")
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def on(app, name: str) -> bool:
    return type(app.screen).__name__ == name


async def shoot(out: Path, size: tuple[int, int], store) -> list[Path]:
    import threading

    from kitmlflow_tui.tui.app import KitmlflowApp
    from kitmlflow_tui.tui.backend import connect

    connecting_shown = threading.Event()  # a local store connects before the first poll would see the screen

    def connect_after_the_screenshot(reference, tracking_uri_flag):
        connecting_shown.wait(60)
        return connect(reference, tracking_uri_flag)

    app = KitmlflowApp(
        None,
        tracking_uri_flag=store.tracking_uri,
        tag="demo-classifier:v1",
        connector=connect_after_the_screenshot,
        cursor_blink=False,
    )
    saved: list[Path] = []

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: on(app, "ConnectScreen"))
        save("0-connecting")
        connecting_shown.set()
        await until(pilot, lambda: on(app, "ExperimentsScreen") and app.screen.experiments)
        save("1-experiments")
        await pilot.press(*"image")
        await pilot.pause(0.3)
        save("1b-experiments-filtered")
        from textual.widgets import DataTable

        vision = [e.experiment_id for e in app.screen.shown].index(store.experiments["vision"])
        app.screen.query_one(DataTable).move_cursor(row=vision)
        await pilot.press("enter")
        await until(pilot, lambda: on(app, "RunsScreen") and app.screen.runs)
        save("2-runs")
        await pilot.press("c")
        await until(pilot, lambda: on(app, "ColumnsScreen"))
        save("2b-columns")
        await pilot.press("escape")
        await until(pilot, lambda: on(app, "RunsScreen"))
        finished = next(i for i, r in enumerate(app.screen.runs) if r.run_id == store.runs["finished"])
        app.screen.query_one(DataTable).move_cursor(row=finished)
        await pilot.press("enter")
        await until(pilot, lambda: on(app, "ArtifactsScreen") and app.screen.browser.listed)
        await pilot.press("down", "down", "enter", "down", "down", "space", "down", "space", "down", "space")
        await pilot.pause(0.3)
        save("3-artifacts")
        await pilot.press("slash", *"*.safetensors MLmodel")
        await pilot.pause(0.5)
        save("3b-glob-filter")
        await pilot.press("escape")
        await until(pilot, lambda: on(app, "ArtifactsScreen"))
        await pilot.press("p")
        await until(pilot, lambda: on(app, "ProfileScreen"))
        save("3c-profiles")
        await pilot.press("escape")
        await until(pilot, lambda: on(app, "ArtifactsScreen"))
        await pilot.press("c")
        await until(pilot, lambda: on(app, "ReviewScreen") and app.screen.kitfile is not None)
        save("4-review")
        await pilot.press("ctrl+g")
        await until(pilot, lambda: on(app, "DoneScreen"))
        save("5-done")
        await pilot.press("question_mark")
        await until(pilot, lambda: on(app, "HelpScreen"))
        save("6-help")
    return saved


def to_png(svgs: list[Path]) -> str:
    converter = shutil.which("rsvg-convert")
    for svg in svgs:
        png = svg.with_suffix(".png")
        if converter:
            subprocess.run([converter, "-o", str(png), str(svg)], check=True)
            continue
        try:
            import cairosvg  # type: ignore[import-not-found]
        except ImportError:
            return "SVG only (install rsvg-convert or cairosvg for PNG)"
        cairosvg.svg2png(url=str(svg), write_to=str(png))
    return "SVG and PNG"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument("--size", default="100x30", help="terminal WIDTHxHEIGHT")
    parser.add_argument("--store", type=Path, help="demo store folder (default: kitmlflow demo's cache)")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.lower().split("x"))
    scratch = Path(tempfile.mkdtemp(prefix="kitmlflow-screenshots-"))
    os.environ["KITOPS_HOME"] = str(scratch / "kitops")
    os.environ["KITMLFLOW_CACHE_DIR"] = str(scratch / "cache")
    os.environ.setdefault("XDG_CONFIG_HOME", str(scratch / "config"))
    try:
        from kitmlflow_tui.demo import build_demo_store

        store = build_demo_store(args.store)
        args.out.mkdir(parents=True, exist_ok=True)
        svgs = asyncio.run(shoot(args.out, (width, height), store))
        kind = to_png(svgs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{len(svgs)} screenshots ({kind}) in {args.out}")


if __name__ == "__main__":
    main()
