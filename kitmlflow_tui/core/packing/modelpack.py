"""The CNCF ModelPack writer (model-spec v1): the files a ModelKit would hold, in layers that Docker Model Runner,
modctl and kit ≥ 1.10 read. The folder path (``native.pack_native``) and the direct import
(``direct.pack_direct``) move the bytes; :class:`ModelPackWriter` decides the layers, their descriptors, the config
and the manifest.

The layers (docs/kit-compatibility.md, "ModelPack", says who reads what):

* Weight files come out of the model's folders (``model.path`` and ``model.parts``): the Kitfile the ModelPack
  carries names each on its own (:func:`split_weights`), the primary format's first, so that each is a
  ``weight.v1.raw`` layer (the file's bytes as they are: Docker Model Runner hard-links the blob and runs GGUF and
  safetensors only from such layers). The first becomes ``model.path``; the others and the rest of each folder
  become parts. A weight file whose path is a string prefix of another file's stays in its folder's tar: kit's
  walk would otherwise leave that other file out of every layer.
* Every entry that names one file is a ``.raw`` layer with ``org.cncf.model.file.metadata+json`` (one whose bytes
  repeat an earlier raw layer's is its entry's tar: kit finds layers by digest); every folder entry is one
  uncompressed ``.tar`` layer, written as kit writes its tar layers. Kinds: the model's entry
  ``weight``, a part ``weight`` when it is a weight file else ``weight.config``, ``code`` (prompts too, with kit's
  subtype annotation), ``dataset``, ``doc``. Every layer carries ``org.cncf.model.filepath``.
* Layer order is kit's for that Kitfile (model, parts, code, datasets, docs, prompts), which puts the raw weights
  before the folder tars around them: Docker Model Runner links each layer at its filepath in manifest order,
  and a folder's tar linked first would be a file where the weights' folder must go.

The manifest: ``artifactType`` ``application/vnd.cncf.model.manifest.v1+json``, the ModelPack config, and the
annotations ``ml.kitops.modelkit.kitfile`` (the Kitfile as kit's JSON with each layer's exact ``digest`` and
``diffId``: kit ≥ 1.10 unpacks by it, and ``sync`` reads the MLflow provenance from it),
``org.opencontainers.image.created`` (the run's end time) and ``ml.kitops.modelkit.cli-version``.

In kit's storage a ModelPack gets its tag and a place in the shared ``index.json`` but not in the repository's
``-index.json``: kit 1.7's ``kit list`` dereferences a nil manifest for any manifest there whose config is not a
Kitfile (``pkg/cmd/list/list.go``, ``readInfoFromRepo``), so it stays out of that list.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import posixpath
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from kitmlflow_tui.core.errors import InterruptedByUser, PackError
from kitmlflow_tui.core.file_tree import FileTree, as_tree
from kitmlflow_tui.core.kitfile.classify import MODEL_SUFFIXES
from kitmlflow_tui.core.kitfile.enrich import MLFLOW_MODEL_PART_TYPE
from kitmlflow_tui.core.kitfile.mlmodel import MLMODEL_FILE
from kitmlflow_tui.core.kitfile.model import Kitfile, Model, ModelPart
from kitmlflow_tui.core.modelkit_reference import ModelKitRef
from kitmlflow_tui.core.packing import gojson
from kitmlflow_tui.core.packing.layers import FileRegion, TarEntry, TarLayout, raw_layout, tar_layout
from kitmlflow_tui.core.packing.modelpack_config import ZERO_TIME, RunFacts, format_rank, model_config
from kitmlflow_tui.core.packing.native import (
    CLI_VERSION_ANNOTATION,
    DEFAULT_CLI_VERSION,
    Layer,
    PlannedLayers,
    encode_json,
    layer_descriptor,
    plan_layers,
)
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.packing.storage import MANIFEST_MEDIA_TYPE, Descriptor, KitStorage

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"
MEDIA_TYPE_PREFIX = "application/vnd.cncf.model."
FILEPATH_ANNOTATION = "org.cncf.model.filepath"
FILE_METADATA_ANNOTATION = "org.cncf.model.file.metadata+json"
KITFILE_ANNOTATION = "ml.kitops.modelkit.kitfile"
CREATED_ANNOTATION = "org.opencontainers.image.created"
MAX_KITFILE_ANNOTATION_BYTES = 16 * 1024 * 1024
_COPY_CHUNK = 4 * 1024 * 1024
_TYPEFLAG_REGULAR = ord("0")  # tar.TypeReg, what kit writes in a raw layer's file metadata
_KINDS = {"model": "weight", "modelpart": "weight.config", "code": "code", "dataset": "dataset", "docs": "doc"}


# Weight files MLflow's flavors write that kit init's table does not name: scikit-learn's skops (MLflow 3's
# default), XGBoost's UBJSON and binary, LightGBM's and CatBoost's model files.
MLFLOW_WEIGHT_SUFFIXES = (".skops", ".ubj", ".xgb", ".lgb", ".cb")


def is_weight(path: str) -> bool:
    """A weight file: kit init's suffix table (the one the Kitfile's classification uses), plus MLflow's own."""
    return posixpath.basename(path).endswith(MODEL_SUFFIXES + MLFLOW_WEIGHT_SUFFIXES)


