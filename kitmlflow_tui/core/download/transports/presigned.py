"""Presigned URLs: a proxied cloud store's large files read straight from the store, in parallel ranges.

An ``mlflow server --artifacts-destination s3://...`` fetches a whole object into a temporary file for every
request it proxies, ranged or not, so through the proxy a 50 GB file is one serial stream (and a resumed or
split range costs the server the whole object again). MLflow ≥ 3.9 (checked against 3.17.2) offers a way
around it: ``/api/3.0/mlflow/server-info`` says ``multipart_downloads_enabled`` when the proxied store can
sign URLs, and ``GET /api/2.0/mlflow-artifacts/presigned/<path>`` answers ``{"url", "headers", "file_size"}``
with a URL the client reads itself. MLflow's own client then reads the object in parallel ranges from that
URL; so does kitmlflow, through the same transfer engine as every other byte (stall watch, retries from the
byte reached, size checks, the range journal).

``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD`` decides as it does for MLflow's client: ``false`` never asks, ``true``
asks without consulting server-info; unset follows server-info. Anything that goes wrong on the presigned side
(no such endpoint, a refused or expired URL, an answer of the wrong status, range or size) sends that file back
through the proxy: presigned URLs can make a download faster, never fail it. An expired URL is asked for again
before it is dropped. The store's answers name their own version ("store etag ..."), never the proxy's, so a
file that goes back to the proxy half-way starts over there instead of joining two sources' bytes.

The server decides the URL and its headers, so neither is taken as it comes:
- the store is sent only the headers a store reads (``x-amz-*``, ``x-ms-*``, ``x-goog-*``: encryption keys,
  API versions), never ``Authorization``, ``Cookie``, ``Host``, ``Proxy-*`` or anything else the server names;
- a URL whose host resolves to a loopback address (unless the tracking server is on loopback itself: a local
  test set-up signs URLs of a local store), a link-local one (``169.254.0.0/16``, ``fe80::/10``: the cloud
  metadata services), an unspecified one (``0.0.0.0``, ``::``) or a multicast one is not read: that file goes
  through the proxy. Redirects are not followed (a redirect would lead past that check). The host is resolved
  again when connecting, so a name whose address changes in between (DNS rebinding) is not caught.

The URL carries a signature: no message names it (failures say the file and the status), and
``scrub_secrets`` masks ``X-Amz-Signature`` besides.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kitmlflow_tui.core.catalogue import ArtifactFile, iter_body
from kitmlflow_tui.core.download.transports.base import (
    CHUNK_BYTES,
    CONNECT_SECONDS,
    RangeMismatch,
    ShortRange,
    TransientTransferError,
    VersionCallback,
    bounded,
    check_partial,
    check_whole,
    encode_path,
    range_header,
    stall_seconds,
)
from kitmlflow_tui.core.download.transports.versions import ObjectVersion, http_version, if_range
from kitmlflow_tui.core.download.transports.watchdog import Watch

# Smaller files go through the proxy: one more request per file would cost more than it saves.
PRESIGNED_MIN_BYTES = 8 * 1024 * 1024
SERVER_INFO_ENDPOINT = "/api/3.0/mlflow/server-info"
PRESIGNED_ENDPOINT = "/mlflow-artifacts/presigned"
MAX_ANSWER_BYTES = 1024 * 1024  # a URL and a few headers; anything larger is not an answer of MLflow's
# A URL is asked for again this long before the end of its life (MLflow signs for 300 s by default).
REFRESH_MARGIN_SECONDS = 30.0
# Refusals in a row (expired, signature) before the file goes back to the proxy for good.
MAX_REFUSALS = 2
SOURCE = "store"  # the first word of the versions a presigned answer names
# The headers a store reads on a download (S3's, Azure's and Google Cloud's own: encryption keys, API versions).
STORE_HEADER_PREFIXES = ("x-amz-", "x-ms-", "x-goog-")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def store_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of the server's answer a store needs, and nothing else (no credentials, no ``Host``)."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(STORE_HEADER_PREFIXES) and "\r" not in value and "\n" not in value
    }


def address_refusal(address: str, *, loopback_allowed: bool) -> str | None:
    """Why a store at this IP address is not read (None: it may be)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") names no other address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback and not loopback_allowed:
        return "a loopback address while the tracking server is not on loopback"
    return None


def _addresses(host: str, port: int | None) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)]


