"""A local demo MLflow store (sqlite + artifact folder) whose runs look like real projects.

Used by `kitmlflow demo`, by the tests and by the benchmarks. The store is built once per folder and
reused: `demo.json` is written last (atomically) and marks a complete store; a folder without it is
treated as an interrupted build, wiped and rebuilt. The build happens in the final folder rather than
in a temporary one renamed at the end, because MLflow records absolute artifact locations (experiments,
runs, logged models, model versions) that would all point into the temporary folder.

Every file's bytes are deterministic (fixed seeds), so artifact sizes are stable across builds; run ids,
model ids and timestamps are not.

- :mod:`.store` — the store's life cycle (build once under a lock, reuse, wipe an interrupted build);
- :mod:`.scenario` — the experiments, runs, logged and registered models, and their roles;
- :mod:`.content` — the deterministic bytes of every file;
- :mod:`.mlflow_state` — MLflow's process-wide state around a build (and the private caches reset).
"""

from kitmlflow_tui.demo.scenario import (
    CHAMPION_ALIAS,
    EXP_NLP,
    EXP_SWEEPS,
    EXP_VISION,
    EXPERIMENT_NAMES,
    MODEL_CLASSIFIER,
    MODEL_ENCODER,
    MODEL_FINISHED,
    REGISTERED_MODEL,
    ROLE_TAG,
    RUN_EMPTY,
    RUN_FAILED,
    RUN_FINISHED,
    RUN_KILLED,
    RUN_LEGACY,
    RUN_RUNNING,
    RUN_TWO_MODELS,
    SWEEP_RUNS,
)
from kitmlflow_tui.demo.store import (
    SCHEMA_VERSION,
    DemoStore,
    build_demo_store,
    default_demo_root,
    load_demo_store,
    tracking_uri_for,
)

__all__ = [
    "CHAMPION_ALIAS",
    "EXPERIMENT_NAMES",
    "EXP_NLP",
    "EXP_SWEEPS",
    "EXP_VISION",
    "MODEL_CLASSIFIER",
    "MODEL_ENCODER",
    "MODEL_FINISHED",
    "REGISTERED_MODEL",
    "ROLE_TAG",
    "RUN_EMPTY",
    "RUN_FAILED",
    "RUN_FINISHED",
    "RUN_KILLED",
    "RUN_LEGACY",
    "RUN_RUNNING",
    "RUN_TWO_MODELS",
    "SCHEMA_VERSION",
    "SWEEP_RUNS",
    "DemoStore",
    "build_demo_store",
    "default_demo_root",
    "load_demo_store",
    "tracking_uri_for",
]
