"""Any other store (HDFS, DBFS, FTP, ADLS, a plugin's scheme): MLflow's own client, spooled through a file.

MLflow's repositories download whole files to a path, so this transport cannot read a range: it has the
repository write the file into a spool file next to the download, then streams the asked range from it and
deletes it. ``supports_ranges`` is False, so callers restart such a file rather than resume it, and its bytes
reach disk twice (the spool, then their destination) and arrive all at once after the spool is complete. MLflow's
client says nothing of the version it read, so a retry never continues an earlier attempt's bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    Transport,
    VersionCallback,
    bounded,
    check_range,
)
from kitmlflow_tui.core.download.transports.versions import UNVERSIONED, ObjectVersion
from kitmlflow_tui.core.errors import InterruptedByUser


class GenericTransport(Transport):
    kind = "generic"
    supports_ranges = False

    def __init__(self, repository: Any, spool_dir: Path | None = None) -> None:
        self._repository = repository
        self._spool_dir = spool_dir

    def stream(
        self,
        file: ArtifactFile,
        start: int = 0,
        end: int | None = None,
        *,
        cancel: threading.Event | None = None,
        expect: ObjectVersion | None = None,
        on_version: VersionCallback | None = None,
    ) -> Generator[bytes, None, None]:
        check_range(start, end)
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=".kitmlflow-spool-", dir=self._spool_dir)
        os.close(descriptor)
        spool = Path(name)
        try:
            self._repository._download_file(file.remote_path, str(spool))
            if cancel is not None and cancel.is_set():
                raise InterruptedByUser("Download cancelled.")
            if on_version is not None:
                on_version(UNVERSIONED)
            with open(spool, "rb") as handle:
                handle.seek(start)
                for chunk in bounded(iter(lambda: handle.read(CHUNK_BYTES), b""), start, end):
                    if cancel is not None and cancel.is_set():
                        raise InterruptedByUser("Download cancelled.")
                    yield chunk
        finally:
            with contextlib.suppress(OSError):
                spool.unlink()
