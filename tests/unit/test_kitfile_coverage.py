"""Which files a Kitfile leaves out of every layer (kitfile/coverage.py), against what the real kit 1.7.0 packed.

The recorded packs (tests/kit_vectors/) list every tar entry of every layer kit wrote: a file of the folder
in none of them is a file kit dropped. ``files_in_no_layer`` must name exactly those, from the paths alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitmlflow_tui.core.errors import KitmlflowError
from kitmlflow_tui.core.kitfile import files_in_no_layer, load_kitfile_text
from kitmlflow_tui.core.kitfile.coverage import REASON_DOTS, REASON_NO_ENTRY
from tests.support import kitvectors as kv


def packed_files(record: kv.PackRecord) -> set[str]:
    """The regular files kit put in any layer ("MODE TYPE SIZE NAME" entries of type f)."""
    return {entry.split(" ", 3)[3] for layer in record.layers for entry in layer.entries if entry.split(" ")[1] == "f"}


def _comparable() -> list[str]:
    """Recorded packs kit made (not refused), of a folder without its own .kitignore (which kit obeys and an
    import never stages), whose Kitfile kitmlflow accepts."""
    names = []
    for name, case in kv.pack_cases().items():
        if kv.pack_record(name).error is not None:
            continue
        if ".kitignore" in (kv.folders()[case.folder].get("files") or {}):
            continue
        try:
            load_kitfile_text(case.text_for_kit())
        except KitmlflowError:
            continue  # kitmlflow refuses on purpose what kit 1.7.0 packs (test_kit_vectors.py says why)
        names.append(name)
    return names


@pytest.mark.parametrize("name", _comparable())
def test_the_files_kit_left_out_of_every_layer_are_exactly_those_named(name: str, tmp_path: Path) -> None:
    case = kv.pack_cases()[name]
    description = kv.folders()[case.folder]
    folder = kv.build_folder(description, tmp_path / "ctx")
    kitfile = load_kitfile_text(case.text_for_kit(), folder=folder)
    files = list(description.get("files") or {})
    dropped_by_kit = set(files) - packed_files(kv.pack_record(name))
    assert set(files_in_no_layer(kitfile, files)) == dropped_by_kit


def test_the_comparison_covers_the_drops_kit_makes() -> None:
    """The corpus holds packs where kit dropped files (else the test above proves little)."""
    drops = 0
    for name in _comparable():
        description = kv.folders()[kv.pack_cases()[name].folder]
        drops += len(set(description.get("files") or {}) - packed_files(kv.pack_record(name)))
    assert drops >= 3


def kitfile(text: str):
    return load_kitfile_text("manifestVersion: 1.0.0\n" + text)


def test_kits_own_names_at_the_root_are_in_no_layer_whatever_the_entries() -> None:
    found = files_in_no_layer(
        kitfile("code:\n  - path: .\n"), ["Kitfile", ".kitignore", "kitfile", "sub/Kitfile", "sub/.kitignore", "a.py"]
    )
    assert set(found) == {"Kitfile", ".kitignore", "kitfile"}
    assert "its own" in found["Kitfile"]


def test_a_file_no_entry_covers_and_the_prefix_rule_and_dots() -> None:
    found = files_in_no_layer(
        kitfile("model:\n  path: model.pkl\ncode:\n  - path: .\ndatasets:\n  - path: data\n"),
        ["model.pkl", "model.pkl.bak", "train.py", "data/a..b.csv", "data/ok.csv"],
    )
    assert set(found) == {"model.pkl.bak", "data/a..b.csv"}
    assert "'model.pkl'" in found["model.pkl.bak"]
    assert found["data/a..b.csv"] == REASON_DOTS
    uncovered = files_in_no_layer(kitfile("model:\n  path: model.pkl\n"), ["model.pkl", "notes.txt"])
    assert uncovered == {"notes.txt": REASON_NO_ENTRY}
