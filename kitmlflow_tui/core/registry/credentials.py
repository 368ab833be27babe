"""Registry credentials: kit's store first (``$KITOPS_HOME/credentials.json``), docker's config as a fallback.

Both files are docker's config format, ``{"auths": {SERVER: {"auth": base64("user:pass")}}}``, optionally with
``identitytoken`` (an OAuth2 refresh token), ``credsStore`` (one credential helper for every server) and
``credHelpers`` (a helper per server). This is what kit 1.7 does through oras-go's credential store: it reads
and writes its own file and only reads docker's. A credential helper (``docker-credential-NAME``) gets the server
on stdin and answers on stdout, so no secret ever sits on a child's argv.

Parallel CI jobs share one ``KITOPS_HOME``: every login and logout reads the file, changes one entry and writes
it back under a lock (``locking``, a ``.credentials.json.lock`` next to it, removed when done), and the file
is replaced atomically (a private temporary file, fsync, rename), so no process loses another's entry and no
reader sees half a file. kit itself writes the file without that lock.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kitmlflow_tui.core import locking, settings
from kitmlflow_tui.core.errors import BadInputError, KitmlflowError, register_secret

CREDENTIALS_FILE_NAME = "credentials.json"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_HELPER_OUTPUT_BYTES = 1024 * 1024
HELPER_TIMEOUT_SECONDS = 30
# docker (and oras-go) file Docker Hub's credentials under its v1 index address.
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_TOKEN_USERNAME = "<token>"  # a helper's username meaning "the secret is an identity token"
T = TypeVar("T")


@dataclass(frozen=True)
class Credential:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # docker's "identitytoken": a refresh token for the registry's token service

    def __post_init__(self) -> None:
        for secret in (self.password, self.identity_token):
            register_secret(secret)
        if self.password:
            register_secret(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())

    def __repr__(self) -> str:  # never a secret in a traceback or a debug print
        return f"Credential(username={self.username!r}, secret={'***' if self.password or self.identity_token else ''})"


@dataclass(frozen=True)
class StoredCredential:
    credential: Credential
    source: str  # the file (or "FILE via docker-credential-NAME") it came from, for messages


def server_key(registry: str) -> str:
    return _DOCKER_HUB_KEY if registry.lower() in _DOCKER_HUB_HOSTS else registry


def _key_host(key: str) -> str:
    # docker's legacy keys are URLs ("https://host/v1/"); a key's host is what a registry name matches.
    return key.split("://", 1)[-1].split("/", 1)[0].lower()


class CredentialStore:
    """kit's credentials file (read and written) and docker's config (read only)."""

    def __init__(self, kit_file: Path, docker_file: Path | None = None) -> None:
        self.kit_file = kit_file
        self.docker_file = docker_file

    @classmethod
    def default(cls, kit_home: Path | None = None) -> CredentialStore:
        from kitmlflow_tui.core.packing.storage import resolve_kit_home

        docker_dir = settings.DOCKER_CONFIG.raw() or os.path.join(os.path.expanduser("~"), ".docker")
        return cls(resolve_kit_home(kit_home) / CREDENTIALS_FILE_NAME, Path(docker_dir) / "config.json")

    # reading -----------------------------------------------------------------------------------
    def get(self, registry: str) -> StoredCredential | None:
        for path in (self.kit_file, self.docker_file):
            if path is None:
                continue
            found = _lookup(_read_config(path), registry, path)
            if found is not None:
                return found
        return None

    # writing (kit's file only) ---------------------------------------------------------------------
    def put(self, registry: str, credential: Credential) -> str:
        """Store ``credential`` for ``registry``; returns where it went (for the message)."""

        def store(config: dict[str, Any]) -> tuple[str, bool]:
            key = server_key(registry)
            helper = _helper_for(config, registry)
            if helper:
                payload = {"ServerURL": key, "Username": credential.username, "Secret": credential.password}
                _run_helper(helper, "store", json.dumps(payload))
                return f"{self.kit_file} via docker-credential-{helper}", False
            auths = config.setdefault("auths", {})
            if not isinstance(auths, dict):
                raise KitmlflowError(f"{self.kit_file}: 'auths' is not an object; fix or delete the file.")
            for old in [k for k in auths if k != key and _key_host(k) == _key_host(key)]:
                del auths[old]
            token = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
            auths[key] = {"auth": token}
            return str(self.kit_file), True

        return self._update(store)

    def delete(self, registry: str) -> bool:
        """Forget ``registry`` in kit's file (and its helper); False when nothing was stored for it."""

        def forget(config: dict[str, Any]) -> tuple[bool, bool]:
            removed = False
            helper = _helper_for(config, registry)
            if helper:
                with contextlib.suppress(KitmlflowError):  # a helper's "not found" is nothing to erase
                    _run_helper(helper, "erase", server_key(registry))
                    removed = True
            auths = config.get("auths")
            keys: list[str] = []
            if isinstance(auths, dict):
                keys = [key for key in auths if _key_host(key) == _key_host(server_key(registry))]
                for key in keys:
                    del auths[key]
            return removed or bool(keys), bool(keys)

        return self._update(forget)

    def _update(self, change: Callable[[dict[str, Any]], tuple[T, bool]]) -> T:
        """Read kit's file, ``change`` it (which says whether to write it back) and write it, all under the lock."""
        try:
            self.kit_file.parent.mkdir(parents=True, exist_ok=True)
            lock = locking.locked(self.kit_file.with_name(f".{self.kit_file.name}.lock"), remove_when_done=True)
            with lock:
                config = _read_config(self.kit_file)
                result, changed = change(config)
                if changed:
                    _write_private(self.kit_file, config)
        except OSError as exc:
            raise KitmlflowError(f"Cannot write the credentials file {self.kit_file}: {exc.strerror or exc}.") from None
        return result


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInputError(f"Cannot read the credentials file {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise BadInputError(f"The credentials file {path} is larger than {MAX_CONFIG_BYTES} bytes; not read.")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"The credentials file {path} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    except ValueError:  # not UTF-8 (nor UTF-16/32): json.loads raises UnicodeDecodeError, which has no line
        raise BadInputError(f"The credentials file {path} is not valid JSON (not UTF-8 text).") from None
    if not isinstance(config, dict):
        raise BadInputError(f"The credentials file {path} is not a JSON object.")
    return config


def _helper_for(config: dict[str, Any], registry: str) -> str:
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _key_host(key) == _key_host(server_key(registry)) and isinstance(name, str) and name:
                return name
    store = config.get("credsStore")
    return store if isinstance(store, str) else ""


def _lookup(config: dict[str, Any], registry: str, path: Path) -> StoredCredential | None:
    helper = _helper_for(config, registry)
    if helper:
        found = _helper_get(helper, server_key(registry))
        if found is not None:
            return StoredCredential(found, f"{path} via docker-credential-{helper}")
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = _key_host(server_key(registry))
    entries = [auths[server_key(registry)]] if server_key(registry) in auths else []
    entries += [entry for key, entry in auths.items() if key != server_key(registry) and _key_host(key) == wanted]
    for entry in entries:
        credential = _from_entry(entry, path)
        if credential is not None:
            return StoredCredential(credential, str(path))
    return None


def _from_entry(entry: Any, path: Path) -> Credential | None:
    if not isinstance(entry, dict):
        return None
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise BadInputError(f"A stored credential in {path} is not valid base64 'user:password'.") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise BadInputError(f"A stored credential in {path} is not of the form 'user:password'.")
    identity = str(entry.get("identitytoken") or "")
    if not (username or password or identity):
        return None
    return Credential(username, password, identity)


def _helper_get(helper: str, server: str) -> Credential | None:
    try:
        answer = _run_helper(helper, "get", server)
    except KitmlflowError:
        return None  # "credentials not found", or a helper that is not installed: nothing stored there
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    username, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret)
    return Credential(username, secret) if (username or secret) else None


def _run_helper(helper: str, action: str, stdin: str) -> str:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise KitmlflowError(f"The credential helper docker-credential-{helper} is not installed.")
    try:
        done = subprocess.run(
            [program, action], input=stdin.encode(), capture_output=True, timeout=HELPER_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KitmlflowError(f"The credential helper docker-credential-{helper} failed: {exc}.") from None
    if done.returncode != 0:
        raise KitmlflowError(
            f"docker-credential-{helper} {action} failed: {done.stdout[:200].decode(errors='replace').strip()}"
        )
    return done.stdout[:MAX_HELPER_OUTPUT_BYTES].decode(errors="replace")


def _write_private(path: Path, config: dict[str, Any]) -> None:
    """Replace ``path`` with ``config`` atomically, readable by the owner only (it holds secrets): a temporary
    file created 0600, fsynced, renamed over it, then the folder fsynced so the rename survives a crash."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent="\t")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
