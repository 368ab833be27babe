"""Step 2 of the data flow: what MLflow knows about a run, and its artifact tree with sizes.

The values come first; the gateway (MLflow calls and error mapping) follows. mlflow itself is
imported inside functions so that `--help` and the wizard's first paint never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kitmlflow_tui.errors import (
    AuthError,
    BadInputError,
    InterruptedByUser,
    KitmlflowError,
    NotFoundError,
    RunNotFinishedError,
    ServerUnreachableError,
    scrub_secrets,
)
from kitmlflow_tui.reference import ModelRef, Reference, RunRef, redact_uri, require_importable


@dataclass(frozen=True)
class LoggedModelInfo:
    """An MLflow 3 logged model (or an MLflow 2 model folder) of a run."""

    model_id: str | None  # "m-..." for MLflow 3 logged models, None for an MLflow 2 folder
    name: str
    folder: str  # where it appears in the run's tree, without a trailing slash ("model", "echo")
    artifact_location: str  # the store URI its files live under
    source_run_id: str | None = None
    flavors: tuple[str, ...] = ()  # flavor names as far as MLflow knows them without a download


@dataclass(frozen=True)
class RegisteredModelInfo:
    """The registered model version an import went through (``models/NAME/VERSION`` or ``@ALIAS``)."""

    name: str
    version: str
    alias: str | None
    model_id: str | None
    source_run_id: str | None


@dataclass(frozen=True)
class ModelVersionInfo:
    """One version of a registered model as a listing gives it (``kitmlflow sync``)."""

    name: str
    version: str
    status: str  # READY, PENDING_REGISTRATION or FAILED_REGISTRATION
    run_id: str | None  # None when MLflow recorded only the logged model (see source_run_id)
    model_id: str | None
    source: str | None


@dataclass(frozen=True)
class RunInfo:
    """One run with everything provenance needs. Times are milliseconds since the epoch (UTC)."""

    tracking_uri: str  # already redacted: never holds credentials
    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    user: str | None
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each metric
    tags: dict[str, str] = field(default_factory=dict)  # every tag, mlflow.* included
    output_model_ids: tuple[str, ...] = ()  # logged models the run declared as its outputs
    lifecycle_stage: str = "active"  # "deleted" once the run is in MLflow's trash

    @property
    def note(self) -> str | None:
        return self.tags.get("mlflow.note.content") or None

    @property
    def source_name(self) -> str | None:
        return self.tags.get("mlflow.source.name") or None

    @property
    def source_type(self) -> str | None:
        return self.tags.get("mlflow.source.type") or None

    @property
    def git_commit(self) -> str | None:
        return self.tags.get("mlflow.source.git.commit") or None

    @property
    def user_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if not k.startswith("mlflow.")}


@dataclass(frozen=True)
class ArtifactFile:
    """One file of the tree. ``path`` is what filters see and where it lands locally; ``remote_path`` is
    its path inside the store at ``root_uri`` (the run's artifact root, or a logged model's)."""

    path: str
    size: int | None  # None when the store did not say
    root_uri: str
    remote_path: str
    model: str | None = None  # the logged model folder it belongs to, if any


@dataclass(frozen=True)
class ArtifactTree:
    """Every file of a run: its own artifacts plus its logged models (as ``NAME/`` folders)."""

    files: tuple[ArtifactFile, ...]
    logged_models: tuple[LoggedModelInfo, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def folder_sizes(self) -> dict[str, int]:
        """Total bytes under every folder ("" is the root)."""
        totals: dict[str, int] = {"": 0}
        for f in self.files:
            parts = f.path.split("/")
            for depth in range(len(parts)):
                key = "/".join(parts[:depth])
                totals[key] = totals.get(key, 0) + (f.size or 0)
        return totals


@dataclass(frozen=True)
class LevelEntry:
    """One entry of a single folder listing (``Catalogue.first_level``); a folder has no size."""

    path: str
    is_dir: bool
    size: int | None
    model: str | None = None  # the logged model folder this entry is, if it is one


@dataclass(frozen=True)
class ExperimentSummary:
    experiment_id: str
    name: str
    lifecycle_stage: str
    last_update_time: int | None


@dataclass(frozen=True)
class RunSummary:
    """A row of the runs table: what a run search returns, without params or tags."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    user: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunSummary, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class ResolvedRun:
    """What a reference comes to: the run, its tree, and the registered model it went through."""

    run: RunInfo
    tree: ArtifactTree
    registered: RegisteredModelInfo | None = None


