"""What importing each part loads, checked in a fresh interpreter (after Harlequin's test_import_hygiene).

The promises (docs/architecture.md): the core never loads Textual; nothing loads MLflow at import time
(``--help`` and the wizard's first paint never pay for it); rich is the CLI's and the wizard's, loaded
only by the modules that render.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = [
    "kitmlflow_tui.catalogue",
    "kitmlflow_tui.cli",
    "kitmlflow_tui.demo",
    "kitmlflow_tui.download",
    "kitmlflow_tui.errors",
    "kitmlflow_tui.import_process",
    "kitmlflow_tui.kitfile",
    "kitmlflow_tui.locking",
    "kitmlflow_tui.packing",
    "kitmlflow_tui.pipeline",
    "kitmlflow_tui.profiles",
    "kitmlflow_tui.reference",
    "kitmlflow_tui.registry",
    "kitmlflow_tui.selection",
]
HEAVY = ("textual", "rich", "mlflow")


def loaded_after_import(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", CORE)
def test_the_core_loads_neither_textual_nor_rich_nor_mlflow(module: str) -> None:
    assert loaded_after_import(module) == set()


def test_the_headless_progress_loads_rich_only() -> None:
    assert loaded_after_import("kitmlflow_tui.progress") == {"rich"}


def test_the_wizard_loads_no_mlflow_before_it_connects() -> None:
    assert loaded_after_import("kitmlflow_tui.tui.app") == {"rich", "textual"}
