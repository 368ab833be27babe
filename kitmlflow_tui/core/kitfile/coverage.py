"""Which files a Kitfile leaves out of every layer, and why, decided from paths alone (no folder needed).

``kit pack`` drops some files of the folder it packs without a word: a root ``Kitfile`` or ``.kitignore``
(its default ignores: the first is the ModelKit's own Kitfile, the second it obeys), a file no entry
covers, a file whose path starts with another entry's path as a string (``model.pkl.bak`` beside an entry
``model.pkl``), a name holding ``..`` below a folder entry. An import must never call such a file selected
and then lose it: the pipeline asks :func:`files_in_no_layer` about the planned files before anything is
downloaded and moves those to the plan's excluded files with the reason.

The rules are kit's own, as the packers replay them (:mod:`kitmlflow_tui.core.packing.kitignore`, checked against
the recorded kit packs), applied here to the planned paths instead of a folder. A run's ``.kitignore``
is never applied (it is the run's data, not an instruction to the importer), so only kit's default
ignores take part.
"""

from __future__ import annotations

from collections.abc import Iterable

from kitmlflow_tui.core.kitfile.model import Kitfile
from kitmlflow_tui.core.packing.kitignore import DEFAULT_IGNORES, IgnoreRules, clean_entry_path, same_dir_tree

REASON_KIT_OWN_FILE = "kit never packs a root {name} (it treats it as its own), so it would be in no layer"
REASON_NO_ENTRY = "no entry of the Kitfile covers it, so kit would put it in no layer"
REASON_PREFIX = "kit would leave it out of every layer: its path starts with the entry {other!r} (kit's prefix rule)"
REASON_DOTS = "kit leaves a name holding '..' out of a folder entry, so it would be in no layer"


def layer_paths(kitfile: Kitfile) -> list[str]:
    """The cleaned path of every entry that becomes a layer, as the packers make them."""
    found = []
    for where, path in kitfile.entries():
        if where == "model.path" and (not path or ":" in path or "@" in path):
            continue  # no model file, or another ModelKit to build on: no layer of this folder
        found.append(clean_entry_path(path))
    return found


def files_in_no_layer(kitfile: Kitfile, paths: Iterable[str]) -> dict[str, str]:
    """``path -> reason`` for each of ``paths`` (files, relative, ``/``-separated) that ``kit pack`` would put
    in no layer of ``kitfile``; the others are in at least one layer."""
    layers = layer_paths(kitfile)
    layer_set = set(layers)
    rules = IgnoreRules((), layers)  # kit's default ignores only: a run's .kitignore is data
    out: dict[str, str] = {}
    for path in paths:
        candidates = [layer for layer in _containing(path) if layer in layer_set]
        if any(_in_layer(path, layer, layer_set, rules) for layer in candidates):
            continue
        out[path] = _reason(path, candidates, layer_set, rules)
    return out


def _containing(path: str) -> list[str]:
    """The entry paths that could hold ``path``: ``.``, each of its folders, itself."""
    parts = path.split("/")
    return [".", *("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))]


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def _prefix_layer(path: str, layer: str, layers: set[str]) -> str | None:
    """Another entry whose path starts ``path`` as a string (and not ``layer``'s): kit then skips ``path``."""
    for end in range(1, len(path) + 1):
        other = path[:end]
        if other in layers and not layer.startswith(other):
            return other
    return None


def _skipped(path: str, layer: str, layers: set[str], rules: IgnoreRules) -> bool:
    return rules.kitignore_matches(path) or _prefix_layer(path, layer, layers) is not None


def _in_layer(path: str, layer: str, layers: set[str], rules: IgnoreRules) -> bool:
    """kit's walk from the folder's root for ``layer``: every folder on the way entered, the file kept."""
    for folder in _ancestors(path):
        if not same_dir_tree(layer, folder) or _skipped(folder, layer, layers, rules):
            return False
    return same_dir_tree(layer, path) and not _skipped(path, layer, layers, rules)


def _reason(path: str, candidates: list[str], layers: set[str], rules: IgnoreRules) -> str:
    top = path.split("/", 1)[0]
    if top in DEFAULT_IGNORES and rules.kitignore_matches(top):
        return REASON_KIT_OWN_FILE.format(name=top if top == path else f"{top} folder")
    if not candidates:
        return REASON_NO_ENTRY
    nearest = candidates[-1]  # the entry meant to hold it (the others skip it as that entry's path)
    for step in [*_ancestors(path), path]:
        other = _prefix_layer(step, nearest, layers)
        if other is not None:
            return REASON_PREFIX.format(other=other)
    return REASON_DOTS
