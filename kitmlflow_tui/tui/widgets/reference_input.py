"""An Input for a ModelKit or registry reference, which leaves "?" to the wizard's key map.

Textual keeps every printable key for a focused Input, so a key bound to the App (the key map's "?")
never fires while one has the focus. No reference holds a "?", so this field gives it up; a field whose
text may hold one (a glob, a runs filter, a description) keeps it, and F1 opens the key map there.
"""

from __future__ import annotations

from textual.widgets import Input


class ReferenceInput(Input):
    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character != "?" and super().check_consume_key(key, character)
