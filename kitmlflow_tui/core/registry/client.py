"""An OCI distribution client for one registry, on ``requests``: blobs, uploads, manifests.

Why not the ``oras`` package (ORAS' Python SDK, 0.2.x): its requests retry every failure five times with
sleeps of up to half a minute (a dead registry would take minutes to report), one bearer token is kept
for every scope (a push that mounts from another repository needs two), it has no cross-repository mount,
no client certificates, no progress or cancel hooks, its monolithic upload reads the whole blob into
memory, and its login writes docker's config rather than kit's store. What is needed here is small:
the API calls below, streamed from the blob file in bounded chunks.

Errors: a registry that never answered is unreachable (exit 6); one that answered and then failed or
broke the connection fails the push (exit 9); a refusal of who we are or what we may do is exit 3. The
registry's own words (``errors[].code`` and ``message`` of its answer) are in the message, scrubbed.

Credentials go to the registry's own origin (scheme, host and port) only, and a challenge is learned only from
its own answers: an upload session, a redirect or a blob on another origin gets neither the password nor a
token, and cannot name a token service that would get them. An HTTPS registry's upload is never sent on to
plain HTTP.

Why one module of this size: every call below goes through one ``request`` that owns the token per scope,
the 401 challenge and the translation of a failure into the error family; split apart, each piece would need
that state passed in. The pieces that stand alone already live beside it (``transport``: one HTTP exchange,
bounded and cancellable; ``auth``: challenges and tokens; ``credentials``: kit's stored logins; ``push``: what
a ModelKit push does with these calls; ``reference``: names).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from kitmlflow_tui import __version__
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import (
    AuthError,
    BadInputError,
    CredentialsRefusedError,
    InterruptedByUser,
    KitmlflowError,
    PushError,
    ServerUnreachableError,
    scrub_secrets,
)
from kitmlflow_tui.core.next_commands import RegistryAccess, kit_login_words, kitmlflow_login_words, shell_line
from kitmlflow_tui.core.registry.auth import Authenticator, TokenAnswer, repository_scope
from kitmlflow_tui.core.registry.credentials import CredentialStore, StoredCredential
from kitmlflow_tui.core.registry.reference import hostname, is_loopback
from kitmlflow_tui.core.registry.transport import (
    READ_BLOCK_SIZE,
    Answer,
    AnswerRefused,
    Limits,
    Origin,
    Transport,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))
DEFAULT_CHUNK_SIZE = 100 * 1024 * 1024  # bytes per PATCH, kit's; memory use does not depend on it (bodies stream)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution registry's own manifest limit
MAX_ANSWER_BYTES = 1024 * 1024  # any other answer (an error's text, /v2/, an upload's): a few bytes from a registry
FIRST_BYTE_SECONDS = 300.0  # a registry may take long to answer the PUT that ends a big upload (it hashes the blob)
ANSWER_SECONDS = 600.0
TAGS_PAGE_SIZE = 1000  # tags asked for per page of a tag listing
MAX_LISTED_TAGS = 10_000  # a listing stops there (and says it is truncated)
USER_AGENT = f"kitmlflow/{__version__}"
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
# Registries that take a blob only in one PUT (what kit 1.7 knows, pkg/lib/repo/remote/upload-format.go):
# ghcr.io answers 416 to a PATCH over 4 MiB, Google's registries have no chunked upload, and ECR answers
# 201 after the first chunk.
_MONOLITHIC_REGISTRIES = re.compile(r"ghcr\.io|.*\.pkg\.dev|(.*\.)?gcr\.io|(.*\.)?amazonaws\.com(\.cn)?")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


@dataclass(frozen=True)
class RegistryOptions:
    """Network options of every registry command (kit's flag names), and the limits of every answer."""

    plain_http: bool = False
    tls_verify: bool = True
    cert: Path | None = None  # client certificate (PEM), with key
    key: Path | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    jobs: int = 4  # blobs uploaded at once
    connect_timeout: float = 15.0
    # From a request sent to its answer's status line and headers, and to its last byte (docs: README, "Limits").
    first_byte_seconds: float = field(
        default_factory=lambda: settings.REGISTRY_FIRST_BYTE_SECONDS.seconds(FIRST_BYTE_SECONDS)
    )
    answer_seconds: float = field(default_factory=lambda: settings.REGISTRY_ANSWER_SECONDS.seconds(ANSWER_SECONDS))

    def validate(self) -> RegistryOptions:
        if (self.cert is None) != (self.key is None):
            raise BadInputError(
                "A client certificate needs both --cert and --key (or KITOPS_CLIENT_CERT and KITOPS_CLIENT_KEY)."
            )
        for what, path in (("certificate", self.cert), ("key", self.key)):
            if path is not None and not Path(path).is_file():
                raise BadInputError(f"The client {what} {path} is not a readable file.")
        if self.chunk_size < 1 or self.jobs < 1:
            raise BadInputError("The chunk size and the number of parallel uploads must be positive.")
        return self


@dataclass(frozen=True)
class RemoteManifest:
    """A manifest as the registry holds it: the exact bytes, their digest and media type."""

    digest: str
    media_type: str
    data: bytes

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise PushError(f"The manifest {self.digest} is not a JSON object.")
        return value

    @property
    def config(self) -> dict[str, Any]:
        config = self.json().get("config")
        return config if isinstance(config, dict) else {}

    @property
    def layers(self) -> list[dict[str, Any]]:
        layers = self.json().get("layers")
        return [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []


@dataclass(frozen=True)
class TagListing:
    """A repository's tags, in the registry's order; ``truncated`` when there were more than were read."""

    tags: tuple[str, ...]
    truncated: bool


class _NotTLS(Exception):
    """The server answered a TLS handshake with something else (a plain-HTTP server)."""


class _Stopped(Exception):
    """An upload stopped because another one of the same push failed."""


class FileSlice:
    """``length`` bytes of a file from ``offset``, read block by block as a request body streams it."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        on_bytes: Callable[[int], None] | None = None,
        should_stop: Callable[[], None] | None = None,
    ) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._position = offset
        self._remaining = length
        self._on_bytes = on_bytes
        self._should_stop = should_stop

    def __len__(self) -> int:  # requests takes the Content-Length from here
        return self._remaining

    def read(self, size: int = -1) -> bytes:
        if self._should_stop is not None:
            self._should_stop()
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        if want <= 0:
            return b""
        data = os.pread(self._fd, want, self._position)
        if not data:
            raise PushError("A local blob file ended early: kit's storage changed during the push.")
        self._position += len(data)
        self._remaining -= len(data)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class RegistryClient:
    """One registry: its scheme and TLS settings, its authentication, the distribution API calls."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        credential: StoredCredential | None = None,
        *,
        on_note: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.registry = registry
        self.options = (options or RegistryOptions()).validate()
        self.scheme = "http" if self.options.plain_http else "https"
        self.auth = Authenticator(registry, credential, self._token_request)
        self._on_note = on_note or (lambda message: None)
        self._answered = False  # once the registry answered, a broken connection fails the push (9), not 6
        cert = (str(self.options.cert), str(self.options.key)) if self.options.cert and self.options.key else None
        self._transport = Transport(
            Limits(self.options.connect_timeout, self.options.first_byte_seconds, self.options.answer_seconds),
            verify=_verify_setting(self.options.tls_verify),
            cert=cert,
            user_agent=USER_AGENT,
            cancel=cancel or threading.Event(),
        )

    @classmethod
    def connect(
        cls,
        registry: str,
        options: RegistryOptions | None = None,
        *,
        credentials: CredentialStore | None = None,
        on_note: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RegistryClient:
        """A client with the stored credentials of ``registry``, checked to answer (``GET /v2/``). Setting
        ``cancel`` ends every request in flight at once (``InterruptedByUser``)."""
        store = credentials or CredentialStore.default()
        client = cls(registry, options, store.get(registry), on_note=on_note, cancel=cancel)
        client.ping()
        return client

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}"

    @property
    def access(self) -> RegistryAccess:
        """How this client reaches the registry (the scheme ``ping`` settled on): for the commands printed next."""
        return RegistryAccess(self.scheme == "http", self.options.tls_verify, self.options.cert, self.options.key)

    @property
    def origin(self) -> Origin:
        """The registry's origin: the only one its credentials and tokens go to."""
        return Origin.of(self.base_url)

    # -- the API -------------------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/`` with the credentials: learns the scheme to use and how the registry authenticates.

        A loopback registry that answers plain HTTP is used over HTTP (as docker does, and said in a note);
        any other needs ``--plain-http``: an HTTPS registry is never downgraded behind the user's back.
        """
        try:
            self.request("GET", "/v2/", scopes=())
        except _NotTLS:
            if not is_loopback(self.registry):
                raise ServerUnreachableError(
                    f"The registry {self.registry} does not speak HTTPS.",
                    hint="If it is a plain-HTTP registry, add --plain-http (never used without it, "
                    "except for loopback registries).",
                ) from None
            self.scheme = "http"
            self._on_note(f"{self.registry} answers plain HTTP (a loopback registry): using http://")
            self.request("GET", "/v2/", scopes=())

    def blob_exists(self, repository: str, digest: str, size: int | None = None, *, push: bool = False) -> bool:
        """Whether the repository holds the blob (``HEAD``); with ``size``, of that size."""
        answer = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scopes=self._scopes(repository, push), ok=(200, 404)
        )
        if answer.status == 404:
            return False
        length = answer.headers.get("Content-Length")
        return size is None or length is None or not length.isdigit() or int(length) == size

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> bytes:
        """A small blob (a config), at most ``max_bytes``, checked against its digest."""
        _check_digest(digest)
        data = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scopes=self._scopes(repository), max_bytes=max_bytes
        ).body
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise PushError(f"The registry {self.registry} sent a blob that does not match its digest {digest}.")
        return data

    def get_manifest(self, repository: str, reference: str) -> RemoteManifest | None:
        """The manifest a tag or digest names, or None when the registry has none (bounded, verified)."""
        answer = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scopes=self._scopes(repository),
            headers={"Accept": MANIFEST_ACCEPT},
            ok=(200, 404),
            max_bytes=MAX_MANIFEST_BYTES,
        )
        if answer.status == 404:
            return None
        data = answer.body
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PushError(f"The registry {self.registry} sent a manifest that does not match {reference}.")
        media_type = answer.headers.get("Content-Type", "").split(";")[0].strip() or OCI_MANIFEST
        return RemoteManifest(digest, media_type, data)

    def list_tags(
        self, repository: str, *, limit: int = MAX_LISTED_TAGS, page_size: int = TAGS_PAGE_SIZE
    ) -> TagListing:
        """The repository's tags (``GET /v2/<name>/tags/list``), page by page (``n``, then the ``Link`` the
        registry sends, or ``last`` = the page's last tag; a registry that ignores ``n`` sends them all at once),
        at most ``limit`` of them; every page is bounded in bytes. A repository the registry does not know has no tags. A page that repeats the previous one,
        or a next page on another host, ends the listing as an error rather than a loop or a leak."""
        tags: list[str] = []
        url: str | None = f"/v2/{repository}/tags/list?" + urlencode({"n": page_size})
        seen: set[str] = set()
        while url is not None and len(tags) < limit:
            if url in seen:
                raise PushError(f"The registry {self.registry} sent the same tag page twice ({repository}).")
            seen.add(url)
            answer = self.request(
                "GET", url, scopes=self._scopes(repository), ok=(200, 404), max_bytes=MAX_MANIFEST_BYTES
            )
            if answer.status == 404:
                return TagListing((), False)
            link = answer.headers.get("Link", "")
            try:
                names = json.loads(answer.body).get("tags") or []
            except (ValueError, AttributeError):
                raise PushError(
                    f"The registry {self.registry} sent a tag list of {repository} that is not JSON."
                ) from None
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise PushError(f"The registry {self.registry} sent a tag list of {repository} without names.")
            tags.extend(names)
            url = self._next_tags_page(repository, link, names, page_size)
        return TagListing(tuple(tags[:limit]), url is not None or len(tags) > limit)

    def _next_tags_page(self, repository: str, link: str, names: list[str], page_size: int) -> str | None:
        found = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
        if found:
            target = urljoin(self.base_url + "/", found.group(1))
            if Origin.of(target) != self.origin:
                raise PushError(
                    f"The registry {self.registry} points its next tag page at another host or scheme ({Origin.of(target)})."
                )
            return target
        if len(names) != page_size:  # a short page is the last; a longer one, every tag (distribution 2.8 ignores n)
            return None
        return f"/v2/{repository}/tags/list?" + urlencode({"n": page_size, "last": names[-1]})

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        """Store a manifest under a tag (or its digest); returns its digest, checked against the registry's."""
        return self.put_manifest_answered(repository, reference, data, media_type)[0]

    def put_manifest_answered(
        self, repository: str, reference: str, data: bytes, media_type: str = OCI_MANIFEST
    ) -> tuple[str, Mapping[str, str]]:
        """:meth:`put_manifest`, with the answer's headers (case-insensitive; ``OCI-Subject``: the registry lists a
        referrer)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        answer = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scopes=self._scopes(repository, True),
            headers={"Content-Type": media_type},
            body=lambda: data,
            ok=(200, 201),
        )
        answered = answer.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise PushError(f"The registry {self.registry} stored the manifest as {answered}, not {digest}.")
        return digest, answer.headers

    def get_referrers(self, repository: str, digest: str) -> bytes | None:
        """The referrers API's image index of the manifest ``digest`` (bounded), or None when the registry has no
        referrers API (it answers 404, 400, 405 or 406, or with something that is not an index)."""
        _check_digest(digest)
        answer = self.request(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scopes=self._scopes(repository),
            headers={"Accept": OCI_INDEX},
            ok=(200, 400, 404, 405, 406),
            max_bytes=MAX_MANIFEST_BYTES,
        )
        media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
        return answer.body if answer.status == 200 and media_type == OCI_INDEX else None

    def stream_blob(self, repository: str, digest: str, chunk_size: int = READ_BLOCK_SIZE) -> Iterator[bytes]:
        """A blob's bytes as they arrive, in chunks of at most ``chunk_size`` (the caller hashes and bounds them):
        a layer is read as it streams, never whole in memory. Each chunk must arrive within the first-byte limit
        of the one before; the whole blob has no time limit."""
        _check_digest(digest)
        scopes = self._scopes(repository)
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        try:
            for attempt in (1, 2):
                with self._transport.streamed(
                    url, authorization=self.auth.header(scopes), credentials_for=self.origin, chunk_size=chunk_size
                ) as (status, headers, chunks):
                    challenge = headers.get("WWW-Authenticate")
                    if status == 401 and attempt == 1 and self.auth.challenged(challenge, scopes):
                        continue
                    if status != 200:
                        raise PushError(f"The registry {self.registry} answered HTTP {status} to GET blob {digest}.")
                    yield from chunks
                    return
        except AnswerRefused as exc:
            raise PushError(
                f"Reading the blob {digest} of {self.registry}/{repository} failed: {exc.reason}."
            ) from None
        except requests.RequestException as exc:
            raise PushError(
                f"Reading the blob {digest} of {self.registry}/{repository} failed: {_reason(exc)}."
            ) from None

    def tag(self, repository: str, digest: str, tag: str) -> str:
        """Point ``tag`` at the manifest ``digest`` the repository already holds (one manifest PUT)."""
        manifest = self.get_manifest(repository, digest)
        if manifest is None:
            raise PushError(f"The registry {self.registry} holds no manifest {digest} in {repository}.")
        return self.put_manifest(repository, tag, manifest.data, manifest.media_type)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """``DELETE`` the manifest ``digest`` (and, as the registry does, every tag that names it): False when
        the registry has no such manifest. A registry that does not delete (distribution without
        ``storage.delete.enabled``: 405 UNSUPPORTED) fails with a hint saying so."""
        _check_digest(digest)
        try:  # a token service grants deletes as their own action (distribution checks "delete" alone)
            answer = self.request(
                "DELETE",
                f"/v2/{repository}/manifests/{digest}",
                scopes=(repository_scope(repository, "delete"),),
                ok=(202, 404),
            )
        except PushError as exc:
            if "HTTP 405" in exc.message or "UNSUPPORTED" in exc.message:
                raise PushError(
                    f"The registry {self.registry} does not delete manifests ({exc.message.rstrip('.')}).",
                    hint="Allow deletes on it (distribution: storage.delete.enabled, "
                    "REGISTRY_STORAGE_DELETE_ENABLED=true), or delete the tag there by hand.",
                ) from None
            raise
        return answer.status == 202

    def put_small_blob(self, repository: str, data: bytes) -> str:
        """Store a few bytes as a blob in one ``POST`` + ``PUT`` unless the repository has it; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.blob_exists(repository, digest, len(data), push=True):
            return digest
        location = self._new_upload(repository)
        self.request(
            "PUT",
            _with_query(location, [("digest", digest)]),
            scopes=self._scopes(repository, True),
            headers={"Content-Type": "application/octet-stream"},
            body=lambda: data,
            ok=(201, 204),
        )
        return digest

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        path: Path,
        *,
        mount_from: tuple[str, ...] = (),
        on_bytes: Callable[[int], None] | None = None,
        should_stop: Callable[[], None] | None = None,
    ) -> str:
        """Send a blob the registry lacks: ``"mounted"`` from another repository, else ``"uploaded"``.

        A blob of ``chunk_size`` bytes or more goes as a session of PATCHes of ``chunk_size`` bytes, then the
        PUT that names the digest; a smaller one (or any, to a registry that takes no chunks) in that PUT
        alone. Bodies stream from ``path``, never more than a block in memory; the registry checks the digest.
        """
        _check_digest(digest)
        location = None
        for source in mount_from:
            location = self._start_upload(repository, mount=(digest, source))
            if location is None:
                return "mounted"
            break  # a refused mount opened an upload session: use it
        if location is None:
            location = self._new_upload(repository)
        offset = 0
        chunked = size >= self.options.chunk_size and not _MONOLITHIC_REGISTRIES.fullmatch(
            hostname(self.registry).lower()
        )
        while chunked and offset < size:
            length = min(self.options.chunk_size, size - offset)

            def body(offset: int = offset, length: int = length) -> FileSlice:
                return FileSlice(path, offset, length, on_bytes, should_stop)

            answer = self.request(
                "PATCH",
                location,
                scopes=self._scopes(repository, True),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
                body=body,
                ok=(202,),
            )
            location = self._location(answer)
            received = answer.headers.get("Range", "")
            if received and received != f"0-{offset + length - 1}":
                raise PushError(
                    f"The registry {self.registry} holds bytes {received} of {digest} after a chunk that ended "
                    f"at {offset + length - 1}."
                )
            offset += length

        def rest() -> FileSlice | bytes:
            return FileSlice(path, offset, size - offset, on_bytes, should_stop) if offset < size else b""

        answer = self.request(
            "PUT",
            _with_query(location, [("digest", digest)]),
            scopes=self._scopes(repository, True),
            headers={"Content-Type": "application/octet-stream"},
            body=rest,
            ok=(201, 204),
        )
        answered = answer.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise PushError(f"The registry {self.registry} stored {digest} as {answered}.")
        return "uploaded"

    def _new_upload(self, repository: str) -> str:
        """``POST .../blobs/uploads/`` without a mount: the new session's URL (a 201 here is no session)."""
        location = self._start_upload(repository)
        if location is None:
            raise PushError(f"The registry {self.registry} answered a new upload with 201 Created and no session.")
        return location

    def _start_upload(self, repository: str, *, mount: tuple[str, str] | None = None) -> str | None:
        """``POST .../blobs/uploads/``: the new session's URL, or None when the mount made the blob appear."""
        scopes = self._scopes(repository, True)
        url = f"/v2/{repository}/blobs/uploads/"
        if mount is not None:
            digest, source = mount
            url += "?" + urlencode({"mount": digest, "from": source})
            scopes += (repository_scope(source, "pull"),)
        try:
            answer = self.request("POST", url, scopes=scopes, body=lambda: b"", ok=(201, 202))
        except AuthError:
            if mount is None:
                raise
            return self._new_upload(repository)  # no pull right on the source: upload instead
        if answer.status == 201:
            return None
        return self._location(answer)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _scopes(self, repository: str, push: bool = False) -> tuple[str, ...]:
        return (repository_scope(repository, "pull", "push") if push else repository_scope(repository, "pull"),)

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        ok: tuple[int, ...] = (200,),
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Answer:
        """One API call with authentication (one retry after the registry's own challenge); the whole answer,
        at most ``max_bytes`` of body; error statuses raised as ours."""
        target = url if "://" in url else self.base_url + url
        for attempt in (1, 2):
            answer = self._exchange(method, target, headers, body, scopes, max_bytes)
            # Only the registry itself says how to authenticate to it: a 401 from another origin (an upload
            # session or a blob elsewhere) must not name a token service that would then get the credentials.
            from_the_registry = Origin.of(answer.url) == self.origin
            challenge = answer.headers.get("WWW-Authenticate")
            if answer.status == 401 and attempt == 1 and from_the_registry and self.auth.challenged(challenge, scopes):
                continue
            break
        if answer.status in ok:
            return answer
        self._raise_for(answer, method)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        body: Callable[[], Any] | None,
        scopes: tuple[str, ...],
        max_bytes: int,
    ) -> Answer:
        origin = self.origin
        authorization = self.auth.header(scopes) if Origin.of(url) == origin else None
        data = body() if body is not None else None
        try:
            answer = self._transport.exchange(
                method,
                url,
                headers=headers,
                body=data,
                authorization=authorization,
                credentials_for=origin,
                max_bytes=max_bytes,
            )
        except (InterruptedByUser, _Stopped, PushError):
            raise
        except AnswerRefused as exc:
            if self._answered:
                raise PushError(f"The registry {self.registry} cannot be used as it answers: {exc.reason}.") from None
            raise ServerUnreachableError(f"The registry {self.registry} cannot be used: {exc.reason}.") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            if _looks_like_plain_http(exc) and self.scheme == "https":
                raise _NotTLS() from None
            if isinstance(exc, requests.exceptions.SSLError):
                raise self._tls_error(exc) from None
            reason = _reason(exc)
            if self._answered:
                raise PushError(f"The connection to the registry {self.registry} broke: {reason}.") from None
            raise ServerUnreachableError(f"Cannot reach the registry {self.registry}: {reason}.") from None
        except requests.RequestException as exc:
            raise PushError(f"A request to the registry {self.registry} failed: {_reason(exc)}.") from None
        finally:
            if isinstance(data, FileSlice):
                data.close()
        self._answered = True
        return answer

    def _token_request(
        self, method: str, url: str, headers: dict[str, str], params: list[tuple[str, str]], form: dict | None
    ) -> TokenAnswer:
        split = urlsplit(url)
        if split.scheme not in ("http", "https"):
            raise AuthError(f"The registry {self.registry} names a token service that is not a URL: {url!r}.")
        if split.scheme == "http" and not (self.options.plain_http or is_loopback(split.netloc)):
            raise AuthError(
                f"The registry {self.registry} names a plain-HTTP token service ({split.netloc}): credentials "
                "would travel unencrypted.",
                hint="If that is intended, add --plain-http.",
            )
        from kitmlflow_tui.core.registry.auth import MAX_TOKEN_RESPONSE_BYTES

        send_headers = dict(headers)
        authorization = send_headers.pop("Authorization", None)
        if form is not None:
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        target = _with_query(url, params) if params else url
        try:
            answer = self._transport.exchange(
                method,
                target,
                headers=send_headers,
                body=urlencode(form).encode() if form is not None else None,
                authorization=authorization,
                credentials_for=Origin.of(url),  # the token service the registry named; only it gets them
                max_bytes=MAX_TOKEN_RESPONSE_BYTES,
            )
        except AnswerRefused as exc:
            raise ServerUnreachableError(
                f"The token service of {self.registry} ({split.netloc}) cannot be used: {exc.reason}."
            ) from None
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(exc) from None
        except requests.RequestException as exc:
            raise ServerUnreachableError(
                f"Cannot reach the token service of {self.registry} ({split.netloc}): {_reason(exc)}."
            ) from None
        return TokenAnswer(answer.status, answer.body)

    def _location(self, answer: Answer) -> str:
        """Where an upload goes on: the answer's ``Location``, never on from HTTPS to plain HTTP."""
        location = answer.headers.get("Location")
        if not location:
            raise PushError(f"The registry {self.registry} opened an upload without saying where (no Location).")
        target = urljoin(answer.url, location)
        if self.origin.weakened_by(Origin.of(target)):
            split = urlsplit(target)
            raise PushError(
                f"The registry {self.registry} sent the upload on to plain HTTP ({split.scheme}://{split.netloc}"
                f"{split.path}); refused: the blob and the credentials would travel unencrypted.",
                hint="A proxy that ends TLS in front of the registry must tell it so (X-Forwarded-Proto: https), "
                "or the registry's configuration must name its public URL (http.host).",
            )
        return target

    def _tls_error(self, exc: Exception) -> KitmlflowError:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return ServerUnreachableError(
                f"The TLS certificate of the registry {self.registry} cannot be verified: {_tls_reason(text)}.",
                hint="Trust its CA (SSL_CERT_FILE or REQUESTS_CA_BUNDLE names a PEM bundle), or add --no-tls-verify.",
            )
        if any(marker in text.lower() for marker in ("certificate required", "bad certificate", "unknown ca")):
            return AuthError(
                f"The registry {self.registry} refused the TLS connection: it wants a client certificate it trusts "
                f"({_tls_reason(text)}).",
                hint="Give one with --cert PATH --key PATH (or KITOPS_CLIENT_CERT / KITOPS_CLIENT_KEY).",
            )
        if self._answered:
            return PushError(f"The TLS connection to the registry {self.registry} failed: {_tls_reason(text)}.")
        return ServerUnreachableError(f"No TLS connection to the registry {self.registry}: {_tls_reason(text)}.")

    def _raise_for(self, answer: Answer, method: str) -> None:
        status = answer.status
        detail = _registry_error(answer.body)
        what = f"{method} {urlsplit(answer.url).path}"
        if Origin.of(answer.url) != self.origin:
            elsewhere = Origin.of(answer.url)
            raise PushError(
                f"{elsewhere} (where the registry {self.registry} sent {what}) answered HTTP {status}"
                + (f": {detail}." if detail else ".")
                + (" Credentials go to the registry only." if status in (401, 403) else "")
            )
        if status == 401:
            raise CredentialsRefusedError(
                f"The registry {self.registry} refused {self.auth.who()} ({what}: {detail or 'unauthorized'}).",
                hint=f"Log in: {shell_line(kitmlflow_login_words(self.registry, self.access))} "
                f"(or {shell_line(kit_login_words(self.registry, self.access))}); "
                "credentials are read from kit's credentials.json, then docker's config.",
            )
        if status == 403:
            raise AuthError(
                f"The registry {self.registry} does not allow {self.auth.who()} to do this "
                f"({what}: {detail or 'denied'}).",
                hint="Check your rights on the repository, or log in as another user: "
                f"{shell_line(kitmlflow_login_words(self.registry, self.access))}.",
            )
        raise PushError(
            f"The registry {self.registry} answered HTTP {status} to {what}" + (f": {detail}." if detail else ".")
        )


