"""What the core tells a renderer while it works: transfer progress events and the pipeline's observer.

A module of its own, importing nothing heavy, so that a renderer (the CLI's progress, the wizard's import
screen, the import child's relay) can name these types without importing the pipeline, the Kitfile builder
or the transfer engine: the wizard's first paint must not pay for them (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kitmlflow_tui.core.pipeline import ImportResult


@dataclass(frozen=True)
class ProgressEvent:
    """What a transfer tells its observer. ``kind``:
    - ``plan``: before the first byte; ``size`` = bytes still to move, ``total`` = bytes of the plan,
      ``files`` = files still to move (the rest are already complete);
    - ``file_start`` / ``file_done`` / ``file_skipped``: one file (``size`` = its size);
    - ``bytes``: ``size`` more bytes of ``path`` arrived (negative when a restart discards some)."""

    kind: Literal["plan", "file_start", "bytes", "file_done", "file_skipped"]
    path: str = ""
    size: int = 0
    total: int = 0
    files: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


class Observer:
    """Receives what the pipeline is doing. The default ignores everything; renderers override."""

    def step(self, name: str, message: str) -> None:  # "connect", "list", "plan", "download", ...
        pass

    def listed(self, files: int) -> None:
        pass

    def progress(self, event: ProgressEvent) -> None:
        pass

    def pack_progress(self, done: int, total: int) -> None:
        pass

    def push_progress(self, event: ProgressEvent) -> None:  # the push's blobs, as the download's files
        pass

    def packed(self, result: ImportResult) -> None:  # the ModelKit is in local storage (a push may follow)
        pass
