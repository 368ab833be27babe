"""The one file-lock helper: ``flock`` on a lock file, with waits that a cancel can end.

Three places need a lock between processes: the demo store's build, one import per run cache, and
the index and tag files of kit's storage. They all use this module. Waits are polled (a blocking
``flock`` cannot be interrupted from another thread), so a cancel from the wizard ends them.

Why not the ``filelock`` library: kit's storage needs shared locks (every pack holds one; the pack
that can take the lock exclusively knows every temporary file is a leftover), and the run cache
removes its lock file when done, which needs the inode check below; ``filelock`` offers neither.
Where ``fcntl`` does not exist (Windows), locking is a no-op: concurrent use is not supported there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

POLL_SECONDS = 0.2
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


class LockWaitCancelled(Exception):
    """The cancel event was set while waiting for the lock; callers turn it into their own error."""


def open_lock_file(path: Path) -> int:
    """The lock file's descriptor (created when missing). Raises OSError."""
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take the lock without waiting; False when another process holds it or locks are unsupported on
    this file system. A shared lock taken on a descriptor that holds the exclusive one converts it."""
    return _flock(fd, shared=shared) is True


def wait_lock(
    fd: int,
    *,
    shared: bool = False,
    cancel: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Take the lock, waiting as long as it takes (not at all where the file system has no locks);
    ``on_wait`` is called once when the lock is busy. Raises LockWaitCancelled when ``cancel`` is set
    meanwhile."""
    told = False
    while _flock(fd, shared=shared) is False:
        if not told and on_wait is not None:
            on_wait()
        told = True
        if (cancel or threading.Event()).wait(POLL_SECONDS):
            raise LockWaitCancelled


def _flock(fd: int, *, shared: bool) -> bool | None:
    """True: taken; False: busy; None: this system or file system has no locks."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    return True


@contextlib.contextmanager
def locked(
    path: Path,
    *,
    shared: bool = False,
    cancel: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
    remove_when_done: bool = False,
) -> Iterator[int]:
    """Hold the lock on ``path`` for the block; yields the descriptor.

    With ``remove_when_done`` the lock file is deleted on release (nothing is left behind). A waiter
    may then hold a lock on a file that no longer has a name, so after taking it the file at ``path``
    is compared with the one locked, and the lock is taken again on the file that is there now.
    Raises OSError when the lock file cannot be opened, LockWaitCancelled when cancelled.
    """
    told = False

    def tell() -> None:  # once, however often the lock file had to be opened again
        nonlocal told
        if not told and on_wait is not None:
            on_wait()
        told = True

    while True:
        fd = open_lock_file(path)
        try:
            wait_lock(fd, shared=shared, cancel=cancel, on_wait=tell)
        except BaseException:
            os.close(fd)
            raise
        if not remove_when_done or _still_named(path, fd):
            break
        os.close(fd)
    try:
        yield fd
    finally:
        if remove_when_done:
            with contextlib.suppress(OSError):
                os.unlink(path)  # still ours: the lock is held until the close below
        os.close(fd)  # closing releases the lock


def _still_named(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
