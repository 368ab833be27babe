"""Where a download may write: ``download.safe_destination``, the last check before a file is created.

The listing checks (catalogue, and MLflow's own validate_path_is_safe) refuse these names first, so the
hostile-server tests never reach this one; it is tested here on its own, on a real file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitmlflow_tui.core.download.downloader import PARTIAL_DIR, safe_destination
from kitmlflow_tui.core.errors import DownloadError


@pytest.mark.parametrize(
    "relative",
    ["../escape.txt", "a/../../escape.txt", "a/./b", "a//b", "/etc/passwd", "a\\b", "a\x00b", "", f"{PARTIAL_DIR}/x"],
)
def test_paths_that_leave_the_folder_or_are_not_clean_are_refused(relative: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Refusing to write"):
        safe_destination(tmp_path, relative)


def test_a_symlink_inside_the_folder_that_points_out_is_refused(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "link")
    with pytest.raises(DownloadError, match="resolves outside"):
        safe_destination(dest, "link/x.bin")
    assert safe_destination(dest, "link/x.bin", fresh_folder=True) == dest / "link" / "x.bin"  # trusted: ours


def test_clean_relative_paths_land_inside(tmp_path: Path) -> None:
    assert safe_destination(tmp_path, "a/b/c.bin") == tmp_path / "a" / "b" / "c.bin"
    assert safe_destination(tmp_path, "..hidden/x") == tmp_path / "..hidden" / "x"  # a name, not a parent