# -- the Kitfile a ModelPack carries ---------------------------------------------------------------------
def split_weights(tree: FileTree | Path, kitfile: Kitfile) -> Kitfile:
    """``kitfile`` with every weight file of the model's folders an entry of its own (see the module's text).

    Nothing moves out of the ModelPack: if the split would leave a file in no layer (kit's prefix rule), the
    Kitfile is returned as it is."""
    return _split(as_tree(tree), kitfile)[0]


def _split(tree: FileTree, kitfile: Kitfile) -> tuple[Kitfile, PlannedLayers]:
    """The split Kitfile and its layers (kit's walk over a Kitfile of many entries is the costly part: once)."""
    planned = plan_layers(tree, kitfile)
    model = kitfile.model
    if model is None or not model.path:
        return kitfile, planned
    included = {entry.name for layer in planned.layers for entry in layer.entries if not entry.is_dir}
    ordered = sorted(included)

    def prefixes_another(name: str) -> bool:
        # In sorted order every path that starts with ``name`` comes right after it.
        following = bisect.bisect_right(ordered, name)
        return following < len(ordered) and ordered[following].startswith(name)

    def weights_in(layer: Layer) -> list[str]:
        if not any(entry.is_dir and entry.name == layer.path for entry in layer.entries) and layer.path != ".":
            return []  # a file entry: a raw layer already
        found = [e.name for e in layer.entries if not e.is_dir and is_weight(e.name)]
        return [w for w in found if not prefixes_another(w)]

    # plan_layers gives the model's layer, then one per part in the Kitfile's order.
    model_layer, *part_layers = [layer for layer in planned.layers if layer.media_base in ("model", "modelpart")]
    main_weights = sorted(weights_in(model_layer), key=lambda p: (format_rank(p), p.encode()))
    parts: list[ModelPart] = []
    if main_weights:
        parts += [ModelPart(path=w, license=model.license) for w in main_weights[1:]]
        folder_type = MLFLOW_MODEL_PART_TYPE if tree.exists(posixpath.join(model.path, MLMODEL_FILE)) else None
        parts.append(ModelPart(path=model.path, license=model.license, type=folder_type))
    for part, layer in zip(model.parts, part_layers, strict=True):
        part_weights = sorted(weights_in(layer), key=str.encode)
        parts += [ModelPart(path=w, license=part.license) for w in part_weights]
        parts.append(part)
    if not main_weights and len(parts) == len(model.parts):
        return kitfile, planned
    split_model: Model = replace(model, path=main_weights[0] if main_weights else model.path, parts=tuple(parts))
    split = replace(kitfile, model=split_model)
    after = plan_layers(tree, split)
    if {e.name for layer in after.layers for e in layer.entries if not e.is_dir} != included:
        return kitfile, planned
    return split, after


