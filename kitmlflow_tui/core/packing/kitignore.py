"""kit's path rules: Go's path cleaning as kit applies it, and ``.kitignore`` with moby/patternmatcher
v0.6 semantics (Docker's, not gitignore's: the ``pathspec`` library does not implement them), plus the
paths of the other Kitfile entries, which kit also skips (see :mod:`.layers`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from kitmlflow_tui.core.errors import PackError
from kitmlflow_tui.core.file_tree import FileTree

DEFAULT_IGNORES = ("Kitfile", "kitfile", ".kitfile", ".kitignore")


# -- Go path helpers -------------------------------------------------------------------------------
def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for ``/``-separated paths (``posixpath.normpath`` keeps ``//``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def clean_entry_path(path: str) -> str:
    # kit's cleanPath: filepath.Clean(strings.TrimSpace(path))
    return go_clean(path.strip())


def go_rel(base: str, target: str) -> str:
    """Go's ``filepath.Rel`` for two clean relative paths."""
    if base == target:
        return "."
    base_parts = [] if base == "." else base.split("/")
    target_parts = [] if target == "." else target.split("/")
    common = 0
    while common < min(len(base_parts), len(target_parts)) and base_parts[common] == target_parts[common]:
        common += 1
    parts = [".."] * (len(base_parts) - common) + target_parts[common:]
    return "/".join(parts) or "."


def same_dir_tree(layer_path: str, file_path: str) -> bool:
    # kit's sameDirTree: both relative paths contain ".." (as a substring, not a path element).
    return not (".." in go_rel(layer_path, file_path) and ".." in go_rel(file_path, layer_path))


# -- .kitignore (moby/patternmatcher v0.6 semantics, as kit uses them) ------------------------------
class _Pattern:
    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.dirs = cleaned.split("/")
        self.kind, self.regexp = _compile(cleaned)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.fullmatch(path) is not None


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    regex = "^"
    kind = "exact"
    position = 0
    index = 0
    length = len(pattern)
    while position < length:
        char = pattern[position]
        position += 1
        if char == "*":
            if position < length and pattern[position] == "*":
                position += 1
                if position < length and pattern[position] == "/":
                    position += 1
                if position >= length:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex += ".*"
                        kind = "regexp"
                else:
                    regex += "(.*/)?"
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                regex += "[^/]*"
                kind = "regexp"
        elif char == "?":
            regex += "[^/]"
            kind = "regexp"
        elif char in ".+()|{}$":
            regex += "\\" + char
        elif char == "\\":
            if position < length:
                regex += "\\" + pattern[position]
                position += 1
                kind = "regexp"
            else:
                regex += "\\"
        elif char in "[]":
            regex += char
            kind = "regexp"
        else:
            regex += char
        index += 1
    if kind != "regexp":
        return kind, None
    try:
        return kind, re.compile(regex)
    except re.error as exc:
        raise PackError(f"Invalid .kitignore pattern {pattern!r}: {exc}") from exc


class IgnoreRules:
    """kit's ignore decision: ``.kitignore`` patterns, then the paths of the other Kitfile entries."""

    def __init__(self, patterns: Sequence[str], layer_paths: Sequence[str]) -> None:
        self.patterns: list[_Pattern] = []
        self.has_exclusions = False
        for raw in [*patterns, *DEFAULT_IGNORES]:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise PackError('Invalid .kitignore pattern "!".')
                text = text[1:]
                self.has_exclusions = True
            self.patterns.append(_Pattern(text, exclusion))
        self.layer_paths = [clean_entry_path(path) for path in layer_paths]

    @classmethod
    def for_tree(cls, tree: FileTree, layer_paths: Sequence[str]) -> IgnoreRules:
        try:
            raw = tree.read_bytes(".kitignore")
        except OSError as exc:
            raise PackError(f"Cannot read {tree.describe()}/.kitignore: {exc.strerror or exc}") from exc
        return cls(parse_kitignore(raw), layer_paths)

    def kitignore_matches(self, path: str) -> bool:
        # patternmatcher.MatchesOrParentMatches
        matched = False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parent != ".":
                for depth in range(1, len(parent_dirs) + 1):
                    if pattern.match("/".join(parent_dirs[:depth])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def ignored(self, path: str, layer_path: str) -> bool:
        path = clean_entry_path(path)
        layer_path = clean_entry_path(layer_path)
        if self.kitignore_matches(path):
            return True
        for other in self.layer_paths:
            if layer_path.startswith(other):
                continue  # the current entry itself, or one that contains it
            if path.startswith(other):
                return True
        return False


def parse_kitignore(raw: bytes | None) -> list[str]:
    """moby's ``ignorefile.ReadAll``: comments, blank lines, ``!``, cleaning, leading ``/`` dropped."""
    if raw is None:
        return []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    patterns: list[str] = []
    for line in raw.decode("utf-8", errors="surrogateescape").split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns
