"""GETs to the tracking server as MLflow's ``http_request`` sends them, with its per-request work done once.

``http_request`` rebuilds everything for every call: MLflow's request headers (its providers probe for a Databricks
notebook: 0.7 ms a call), then a requests ``Request`` merged with the environment (proxies, ``.netrc``, CA bundle,
read again), cookies, hooks. For a run of a thousand small files that was most of the client's CPU. A
:class:`ServerSession` does it once, for a template request to the server, and sends each GET (a file, a range, a
folder's listing) through the same requests ``HTTPAdapter`` of MLflow's own session (its pool, its retry policy;
TLS verification, client certificate and proxy chosen by requests as for MLflow's calls), with only the URL and the
request's own headers changed. What it sends, how long it waits (``MLFLOW_HTTP_REQUEST_TIMEOUT``) and what it raises
are ``http_request``'s: a failure to get an answer is an ``MlflowException`` naming the URL, as there.

Credentials that sign or fetch per request (an auth plugin, AWS SigV4, the Databricks SDK, OAuth) and an answer that
redirects go through ``http_request`` itself. MLflow's header providers and the credentials are read when the session
is made (they name the client and the user, not the request); a session lives for one listing or one transfer.
``tests/unit/test_server_session.py`` compares what both send, so an MLflow upgrade that changes it fails there.
"""

from __future__ import annotations

import base64
import os
import threading
import urllib.parse
import weakref
from typing import Any

from kitmlflow_tui.core.catalogue.http_limits import bounded_response, note_request_start

_REDIRECTS_VARIABLE = "MLFLOW_ALLOW_HTTP_REDIRECTS"  # read by MLflow straight from the environment too


class ServerSession:
    """GETs to one tracking server with one set of MLflow credentials, whose ``host`` is the server's origin
    (``scheme://host:port``). Thread-safe (requests' adapter is)."""

    def __init__(self, creds: Any) -> None:
        self.creds = creds
        self._direct: _Direct | None = _Direct.build(creds)

    @property
    def direct(self) -> bool:
        """Whether GETs skip ``http_request`` (False: credentials that sign each request, or an MLflow without
        the pieces this relies on)."""
        return self._direct is not None

    def get(
        self,
        endpoint: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool,
    ) -> Any:
        """``GET endpoint`` (a percent-encoded path from the server's origin) as a requests ``Response``. ``stream``: the body
        is read by the caller, and no request is retried (the caller resumes from the byte it reached); else the
        body is read here, bounded like every answer of MLflow's client (``http_limits``), with MLflow's retries."""
        from mlflow.utils.rest_utils import http_request

        direct = self._direct
        if direct is not None:
            response = direct.get(endpoint, query, headers, stream=stream)
            if not (response.is_redirect and direct.follow_redirects):
                return response
            response.close()  # requests follows it (and drops the credentials for another host)
        if stream:
            return http_request(
                self.creds, endpoint, "GET", stream=True, extra_headers=headers, params=query, max_retries=0
            )
        return http_request(self.creds, endpoint, "GET", extra_headers=headers, params=query)


_sessions: weakref.WeakKeyDictionary[Any, ServerSession] = weakref.WeakKeyDictionary()
_sessions_lock = threading.Lock()


def session_for(repository: Any) -> ServerSession:
    """The session of the server of one of MLflow's HTTP artifact repositories (made once per repository: a catalogue
    keeps one per store root, for its listing and its transfers)."""
    from mlflow.utils.credentials import get_default_host_creds

    with _sessions_lock:
        session = _sessions.get(repository)
        if session is None:
            url = urllib.parse.urlsplit(repository.artifact_uri)
            origin = urllib.parse.urlunsplit((url.scheme, url.netloc, "", "", ""))
            session = _sessions[repository] = ServerSession(get_default_host_creds(origin))
        return session


def path_of(uri: str) -> str:
    """The percent-encoded path of an http(s) URI, without a trailing slash (what :meth:`ServerSession.get` takes)."""
    from requests.utils import requote_uri

    return requote_uri(urllib.parse.urlsplit(uri).path).rstrip("/")


