"""What the real readers of a ModelPack do with one, as code the tests run over what kitmlflow writes.

None of these readers can run here as its own binary except modctl (built by ``make tools`` where it builds;
``modctl_binary``): Docker Model Runner needs Docker, and the kit that reads ModelPacks (≥ 1.10) cannot be
installed. Each function follows the reader's code, named in its docstring (upstream repository, file, function),
step for step where it matters to an artifact: what it refuses, where each layer's bytes end up. The rules are the
readers'; the code is written here (nothing of theirs is copied).

``blob`` in each signature maps a digest to the file holding that blob (kit's local storage, or a registry pull).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "vendor" / "model-spec" / "config-schema.json"
FILEPATH = "org.cncf.model.filepath"
FILE_METADATA = "org.cncf.model.file.metadata+json"
KITFILE = "ml.kitops.modelkit.kitfile"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
# kit's mediatype.ParseMediaType (pkg/lib/constants/mediatype/mediatype.go): base, format, compression.
KIT_MEDIA_TYPE = re.compile(r"^application/vnd\.cncf\.model\.(\w+(?:\.\w+)?)\.v1\.(\w+)(?:\+(\w+))?$")
KIT_BASES = {"config", "weight", "weight.config", "dataset", "code", "doc"}

Blob = Callable[[str], Path]


class ReaderRefused(AssertionError):
    """The reader would stop on the artifact with this message."""


# -- model-spec ----------------------------------------------------------------------------------------------
def validate_config(config: Mapping[str, Any]) -> None:
    """model-spec's ``schema/config-schema.json`` (vendored) with format assertions on, as its Go validator runs
    it (``schema/validator.go``). Raises ``jsonschema.ValidationError``."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(config)


def date_time_is_checked() -> bool:
    """Whether the format checker really checks ``date-time`` (it needs rfc3339-validator importable)."""
    import jsonschema

    return "date-time" in jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers


# -- Docker Model Runner -------------------------------------------------------------------------------------
def dmr_unpack(manifest: Mapping[str, Any], config: Mapping[str, Any], blob: Blob, bundle: Path) -> dict[str, str]:
    """docker/model-runner ``pkg/distribution/internal/bundle/unpack.go`` (HEAD 642c721): ``Unpack`` takes the
    layer-per-file path when ``artifactType`` is the ModelPack one (``isCNCFModel``); ``UnpackFromLayers`` then, in
    manifest order, skips a layer without ``org.cncf.model.filepath``, refuses a path outside ``model/`` or two
    annotations meeting at one path, skips a path that exists, creates the parents and hard-links the blob there.
    ``updateBundleFieldsFromLayer`` takes the first ``weight.v1.raw`` layer as the GGUF or safetensors file when
    ``config.format`` (lowercased) names that format, or, without a format, when the filepath's suffix does
    (``inferFormatFromLayerAnnotations``). Returns the bundle's fields: {"gguf"|"safetensors": filepath}."""
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise ReaderRefused("not a CNCF model: DMR would take its legacy unpack path")
    model_dir = bundle / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    declared = str((config.get("config") or {}).get("format") or "").lower()
    layers = manifest["layers"]
    model_format = declared or _format_from_suffixes(layers)
    seen: dict[Path, str] = {}
    fields: dict[str, str] = {}
    for layer in layers:
        relative = (layer.get("annotations") or {}).get(FILEPATH)
        if not relative:
            continue
        target = (model_dir / relative).resolve()
        if not target.is_relative_to(model_dir.resolve()):
            raise ReaderRefused(f"invalid filepath annotation {relative!r}")
        if target in seen:
            if seen[target] != relative:
                raise ReaderRefused(f"filepath collision: {seen[target]!r} and {relative!r}")
            continue
        seen[target] = relative
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(blob(layer["digest"]), target)
        except OSError as exc:
            raise ReaderRefused(f"unpack {relative}: {exc}") from exc
        if layer["mediaType"] == WEIGHT_RAW and model_format in ("gguf", "safetensors"):
            fields.setdefault(model_format, relative)
    return fields


def _format_from_suffixes(layers: list[Mapping[str, Any]]) -> str:
    for layer in layers:
        if not str(layer.get("mediaType", "")).startswith("application/vnd.cncf.model.weight."):
            continue
        path = str((layer.get("annotations") or {}).get(FILEPATH, "")).lower()
        for suffix, name in ((".gguf", "gguf"), (".safetensors", "safetensors")):
            if path.endswith(suffix):
                return name
    return ""


