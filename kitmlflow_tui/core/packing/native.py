"""The native packer: writes into kit's local storage exactly what ``kit pack`` (1.7) writes there.

Order of work, chosen so that an interruption at any moment (Ctrl-C, cancel, SIGKILL) leaves kit's
storage readable and never a tag pointing at something missing:

1. walk the folder for every Kitfile entry (nothing written yet; bad paths fail here);
2. stream each layer tar into a locked temporary file in ``storage/``, hashing while writing, then
   rename it to ``blobs/sha256/<hex>`` (kept as is when that blob already exists);
3. the config (the Kitfile as kit's JSON, with each entry's ``digest``/``diffId``), then the manifest;
4. under a lock: the shared ``index.json``, the repository's ``-index.json``, and LAST its ``-tags.json``.

The same files and Kitfile always give the same manifest digest: walk order, tar headers and JSON
are fixed, and the only free value, the ``ml.kitops.modelkit.cli-version`` annotation, is a
constant (kit only shows it in ``kit inspect``).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kitmlflow_tui import __version__
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, KitmlflowError, PackError
from kitmlflow_tui.core.file_tree import FileTree, as_tree
from kitmlflow_tui.core.kitfile.model import Kitfile
from kitmlflow_tui.core.modelkit_reference import ModelKitRef, parse_model_reference
from kitmlflow_tui.core.packing import gojson
from kitmlflow_tui.core.packing.file_digests import FileDigest
from kitmlflow_tui.core.packing.kitignore import IgnoreRules, clean_entry_path, go_clean
from kitmlflow_tui.core.packing.layers import (
    LayerSink,
    TarEntry,
    TarLayout,
    files_left_out,
    tar_layout,
    walk_layer,
    write_layer,
)
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.packing.storage import (
    MANIFEST_MEDIA_TYPE,
    Descriptor,
    KitStorage,
    resolve_kit_home,
)

CONFIG_MEDIA_TYPE = "application/vnd.kitops.modelkit.config.v1+json"
CLI_VERSION_ANNOTATION = "ml.kitops.modelkit.cli-version"
LAYER_SUBTYPE_ANNOTATION = "ml.kitops.modelkit.layer-subtype"
DEFAULT_CLI_VERSION = f"kitmlflow-{__version__}"
COMPRESSIONS = ("none", "gzip", "gzip-fastest")
_PART_TYPE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

# Go struct fields of kit's artifact.KitFile, in declaration order: (key, kind, omitempty).
_STRING, _STRINGS, _ANY = "string", "strings", "any"
_PACKAGE = (
    ("name", _STRING),
    ("version", _STRING),
    ("description", _STRING),
    ("license", _STRING),
    ("authors", _STRINGS),
)
_PART = (("name", _STRING), ("path", _STRING), ("license", _STRING), ("type", _STRING))
_MODEL = (
    ("name", _STRING),
    ("path", _STRING),
    ("license", _STRING),
    ("framework", _STRING),
    ("format", _STRING),
    ("version", _STRING),
    ("description", _STRING),
    ("parts", "parts"),
    ("parameters", _ANY),
)
_CODE = (("path", _STRING), ("description", _STRING), ("license", _STRING))
_DATASET = (("name", _STRING), ("path", _STRING), ("description", _STRING), ("license", _STRING), ("parameters", _ANY))
_DOCS = (("path", _STRING), ("description", _STRING))
_PROMPT = (("path", _STRING), ("description", _STRING))
_LISTS = (
    ("code", _CODE, "code"),
    ("datasets", _DATASET, "dataset"),
    ("docs", _DOCS, "docs"),
    ("prompts", _PROMPT, "prompt"),
)
_TOP_KEYS = ("manifestVersion", "package", "model", "code", "datasets", "docs", "prompts")


@dataclass
class Layer:
    media_base: str  # model | modelpart | code | dataset | docs (prompts are code + a subtype)
    path: str  # cleaned
    config_entry: dict[str, Any]  # the Go-ordered config entry that receives digest/diffId
    label: str
    prompt: bool = False
    entries: list[TarEntry] = field(default_factory=list)


def pack_native(
    folder: Path,
    kitfile: Kitfile | Mapping[str, Any],
    reference: ModelKitRef,
    *,
    storage_root: Path | None = None,
    compression: str = "none",
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    cli_version: str = DEFAULT_CLI_VERSION,
    writer: ArtifactWriter | None = None,
    digest_files: bool = False,
) -> PackResult:
    """Pack ``folder`` as described by ``kitfile`` into kit's storage under ``reference``.

    ``storage_root`` is kit's home folder (``kit --config``); by default it is found like kit
    finds it. ``on_progress(done_bytes, total_bytes)`` follows the file bytes read. ``cancel`` is
    checked between chunks; when set, :class:`InterruptedByUser` is raised and no temporary file
    is left behind. ``cli_version`` is the value of the manifest's ``ml.kitops.modelkit.cli-version``
    annotation (``kit pack`` writes its own version there). ``writer`` decides the artifact (a ModelKit with
    ``compression`` by default; :class:`~kitmlflow_tui.core.packing.modelpack.ModelPackWriter` for a ModelPack).
    With ``digest_files`` the result lists every packed file's sha256, computed from the layer stream as it is
    written.
    """
    if compression not in COMPRESSIONS:
        raise BadInputError(f"Unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}.")
    writer = writer or ModelKitWriter(compression, cli_version)
    folder = Path(folder)
    if not folder.is_dir():
        raise PackError(f"Cannot pack {folder}: it is not a folder.")

    planned = writer.plan(folder, kitfile)
    total = sum(entry.size for layer in planned.layers for entry in layer.entries)
    storage = KitStorage(resolve_kit_home(storage_root))

    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, total)

    if on_progress is not None:
        on_progress(0, total)
    try:
        with storage.session():
            stored = [
                _store_layer(storage, layer, folder, writer, advance, cancel, digest_files) for layer in planned.layers
            ]
            descriptors = [descriptor for descriptor, _files in stored]
            packed = writer.store(storage, planned, descriptors, reference, cancel)
            return dataclasses.replace(packed, files=tuple(f for _descriptor, files in stored for f in files))
    except KitmlflowError:
        raise
    except OSError as exc:
        raise PackError(f"Writing the ModelKit into {storage.root} failed: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class PlannedLayers:
    """What kit would pack for a Kitfile: its config (without layer digests), the layers with their tar entries
    in kit's order, and the files no layer holds although ``.kitignore`` does not name them."""

    config: dict[str, Any]
    layers: list[Layer]
    left_out: tuple[str, ...]


