"""The wizard's ticks → FilterSpec: whatever is ticked, the spec selects exactly that (no Textual here)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kitmlflow_tui.core.catalogue.records import ArtifactFile, ArtifactTree, LoggedModelInfo
from kitmlflow_tui.core.selection.plan import FilterSpec, Glob
from kitmlflow_tui.tui.selection_model import (
    ArtifactBrowser,
    FolderIndex,
    Selection,
    escape_glob,
    reproduces,
    spec_for_selection,
)
from tests.support.fuzz import examples

NAMES = ["a", "b", "model", "w*.pt", "x?y", "[z]", "back\\slash", "sp ace", "tail ", "ckpt", "MLmodel", "é"]


def make_tree(paths: list[str], models: tuple[str, ...] = ()) -> ArtifactTree:
    files = tuple(ArtifactFile(p, 10 * (i + 1), "file:///x", p) for i, p in enumerate(sorted(paths)))
    infos = tuple(LoggedModelInfo(f"m-{m}", m, m, "file:///m") for m in models)
    return ArtifactTree(files, infos)


@st.composite
def trees(draw: st.DrawFn) -> list[str]:
    """Paths of a consistent tree: no path is both a file and a folder."""
    raw = draw(st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4), min_size=1, max_size=25))
    files: list[str] = []
    folders: set[str] = set()
    for parts in raw:
        path = "/".join(parts)
        prefixes = {"/".join(parts[:n]) for n in range(1, len(parts))}
        if path in folders or path in files or prefixes & set(files):
            continue
        files.append(path)
        folders |= prefixes
    return files


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_the_spec_selects_exactly_the_ticked_files(data: st.DataObject) -> None:
    paths = data.draw(trees())
    chosen = set(data.draw(st.lists(st.sampled_from(paths), unique=True)))
    tree = make_tree(paths)
    spec = spec_for_selection(FolderIndex(tree), chosen)
    if not chosen:
        return  # nothing ticked: the wizard refuses to go on
    assert reproduces(tree, spec, chosen), spec
    for pattern in spec.include + spec.exclude:
        assert pattern.startswith("/"), pattern


@settings(max_examples=examples(200), deadline=None)
@given(data=st.data())
def test_overrides_from_files_tick_the_same_files(data: st.DataObject) -> None:
    paths = data.draw(trees())
    chosen = set(data.draw(st.lists(st.sampled_from(paths), unique=True)))
    index = FolderIndex(make_tree(paths))
    selection = Selection.from_files(index, chosen)
    assert {p for p in paths if selection.value(p)} == chosen


def test_whole_folders_become_folder_patterns() -> None:
    tree = make_tree(["model/MLmodel", "model/w.bin", "ckpt/1.pt", "ckpt/2.pt", "README.md"])
    index = FolderIndex(tree)
    assert spec_for_selection(index, {"model/MLmodel", "model/w.bin"}) == FilterSpec(include=("/model/",))
    # Everything but one folder: one exclude, no include.
    everything_but = {"model/MLmodel", "model/w.bin", "README.md"}
    assert spec_for_selection(index, everything_but) == FilterSpec(exclude=("/ckpt/",))
    assert spec_for_selection(index, set(p.path for p in tree.files)) == FilterSpec()


def test_a_folder_with_one_file_left_out_is_included_with_an_exclude() -> None:
    tree = make_tree(["a/1", "a/2", "a/3", "a/4", "b/1", "c"])
    spec = spec_for_selection(FolderIndex(tree), {"a/1", "a/2", "a/3"})
    assert spec == FilterSpec(include=("/a/",), exclude=("/a/4",))


def test_escaping_makes_metacharacters_literal() -> None:
    for name in ["w*.pt", "x?y", "[z]", "back\\slash", "tail ", "plain"]:
        glob = Glob("/" + escape_glob(name))
        assert glob.matches(name)
    assert not Glob("/" + escape_glob("w*.pt")).matches("wx.pt")


def test_browser_ticks_folders_before_the_listing_and_counts_after() -> None:
    tree = make_tree(["model/MLmodel", "model/w.bin", "ckpt/1.pt", "ckpt/2.pt", "README.md"], models=("model",))
    browser = ArtifactBrowser()
    browser.toggle("ckpt", is_dir=True)
    assert browser.state("ckpt", True) == "none"
    assert browser.state("", True) == "some"
    browser.set_tree(tree)
    assert browser.state("ckpt", True) == "none"
    browser.toggle("ckpt/1.pt", is_dir=False)
    assert browser.state("ckpt", True) == "some"
    totals = browser.totals()
    assert totals is not None and totals.files == 4 and totals.all_files == 5
    assert reproduces(tree, browser.spec(), browser.chosen())
    browser.select_all(False)
    assert browser.totals().files == 0  # type: ignore[union-attr]
    browser.apply_spec(FilterSpec(include=("*.bin",)))
    assert browser.chosen() == {"model/w.bin"}
    assert browser.spec() == FilterSpec(include=("*.bin",))  # the user's own pattern, still exact


GLOBS = ["*.pt", "ckpt/", "model/", "*.bin", "**/1.pt", "README.md", "a*", "x"]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_globs_and_ticks_in_any_order_give_a_spec_that_selects_the_ticks(data: st.DataObject) -> None:
    paths = data.draw(trees())
    browser = ArtifactBrowser()
    browser.set_tree(make_tree(paths))
    for _ in range(data.draw(st.integers(0, 6))):
        if data.draw(st.booleans()):
            include = tuple(data.draw(st.lists(st.sampled_from(GLOBS), min_size=1, max_size=2, unique=True)))
            exclude = tuple(data.draw(st.lists(st.sampled_from(GLOBS), max_size=1)))
            browser.apply_glob(
                FilterSpec(include=include, exclude=exclude), data.draw(st.sampled_from(["only", "add", "remove"]))
            )
        else:
            browser.toggle(data.draw(st.sampled_from(paths)), is_dir=False)
    if not browser.chosen():
        return  # nothing ticked: the wizard refuses to go on
    assert reproduces(browser.index.tree, browser.spec(), browser.chosen())  # type: ignore[union-attr]


def test_a_glob_removed_stays_a_glob_and_only_ticks_become_paths() -> None:
    tree = make_tree(["ckpt/epoch_001.pt", "ckpt/epoch_002.pt", "ckpt/best.ckpt", "model/w.bin", "README.md"])
    browser = ArtifactBrowser()
    browser.set_tree(tree)
    browser.apply_glob(FilterSpec(include=("*.pt",)), "remove")
    assert browser.spec() == FilterSpec(exclude=("*.pt",))
    browser.toggle("README.md", is_dir=False)  # one tick more: a path beside the glob
    assert browser.spec() == FilterSpec(exclude=("*.pt", "/README.md"))
    browser.apply_glob(FilterSpec(include=("model/",)), "only")
    browser.apply_glob(FilterSpec(include=("*.ckpt",)), "add")
    assert browser.spec() == FilterSpec(include=("model/", "*.ckpt"))
    browser.toggle("ckpt/best.ckpt", is_dir=False)
    browser.toggle("model/w.bin", is_dir=False)
    assert browser.chosen() == set()
    browser.apply_glob(FilterSpec(include=("*.pt",), exclude=("epoch_002.pt",)), "add")  # its own exclude
    assert browser.chosen() == {"ckpt/epoch_001.pt"}
    assert reproduces(tree, browser.spec(), browser.chosen())
