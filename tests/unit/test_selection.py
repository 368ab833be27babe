"""Filter semantics (docs/architecture.md): globs, include/exclude precedence, size caps and reasons."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitmlflow_tui.core.catalogue.records import ArtifactFile, ArtifactTree
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.plan import FilterSpec, Glob, make_plan, parse_size
from tests.support.fuzz import examples

PATHS = [
    "README.md",
    "LICENSE",
    "checkpoints/epoch_001.pt",
    "checkpoints/epoch_002.pt",
    "checkpoints/best.ckpt",
    "plots/loss.png",
    "data/sample.csv",
    "data/nested/deep/sample.csv",
    "model/MLmodel",
    "model/model.pkl",
    "model/checkpoints/inner.pt",
    "odd[1]/x.txt",
]


def tree(sizes: dict[str, int] | None = None) -> ArtifactTree:
    sizes = sizes or {}
    return ArtifactTree(tuple(ArtifactFile(p, sizes.get(p, 10), "file:///store", p) for p in PATHS))


def matching(pattern: str) -> list[str]:
    glob = Glob(pattern)
    return [p for p in PATHS if glob.matches(p)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.pt", ["checkpoints/epoch_001.pt", "checkpoints/epoch_002.pt", "model/checkpoints/inner.pt"]),
        (
            "checkpoints",
            [
                "checkpoints/epoch_001.pt",
                "checkpoints/epoch_002.pt",
                "checkpoints/best.ckpt",
                "model/checkpoints/inner.pt",
            ],
        ),
        (
            "checkpoints/",
            [
                "checkpoints/epoch_001.pt",
                "checkpoints/epoch_002.pt",
                "checkpoints/best.ckpt",
                "model/checkpoints/inner.pt",
            ],
        ),
        ("/checkpoints", ["checkpoints/epoch_001.pt", "checkpoints/epoch_002.pt", "checkpoints/best.ckpt"]),
        ("checkpoints/*.pt", ["checkpoints/epoch_001.pt", "checkpoints/epoch_002.pt"]),
        ("**/*.pt", ["checkpoints/epoch_001.pt", "checkpoints/epoch_002.pt", "model/checkpoints/inner.pt"]),
        ("data/**/*.csv", ["data/sample.csv", "data/nested/deep/sample.csv"]),
        ("data/**", ["data/sample.csv", "data/nested/deep/sample.csv"]),
        ("model", ["model/MLmodel", "model/model.pkl", "model/checkpoints/inner.pt"]),
        ("epoch_00?.pt", ["checkpoints/epoch_001.pt", "checkpoints/epoch_002.pt"]),
        ("epoch_00[!1].pt", ["checkpoints/epoch_002.pt"]),
        ("README.md/", []),  # a trailing slash matches folders only
        ("LICENSE", ["LICENSE"]),
        (r"odd\[1\]", ["odd[1]/x.txt"]),
        ("*", PATHS),
        ("**", PATHS),
    ],
)
def test_glob_semantics(pattern: str, expected: list[str]) -> None:
    assert matching(pattern) == expected


def test_where_our_globs_differ_from_gitignore() -> None:
    """Matching is pathspec's .gitignore matching, except where our filter semantics say otherwise."""
    from pathspec import GitIgnoreSpec

    # A pattern ending in "/" names folders only: gitignore's x/**/ also takes the files directly in x.
    assert GitIgnoreSpec.from_lines(["data/**/"]).match_file("data/sample.csv")
    assert matching("data/**/") == ["data/nested/deep/sample.csv"]
    # A leading "!" or "#" is part of the name, not a negation or a comment.
    assert Glob("!x").matches("a/!x") and Glob("#x").matches("#x")
    # A pattern naming a folder by a wildcard selects what lies under it, as git ignores it.
    assert matching("data/*") == ["data/sample.csv", "data/nested/deep/sample.csv"]


@pytest.mark.parametrize("pattern", ["", "   ", "/", "a**", "**b/c", "[abc", "x\\", "[z-a]", "[a/b]"])
def test_invalid_globs_are_bad_input(pattern: str) -> None:
    with pytest.raises(BadInputError):
        Glob(pattern)


def test_no_include_takes_everything_and_exclude_wins_with_reasons() -> None:
    plan = make_plan(tree(), FilterSpec(include=("checkpoints", "README.md"), exclude=("best.ckpt",)))
    assert [f.path for f in plan.selected] == [
        "README.md",
        "checkpoints/epoch_001.pt",
        "checkpoints/epoch_002.pt",
        "model/checkpoints/inner.pt",
    ]
    reasons = {o.file.path: o.reason for o in plan.left_out}
    assert reasons["checkpoints/best.ckpt"] == "excluded by pattern 'best.ckpt'"
    assert reasons["LICENSE"] == "matches no include pattern"
    assert len(plan.selected) + len(plan.left_out) == len(PATHS)
    everything = make_plan(tree(), FilterSpec())
    assert len(everything.selected) == len(PATHS) and not everything.left_out


