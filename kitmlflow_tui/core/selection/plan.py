"""Step 3 of the data flow: a filter spec applied to the artifact tree gives the download plan.

Glob semantics (shared by flags, profiles and the wizard; docs/architecture.md has the details):
- paths are relative to the run's artifact root, separated by ``/``;
- ``*`` and ``?`` match within one segment, ``[abc]`` a character class, ``**`` any number of segments,
  ``\\`` escapes the next character;
- a pattern without ``/`` (a trailing one aside) matches a name at any depth, like .gitignore;
- a pattern that names a folder selects everything under it; one ending in ``/`` matches folders only;
- no include means everything is included; exclude wins over include; files over the size cap are out.

Matching is .gitignore's, done by the ``pathspec`` library (and, for patterns with several wildcards, whose
backtracking regex can take exponential time, by ``glob_match`` in linear time), with two differences kept on
purpose: a
pattern ending in ``/`` is matched against folders only (gitignore's ``x/**/`` also takes the files
directly in ``x``), and patterns gitignore would read in a way rarely meant are refused with a reason
(``a**b``, an unclosed ``[``, ``/`` inside a class, a lone trailing backslash); a leading ``!`` or ``#``
is a plain character, not a negation or a comment.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from kitmlflow_tui.core.catalogue.records import ArtifactFile, ArtifactTree
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.glob_match import LinearGlob, needs_linear_matching

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1}
for _i, _letter in enumerate("kmgtp", start=1):
    _UNITS[_letter] = _UNITS[_letter + "b"] = 1000**_i
    _UNITS[_letter + "i"] = _UNITS[_letter + "ib"] = 1024**_i


def parse_size(text: str | int, *, what: str = "size") -> int:
    """``500MB`` → 500_000_000, ``2GiB`` → 2 * 1024**3, ``1.5G`` → 1_500_000_000, ``123`` → bytes."""
    if isinstance(text, bool):
        raise BadInputError(f"Invalid {what} {text!r}: expected a size such as 500MB or 2GiB.")
    if isinstance(text, int):
        if text < 0:
            raise BadInputError(f"Invalid {what} {text}: a size cannot be negative.")
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise BadInputError(
            f"Invalid {what} {text!r}: expected a number with an optional unit, such as 500MB, 2GiB or 1.5G "
            "(KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024)."
        )
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


def format_size(size: int | None) -> str:
    """Human size, decimal units like ``du --si`` and MLflow's UI (1.3 GB), the same unit style at
    every size (``618 B`` beside ``1.1 kB``, never humanize's ``618 Bytes``)."""
    if size is None:
        return "?"
    if abs(size) < 1000:
        return f"{size} B"
    import humanize

    return humanize.naturalsize(size, binary=False, format="%.1f")


class Glob:
    """One compiled pattern with the semantics above: pathspec's gitignore matching, plus our refusals
    of patterns that would silently mean something else, and the folder-only rule for ``dir/``."""

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str) or not pattern.strip():
            raise BadInputError("An empty glob pattern matches nothing; remove it or write one such as '*.pt'.")
        self.pattern = pattern
        text = pattern.strip()
        self.folders_only = text.endswith("/")
        text = text.rstrip("/")
        if not text.lstrip("/"):
            raise BadInputError(f"Glob pattern {pattern!r} names no file or folder.")
        _refuse_ambiguous(text, pattern)
        if text[:1] in ("!", "#"):  # in a .gitignore these negate or comment; here they are plain names
            text = "\\" + text
        from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

        try:
            with warnings.catch_warnings():  # "[[" is a class holding "[": re's FutureWarning is no news to a user
                warnings.simplefilter("ignore", FutureWarning)
                regex = GitIgnoreBasicPattern(text).regex
        except (re.error, ValueError) as exc:  # a class like [z-a]
            raise BadInputError(f"Invalid glob pattern {pattern!r}: {exc}.") from None
        assert regex is not None  # only comments and blank lines compile to none, and both are refused above
        self._regex: re.Pattern[str] = regex
        self._linear = LinearGlob(text) if regex.pattern not in (".", "/") and needs_linear_matching(text) else None
        # pathspec's regex of most patterns also takes everything under a match ("(?:/|$)"); only one that
        # ends in a wildcard segment ("a/*") must be tried on each folder of the path as well.
        self._covers_subpaths = not self.folders_only and not (
            regex.pattern.endswith("$") and not regex.pattern.endswith("(?:/|$)")
        )

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def matches(self, path: str) -> bool:
        """Does the pattern select this file (itself, or a folder it lies under)?

        As git does, the file's folders are tried as well as the file: ``a/*`` names the folder
        ``a/b`` and so selects ``a/b/c``. A pattern ending in "/" is tried on the folders only.
        """
        if self._covers_subpaths:
            return self._match(path)
        segments = path.split("/")
        last = len(segments) - 1 if self.folders_only else len(segments)
        return any(self._match("/".join(segments[:n])) for n in range(1, last + 1))

    def _match(self, path: str) -> bool:
        return self._linear.match(path) if self._linear is not None else self._regex.match(path) is not None


