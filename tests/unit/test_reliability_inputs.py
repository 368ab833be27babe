"""Case 10 of docs/reliability.md: broken inputs are exit 2 naming the field (and line), before any network;
arbitrary argv never makes the CLI print a traceback. (URI, glob and profile fuzzing: test_reference.py,
test_selection.py, test_profiles.py; this adds the whole command line.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.cli import run_cli

EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 8, 130}  # the contract's set (docs/architecture.md; click's usage errors are 2 too)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CLOSED = closed_port()
URI = f"mlflow://127.0.0.1:{CLOSED}/experiments/1/runs/abc"  # exit 2 proves the input was refused offline


BROKEN_PROFILES = {
    "unknown key": ("include: ['*.pt']\nincldue: ['x']\n", ["incldue", "line 2"]),
    "bad size": ("max_file_size: lots\n", ["max_file_size"]),
    "bad glob": ("include: ['[oops']\n", ["[oops"]),
    "not a mapping": ("- a\n- b\n", ["mapping"]),
    "bad yaml": ("include: [a, b\n", ["line"]),
    "include a mapping": ("include: {a: 1}\n", ["include", "line 1"]),
    "unknown package key": ("package:\n  licence: MIT\n", ["licence", "line 2"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PROFILES))
def test_broken_profiles_are_exit_2_naming_the_field(case: str, kitmlflow, isolated_env: Path) -> None:
    text, fragments = BROKEN_PROFILES[case]
    profile = isolated_env / "broken.yaml"
    profile.write_text(text)
    out = kitmlflow("import", URI, "-t", "x:1", "--yes", "--json", "--profile", str(profile))
    assert out.code == 2, (case, out.stderr)
    message = out.json["error"]["message"]
    for fragment in fragments:
        assert fragment in message, (case, message)


BROKEN_KITFILES = {
    "unknown key": ("manifestVersion: 1.0.0\nmodel:\n  path: m\n  pth: x\n", ["pth", "line 4"]),
    "wrong type": ("manifestVersion: 1.0.0\ncode: notalist\n", ["code", "line 2"]),
    "bad yaml": ("manifestVersion: 1.0.0\nmodel: [\n", ["line"]),
    "bad version": ("manifestVersion: 9\nmodel:\n  path: m\n", ["manifestVersion"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN_KITFILES))
def test_a_kitfile_kit_would_reject_is_exit_2_before_any_download(case: str, kitmlflow, isolated_env: Path) -> None:
    text, fragments = BROKEN_KITFILES[case]
    kitfile = isolated_env / "Kitfile"
    kitfile.write_text(text)
    out = kitmlflow("import", URI, "-t", "x:1", "--yes", "--json", "--kitfile", str(kitfile))
    assert out.code == 2, (case, out.stderr)
    message = out.json["error"]["message"]
    for fragment in fragments:
        assert fragment in message, (case, message)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-t", "UPPER:v1"], "lowercase"),
        (["-t", "name:-bad"], "Invalid tag"),
        (["-t", "a:b,c"], "one ModelKit tag"),
        (["-t", "x:1", "--include", "a[b"], "a[b"),
        (["-t", "x:1", "--max-file-size", "-3MB"], "-3MB"),
        (["-t", "x:1", "--max-file-size", "12 parsecs"], "12 parsecs"),
        (["-t", "x:1", "--profile", "no-such-profile"], "no-such-profile"),
    ],
)
def test_bad_flags_are_exit_2_naming_the_value(args: list[str], fragment: str, kitmlflow) -> None:
    out = kitmlflow("import", URI, "--yes", "--json", *args)
    assert out.code == 2, (args, out.stderr)
    assert fragment in out.json["error"]["message"]


_TOKENS = [
    "import",
    "download",
    "profiles",
    "list",
    "show",
    "delete",
    URI,
    f"mlflow://127.0.0.1:{CLOSED}/runs/abc",
    f"mlflow://127.0.0.1:{CLOSED}/models/m@a",
    "mlflow://runs/abc",
    "mlflow://",
    "http://x/runs/a",
    "-t",
    "--tag",
    "x:1",
    "--yes",
    "--json",
    "--dry-run",
    "--include",
    "--exclude",
    "--max-file-size",
    "--profile",
    "--kitfile",
    "--packer",
    "native",
    "--jobs",
    "0",
    "99",
    "--dest",
    "--tracking-uri",
    "--compression",
    "gzip",
    "-h",
    "--version",
    "**",
    "[",
    "",
    "-",
    "--",
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    command=st.sampled_from(["import", "download", "profiles"]),
    rest=st.lists(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=12)), max_size=8),
)
@example(command="import", rest=["--kitfile", "\x00"])  # found by a CI run: os.stat raised ValueError
@example(command="download", rest=["mlflow://runs/abc", "--dest", "a\x00b"])
def test_arbitrary_argv_never_prints_a_traceback(command: str, rest: list[str], tmp_path_factory) -> None:
    home = tmp_path_factory.mktemp("argv")
    env = {
        "XDG_CONFIG_HOME": str(home / "config"),
        "KITMLFLOW_CACHE_DIR": str(home / "cache"),
        "KITOPS_HOME": str(home / "kitops"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{CLOSED}",
    }
    # Relative paths (--dest X, --kitfile X) land in a scratch folder, never in the repository.
    import os

    previous = os.getcwd()
    os.chdir(home)
    try:
        try:
            out = run_cli(command, *rest, env=env)
        except SystemExit as exc:  # pragma: no cover - CliRunner catches these
            pytest.fail(f"SystemExit escaped: {exc}")
    finally:
        os.chdir(previous)
    assert out.code in EXIT_CODES, (rest, out.code, out.stderr[-500:])
    assert "Traceback" not in out.stdout + out.stderr, (rest, out.stderr[-2000:])
