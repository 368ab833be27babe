"""The exception family of kitmlflow: one class per exit code of the command-line contract (docs/architecture.md).

Errors are raised where they are detected, carry a message a user can act on (and optionally a
hint saying what to do), and are turned into text only by the CLI and the TUI.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from kitmlflow_tui.core import settings

if TYPE_CHECKING:
    from kitmlflow_tui.core.sync import SyncResult


class KitmlflowError(Exception):
    """Base of every error kitmlflow reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class BadInputError(KitmlflowError):
    """A URI, tag, profile, glob, size or flag that cannot be used."""

    exit_code = 2


class AuthError(KitmlflowError):
    """The tracking server refused who we are or what we asked for."""

    exit_code = 3


class CredentialsRefusedError(AuthError):
    """A registry (or its token service) answered that it does not know these credentials (HTTP 401): unlike a
    refused permission or a missing client certificate, what helps is other credentials."""


class NotFoundError(KitmlflowError):
    """An experiment, run, model or artifact path that does not exist."""

    exit_code = 4


class RunDeletedError(NotFoundError):
    """The run (a registered version's source run included) is in MLflow's trash: as good as gone, whatever reads
    it (``import``, ``download``, ``sync``)."""


class RunNotFinishedError(KitmlflowError):
    """The run is RUNNING, FAILED, KILLED or SCHEDULED: its artifacts may be incomplete."""

    exit_code = 5


class ServerUnreachableError(KitmlflowError):
    """The tracking server (or the registry) cannot be reached or did not answer in time."""

    exit_code = 6


class ServerProtocolError(ServerUnreachableError):
    """The server answered, but not as its protocol says (a malformed, unsafe or unbounded answer). The same exit
    code as unreachable: the user typed nothing wrong, and the server is not one kitmlflow can work with."""


class DownloadError(KitmlflowError):
    """A transfer failed, was incomplete, did not match the listing, or the disk is too small."""

    exit_code = 7


class PackError(KitmlflowError):
    """Writing the ModelKit failed."""

    exit_code = 8


class PushError(KitmlflowError):
    """Pushing to a registry failed after it answered; the ModelKit stays in local storage."""

    exit_code = 9


class VerificationError(KitmlflowError):
    """``kitmlflow verify``: no attestation, a bad signature, the subject of another manifest, files or MLflow that
    do not match what the attestation records."""

    exit_code = 10


class SyncFailedError(KitmlflowError):
    """A sync tried every version and left some out of step (failed, in conflict): its exit code is the first
    such record's, as the command's; ``result`` holds every record. Raised by the Python API, where a result
    with failures must not pass for a success; the command line reports the records themselves."""

    def __init__(self, result: SyncResult) -> None:
        failed = [record for record in result.records if record.exit_code]
        first = failed[0]
        super().__init__(
            f"{len(failed)} of {len(result.records)} records of {result.model} → {result.target} are not in step; "
            f"version {first.version} ({first.tag}): {first.reason}",
            hint=first.hint,
        )
        self.exit_code = result.exit_code
        self.result = result


class InterruptedByUser(KitmlflowError):
    """Ctrl-C or a cancel in the wizard."""

    exit_code = 130

    def __init__(self, message: str = "Interrupted.", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


def as_kitmlflow_error(exc: BaseException) -> KitmlflowError:
    """Any failure as one a user can read: ours as they are, anything else as one line without secrets."""
    if isinstance(exc, KitmlflowError):
        return exc
    return KitmlflowError(f"Unexpected error: {type(exc).__name__}: {scrub_secrets(str(exc))}")


# Secrets this process holds that no environment variable names: registry passwords and tokens.
_registered_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Have ``scrub_secrets`` mask ``value`` from now on (a password, a token, a Basic header's base64)."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def secrets_to_mask() -> list[str]:
    """The registered secrets, those of this process's environment, and the basic-auth header value MLflow
    makes of its user and password; longest first, so that one inside another is masked whole."""
    import base64

    secrets = settings.secret_values() + list(_registered_secrets)
    user, password = settings.TRACKING_USERNAME.raw(), settings.TRACKING_PASSWORD.raw()
    if user and password:
        secrets.append(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
    return sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)


# A name whose value is a secret, in ``name=value`` (query strings, connection strings, command lines) or
# ``"name": "value"`` (JSON): password, token, secret, signature, credential anywhere at its end (X-Amz-Signature,
# access_token, client_secret), key, sig and auth only as a whole word (api_key, x-api-key, sig; not monkey).
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|token|secret|signature|credential)"
    r"|(?:[A-Za-z0-9_.-]*[_.-])?(?:key|sig|auth|pass)"
)
_SECRET_ASSIGNMENT = rf"(?i)(?<![\w.-])({_SECRET_NAME})(\s*=\s*)(?:(['\"])(?:(?!\3).)+\3|[^\s&;,'\"]+)"
_SECRET_JSON_MEMBER = rf"(?i)(['\"])({_SECRET_NAME})\1(\s*:\s*)(['\"])(?:(?!\4).)+\4"
# Tokens whose shape names them: GitHub, Hugging Face, Slack, OpenAI-style keys.
_SECRET_SHAPES = r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{20,}|hf_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,})"
# Text none of the rules below but the known secrets and the token shapes can touch: each other rule needs a
# space, '=', ':' or a quote (a name, an id, a version number, a path is left as it is without running them).
_PLAIN = r"[^\s=:'\"]*"


