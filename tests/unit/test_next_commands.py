"""The commands printed for a user to paste: kit's network flags for the registry as it was reached, and the quoting
that makes a shell read exactly the words printed (checked with bash itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kitmlflow_tui.core.next_commands import (
    RegistryAccess,
    kit_login_words,
    kit_words,
    kitmlflow_login_words,
    pulled_words,
    shell_line,
)


def bash_reads(line: str) -> list[str]:
    done = subprocess.run(
        ["bash", "-c", f'words() {{ printf "%s\\0" "$@"; }}\nwords {line}'], capture_output=True, check=True
    )
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize(
    ("access", "kit_flags", "kitmlflow_flags"),
    [
        (RegistryAccess(), [], []),
        (RegistryAccess(plain_http=True), ["--plain-http"], []),  # kitmlflow finds a loopback registry's HTTP
        (RegistryAccess(tls_verify=False), ["--tls-verify=false"], ["--no-tls-verify"]),
        (RegistryAccess(plain_http=True, tls_verify=False), ["--plain-http"], []),
        (
            RegistryAccess(cert=Path("/c/client.crt"), key=Path("/c/client key.pem")),
            ["--cert", "/c/client.crt", "--key", "/c/client key.pem"],
            ["--cert", "/c/client.crt", "--key", "/c/client key.pem"],
        ),
    ],
)
def test_kit_gets_the_flags_that_reach_the_registry(
    access: RegistryAccess, kit_flags: list[str], kitmlflow_flags: list[str]
) -> None:
    registry = "127.0.0.1:5000"
    assert kit_login_words(registry, access) == ["kit", "login", registry, *kit_flags]
    assert kitmlflow_login_words(registry, access) == [
        "kitmlflow", "login", registry, *kitmlflow_flags, "-u", "USER", "--password-stdin",
    ]  # fmt: skip
    assert pulled_words(f"{registry}/ml/churn:v2", access) == [
        ["kit", "pull", f"{registry}/ml/churn:v2", *kit_flags],
        ["kit", "unpack", f"{registry}/ml/churn:v2", "-d", "DIR", *kit_flags],
    ]


def test_kitmlflow_needs_plain_http_named_for_a_registry_that_is_not_loopback() -> None:
    assert "--plain-http" in kitmlflow_login_words("registry.internal:5000", RegistryAccess(plain_http=True))
    assert kit_words("list") == ["kit", "list"]  # local storage: no network flags


@pytest.mark.parametrize(
    "words",
    [
        ["kit", "unpack", "churn:champion", "-d", "DIR"],
        ["kit", "unpack", "churn:v1", "-d", "/tmp/a folder/with 'quotes' and $HOME"],
        ["kitmlflow", "import", "mlflow://runs/0a1b", "--tracking-uri", "sqlite:////data/my store/mlflow.db"],
    ],
)
def test_a_printed_line_is_read_back_as_its_words(words: list[str]) -> None:
    assert bash_reads(shell_line(words)) == words