# -- kit >= 1.10 ---------------------------------------------------------------------------------------------
def kit_media_type(media_type: str) -> tuple[str, str, str]:
    """kit's ``ParseMediaType`` for a ModelPack type (``pkg/lib/constants/mediatype/mediatype.go``)."""
    match = KIT_MEDIA_TYPE.match(media_type)
    if match is None or match.group(1) not in KIT_BASES or match.group(2) not in ("raw", "tar"):
        raise ReaderRefused(f"kit cannot parse the media type {media_type!r}")
    compression = match.group(3) or "none"
    if compression not in ("none", "gzip", "zstd") or (match.group(2) == "raw" and compression != "none"):
        raise ReaderRefused(f"kit refuses the media type {media_type!r}")
    return match.group(1), match.group(2), compression


def kit_kitfile(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """kit's ``GetKitfileForManifest`` (``pkg/lib/repo/util``): a ModelPack's Kitfile is its manifest's
    ``ml.kitops.modelkit.kitfile`` annotation, as JSON."""
    text = (manifest.get("annotations") or {}).get(KITFILE)
    if not text:
        raise ReaderRefused("no Kitfile annotation: kit would fall back to GenerateKitfileForModelPack")
    return json.loads(text)


def kitfile_entries(kitfile: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The Kitfile's layer entries in kit's unpack-plan order (``generateUnpackPlan``, ``pkg/lib/filesystem/
    unpack/util.go``): model, parts, datasets, code, docs, prompts."""
    entries: list[tuple[str, Mapping[str, Any]]] = []
    model = kitfile.get("model") or {}
    if model.get("path"):
        entries.append(("model", model))
    entries += [("modelpart", part) for part in model.get("parts") or []]
    for key in ("datasets", "code", "docs", "prompts"):
        entries += [(key, entry) for entry in kitfile.get(key) or []]
    return entries


def kit_unpack(manifest: Mapping[str, Any], blob: Blob, dest: Path) -> None:
    """kit ≥ 1.10 (with raw layers, kitops PR #1202) ``kit unpack``: ``unpackRecursive`` in
    ``pkg/lib/filesystem/unpack/core.go``. The Kitfile comes from the annotation; ``KitfileHasLayerInfo``
    (``pkg/artifact/util.go``) wants a digest on every entry or on none; the plan looks each entry's digest up in
    the manifest ("digest %s not found in manifest"); a raw layer is written at its filepath annotation (inside
    the folder, mode from the file metadata, size checked against it), a tar layer is extracted by its header
    names (``extractTar``: only folders and regular files, a regular file opened without creating its parents,
    nothing overwritten)."""
    kitfile = kit_kitfile(manifest)
    entries = kitfile_entries(kitfile)
    digests = [entry.get("digest") for _, entry in entries]
    if any(digests) and not all(digests):
        raise ReaderRefused("invalid digests in layerinfo in Kitfile")
    if any(entry.get("diffId") for _, entry in entries) and not all(entry.get("diffId") for _, entry in entries):
        raise ReaderRefused("invalid diffIDs in layerinfo in Kitfile")
    by_digest = {layer["digest"]: layer for layer in manifest["layers"]}
    dest.mkdir(parents=True, exist_ok=True)
    for _, entry in entries:
        layer = by_digest.get(entry["digest"])
        if layer is None:
            raise ReaderRefused(f"digest {entry['digest']} not found in manifest")
        _, layer_format, _ = kit_media_type(layer["mediaType"])
        if layer_format == "raw":
            _kit_raw(layer, blob(layer["digest"]), dest)
        else:
            _kit_tar(blob(layer["digest"]), dest)


def _kit_raw(layer: Mapping[str, Any], source: Path, dest: Path) -> None:
    annotations = layer.get("annotations") or {}
    relative = annotations.get(FILEPATH)
    if not relative:
        raise ReaderRefused(f"failed to unpack raw layer: no {FILEPATH} annotation")
    target = (dest / os.path.normpath(relative)).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise ReaderRefused(f"illegal file path: {relative}")
    metadata = json.loads(annotations[FILE_METADATA]) if annotations.get(FILE_METADATA) else None
    if target.exists():
        raise ReaderRefused(f"path '{relative}' already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, (metadata["mode"] & 0o777) if metadata else 0o644)
    if metadata is not None and target.stat().st_size != metadata["size"]:
        raise ReaderRefused(f"unpacked size of file {relative} does not match metadata annotation")


def _kit_tar(source: Path, dest: Path) -> None:
    with tarfile.open(source, "r:") as archive:
        for member in archive:
            target = (dest / member.name).resolve()
            if not target.is_relative_to(dest.resolve()) or os.path.isabs(member.name):
                raise ReaderRefused(f"illegal file path: {member.name}")
            if member.isdir():
                if target.exists() and not target.is_dir():
                    raise ReaderRefused(f"path '{member.name}' already exists and is not a directory")
                target.mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                if target.exists():
                    raise ReaderRefused(f"path '{member.name}' already exists")
                if not target.parent.is_dir():  # os.OpenFile without MkdirAll
                    raise ReaderRefused(f"failed to create file {member.name}: no such file or directory")
                extracted = archive.extractfile(member)
                assert extracted is not None
                with extracted, open(target, "wb") as out:
                    shutil.copyfileobj(extracted, out)
                os.chmod(target, stat.S_IMODE(member.mode))
            else:
                raise ReaderRefused(f"unrecognized type in archive: {member.name}")


def kit_generated_kitfile(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """kit's ``GenerateKitfileForModelPack`` (``pkg/artifact/util.go``), used when a ModelPack carries no Kitfile:
    one diffId per layer, a filepath annotation on every layer, the first weight layer the model."""
    layers = manifest["layers"]
    diff_ids = config["modelfs"]["diffIds"]
    if len(layers) != len(diff_ids):
        raise ReaderRefused("invalid ModelPack config: number of layers does not match DiffIDs")
    kitfile: dict[str, Any] = {"manifestVersion": "1.0.0", "model": {}}
    for index, layer in enumerate(layers):
        path = (layer.get("annotations") or {}).get(FILEPATH)
        if not path:
            raise ReaderRefused(f"unknown file path for layer: no {FILEPATH} annotation")
        base, _, _ = kit_media_type(layer["mediaType"])
        info = {"path": path, "digest": layer["digest"], "diffId": diff_ids[index]}
        if base == "weight" and not kitfile["model"]:
            kitfile["model"] = info
        elif base in ("weight", "weight.config"):
            kitfile["model"].setdefault("parts", []).append(info)
        else:
            kitfile.setdefault({"code": "code", "dataset": "datasets", "doc": "docs"}[base], []).append(info)
    return kitfile


# -- modctl --------------------------------------------------------------------------------------------------
def modctl_binary() -> str | None:
    """The real modctl: ``$KITMLFLOW_TEST_MODCTL_BIN``, else ``.tools/bin/modctl``, else on PATH (it builds from
    source with ``go build`` in about ten minutes on two cores; docs/kit-compatibility.md says how)."""
    for candidate in (os.environ.get("KITMLFLOW_TEST_MODCTL_BIN", ""), str(REPO / ".tools" / "bin" / "modctl")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("modctl")


def modctl_extract(manifest: Mapping[str, Any], blob: Blob, dest: Path) -> None:
    """modctl's ``extract`` as its code does it, for where the binary is absent: ``exportModelArtifact`` and
    ``extractLayer`` (``pkg/backend/extract.go``): the codec from the media type's suffix (``pkg/codec/codec.go``
    ``TypeFromMediaType``: ``.tar`` or ``.raw``, anything else "unsupported codec type"); raw: the blob to
    ``<dest>/<filepath>`` with the metadata's mode (``pkg/codec/raw.go``); tar: ``archiver.Untar``
    (``pkg/archiver/archiver.go``), which refuses any name containing ``..`` and ignores the filepath."""
    dest.mkdir(parents=True, exist_ok=True)
    for layer in manifest["layers"]:
        media_type = layer["mediaType"]
        annotations = layer.get("annotations") or {}
        if media_type.endswith(".raw"):
            target = dest / annotations.get(FILEPATH, "")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob(layer["digest"]), target)
            if annotations.get(FILE_METADATA):
                mode = json.loads(annotations[FILE_METADATA])["mode"]
                if mode:
                    os.chmod(target, mode)
        elif media_type.endswith(".tar"):
            with tarfile.open(blob(layer["digest"]), "r:") as archive:
                for member in archive:
                    clean = os.path.normpath(member.name)
                    if ".." in clean or clean.startswith("/"):
                        raise ReaderRefused(f"tar file contains invalid path: {clean}")
                    target = dest / clean
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if member.isdir():
                        target.mkdir(exist_ok=True)
                    elif member.isreg():
                        extracted = archive.extractfile(member)
                        assert extracted is not None
                        with extracted, open(target, "wb") as out:
                            shutil.copyfileobj(extracted, out)
        else:
            raise ReaderRefused(f"unsupported codec type for media type {media_type}")


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (relative, ``/``-separated) with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
