"""What importing each part loads, checked in a fresh interpreter (after Harlequin's test_import_hygiene).

The promises (docs/architecture.md): the core never loads Textual; nothing loads MLflow at import time
(``--help`` and the wizard's first paint never pay for it); rich is the CLI's and the wizard's, loaded
only by the modules that render.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest


def modules_under(package: str) -> list[str]:
    """Every module of ``package``, found on disk: one written tomorrow is checked too."""
    root = importlib.import_module(package)
    found = [package] + [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
    return sorted(name for name in found if not name.endswith("__main__"))


CORE = modules_under("kitmlflow_tui.core") + modules_under("kitmlflow_tui.demo")
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


def test_the_core_loads_neither_textual_nor_rich_nor_mlflow() -> None:
    assert len(CORE) > 50  # the walk found the package's modules
    assert loaded_after_import(*CORE) == set()


@pytest.mark.parametrize(
    "module", ["kitmlflow_tui", "kitmlflow_tui.api", "kitmlflow_tui.cli", "kitmlflow_tui.tui.import_process"]
)
def test_the_entry_points_load_nothing_heavy(module: str) -> None:
    assert loaded_after_import(module) == set()


def test_the_python_api_loads_no_part_of_the_core_that_does_work() -> None:
    """``from kitmlflow_tui import import_modelkit`` in a training script: only the error family, the settings it
    reads and the event types (a few small modules), never the pipeline, the catalogue or the registry client."""
    code = (
        "import sys, json\n"
        "from kitmlflow_tui import import_modelkit, sync_model, download_artifacts\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kitmlflow_tui'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert set(json.loads(done.stdout)) == {
        "kitmlflow_tui",
        "kitmlflow_tui.api",
        "kitmlflow_tui.core",
        "kitmlflow_tui.core.errors",
        "kitmlflow_tui.core.events",
        "kitmlflow_tui.core.settings",  # the error family's masking reads its variable names there
    }


def test_the_headless_progress_loads_rich_only() -> None:
    assert loaded_after_import("kitmlflow_tui.cli.progress") == {"rich"}


def test_the_wizard_loads_no_mlflow_before_it_connects() -> None:
    assert loaded_after_import("kitmlflow_tui.tui.app") == {"rich", "textual"}


def test_a_download_loads_neither_the_kitfile_step_nor_the_sync() -> None:
    """``kitmlflow download`` pays its start-up on every run: the modules it runs through (the CLI, its progress,
    the pipeline's plan and download) load no Kitfile builder, packer or sync."""
    code = (
        "import sys, json\n"
        "import kitmlflow_tui.cli.importing, kitmlflow_tui.cli.progress, kitmlflow_tui.core.pipeline\n"
        "import kitmlflow_tui.core.download.downloader, kitmlflow_tui.core.catalogue.gateway\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kitmlflow_tui'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(done.stdout))
    assert "kitmlflow_tui.core.pipeline" in loaded
    assert not {m for m in loaded if m.startswith(("kitmlflow_tui.core.kitfile", "kitmlflow_tui.core.packing"))}
    assert "kitmlflow_tui.core.sync" not in loaded
