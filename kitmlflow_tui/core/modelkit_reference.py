"""The ModelKit reference: a ``-t``/``--to`` value (and the wizard's tag and "Push to" fields), parsed once, at
the edge, into a :class:`ModelKitRef` that every step takes (the packers, the push, sync, the Kitfile's package).

The grammar is kit's (``pkg/lib/repo/util``, then oras-go's ``registry/reference.go``); :func:`parse_modelkit_reference`
adds what kit accepts but then mis-stores or fails on, and :func:`parse_push_reference` the rule of a push: a
registry must be named, since kit's default ``localhost`` is local storage, not a server.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from kitmlflow_tui.core.errors import BadInputError

DEFAULT_REGISTRY = "localhost"
DEFAULT_TAG = "latest"

# oras-go's rules (registry/reference.go), which kit applies after its own.
_REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")
_REGISTRY_RE = re.compile(r"(?:[A-Za-z0-9_~!$&'()*+,;=%-]|\.)+(?::[0-9]*)?|\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")
_START_END_ALNUM = re.compile(r"[a-z0-9](.*[a-z0-9])?")


def parse_model_reference(text: str) -> tuple[str, str, str]:
    """``(registry, repository, tag)`` for a ``-t`` value, by kit's rules (``pkg/lib/repo/util``).

    ``mymodel:v1`` → ``localhost/mymodel``; ``org/name`` → ``localhost/org/name``; a first part with
    ``.`` or ``:`` is a registry; no tag means ``latest``; the repository must be lowercase.
    Like kit, ``localhost/name`` is the repository ``localhost/name`` (``localhost`` has no ``.``).
    Digests and kit's ``repo:tag1,tag2`` extra tags are refused: a pack names one tag.
    """
    raw = text.strip()
    if not raw:
        raise BadInputError("The ModelKit tag is empty.", hint="Use -t NAME[:TAG], e.g. -t mymodel:v1.")
    if "," in raw:
        raise BadInputError(f"Give one ModelKit tag, not a list: {raw!r}.")
    if "@" in raw or _DIGEST_RE.fullmatch(raw):
        raise BadInputError(f"A ModelKit is tagged with a name, not a digest: {raw!r}.")
    registry = DEFAULT_REGISTRY
    rest = raw
    first, slash, remainder = raw.partition("/")
    if slash and (":" in first or "." in first):
        registry, rest = first, remainder
    repository, colon, tag = rest.partition(":")
    if not colon:
        tag = DEFAULT_TAG
    if repository.lower() != repository:
        raise BadInputError(f"Repository name must be lowercase: {repository!r} (in {raw!r}).")
    if not _START_END_ALNUM.search(repository) or not _REPOSITORY_RE.fullmatch(repository):
        raise BadInputError(
            f"Invalid repository name {repository!r} (in {raw!r}).",
            hint="Use lowercase letters and digits, separated by '.', '_', '__', '-' or '/'.",
        )
    if not _REGISTRY_RE.fullmatch(registry):
        raise BadInputError(f"Invalid registry {registry!r} (in {raw!r}).")
    if not _TAG_RE.fullmatch(tag):
        raise BadInputError(
            f"Invalid tag {tag!r} (in {raw!r}).",
            hint="A tag is up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'.",
        )
    return registry, repository, tag


# docker/distribution's domain rule (what a registry is asked for over the network): host name labels,
# an IPv4 address or a bracketed IPv6 one, and an optional port.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
NAME_MAX_BYTES = 255  # a file name on Linux, macOS and Windows file systems
_LONGEST_SUFFIX = "-index.json"


def validate_registry(text: str) -> str:
    """A registry host (``host[:port]``, ``[v6]:port``) as a reference would name it, or exit 2."""
    host = text.strip()
    if not host or "/" in host or not _REGISTRY_RE.fullmatch(host):
        raise BadInputError(f"Invalid registry {text!r}.", hint="Name a registry as host[:port], e.g. ghcr.io.")
    return host


def format_reference(registry: str, repository: str, tag: str) -> str:
    """The ModelKit's name as ``kit list`` shows it and every kit command (inspect, unpack, tag, push) finds
    it: ``repository:tag`` on the default registry, ``registry/repository:tag`` on another. kit 1.7.0
    cannot find ``localhost/name:tag`` for a ModelKit packed as ``name:tag``: it reads ``localhost/name``
    as a repository (tests/kit_vectors/recorded/references.json). The name parses back to the same parts."""
    return f"{repository}:{tag}" if registry == DEFAULT_REGISTRY else f"{registry}/{repository}:{tag}"


def repo_file_stem(registry: str, repository: str) -> str:
    # kit: base64.URLEncoding (padded) of "registry/repository".
    return base64.urlsafe_b64encode(f"{registry}/{repository}".encode()).decode("ascii")


@dataclass(frozen=True)
class ModelKitRef:
    """``registry/repository:tag``; ``registry`` is ``host[:port]`` as the user typed it, ``localhost`` when none was
    named (kit's local default). ``tag_given``: the text named the tag (``-t mymodel`` is ``mymodel:latest`` to kit,
    but names no version of the model)."""

    registry: str
    repository: str
    tag: str
    tag_given: bool = field(default=True, compare=False)

    def __str__(self) -> str:
        return format_reference(self.registry, self.repository, self.tag)

    @property
    def names_registry(self) -> bool:
        return self.registry != DEFAULT_REGISTRY

    @property
    def name(self) -> str:
        """The repository's last part: ``registry.example.com/org/churn:v3`` → ``churn``."""
        return self.repository.rsplit("/", 1)[-1]

    @property
    def version(self) -> str | None:
        """The tag the text named (``v3``), None when it named none."""
        return self.tag if self.tag_given else None


