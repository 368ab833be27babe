"""The demo store's life cycle: build it once per folder under a lock, reuse a complete one, wipe an
interrupted one. ``demo.json`` is written last (atomically) and marks a complete store."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from kitmlflow_tui.core import locking
from kitmlflow_tui.core.download.stores import require_local_mlflow
from kitmlflow_tui.demo.mlflow_state import (
    create_store_with_default_experiment,
    fast_sqlite,
    forget_cached_mlflow_store,
    mlflow_globals,
    quiet_mlflow,
)
from kitmlflow_tui.demo.scenario import REGISTERED_MODEL, Builder

if TYPE_CHECKING:
    pass

SCHEMA_VERSION = 1
MANIFEST_NAME = "demo.json"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
LOCK_NAME = ".build.lock"
# Entries of a store folder that a build owns; only these are wiped before a rebuild, so pointing
# `root` at a folder that holds other files never deletes them.
_OWNED_NAMES = (MANIFEST_NAME, DB_NAME, f"{DB_NAME}-journal", f"{DB_NAME}-wal", f"{DB_NAME}-shm", ARTIFACTS_DIR)
_STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class DemoStore:
    root: Path  # folder holding mlflow.db and artifacts/
    tracking_uri: str  # "sqlite:///<root>/mlflow.db"
    runs: dict[str, str]  # role -> run_id
    experiments: dict[str, str]  # role -> experiment_id
    logged_model_ids: dict[str, str]  # role -> "m-..." id
    registered_model: str


def default_demo_root() -> Path:
    return Path(platformdirs.user_cache_dir("kitmlflow")) / "demo-store"


def tracking_uri_for(root: Path) -> str:
    return f"sqlite:///{root.as_posix()}/{DB_NAME}"


def load_demo_store(root: Path) -> DemoStore | None:
    """The store described by `root/demo.json`, or None when it is missing, stale or unreadable."""
    root = Path(root).absolute()
    try:
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        return None
    try:
        store = DemoStore(
            root=Path(data["root"]),
            tracking_uri=str(data["tracking_uri"]),
            runs=_str_mapping(data["runs"]),
            experiments=_str_mapping(data["experiments"]),
            logged_model_ids=_str_mapping(data["logged_model_ids"]),
            registered_model=str(data["registered_model"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    # A store whose folder was moved keeps absolute paths to the old place: it is not usable.
    if store.root != root or store.tracking_uri != tracking_uri_for(root):
        return None
    if not (root / DB_NAME).is_file() or not (root / ARTIFACTS_DIR).is_dir():
        return None
    return store


def build_demo_store(
    root: Path | None = None, *, force: bool = False, on_step: Callable[[int, int, str], None] | None = None
) -> DemoStore:
    """Build the demo store in `root` (default: `default_demo_root()`), or reuse a complete one.
    ``on_step(number, total, what)`` is told each step of a build (a reused store has none); step 0 is
    the MLflow import.

    Safe to call from several processes at once: the build runs under an exclusive file lock and the
    losers of the race reuse the winner's store.
    """
    require_local_mlflow("The demo store (sqlite, built and read by MLflow's own store code)")
    root = (Path(root) if root is not None else default_demo_root()).absolute()
    if not force and (existing := load_demo_store(root)) is not None:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    with locking.locked(root / LOCK_NAME):
        if not force and (existing := load_demo_store(root)) is not None:
            return existing
        _wipe_store_folder(root)
        store = build_into(root, on_step)
        _write_manifest(store)
    return store


def _str_mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected a mapping")
    return {str(k): str(v) for k, v in value.items()}


def _wipe_store_folder(root: Path) -> None:
    # The manifest goes first, so a rebuild interrupted from here on never looks complete.
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    forget_cached_mlflow_store(tracking_uri_for(root))
    for entry in root.iterdir():
        leftover = entry.name.startswith((_STAGING_PREFIX, f"{MANIFEST_NAME}."))  # crashed temp files
        if entry.name in _OWNED_NAMES or leftover:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _write_manifest(store: DemoStore) -> None:
    document = {"schema_version": SCHEMA_VERSION, **asdict(store), "root": str(store.root)}
    fd, tmp_name = tempfile.mkstemp(prefix=f"{MANIFEST_NAME}.", suffix=".tmp", dir=store.root)
    try:
        os.chmod(tmp_name, 0o644)  # mkstemp creates it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, store.root / MANIFEST_NAME)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def build_into(root: Path, on_step: Callable[[int, int, str], None] | None = None) -> DemoStore:
    tracking_uri = tracking_uri_for(root)
    artifacts_root = root / ARTIFACTS_DIR
    artifacts_root.mkdir()
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
    try:
        if on_step is not None:
            on_step(0, 0, "loading MLflow")  # the first seconds of a build
        # Order matters: the globals context imports mlflow, which configures its loggers.
        with mlflow_globals(tracking_uri), quiet_mlflow(), fast_sqlite(root / DB_NAME):
            import mlflow

            create_store_with_default_experiment(tracking_uri, artifacts_root)
            client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            builder = Builder(client, artifacts_root, staging)
            builder.build_all(on_step)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DemoStore(
        root=root,
        tracking_uri=tracking_uri,
        runs=dict(builder.runs),
        experiments=dict(builder.experiments),
        logged_model_ids=dict(builder.logged_model_ids),
        registered_model=REGISTERED_MODEL,
    )