def plan_layers(folder: FileTree | Path, kitfile: Kitfile | Mapping[str, Any]) -> PlannedLayers:
    """The layers of ``kitfile`` over ``folder`` (a folder, or a listing). A mapping (a Kitfile from elsewhere,
    as kit would read it) is checked here the way kit checks it."""
    tree = as_tree(folder)
    config, layers = _config_and_layers(kitfile.to_dict() if isinstance(kitfile, Kitfile) else kitfile)
    rules = IgnoreRules.for_tree(tree, [layer.path for layer in layers])
    for layer in layers:
        layer.entries = walk_layer(tree, layer.path, rules)
    included = {entry.name for layer in layers for entry in layer.entries if not entry.is_dir}
    return PlannedLayers(config, layers, tuple(files_left_out(tree, included, rules)))


def layer_media_type(layer: Layer, compression: str) -> str:
    media_type = f"application/vnd.kitops.modelkit.{layer.media_base}.v1.tar"
    return media_type + "+gzip" if compression != "none" else media_type  # kit names gzip-fastest "+gzip" too


def layer_descriptor(layer: Layer, media_type: str, digest: str, diff_id: str, size: int) -> Descriptor:
    """The layer's manifest entry; its config entry receives ``digest`` and ``diffId``."""
    layer.config_entry["digest"] = digest
    layer.config_entry["diffId"] = diff_id
    annotations = ((LAYER_SUBTYPE_ANNOTATION, "prompt"),) if layer.prompt else ()
    return Descriptor(media_type, digest, size, annotations)


