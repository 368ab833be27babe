"""Glob matching in time linear in the path, for the patterns a backtracking regex makes slow.

``selection.plan.Glob`` matches with the regex pathspec compiles from a gitignore pattern, and pathspec hands
that regex to Python's ``re``, which backtracks: every ``*`` becomes ``[^/]*`` and every ``**`` ``(?:.+/)?`` or
``(?:/.+)?``, and a path that almost matches is tried in every way of sharing it out between them. For
``*a*a*a*a*a*a*a*a*a*a*a*ab`` against a 40-character name that is more than 100 s; a realistic
``*-*-*-*-*-*-*-*-*-*-*.safetensors`` costs 2 s per file. pathspec cannot do better here: its linear-time
engines (``re2``, ``hyperscan``) are optional native extensions, and its own is ``re``.

So a pattern with more than one wildcard of variable length (``*`` within a segment, ``**`` as a segment; the
``**/`` gitignore puts before a bare name not counted) is matched here instead, with the same meaning as the
regex (``tests/unit/test_selection.py`` pins it, and a property test compares the two on patterns and paths):

- the path is cut at ``/`` into segments; ``**`` stands for any number of whole segments (at least one when it
  ends the pattern: ``a/**`` takes what is under ``a``, not ``a`` itself); a pattern without ``/`` may start at
  any depth, one with a ``/`` (not last) at the root;
- the pattern may match only the path's first segments (it then names a folder the path lies in), except when
  its last segment is a lone ``*``, which must be the path's last segment;
- within a segment, ``*`` is any run of characters, ``?`` one character, ``[...]`` one character of a class
  (read by ``re`` exactly as pathspec writes it), ``\\`` escapes the next character; none of them ever takes a
  ``/`` (the regex's negated class could; the documented semantics say a class is within one segment).

Both levels are the classic wildcard algorithm: the fixed-length runs between the stars are placed left to right
at their first fit, the last one at the very end when the end is anchored. Each run is tried at each position
at most once, so a match costs at most (path length × pattern length) steps, never exponential.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CharTest = Callable[[str], bool]
_GAP = None  # a ``**`` between runs of segments


def needs_linear_matching(text: str) -> bool:
    """Whether ``text`` (a pattern as pathspec reads it) has more than one wildcard of variable length."""
    count = 0
    for segment in text.split("/"):
        if segment == "**":
            count += 1
        else:
            count += sum(1 for token in _tokens(segment) if token is _STAR)
    return count > 1


@dataclass(frozen=True)
class _SegmentGlob:
    """One segment of a pattern: runs of single-character tests between its stars."""

    runs: tuple[tuple[CharTest, ...], ...]  # len(runs) = stars + 1
    whole_star: bool  # the segment is a lone ``*`` (which, in the regex, takes at least one character)

    def matches(self, name: str) -> bool:
        if self.whole_star:
            return bool(name)
        return _wildcard_match(self.runs, list(name), lambda test, char: test(char))


class LinearGlob:
    """A pattern compiled for :meth:`match` (see the module's docstring for what it means)."""

    def __init__(self, text: str) -> None:
        segments = text.split("/")
        if not segments[0]:
            del segments[0]  # a leading "/": from the root
        elif len(segments) == 1 and segments[0] != "**":
            segments.insert(0, "**")  # a bare name: at any depth
        collapsed: list[str] = []
        for segment in segments:
            if not (segment == "**" and collapsed and collapsed[-1] == "**"):
                collapsed.append(segment)
        self._ends_with_gap = len(collapsed) > 1 and collapsed[-1] == "**"
        self._ends_with_star = collapsed[-1] == "*"
        items: list[_SegmentGlob | None] = [
            _GAP if segment == "**" else _segment_glob(segment) for segment in collapsed
        ]
        if self._ends_with_gap:
            items.pop()  # "then at least one more segment": checked in ``match``
        self._runs = _split_runs(items)
        self._anchored_start = items[0] is not _GAP

    def match(self, path: str) -> bool:
        """What ``regex.match(path)`` says for pathspec's regex of the same pattern."""
        names = path.split("/")
        runs = self._runs
        if self._ends_with_star:  # the last run ends exactly at the path's end
            return _wildcard_match(runs, names, _segment_test, anchored_start=self._anchored_start)
        # Otherwise the match may stop after any segment: a trailing gap of any length (at least one segment
        # left over when the pattern itself ended with "**").
        return _wildcard_match(
            (*runs, ()),
            names,
            _segment_test,
            anchored_start=self._anchored_start,
            tail_at_least=1 if self._ends_with_gap else 0,
        )


def _segment_test(glob: _SegmentGlob, name: str) -> bool:
    return glob.matches(name)


def _split_runs(items: Sequence[_SegmentGlob | None]) -> tuple[tuple[_SegmentGlob, ...], ...]:
    runs: list[list[_SegmentGlob]] = [[]]
    for item in items:
        if item is _GAP:
            runs.append([])
        else:
            runs[-1].append(item)
    return tuple(tuple(run) for run in runs)


def _wildcard_match(
    runs: Sequence[Sequence[Any]],
    items: Sequence[Any],
    test: Callable[[Any, Any], bool],
    *,
    anchored_start: bool = True,
    tail_at_least: int = 0,
) -> bool:
    """Whether ``items`` is ``runs[0] * runs[1] * ... * runs[-1]`` (``*`` any number of items; each run a fixed
    sequence of per-item tests; ``anchored_start`` False puts a ``*`` before the first run), with at least
    ``tail_at_least`` items taken by the last ``*`` when the last run is empty. Runs are placed at their first
    fit, the last at the end."""
    first, last = runs[0], runs[-1]
    if len(runs) == 1:  # no star at all (a leading one makes two runs, the first empty)
        return len(items) == len(first) and _fits(first, items, 0, test)
    position = 0
    if anchored_start:
        if not _fits(first, items, 0, test):
            return False
        position = len(first)
    else:
        found = _find(first, items, 0, test)
        if found < 0:
            return False
        position = found + len(first)
    for run in runs[1:-1]:
        found = _find(run, items, position, test)
        if found < 0:
            return False
        position = found + len(run)
    if not last:
        return len(items) - position >= tail_at_least
    start = len(items) - len(last)
    return start >= position and _fits(last, items, start, test)


def _fits(run: Sequence[Any], items: Sequence[Any], at: int, test: Callable[[Any, Any], bool]) -> bool:
    return at + len(run) <= len(items) and all(test(check, items[at + i]) for i, check in enumerate(run))


def _find(run: Sequence[Any], items: Sequence[Any], start: int, test: Callable[[Any, Any], bool]) -> int:
    """The first position at or after ``start`` where ``run`` fits (-1: none)."""
    for at in range(start, len(items) - len(run) + 1):
        if _fits(run, items, at, test):
            return at
    return -1


# -- one segment: pathspec's reading of * ? [...] \ ----------------------------------------------------------------
_STAR = object()


def _segment_glob(segment: str) -> _SegmentGlob:
    if segment == "*":
        return _SegmentGlob(((),), whole_star=True)
    runs: list[list[CharTest]] = [[]]
    for token in _tokens(segment):
        if token is _STAR:
            runs.append([])
        else:
            runs[-1].append(token)
    return _SegmentGlob(tuple(tuple(run) for run in runs), whole_star=False)


def _tokens(segment: str) -> list[Any]:
    """The segment as ``_STAR`` and single-character tests, scanned as pathspec's ``_translate_segment_glob``."""
    tokens: list[Any] = []
    i, end = 0, len(segment)
    while i < end:
        char = segment[i]
        i += 1
        if char == "\\" and i < end:
            tokens.append(_literal(segment[i]))
            i += 1
        elif char == "*":
            tokens.append(_STAR)
        elif char == "?":
            tokens.append(_any_but_slash)
        elif char == "[":
            j = i
            if j < end and segment[j] in "!^":
                j += 1
            if j < end and segment[j] == "]":
                j += 1
            while j < end and segment[j] != "]":
                j += 1
            if j < end:
                tokens.append(_char_class(segment[i : j + 1]))
                i = j + 1
            else:
                tokens.append(_literal("["))
        else:
            tokens.append(_literal(char))
    return tokens


def _any_but_slash(char: str) -> bool:
    return char != "/"


def _literal(expected: str) -> CharTest:
    return expected.__eq__


def _char_class(body: str) -> CharTest:
    """``[`` + ``body`` as pathspec writes it into its regex (``!`` and ``^`` negate; a backslash is literal)."""
    negate = body[:1] in ("!", "^")
    inner = body[1:] if negate else body
    expr = "[" + ("^" if negate else "") + inner[:-1].replace("\\", "\\\\") + "]"
    with warnings.catch_warnings():  # "[[" is a class holding "[": re's FutureWarning is no news
        warnings.simplefilter("ignore", FutureWarning)
        compiled = re.compile(expr)
    return lambda char: char != "/" and compiled.fullmatch(char) is not None
