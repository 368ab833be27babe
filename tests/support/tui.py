"""Helpers for the wizard's tests: pilot waits, and the fixed catalogue double
that only the snapshot tests use (run ids in a real store are random; snapshots need them fixed)."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from kitmlflow_tui.core.catalogue.records import (
    ArtifactFile,
    ArtifactTree,
    ExperimentSummary,
    LevelEntry,
    LoggedModelInfo,
    RunInfo,
    RunPage,
    RunQuery,
    RunSummary,
)
from kitmlflow_tui.core.download.downloader import DownloadResult, ProgressEvent
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, KitmlflowError
from kitmlflow_tui.core.kitfile import validate_kitfile
from kitmlflow_tui.core.pipeline import KitfilePreview
from kitmlflow_tui.core.reference import Reference
from kitmlflow_tui.core.selection.plan import make_plan
from kitmlflow_tui.tui.app import KitmlflowApp
from kitmlflow_tui.tui.backend import ImportChoice

FIXED_NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC
HOUR_MS = 3_600_000
BASE_MS = int(FIXED_NOW * 1000) - 30 * 24 * HOUR_MS


async def wait_for(pilot: Pilot, condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until ``condition()`` is true (workers run in threads, so poll)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}; the screen:\n{screen_text(pilot.app)}")  # type: ignore[arg-type]
        await pilot.pause(0.05)
    await pilot.pause()


async def shows(pilot: Pilot, text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` is on the screen (a repaint may trail the change that caused it)."""
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout, what=repr(text))  # type: ignore[arg-type]


def screen_text(app: KitmlflowApp) -> str:
    """What the screen shows, as plain text rows (read back from Textual's own SVG screenshot)."""
    rows: dict[int, list[tuple[float, str]]] = {}
    for match in re.finditer(_SVG_TEXT, app.export_screenshot()):
        rows.setdefault(int(match.group(2)), []).append((float(match.group(1)), html.unescape(match.group(3))))
    lines = []
    for number in sorted(rows):
        text = ""
        for x, chunk in sorted(rows[number]):
            text = text.ljust(int(round(x / _SVG_CELL_WIDTH))) + chunk
        lines.append(text.replace("\xa0", " ").rstrip())
    return "\n".join(lines)


def notifications(app: KitmlflowApp) -> list[str]:
    """The messages of the toasts the app is showing (Textual draws toasts outside its screenshot)."""
    return [notification.message for notification in app._notifications]


_SVG_TEXT = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" clip-path="url\(#[^)]*line-(\d+)\)">([^<]*)</text>'
)
_SVG_CELL_WIDTH = 12.2


# ---------------------------------------------------------------------------------------------
# The fixed catalogue double (snapshots only)
# ---------------------------------------------------------------------------------------------
EXPERIMENTS = [
    ExperimentSummary("1", "image-classifier", "active", BASE_MS + 20 * HOUR_MS),
    ExperimentSummary("2", "support-ticket-intent", "active", BASE_MS + 10 * HOUR_MS),
    ExperimentSummary("3", "image-classifier-sweeps", "active", BASE_MS + 5 * HOUR_MS),
    ExperimentSummary("0", "Default", "active", BASE_MS),
]


def _run(n: int, name: str, status: str, minutes: int | None, **metrics: float) -> RunSummary:
    start = BASE_MS + n * HOUR_MS
    end = start + minutes * 60_000 if minutes is not None else None
    return RunSummary(
        f"{n:02d}" + "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"[:30], name, "1", status, start, end, "dana.scientist", metrics
    )


