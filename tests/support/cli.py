"""The command line as the tests run it: in-process (CliRunner) or as a subprocess's environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from click.testing import CliRunner, Result


@dataclass
class CliOutcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliOutcome:
    """The real command, in-process (MLflow is imported once per test session)."""
    from kitmlflow_tui.cli import cli

    result: Result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return CliOutcome(result.exit_code, result.stdout, result.stderr)


def kitmlflow_subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(extra)
    return env
