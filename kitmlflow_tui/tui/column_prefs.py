"""The runs table's columns chosen per experiment, remembered between sessions.

One small JSON file, ``<user state dir>/kitmlflow/runs-columns.json`` (platformdirs: honours
``XDG_STATE_HOME``; ``~/.local/state/kitmlflow/`` on Linux): ``{"SERVER EXPERIMENT": [column, ...]}``,
where SERVER is a hash of the tracking URI without credentials, so the file names no server. It is read
with bounds (a size cap, strings only); an unreadable or foreign file is ignored, never an error: these
are preferences. Written atomically; the most recently chosen experiments are kept, the oldest dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

FILE_NAME = "runs-columns.json"
MAX_FILE_BYTES = 256 * 1024
MAX_EXPERIMENTS = 200
MAX_COLUMNS = 100
MAX_NAME_CHARS = 500


def prefs_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("kitmlflow", appauthor=False)) / FILE_NAME


def _key(display_uri: str, experiment_id: str) -> str:
    return f"{hashlib.sha256(display_uri.encode()).hexdigest()[:16]} {experiment_id}"


def _read(path: Path) -> dict[str, list[str]]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return {}
    if len(raw) > MAX_FILE_BYTES:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: [c for c in value[:MAX_COLUMNS] if isinstance(c, str) and len(c) <= MAX_NAME_CHARS]
        for key, value in data.items()
        if isinstance(key, str) and isinstance(value, list)
    }


def load_columns(display_uri: str, experiment_id: str) -> list[str] | None:
    """The columns last chosen for this experiment of this server, or None."""
    return _read(prefs_file()).get(_key(display_uri, experiment_id))


def save_columns(display_uri: str, experiment_id: str, columns: list[str]) -> Path:
    """Remember the columns of an experiment (raises OSError when the state folder is not writable)."""
    path = prefs_file()
    data = _read(path)
    key = _key(display_uri, experiment_id)
    data.pop(key, None)
    data[key] = columns[:MAX_COLUMNS]  # last in the dict: the most recent
    while len(data) > MAX_EXPERIMENTS:
        data.pop(next(iter(data)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