RUNS = [
    _run(9, "resnet34-long-schedule", "RUNNING", None, train_loss=1.15),
    _run(7, "smoke-test", "FINISHED", 1),
    _run(6, "efficientnet-b0-long", "KILLED", 25, train_loss=0.71),
    _run(5, "resnet50-lr-too-high", "FAILED", 12, train_loss=7.94),
    _run(3, "resnet18-baseline", "FINISHED", 47, val_accuracy=0.911, val_loss=0.295, train_loss=0.3816),
]
BASELINE = RUNS[-1]
ARTIFACT_ROOT = "file:///store/artifacts/1/runs/baseline/artifacts"
MODEL_ROOT = "file:///store/artifacts/1/models/m-0001/artifacts"
FILES = {
    "LICENSE": 1052,
    "README.md": 618,
    "checkpoints/best.ckpt": 163_840_000,
    "checkpoints/epoch_001.pt": 40_960_000,
    "checkpoints/epoch_002.pt": 81_920_000,
    "checkpoints/epoch_003.pt": 122_880_000,
    "config/train.yaml": 308,
    "data/sample.csv": 8058,
    "model/MLmodel": 1336,
    "model/artifacts/model.safetensors": 49_152_000,
    "model/conda.yaml": 109,
    "model/requirements.txt": 14,
    "plots/loss.png": 778,
}
KITFILE = validate_kitfile(
    {
        "manifestVersion": "1.0.0",
        "package": {
            "name": "resnet18-baseline",
            "version": "0ba1b2c3",
            "description": "ResNet-18 baseline",
            "authors": ["dana.scientist"],
        },
        "model": {
            "name": "model",
            "path": "model",
            "framework": "pyfunc",
            "version": "3.17.2",
            "parts": [{"path": "LICENSE"}, {"path": "README.md"}],
        },
        "datasets": [{"path": "data"}],
        "code": [{"path": "config"}],
        "docs": [{"path": "plots"}],
    }
)


def fixed_tree() -> ArtifactTree:
    files = tuple(
        ArtifactFile(
            path,
            size,
            MODEL_ROOT if path.startswith("model/") else ARTIFACT_ROOT,
            path.removeprefix("model/"),
            "model" if path.startswith("model/") else None,
        )
        for path, size in sorted(FILES.items())
    )
    return ArtifactTree(files, (LoggedModelInfo("m-0001", "model", "model", MODEL_ROOT, BASELINE.run_id),))


def fixed_run_info(summary: RunSummary = BASELINE) -> RunInfo:
    return RunInfo(
        tracking_uri="http://mlflow.example.com",
        experiment_id="1",
        experiment_name="image-classifier",
        run_id=summary.run_id,
        run_name=summary.run_name,
        status=summary.status,
        start_time=summary.start_time,
        end_time=summary.end_time,
        user=summary.user,
        artifact_uri=ARTIFACT_ROOT,
        metrics=summary.metrics,
    )


