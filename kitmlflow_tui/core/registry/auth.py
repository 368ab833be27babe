"""Registry authentication: the ``WWW-Authenticate`` challenge, Basic, and the Bearer token flow.

A registry says how it wants to be called in the challenge of its first 401 (``GET /v2/`` learns it):
``Basic realm=...`` (send the user and password on every request) or ``Bearer realm=URL,service=S,scope=...``
(ask the token service at URL for a token for S and the scopes, with Basic credentials, an OAuth2 refresh token,
or nothing for an anonymous token, then send ``Authorization: Bearer TOKEN``). Tokens are cached per set of
scopes until shortly before they expire; a request names the scopes it needs
(``repository:org/model:pull,push``) so that every request after the first carries a token at once and a
streamed upload is never answered 401 after its body was sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kitmlflow_tui.core.errors import AuthError, CredentialsRefusedError, PushError, register_secret
from kitmlflow_tui.core.registry.credentials import Credential, StoredCredential

DEFAULT_TOKEN_SECONDS = 60  # the token spec's default when the answer has no expires_in
TOKEN_EXPIRY_MARGIN_SECONDS = 10
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
OAUTH_CLIENT_ID = "kitmlflow"

_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    realm: str = ""
    service: str = ""
    scopes: tuple[str, ...] = ()


def parse_challenge(header: str) -> Challenge | None:
    """The first Basic or Bearer challenge of a ``WWW-Authenticate`` value (RFC 7235), else None."""
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params: dict[str, str] = {}
    for key, value in _PARAM_RE.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(key.lower(), value)
    return Challenge(scheme, params.get("realm", ""), params.get("service", ""), tuple(params.get("scope", "").split()))


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


@dataclass
class _Token:
    value: str
    expires_at: float


# What the authenticator needs from the client: GET/POST the token service with the client's TLS settings.
TokenRequest = Callable[[str, str, dict[str, str], list[tuple[str, str]], dict[str, str] | None], "TokenAnswer"]


@dataclass(frozen=True)
class TokenAnswer:
    status: int
    body: bytes


class Authenticator:
    """How to authenticate to one registry, learned from its challenge; tokens cached per scope set."""

    def __init__(self, registry: str, stored: StoredCredential | None, request_token: TokenRequest) -> None:
        self.registry = registry
        self.stored = stored
        self._request_token = request_token
        self._challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()

    @property
    def credential(self) -> Credential | None:
        return self.stored.credential if self.stored else None

    @property
    def scheme(self) -> str:
        return self._challenge.scheme if self._challenge else ""

    def who(self) -> str:
        credential = self.credential
        if credential is None:
            return "an anonymous request"
        name = f"user {credential.username!r}" if credential.username else "the stored token"
        return f"{name} (from {self.stored.source})" if self.stored else name

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value for a request needing ``scopes``, once the registry's scheme is known."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credential = self.credential
            if credential is None or not (credential.username or credential.password):
                return None
            return "Basic " + _basic(credential)
        return "Bearer " + self._token(frozenset(scopes) | frozenset(challenge.scopes))

    def challenged(self, header: str | None, scopes: tuple[str, ...]) -> bool:
        """Learn from a 401's challenge (dropping a token it refused); True when one retry is worth it."""
        challenge = parse_challenge(header or "")
        if challenge is None:
            return False
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(frozenset(scopes) | frozenset(challenge.scopes), None)
        if challenge.scheme == "basic":
            return self.credential is not None and bool(self.credential.username or self.credential.password)
        return True

    # -- the token flow ------------------------------------------------------------------------------
    def _token(self, scopes: frozenset[str]) -> str:
        with self._fetch_lock:  # parallel uploads needing the same scopes wait for one token request
            with self._lock:
                cached = self._tokens.get(scopes)
                if cached and cached.expires_at > time.monotonic() + TOKEN_EXPIRY_MARGIN_SECONDS:
                    return cached.value
            token = self._fetch_token(scopes)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _fetch_token(self, scopes: frozenset[str]) -> _Token:
        challenge = self._challenge
        assert challenge is not None
        if not challenge.realm:
            raise AuthError(f"The registry {self.registry} asks for a token but names no token service (realm).")
        answer = self._ask_token_service(challenge, scopes)
        if answer.status in (401, 403):
            raise CredentialsRefusedError(
                f"The token service of {self.registry} refused {self.who()} (HTTP {answer.status})."
            )
        if answer.status != 200:
            raise PushError(f"The token service of {self.registry} answered HTTP {answer.status}.")
        return self._token_of(answer.body)

    def _ask_token_service(self, challenge: Challenge, scopes: frozenset[str]) -> TokenAnswer:
        """A refresh token is exchanged by POST; else a GET, with the user's password if there is one."""
        credential = self.credential
        headers = {"Accept": "application/json"}
        if credential is not None and credential.identity_token:
            # OAuth2 refresh token (docker's "identitytoken"): POSTed as a form, as docker and oras do.
            form = {"grant_type": "refresh_token", "refresh_token": credential.identity_token}
            form.update(client_id=OAUTH_CLIENT_ID, **({"service": challenge.service} if challenge.service else {}))
            form["scope"] = " ".join(sorted(scopes))
            return self._request_token("POST", challenge.realm, headers, [], form)
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", scope) for scope in sorted(scopes)]
        if credential is not None and (credential.username or credential.password):
            headers["Authorization"] = "Basic " + _basic(credential)
        return self._request_token("GET", challenge.realm, headers, params, None)

    def _token_of(self, body: bytes) -> _Token:
        """The token of a token service's answer (``token``, else OAuth2's ``access_token``), kept secret."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        value = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise PushError(f"The token service of {self.registry} answered without a token.")
        register_secret(value)
        if isinstance(data.get("refresh_token"), str):
            register_secret(data["refresh_token"])
        lifetime = data.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_TOKEN_SECONDS
        return _Token(value, time.monotonic() + seconds)


def _basic(credential: Credential) -> str:
    return base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
