"""Shell completion through click's own protocol (``_KITMLFLOW_COMPLETE``), as bash, zsh and fish run it: the
installed ``kitmlflow`` as a subprocess, the candidates read from its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KITMLFLOW = str(Path(sys.executable).parent / "kitmlflow")


def candidates(shell: str, line: str, config: Path) -> list[str]:
    """What ``shell`` would offer after ``line`` (a trailing space: a new word)."""
    words = line.split()
    incomplete = "" if line.endswith(" ") else words[-1]
    # bash and zsh pass the index of the word being completed; fish passes the word itself
    cword = incomplete if shell == "fish" else str(len(words) if line.endswith(" ") else len(words) - 1)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(config),
        "_KITMLFLOW_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": cword,
    }
    done = subprocess.run([KITMLFLOW], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    if shell == "zsh":  # type, value, help: three lines each
        lines = done.stdout.splitlines()
        return [lines[i + 1] for i in range(0, len(lines), 3)]
    return [entry.split("\t", 1)[0].split(",", 1)[1] for entry in done.stdout.splitlines()]  # type,value[\thelp]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "kitmlflow" / "profiles"
    folder.mkdir(parents=True)
    (folder / "weights-only.yaml").write_text("include: ['*.safetensors']\n")
    (folder / "everything.yaml").write_text("include: []\n")
    return tmp_path


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_commands_options_choices_and_profile_names_complete(shell: str, config: Path) -> None:
    assert candidates(shell, "kitmlflow imp", config) == ["import"]
    assert {"browse", "demo", "download", "import", "login", "logout", "profiles", "sync"} <= set(
        candidates(shell, "kitmlflow ", config)
    )
    assert candidates(shell, "kitmlflow import mlflow://runs/abc --pro", config) == ["--profile"]
    assert candidates(shell, "kitmlflow import mlflow://runs/abc --profile w", config) == ["weights-only"]
    assert candidates(shell, "kitmlflow sync mlflow://models/m --profile ", config) == ["everything", "weights-only"]
    assert candidates(shell, "kitmlflow profiles show ", config) == ["everything", "weights-only"]
    assert candidates(shell, "kitmlflow import x --packer ", config) == ["auto", "kit", "native"]


def test_a_profile_path_is_left_to_the_shells_file_completion(config: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(config),
        "_KITMLFLOW_COMPLETE": "bash_complete",
        "COMP_WORDS": "kitmlflow import x --profile ./prof",
        "COMP_CWORD": "4",
    }
    done = subprocess.run([KITMLFLOW], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["file,./prof"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_source_scripts_call_back_into_kitmlflow(shell: str) -> None:
    env = {**os.environ, "_KITMLFLOW_COMPLETE": f"{shell}_source"}
    done = subprocess.run([KITMLFLOW], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "_KITMLFLOW_COMPLETE" in done.stdout and "kitmlflow" in done.stdout
