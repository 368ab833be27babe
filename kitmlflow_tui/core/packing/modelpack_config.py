"""The ModelPack config (``application/vnd.cncf.model.config.v1+json``): what model-spec's schema allows, and no more.

``descriptor`` comes from the Kitfile's package (as ``kit pack --use-model-pack`` fills it: name, title, version,
authors, description, the sorted licenses of every entry) plus what the run tells: ``createdAt`` is the run's end
time, so two imports of one run give one digest; ``sourceURL``/``revision`` are the run's git repository and commit
when MLflow recorded them and the URL holds no credentials. ``config.format`` names the weights' format (the
primary weight file's suffix, else the MLflow flavor's serialization format); ``architecture``, ``family`` and
``precision`` come from a Hugging Face ``config.json`` beside the weights (read as modctl reads it), ``paramSize``
and, without a ``config.json``, ``precision`` from the safetensors headers. ``modelfs.diffIds`` is one digest per
layer, in layer order: every layer is uncompressed, so its diffId is its digest.

Everything read from the files is bounded: they are the run's, not ours.
"""

from __future__ import annotations

import json
import posixpath
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kitmlflow_tui.core.errors import scrub_secrets

HF_CONFIG_NAME = "config.json"
HF_CONFIG_MAX_BYTES = 1024 * 1024
SAFETENSORS_HEADER_MAX_BYTES = 16 * 1024 * 1024
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as json.Marshal writes it

# Weight formats a file's suffix names unambiguously (model-spec's examples: onnx, safetensors, gguf, pt).
_SUFFIX_FORMATS = {
    ".gguf": "gguf",
    ".safetensors": "safetensors",
    ".onnx": "onnx",
    ".pt": "pt",
    ".pth": "pt",
    ".pt2": "pt2",
    ".keras": "keras",
    ".h5": "h5",
    ".tflite": "tflite",
}
# safetensors dtypes → model-spec's precision names (docs/config.md's table).
_SAFETENSORS_PRECISIONS = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_PARAM_SCALES = ((10**12, "t"), (10**9, "b"), (10**6, "m"), (10**3, "k"))
# An SPDX license expression's characters (ids, "AND"/"OR"/"WITH", parentheses, "+"); free text is not one.
_SPDX_EXPRESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:-]*(?:\s+(?:AND|OR|WITH)\s+\(?[A-Za-z0-9][A-Za-z0-9.+:-]*\)?)*")

ReadFile = Callable[[str, int], "bytes | None"]  # (path, at most so many bytes) → the bytes, or None


@dataclass(frozen=True)
class RunFacts:
    """What the run adds to the config: its end time and, when MLflow recorded them, its git source."""

    created: str | None  # RFC 3339 (the run's end time)
    source_url: str | None = None
    revision: str | None = None

    @classmethod
    def from_run(cls, end_time: str | None, tags: Mapping[str, str]) -> RunFacts:
        url = tags.get("mlflow.source.git.repoURL") or None
        return cls(end_time, url if url is not None and _clean_url(url) else None, tags.get("mlflow.source.git.commit"))


def _clean_url(url: str) -> bool:
    """A URL that may be published: http(s), ssh or git, no user info, nothing a secret scrubber would hide."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https", "ssh", "git")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and scrub_secrets(url) == url
    )


def weight_format(path: str, flavor_format: str | None) -> str | None:
    """``config.format`` for a model whose primary weight file is ``path``."""
    suffix = posixpath.splitext(path)[1]
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if flavor_format:
        return flavor_format
    return suffix[1:] or None


def format_rank(path: str) -> int:
    """Weights of the formats Docker Model Runner runs come first, so the model's first weight names its format."""
    suffix = posixpath.splitext(path)[1]
    return {".gguf": 0, ".safetensors": 1}.get(suffix, 2)


