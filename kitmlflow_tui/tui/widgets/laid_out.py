"""Text the wizard lays out itself at the widget's width, so Textual never re-wraps it.

Textual wraps a long line at column 0 and anywhere in a word; that breaks a pasted command and makes a
YAML value or a path read as two. A :class:`LaidOut` widget asks its ``lay_out(width)`` for lines that
already fit, on mount and on every resize.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text
from textual.widgets import Static

from kitmlflow_tui.tui.commands import shell_lines


class LaidOut(Static):
    """A Static whose content is computed for its current width."""

    DEFAULT_CSS = """
    LaidOut {
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def lay_out(self, width: int) -> Text:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.call_after_refresh(self.relayout)

    def on_resize(self) -> None:
        self.relayout()

    def relayout(self) -> None:
        width = self.size.width
        if width > 0:
            text = self.lay_out(width)
            text.no_wrap = True
            text.overflow = "crop"
            self.update(text)


class CommandView(LaidOut):
    """Shell commands under a title, laid out so that a pasted copy runs (``commands.shell_lines``).

    The view must start at the screen's first column (no padding, border or margin to its left, on it
    or on any container around it): a terminal copies a row from there, and a row that continues a word
    split at the line's end (``abc\\`` then ``def``) must start with the word's rest, never with blanks,
    which the shell would read as a break between two arguments. ``PAD`` stands in for the padding
    before every other line."""

    PAD = " "

    def __init__(
        self,
        title: Text | str = "",
        commands: Sequence[Sequence[str]] = (),
        *,
        notes: Sequence[str] = (),
        indent: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = Text.from_markup(title) if isinstance(title, str) else title
        self.commands = [list(words) for words in commands]
        self.notes = list(notes)
        self.indent = indent

    def show(self, commands: Sequence[Sequence[str]], *, notes: Sequence[str] = ()) -> None:
        self.commands = [list(words) for words in commands]
        self.notes = list(notes)
        self.relayout()

    def lay_out(self, width: int) -> Text:
        width -= len(self.PAD)  # the right padding, as wide as the left
        lines: list[Text] = [Text(self.PAD) + self.title] if self.title.plain else []
        for words in self.commands:
            lines += [Text(line) for line in shell_lines(words, width, indent=self.PAD + self.indent)]
        for note in self.notes:  # comments: every wrapped line starts with "#", so a pasted one stays one
            prefix = f"{self.PAD}{self.indent}# "
            # never inside a word or at a hyphen: a note may name a command or a reference to copy
            wrapped = textwrap.wrap(
                note, max(width - len(prefix), 10), break_on_hyphens=False, break_long_words=False
            ) or [""]
            lines += [Text(prefix + part, style="dim") for part in wrapped]
        return Text("\n").join(lines)


# A YAML line: its indent and list dashes, then "key: " when there is one; the value starts after it.
_YAML_HEAD = re.compile(r"^(\s*(?:- )*)(?:[^\s:#][^:]*:(?: |$))?")
_MEASURE = Console(file=io.StringIO(), width=200)


def hanging_lines(line: Text, width: int) -> list[Text]:
    """A long YAML line wrapped under its value (never back at column 0), at spaces where it can."""
    if line.cell_len <= width:
        return [line]
    match = _YAML_HEAD.match(line.plain)
    start = match.end() if match else 0
    if start > width // 2:  # a key too long to hang under: hang under the key instead
        start = len(match.group(1)) + 2 if match else 2
    head, value = line[:start], line[start:]
    pieces = value.wrap(_MEASURE, max(width - start, 1), overflow="fold")
    return [head + pieces[0]] + [Text(" " * start) + piece for piece in pieces[1:]]


class YamlView(LaidOut):
    """YAML, highlighted, long values wrapped under themselves."""

    def __init__(self, text: str = "", *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = text
        self.placeholder = placeholder

    def show(self, text: str = "", *, placeholder: str = "") -> None:
        self.text, self.placeholder = text, placeholder
        self.relayout()

    def lay_out(self, width: int) -> Text:
        if not self.text:
            return Text.from_markup(self.placeholder)
        highlighted = Syntax(self.text, "yaml", theme="ansi_dark", background_color="default").highlight(self.text)
        highlighted.rstrip()
        lines = [piece for line in highlighted.split("\n") for piece in hanging_lines(line, width)]
        return Text("\n").join(lines)


def path_pieces(path: str, width: int) -> list[str]:
    """A path cut into lines of ``width`` after its slashes; a name longer than a line is cut too."""
    lines: list[str] = []
    line = ""
    for part in re.findall(r"[^/]*/|[^/]+$", path) or [""]:
        if line and cell_len(line + part) > width:
            lines.append(line)
            line = ""
        while cell_len(part) > width:
            room = width - cell_len(line)
            lines.append(line + part[:room])
            line, part = "", part[room:]
        line += part
    return [*lines, line]


class RolesView(LaidOut):
    """The Kitfile's entries: role, path, and details (framework, type) when they fit beside the path,
    else on the line below; paths break after a slash, never inside a name that fits a line."""

    HEADERS = ("role", "path", "details")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, str, str]] = []

    def show(self, rows: Sequence[tuple[str, str, str]]) -> None:
        self.rows = list(rows)
        self.relayout()

    def lay_out(self, width: int) -> Text:
        if not self.rows:
            return Text("")
        role_width = max(len(self.HEADERS[0]), *(len(role) for role, _, _ in self.rows)) + 2
        path_room = max(width - role_width, 8)
        path_width = min(max(len(self.HEADERS[1]), *(cell_len(path) for _, path, _ in self.rows)) + 2, path_room)
        aligned = width - role_width - path_width >= len(self.HEADERS[2])
        header = Text.assemble((self.HEADERS[0].ljust(role_width), "bold"))
        if aligned:
            header.append(self.HEADERS[1].ljust(path_width) + self.HEADERS[2], "bold")
        else:
            header.append(f"{self.HEADERS[1]} · {self.HEADERS[2]}", "bold")
        lines = [header]
        for role, path, detail in self.rows:
            pieces = path_pieces(path or ".", path_room)
            lines += [
                Text.assemble(((role if n == 0 else "").ljust(role_width), "magenta"), piece)
                for n, piece in enumerate(pieces)
            ]
            if not detail:
                continue
            last = lines[-1]
            columns = [role_width + path_width] if aligned else []  # in the details column, else after the path
            columns.append(last.cell_len + 2)
            column = next((c for c in columns if c >= last.cell_len + 2 and c + cell_len(detail) <= width), None)
            if column is not None:
                last.append(" " * (column - last.cell_len))
                last.append(detail, style="dim")
                continue
            for piece in path_pieces(detail, max(width - role_width - 2, 8)):
                lines.append(Text.assemble(" " * (role_width + 2), (piece, "dim")))
        return Text("\n").join(lines)
