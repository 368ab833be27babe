"""Registry references: a ``-t`` value that names a registry, and which hosts count as loopback.

The grammar is kit's, applied by ``packing.storage.parse_model_reference``; here only the extra rule of
a push: the reference must name a registry (a first part with ``.`` or ``:``), since kit's default
``localhost`` is local storage, not a server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.packing.storage import (
    DEFAULT_REGISTRY,
    format_reference,
    parse_model_reference,
    validate_registry,
)


@dataclass(frozen=True)
class RegistryRef:
    """``registry/repository:tag`` of a push; ``registry`` is ``host[:port]`` as the user typed it."""

    registry: str
    repository: str
    tag: str

    def __str__(self) -> str:
        return format_reference(self.registry, self.repository, self.tag)

    def with_tag(self, tag: str) -> RegistryRef:
        return parse_registry_reference(format_reference(self.registry, self.repository, tag))


def parse_registry_reference(text: str) -> RegistryRef:
    """A push destination, or exit 2: kit's reference rules, and a registry must be named."""
    registry, repository, tag = parse_model_reference(text)
    if registry == DEFAULT_REGISTRY:  # kit names a registry only by a first part with "." or ":"
        raise BadInputError(
            f"{text.strip()!r} names no registry, so there is nowhere to push it.",
            hint="Name the registry first, e.g. -t registry.example.com/org/model:v1 or -t localhost:5000/model:v1.",
        )
    return RegistryRef(registry, repository, tag)


def parse_registry_host(text: str) -> str:
    """The REGISTRY of ``kitmlflow login`` / ``logout`` (``host[:port]``), or exit 2."""
    raw = text.strip()
    if raw.startswith(("http://", "https://")):
        raise BadInputError(
            f"Give the registry as host[:port], without a scheme: {raw!r}.",
            hint="For a registry that speaks plain HTTP, add --plain-http.",
        )
    return validate_registry(raw.rstrip("/"))


def hostname(registry: str) -> str:
    """The host part of ``host[:port]`` / ``[v6]:port``, without brackets."""
    if registry.startswith("["):
        return registry[1:].partition("]")[0]
    return registry.rpartition(":")[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    """``localhost``, ``127.*`` or ``[::1]`` (by name, as in the URI grammar: nothing is resolved)."""
    host = hostname(registry).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
