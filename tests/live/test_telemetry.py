"""MLflow's telemetry is off in kitmlflow's own processes (the CLI and the wizard's import child), unless
the user set MLFLOW_DISABLE_TELEMETRY themselves. Each entry point runs for real, as ``python -m``, in an
environment without the variables that turn MLflow's telemetry off on their own (CI, pytest)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from kitmlflow_tui.core.catalogue import Catalogue
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.pipeline import ImportOptions
from kitmlflow_tui.core.reference import parse_reference
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.tui.import_process import ImportJob
from tests.support.hostile_server import Content, Scenario, file, hostile_server

# Runs a module as __main__ and reports, at exit, what MLflow's telemetry saw.
PROBE = """
import atexit, os, runpy, sys
def report():
    client = sys.modules.get("mlflow.telemetry.client")
    state = "not imported" if client is None else repr(client.get_telemetry_client())
    print(f"TELEMETRY env={os.environ.get('MLFLOW_DISABLE_TELEMETRY')} client={state}", file=sys.stderr)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
# Every variable that disables MLflow's telemetry by itself (mlflow/telemetry/utils.py), so that only
# kitmlflow's own setting is left to do it.
_TELEMETRY_OFF_BY_ITSELF = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY")


def plain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TELEMETRY_OFF_BY_ITSELF and not k.startswith("MLFLOW_")}
    env.update(KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"), KITOPS_HOME=str(tmp_path / "kitops"), **extra)
    return env


def scenario() -> Scenario:
    return Scenario(
        listing=lambda d: [file("model.bin", 5)] if d == "" else [], contents={"model.bin": Content(b"hello")}
    )


def telemetry_line(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("TELEMETRY")]
    return line


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("user_env", "expected"),
    [({}, "env=true client=None"), ({"MLFLOW_DISABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}, "env=false")],
    ids=["off-by-default", "the-users-own-setting-is-kept"],
)
def test_the_cli_turns_mlflow_telemetry_off(user_env: dict[str, str], expected: str, tmp_path: Path) -> None:
    with hostile_server(scenario()) as server:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "kitmlflow_tui.cli", "download", server.uri(), "--dest", str(tmp_path / "d")]
            + ["--yes"],
            env=plain_env(tmp_path, **user_env),
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d" / "model.bin").read_bytes() == b"hello"  # MLflow was loaded and used
    assert telemetry_line(done.stderr).startswith(f"TELEMETRY {expected}")


@pytest.mark.timeout(300)
def test_the_import_child_turns_mlflow_telemetry_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with hostile_server(scenario()) as server:
        reference = parse_reference(server.uri())
        resolved = Catalogue(server.url).resolve(reference)
        job = ImportJob(
            server.url,
            resolved.run,
            resolved.tree,
            FilterSpec(),
            None,
            ImportOptions(tag=parse_modelkit_reference("telemetry:v1")),
        )
        read_end, write_end = os.pipe()
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", PROBE, "kitmlflow_tui.tui.import_process", str(write_end)],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_end,),
                env=plain_env(tmp_path),
            )
            os.close(write_end)
            assert child.stdin is not None and child.stderr is not None
            child.stdin.write(pickle.dumps(job))
            child.stdin.flush()
            with os.fdopen(read_end, "rb") as frames:
                frames.read()  # until the child closes its end: the import is over
            child.stdin.close()
            stderr = child.stderr.read().decode()
            assert child.wait(timeout=60) == 0, stderr
        finally:
            if child.poll() is None:
                child.kill()
    assert list((tmp_path / "kitops").rglob("*-tags.json")), "the child packed the run"
    assert telemetry_line(stderr) == "TELEMETRY env=true client=None"
