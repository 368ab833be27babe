"""A local artifact store (``file:`` or a plain path): the file itself, read from an offset. Its version is the
file's inode, size and modification time: a file replaced (renamed over) or rewritten in place is another one."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import Any

from kitmlflow_tui.core.catalogue import ArtifactFile
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    Transport,
    VersionCallback,
    bounded,
    check_range,
)
from kitmlflow_tui.core.download.transports.versions import ObjectVersion
from kitmlflow_tui.core.errors import DownloadError, InterruptedByUser


class LocalTransport(Transport):
    kind = "local"

    def __init__(self, repository: Any) -> None:
        self._root = Path(repository.artifact_dir)

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
        source = self._root.joinpath(*PurePosixPath(file.remote_path).parts)
        if not source.resolve().is_relative_to(self._root.resolve()):
            raise DownloadError(f"Refusing to read {file.remote_path!r}: it lies outside the artifact store.")
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed by the with below, inside the generator
        except FileNotFoundError:
            raise DownloadError(f"The artifact {file.path} is listed but missing from the store ({source}).") from None
        with handle:
            if on_version is not None:
                stat = os.fstat(handle.fileno())
                on_version(ObjectVersion(f"local {stat.st_ino} {stat.st_size} {stat.st_mtime_ns}"))
            handle.seek(start)
            for chunk in bounded(iter(lambda: handle.read(CHUNK_BYTES), b""), start, end):
                if cancel is not None and cancel.is_set():
                    raise InterruptedByUser("Download cancelled.")
                yield chunk
