"""What ``kitmlflow watch`` follows: a tracking server and a list of models, each with its target and sync
options. From ``--config FILE`` (strict YAML: an unknown key is an error naming it and its line) or from the
single-model form ``kitmlflow watch mlflow://HOST/models/NAME --to REGISTRY/REPO [sync options]``, which is
the same thing with one entry::

    tracking_uri: https://mlflow.example.com
    models:
      - name: fraud                           # a registered model's name, or a glob over the names
        to: registry.example.com/ml/fraud     # REGISTRY/REPO; {name} is the model's name (for globs)
        tag_template: "v{version}"
        include: ["model/**"]
        exclude: ["*.ckpt"]
        max_file_size: 2GB
        format: modelkit
        sign_key: /etc/kitmlflow/cosign.key

Everything is checked when the file is read (exit 2 before anything listens): templates, targets, filters,
durations. A glob entry must put ``{name}`` in ``to`` or in ``tag_template``, else its models would share tags.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from kitmlflow_tui.core import safe_yaml
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.plan import FilterSpec, parse_size
from kitmlflow_tui.core.yaml_fields import is_null, line_of, mapping_fields, string_field, string_list_field

_TOP_KEYS = ("tracking_uri", "models")
_MODEL_KEYS = ("name", "to", "tag_template", "include", "exclude", "max_file_size", "format", "sign_key")
FORMATS = ("modelkit", "modelpack")
MAX_MODELS = 1000
LIMITS = safe_yaml.YamlLimits(max_bytes=1 * safe_yaml.MiB, max_nodes=200_000, max_depth=16)
_GLOB = re.compile(r"[*?\[]")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class WatchedModel:
    """One entry: the models a name (or glob) matches, where they go and how they are synced."""

    name: str  # a registered model's name, or a glob over the names
    to: str  # REGISTRY/REPO, where {name} is the model's name
    tag_template: str = "v{version}"
    spec: FilterSpec = FilterSpec()
    format: str = "modelkit"
    sign_key: Path | None = None
    line: int = 0  # of the entry in the config file (0 for the single-model form)

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB.search(self.name))

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.name) if self.is_glob else model == self.name

    def target_text(self, model: str) -> str:
        return self.to.replace("{name}", model)


@dataclass(frozen=True)
class WatchConfig:
    tracking_uri: str | None  # None: --tracking-uri, else MLFLOW_TRACKING_URI
    models: tuple[WatchedModel, ...]
    source: str = "the command line"

    def entries_for(self, model: str) -> tuple[WatchedModel, ...]:
        """The entries a registered model's name matches (each is a target of its own)."""
        return tuple(entry for entry in self.models if entry.matches(model))

    @property
    def exact_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(entry.name for entry in self.models if not entry.is_glob))

    @property
    def has_globs(self) -> bool:
        return any(entry.is_glob for entry in self.models)


def parse_duration(text: str, *, what: str = "--reconcile-every") -> float:
    """``10m``, ``30s``, ``1h``, ``500ms``, ``90`` (seconds); ``0`` is 0 (never)."""
    match = _DURATION.match(str(text))
    if not match:
        raise BadInputError(f"Invalid {what} {text!r}: expected a duration such as 30s, 10m, 1h or 0.")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if 0 < seconds < 1:
        raise BadInputError(f"Invalid {what} {text!r}: at least 1s (or 0 for never).")
    return seconds