def store_modelkit(
    storage: KitStorage,
    planned: PlannedLayers,
    descriptors: list[Descriptor],
    reference: ModelKitRef,
    cli_version: str,
    cancel: threading.Event | None,
) -> PackResult:
    """Once every layer blob is in ``blobs/`` (inside ``storage.session()``): the config, then the manifest, then,
    under the lock, the index files and LAST the tag. Nothing references a blob before it is complete."""
    if cancel is not None and cancel.is_set():
        raise InterruptedByUser("Packing cancelled.")
    config_desc = storage.put_blob(encode_json(planned.config, "the Kitfile"), CONFIG_MEDIA_TYPE)
    manifest_value: dict[str, Any] = {
        "schemaVersion": 2,
        "config": config_desc.to_go(),
        # Go marshals kit's nil layer slice as null when the Kitfile names no path at all.
        "layers": [desc.to_go() for desc in descriptors] or None,
        "annotations": gojson.GoMap({CLI_VERSION_ANNOTATION: cli_version}),
    }
    manifest_desc = storage.put_blob(encode_json(manifest_value, "the manifest"), MANIFEST_MEDIA_TYPE)
    storage.register(reference, manifest_desc)
    return PackResult(
        reference=str(reference),
        digest=manifest_desc.digest,
        size=sum(desc.size for desc in descriptors),
        packer="native",
        storage_root=storage.home,
        config_digest=config_desc.digest,
        layer_count=len(descriptors),
        left_out=planned.left_out,
    )


class ArtifactWriter(Protocol):
    """What decides the artifact a pack writes from a Kitfile: its layers (which entries, each one's bytes), each
    layer's descriptor, and the config and manifest over them. The folder path (:func:`pack_native`) and the direct
    import (``direct.pack_direct``) move the bytes the same way for every artifact."""

    @property
    def compression(self) -> str: ...

    def plan(self, tree: FileTree | Path, kitfile: Kitfile | Mapping[str, Any]) -> PlannedLayers: ...

    def layout(self, layer: Layer) -> TarLayout:
        """Where the layer's bytes go: the literal bytes around each file's, in order."""
        ...

    def descriptor(self, layer: Layer, digest: str, diff_id: str, size: int) -> Descriptor: ...

    def store(
        self,
        storage: KitStorage,
        planned: PlannedLayers,
        descriptors: list[Descriptor],
        reference: ModelKitRef,
        cancel: threading.Event | None,
    ) -> PackResult:
        """Config, manifest, index and tag, once every layer blob is in ``blobs/``."""
        ...


@dataclass(frozen=True)
class ModelKitWriter:
    """kit 1.7's ModelKit: one tar per Kitfile entry, the Kitfile as the config."""

    compression: str = "none"
    cli_version: str = DEFAULT_CLI_VERSION

    def plan(self, tree: FileTree | Path, kitfile: Kitfile | Mapping[str, Any]) -> PlannedLayers:
        return plan_layers(tree, kitfile)

    def layout(self, layer: Layer) -> TarLayout:
        return tar_layout(layer.entries)

    def descriptor(self, layer: Layer, digest: str, diff_id: str, size: int) -> Descriptor:
        return layer_descriptor(layer, layer_media_type(layer, self.compression), digest, diff_id, size)

    def store(
        self,
        storage: KitStorage,
        planned: PlannedLayers,
        descriptors: list[Descriptor],
        reference: ModelKitRef,
        cancel: threading.Event | None,
    ) -> PackResult:
        return store_modelkit(storage, planned, descriptors, reference, self.cli_version, cancel)


