"""The commands kitmlflow prints for a user to paste: the CLI's next steps, the wizard's done screen, the hints of
registry errors. Each is a list of words; :func:`shell_line` quotes them so that a shell reads exactly those words.

A ``kit`` command that talks to a registry carries the flags kit needs to reach it the way kitmlflow did
(:class:`RegistryAccess`): kit 1.7.0's network flags (``pkg/cmd/options/network.go``, on pull, push, unpack, login,
inspect, list) are ``--plain-http``, ``--tls-verify=false`` (a boolean flag: only the ``=false`` form turns it off)
and ``--cert``/``--key``. kit never falls back to plain HTTP by itself, so a loopback registry kitmlflow reached over
HTTP needs ``--plain-http`` in every kit command; kitmlflow's own ``login`` finds a loopback registry's plain HTTP
without the flag, so its commands carry it only for other hosts.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RegistryAccess:
    """How a registry was reached: plain HTTP or TLS, whether the certificate was checked, a client certificate."""

    plain_http: bool = False
    tls_verify: bool = True
    cert: Path | None = None
    key: Path | None = None

    def kit_flags(self) -> list[str]:
        flags = ["--plain-http"] if self.plain_http else []
        if not self.tls_verify and not self.plain_http:
            flags.append("--tls-verify=false")
        if self.cert is not None and self.key is not None:
            flags += ["--cert", str(self.cert), "--key", str(self.key)]
        return flags

    def kitmlflow_flags(self, registry: str) -> list[str]:
        from kitmlflow_tui.core.registry.reference import is_loopback  # the registry package loads requests

        flags = ["--plain-http"] if self.plain_http and not is_loopback(registry) else []
        if not self.tls_verify and not self.plain_http:
            flags.append("--no-tls-verify")
        if self.cert is not None and self.key is not None:
            flags += ["--cert", str(self.cert), "--key", str(self.key)]
        return flags


def kit_words(command: str, *arguments: str, access: RegistryAccess | None = None) -> list[str]:
    """``kit COMMAND ARGUMENTS...`` with the network flags of ``access`` (None: a command on local storage)."""
    return ["kit", command, *arguments, *(access.kit_flags() if access is not None else [])]


def kit_login_words(registry: str, access: RegistryAccess) -> list[str]:
    return kit_words("login", registry, access=access)


def kitmlflow_login_words(registry: str, access: RegistryAccess) -> list[str]:
    return ["kitmlflow", "login", registry, *access.kitmlflow_flags(registry), "-u", "USER", "--password-stdin"]


def pulled_words(reference: str, access: RegistryAccess, directory: str = "DIR") -> list[list[str]]:
    """What a deployer runs for a pushed ModelKit: ``kit pull`` it, or ``kit unpack`` it straight from the registry."""
    return [kit_words("pull", reference, access=access), kit_words("unpack", reference, "-d", directory, access=access)]


def shell_line(words: Sequence[str]) -> str:
    """The words as one line a POSIX shell reads back as exactly these words (placeholders such as DIR stay bare)."""
    return shlex.join(words)
