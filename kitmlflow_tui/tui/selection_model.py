"""What the artifact browser knows and what the user ticked, without Textual.

The ticks are kept as overrides on paths (the deepest override above a file decides), so folders can be
ticked before the whole tree is listed. Once it is, the ticks become a set of files, and
``spec_for_selection`` turns that set into the include/exclude patterns that reproduce it exactly, so the
wizard's choice is the same ``FilterSpec`` that ``kitmlflow import --include/--exclude`` takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

from kitmlflow_tui.core.catalogue.records import ArtifactFile, ArtifactTree, LevelEntry
from kitmlflow_tui.core.selection.plan import FilterSpec, make_plan

TickState = Literal["all", "none", "some"]
GlobMode = Literal["only", "add", "remove"]  # tick exactly the matches / tick them too / untick them
_GLOB_SPECIALS = frozenset("*?[\\")
# A file is highlighted as big from this share of the run's bytes, or from this size whatever the share.
BIG_SHARE = 0.10
BIG_BYTES = 1_000_000_000


def escape_glob(path: str) -> str:
    """A literal path as a glob: metacharacters escaped with ``\\``; a trailing blank (which the glob
    parser would strip) written as a one-character class."""
    out = ["\\" + c if c in _GLOB_SPECIALS else c for c in path]
    if out and out[-1].isspace():
        out[-1] = f"[{out[-1]}]"
    return "".join(out)


def folder_pattern(folder: str) -> str:
    return f"/{escape_glob(folder)}/"


def file_pattern(path: str) -> str:
    return f"/{escape_glob(path)}"


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


@dataclass
class Folder:
    path: str
    folders: dict[str, Folder] = field(default_factory=dict)
    files: dict[str, ArtifactFile] = field(default_factory=dict)
    size: int = 0
    count: int = 0
    model: str | None = None


class FolderIndex:
    """The whole listed tree as nested folders, with byte and file totals per folder."""

    def __init__(self, tree: ArtifactTree) -> None:
        self.tree = tree
        self.root = Folder("")
        self.folders: dict[str, Folder] = {"": self.root}
        model_folders = {m.folder for m in tree.logged_models}
        for file in tree.files:
            parts = file.path.split("/")
            node = self.root
            node.size += file.size or 0
            node.count += 1
            for depth in range(1, len(parts)):
                name = parts[depth - 1]
                child = node.folders.get(name)
                if child is None:
                    path = "/".join(parts[:depth])
                    child = Folder(path, model=path if path in model_folders else node.model)
                    node.folders[name] = child
                    self.folders[path] = child
                node = child
                node.size += file.size or 0
                node.count += 1
            node.files[parts[-1]] = file
        self.big_threshold = min(BIG_BYTES, max(int(self.root.size * BIG_SHARE), 1))

    def children(self, path: str) -> list[LevelEntry]:
        folder = self.folders.get(path)
        if folder is None:
            return []
        entries = [
            LevelEntry(f.path, True, f.size, f.model if f.model == f.path else None) for f in folder.folders.values()
        ]
        entries += [LevelEntry(f.path, False, f.size) for f in folder.files.values()]
        return sorted(entries, key=lambda e: e.path)

    def is_big(self, size: int | None) -> bool:
        return size is not None and size >= self.big_threshold and self.root.count > 1

    @cached_property
    def has_big(self) -> bool:
        return any(self.is_big(f.size) for f in self.tree.files)


class Selection:
    """Ticks as path overrides: ``value(path)`` is the override of the path or its nearest ancestor."""

    def __init__(self, everything: bool = True) -> None:
        self.overrides: dict[str, bool] = {"": everything}

    def value(self, path: str) -> bool:
        while True:
            if path in self.overrides:
                return self.overrides[path]
            if not path:
                return self.overrides[""]
            path = parent_of(path)

    def tick(self, path: str, ticked: bool) -> None:
        if not path:
            self.overrides = {"": ticked}
            return
        prefix = path + "/"
        for key in [k for k in self.overrides if k.startswith(prefix) or k == path]:
            del self.overrides[key]
        if self.value(parent_of(path)) != ticked:
            self.overrides[path] = ticked

    def mixed_below(self, path: str) -> bool:
        """Without a listing: does an override under the folder disagree with the folder's own value?"""
        own = self.value(path)
        prefix = path + "/" if path else ""
        return any(k.startswith(prefix) and k != path and v != own for k, v in self.overrides.items())

    @classmethod
    def from_files(cls, index: FolderIndex, chosen: set[str]) -> Selection:
        """The fewest overrides that tick exactly ``chosen``."""
        selection = cls(everything=False)
        counts = _selected_counts(index, chosen)

        def visit(folder: Folder, inherited: bool) -> None:
            picked = counts.get(folder.path, 0)
            whole = picked == folder.count
            if whole or picked == 0:
                if whole != inherited:
                    selection.overrides[folder.path] = whole
                return
            for child in folder.folders.values():
                visit(child, inherited)
            for file in folder.files.values():
                if (file.path in chosen) != inherited:
                    selection.overrides[file.path] = file.path in chosen

        visit(index.root, False)
        return selection