def _store_layer(
    storage: KitStorage,
    layer: Layer,
    folder: Path,
    writer: ArtifactWriter,
    advance: Callable[[int], None],
    cancel: threading.Event | None,
    digest_files: bool,
) -> tuple[Descriptor, tuple[FileDigest, ...]]:
    with storage.temp_file("layer") as (path, handle):
        sink = LayerSink(handle, writer.compression)
        files = write_layer(
            writer.layout(layer), sink, folder, on_bytes=advance, cancel=cancel, digest_files=digest_files
        )
        storage.commit_blob(path, handle, sink.digest, sink.blob_size)
    return writer.descriptor(layer, sink.digest, sink.diff_id, sink.blob_size), files


def encode_json(value: Any, what: str) -> bytes:
    try:
        return gojson.dumps(value)
    except gojson.UnsupportedValue as exc:
        raise PackError(f"Cannot write {what} as JSON: {exc}.") from exc


# -- Kitfile → kit's config JSON (Go struct order and omitempty) ----------------------------------------
def _config_and_layers(kitfile: Mapping[str, Any]) -> tuple[dict[str, Any], list[Layer]]:
    if not isinstance(kitfile, Mapping):
        raise PackError("The Kitfile must be a mapping.")
    _reject_unknown(kitfile, _TOP_KEYS, "the Kitfile")
    config: dict[str, Any] = {"manifestVersion": _string(kitfile.get("manifestVersion"), "manifestVersion")}
    config["package"] = _struct(_mapping(kitfile.get("package"), "package"), _PACKAGE, "package")
    layers: list[Layer] = []

    model_source = kitfile.get("model")
    if model_source is not None:
        model_map = _mapping(model_source, "model")
        model = _struct(model_map, _MODEL, "model")
        config["model"] = model
        model_path = model.get("path", "")
        if model_path:
            if _looks_like_modelkit_reference(model_path):
                raise PackError(
                    f"model.path {model_path!r} refers to another ModelKit, which the native packer cannot resolve.",
                    hint="Install kit and use --packer kit, or point model.path at a file or folder.",
                )
            layers.append(Layer("model", _layer_path(model_path, "model.path"), model, "model"))
        for index, part in enumerate(model.get("parts", [])):
            path = _layer_path(part.get("path", ""), f"model.parts[{index}].path")
            part_type = part.get("type", "")
            if part_type and (not _PART_TYPE_RE.fullmatch(part_type) or len(part_type) > 64):
                raise PackError(f"model.parts[{index}].type {part_type!r} is not a valid part type.")
            layers.append(Layer("modelpart", path, part, f"model part {index}"))

    for key, fields, media_base in _LISTS:
        source = kitfile.get(key)
        if source is None:
            continue
        if not isinstance(source, list):
            raise PackError(f"Kitfile {key} must be a list.")
        entries = [_struct(_mapping(item, f"{key}[{i}]"), fields, f"{key}[{i}]") for i, item in enumerate(source)]
        if entries:
            config[key] = entries
        for index, entry in enumerate(entries):
            path = _layer_path(entry.get("path", ""), f"{key}[{index}].path")
            base = "code" if media_base == "prompt" else media_base
            layers.append(Layer(base, path, entry, f"{key} {index}", prompt=media_base == "prompt"))

    _check_duplicates(kitfile, layers)
    # Built in kit's layer order: model, parts, code, datasets, docs (then prompts, in kits that have them).
    return config, layers