# -- the writer --------------------------------------------------------------------------------------------
def raw_file(layer: Layer) -> TarEntry | None:
    """The one file of an entry that names a file (its layer is that file's bytes), else None (a tar layer)."""
    files = [entry for entry in layer.entries if not entry.is_dir]
    return files[0] if len(files) == 1 and files[0].name == layer.path else None


def layer_kind(layer: Layer) -> str:
    file = raw_file(layer)
    if layer.media_base == "modelpart" and file is not None and is_weight(file.name):
        return "weight"
    return _KINDS[layer.media_base]


@dataclass(frozen=True)
class ModelPackWriter:
    """Writes a ModelPack (see the module's text); ``facts`` are the run's, ``fallback_name`` the descriptor's name
    when the Kitfile's package has none (the tag's repository)."""

    facts: RunFacts
    fallback_name: str
    cli_version: str = DEFAULT_CLI_VERSION
    compression: str = "none"  # model-spec has no compressed raw layer; modctl and DMR read no compressed tar

    def plan(self, tree: FileTree | Path, kitfile: Kitfile | Mapping[str, Any]) -> PlannedLayers:
        if not isinstance(kitfile, Kitfile):
            raise PackError("A ModelPack is written from a checked Kitfile.")
        planned = _split(as_tree(tree), kitfile)[1]
        if not planned.layers:
            raise PackError("A ModelPack needs at least one layer, and this Kitfile names no path.")
        return planned

    def layout(self, layer: Layer) -> TarLayout:
        file = raw_file(layer)
        return raw_layout(file) if file is not None else tar_layout(layer.entries)

    def descriptor(self, layer: Layer, digest: str, diff_id: str, size: int) -> Descriptor:
        return self._described(layer, digest, diff_id, size, raw_file(layer))

    def _described(self, layer: Layer, digest: str, diff_id: str, size: int, file: TarEntry | None) -> Descriptor:
        """The layer's descriptor, a raw one when ``file`` is given; its Kitfile entry gets the digests."""
        media_type = f"{MEDIA_TYPE_PREFIX}{layer_kind(layer)}.v1.{'raw' if file is not None else 'tar'}"
        described = layer_descriptor(layer, media_type, digest, diff_id, size)
        annotations = dict(described.annotations)
        annotations[FILEPATH_ANNOTATION] = layer.path
        if file is not None:
            annotations[FILE_METADATA_ANNOTATION] = self._file_metadata(file)
        return replace(described, annotations=tuple(sorted(annotations.items())))

    def _file_metadata(self, file: TarEntry) -> str:
        # model-spec's FileMetadata in Go field order; the time is the run's (a file's own is not known, and a
        # constant keeps the digest), uid/gid 0 and typeflag '0' as kit writes them.
        metadata = {
            "name": posixpath.basename(file.name),
            "mode": file.mode & 0o777,
            "uid": 0,
            "gid": 0,
            "size": file.size,
            "mtime": self.facts.created or ZERO_TIME,
            "typeflag": _TYPEFLAG_REGULAR,
        }
        return encode_json(metadata, "a file's metadata").decode()

    def store(
        self,
        storage: KitStorage,
        planned: PlannedLayers,
        descriptors: list[Descriptor],
        reference: ModelKitRef,
        cancel: threading.Event | None,
    ) -> PackResult:
        if cancel is not None and cancel.is_set():
            raise InterruptedByUser("Packing cancelled.")
        files = _PackedFiles(
            storage,
            [(self.layout(layer), desc.digest) for layer, desc in zip(planned.layers, descriptors, strict=True)],
        )
        descriptors = self._repeats_as_tars(storage, planned.layers, descriptors)
        weights = [
            layer.path
            for layer, desc in zip(planned.layers, descriptors, strict=True)
            if desc.media_type == f"{MEDIA_TYPE_PREFIX}weight.v1.raw"
        ]
        config = model_config(
            planned.config, [d.digest for d in descriptors], self.facts, self.fallback_name, files.read, weights
        )
        config_desc = storage.put_blob(encode_json(config, "the ModelPack config"), CONFIG_MEDIA_TYPE)
        annotations = gojson.GoMap(
            {
                CLI_VERSION_ANNOTATION: self.cli_version,
                KITFILE_ANNOTATION: encode_json(planned.config, "the Kitfile").decode(),
            }
        )
        if self.facts.created:
            annotations[CREATED_ANNOTATION] = self.facts.created
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": config_desc.to_go(),
            "layers": [desc.to_go() for desc in descriptors],
            "annotations": annotations,
        }
        manifest_desc = storage.put_blob(encode_json(manifest, "the manifest"), MANIFEST_MEDIA_TYPE)
        storage.register(reference, manifest_desc, list_in_repository=False)
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

    def _repeats_as_tars(
        self, storage: KitStorage, layers: list[Layer], descriptors: list[Descriptor]
    ) -> list[Descriptor]:
        """A raw layer whose bytes repeat an earlier raw layer's (``best.pt`` a copy of ``last.pt``) is written as
        the tar of its entry instead: kit ≥ 1.10 finds each Kitfile entry's layer by its digest, and two raw layers
        of one digest would send both entries to one path (``generateUnpackPlan``, then "already exists")."""
        seen: set[str] = set()
        distinct: list[Descriptor] = []
        for layer, described in zip(layers, descriptors, strict=True):
            if raw_file(layer) is None or described.digest not in seen:
                if raw_file(layer) is not None:
                    seen.add(described.digest)
                distinct.append(described)
                continue
            layout = tar_layout(layer.entries)
            with storage.temp_file("layer") as (path, handle):
                digest = _write_layout(layout, storage.blob_path(described.digest), handle)
                storage.commit_blob(path, handle, digest, layout.size)
            distinct.append(self._described(layer, digest, digest, layout.size, None))  # uncompressed
        return distinct