def _selected_counts(index: FolderIndex, chosen: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in chosen:
        folder = parent_of(path)
        while True:
            counts[folder] = counts.get(folder, 0) + 1
            if not folder:
                break
            folder = parent_of(folder)
    return counts


@dataclass(frozen=True)
class Totals:
    files: int
    size: int
    all_files: int
    all_size: int


class ArtifactBrowser:
    """The artifact step's state: the first level (at once), the full index (once listed), the ticks."""

    def __init__(self) -> None:
        self.levels: dict[str, list[LevelEntry]] = {}  # folders listed one at a time, before the whole tree
        self.index: FolderIndex | None = None
        self.selection = Selection()
        self.applied_spec: FilterSpec | None = None  # the spec last applied (profile, glob), kept if still exact
        self._chosen: set[str] | None = None
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    # -- data arriving -----------------------------------------------------------------------
    def set_level(self, folder: str, entries: list[LevelEntry]) -> None:
        """One folder's entries (``""``: the first level), shown until the whole tree arrives."""
        self.levels[folder] = list(entries)

    def set_tree(self, tree: ArtifactTree) -> None:
        self.index = FolderIndex(tree)
        self._invalidate()

    @property
    def listed(self) -> bool:
        return self.index is not None

    def children(self, path: str) -> list[LevelEntry] | None:
        """The entries of a folder, or None while it is not listed yet."""
        if self.index is not None:
            return self.index.children(path)
        level = self.levels.get(path)
        return list(level) if level is not None else None

    # -- ticking -----------------------------------------------------------------------------
    def toggle(self, path: str, is_dir: bool) -> None:
        self.tick(path, self.state(path, is_dir) != "all")

    def tick(self, path: str, ticked: bool) -> None:
        self.selection.tick(path, ticked)
        self._invalidate()

    def select_all(self, ticked: bool) -> None:
        self.tick("", ticked)
        self.applied_spec = None

    def apply_spec(self, spec: FilterSpec) -> None:
        """Tick exactly what the spec selects (needs the full listing)."""
        assert self.index is not None, "apply_spec needs the whole tree"
        plan = make_plan(self.index.tree, spec)
        self.selection = Selection.from_files(self.index, {f.path for f in plan.selected})
        self.applied_spec = spec
        self._invalidate()

    def apply_glob(self, glob: FilterSpec, mode: GlobMode) -> None:
        """Tick what a glob of the dialog matches: only those, those too, or all but those.

        The user's patterns stay patterns in the spec wherever the result can be said with them
        (Remove of ``*.pt`` is ``exclude: [*.pt]``, so next week's ``epoch_006.pt`` is left out too);
        only when it cannot (a glob with its own ``!`` excludes, adding what an exclude took out) do
        the ticks become paths."""
        assert self.index is not None, "apply_glob needs the whole tree"
        if mode == "only":
            self.apply_spec(glob)
            return
        tree = self.index.tree
        matched = {f.path for f in make_plan(tree, glob).selected}
        chosen = self.chosen()
        wanted = chosen | matched if mode == "add" else chosen - matched
        base = self.spec()  # what the ticks so far come to, patterns kept
        candidates = [base]
        if glob.include and not glob.exclude:
            if mode == "remove":
                candidates.append(replace(base, exclude=_unique(base.exclude + glob.include)))
            elif base.include:
                candidates.append(replace(base, include=_unique(base.include + glob.include)))
        self.set_chosen(wanted)
        self.applied_spec = next((c for c in reversed(candidates) if reproduces(tree, c, wanted)), None)

    def set_chosen(self, chosen: set[str]) -> None:
        """Tick exactly these files (needs the full listing)."""
        assert self.index is not None, "set_chosen needs the whole tree"
        self.selection = Selection.from_files(self.index, chosen)
        self.applied_spec = None
        self._invalidate()

    def _invalidate(self) -> None:
        self._chosen = None

    def _refresh(self) -> None:
        if self._chosen is not None or self.index is None:
            return
        value = self.selection.value
        self._chosen = {f.path for f in self.index.tree.files if value(f.path)}
        self._counts, self._sizes = {}, {}
        for file in self.index.tree.files:
            if file.path not in self._chosen:
                continue
            folder = parent_of(file.path)
            while True:
                self._counts[folder] = self._counts.get(folder, 0) + 1
                self._sizes[folder] = self._sizes.get(folder, 0) + (file.size or 0)
                if not folder:
                    break
                folder = parent_of(folder)

    def state(self, path: str, is_dir: bool) -> TickState:
        if self.index is None or (is_dir and path not in self.index.folders):
            if is_dir and self.selection.mixed_below(path):
                return "some"
            return "all" if self.selection.value(path) else "none"
        self._refresh()
        assert self._chosen is not None
        if not is_dir:
            return "all" if path in self._chosen else "none"
        picked = self._counts.get(path, 0)
        if picked == 0:
            return "none"
        return "all" if picked == self.index.folders[path].count else "some"

    def chosen(self) -> set[str]:
        self._refresh()
        return set(self._chosen or ())

    def totals(self) -> Totals | None:
        if self.index is None:
            return None
        self._refresh()
        root = self.index.root
        return Totals(self._counts.get("", 0), self._sizes.get("", 0), root.count, root.size)

    def spec(self) -> FilterSpec:
        """The FilterSpec reproducing the ticks exactly: the patterns last applied (a profile, globs) with
        the files ticked or unticked since as paths, when that is exact; else paths for everything."""
        assert self.index is not None, "the spec needs the whole tree"
        chosen = self.chosen()
        if self.applied_spec is not None:
            adjusted = with_ticks(self.index, self.applied_spec, chosen)
            if adjusted is not None:
                return adjusted
        return spec_for_selection(self.index, chosen)


@dataclass(frozen=True)
class _Patterns:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __add__(self, other: _Patterns) -> _Patterns:
        return _Patterns(self.include + other.include, self.exclude + other.exclude)

    @property
    def cost(self) -> int:
        return len(self.include) + len(self.exclude)


def _cheapest(*options: _Patterns) -> _Patterns:
    return min(options, key=lambda p: p.cost)  # min keeps the first of equals: callers list includes first


def spec_for_selection(index: FolderIndex, chosen: set[str]) -> FilterSpec:
    """Anchored literal include/exclude patterns that select exactly ``chosen``, folder patterns where
    a whole folder is (or is not) taken, the fewer patterns the better."""
    counts = _selected_counts(index, chosen)

    def encode(folder: Folder) -> tuple[_Patterns, _Patterns]:
        """(patterns when nothing above includes this folder, patterns when everything above does)."""
        picked = counts.get(folder.path, 0)
        if picked == folder.count:
            return _Patterns(include=(folder_pattern(folder.path),)), _Patterns()
        if picked == 0:
            return _Patterns(), _Patterns(exclude=(folder_pattern(folder.path),))
        take, keep = _children(folder)
        return _cheapest(take, _Patterns(include=(folder_pattern(folder.path),)) + keep), keep

    def _children(folder: Folder) -> tuple[_Patterns, _Patterns]:
        take, keep = _Patterns(), _Patterns()
        for child in sorted(folder.folders.values(), key=lambda f: f.path):
            child_take, child_keep = encode(child)
            take, keep = take + child_take, keep + child_keep
        for file in sorted(folder.files.values(), key=lambda f: f.path):
            if file.path in chosen:
                take += _Patterns(include=(file_pattern(file.path),))
            else:
                keep += _Patterns(exclude=(file_pattern(file.path),))
        return take, keep

    picked = counts.get("", 0) if chosen else 0
    if picked == index.root.count:
        return FilterSpec()
    take, keep = _children(index.root)
    best = _cheapest(take, keep) if chosen else keep  # no include at all would mean everything
    return FilterSpec(include=best.include, exclude=best.exclude)


def with_ticks(index: FolderIndex, base: FilterSpec, chosen: set[str]) -> FilterSpec | None:
    """``base`` with the files ``chosen`` adds as include paths and the ones it drops as exclude paths
    (a folder where none of its files is chosen); None when that cannot select exactly ``chosen``
    (an exclude or the size cap of ``base`` takes out a file that is wanted back)."""
    selected = {f.path for f in make_plan(index.tree, base).selected}
    if selected == chosen:
        return base
    extra, missing = chosen - selected, selected - chosen
    if extra and not base.include:
        return None  # base takes everything it does not exclude: an excluded file cannot come back
    picked, dropped = _selected_counts(index, chosen), _selected_counts(index, missing)
    excludes: list[str] = []

    def visit(folder: Folder) -> None:
        if not dropped.get(folder.path):
            return
        if folder.path and not picked.get(folder.path):
            excludes.append(folder_pattern(folder.path))
            return
        for child in sorted(folder.folders.values(), key=lambda f: f.path):
            visit(child)
        excludes.extend(
            file_pattern(f.path) for f in sorted(folder.files.values(), key=lambda f: f.path) if f.path in missing
        )

    visit(index.root)
    candidate = replace(
        base,
        include=_unique(base.include + tuple(file_pattern(path) for path in sorted(extra))),
        exclude=_unique(base.exclude + tuple(excludes)),
    )
    return candidate if reproduces(index.tree, candidate, chosen) else None


def _unique(patterns: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(patterns))


def reproduces(tree: ArtifactTree, spec: FilterSpec, chosen: set[str]) -> bool:
    return {f.path for f in make_plan(tree, spec).selected} == chosen
