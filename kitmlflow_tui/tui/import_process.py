"""The import step (``pipeline.run_import``) in a child process, for a caller that must stay responsive.

Downloading, hashing and packing keep several threads busy; in the wizard's process they would compete
with the UI thread for the GIL and the CPU. From a child, a keystroke during a download was repainted in a
median 66–84 ms against 74–115 ms in-process (bench/tui_startup.py, 2 idle cores). The child also keeps
MLflow's transfer state, its memory and any crash out of the wizard, and a cancel or a vanished wizard
always ends it.

How the two talk:
- the parent starts ``python -m kitmlflow_tui.tui.import_process FD`` in a session of its own: the terminal's
  signals belong to the wizard, and Linux schedules the session as a group (autogroup), so the UI thread
  is not one thread among the import's many. It writes one pickled ``ImportJob`` to the child's stdin and
  keeps stdin open. The job holds the tracking URI, which may carry a password: it goes through the pipe,
  never onto argv;
- a line ``cancel`` on stdin, or stdin closing because the parent is gone, sets the child's cancel event,
  which the pipeline handles like Ctrl-C: completed downloads stay in the cache, no partial ModelKit;
- the child sends its observer's calls as typed frames (:data:`Frame`: a ``StepEvent``, the download's
  ``ProgressEvent``, ``Listed``, ``PackProgress``, ``PushProgress``, ``Packed``) on pipe FD as length-prefixed
  pickles, then one ``Finished`` (its ImportResult; for a ``PushJob``, the ModelKit packed earlier, now pushed) or
  ``Failed`` (its KitmlflowError); the parent tells its own observer each one. The child's stdout and stderr are
  only for what Python and MLflow print; the parent keeps the end of stderr for the message if the child dies.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from kitmlflow_tui.core.errors import KitmlflowError, as_kitmlflow_error, scrub_secrets
from kitmlflow_tui.core.events import Observer, ProgressEvent, Step, StepEvent

if TYPE_CHECKING:
    from kitmlflow_tui.core.catalogue.records import ArtifactTree, RegisteredModelInfo, RunInfo
    from kitmlflow_tui.core.pipeline import ImportOptions, ImportResult
    from kitmlflow_tui.core.selection.plan import FilterSpec

_LENGTH = struct.Struct(">I")
CANCEL_LINE = b"cancel\n"
CANCEL_POLL_SECONDS = 0.1
STDERR_TAIL_BYTES = 4000
RELAY_THREAD_NAME = "kitmlflow-import-cancel-relay"


@dataclass(frozen=True)
class ImportJob:
    """A run the caller has already listed, what to take from it, and how to pack (and push) it."""

    tracking_uri: str
    run: RunInfo
    tree: ArtifactTree
    spec: FilterSpec
    registered: RegisteredModelInfo | None
    options: ImportOptions


@dataclass(frozen=True)
class PushJob:
    """Push a ModelKit an earlier job packed (its push failed, or the done step asks for one):
    ``options.push_to`` is the target."""

    packed: ImportResult
    options: ImportOptions


# -- the frames -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    files: int


@dataclass(frozen=True)
class PackProgress:
    done: int
    total: int


@dataclass(frozen=True)
class PushProgress:
    event: ProgressEvent


@dataclass(frozen=True)
class Packed:
    result: ImportResult


@dataclass(frozen=True)
class Finished:
    result: ImportResult


@dataclass(frozen=True)
class Failed:
    error: KitmlflowError


ObserverFrame = StepEvent | ProgressEvent | Listed | PackProgress | PushProgress | Packed
Frame = ObserverFrame | Finished | Failed


def tell(observer: Observer, frame: ObserverFrame) -> None:
    """The observer's call that ``frame`` stands for."""
    match frame:
        case StepEvent(step, message):
            observer.step(step, message)
        case ProgressEvent():
            observer.progress(frame)
        case Listed(files):
            observer.listed(files)
        case PackProgress(done, total):
            observer.pack_progress(done, total)
        case PushProgress(event):
            observer.push_progress(event)
        case Packed(result):
            observer.packed(result)


# -- the parent's side ----------------------------------------------------------------------------
def run_import_in_child(job: ImportJob | PushJob, observer: Observer, cancel: threading.Event) -> ImportResult:
    """``pipeline.run_import`` for an ImportJob, ``pipeline.push_packed`` for a PushJob (an ImportResult either
    way), in a child process; the observer's calls are replayed here, on the calling thread.
    Setting ``cancel`` stops the child the way Ctrl-C stops the CLI."""
    if isinstance(job, ImportJob):
        observer.step(Step.START, "Starting the import (loading MLflow in a process of its own)")
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as stderr:
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "kitmlflow_tui.tui.import_process", str(write_end)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(write_end,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_end)
            raise KitmlflowError(f"Cannot start the import process: {exc.strerror or exc}.") from exc
        finally:
            os.close(write_end)  # the child holds the only write end: EOF here means it is gone
        over = threading.Event()
        assert child.stdin is not None
        stdin = child.stdin
        relay: threading.Thread | None = None
        try:
            with contextlib.suppress(BrokenPipeError):  # a child that died at once is reported below
                stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
                stdin.flush()
            relay = threading.Thread(
                target=_relay_cancel, args=(cancel, over, stdin), name=RELAY_THREAD_NAME, daemon=True
            )
            relay.start()
            outcome: Finished | Failed | None = None
            with os.fdopen(read_end, "rb") as frames:
                for frame in read_frames(frames):
                    if isinstance(frame, Finished | Failed):
                        outcome = frame
                    else:
                        tell(observer, frame)
            code = child.wait()
        finally:
            over.set()
            if relay is not None:
                relay.join()  # before stdin closes: a cancel set just now must not write to a closed pipe
            if child.poll() is None:  # we are leaving on an exception of our own: do not leave it behind
                _send_cancel(stdin)
                child.wait()
            with contextlib.suppress(OSError):
                stdin.close()
        if outcome is None:
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES))
            tail = stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise KitmlflowError(
                f"The import process ended without a result (exit code {code}).",
                hint=scrub_secrets(tail[-1]) if tail else None,
            )
    if isinstance(outcome, Failed):
        raise outcome.error
    return outcome.result