# -- helpers ---------------------------------------------------------------------------------------------
def _verify_setting(tls_verify: bool) -> bool | str:
    if not tls_verify:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return False
    # Like kit (Go) and OpenSSL: a CA bundle named by the environment, else the default trust store.
    for setting in (settings.CA_BUNDLE, settings.CA_FILE):
        value = setting.raw()
        if value and os.path.isfile(value):
            return value
    return True


def _check_digest(digest: str) -> None:
    if not _DIGEST_RE.fullmatch(digest):
        raise PushError(f"Unexpected digest {digest!r}.")


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    split = urlsplit(url)
    query = parse_qsl(split.query, keep_blank_values=True) + params
    return urlunsplit(split._replace(query=urlencode(query)))


def _registry_error(body: bytes) -> str:
    """The distribution spec's ``{"errors": [{"code", "message", "detail"}]}`` as one short line, scrubbed;
    another body's first line of text."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list):
        parts = [
            ": ".join(
                part for part in (e.get("code"), e.get("message"), e.get("detail")) if isinstance(part, str) and part
            )
            for e in errors
            if isinstance(e, dict)
        ]
        return _bounded(scrub_secrets("; ".join(part for part in parts if part)), 500)
    text = body[:1000].decode("utf-8", errors="replace")
    return _bounded(scrub_secrets(" ".join(text.split())), 200)


def _bounded(text: str, limit: int) -> str:
    """A registry's text, cut (after scrubbing, so a secret is never cut in two and left half-readable)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    found = _ERRNO_RE.findall(text)
    if found:
        return found[-1].strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    for marker in ("RemoteDisconnected", "Connection aborted", "Connection reset", "Broken pipe", "IncompleteRead"):
        if marker in text:
            return marker.lower().replace("remotedisconnected", "the registry closed the connection")
    return scrub_secrets(text)[:200]


def _tls_reason(text: str) -> str:
    found = re.findall(r"\[SSL: [A-Z_]+\] ([^(')]+)", text) or re.findall(r"\] ([a-z][^(')]+) \(_ssl", text)
    return found[-1].strip() if found else scrub_secrets(text)[:200]


def _looks_like_plain_http(exc: BaseException) -> bool:
    text = str(exc)
    return "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text
