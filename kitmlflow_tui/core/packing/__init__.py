"""Step 6: turn a folder and its Kitfile into a ModelKit in kit's local storage.

Two packers give the same result: :func:`pack_with_kit` runs the real ``kit pack``;
:func:`pack_native` writes the same blobs and index files itself when kit is not installed.
Nothing here imports MLflow or Textual.
"""

from kitmlflow_tui.core.packing.kit_cli import choose_packer, dump_kitfile_yaml, find_kit, pack_with_kit
from kitmlflow_tui.core.packing.native import DEFAULT_CLI_VERSION, pack_native
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.packing.storage import resolve_kit_home

__all__ = [
    "DEFAULT_CLI_VERSION",
    "PackResult",
    "choose_packer",
    "dump_kitfile_yaml",
    "find_kit",
    "pack_native",
    "pack_with_kit",
    "resolve_kit_home",
]
