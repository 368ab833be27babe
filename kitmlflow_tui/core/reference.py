"""Step 1 of the data flow: the ``mlflow://`` grammar (docs/architecture.md) turned into a reference value.

Accepted forms (``[host/]`` is ``host[:port][/prefix]/``, optional):

    mlflow://[host/]experiments/{exp}/runs/{run}
    mlflow://[host/]runs/{run}
    mlflow://[host/]models/{name}/{version}
    mlflow://[host/]models/{name}@{alias}
    mlflow://[host/]models/{name}              (every version: ``kitmlflow sync`` only)
    mlflow://[host/]experiments/{exp}          (wizard only)
    mlflow://[host]                            (wizard only)

``mlflow://`` means https, except for loopback hosts (http); ``mlflow+http://`` and ``mlflow+https://``
force the scheme. The path is read from its end, so a server prefix may hold any segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError, scrub_secrets

ACCEPTED_FORMS = """Accepted forms ([host/] is host[:port][/prefix]/ and is optional):
  mlflow://[host/]experiments/EXP_ID/runs/RUN_ID
  mlflow://[host/]runs/RUN_ID
  mlflow://[host/]models/NAME/VERSION
  mlflow://[host/]models/NAME@ALIAS
  mlflow://[host/]experiments/EXP_ID      (wizard only)
  mlflow://[host]                         (wizard only)
mlflow:// uses https (http for localhost, 127.* and [::1]); mlflow+http:// and mlflow+https:// force it."""

