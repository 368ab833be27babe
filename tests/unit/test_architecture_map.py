"""docs/architecture.md's module map names every module of the package, so the map a newcomer reads is the
tree they find (a module written tomorrow fails here until the map says what it is for)."""

from __future__ import annotations

import re
from pathlib import Path

import kitmlflow_tui

ROOT = Path(kitmlflow_tui.__file__).parent
MAP = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")


def mapped_paths() -> set[str]:
    """The paths the map's tree names: each line's names (``a.py, b.py`` or ``folder/``) under the folders
    of the lines above it, by indentation (two spaces a level)."""
    block = MAP.split("## The module map", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    folders: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)([\w./]+(?:, [\w.]+)*)(?:\s{2,}|$)", line)
        if not match or not match.group(2).strip():
            continue
        depth = len(match.group(1)) // 2
        names = [name.strip() for name in match.group(2).split(",")]
        del folders[depth:]
        for name in names:
            paths.add("/".join([*folders, name.rstrip("/")]))
        if names[-1].endswith("/"):
            folders.append(names[-1].rstrip("/"))
    return paths


def package_modules() -> set[str]:
    return {
        str(path.relative_to(ROOT.parent))
        for path in ROOT.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") or path.parent == ROOT
    }


def test_the_map_names_every_module() -> None:
    missing = package_modules() - mapped_paths()
    assert not missing, f"docs/architecture.md's module map lacks: {sorted(missing)}"


def test_the_map_names_no_module_that_is_gone() -> None:
    mapped_modules = {path for path in mapped_paths() if path.endswith(".py")}
    gone = mapped_modules - package_modules()
    assert not gone, f"docs/architecture.md's module map names modules that do not exist: {sorted(gone)}"
