"""Registry hosts: the REGISTRY of ``login``/``logout``, and which hosts count as loopback. A whole
``registry/repository:tag`` is a :class:`kitmlflow_tui.core.modelkit_reference.ModelKitRef`."""

from __future__ import annotations

import ipaddress

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.modelkit_reference import validate_registry


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