_SCHEMES = {"mlflow": None, "mlflow+http": "http", "mlflow+https": "https"}
_KEYWORDS = {"experiments", "runs", "models"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VERSION = re.compile(r"^[0-9]{1,10}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


@dataclass(frozen=True)
class RunRef:
    """One run; ``experiment_id`` is None when the URI did not name one."""

    tracking_uri: str | None
    run_id: str
    experiment_id: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, by number or by alias (at most one of the two; neither means every
    version of the model, which only ``parse_reference(..., all_versions=True)`` gives: ``kitmlflow sync``)."""

    tracking_uri: str | None
    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def all_versions(self) -> bool:
        return self.version is None and self.alias is None


@dataclass(frozen=True)
class BrowseRef:
    """A server, or one experiment on it: a place for the wizard to open at, nothing to import."""

    tracking_uri: str | None
    experiment_id: str | None = None


Reference = RunRef | ModelRef | BrowseRef


def _bad(uri: str, why: str) -> BadInputError:
    return BadInputError(f"Invalid MLflow reference {redact_uri(uri)!r}: {why}.", hint=ACCEPTED_FORMS)


def _is_loopback(host: str) -> bool:
    host = host.lower()
    return host == "localhost" or host.startswith("127.") or host == "[::1]"


def _server_uri(uri: str, forced_scheme: str | None, netloc: str, prefix: list[str]) -> str:
    if "@" in netloc:
        raise BadInputError(
            "Credentials in the URI are not accepted (they would end up in shell history and logs).",
            hint="Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, instead.",
        )
    host, port = netloc, None
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _bad(uri, f"unclosed IPv6 address in host {netloc!r}")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise _bad(uri, f"unexpected text after the IPv6 address in {netloc!r}")
            port = rest[1:]
        if not _IPV6.match(host):
            raise _bad(uri, f"{host!r} is not an IPv6 address")
    else:
        if ":" in netloc:
            host, port = netloc.split(":", 1)
        if not _HOSTNAME.match(host):
            raise _bad(uri, f"{host!r} is not a host name")
    if port is not None and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise _bad(uri, f"port {port!r} is not a number from 1 to 65535")
    scheme = forced_scheme or ("http" if _is_loopback(host) else "https")
    path = "".join("/" + quote(segment, safe=_SEGMENT_SAFE) for segment in prefix)
    return f"{scheme}://{host.lower()}{':' + port if port else ''}{path}"


def parse_reference(uri: str, *, all_versions: bool = False) -> Reference:
    """Parse an ``mlflow://`` URI. Raises BadInputError (exit 2) listing the accepted forms.

    With ``all_versions``, ``models/NAME`` (no version, no alias) is accepted: every version of the model."""
    if not isinstance(uri, str) or not uri.strip():
        raise _bad(str(uri), "it is empty")
    uri = uri.strip()
    scheme, rest = _checked_scheme(uri)
    netloc, segments = _host_and_segments(uri, rest)
    forced = _SCHEMES[scheme.lower()]
    if forced and not netloc:
        raise _bad(uri, f"{scheme}:// needs a host")
    path = _decoded(uri, segments)
    tail, prefix = _split_tail(uri, path, all_versions)
    if prefix and not netloc:
        raise _bad(uri, f"the path {'/'.join(path)!r} is not one of the accepted forms")
    tracking_uri = _server_uri(uri, forced, netloc, prefix) if netloc else None
    return _reference_of_tail(uri, tracking_uri, tail)


def _checked_scheme(uri: str) -> tuple[str, str]:
    """The scheme and the text after ``://``, refused when it holds what the grammar never does."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise _bad(uri, "it must start with mlflow://, mlflow+http:// or mlflow+https://")
    if "?" in rest or "#" in rest:
        raise _bad(uri, "query strings and fragments are not part of the grammar")
    if any(ord(c) < 0x20 or c in " \\" for c in rest):
        raise _bad(uri, "it contains spaces, backslashes or control characters (percent-encode them)")
    return scheme, rest


def _host_and_segments(uri: str, rest: str) -> tuple[str, list[str]]:
    """The host part ("" when the URI names none) and the path segments after it, still percent-encoded."""
    segments = rest.split("/")
    while segments and segments[-1] == "":
        segments.pop()  # a trailing slash means nothing
    if any(s == "" for s in segments[1:]):
        raise _bad(uri, "it contains an empty path segment (//)")
    netloc = ""
    if segments and segments[0] not in _KEYWORDS:
        netloc = segments.pop(0)
    elif segments and segments[0] == "":
        segments.pop(0)
    return netloc, segments


def _decoded(uri: str, segments: list[str]) -> list[str]:
    try:
        return [unquote(s, errors="strict") for s in segments]
    except UnicodeDecodeError:
        raise _bad(uri, "it has a percent-encoding that is not UTF-8") from None


def _reference_of_tail(uri: str, tracking_uri: str | None, tail: list[str]) -> Reference:
    """The reference the path's end names (``tail`` is one of the shapes :func:`_split_tail` returns)."""
    if not tail:
        return BrowseRef(tracking_uri)
    kind = tail[0]
    if kind == "experiments" and len(tail) == 2:
        return BrowseRef(tracking_uri, _checked_id(uri, "experiment id", tail[1]))
    if kind == "experiments":
        return RunRef(tracking_uri, _checked_id(uri, "run id", tail[3]), _checked_id(uri, "experiment id", tail[1]))
    if kind == "runs":
        return RunRef(tracking_uri, _checked_id(uri, "run id", tail[1]))
    return _model_ref(uri, tracking_uri, tail)


def _model_ref(uri: str, tracking_uri: str | None, tail: list[str]) -> ModelRef:
    """``models/NAME``, ``models/NAME@ALIAS`` or ``models/NAME/VERSION``."""
    if len(tail) == 2 and "@" not in tail[1]:
        return ModelRef(tracking_uri, _checked_name(uri, tail[1]))  # every version (_split_tail allowed it)
    if len(tail) == 2:
        name, _, alias = tail[1].rpartition("@")
        return ModelRef(tracking_uri, _checked_name(uri, name), alias=_checked_id(uri, "alias", alias))
    if not _VERSION.match(tail[2]):
        raise _bad(uri, f"model version {tail[2]!r} must be a number (use NAME@ALIAS for an alias)")
    return ModelRef(tracking_uri, _checked_name(uri, tail[1]), version=str(int(tail[2])))


def _split_tail(uri: str, path: list[str], all_versions: bool = False) -> tuple[list[str], list[str]]:
    """Split the path into (the reference part at its end, the server prefix before it)."""
    size = _tail_size(path)
    if not size:
        _refuse_unfinished_tail(uri, path)
        return [], path
    tail = path[-size:]
    if tail[0] == "models" and size == 2 and "@" not in tail[1] and not all_versions:
        raise _bad(
            uri,
            "a model needs a version (models/NAME/VERSION) or an alias (models/NAME@ALIAS); "
            "every version (models/NAME) is for kitmlflow sync",
        )
    return tail, path[:-size]


def _tail_size(path: list[str]) -> int:
    """How many segments at the path's end name a reference (0: none; what is before them is a server prefix).
    The order matters: ``experiments/E/runs/R`` before ``runs/R``, and ``runs/R`` before ``models/N/V``."""
    n = len(path)
    if n >= 4 and path[-4] == "experiments" and path[-2] == "runs":
        return 4
    if n >= 2 and path[-2] == "runs":
        return 2
    if n >= 3 and path[-3] == "models":
        return 3
    if n >= 2 and path[-2] in ("models", "experiments"):
        return 2
    return 0


def _refuse_unfinished_tail(uri: str, path: list[str]) -> None:
    """A path that names no reference but ends as one begins (a keyword without its id) is a mistake, not a
    server prefix."""
    n = len(path)
    if path and path[-1] in _KEYWORDS:
        needed = {"experiments": "an experiment id", "runs": "a run id", "models": "a model name"}[path[-1]]
        raise _bad(uri, f"{path[-1]!r} must be followed by {needed}")
    if n >= 3 and path[-3] == "experiments" and path[-1] != "runs":
        raise _bad(uri, f"unexpected {path[-1]!r} after the experiment id")
    if n >= 3 and path[-3] == "experiments":
        raise _bad(uri, "'runs' must be followed by a run id")


def _checked_id(uri: str, what: str, value: str) -> str:
    if not _ID.match(value):
        raise _bad(uri, f"{what} {value!r} may hold only letters, digits, '.', '_' and '-'")
    return value


def _checked_name(uri: str, name: str) -> str:
    if not name or name != name.strip() or any(ord(c) < 0x20 for c in name):
        raise _bad(uri, f"model name {name!r} is empty or has surrounding spaces")
    return name


def require_importable(ref: Reference) -> RunRef | ModelRef:
    """Headless commands need a run or a registered model; a server or experiment is wizard-only."""
    if isinstance(ref, BrowseRef):
        raise BadInputError(
            f"{format_reference(ref)} names no run: headless commands need .../runs/RUN_ID or "
            "models/NAME/VERSION (or models/NAME@ALIAS).",
            hint="Open it in the wizard (kitmlflow URI) to pick a run.",
        )
    if isinstance(ref, ModelRef) and ref.all_versions:
        raise BadInputError(
            f"{format_reference(ref)} names every version of the model; an import takes one: "
            "models/NAME/VERSION or models/NAME@ALIAS.",
            hint="kitmlflow sync takes every version.",
        )
    return ref


def resolve_tracking_uri(from_reference: str | None, from_flag: str | None) -> str:
    """The tracking URI to use: the URI's host, else --tracking-uri, else MLFLOW_TRACKING_URI. A URI host that
    disagrees with --tracking-uri is an error, not a silent pick; none at all is an error too (exit 2), never
    MLflow's own default: that is a new ``./mlflow.db`` in whatever folder the command runs, an empty store that
    only looks like a server (and MLflow logs its table creation there)."""
    if from_reference and from_flag and from_reference.rstrip("/") != from_flag.rstrip("/"):
        raise BadInputError(
            f"The reference names the server {redact_uri(from_reference)} but --tracking-uri says "
            f"{redact_uri(from_flag)}.",
            hint="Drop the host from the mlflow:// URI or drop --tracking-uri.",
        )
    chosen = from_reference or from_flag or settings.TRACKING_URI.raw()
    if not chosen:
        raise no_tracking_server(Path.cwd())
    return chosen


def no_tracking_server(folder: Path, *, ways: str = "", flag: str = "--tracking-uri") -> BadInputError:
    """No server named anywhere (exit 2): the ways to name one (``ways``; the headless commands' by default), and
    a store ``folder`` already holds, as ``flag URI``."""
    hint = ways or (
        "Name one: a host in the URI (mlflow://HOST/runs/RUN), --tracking-uri URI, or MLFLOW_TRACKING_URI; "
        "kitmlflow demo builds a local demo store to try it on."
    )
    if (folder / "mlflow.db").is_file():
        hint += f"\nThis folder holds an MLflow store: {flag} sqlite:///{(folder / 'mlflow.db').as_posix()}"
    elif (folder / "mlruns").is_dir():
        hint += f"\nThis folder holds an MLflow store: {flag} {(folder / 'mlruns').as_uri()}"
    return BadInputError(
        "No MLflow tracking server is configured (and kitmlflow does not create MLflow's default ./mlflow.db here).",
        hint=hint,
    )


def redact_uri(uri: str) -> str:
    """The URI without credentials: user info and secret-looking query values are masked (the one rule of
    :func:`kitmlflow_tui.core.errors.scrub_secrets`, which also masks them in run values and messages)."""
    return scrub_secrets(uri)


def format_reference(ref: Reference) -> str:
    """The canonical ``mlflow://`` form of a reference (without a host when it has none)."""
    host = ""
    scheme = "mlflow"
    if ref.tracking_uri:
        parts = urlsplit(ref.tracking_uri)
        if parts.scheme in ("http", "https"):
            loopback = _is_loopback(parts.hostname or "") or (parts.netloc.startswith("[::1]"))
            default = "http" if loopback else "https"
            scheme = "mlflow" if parts.scheme == default else f"mlflow+{parts.scheme}"
            host = parts.netloc.rsplit("@", 1)[-1] + parts.path.rstrip("/") + "/"
    base = f"{scheme}://{host}"
    if isinstance(ref, RunRef):
        exp = f"experiments/{ref.experiment_id}/" if ref.experiment_id else ""
        return f"{base}{exp}runs/{ref.run_id}"
    if isinstance(ref, ModelRef):
        name = quote(ref.name, safe=_SEGMENT_SAFE.replace("@", ""))
        if ref.all_versions:
            return f"{base}models/{name}"
        return f"{base}models/{name}@{ref.alias}" if ref.alias else f"{base}models/{name}/{ref.version}"
    return f"{base}experiments/{ref.experiment_id}" if ref.experiment_id else base
