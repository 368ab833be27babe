"""The real program in a real terminal (tmux): start it, type, read the screen back."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

if shutil.which("tmux") is None:
    print("tests/tui/test_tui_tmux.py: skipped, tmux is not installed (apt-get install tmux)")
    pytestmark = pytest.mark.skip(reason="tmux is not installed (apt-get install tmux)")


class Terminal:
    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.name = f"kitmlflow-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command],
            check=True,
        )

    def screen(self) -> str:
        result = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return result.stdout

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_the_real_program_browses_and_quits(isolated_env, demo_store, tmp_path) -> None:
    marker = tmp_path / "exit-code"
    program = (
        "import sys; from kitmlflow_tui.tui.app import run_wizard; "
        f"sys.exit(run_wizard(None, tracking_uri_flag={demo_store.tracking_uri!r}))"
    )
    command = (
        f"cd {shlex.quote(str(REPO))} && env XDG_CONFIG_HOME={shlex.quote(str(isolated_env / 'config'))} "
        f"{shlex.quote(sys.executable)} -c {shlex.quote(program)}; echo $? > {shlex.quote(str(marker))}"
    )
    terminal = Terminal(command)
    try:
        screen = terminal.wait_for("image-classifier-sweeps")
        assert "sqlite:///" in screen  # where it is connected
        terminal.keys(*"sweeps")
        terminal.wait_for("1 of 4 experiments match")
        terminal.keys("Enter")
        screen = terminal.wait_for("12 runs")  # at 80 columns the metrics come first, Duration is left out
        assert "val_accuracy" in screen
        terminal.keys("Escape")  # back to the experiments, still filtered
        terminal.wait_for("1 of 4 experiments match")
        terminal.keys("Escape")  # clears the filter
        terminal.wait_for("Type to filter")
        terminal.keys("C-q")
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.read_text().strip() == "0"
    finally:
        terminal.close()