def _struct(source: Mapping[str, Any], fields: tuple[tuple[str, str], ...], where: str) -> dict[str, Any]:
    _reject_unknown(source, tuple(name for name, _ in fields), where)
    value: dict[str, Any] = {}
    for name, kind in fields:
        item = source.get(name)
        if kind == _STRING:
            text = _string(item, f"{where}.{name}")
            if text or (where.startswith("docs") and name == "path"):
                value[name] = text
        elif kind == _STRINGS:
            if item is None:
                continue
            if not isinstance(item, list):
                raise PackError(f"Kitfile {where}.{name} must be a list of strings.")
            strings = [_string(element, f"{where}.{name}[{i}]") for i, element in enumerate(item)]
            if strings:
                value[name] = strings
        elif kind == "parts":
            if item is None:
                continue
            if not isinstance(item, list):
                raise PackError(f"Kitfile {where}.parts must be a list.")
            parts = [
                _struct(_mapping(part, f"{where}.parts[{i}]"), _PART, f"{where}.parts[{i}]")
                for i, part in enumerate(item)
            ]
            if parts:
                value[name] = parts
        elif item is not None:  # _ANY: omitempty only drops a nil interface
            value[name] = _any(item, f"{where}.{name}")
    return value


def _reject_unknown(source: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in source:
        if key not in known:
            raise PackError(
                f"Unknown key {key!r} in {where}: kit rejects Kitfiles with fields it does not know.",
                hint=f"Known keys there: {', '.join(known)}.",
            )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PackError(f"Kitfile {where} must be a mapping.")
    return value


def _string(value: Any, where: str) -> str:
    """A Go string field: YAML scalars of other types reach kit as their YAML text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    raise PackError(f"Kitfile {where} must be a string, not {type(value).__name__}.")


def _any(value: Any, where: str) -> Any:
    """A free-form value (``parameters``) as yaml.v3 decodes it into Go and json.Marshal writes it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PackError(f"Kitfile {where} holds {value!r}, which kit cannot write as JSON.")
        return value
    if isinstance(value, Mapping):
        result = gojson.GoMap()
        for key, item in value.items():
            if not isinstance(key, str):
                raise PackError(
                    f"Kitfile {where} has the non-string key {key!r}: kit cannot write it as JSON.",
                )
            result[key] = _any(item, f"{where}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [_any(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise PackError(f"Kitfile {where} holds a {type(value).__name__}, which is not a YAML/JSON value.")


def _layer_path(raw: str, where: str) -> str:
    if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise PackError(f"Kitfile {where} {raw!r} is absolute; paths are relative to the packed folder.")
    # kit walks filepath.Clean(path) (no trimming) but compares trimmed paths when ignoring.
    cleaned = go_clean(raw)
    if clean_entry_path(raw) == ".." or clean_entry_path(raw).startswith("../"):
        raise PackError(f"Kitfile {where} {raw!r} leaves the packed folder.")
    return cleaned


def _check_duplicates(kitfile: Mapping[str, Any], layers: list[Layer]) -> None:
    # kit's ValidateKitfile compares the raw paths, an empty one counting as "." (a model without
    # a path included); two spellings of one folder ("data", "data/") would still pack it twice.
    seen: dict[str, str] = {}
    model = kitfile.get("model")
    raw_paths: list[tuple[str, str]] = []
    if isinstance(model, Mapping):
        raw_paths.append((_string(model.get("path"), "model.path"), "model"))
    raw_paths += [(layer.config_entry.get("path", ""), layer.label) for layer in layers if layer.media_base != "model"]
    for raw, label in raw_paths:
        key = raw or "."
        if key in seen:
            raise PackError(f"Kitfile entries {seen[key]} and {label} use the same path {key!r}.")
        seen[key] = label
    cleaned: dict[str, str] = {}
    for layer in layers:
        if layer.path in cleaned:
            raise PackError(
                f"Kitfile entries {cleaned[layer.path]} and {layer.label} name the same path {layer.path!r}."
            )
        cleaned[layer.path] = layer.label


def _looks_like_modelkit_reference(path: str) -> bool:
    # kit's IsModelKitReference: contains ':' or '@' and parses as a reference.
    if ":" not in path and "@" not in path:
        return False
    try:
        parse_model_reference(path.split("@", 1)[0])
    except BadInputError:
        return False
    return True