def _write_layout(layout: TarLayout, source: Path, handle: IO[bytes]) -> str:
    """Write ``layout`` with every file region's bytes from ``source`` (the one file's raw blob); its digest."""
    hasher = hashlib.sha256()
    with open(source, "rb") as raw:
        for segment in layout.segments:
            if isinstance(segment, FileRegion):
                raw.seek(0)
                remaining = segment.size
                while remaining:
                    chunk = raw.read(min(remaining, _COPY_CHUNK))
                    if not chunk:
                        raise PackError(f"The layer blob {source.name} shrank while it was being copied.")
                    hasher.update(chunk)
                    handle.write(chunk)
                    remaining -= len(chunk)
            else:
                hasher.update(segment)
                handle.write(segment)
    return "sha256:" + hasher.hexdigest()


class _PackedFiles:
    """Reads the first bytes of a packed file from the layer blob that holds it (a raw layer is the file; a tar
    layer holds it at the offset its layout gives)."""

    def __init__(self, storage: KitStorage, layers: list[tuple[TarLayout, str]]) -> None:
        self._where: dict[str, tuple[Path, FileRegion]] = {}
        for layout, digest in layers:
            for region in layout.files:
                self._where.setdefault(region.name, (storage.blob_path(digest), region))

    def read(self, path: str, limit: int) -> bytes | None:
        found = self._where.get(path)
        if found is None:
            return None
        blob, region = found
        try:
            with open(blob, "rb") as handle:
                handle.seek(region.offset)
                return handle.read(min(limit, region.size))
        except OSError:
            return None


# -- reading one back --------------------------------------------------------------------------------------
def is_modelpack(manifest: Mapping[str, Any]) -> bool:
    """kit's rule (``ModelFormatForManifest``): the ModelPack artifact type, or the ModelPack config."""
    config = manifest.get("config")
    return manifest.get("artifactType") == ARTIFACT_TYPE or (
        isinstance(config, Mapping) and config.get("mediaType") == CONFIG_MEDIA_TYPE
    )


def carried_kitfile(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Kitfile a ModelPack manifest carries (kit's JSON, as kit ≥ 1.10 writes and reads it), or None.
    The manifest may be anyone's: a bounded read that never raises."""
    annotations = manifest.get("annotations")
    text = annotations.get(KITFILE_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str) or len(text) > MAX_KITFILE_ANNOTATION_BYTES:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