# ---------------------------------------------------------------------------------------------
# The gateway: everything below talks to MLflow.
# ---------------------------------------------------------------------------------------------
# MLflow retries an unreachable server for about four minutes by default. A person at a terminal
# wants to know within seconds, so unless the user chose otherwise we ask for a short policy.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
CONNECT_TIMEOUT_SECONDS = 5.0
# Bounds against a broken or hostile server: a listing deeper or larger than this is refused.
MAX_TREE_DEPTH = 64
MAX_TREE_FILES = 2_000_000  # files and folders of one tree
# A metadata answer (a run, a listing, a search page) larger than this, or one that is still arriving
# after RESPONSE_DEADLINE_FACTOR x MLFLOW_HTTP_REQUEST_TIMEOUT seconds, is refused: requests only bounds
# each read, so a server that trickles or never ends its document would otherwise hold us forever.
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
RESPONSE_DEADLINE_FACTOR = 3
_CLIENT_SIDE_FILES = {"registered_model_meta"}  # written by MLflow's own models:/ downloads
_AUTH_HINT = (
    "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth) or MLFLOW_TRACKING_TOKEN "
    "(bearer token) for this server."
)
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


def configure_http(pool_size: int = 10) -> None:
    """Short retry policy and a connection pool large enough for ``pool_size`` parallel transfers,
    without overriding anything the user set."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if int(os.environ.get("MLFLOW_HTTP_POOL_MAXSIZE", "10")) < pool_size:
        os.environ["MLFLOW_HTTP_POOL_MAXSIZE"] = str(pool_size)
    _install_response_limits()


def iter_body(response, chunk_size: int) -> Iterator[bytes]:
    """A response body in pieces of at most ``chunk_size``, each handed over as soon as it arrives.

    ``requests``' ``iter_content`` fills every piece before yielding it: bytes that arrived before a
    stall or a reset are lost with the exception, and a deadline checked between pieces never runs
    while a server trickles. One read per piece (``read1``) avoids both. urllib3's errors are raised
    as the ``requests`` ones ``iter_content`` would raise, so callers classify them the same way."""
    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(chunk_size)
        return
    try:
        while chunk := raw.read1(chunk_size, decode_content=True):
            yield chunk
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class ResponseTooLarge(Exception):
    """A metadata answer broke MAX_RESPONSE_BYTES or its deadline (raised inside MLflow's request)."""


def _bounded_response(response, *, stream: bool | None = False, timeout=None, **_kwargs):
    """A requests response hook: read a non-streamed body under a size cap and a whole-answer deadline.

    requests runs response hooks before it reads a non-streamed body, so the body read here is the
    one MLflow later parses. Streamed responses (our own downloads) are left alone: they are bounded
    by the listed size and the per-read timeout."""
    if stream:
        return response
    limit = MAX_RESPONSE_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLarge(f"the server's answer is larger than {limit:,} bytes ({int(declared):,} declared)")
    per_read = timeout[-1] if isinstance(timeout, tuple) else timeout
    allowed = RESPONSE_DEADLINE_FACTOR * float(per_read or 60)
    deadline = time.monotonic() + allowed
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in iter_body(response, 64 * 1024):
            received += len(chunk)
            if received > limit:
                raise ResponseTooLarge(f"the server's answer is larger than {limit:,} bytes")
            if time.monotonic() > deadline:
                raise ResponseTooLarge(f"the server's answer was still arriving after {allowed:.0f} s")
            chunks.append(chunk)
    except ResponseTooLarge:
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True
    return response


def _install_response_limits() -> None:
    """Add ``_bounded_response`` to every requests session MLflow makes (it caches one per retry
    policy in ``request_utils._cached_get_request_session``). If a later MLflow moves that function,
    the limits are skipped rather than breaking the client."""
    from mlflow.utils import request_utils

    factory = getattr(request_utils, "_cached_get_request_session", None)
    if factory is None or getattr(factory, "_kitmlflow_bounded", False):
        return

    def bounded_session(*args, **kwargs):
        session = factory(*args, **kwargs)
        hooks = session.hooks.setdefault("response", [])
        if _bounded_response not in hooks:
            hooks.append(_bounded_response)
        return session

    bounded_session._kitmlflow_bounded = True  # type: ignore[attr-defined]
    request_utils._cached_get_request_session = bounded_session


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def translate_error(exc: BaseException, what: str, tracking_uri: str) -> KitmlflowError:
    """Map an MLflow / requests / socket failure to the error family (and exit code) of DESIGN.md."""
    import requests
    from mlflow.exceptions import MlflowException

    server = redact_uri(tracking_uri)
    text = scrub_secrets(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if len(text) > 400:
        text = text[:400] + "…"
    if isinstance(exc, KitmlflowError):
        return exc
    status = _http_status(exc)
    code = getattr(exc, "error_code", None) if isinstance(exc, MlflowException) else None
    if code is None and status is not None:
        code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}.get(status)
    if code == "UNAUTHENTICATED":
        return AuthError(f"The tracking server {server} did not accept the credentials ({text}).", hint=_AUTH_HINT)
    if code == "PERMISSION_DENIED":
        return AuthError(
            f"No permission to read {what} on {server} ({text}).",
            hint="Ask an admin of the server for READ permission, or use credentials that have it.",
        )
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"):
        return NotFoundError(f"{what[:1].upper()}{what[1:]} was not found on {server} ({text}).")
    if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"):
        return BadInputError(f"The tracking server {server} rejected the request for {what}: {text}")
    if isinstance(exc, requests.exceptions.SSLError) or "SSL" in text or "CERTIFICATE" in text.upper():
        hint = "Check the server's certificate (MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_INSECURE_TLS)."
        if urlsplit(tracking_uri).scheme == "https":
            hint = (
                "If the server speaks plain HTTP, write mlflow+http://HOST/... (or an http:// --tracking-uri). " + hint
            )
        return ServerUnreachableError(f"TLS failed talking to {server}: {text}", hint=hint)
    if isinstance(exc, requests.exceptions.RequestException | OSError) or code in (None, "INTERNAL_ERROR"):
        return ServerUnreachableError(
            f"The tracking server {server} could not be reached or failed while reading {what}: {text}",
            hint="Check the address and that the server is up; MLFLOW_HTTP_REQUEST_TIMEOUT and "
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES tune how long kitmlflow waits.",
        )
    return ServerUnreachableError(f"The tracking server {server} failed while reading {what}: {text}")


@contextlib.contextmanager
def mlflow_errors(what: str, tracking_uri: str) -> Iterator[None]:
    """Turn anything MLflow raises inside the block into the error family."""
    try:
        yield
    except KitmlflowError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # MLflow raises many unrelated types; all are mapped, none escape raw
        raise translate_error(exc, what, tracking_uri) from exc


def check_reachable(tracking_uri: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """A TCP connect to an http(s) tracking server, so that a dead or black-holed address fails in
    seconds (exit 6) instead of after MLflow's retries. Other URIs (sqlite, file, databricks) pass."""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return
    server = redact_uri(tracking_uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadInputError(f"The tracking URI {server} has an invalid port.") from None
    host = parts.hostname or ""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise ServerUnreachableError(
            f"Cannot resolve the tracking server host {host!r} ({exc.strerror}).",
            hint="Check the host name in the URI, --tracking-uri or MLFLOW_TRACKING_URI.",
        ) from None
    except TimeoutError:
        raise ServerUnreachableError(
            f"The tracking server {server} did not answer within {timeout:g} s.",
            hint="Check the address, the port and any VPN or firewall in between.",
        ) from None
    except OSError as exc:
        raise ServerUnreachableError(
            f"Cannot connect to the tracking server {server} ({exc.strerror or exc}).",
            hint="Is the server running on that host and port?",
        ) from None


# Bounds of a model's version listing (``Catalogue.list_model_versions``): 1,000 versions a page (MLflow
# takes up to 200,000), at most 1,000 pages, at most 5 minutes.
MODEL_VERSIONS_PAGE_SIZE = 1000
MODEL_VERSIONS_MAX_PAGES = 1000
MODEL_VERSIONS_DEADLINE_SECONDS = 300.0


def _filter_literal(value: str) -> str:
    """A string literal of MLflow's search grammar (quoted with ' or ", which it cannot escape)."""
    for quote_char in ("'", '"'):
        if quote_char not in value:
            return f"{quote_char}{value}{quote_char}"
    raise BadInputError(f"The model name {value!r} holds both kinds of quotes: MLflow's search cannot name it.")


def _model_version_info(version) -> ModelVersionInfo:
    model_id = getattr(version, "model_id", None) or None
    source = version.source or None
    if not model_id and source and source.startswith("models:/m-"):
        # Over REST, MLflow 3 leaves model_id empty and records the logged model as the source.
        model_id = source.removeprefix("models:/").split("/", 1)[0]
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        status=str(version.status or "READY"),
        run_id=version.run_id or None,
        model_id=model_id,
        source=source,
    )


def _ms(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and value else None


class Catalogue:
    """The MLflow gateway: experiments, runs, registered models and artifact trees of one server."""

    def __init__(self, tracking_uri: str, *, jobs: int = 8) -> None:
        configure_http(pool_size=max(jobs, 10))
        check_reachable(tracking_uri)
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.display_uri = redact_uri(tracking_uri)
        self.jobs = max(1, jobs)
        # The registry is the tracking server unless the user named another: never whatever a
        # library in this process last set globally.
        registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        self._repositories: dict[str, object] = {}
        self._repositories_lock = threading.Lock()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return mlflow_errors(what, self.tracking_uri)

    # -- experiments and runs ------------------------------------------------------------------
    def list_experiments(self, *, include_deleted: bool = False) -> list[ExperimentSummary]:
        from mlflow.entities import ViewType

        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        found: list[ExperimentSummary] = []
        token: str | None = None
        with self._errors("the experiments"):
            while True:
                page = self._client.search_experiments(view_type=view, max_results=1000, page_token=token)
                found += [
                    ExperimentSummary(e.experiment_id, e.name, e.lifecycle_stage, _ms(e.last_update_time)) for e in page
                ]
                token = page.token
                if not token:
                    return found

    def search_runs(
        self,
        experiment_id: str,
        *,
        filter_string: str = "",
        order_by: list[str] | None = None,
        max_results: int = 200,
        page_token: str | None = None,
    ) -> RunPage:
        with self._errors(f"the runs of experiment {experiment_id}"):
            page = self._client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                order_by=order_by or ["attributes.start_time DESC"],
                max_results=max_results,
                page_token=page_token,
            )
        runs = tuple(
            RunSummary(
                run_id=r.info.run_id,
                run_name=r.info.run_name or "",
                experiment_id=r.info.experiment_id,
                status=r.info.status,
                start_time=_ms(r.info.start_time),
                end_time=_ms(r.info.end_time),
                user=r.data.tags.get("mlflow.user") or r.info.user_id or None,
                metrics=dict(r.data.metrics),
            )
            for r in page
        )
        return RunPage(runs, page.token or None)

    def get_run(self, run_id: str, *, experiment_id: str | None = None) -> RunInfo:
        with self._errors(f"run {run_id}"):
            run = self._client.get_run(run_id)
        if experiment_id is not None and run.info.experiment_id != experiment_id:
            raise NotFoundError(
                f"Run {run_id} belongs to experiment {run.info.experiment_id}, not to experiment "
                f"{experiment_id} named in the reference.",
                hint=f"Use mlflow://experiments/{run.info.experiment_id}/runs/{run_id} or mlflow://runs/{run_id}.",
            )
        with self._errors(f"experiment {run.info.experiment_id}"):
            experiment = self._client.get_experiment(run.info.experiment_id)
        return RunInfo(
            tracking_uri=self.display_uri,
            experiment_id=run.info.experiment_id,
            experiment_name=experiment.name,
            run_id=run.info.run_id,
            run_name=run.info.run_name or run.info.run_id,
            status=run.info.status,
            start_time=_ms(run.info.start_time),
            end_time=_ms(run.info.end_time),
            user=run.data.tags.get("mlflow.user") or run.info.user_id or None,
            artifact_uri=run.info.artifact_uri,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            output_model_ids=tuple(o.model_id for o in (run.outputs.model_outputs if run.outputs else [])),
            lifecycle_stage=run.info.lifecycle_stage or "active",
        )

    # -- registered models ---------------------------------------------------------------------
    def resolve_model(self, ref: ModelRef) -> tuple[RegisteredModelInfo, str | None]:
        """The registered version behind a models/ reference, and where its files live."""
        label = f"registered model {ref.name}" + (f"@{ref.alias}" if ref.alias else f" version {ref.version}")
        from mlflow.exceptions import MlflowException

        with self._errors(label):
            try:
                if ref.alias:
                    version = self._client.get_model_version_by_alias(ref.name, ref.alias)
                else:
                    version = self._client.get_model_version(ref.name, ref.version)
            except MlflowException as exc:
                # A missing alias is INVALID_PARAMETER_VALUE to MLflow, but it is a thing not found.
                if exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower():
                    raise NotFoundError(f"{label[:1].upper()}{label[1:]} was not found on {self.display_uri}.") from exc
                raise
        listed = _model_version_info(version)
        info = RegisteredModelInfo(ref.name, listed.version, ref.alias, listed.model_id, self.source_run_id(listed))
        return info, listed.source

    def source_run_id(self, version: ModelVersionInfo) -> str | None:
        """The run a version came from: its own record, else its logged model's source run (one request)."""
        if version.run_id or not version.model_id:
            return version.run_id
        with self._errors(f"logged model {version.model_id}"):
            return self._client.get_logged_model(version.model_id).source_run_id or None

    def get_model_version(self, name: str, version: str) -> ModelVersionInfo:
        with self._errors(f"registered model {name} version {version}"):
            return _model_version_info(self._client.get_model_version(name, version))

    def model_aliases(self, name: str) -> dict[str, str]:
        """The aliases of a registered model and the version each points at."""
        with self._errors(f"registered model {name}"):
            aliases = self._client.get_registered_model(name).aliases or {}
        return {str(alias): str(version) for alias, version in dict(aliases).items()}

    def list_model_versions(
        self,
        name: str,
        *,
        page_size: int = MODEL_VERSIONS_PAGE_SIZE,
        max_pages: int = MODEL_VERSIONS_MAX_PAGES,
        deadline_seconds: float = MODEL_VERSIONS_DEADLINE_SECONDS,
    ) -> list[ModelVersionInfo]:
        """Every live version of a registered model, by version number (deleted ones are not listed).

        Paged, and bounded against a server that never ends its listing: a page token seen before, more
        than ``max_pages`` pages or a listing still going after ``deadline_seconds`` is refused (exit 6).
        A model that does not exist is exit 4 (MLflow's search answers it with an empty list)."""
        label = f"the versions of registered model {name}"
        versions: dict[str, ModelVersionInfo] = {}
        seen_tokens: set[str] = set()
        token: str | None = None
        deadline = time.monotonic() + deadline_seconds
        with self._errors(label):
            for _ in range(max_pages):
                page = self._client.search_model_versions(
                    filter_string=f"name = {_filter_literal(name)}",
                    max_results=page_size,
                    order_by=["version_number ASC"],
                    page_token=token,
                )
                for item in page:
                    if item.name == name:  # the filter is exact; a server that answers more gets no say
                        info = _model_version_info(item)
                        versions[info.version] = info
                token = page.token or None
                if not token:
                    break
                if token in seen_tokens:
                    raise ServerUnreachableError(
                        f"The tracking server {self.display_uri} repeated a page token while listing {label}; "
                        "refusing the listing."
                    )
                seen_tokens.add(token)
                if time.monotonic() > deadline:
                    raise ServerUnreachableError(
                        f"Listing {label} on {self.display_uri} took longer than {deadline_seconds:.0f} s; refusing it."
                    )
            else:
                raise ServerUnreachableError(
                    f"{label[:1].upper()}{label[1:]} on {self.display_uri} run over {max_pages} pages of "
                    f"{page_size}; refusing the listing."
                )
            if not versions:
                self._client.get_registered_model(name)  # not found → exit 4; else a model without versions
        return sorted(versions.values(), key=lambda v: int(v.version))

    # -- artifact trees ------------------------------------------------------------------------
    def _logged_models(self, run: RunInfo) -> list:
        """MLflow 3 logged models of a run: the ones it produced and the ones it output."""
        from mlflow.exceptions import MlflowException

        models: dict[str, object] = {}
        with self._errors(f"the logged models of run {run.run_id}"):
            token = None
            try:
                while True:
                    page = self._client.search_logged_models(
                        experiment_ids=[run.experiment_id],
                        filter_string=f"source_run_id = '{run.run_id}'",
                        page_token=token,
                    )
                    models.update((m.model_id, m) for m in page)
                    token = page.token
                    if not token:
                        break
            except MlflowException as exc:
                # Servers older than MLflow 3 have no logged models: nothing to add then.
                if exc.error_code not in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "FEATURE_DISABLED"):
                    raise
            for model_id in run.output_model_ids:
                if model_id not in models:
                    models[model_id] = self._client.get_logged_model(model_id)
        return sorted(models.values(), key=lambda m: (m.creation_timestamp or 0, m.model_id))

    def repository(self, artifact_uri: str):
        """MLflow's artifact repository for a store URI (one per URI, shared by listing and download)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with self._repositories_lock:
            if artifact_uri not in self._repositories:
                with self._errors(f"the artifact store {redact_uri(artifact_uri)}"):
                    self._repositories[artifact_uri] = get_artifact_repository(
                        artifact_uri, tracking_uri=self.tracking_uri
                    )
            return self._repositories[artifact_uri]

    def resolve(
        self,
        ref: Reference,
        *,
        require_finished: bool = True,
        on_listed: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ResolvedRun:
        """Reference → run, artifact tree and registered model (the whole catalogue step)."""
        ref = require_importable(ref)
        registered = None
        if isinstance(ref, ModelRef):
            registered, source = self.resolve_model(ref)
            if not registered.source_run_id:
                raise NotFoundError(
                    f"Registered model {ref.name} version {registered.version} has no source run, so there is "
                    "no provenance to record.",
                    hint="Import the run that produced it with mlflow://runs/RUN_ID instead.",
                )
            run = self.get_run(registered.source_run_id)
        else:
            assert isinstance(ref, RunRef)
            run = self.get_run(ref.run_id, experiment_id=ref.experiment_id)
        if require_finished:
            ensure_finished(run)
        if registered is not None:
            tree = self._registered_model_tree(run, registered, source, on_listed, cancel)
        else:
            tree = self.run_tree(run, on_listed=on_listed, cancel=cancel)
        return ResolvedRun(run, tree, registered)

    def _registered_model_tree(self, run, registered, source, on_listed, cancel) -> ArtifactTree:
        """Only the registered model's files, as the folder ``NAME/``."""
        if registered.model_id:
            with self._errors(f"logged model {registered.model_id}"):
                model = self._client.get_logged_model(registered.model_id)
            info = LoggedModelInfo(model.model_id, model.name, model.name, model.artifact_location, run.run_id)
            root = model.artifact_location
        else:
            # MLflow 2 registrations point at a folder of the run (runs:/RUN/PATH or a store URI).
            if source and source.startswith("models:/"):
                raise NotFoundError(
                    f"Registered model {registered.name} version {registered.version} points at {source}, "
                    "which kitmlflow cannot resolve to files."
                )
            if source and source.startswith("runs:/"):
                path = source[len("runs:/") :].split("/", 1)[1] if "/" in source[len("runs:/") :] else ""
                root = posixpath.join(run.artifact_uri, path) if path else run.artifact_uri
            else:
                root = source or run.artifact_uri
            name = posixpath.basename(root.rstrip("/")) or registered.name
            info = LoggedModelInfo(None, name, name, root, run.run_id)
        files = self._list_roots([(root, info.folder, info.folder)], on_listed, cancel)
        return ArtifactTree(tuple(files), (info,))

    def run_tree(
        self,
        run: RunInfo,
        *,
        on_listed: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ArtifactTree:
        """The run's own artifacts plus each logged model as a ``NAME/`` folder, listed in parallel."""
        top = self.list_level(run.artifact_uri, "")
        models = self._model_folders(run, top)
        roots = [(run.artifact_uri, "", None)] + [(m.artifact_location, m.folder, m.folder) for m in models]
        files = self._list_roots(roots, on_listed, cancel, first_level={run.artifact_uri: top})
        # MLflow 2 stored models inside the run's artifacts: a folder holding MLmodel is a model too.
        logged_folders = {m.folder for m in models}
        for f in files:
            folder, _, base = f.path.rpartition("/")
            if base == "MLmodel" and f.model is None and folder not in logged_folders:
                name = posixpath.basename(folder) or run.run_name
                models.append(LoggedModelInfo(None, name, folder, posixpath.join(run.artifact_uri, folder)))
        return ArtifactTree(tuple(files), tuple(models))

    def _model_folders(self, run: RunInfo, top: list) -> list[LoggedModelInfo]:
        """The run's logged models, each named by the folder it appears as next to the top-level entries."""
        taken = {posixpath.basename(entry.path) for entry in top}
        models: list[LoggedModelInfo] = []
        for model in self._logged_models(run):
            folder = model.name if model.name not in taken else f"{model.name}-{model.model_id}"
            taken.add(folder)
            models.append(
                LoggedModelInfo(model.model_id, model.name, folder, model.artifact_location, model.source_run_id)
            )
        return models

    def first_level(self, run: RunInfo) -> tuple[list[LevelEntry], tuple[LoggedModelInfo, ...]]:
        """The top of the run's tree without listing it all: its own top-level artifacts plus each logged
        model as a folder (one listing and one search), for a browser that shows something at once."""
        top = self.list_level(run.artifact_uri, "")
        models = self._model_folders(run, top)
        entries = self._level_entries(run.artifact_uri, "", top, "")
        entries += [LevelEntry(model.folder, True, None, model.folder) for model in models]
        return sorted(entries, key=lambda e: e.path), tuple(models)

    def folder_level(self, run: RunInfo, folder: str, logged_models: tuple[LoggedModelInfo, ...]) -> list[LevelEntry]:
        """One folder of the tree ``first_level`` began (``logged_models`` as it returned them), listed on
        its own: for a folder opened while the whole tree is still being listed."""
        root_uri, prefix = run.artifact_uri, ""
        for model in logged_models:
            if model.model_id is not None and (folder == model.folder or folder.startswith(model.folder + "/")):
                root_uri, prefix = model.artifact_location, model.folder
                break
        store_path = folder[len(prefix) :].lstrip("/")
        listed = self.list_level(root_uri, store_path)
        return sorted(self._level_entries(root_uri, store_path, listed, prefix), key=lambda e: e.path)

    def _level_entries(self, root_uri: str, store_path: str, listed: list, prefix: str) -> list[LevelEntry]:
        """MLflow FileInfo entries of ``store_path`` as LevelEntry paths of the run's tree (under ``prefix``)."""
        # Proto3 JSON drops zero values: over HTTP a file listed without a size is empty, not unknown.
        zero_when_unsized = _is_http_repository(self.repository(root_uri))
        return [
            LevelEntry(
                path=posixpath.join(prefix, _checked_child(store_path, entry.path)),
                is_dir=entry.is_dir,
                size=entry.file_size if entry.file_size is not None or entry.is_dir or not zero_when_unsized else 0,
            )
            for entry in listed
        ]

    def list_level(self, root_uri: str, path: str):
        """One level of a store folder: MLflow FileInfo entries (directories have ``file_size=None``)."""
        return _list_artifacts(self.repository(root_uri), path, self.tracking_uri)

    def _list_roots(
        self,
        roots: list[tuple[str, str, str | None]],
        on_listed: Callable[[int], None] | None,
        cancel: threading.Event | None,
        first_level: dict[str, list] | None = None,
    ) -> list[ArtifactFile]:
        """Breadth-first listing of several store roots at once, ``self.jobs`` folders in flight.

        ``roots`` holds (store URI, local folder prefix, model folder or None)."""
        files: dict[str, ArtifactFile] = {}
        seen_dirs: set[tuple[str, str]] = set()
        local_dirs: set[str] = set()  # folders as they land locally, to catch a name that is both
        repos = {uri: self.repository(uri) for uri, _, _ in roots}
        # MLflow's REST listing is proto3 JSON, which drops zero values: a file listed over HTTP
        # without a size is an empty file, not one of unknown size.
        zero_when_unsized = {uri: _is_http_repository(repo) for uri, repo in repos.items()}
        first_level = first_level or {}

        def list_one(uri: str, path: str) -> list:
            if uri in first_level and path == "":
                return first_level.pop(uri)
            return _list_artifacts(repos[uri], path, self.tracking_uri)

        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="kitmlflow-list") as pool:
            pending: dict[Future, tuple[str, str, str, str | None, int]] = {}
            # Finished listings arrive here one by one: waiting on every pending future at each step
            # (concurrent.futures.wait) costs time in the number queued, quadratic on a wide tree.
            completed: queue.SimpleQueue[Future] = queue.SimpleQueue()

            def submit(uri: str, path: str, prefix: str, model: str | None, depth: int) -> None:
                if (uri, path) in seen_dirs:
                    return
                if depth > MAX_TREE_DEPTH:
                    raise ServerUnreachableError(
                        f"The artifact listing is deeper than {MAX_TREE_DEPTH} folders at {path!r}; refusing it."
                    )
                local_dir = f"{prefix}/{path}" if prefix and path else (prefix or path)
                if local_dir in files:
                    raise _both_file_and_folder(local_dir)
                seen_dirs.add((uri, path))
                local_dirs.add(local_dir)
                if len(files) + len(seen_dirs) > MAX_TREE_FILES:
                    raise ServerUnreachableError(
                        f"The artifact listing has more than {MAX_TREE_FILES:,} files and folders; refusing it."
                    )
                future = pool.submit(list_one, uri, path)
                pending[future] = (uri, path, prefix, model, depth)
                future.add_done_callback(completed.put)

            try:
                for uri, prefix, model in roots:
                    submit(uri, "", prefix, model, 0)
                while pending:
                    if cancel is not None and cancel.is_set():
                        raise InterruptedByUser("Listing cancelled.")
                    try:
                        future = completed.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    uri, path, prefix, model, depth = pending.pop(future)
                    for entry in future.result():
                        child = _checked_child(path, entry.path)
                        if entry.is_dir:
                            submit(uri, child, prefix, model, depth + 1)
                            continue
                        if model is not None and child in _CLIENT_SIDE_FILES:
                            continue
                        local = f"{prefix}/{child}" if prefix else child
                        if local in files:
                            continue  # a server that lists a name twice gets it once
                        if local in local_dirs:
                            raise _both_file_and_folder(local)
                        size = entry.file_size
                        if size is None and zero_when_unsized[uri]:
                            size = 0
                        if size is not None and (not isinstance(size, int) or size < 0):
                            raise ServerUnreachableError(
                                f"The artifact store listed {local!r} with the size {size!r}; refusing the listing."
                            )
                        files[local] = ArtifactFile(local, size, uri, child, model)
                        if len(files) + len(seen_dirs) > MAX_TREE_FILES:
                            raise ServerUnreachableError(
                                f"The artifact listing has more than {MAX_TREE_FILES:,} files and folders; refusing it."
                            )
                    if on_listed is not None:
                        on_listed(len(files))
            finally:
                for future in pending:
                    future.cancel()
        return sorted(files.values(), key=lambda f: f.path)


def _list_artifacts(repository, path: str, tracking_uri: str) -> list:
    """One folder listing. The server answers for what it lists: an entry MLflow's own client refuses
    (``validate_path_is_safe``: ``..``, absolute, backslashes; raised as INVALID_PARAMETER_VALUE) or a
    listing that does not parse is a broken or hostile server (exit 6), never bad input of ours (exit 2)."""
    from mlflow.exceptions import MlflowException

    what = f"the artifacts at {path or '/'}"
    try:
        return repository.list_artifacts(path or None)
    except KeyboardInterrupt:
        raise
    except MlflowException as exc:
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
            raise ServerUnreachableError(
                f"The artifact store listed an unsafe or invalid path under {path or '/'!r} "
                f"({scrub_secrets(exc.message)[:200]}); refusing to continue."
            ) from exc
        raise translate_error(exc, what, tracking_uri) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ServerUnreachableError(
            f"The tracking server {redact_uri(tracking_uri)} sent a malformed listing of {path or '/'!r} "
            f"({scrub_secrets(str(exc))[:200]}); refusing it."
        ) from exc
    except Exception as exc:  # MLflow and requests raise many unrelated types; all are mapped
        raise translate_error(exc, what, tracking_uri) from exc


def _both_file_and_folder(local: str) -> ServerUnreachableError:
    return ServerUnreachableError(f"The artifact store listed {local!r} both as a file and as a folder; refusing it.")


def _is_http_repository(repository: object) -> bool:
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    return isinstance(repository, HttpArtifactRepository)


def _checked_child(parent: str, listed: str) -> str:
    """A listed path must be a direct, clean child of the folder that was listed."""
    clean = posixpath.normpath(listed) if listed else ""
    parts = clean.split("/")
    bad = (
        not listed
        or listed.startswith("/")
        or "\\" in listed
        or "\x00" in listed
        or ".." in parts
        or clean in (".", "")
        or (parent and not clean.startswith(parent + "/"))
        or clean.count("/") != (parent.count("/") + 1 if parent else 0)
    )
    if bad:
        raise ServerUnreachableError(
            f"The artifact store listed an unsafe or unexpected path {listed!r} under {parent or '/'!r}; "
            "refusing to continue."
        )
    return clean


def ensure_finished(run: RunInfo) -> None:
    if run.status != "FINISHED":
        raise RunNotFinishedError(
            f"Run {run.run_name} ({run.run_id}) is {run.status}, not FINISHED: its artifacts may be incomplete.",
            hint="Import a FINISHED run, or wait for this one to finish.",
        )