_BASE64_ALPHABETS = ("A-Za-z0-9+/", "A-Za-z0-9_-")


def _encoded(text: str) -> str:
    """A pattern for ``text`` as written or percent-encoded, character by character (any hex case, ``+`` for a
    space), as a server may repeat a value it received in a URL or a form."""
    parts = []
    for char in text:
        escaped = "".join(f"%{byte:02x}" for byte in char.encode())
        options = [re.escape(char), "(?i:" + re.escape(escaped) + ")"] + (["\\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


def _base64_patterns(secret: bytes) -> list[str]:
    """Patterns for ``secret`` inside base64 text (standard or URL-safe alphabet), wherever it starts in the encoded
    bytes: at each of the three alignments, the characters that only the secret's bits decide, with the one
    character on each side that mixes them with a neighbour's. So a Basic header's value, or any encoded
    document holding the secret, has it masked."""
    import base64

    patterns = []
    for alphabet in _BASE64_ALPHABETS:
        char = f"(?:[{alphabet}]|%(?i:2b|2f))" if "+" in alphabet else f"[{alphabet}]"
        for skip in range(3):
            encoded = base64.b64encode(bytes(skip) + secret).decode().rstrip("=")
            if "_" in alphabet:
                encoded = encoded.replace("+", "-").replace("/", "_")
            first, end = -(-8 * skip // 6), 8 * (skip + len(secret)) // 6
            core = encoded[first:end]
            if len(core) < 4:
                continue
            leading = char if 8 * skip % 6 else ""
            trailing = f"(?:{char}(?:=|%3[dD]){{0,2}})?" if 8 * (skip + len(secret)) % 6 else "(?:(?:=|%3[dD]){0,2})"
            patterns.append(leading + _encoded(core) + trailing)
    return patterns


@functools.lru_cache(maxsize=256)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    """One secret as written, percent-encoded, or base64-encoded (see the two helpers above)."""
    return re.compile("|".join([_encoded(secret), *_base64_patterns(secret.encode())]))


def scrub_secrets(text: str, secrets: list[str] | None = None) -> str:
    """Mask every credential this process knows of (also percent- or base64-encoded), user info in URLs, the
    values of secret-named fields (``password=``, ``?token=``, ``"api_key": "…"``) and well-known token shapes,
    in text meant for output or for a ModelKit. ``secrets``: ``secrets_to_mask()`` gathered once by a caller
    that scrubs many values in a row (reading the environment costs more than the rules)."""
    known = secrets_to_mask() if secrets is None else secrets
    patterns = [_secret_pattern(value) for value in known]
    if re.fullmatch(_PLAIN, text) and not any(p.search(text) for p in patterns) and not re.search(_SECRET_SHAPES, text):
        return text
    for pattern in patterns:
        text = pattern.sub("***", text)
    text = re.sub(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9._~+/=-]+", r"\1\2 ***", text)
    # An authorization value without its header's name (a server repeating it): a token has a digit or a sign
    text = re.sub(r"\b(Basic|Bearer) (?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}", r"\1 ***", text)
    text = re.sub(_SECRET_ASSIGNMENT, lambda m: f"{m[1]}{m[2]}{m[3] or ''}***{m[3] or ''}", text)
    text = re.sub(_SECRET_JSON_MEMBER, r"\1\2\1\3\4***\4", text)
    text = re.sub(_SECRET_SHAPES, "***", text)
    # URL user info with a password, up to the authority's last @ (a password may hold one); without one only
    # in http(s) URLs, where a lone user is usually a token (https://TOKEN@github.com): wasbs://container@account
    # and ssh://git@host name no secret.
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)(?=[^/\s?#@]*:[^/\s?#]*@)[^/\s?#]+@", r"\1***@", text)
    return re.sub(r"(?i)\b((?:[a-z][a-z0-9.-]*\+)?https?://)[^/\s?#:@]+@", r"\1***@", text)