def _refuse_ambiguous(text: str, original: str) -> None:
    """Patterns gitignore would read some way that is rarely what was meant are refused with a reason."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise BadInputError(f"Invalid glob pattern {original!r}: it ends with a lone backslash.")
            if text[i + 1] == "/":
                raise BadInputError(f"Invalid glob pattern {original!r}: a '/' cannot be escaped (no name holds one).")
            i += 2
        elif text.startswith("**", i):
            if not ((i == 0 or text[i - 1] == "/") and (i + 2 == n or text[i + 2] == "/")):
                raise BadInputError(
                    f"Invalid glob pattern {original!r}: '**' must stand alone between slashes (as in a/**/b)."
                )
            i += 2
        elif c == "[":
            end = i + 1
            if end < n and text[end] in "!^":
                end += 1
            if end < n and text[end] == "]":
                end += 1
            while end < n and text[end] != "]":
                end += 1
            if end >= n:
                raise BadInputError(f"Invalid glob pattern {original!r}: '[' has no closing ']'.")
            if "/" in text[i + 1 : end]:
                raise BadInputError(f"Invalid glob pattern {original!r}: a [class] cannot contain '/'.")
            i = end + 1
        else:
            i += 1


@dataclass(frozen=True)
class FilterSpec:
    """What to take from a run: the one input shared by flags, profiles and the wizard."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int | None = None

    @cached_property
    def _includes(self) -> tuple[Glob, ...]:
        return tuple(Glob(p) for p in self.include)

    @cached_property
    def _excludes(self) -> tuple[Glob, ...]:
        return tuple(Glob(p) for p in self.exclude)

    def validate(self) -> None:
        """Compile every pattern now, so a bad one fails before anything is listed or downloaded."""
        _ = self._includes, self._excludes
        if self.max_file_size is not None and self.max_file_size < 0:
            raise BadInputError("--max-file-size cannot be negative.")

    def merged(self, other: FilterSpec) -> FilterSpec:
        """This spec with another's patterns added (a profile plus command-line flags)."""
        cap = other.max_file_size if other.max_file_size is not None else self.max_file_size
        return FilterSpec(
            include=_unique(self.include + other.include),
            exclude=_unique(self.exclude + other.exclude),
            max_file_size=cap,
        )

    def reason_left_out(self, file: ArtifactFile) -> str | None:
        """None when the file is selected, else why not (for the plan and the wizard)."""
        for glob in self._excludes:
            if glob.matches(file.path):
                return f"excluded by pattern {glob.pattern!r}"
        if self._includes and not any(glob.matches(file.path) for glob in self._includes):
            return "matches no include pattern"
        if self.max_file_size is not None and file.size is not None and file.size > self.max_file_size:
            return f"over the size cap ({format_size(file.size)} > {format_size(self.max_file_size)})"
        return None

    def summary(self) -> dict:
        """The spec as recorded in provenance and profiles."""
        data: dict = {"include": list(self.include), "exclude": list(self.exclude)}
        if self.max_file_size is not None:
            data["max_file_size"] = self.max_file_size
        return data


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class LeftOut:
    file: ArtifactFile
    reason: str


