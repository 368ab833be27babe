"""Registries: references, kit's credential store, authentication, the OCI distribution client, push.

The API other steps use (``sync`` among them)::

    client = RegistryClient.connect("registry.example.com", RegistryOptions())   # GET /v2/, credentials
    manifest = client.get_manifest("org/model", "v1")         # RemoteManifest | None (bounded, verified)
    config = client.get_blob("org/model", manifest.config["digest"])   # bytes, bounded, verified
    client.tag("org/model", manifest.digest, "champion")      # point a tag at a manifest it holds
    push_modelkit("registry.example.com/org/model:v1")        # a local ModelKit -> its registry

Nothing here prints; errors are the family of ``errors`` (3 auth, 6 unreachable, 9 push failed).
"""

from kitmlflow_tui.core.registry.client import RegistryClient, RegistryOptions, RemoteManifest
from kitmlflow_tui.core.registry.credentials import Credential, CredentialStore, StoredCredential
from kitmlflow_tui.core.registry.login import LoginResult, login, logout
from kitmlflow_tui.core.registry.push import PushResult, push_modelkit
from kitmlflow_tui.core.registry.reference import is_loopback, parse_registry_host

__all__ = [
    "Credential",
    "CredentialStore",
    "LoginResult",
    "PushResult",
    "RegistryClient",
    "RegistryOptions",
    "RemoteManifest",
    "StoredCredential",
    "is_loopback",
    "login",
    "logout",
    "parse_registry_host",
    "push_modelkit",
]