def _relay_cancel(cancel: threading.Event, over: threading.Event, stdin: IO[bytes]) -> None:
    while not over.is_set():
        if cancel.wait(CANCEL_POLL_SECONDS):
            _send_cancel(stdin)
            return


def _send_cancel(stdin: IO[bytes]) -> None:
    with contextlib.suppress(OSError):  # the child is gone already: nothing left to cancel
        stdin.write(CANCEL_LINE)
        stdin.flush()


def read_frames(stream: IO[bytes]) -> Iterator[Frame]:
    """The frames the child wrote, until it closes its end (a truncated last frame is dropped)."""
    while True:
        header = stream.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        (size,) = _LENGTH.unpack(header)
        body = stream.read(size)
        if len(body) < size:
            return
        frame: Frame = pickle.loads(body)  # our own child, started by us: the only writer of this pipe
        yield frame


# -- the child's side -----------------------------------------------------------------------------
class FrameWriter:
    """Writes frames from any thread; one frame is never interleaved with another."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, frame: Frame) -> None:
        body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            self.stream.write(_LENGTH.pack(len(body)) + body)
            self.stream.flush()


class SendingObserver(Observer):
    """The pipeline's observer in the child: every call becomes a frame for the parent's observer (:func:`tell`)."""

    def __init__(self, frames: FrameWriter) -> None:
        self.frames = frames

    def step(self, step: Step, message: str) -> None:
        self.frames.send(StepEvent(step, message))

    def listed(self, files: int) -> None:
        self.frames.send(Listed(files))

    def progress(self, event: ProgressEvent) -> None:
        self.frames.send(event)

    def pack_progress(self, done: int, total: int) -> None:
        self.frames.send(PackProgress(done, total))

    def push_progress(self, event: ProgressEvent) -> None:
        self.frames.send(PushProgress(event))

    def packed(self, result: ImportResult) -> None:
        self.frames.send(Packed(result))


def _cancel_on_request(stdin: IO[bytes], cancel: threading.Event) -> None:
    """Cancel on a ``cancel`` line, and on end of input: the parent is gone, nobody waits for a result."""
    stdin.readline()  # a line, or b"" at end of input
    cancel.set()


def _sendable(error: KitmlflowError) -> KitmlflowError:
    """The error itself when it survives a pickle round trip, else its message in the base class."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return KitmlflowError(error.message, hint=error.hint)
    return error


def _run(job: ImportJob | PushJob, observer: Observer, cancel: threading.Event) -> ImportResult:
    if isinstance(job, PushJob):
        from kitmlflow_tui.core.pipeline import push_packed

        return push_packed(job.packed, job.options, observer, cancel)
    from kitmlflow_tui.core.catalogue import Catalogue
    from kitmlflow_tui.core.pipeline import run_import, session_from_listing

    catalogue = Catalogue(job.tracking_uri, jobs=job.options.jobs)
    session = session_from_listing(catalogue, job.run, job.tree, job.spec, job.registered, cancel)
    return run_import(session, job.options, observer)


def main(argv: list[str]) -> int:
    frames = FrameWriter(os.fdopen(int(argv[1]), "wb"))
    # Unbuffered: the cancel thread stays blocked in a read of stdin until the process ends, and a blocked
    # sys.stdin.buffer holds its lock, which the interpreter's shutdown then cannot take ("Fatal Python
    # error: _enter_buffered_busy", exit -6, after the result was sent). Unbuffered also reads no further
    # than the job, so a cancel line written right after it stays in the pipe for the thread.
    stdin = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    job: ImportJob | PushJob = pickle.load(stdin)
    cancel = threading.Event()
    threading.Thread(target=_cancel_on_request, args=(stdin, cancel), daemon=True).start()
    try:
        result = _run(job, SendingObserver(frames), cancel)
    except KitmlflowError as exc:
        frames.send(Failed(_sendable(exc)))
        return exc.exit_code
    except Exception as exc:  # reaches the user as one line; the traceback stays on this process's stderr
        traceback.print_exc()
        frames.send(Failed(as_kitmlflow_error(exc)))
        return 1
    frames.send(Finished(result))
    return 0


if __name__ == "__main__":
    from kitmlflow_tui import disable_mlflow_telemetry

    disable_mlflow_telemetry()  # before the job, and with it MLflow, is loaded
    # Run the package module's main, not this __main__ copy: the job was pickled as a
    # kitmlflow_tui.tui.import_process class, and an isinstance against __main__'s twin would never match.
    from kitmlflow_tui.tui import import_process

    sys.exit(import_process.main(sys.argv))