def test_size_cap_leaves_out_larger_files_with_the_sizes_in_the_reason() -> None:
    plan = make_plan(tree({"checkpoints/best.ckpt": 3_000_000_000}), FilterSpec(max_file_size=parse_size("2GB")))
    (out,) = plan.left_out
    assert out.file.path == "checkpoints/best.ckpt"
    assert out.reason == "over the size cap (3.0 GB > 2.0 GB)"
    assert plan.selected_bytes == 10 * (len(PATHS) - 1)
    assert plan.total_bytes == 3_000_000_000 + 10 * (len(PATHS) - 1)


def test_a_file_of_exactly_the_cap_is_kept_and_one_byte_more_is_not() -> None:
    """The filter contract: --max-file-size "excludes larger files" (the cap itself is allowed)."""
    sizes = {"README.md": 999, "LICENSE": 1000, "plots/loss.png": 1001}
    plan = make_plan(tree(sizes), FilterSpec(include=tuple(sizes), max_file_size=parse_size("1KB")))
    assert [f.path for f in plan.selected] == ["README.md", "LICENSE"]
    assert [(o.file.path, o.reason) for o in plan.left_out if o.file.path in sizes] == [
        ("plots/loss.png", "over the size cap (1.0 kB > 1.0 kB)")
    ]
    zero = make_plan(tree({"LICENSE": 0}), FilterSpec(max_file_size=0))
    assert [f.path for f in zero.selected] == ["LICENSE"]  # --max-file-size 0 keeps empty files


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500MB", 500_000_000),
        ("2GiB", 2 * 1024**3),
        ("1.5G", 1_500_000_000),
        ("123", 123),
        ("10 kb", 10_000),
        ("1KiB", 1024),
        ("3TB", 3 * 10**12),
        (42, 42),
    ],
)
def test_parse_size(text: str | int, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "MB", "-1", "1.2.3GB", "12 parsecs", "0x10", True])
def test_bad_sizes_are_bad_input(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_size(text)


@given(st.text(max_size=40))
@settings(max_examples=examples(2000), deadline=None)
def test_glob_compiler_never_crashes(pattern: str) -> None:
    try:
        glob = Glob(pattern)
    except BadInputError:
        return
    for path in PATHS:
        glob.matches(path)


@given(st.lists(st.sampled_from(["*", "**", "?", "/", "a", "b", ".", "[", "]", "!", "\\"]), max_size=10))
@settings(max_examples=examples(2000), deadline=None)
def test_glob_like_patterns_never_crash(parts: list[str]) -> None:
    with contextlib.suppress(BadInputError):
        Glob("".join(parts)).matches("a/b/a.b")


# -- matching in time linear in the path (issue 20 item 15) ------------------------------------------------------
@pytest.mark.timeout(30)  # a hang guard: Python's backtracking regex took more than 100 s on the first case
@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*a*a*a*a*a*a*a*a*a*a*a*ab", "a" * 40, False),
        ("*a*a*a*a*a*a*a*a*a*a*a*ab", "x/" + "a" * 40 + "b", True),
        ("*-*-*-*-*-*-*-*-*-*-*.safetensors", "checkpoints/" + "model-" * 12 + "shard.bin", False),
        ("*-*-*-*-*-*-*-*-*-*-*.safetensors", "model-" * 11 + "x.safetensors", True),
        ("**/a*a*a*a*a*a*a*a*b/**", "/".join(["a" * 30] * 40), False),
        ("a/**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 200), False),
        ("a/**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 200) + "/b", True),
    ],
)
def test_globs_with_many_wildcards_match_in_time_linear_in_the_path(pattern: str, path: str, expected: bool) -> None:
    assert Glob(pattern).matches(path) is expected
    for _ in range(200):  # a plan matches every file of a run: each match must be cheap, not just the first
        Glob(pattern).matches(path)


_SEGMENT_TOKENS = st.sampled_from(["a", "b", ".", "-", "?", "*", "[ab]", "[a-c]", "[.]", r"\*", r"\?"])
_SAFE_SEGMENTS = st.one_of(
    st.just("**"), st.lists(_SEGMENT_TOKENS, min_size=1, max_size=5).map("".join).filter(lambda s: "**" not in s)
)
_SAFE_PATTERNS = st.tuples(st.booleans(), st.lists(_SAFE_SEGMENTS, min_size=1, max_size=4)).map(
    lambda lead_and_segments: ("/" if lead_and_segments[0] else "") + "/".join(lead_and_segments[1])
)
_SAFE_PATHS = st.lists(st.text(alphabet="ab.-*?c", min_size=1, max_size=6), min_size=1, max_size=5).map("/".join)


@given(_SAFE_PATTERNS, st.lists(_SAFE_PATHS, min_size=1, max_size=8))
@settings(max_examples=examples(3000), deadline=None)
def test_the_linear_matcher_means_what_pathspecs_regex_means(pattern: str, paths: list[str]) -> None:
    """On patterns without negated classes (whose regex could take a '/') and paths without empty segments."""
    from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

    from kitmlflow_tui.core.selection.glob_match import LinearGlob

    regex = GitIgnoreBasicPattern(pattern).regex
    if regex is None or regex.pattern in (".", "/"):
        return
    linear = LinearGlob(pattern)
    for path in paths:
        assert linear.match(path) == (regex.match(path) is not None), (pattern, path, regex.pattern)
