"""The wizard's import in a child process: the same result, the same errors, a cancel that always ends it,
and no child left behind when either side goes away. Real demo store, real child processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from kitmlflow_tui.core.catalogue import Catalogue
from kitmlflow_tui.core.download.downloader import ProgressEvent
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, KitmlflowError
from kitmlflow_tui.core.events import Step, StepEvent
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.pipeline import ImportOptions, Observer, run_cache_dir, run_import, session_from_listing
from kitmlflow_tui.core.reference import RunRef
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.tui.import_process import (
    RELAY_THREAD_NAME,
    Failed,
    Frame,
    ImportJob,
    read_frames,
    run_import_in_child,
)

CHILD_MODULE = "kitmlflow_tui.tui.import_process"


class Recorder(Observer):
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.events: list[ProgressEvent] = []
        self.pack_steps: list[tuple[int, int]] = []

    def step(self, name: str, message: str) -> None:
        self.steps.append(name)

    def progress(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def pack_progress(self, done: int, total: int) -> None:
        self.pack_steps.append((done, total))


@pytest.fixture
def job(isolated_env, demo_store) -> ImportJob:
    resolved = Catalogue(demo_store.tracking_uri).resolve(RunRef(None, demo_store.runs["finished"]))
    spec = FilterSpec(exclude=("checkpoints/",))
    return ImportJob(
        demo_store.tracking_uri,
        resolved.run,
        resolved.tree,
        spec,
        resolved.registered,
        ImportOptions(tag=parse_modelkit_reference("child:v1"), packer="native"),
    )


def in_process_session(job: ImportJob):
    return session_from_listing(Catalogue(job.tracking_uri), job.run, job.tree, job.spec, job.registered)


@contextlib.contextmanager
def run_lock_held(job: ImportJob) -> Iterator[None]:
    """Hold the run's cache lock the way another import would, so the child waits without any I/O."""
    cache = run_cache_dir(in_process_session(job))
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache.parent / f".{cache.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def import_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if CHILD_MODULE in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def until(condition: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


class Background:
    """``run_import_in_child`` on a thread, as the wizard runs it."""

    def __init__(self, job: ImportJob) -> None:
        self.recorder = Recorder()
        self.cancel = threading.Event()
        self.outcome: BaseException | object = None
        self.thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self.thread.start()

    def _run(self, job: ImportJob) -> None:
        try:
            self.outcome = run_import_in_child(job, self.recorder, self.cancel)
        except BaseException as exc:
            self.outcome = exc

    def finish(self, timeout: float = 60.0) -> BaseException | object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_import_in_child never returned"
        return self.outcome


def test_the_child_gives_what_the_pipeline_gives_in_process_and_reports_progress(job) -> None:
    recorder = Recorder()
    cancel = threading.Event()
    result = run_import_in_child(job, recorder, cancel)
    # The wizard sets cancel when the import screen goes away, after the result: nothing may be left to
    # act on it (a relay still running wrote to the closed pipe of the finished child).
    assert RELAY_THREAD_NAME not in {thread.name for thread in threading.enumerate()}
    cancel.set()

    expected = run_import(in_process_session(job), job.options)
    assert (result.reference, result.digest, result.size) == (expected.reference, expected.digest, expected.size)
    assert result.kitfile == expected.kitfile
    assert "checkpoints/best.ckpt" not in result.download.paths
    # the native packer without gzip goes direct: the Kitfile from the listing, then the bytes into the layers
    assert recorder.steps[-3:] == ["kitfile", "download", "pack"]
    plan = next(e for e in recorder.events if e.kind == "plan")
    assert plan.total == sum(f.size or 0 for f in job.tree.files if job.spec.reason_left_out(f) is None)
    assert sum(e.size for e in recorder.events if e.kind == "bytes") == plan.size
    assert recorder.pack_steps and recorder.pack_steps[-1][0] == recorder.pack_steps[-1][1]
    assert import_children() == []


def test_an_error_in_the_child_arrives_as_the_same_error(job) -> None:
    bad = replace(job, options=replace(job.options, packer="docker"))  # a packer that does not exist: exit 2
    with pytest.raises(BadInputError) as in_child:
        run_import_in_child(bad, Observer(), threading.Event())
    with pytest.raises(BadInputError) as in_process:
        run_import(in_process_session(bad), bad.options)
    assert (in_child.value.message, in_child.value.hint) == (in_process.value.message, in_process.value.hint)
    assert in_child.value.exit_code == 2


def test_cancel_ends_the_child_even_while_it_waits_for_another_import(job, isolated_env: Path) -> None:
    with run_lock_held(job):
        running = Background(job)
        until(lambda: "wait" in running.recorder.steps, "the child to wait for the run's lock")
        running.cancel.set()
        outcome = running.finish()
    assert isinstance(outcome, InterruptedByUser), outcome
    assert import_children() == []
    assert not (isolated_env / "kitops").exists() or not any((isolated_env / "kitops").rglob("index.json"))


def test_a_child_whose_parent_is_gone_cancels_itself(job) -> None:
    read_end, write_end = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", CHILD_MODULE, str(write_end)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    frames_seen: list[Frame] = []
    try:
        with run_lock_held(job), os.fdopen(read_end, "rb") as frames:
            assert child.stdin is not None
            child.stdin.write(pickle.dumps(job))
            child.stdin.flush()
            for frame in read_frames(frames):
                frames_seen.append(frame)
                if frame == StepEvent(Step.WAIT, "Waiting for another import of this run to finish"):
                    child.stdin.close()  # what the kernel does when the wizard dies
            assert child.wait(timeout=60) == InterruptedByUser.exit_code
    finally:
        if child.poll() is None:
            child.kill()
    last = frames_seen[-1]
    assert isinstance(last, Failed) and isinstance(last.error, InterruptedByUser)


def test_a_child_that_dies_is_reported_and_its_command_line_holds_no_job(job) -> None:
    with run_lock_held(job):
        running = Background(job)
        until(lambda: "wait" in running.recorder.steps, "the child to wait for the run's lock")
        (child,) = import_children()
        assert child.cmdline()[1:3] == ["-m", CHILD_MODULE] and len(child.cmdline()) == 4
        child.kill()
        outcome = running.finish()
    assert isinstance(outcome, KitmlflowError) and not isinstance(outcome, InterruptedByUser)
    assert "ended without a result" in outcome.message and "-9" in outcome.message
