"""What the core tells a renderer while it works: the steps, transfer progress events and the pipeline's observer.

A module of its own, importing nothing heavy, so that a renderer (the CLI's progress, the wizard's import
screen, the import child's relay) can name these types without importing the pipeline, the Kitfile builder
or the transfer engine: the wizard's first paint must not pay for them (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kitmlflow_tui.core.pipeline import ImportResult


class Step(StrEnum):
    """What the core is doing, told with a message for a person (:meth:`Observer.step`). A value is its name in
    the Python API's ``StepEvent.step``: renaming one breaks a caller that matches on it."""

    START = "start"  # the wizard starts the import's own process
    CONNECT = "connect"
    LIST = "list"
    PLAN = "plan"
    DOWNLOAD = "download"
    KITFILE = "kitfile"
    PACK = "pack"
    PUSH = "push"
    ATTEST = "attest"
    TAG = "tag"  # a sync points a tag at a version, or deletes one
    WAIT = "wait"  # another import of the run, or sync of the registry, holds the lock
    NOTE = "note"  # no step of its own: a remark during the current one (a retry, a fallback)


@dataclass(frozen=True)
class StepEvent:
    """A step of the core begins (``step``); ``message`` says it for a person (``print(event)`` shows it)."""

    step: Step
    message: str

    def __str__(self) -> str:
        return self.message


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

    def step(self, step: Step, message: str) -> None:
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
