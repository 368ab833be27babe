"""MLflow's process-wide state around a demo build: offline settings, the fluent API's tracking URI,
quiet logs, fast sqlite, and the private caches (engines, stores) that must be dropped when a
database file is replaced. Every private MLflow name the demo touches is here."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

# Quiet, offline MLflow while building. Telemetry is decided at `import mlflow` (and checked again per
# event), so these are set before the build's first import of mlflow.
_BUILD_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_LOCK_MODEL_DEPENDENCIES": "false",  # true would run `uv pip compile` (network) in log_model
}


def _mlflow_engine_maps() -> list[dict[str, Any]]:
    """MLflow's per-URI SQLAlchemy engine caches (tracking and registry stores keep one each).

    Only looked up in modules already imported: a store module that was never imported holds no engine.
    """
    maps = []
    for module_name in ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"):
        store_class = getattr(sys.modules.get(module_name), "SqlAlchemyStore", None)
        engine_map = getattr(store_class, "_engine_map", None)
        if isinstance(engine_map, dict):
            maps.append(engine_map)
    return maps


def _close_mlflow_connections(tracking_uri: str) -> None:
    """Close the pooled connections MLflow holds to this database (the engines stay usable)."""
    for engine_map in _mlflow_engine_maps():
        if (engine := engine_map.get(tracking_uri)) is not None:
            engine.dispose()


def forget_cached_mlflow_store(tracking_uri: str) -> None:
    """Drop MLflow's in-process caches for a database file that is about to be deleted.

    MLflow caches one store (and one SQLAlchemy engine with pooled connections) per tracking URI
    for the life of the process. After the file is replaced, those would keep talking to the
    deleted file and would skip creating the tables in the new one.
    """
    if "mlflow" not in sys.modules:
        return  # nothing cached yet
    for engine_map in _mlflow_engine_maps():
        if (engine := engine_map.pop(tracking_uri, None)) is not None:
            engine.dispose()
    with contextlib.suppress(Exception):
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    with contextlib.suppress(Exception):
        from mlflow.tracking._model_registry.utils import _model_registry_store_registry

        _model_registry_store_registry._get_store_with_resolved_uri.cache_clear()  # type: ignore[attr-defined]


@contextlib.contextmanager
def fast_sqlite(db_path: Path) -> Iterator[None]:
    """Skip fsync and the on-disk journal for connections to `db_path` while the block runs.

    MLflow creates a fresh database by running ~70 alembic migrations, each in its own committed
    transaction; with fsync on every commit that alone takes 3-6 s. A crash mid-build can leave a
    corrupt file, which is harmless: without demo.json the next build wipes it.
    """
    import sqlite3

    import sqlalchemy
    from sqlalchemy import event

    target = str(db_path)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        files = {row[2] for row in dbapi_connection.execute("PRAGMA database_list")}
        if target in files:
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    event.listen(sqlalchemy.engine.Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(sqlalchemy.engine.Engine, "connect", on_connect)
        # Pooled connections keep their pragmas: close them, then make the file durable.
        _close_mlflow_connections(f"sqlite:///{db_path.as_posix()}")  # the store's tracking URI
        if db_path.exists():
            with open(db_path, "rb+") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's INFO logs and advice warnings while building."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Some MLflow functions reset the filters to "once" for their own block; muting the
            # display too keeps those quiet (catch_warnings restores it).
            warnings.showwarning = lambda *args, **kwargs: None
            yield
    finally:
        logger.setLevel(saved_level)


@contextlib.contextmanager
def mlflow_globals(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `tracking_uri` and restore every global it touches afterwards.

    `mlflow.set_tracking_uri` also writes `MLFLOW_TRACKING_URI` into os.environ (and setting it back
    to None deletes the variable, even one the user had set), so the environment is restored by hand.
    The offline settings are in place before the first `import mlflow`, which is when MLflow decides
    whether to start its telemetry client.
    """
    env_names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", *_BUILD_ENV)
    saved_env = {name: os.environ.get(name) for name in env_names}
    os.environ.update(_BUILD_ENV)

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # The values set by mlflow.set_*_uri (None when unset), not the resolved defaults.
    saved_tracking_uri = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry_uri = getattr(registry_utils, "_registry_uri", None)
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking_uri)  # type: ignore[arg-type]  # None unsets it, as it was
        registry_utils._registry_uri = saved_registry_uri
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def create_store_with_default_experiment(tracking_uri: str, artifacts_root: Path) -> None:
    # Creating the store ourselves gives MLflow's "Default" experiment (id 0) a home inside this
    # store instead of `./mlruns/0` relative to whatever the current directory is.
    with contextlib.suppress(Exception):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(tracking_uri, artifacts_root.as_uri())