def url_refusal(url: str, *, loopback_allowed: bool) -> str | None:
    """Why a presigned URL is not read (None: it may be): its host resolves to an address ``address_refusal``
    refuses, or to none."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
        if not host:
            return "it names no host"
        addresses = _addresses(host, port)
    except (ValueError, OSError, UnicodeError):
        return "its host does not resolve"
    for address in addresses:
        if reason := address_refusal(address, loopback_allowed=loopback_allowed):
            return f"its host resolves to {reason}"
    return None if addresses else "its host does not resolve"


def on_loopback(url: str) -> bool:
    """Whether every address of the URL's host is a loopback one."""
    try:
        parts = urlsplit(url)
        addresses = _addresses(parts.hostname or "", parts.port)
    except (ValueError, OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


@dataclass
class PresignedLink:
    url: str
    headers: dict[str, str]
    fetched: float  # time.monotonic() when the server signed it


@dataclass
class _FileState:
    link: PresignedLink | None = None
    refusals: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class PresignedUrls:
    """The presigned side of one proxied store root: whether the server offers it, and a URL per file."""

    def __init__(self, api_base: str | None, root: str) -> None:
        """``api_base``: the proxy's ``.../api/2.0`` (None: not MLflow's artifact proxy, never presigned);
        ``root``: the run's artifact root below the proxy's endpoint."""
        from mlflow.utils.credentials import get_default_host_creds

        self._root = root
        self._api_base = api_base or ""
        self._loopback_allowed: bool | None = None  # whether the tracking server is on loopback (asked once)
        self._api_creds = get_default_host_creds(api_base) if api_base else None
        self._server_creds = get_default_host_creds(api_base.removesuffix("/api/2.0")) if api_base else None
        self._enabled: bool | None = None if api_base else False
        self._lock = threading.Lock()  # the per-file states and the session; never held across a request
        self._decide_lock = threading.Lock()
        self._files: dict[str, _FileState] = {}
        self._session: Any = None

    # -- whether to use it ------------------------------------------------------------------------------
    def wanted(self, file: ArtifactFile) -> bool:
        """Whether ``file`` should be read through a presigned URL (asks the server once, on first use)."""
        if (file.size or 0) < PRESIGNED_MIN_BYTES or not self._offered():
            return False
        state = self._state(file)
        return state.refusals < MAX_REFUSALS

    def has_link(self, file: ArtifactFile) -> bool:
        """A URL is in hand for ``file`` (no request): its ranges are cheap to read in parallel."""
        with self._lock:
            state = self._files.get(file.remote_path)
        return state is not None and state.link is not None and state.refusals < MAX_REFUSALS

    def _offered(self) -> bool:
        # Its own lock: the engine asks has_link (under its lock) while this may wait for the server.
        with self._decide_lock:
            if self._enabled is None:
                self._enabled = self._decide()
            return self._enabled

    def _decide(self) -> bool:
        from mlflow.environment_variables import MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD as CHOSEN

        try:
            if CHOSEN.is_set():
                return bool(CHOSEN.get())
        except ValueError:  # MLflow's own client refuses such a value; here it means "not asked for"
            return False
        try:
            info = self._get_json(self._server_creds, SERVER_INFO_ENDPOINT)
        except Exception:  # an older server, or one that does not say: the proxy it is
            return False
        return info.get("multipart_downloads_enabled") is True

    def _state(self, file: ArtifactFile) -> _FileState:
        with self._lock:
            return self._files.setdefault(file.remote_path, _FileState())

    # -- the URL of one file ----------------------------------------------------------------------------
    def link(self, file: ArtifactFile) -> PresignedLink | None:
        """A live URL for ``file``, asked for when there is none or it is about to expire; None: use the proxy."""
        state = self._state(file)
        with state.lock:
            if state.refusals >= MAX_REFUSALS:
                return None
            if state.link is not None and time.monotonic() - state.link.fetched < self._ttl() - REFRESH_MARGIN_SECONDS:
                return state.link
            path = "/".join(part for part in (self._root, file.remote_path) if part)
            try:
                answer = self._get_json(self._api_creds, f"{PRESIGNED_ENDPOINT}/{encode_path(path)}")
                url, headers = answer["url"], answer.get("headers") or {}
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    raise ValueError("no http(s) URL")
                if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                    raise ValueError("headers are not strings")
                if url_refusal(url, loopback_allowed=self._tracking_on_loopback()) is not None:
                    raise ValueError("a store kitmlflow does not read")
            except Exception:  # the server will not sign this one (or signs one not to read): the proxy serves it
                state.refusals = MAX_REFUSALS
                state.link = None
                return None
            state.link = PresignedLink(url, store_headers(headers), time.monotonic())
            return state.link

    def _tracking_on_loopback(self) -> bool:
        with self._lock:
            if self._loopback_allowed is None:
                self._loopback_allowed = on_loopback(self._api_base)
            return self._loopback_allowed

    def refused(self, file: ArtifactFile) -> None:
        """The store refused the URL (expired, or not valid for us): ask again, or give the file to the proxy."""
        state = self._state(file)
        with state.lock:
            state.refusals += 1
            state.link = None

    def _accepted(self, file: ArtifactFile) -> None:
        """The store took a (renewed) URL: a long transfer may outlive several URLs, each refused once at expiry."""
        state = self._state(file)
        with state.lock:
            if 0 < state.refusals < MAX_REFUSALS:
                state.refusals = 0

    def give_up(self, file: ArtifactFile) -> None:
        """The store cannot be reached with this file's URL: the proxy serves it from now on."""
        state = self._state(file)
        with state.lock:
            state.refusals = MAX_REFUSALS
            state.link = None

    @staticmethod
    def _ttl() -> float:
        """How long a URL lives: the server's setting when the client shares it, else MLflow's default."""
        from mlflow.environment_variables import MLFLOW_PRESIGNED_DOWNLOAD_URL_TTL_SECONDS as TTL

        try:
            return float(TTL.get())
        except ValueError:
            return float(TTL.default)

    @staticmethod
    def _get_json(creds: Any, endpoint: str) -> dict[str, Any]:
        from mlflow.utils.request_utils import augmented_raise_for_status
        from mlflow.utils.rest_utils import http_request

        response = http_request(creds, endpoint, "GET", max_retries=0, stream=True)
        with response:
            augmented_raise_for_status(response)
            body = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
        if len(body) > MAX_ANSWER_BYTES:
            raise ValueError("answer too large")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document

    # -- reading --------------------------------------------------------------------------------------------
    def stream(
        self,
        file: ArtifactFile,
        link: PresignedLink,
        start: int,
        end: int | None,
        cancel: threading.Event | None,
        expect: ObjectVersion | None = None,
        on_version: VersionCallback | None = None,
    ) -> Generator[bytes, None, None]:
        """``[start, end)`` of ``file`` from the store through ``link``. A refusal or a failure is transient:
        the caller's next attempt asks for a new URL, or goes through the proxy."""
        import requests

        headers = dict(link.headers)
        byte_range = range_header(start, end)
        if byte_range:
            headers["Range"] = byte_range
            if expect is not None and (expect.tag or "").startswith(SOURCE + " ") and (value := if_range(expect)):
                headers["If-Range"] = value
        try:
            response = self._requests().get(
                link.url,
                headers=headers,
                stream=True,
                timeout=_timeout(),
                verify=not _ignore_tls(),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self.give_up(file)  # often a store only the server can reach: the proxy serves this file
            raise TransientTransferError(f"reading {file.path} from its store failed ({type(exc).__name__})") from None
        raw = response.raw
        abort = raw.shutdown if hasattr(raw, "shutdown") else response.close
        with response, Watch(abort, stall_seconds=stall_seconds(), cancel=cancel) as watch:
            if response.status_code == 416 and file.size is not None and start >= file.size:
                return  # nothing after the listed end: the object ends where it was listed
            if response.status_code in (400, 401, 403):
                self.refused(file)
                raise TransientTransferError(
                    f"the store refused the presigned URL of {file.path} ({response.status_code})"
                )
            try:
                self._check_answer(response, file, start, end, ranged=byte_range is not None)
            except TransientTransferError:
                self.give_up(file)  # a wrong status, range or size: the proxy serves the file from now on
                raise
            if on_version is not None:
                on_version(http_version(SOURCE, response.headers))
            self._accepted(file)
            try:
                yield from bounded(watch.track(iter_body(response, CHUNK_BYTES)), start, end or file.size)
            except ShortRange:
                self.give_up(file)
                watch.check(file.path)
                raise
            except requests.RequestException as exc:
                watch.check(file.path)
                raise TransientTransferError(
                    f"reading {file.path} from its store broke ({type(exc).__name__})"
                ) from None
            except Exception:
                watch.check(file.path)
                raise
            watch.check(file.path)

    @staticmethod
    def _check_answer(response: Any, file: ArtifactFile, start: int, end: int | None, *, ranged: bool) -> None:
        status = response.status_code
        if status not in (200, 206) or (ranged and status != 206):
            reason = "ignored the byte range" if status == 200 else f"answered {status}"
            raise TransientTransferError(f"the store {reason} for {file.path}")
        if status == 206:
            check_partial(response.headers.get("Content-Range"), start, end, file.size)
        else:
            try:
                check_whole(response.headers.get("Content-Length"), file.size)
            except RangeMismatch as exc:
                raise RangeMismatch(f"the store's object of {file.path} is not the listed size ({exc})") from None

    def _requests(self) -> Any:
        import requests

        with self._lock:
            if self._session is None:
                session = requests.Session()
                adapter = requests.adapters.HTTPAdapter(pool_maxsize=32)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def _timeout() -> tuple[float, float]:
    """Connect and first-byte limits: MLflow's request timeout (after the first byte the stall watch governs)."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    seconds = float(MLFLOW_HTTP_REQUEST_TIMEOUT.get())
    return (min(seconds, CONNECT_SECONDS), seconds)


def _ignore_tls() -> bool:
    from mlflow.environment_variables import MLFLOW_S3_IGNORE_TLS

    return bool(MLFLOW_S3_IGNORE_TLS.get())
