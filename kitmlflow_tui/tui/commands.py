"""The shell commands the wizard shows, and their layout: what is pasted runs as what is shown.

A terminal copies what is on screen, line by line. A command that Textual wrapped at a space would
paste as two commands (the second line starting a command of its own), and one wrapped inside an
argument as two arguments. So a command is laid out here, not by the widget: words are broken only
between arguments, every line but the last ends with `` \\`` (a shell line continuation), and an
argument longer than a line is split into pieces that are each quoted on their own and joined by a
backslash-newline with no indent, which the shell removes (``'ab'\\`` + newline + ``'cd'`` is
``abcd``). A copy action (Ctrl+Y) gives :func:`one_line`, the exact text on one line.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len

from kitmlflow_tui.core.catalogue.records import RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.reference import ModelRef, RunRef, format_reference
from kitmlflow_tui.core.selection.plan import FilterSpec

if TYPE_CHECKING:
    from kitmlflow_tui.core.kitfile import KitfileOverrides
    from kitmlflow_tui.core.modelkit_reference import ModelKitRef
    from kitmlflow_tui.tui.backend import ImportChoice

CONTINUATION = " \\"
INDENT = "  "  # of the lines after the first of one command
MIN_WIDTH = 8  # narrower than this, a piece could not carry one quoted character and its backslash


def one_line(words: Sequence[str]) -> str:
    """The command as one shell-quoted line (what a copy action puts on the clipboard)."""
    return shlex.join(words)


def shell_lines(words: Sequence[str], width: int, *, indent: str = "") -> list[str]:
    """``words`` as lines of at most ``width`` cells that a shell reads back as exactly ``words``.

    ``indent`` starts every line that begins a word (a list of commands shown indented)."""
    width = max(width, len(indent) + len(INDENT) + MIN_WIDTH)
    lines: list[str] = []
    line = ""
    for number, word in enumerate(words):
        quoted = shlex.quote(word)
        last = number == len(words) - 1
        room = width - (0 if last else len(CONTINUATION))  # this word's line may need " \" after it
        if not line:
            start = indent
        elif cell_len(line) + 1 + cell_len(quoted) <= room:
            line += " " + quoted
            continue
        else:
            lines.append(line + CONTINUATION)
            start = indent + INDENT
        if len(start) + cell_len(quoted) <= room:
            line = start + quoted
            continue
        # Longer than a line: pieces at column 0 (an indent would split the word), each quoted on its
        # own and short enough for a continuation after it.
        room_after = width - len(CONTINUATION)
        pieces = _pieces(word, first=room_after - len(start), rest=room_after)
        lines.append(start + pieces[0] + "\\")
        lines += [piece + "\\" for piece in pieces[1:-1]]
        line = pieces[-1]
    if line:
        lines.append(line)
    return lines


def _pieces(word: str, *, first: int, rest: int) -> list[str]:
    """``word`` cut into chunks whose quoted forms fit ``first`` cells (the first chunk), ``rest`` (the others)."""
    pieces: list[str] = []
    start, room = 0, first
    if cell_len(shlex.quote(word[:1])) > first:  # not even one character fits after the indent: "" + "\"
        pieces.append("")
        room = rest
    while start < len(word):
        end = start + 1  # one character always fits a whole line: MIN_WIDTH leaves room for its quotes
        while end < len(word) and cell_len(shlex.quote(word[start : end + 1])) <= room:
            end += 1
        pieces.append(shlex.quote(word[start:end]))
        start, room = end, rest
    return pieces


# -- the commands ------------------------------------------------------------------------------------
def headless_uri(run: RunInfo, registered: RegisteredModelInfo | None, tracking_uri: str) -> tuple[str, str | None]:
    """The mlflow:// URI of the choice and the --tracking-uri it needs (when the server is no http host)."""
    remote = tracking_uri.startswith(("http://", "https://"))
    host = tracking_uri if remote else None
    if registered is not None:
        ref: RunRef | ModelRef = ModelRef(
            host, registered.name, None if registered.alias else registered.version, registered.alias
        )
    else:
        ref = RunRef(host, run.run_id, run.experiment_id)
    return format_reference(ref), None if remote else tracking_uri


def import_words(
    uri: str,
    tag: str,
    spec: FilterSpec,
    tracking_uri: str | None = None,
    *,
    description: str | None = None,
    authors: Sequence[str] = (),
    push: bool = False,
    artifact_format: str = "modelkit",
    sign_key: Path | None = None,
) -> list[str]:
    """The ``kitmlflow import`` that does what the wizard is about to do (``tag`` is the registry
    reference when ``push`` is set, as ``--push`` pushes the ``-t`` reference)."""
    words = ["kitmlflow", "import", uri]
    if tracking_uri:
        words += ["--tracking-uri", tracking_uri]
    words += ["-t", tag or "REPO:TAG", "--yes"]
    for pattern in spec.include:
        words += ["--include", pattern]
    for pattern in spec.exclude:
        words += ["--exclude", pattern]
    if spec.max_file_size is not None:
        words += ["--max-file-size", str(spec.max_file_size)]
    if description:
        words += ["--description", description]
    for author in authors:
        words += ["--author", author]
    if artifact_format != "modelkit":
        words += ["--format", artifact_format]
    if push:
        words.append("--push")
    if sign_key is not None:
        words += ["--sign-key", str(sign_key)]
    return words


def choice_words(choice: ImportChoice, tracking_uri: str) -> list[str]:
    """The headless twin of a wizard choice: its run, filter, package fields, format, push and signing key."""
    return draft_words(
        choice.run,
        choice.registered,
        choice.spec,
        str(choice.tag),
        choice.push_to,
        choice.overrides,
        tracking_uri,
        artifact_format=choice.format,
        sign_key=choice.sign_key,
    )


def draft_words(
    run: RunInfo,
    registered: RegisteredModelInfo | None,
    spec: FilterSpec,
    tag: str,
    push_to: ModelKitRef | None,
    overrides: KitfileOverrides | None,
    tracking_uri: str,
    *,
    artifact_format: str = "modelkit",
    sign_key: Path | None = None,
) -> list[str]:
    """The headless twin of what the review shows, the tag as typed (it may not be valid yet). ``sign_key`` goes
    with a push only (the wizard signs nothing it does not push)."""
    uri, flag = headless_uri(run, registered, tracking_uri)
    return import_words(
        uri,
        str(push_to) if push_to is not None else tag,
        spec,
        flag,
        description=overrides.description if overrides else None,
        authors=(overrides.authors or ()) if overrides else (),
        push=push_to is not None,
        artifact_format=artifact_format,
        sign_key=sign_key if push_to is not None else None,
    )
