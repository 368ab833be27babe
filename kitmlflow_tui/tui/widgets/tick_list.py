"""A SelectionList whose boxes read ``[x]`` / ``[ ]``, as the artifact tree's do.

Textual draws every box as ``▐X▌`` and tells a ticked one from an unticked one by colour only, which
``NO_COLOR``, a monochrome terminal or a colour-blind reader cannot see.
"""

from __future__ import annotations

from typing import TypeVar

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList
from textual.widgets.option_list import OptionDoesNotExist

T = TypeVar("T")
TICKED, UNTICKED = "[x]", "[ ]"


class TickList(SelectionList[T]):
    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        segments = list(line)
        box = "".join(segment.text for segment in segments[:3])
        if box != Checkbox.BUTTON_LEFT + Checkbox.BUTTON_INNER + Checkbox.BUTTON_RIGHT:  # SelectionList's box
            return line  # no box on this line (below the last option)
        try:
            selection = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return line
        text = TICKED if selection.value in self.selected else UNTICKED
        # The inner segment's style: the box's colour (kept for those who see it) and the option's index,
        # which a click on the box needs.
        return Strip([Segment(text, segments[1].style), *segments[3:]], line.cell_length)