def model_config(
    kitfile: Mapping[str, Any],
    diff_ids: Sequence[str],
    facts: RunFacts,
    fallback_name: str,
    read_file: ReadFile,
    weight_paths: Sequence[str],
) -> dict[str, Any]:
    """The config document in model-spec's Go field order (``specs-go/v1/config.go``), empty fields left out.

    ``kitfile`` is the Kitfile as kit's JSON (the ModelPack's layer entries); ``weight_paths`` the raw weight
    layers' files, model first; ``read_file`` reads a packed file's first bytes."""
    package = _mapping(kitfile.get("package"))
    model = _mapping(kitfile.get("model"))
    primary = weight_paths[0] if weight_paths else str(model.get("path") or "")
    hf = _hf_config(read_file, primary) if primary else {}
    headers = [h for h in (_safetensors_header(read_file, p) for p in weight_paths if p.endswith(".safetensors")) if h]

    name = str(package.get("name") or "") or fallback_name
    descriptor: dict[str, Any] = {}
    _put(descriptor, "createdAt", facts.created)
    _put(descriptor, "authors", [a for a in package.get("authors") or [] if isinstance(a, str) and a])
    _put(descriptor, "family", _text(hf.get("model_type")))
    _put(descriptor, "name", name)
    _put(descriptor, "sourceURL", facts.source_url)
    _put(descriptor, "version", _text(package.get("version")))
    _put(descriptor, "revision", facts.revision)
    _put(descriptor, "licenses", _licenses(kitfile))
    _put(descriptor, "title", name)
    _put(descriptor, "description", _text(package.get("description")))

    config: dict[str, Any] = {}
    _put(config, "architecture", "transformer" if "transformers_version" in hf else None)
    _put(config, "format", weight_format(primary, _text(model.get("format"))) if primary else None)
    _put(config, "paramSize", _param_size(headers))
    _put(config, "precision", _text(hf.get("torch_dtype") or hf.get("dtype")) or _precision(headers))
    return {"descriptor": descriptor, "modelfs": {"type": "layers", "diffIds": list(diff_ids)}, "config": config}


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value:
        target[key] = value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _licenses(kitfile: Mapping[str, Any]) -> list[str]:
    """Every entry's license, sorted and without repeats (kit's ``collectLicenses``), SPDX expressions only."""
    model = _mapping(kitfile.get("model"))
    found = [_mapping(kitfile.get("package")).get("license"), model.get("license")]
    found += [_mapping(part).get("license") for part in model.get("parts") or []]
    for key in ("datasets", "code"):
        found += [_mapping(entry).get("license") for entry in kitfile.get(key) or []]
    return sorted({value for value in found if isinstance(value, str) and _SPDX_EXPRESSION.fullmatch(value)})


def _hf_config(read_file: ReadFile, primary: str) -> Mapping[str, Any]:
    """A Hugging Face ``config.json`` in the primary weight's folder, or nothing."""
    data = read_file(posixpath.join(posixpath.dirname(primary), HF_CONFIG_NAME), HF_CONFIG_MAX_BYTES + 1)
    if data is None or len(data) > HF_CONFIG_MAX_BYTES:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _safetensors_header(read_file: ReadFile, path: str) -> Mapping[str, Any] | None:
    """The JSON header of a safetensors file (8 bytes of little-endian length, then the JSON), bounded."""
    head = read_file(path, 8)
    if head is None or len(head) < 8:
        return None
    (length,) = struct.unpack("<Q", head)
    if length > SAFETENSORS_HEADER_MAX_BYTES:
        return None
    data = read_file(path, 8 + length)
    if data is None or len(data) < 8 + length:
        return None
    try:
        value = json.loads(data[8:])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _tensors(headers: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for h in headers for k, t in h.items() if k != "__metadata__" and isinstance(t, Mapping)]


def _param_size(headers: Sequence[Mapping[str, Any]]) -> str | None:
    """The number of parameters the safetensors files hold, as model-spec writes it (``8b``, ``6.7b``, ``124m``)."""
    count = 0
    for tensor in _tensors(headers):
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        elements = 1
        for dimension in shape:
            elements *= dimension
        count += elements
    if not count:
        return None
    for scale, prefix in _PARAM_SCALES:
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + prefix
    return str(count)


def _precision(headers: Sequence[Mapping[str, Any]]) -> str | None:
    """The safetensors files' dtypes, comma-separated when mixed (model-spec's rule), in model-spec's names."""
    names = {_SAFETENSORS_PRECISIONS.get(str(t.get("dtype"))) for t in _tensors(headers)}
    return ",".join(sorted(n for n in names if n)) or None
