"""One place lists what kitmlflow reads from the environment: core/settings.py, and the README's table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kitmlflow_tui
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError

PACKAGE = Path(kitmlflow_tui.__file__).parent
README = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
# Modules that write MLflow's own variables (never read a setting of ours): the reason is in each module.
WRITES_MLFLOWS_VARIABLES = {
    "kitmlflow_tui/__init__.py",  # telemetry off unless the user said otherwise
    "kitmlflow_tui/core/catalogue/http_limits.py",  # MLflow's retry and pool sizes for our client
    "kitmlflow_tui/demo/mlflow_state.py",  # MLflow's variables saved and restored around a demo build
}
# Modules that read MLflow's own variables where MLflow would (never a setting of ours).
READS_MLFLOWS_VARIABLES = {
    # The proxy's GETs skip MLflow's http_request, so they honour its redirect and Databricks variables themselves.
    "kitmlflow_tui/core/download/transports/server_session.py",
}


def environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that touch ``os.environ`` or call ``os.getenv``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv", "environb")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_no_module_reads_the_environment_but_settings() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := environment_reads(path))
    }
    allowed = {"kitmlflow_tui/core/settings.py", *WRITES_MLFLOWS_VARIABLES, *READS_MLFLOWS_VARIABLES}
    assert {name: lines for name, lines in found.items() if name not in allowed} == {}


def test_the_readme_lists_every_setting() -> None:
    table = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M))
    assert listed == {setting.name for setting in settings.ALL}


def test_seconds_are_positive_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITMLFLOW_STALL_SECONDS", raising=False)
    assert settings.STALL_SECONDS.seconds(30.0) == 30.0
    monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", " 2.5 ")
    assert settings.STALL_SECONDS.seconds(30.0) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv("KITMLFLOW_STALL_SECONDS", bad)
        with pytest.raises(BadInputError, match="KITMLFLOW_STALL_SECONDS"):
            settings.STALL_SECONDS.seconds(30.0)
