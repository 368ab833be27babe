"""The artifact tree: tri-state boxes, folder totals, logged models marked, big files highlighted.

Folders are filled in when opened, from whatever the browser knows (the first level at once, the rest
once the listing is complete), so even a tree of many thousand files costs only what is on screen. A
folder opened before the whole listing is in asks for its own listing (``FolderWanted``).
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from kitmlflow_tui.core.catalogue.records import LevelEntry
from kitmlflow_tui.core.selection.plan import format_size
from kitmlflow_tui.tui.selection_model import ArtifactBrowser, TickState

BOXES: dict[TickState, tuple[str, str]] = {
    "all": ("[x]", "bold green"),
    "some": ("[~]", "bold yellow"),
    "none": ("[ ]", "dim"),
}
_PLACEHOLDER = "listing…"


class CheckboxTree(Tree[LevelEntry], inherit_bindings=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "tick", "Tick", tooltip="Tick or untick the file or folder"),
        Binding("enter", "open", "Open or close a folder, tick a file", show=False),
        Binding("right", "expand", "Open folder", show=False),
        Binding("left", "collapse", "Close folder (or go to its folder)", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_home", "First", show=False),
        Binding("end,G", "scroll_end", "Last", show=False),
    ]

    class Ticked(Message):
        """The user changed a tick (the totals need a refresh)."""

    class FolderWanted(Message):
        """A folder was opened that the browser does not know yet: list it (``fill_folder`` shows it)."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    def __init__(self, browser: ArtifactBrowser, *, id: str | None = None) -> None:
        super().__init__("artifacts", id=id)
        self.browser = browser
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False
        self._filled: set[str] = set()

    # -- filling ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Show what the browser knows now, keeping open folders open."""
        open_folders = {path for path in self._filled if self._is_open(path)}
        cursor = self.cursor_node.data.path if self.cursor_node and self.cursor_node.data else None
        self._filled.clear()
        self.root.remove_children()
        self._fill(self.root, "", open_folders)
        self.root.expand()
        if cursor is not None:
            self._move_cursor_to(cursor)
        elif self.cursor_line < 0:
            self.cursor_line = 0

    def _is_open(self, path: str) -> bool:
        node = self._node_for(path)
        return path == "" or (node is not None and node.is_expanded)

    def _node_for(self, path: str) -> TreeNode[LevelEntry] | None:
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.data is not None and node.data.path == path:
                return node
            if node.data is None or path.startswith(node.data.path + "/"):
                stack.extend(node.children)
        return None

    def _move_cursor_to(self, path: str) -> None:
        node = self._node_for(path)
        if node is not None:
            self.move_cursor(node, animate=False)

    def _fill(self, node: TreeNode[LevelEntry], path: str, open_folders: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        entries = self.browser.children(path)
        if entries is None:
            node.add_leaf(_PLACEHOLDER)
            if path:
                self.post_message(self.FolderWanted(path))
            return
        self._filled.add(path)
        for entry in entries:
            name = entry.path.rpartition("/")[2]
            if entry.is_dir:
                child = node.add(name, data=entry, allow_expand=True)
                if entry.path in open_folders:
                    self._fill(child, entry.path, open_folders)
                    child.expand()
            else:
                node.add_leaf(name, data=entry)

    def fill_folder(self, path: str) -> None:
        """Show a folder the browser has just learnt, if it is on screen and still a placeholder."""
        node = self._node_for(path)
        if node is not None and path not in self._filled:
            node.remove_children()
            self._fill(node, path)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[LevelEntry]) -> None:
        node = event.node
        if node.data is not None and node.data.path not in self._filled:
            node.remove_children()
            self._fill(node, node.data.path)

    # -- ticking ---------------------------------------------------------------------------------
    def action_tick(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        self.browser.toggle(node.data.path, node.data.is_dir)
        self.repaint_ticks()
        self.post_message(self.Ticked())

    def repaint_ticks(self) -> None:
        self._updates += 1
        self.refresh()

    def action_open(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.toggle()
        elif node is not None:
            self.action_tick()

    def action_expand(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()

    def action_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent, animate=False)

    async def _on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        if meta.get("tick") and "line" in meta:
            event.prevent_default()
            event.stop()
            node = self.get_node_at_line(meta["line"])
            if node is not None and node.data is not None:
                self.move_cursor(node, animate=False)
                self.action_tick()

    # -- rendering -------------------------------------------------------------------------------
    def _indent(self, node: TreeNode[LevelEntry]) -> int:
        depth, parent = 0, node.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        return depth * self.guide_depth

    def get_label_width(self, node: TreeNode[LevelEntry]) -> int:
        # The label pads or shortens itself to the width, so the tree never scrolls sideways.
        return max(self.scrollable_content_region.width - self._indent(node) - 1, 1)

    def render_label(self, node: TreeNode[LevelEntry], base_style: Style, style: Style) -> Text:
        entry = node.data
        if entry is None:
            return Text(str(node.label), style="dim italic")
        box, box_style = BOXES[self.browser.state(entry.path, entry.is_dir)]
        index = self.browser.index
        big = not entry.is_dir and index is not None and index.is_big(entry.size)
        name = str(node.label) + ("/" if entry.is_dir else "")
        label = Text.assemble(
            (box, Style.parse(box_style) + Style(meta={"tick": True})),
            # the arrow carries Tree's "toggle" meta: a click on it opens or closes the folder
            (" ▾ " if node.is_expanded else " ▸ ", Style(meta={"toggle": True})) if entry.is_dir else "   ",
            (name, "bold" if entry.is_dir else ("bold yellow" if big else "")),
        )
        if entry.is_dir and entry.model:
            label.append(" ◆ model", style="bold magenta")
        elif big:
            label.append(" big", style="bold yellow")
        label.stylize(style)
        size = self._size_text(entry, big)
        available = self.scrollable_content_region.width - self._indent(node) - 1
        gap = available - label.cell_len - size.cell_len
        if gap >= 1:
            label.append(" " * gap)
            label.append_text(size)
        else:
            label.truncate(max(available - size.cell_len - 1, 8), overflow="ellipsis")
            label.append(" ")
            label.append_text(size)
        return label

    def _size_text(self, entry: LevelEntry, big: bool) -> Text:
        index = self.browser.index
        if entry.is_dir:
            if index is None or entry.path not in index.folders:
                return Text("…", style="dim")
            folder = index.folders[entry.path]
            count = f"{folder.count:,} file{'s' if folder.count != 1 else ''} "
            return Text.assemble((count, "dim"), (format_size(folder.size).rjust(9), ""))
        return Text(format_size(entry.size).rjust(9), style="bold yellow" if big else "")
