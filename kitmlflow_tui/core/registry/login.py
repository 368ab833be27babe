"""``kitmlflow login`` / ``logout``: check credentials against the registry, then keep them in kit's store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.registry.client import RegistryClient, RegistryOptions
from kitmlflow_tui.core.registry.credentials import Credential, CredentialStore, StoredCredential


@dataclass(frozen=True)
class LoginResult:
    registry: str
    stored_in: str
    verified: bool  # False when the registry asks for no credentials at all (they are stored anyway, as kit does)


def login(
    registry: str,
    credential: Credential,
    options: RegistryOptions | None = None,
    *,
    store: CredentialStore | None = None,
    on_note: Callable[[str], None] | None = None,
) -> LoginResult:
    """``GET /v2/`` with the credential (Basic, or the token flow the registry asks for); stored when accepted."""
    if not credential.username:
        raise BadInputError("A login needs a user name (-u USER).")
    store = store or CredentialStore.default()
    with RegistryClient(registry, options, StoredCredential(credential, "the command line"), on_note=on_note) as client:
        client.ping()  # raises AuthError (3) when the registry or its token service refuses the credential
        verified = bool(client.auth.scheme)
    return LoginResult(registry, store.put(registry, credential), verified)


def logout(registry: str, *, store: CredentialStore | None = None) -> tuple[bool, str]:
    """Forget the registry in kit's store: (whether anything was stored, the store's path)."""
    store = store or CredentialStore.default()
    return store.delete(registry), str(store.kit_file)
