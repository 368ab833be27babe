"""The real program in a real terminal (tmux): start it, type, read the screen back."""

from __future__ import annotations

import os
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
    """A program in a detached tmux of its own (a private server: ``-L``), reading the pane's size. Once
    GNU readline is imported in the test process (some test's imports bring it in), it has exported
    COLUMNS=80 and LINES=24 at the C level, unseen in ``os.environ`` but inherited by tmux and its
    panes; Textual (``shutil.get_terminal_size``) would take them over the pane's size."""

    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.name = f"kitmlflow-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        unset = "unset COLUMNS LINES; "
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), unset + command],
            check=True,
        )

    def screen(self) -> str:
        result = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
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
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


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


TAG = "image-classifier-resnet18-baseline-long-name:v1-2026-12-02-rc1"  # an unpack line wider than 80 columns


def next_lines(screen: str) -> list[str]:
    """The done screen's "Next" commands, as a terminal copy of those rows gives them (up to its Push to)."""
    rows = screen.splitlines()
    assert any(row.strip() == "Next" for row in rows), screen
    start = next(n for n, row in enumerate(rows) if row.strip() == "Next") + 1
    end = next(n for n in range(start, len(rows)) if rows[n].lstrip().startswith("Push to "))
    return [row.rstrip() for row in rows[start:end] if row.strip()]


def test_the_commands_the_done_screen_shows_work_when_pasted_at_80_columns(isolated_env, demo_store, tmp_path) -> None:
    """Item 1 of issue 15: what the user copies from the done screen runs. With KIT_BIN the real kit runs the
    pasted lines (kit list shows the ModelKit, kit unpack writes its files); without it a shell function
    named kit records the words bash reads from them."""
    kit_bin = os.environ.get("KIT_BIN", "")
    kit_home = isolated_env / "kitops"
    kit_home.mkdir(parents=True, exist_ok=True)
    (kit_home / "disable-update-notifications").touch()
    marker = tmp_path / "exit-code"
    program = (
        "import sys; from kitmlflow_tui.tui.app import run_wizard; from kitmlflow_tui.core.reference import RunRef; "
        f"sys.exit(run_wizard(RunRef(None, {demo_store.runs['finished']!r}), "
        f"tracking_uri_flag={demo_store.tracking_uri!r}, tag={TAG!r}))"
    )
    env = " ".join(
        f"{name}={shlex.quote(str(value))}"
        for name, value in {
            "XDG_CONFIG_HOME": isolated_env / "config",
            "KITOPS_HOME": kit_home,
            "KITMLFLOW_CACHE_DIR": isolated_env / "cache",
        }.items()
    )
    command = (
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -c {shlex.quote(program)};"
        f" echo $? > {shlex.quote(str(marker))}"
    )
    terminal = Terminal(command)
    try:
        terminal.wait_for("files in the run")
        terminal.keys("c")
        terminal.wait_for("manifestVersion")  # the Kitfile is previewed: the import may start
        terminal.keys("C-g")
        terminal.wait_for("ModelKit ready", timeout=180)
        screen = terminal.wait_for("kit unpack")  # the commands are laid out once the screen knows its width
        lines = next_lines(screen)
        terminal.keys("q")
    finally:
        terminal.close()
    assert all(len(line) <= 80 for line in lines)
    assert any(line.endswith(" \\") for line in lines), "the unpack line is wider than 80: it must continue"
    folder = tmp_path / "pasted"
    folder.mkdir()
    if kit_bin:
        script = f'set -e\nkit() {{ {shlex.quote(kit_bin)} "$@"; }}\n' + "\n".join(lines)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, "KITOPS_HOME": str(kit_home)},
        )
        assert done.returncode == 0, done.stderr
        assert TAG.split(":")[0] in done.stdout  # kit list names it
        unpacked = folder / TAG.split(":")[0]
        assert (unpacked / "Kitfile").is_file() and any(unpacked.rglob("MLmodel"))
    else:
        script = 'kit() { printf "%s\\0" "$@"; printf "\\n"; }\n' + "\n".join(lines)
        done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, check=True)
        calls = [call.split("\0")[:-1] for call in done.stdout.decode().split("\n") if call]
        assert calls == [["list"], ["unpack", TAG, "-d", f"./{TAG.split(':')[0]}"]]


REVIEW_TAG = "live-review:v1"


def review_command_lines(screen: str) -> list[str]:
    """The review's headless command (and its # notes), as a terminal copy of those rows gives them."""
    rows = screen.splitlines()
    start = next(n for n, row in enumerate(rows) if "Headless equivalent" in row) + 1
    end = next(n for n in range(start, len(rows)) if rows[n].lstrip().startswith("esc "))  # the footer
    return [row.rstrip() for row in rows[start:end] if row.strip()]


@pytest.mark.parametrize("width", [80, 120])
def test_the_command_the_review_shows_runs_as_shown_when_pasted(isolated_env, live, tmp_path, width) -> None:
    """Issue 22, item 9: the review's headless twin, copied off the screen and pasted into bash, gives bash
    the words of the command (at 80 columns the run's URI is wider than a line and is split)."""
    run_id = live.runs["full"]
    program = (
        "import sys; from kitmlflow_tui.tui.app import run_wizard; from kitmlflow_tui.core.reference import RunRef; "
        f"sys.exit(run_wizard(RunRef(None, {run_id!r}), tracking_uri_flag={live.url!r}, tag={REVIEW_TAG!r}))"
    )
    env = " ".join(
        f"{name}={shlex.quote(str(value))}"
        for name, value in {
            "XDG_CONFIG_HOME": isolated_env / "config",
            "KITOPS_HOME": isolated_env / "kitops",
            "KITMLFLOW_CACHE_DIR": isolated_env / "cache",
        }.items()
    )
    terminal = Terminal(
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} -c {shlex.quote(program)}", width=width
    )
    try:
        terminal.wait_for("files in the run")
        terminal.keys("c")
        terminal.wait_for("manifestVersion")
        screen = terminal.wait_for("--yes")  # the command is laid out once the screen knows its width
        lines = review_command_lines(screen)
        terminal.keys("C-q")
    finally:
        terminal.close()
    assert all(len(line) <= width for line in lines), lines
    uri = f"mlflow://{live.host}/experiments/{live.experiment_id}/runs/{run_id}"
    if width == 80:
        assert not any(uri in line for line in lines), "a URI wider than the line is split"
    script = 'kitmlflow() { printf "%s\\0" "$@"; printf "\\n"; }\n' + "\n".join(lines)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, check=True)
    calls = [call.split("\0")[:-1] for call in done.stdout.decode().split("\n") if call]
    assert calls == [["import", uri, "-t", REVIEW_TAG, "--yes"]], (lines, calls)