@dataclass(frozen=True)
class Plan:
    """Which files to download, and why every other file of the tree is left out."""

    tree: ArtifactTree
    spec: FilterSpec
    selected: tuple[ArtifactFile, ...]
    left_out: tuple[LeftOut, ...] = field(default_factory=tuple)

    @property
    def selected_bytes(self) -> int:
        return sum(f.size or 0 for f in self.selected)

    def excluding(self, reasons: Mapping[str, str]) -> Plan:
        """This plan with the selected files ``reasons`` names (path -> why) moved to the left-out ones."""
        if not reasons:
            return self
        moved = tuple(LeftOut(f, reasons[f.path]) for f in self.selected if f.path in reasons)
        kept = tuple(f for f in self.selected if f.path not in reasons)
        return Plan(self.tree, self.spec, kept, self.left_out + moved)

    @property
    def total_bytes(self) -> int:
        return self.tree.total_bytes


# What a file system holds: 255 bytes per name, 4,096 per path (Linux's NAME_MAX and PATH_MAX; macOS and
# Windows allow less). A file moves as NAME.part first, so its own name keeps 5 bytes of room, and a path
# keeps 256 for the folder it is downloaded into. The OS refuses longer ones ("File name too long").
NAME_MAX_BYTES = 255
FILE_NAME_MAX_BYTES = NAME_MAX_BYTES - len(".part")
PATH_MAX_BYTES = 4096 - 256


def unstorable_reason(path: str) -> str | None:
    """Why no file system can hold this artifact under its own name, or None."""
    *folders, name = path.split("/")
    longest = max((len(part.encode("utf-8", "surrogatepass")) for part in folders), default=0)
    if longest > NAME_MAX_BYTES:
        return f"a folder name of {longest:,} bytes, longer than the {NAME_MAX_BYTES} a file system allows"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > FILE_NAME_MAX_BYTES:
        return f"a file name of {size:,} bytes, longer than the {FILE_NAME_MAX_BYTES} a download can write"
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > PATH_MAX_BYTES:
        return f"a path of {size:,} bytes, longer than the {PATH_MAX_BYTES:,} a download can write"
    return None


def make_plan(tree: ArtifactTree, spec: FilterSpec) -> Plan:
    spec.validate()
    selected: list[ArtifactFile] = []
    left_out: list[LeftOut] = []
    for file in tree.files:
        reason = spec.reason_left_out(file) or file.unavailable or unstorable_reason(file.path)
        if reason is None:
            selected.append(file)
        else:
            left_out.append(LeftOut(file, reason))
    return Plan(tree, spec, tuple(selected), tuple(left_out))


NEAREST_SHOWN = 3


def require_selection(plan: Plan) -> Plan:
    """The plan, when it selects at least one file; else "nothing selected" (exit 2) with the nearest
    reasons: how many files each reason left out, and the largest of them. An import of zero files is a
    filter mistake, never an empty ModelKit."""
    if plan.selected:
        return plan
    if not plan.tree.files:
        raise BadInputError("Nothing selected: the run has no artifacts.")
    counts = Counter(_reason_group(plan.spec, left.reason) for left in plan.left_out).most_common()
    by_reason = "; ".join(f"{count:,} {reason}" for reason, count in counts[:NEAREST_SHOWN])
    if len(counts) > NEAREST_SHOWN:
        rest = counts[NEAREST_SHOWN:]
        by_reason += f"; {sum(count for _, count in rest):,} for {len(rest)} other reasons"
    largest = sorted(plan.left_out, key=lambda left: -(left.file.size or 0))[:NEAREST_SHOWN]
    shown = ", ".join(f"{left.file.path} ({format_size(left.file.size)}, {left.reason})" for left in largest)
    raise BadInputError(
        f"Nothing selected: all {len(plan.tree.files):,} files of the run are left out ({by_reason}).",
        hint=f"Largest left out: {shown}. Loosen the filters: --include/--exclude/--max-file-size, the profile, or the ticks in the wizard.",
    )


def _reason_group(spec: FilterSpec, reason: str) -> str:
    """The reason without what is particular to one file (each size-cap reason names the file's size)."""
    if reason.startswith("over the size cap") and spec.max_file_size is not None:
        return f"over the size cap of {format_size(spec.max_file_size)}"
    return reason