class _Direct:
    """The template request and the connection pools ``http_request`` would use, taken once: per kind of GET
    (``stream`` or not) the adapter of MLflow's session for it, the urllib3 pool requests picks for this server and
    TLS setting, and the retry policy."""

    def __init__(self, template: Any, adapters: dict[bool, Any], settings: dict[str, Any], timeout: Any) -> None:
        from requests.utils import select_proxy

        self.base = template.url[:-1]
        self.template = template
        self.adapters = adapters
        self.settings = settings  # verify, cert, proxies: requests' choice for this server
        self.timeout = timeout
        self.follow_redirects = os.environ.get(_REDIRECTS_VARIABLE, "true").lower() in ("true", "1")
        # Through a proxy requests' adapter does the sending (absolute URLs, proxy headers); else its pool, directly.
        self.pools: dict[bool, Any] = {}
        if select_proxy(template.url, settings["proxies"]) is None:
            for stream, adapter in adapters.items():
                pool = adapter.get_connection_with_tls_context(template, settings["verify"], None, settings["cert"])
                adapter.cert_verify(pool, template.url, settings["verify"], settings["cert"])
                self.pools[stream] = pool

    @classmethod
    def build(cls, creds: Any) -> _Direct | None:
        if creds.use_databricks_sdk or creds.aws_sigv4 or creds.auth or creds.client_secret:
            return None
        try:
            import requests
            from mlflow.environment_variables import (
                MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
                MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
                MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                MLFLOW_HTTP_REQUEST_TIMEOUT,
                MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER,
            )
            from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES, _get_request_session
            from mlflow.utils.rest_utils import WORKSPACE_HEADER_NAME, get_request_workspace
        except ImportError:  # an MLflow that moved them: every GET through http_request
            return None
        from mlflow.tracking.request_header.registry import resolve_request_headers

        headers = dict(resolve_request_headers())
        if workspace := get_request_workspace():
            headers.setdefault(WORKSPACE_HEADER_NAME, workspace)  # no artifact endpoint is a workspace one
        if traffic_id := os.environ.get("_MLFLOW_DATABRICKS_TRAFFIC_ID"):
            headers["x-databricks-traffic-id"] = traffic_id
        if creds.workspace_id:
            headers["x-databricks-org-id"] = creds.workspace_id
        if creds.username and creds.password:
            pair = base64.standard_b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        elif creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"

        def session(retries: int) -> Any:
            return _get_request_session(
                retries,
                MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
                MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get(),
                _TRANSIENT_FAILURE_RESPONSE_CODES,
                True,
                MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER.get(),
            )

        streams, metadata = session(0), session(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())
        root = creds.host.rstrip("/") + "/"
        # The session's headers, its cookies and a .netrc entry merged as for every request of MLflow's.
        template = streams.prepare_request(requests.Request("GET", root, headers=headers))
        settings = streams.merge_environment_settings(template.url, {}, True, creds.verify, creds.client_cert_path)
        settings.pop("stream")
        seconds = MLFLOW_HTTP_REQUEST_TIMEOUT.get()
        timeout = requests.adapters.TimeoutSauce(connect=seconds, read=seconds)
        adapters = {True: streams.get_adapter(root), False: metadata.get_adapter(root)}
        return cls(template, adapters, settings, timeout)

    def get(self, endpoint: str, query: dict[str, str] | None, headers: dict[str, str] | None, *, stream: bool) -> Any:
        import requests
        from mlflow.exceptions import MlflowException

        target = endpoint + ("?" + urllib.parse.urlencode(query) if query else "")
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = self.base + target
        request.headers = self.template.headers.copy()
        if headers:
            request.headers.update(headers)
        request.body = None
        request.hooks = {"response": []}
        adapter = self.adapters[stream]
        seconds = self.timeout.read_timeout
        note_request_start(seconds)  # MLflow's retries stop at the request's timeout (http_limits)
        try:
            pool = self.pools.get(stream)
            if pool is None:
                response = adapter.send(request, stream=True, timeout=self.timeout, **self.settings)
            else:
                answer = pool.urlopen(
                    "GET",
                    target,
                    headers=request.headers,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    retries=adapter.max_retries,
                    timeout=self.timeout,
                )
                response = adapter.build_response(request, answer)
        except Exception as exc:  # as http_request: whatever kept the answer from coming is MLflow's exception
            if _timed_out(exc):
                raise MlflowException(
                    f"API request to {request.url} timed out ({exc}); MLFLOW_HTTP_REQUEST_TIMEOUT ({seconds} s) sets "
                    "how long to wait."
                ) from exc
            raise MlflowException(f"API request to {request.url} failed with exception {exc}") from exc
        if not stream and not response.is_redirect:
            bounded_response(response, stream=False, timeout=seconds)
        return response


def _timed_out(exc: BaseException) -> bool:
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError, TimeoutError

    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    # urllib3 makes a refused connection a kind of connect timeout; requests (and so MLflow) does not.
    return isinstance(reason, TimeoutError | requests.exceptions.Timeout) and not isinstance(reason, NewConnectionError)