def parse_modelkit_reference(text: str) -> ModelKitRef:
    """A ``-t`` value to pack under, or exit 2: :func:`parse_model_reference`, then refused where kit accepts a name it
    then mis-stores or fails on. ``../x:v1`` is kit's registry ``..`` (a path, not a host); a repository whose
    storage file name (``base64(registry/repository)-index.json``) is over 255 bytes makes ``kit pack`` fail with
    "file name too long" after the whole download."""
    registry, repository, tag = parse_model_reference(text)
    if not _REGISTRY_HOST_RE.fullmatch(registry):
        raise BadInputError(
            f"Invalid registry {registry!r} (in {text.strip()!r}): a registry is a host name or address "
            "with an optional port.",
            hint="Use -t NAME[:TAG], or -t REGISTRY/REPOSITORY[:TAG] with a registry such as registry.example.com:5000.",
        )
    stem = repo_file_stem(registry, repository)
    if len(stem) + len(_LONGEST_SUFFIX) > NAME_MAX_BYTES:
        longest = (NAME_MAX_BYTES - len(_LONGEST_SUFFIX)) // 4 * 3
        raise BadInputError(
            f"Repository name too long: {registry}/{repository[:40]}… is {len(f'{registry}/{repository}'.encode())} "
            f"bytes; kit's local storage takes at most {longest} (it names a file after it, in base64).",
            hint="Use a shorter repository name.",
        )
    tag_given = ":" in text.strip().rpartition("/")[2]
    return ModelKitRef(registry, repository, tag, tag_given=tag_given)


def parse_push_reference(text: str) -> ModelKitRef:
    """A push destination, or exit 2: :func:`parse_modelkit_reference`, and a registry must be named."""
    ref = parse_modelkit_reference(text)
    if not ref.names_registry:  # kit names a registry only by a first part with "." or ":"
        raise BadInputError(
            f"{text.strip()!r} names no registry, so there is nowhere to push it.",
            hint="Name the registry first, e.g. -t registry.example.com/org/model:v1 or -t localhost:5000/model:v1.",
        )
    return ref
