"""Watching the files a running process writes, from a test: sizes that tolerate the process's renames."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def bytes_of(paths: Iterable[Path], *, allocated: bool = False) -> int:
    """The sizes (``allocated``: the blocks on disk, for sparse files) of the regular files among ``paths``.
    A file the watched process renames or deletes between the listing and its stat counts as gone, not as an
    error: the test reads a folder another process is changing."""
    total = 0
    for path in paths:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            total += info.st_blocks * 512 if allocated else info.st_size
    return total