class FixedBackend:
    """Same methods as CatalogueBackend, answering from the fixed data above."""

    tracking_uri = "http://mlflow.example.com"
    display_uri = "http://mlflow.example.com"

    def __init__(self, *, import_blocks: bool = False) -> None:
        self.import_blocks = import_blocks

    def list_experiments(self) -> list[ExperimentSummary]:
        return list(EXPERIMENTS)

    def search_runs(self, experiment_id: str, query: RunQuery) -> RunPage:
        filter_string = query.filter_string
        if filter_string and "=" not in filter_string and ">" not in filter_string and "<" not in filter_string:
            raise BadInputError(
                "The tracking server http://mlflow.example.com rejected the request for the runs of experiment 1: "
                f"Invalid clause(s) in filter string: '{filter_string}'"
            )
        return RunPage(tuple(RUNS), None)

    def get_run(self, run_id: str, *, experiment_id: str | None = None) -> RunInfo:
        return fixed_run_info(next(r for r in RUNS if r.run_id == run_id))

    def first_level(self, run: RunInfo) -> tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]:
        from kitmlflow_tui.tui.selection_model import FolderIndex

        tree = fixed_tree()
        return FolderIndex(tree).children(""), tree.logged_models

    def folder_level(self, run: RunInfo, folder: str, logged_models: Any) -> list[LevelEntry]:
        from kitmlflow_tui.tui.selection_model import FolderIndex

        return FolderIndex(fixed_tree()).children(folder)

    def run_tree(self, run: RunInfo, **_: Any) -> ArtifactTree:
        return fixed_tree()

    def resolve_model(self, ref: Any) -> Any:
        raise NotImplementedError

    def preview(self, choice: ImportChoice) -> KitfilePreview:
        return KitfilePreview(KITFILE, make_plan(choice.tree, choice.spec), ())

    def free_bytes(self) -> int | None:
        return 120_000_000_000

    def kept_download(self, choice: ImportChoice) -> tuple[Path, int]:
        return Path("/home/dana/.cache/kitmlflow/downloads/0123abcd/") / choice.run.run_id, 54_600_000

    def discard_download(self, choice: ImportChoice) -> int:
        return 54_600_000

    def stored_login(self, registry: str) -> Any:
        return None

    def check_sign_key(self, path: Path) -> Any:
        from kitmlflow_tui.core.attest.keys import check_sign_key

        return check_sign_key(path)

    def public_key_of(self, sign_key: Path, key_id: str) -> Path | None:
        from kitmlflow_tui.core.attest.keys import public_key_beside

        return public_key_beside(sign_key, key_id)

    def push(self, choice: ImportChoice, packed: Any, observer: Any, cancel: threading.Event) -> Any:
        raise NotImplementedError

    def run_import(self, choice: ImportChoice, observer: Any, cancel: threading.Event) -> Any:
        from kitmlflow_tui.core.pipeline import ImportResult

        observer.step("connect", "Connecting to http://mlflow.example.com")
        observer.step("download", "Downloading into the cache")
        selected = [f for f in choice.tree.files if choice.spec.reason_left_out(f) is None]
        total = sum(f.size or 0 for f in selected)
        observer.progress(ProgressEvent("plan", size=total, total=total, files=len(selected)))
        if self.import_blocks:
            for file in selected[:3]:
                observer.progress(ProgressEvent("file_start", file.path, file.size or 0))
                observer.progress(ProgressEvent("bytes", file.path, (file.size or 0) // 3))
            if not cancel.wait(30):
                raise KitmlflowError("the test never cancelled")
            raise InterruptedByUser("Download cancelled; completed files are kept for the next run.")
        for file in selected:
            observer.progress(ProgressEvent("file_start", file.path, file.size or 0))
            observer.progress(ProgressEvent("bytes", file.path, file.size or 0))
            observer.progress(ProgressEvent("file_done", file.path, file.size or 0))
        observer.step("pack", "Packing resnet18-baseline:0ba1b2c3 (native packer)")
        return ImportResult(
            reference="resnet18-baseline:0ba1b2c3",
            digest="sha256:" + "0123456789abcdef" * 4,
            packer="native",
            size=total + 2048,
            kitfile=KITFILE,
            storage_root=Path("/home/dana/.local/share/kitops"),
            download=DownloadResult(Path("/cache"), tuple(f.path for f in selected), total, 0, total),
            provenance_location="model",
        )


class _ReleasingApp(KitmlflowApp):
    """The wizard, setting an event as it exits: a connector held open by the test returns at once then,
    instead of keeping the test (whose event loop waits for worker threads) for the connector's timeout."""

    def __init__(self, *args: Any, release: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    def on_unmount(self) -> None:
        self._release.set()


def fixed_app(
    reference: Reference | None = None,
    *,
    backend: FixedBackend | None = None,
    connector: Callable[..., Any] | None = None,
    tag: str | None = None,
    release_on_exit: threading.Event | None = None,
) -> KitmlflowApp:
    chosen = backend or FixedBackend()
    options: dict[str, Any] = {
        "tracking_uri_flag": "http://mlflow.example.com",
        "tag": tag,
        "connector": connector or (lambda _ref, _flag: chosen),
        "now": lambda: FIXED_NOW,
        "monotonic": lambda: 1000.0,
        "cursor_blink": False,
    }
    if release_on_exit is not None:
        return _ReleasingApp(reference, release=release_on_exit, **options)
    return KitmlflowApp(reference, **options)


def blocked_connector(release: threading.Event) -> Callable[..., Any]:
    def connect(_ref: Reference | None, _flag: str | None) -> FixedBackend:
        release.wait(30)
        return FixedBackend()

    return connect


def failing_connector(error: KitmlflowError) -> Callable[..., Any]:
    def connect(_ref: Reference | None, _flag: str | None) -> FixedBackend:
        raise error

    return connect
