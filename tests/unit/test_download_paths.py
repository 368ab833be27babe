"""Where a download may write: ``downloader.Destinations``, the last check before a file is created.

The listing checks (catalogue, and MLflow's own validate_path_is_safe) refuse these names first, so the
hostile-server tests never reach this one; it is tested here on its own, on a real file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitmlflow_tui.core.download.downloader import PARTIAL_DIR, Destinations
from kitmlflow_tui.core.errors import DownloadError


@pytest.mark.parametrize(
    "relative",
    ["../escape.txt", "a/../../escape.txt", "a/./b", "a//b", "/etc/passwd", "a\\b", "a\x00b", "", f"{PARTIAL_DIR}/x"],
)
def test_paths_that_leave_the_folder_or_are_not_clean_are_refused(relative: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Refusing to write"):
        Destinations(tmp_path).path(relative)


def test_a_symlink_inside_the_folder_that_points_out_is_refused(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "link")
    with pytest.raises(DownloadError, match="resolves outside"):
        Destinations(dest).path("link/x.bin")
    assert Destinations(dest, fresh_folder=True).path("link/x.bin") == dest / "link" / "x.bin"  # trusted: ours


def test_clean_relative_paths_land_inside(tmp_path: Path) -> None:
    assert Destinations(tmp_path).path("a/b/c.bin") == tmp_path / "a" / "b" / "c.bin"
    assert Destinations(tmp_path).path("..hidden/x") == tmp_path / "..hidden" / "x"  # a name, not a parent


def test_each_file_of_a_folder_is_checked_though_the_folder_is_resolved_once(tmp_path: Path) -> None:
    """A file whose own name is a symlink out is refused even after its folder was found inside (the folder's
    resolution is kept for the next files, the file's is not)."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (dest / "data").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside / "stolen.bin", dest / "data" / "b.bin")
    destinations = Destinations(dest)
    assert destinations.path("data/a.bin") == dest / "data" / "a.bin"
    with pytest.raises(DownloadError, match="resolves outside"):
        destinations.path("data/b.bin")
    assert destinations.path("data/c.bin") == dest / "data" / "c.bin"
    os.symlink(dest / "data" / "a.bin", dest / "data" / "d.bin")  # a link that stays inside is a file inside
    assert destinations.path("data/d.bin") == dest / "data" / "d.bin"