def check_entry(entry: WatchedModel, where: str) -> WatchedModel:
    """Everything about one entry that can be checked without a server (exit 2 naming ``where``)."""
    from kitmlflow_tui.core.reference import ModelRef
    from kitmlflow_tui.core.sync import SyncOptions, TagTemplate, check_sync, parse_target

    def refused(exc: BadInputError) -> BadInputError:
        return BadInputError(f"{where}: {exc.message}", hint=exc.hint)

    if not entry.name.strip():
        raise BadInputError(f"{where}: the model name is empty.")
    if entry.is_glob and "{name}" not in entry.to and "{name}" not in entry.tag_template:
        raise BadInputError(
            f"{where}: the glob {entry.name!r} matches many models, which would share the tags of {entry.to}.",
            hint="Put {name} in `to` (registry.example.com/ml/{name}) or in `tag_template` ('{name}-v{version}').",
        )
    if entry.format not in FORMATS:
        raise BadInputError(f"{where}: format {entry.format!r} is not one of {', '.join(FORMATS)}.")
    if entry.sign_key is not None and not entry.sign_key.is_file():
        raise BadInputError(f"{where}: the sign_key {entry.sign_key} is not a readable file.")
    sample = "model" if entry.is_glob else entry.name
    try:
        options = SyncOptions(
            target=parse_target(entry.target_text(sample)),
            spec=entry.spec,
            template=TagTemplate.parse(entry.tag_template),
            format=entry.format,
            sign_key=entry.sign_key,  # opened now: a key that cannot sign is exit 2 before anything listens
        )
        check_sync(ModelRef(None, sample), options)
    except BadInputError as exc:
        raise refused(exc) from None
    return entry


def load_config(path: Path) -> WatchConfig:
    """Read and check ``--config FILE``; exit 2 naming the file and the line of any problem."""
    where = f"Config {path}"
    try:
        text = safe_yaml.read_text(path, LIMITS)
        root = safe_yaml.compose(text, LIMITS)
    except safe_yaml.YamlRefused as exc:
        at = f" {exc.where}" if exc.where else ""
        raise BadInputError(f"{where}{at}: refused: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise BadInputError(f"{where}{at}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    except FileNotFoundError:
        raise BadInputError(f"{where}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where}: cannot be read ({exc}).") from None
    if not isinstance(root, yaml.MappingNode):
        raise BadInputError(f"{where}: expected a mapping with `tracking_uri` and `models`.")
    values = mapping_fields(root, _TOP_KEYS, where)
    models_node = values.get("models")
    if models_node is None or is_null(models_node):
        raise BadInputError(f"{where}: `models` is missing: list the models to follow.")
    if not isinstance(models_node, yaml.SequenceNode) or not models_node.value:
        raise BadInputError(f"{where} line {line_of(models_node)}: `models` must be a list of at least one entry.")
    if len(models_node.value) > MAX_MODELS:
        raise BadInputError(f"{where}: more than {MAX_MODELS} entries under `models`.")
    models = tuple(_entry(node, where) for node in models_node.value)
    return WatchConfig(string_field(values.get("tracking_uri"), where, "tracking_uri"), models, str(path))


def _entry(node: yaml.Node, where: str) -> WatchedModel:
    at = f"{where} line {line_of(node)}"
    if not isinstance(node, yaml.MappingNode):
        raise BadInputError(f"{at}: a model entry is a mapping with `name` and `to`.")
    fields = mapping_fields(node, _MODEL_KEYS, where, "models[].")
    name = string_field(fields.get("name"), where, "name")
    to = string_field(fields.get("to"), where, "to")
    if not name or not to:
        raise BadInputError(f"{at}: a model entry needs `name` and `to`.")
    cap_node = fields.get("max_file_size")
    cap = None
    if cap_node is not None and not is_null(cap_node):
        raw = yaml.safe_load(yaml.serialize(cap_node))
        try:
            cap = parse_size(raw, what="max_file_size")
        except BadInputError as exc:
            raise BadInputError(f"{where} line {line_of(cap_node)}: {exc.message}") from None
    spec = FilterSpec(
        tuple(string_list_field(fields.get("include"), where, "include")),
        tuple(string_list_field(fields.get("exclude"), where, "exclude")),
        cap,
    )
    sign_key = string_field(fields.get("sign_key"), where, "sign_key")
    entry = WatchedModel(
        name=name,
        to=to.strip(),
        tag_template=string_field(fields.get("tag_template"), where, "tag_template") or "v{version}",
        spec=spec,
        format=string_field(fields.get("format"), where, "format") or "modelkit",
        sign_key=Path(sign_key).expanduser() if sign_key else None,
        line=line_of(node),
    )
    return check_entry(entry, at)
