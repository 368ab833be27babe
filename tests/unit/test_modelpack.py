"""The ModelPack writer over a folder: what model-spec's schema and each real reader (Docker Model Runner, kit ≥ 1.10,
modctl; their rules in ``tests/support/modelpack_readers.py``) require of it, and that they get the files back byte
for byte. The live tests (``tests/live/test_modelpack_live.py``) do the same for imports from a real MLflow server."""

from __future__ import annotations

import json
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.kitfile import load_kitfile_text
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.packing.modelpack import ModelPackWriter, carried_kitfile, is_modelpack, split_weights
from kitmlflow_tui.core.packing.modelpack_config import RunFacts
from kitmlflow_tui.core.packing.native import pack_native
from kitmlflow_tui.core.packing.result import PackResult
from kitmlflow_tui.core.pipeline import check_format
from kitmlflow_tui.core.provenance import read_provenance
from tests.support import modelpack_readers as readers

CREATED = "2026-05-01T10:00:00.123Z"
KITFILE = """manifestVersion: 1.0.0
package:
  name: churn
  version: v3
  description: A churn model
  license: Apache-2.0
  authors: [alice]
model:
  name: churn
  path: model
  framework: transformers
  parameters:
    mlflow:
      run: {id: 0123456789abcdef0123456789abcdef}
      registered_model: {name: churn, version: "3"}
  parts:
    - path: llm.gguf
    - path: params.json
code:
  - path: src
    license: not a license id
datasets:
  - path: data/train.csv
docs:
  - path: README.md
"""


def safetensors(tensors: dict[str, tuple[str, list[int], int]]) -> bytes:
    """A valid safetensors file: 8 bytes of header length, the JSON header, then the tensors' bytes."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, width) in tensors.items():
        size = width
        for dimension in shape:
            size *= dimension
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(range(256)) * (offset // 256) + bytes(offset % 256)


FILES: dict[str, bytes] = {
    "model/MLmodel": b"flavors:\n  transformers:\n    transformers_version: 4.40.0\n",
    "model/model.safetensors": safetensors({"a": ("BF16", [64, 32], 2), "b": ("BF16", [32], 2)}),
    "model/model-extra.bin": b"extra weights\n" * 50,
    "model/config.json": json.dumps(
        {"model_type": "gpt2", "torch_dtype": "bfloat16", "transformers_version": "4.40.0"}
    ).encode(),
    "model/tokenizer/tokenizer.json": b'{"version": "1.0"}',
    "llm.gguf": b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 40,
    "params.json": b'{"lr": 0.01}',
    "src/train.py": b"print('train')\n",
    "src/util/helpers.py": b"X = 1\n",
    "data/train.csv": b"a,b\n1,2\n",
    "README.md": b"# churn\n",
}


def make_folder(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def pack(folder: Path, home: Path, kitfile: str = KITFILE, facts: RunFacts | None = None) -> PackResult:
    writer = ModelPackWriter(facts or RunFacts(CREATED, "https://github.com/acme/churn.git", "abc123"), "churn")
    return pack_native(
        folder, load_kitfile_text(kitfile), parse_modelkit_reference("churn:v3"), storage_root=home, writer=writer
    )


def blob_of(home: Path):
    return lambda digest: home / "storage" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def read_json(home: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob_of(home)(digest).read_bytes())


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, Path, PackResult]:
    folder = make_folder(tmp_path / "run")
    home = tmp_path / "kit"
    return folder, home, pack(folder, home)


def test_the_manifest_and_config_are_model_spec_v1(packed: tuple[Path, Path, PackResult]) -> None:
    _folder, home, result = packed
    manifest = read_json(home, result.digest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json" and is_modelpack(manifest)
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert manifest["annotations"]["org.opencontainers.image.created"] == CREATED
    config = read_json(home, manifest["config"]["digest"])
    assert readers.date_time_is_checked(), "rfc3339-validator must be installed for the date-time check"
    readers.validate_config(config)
    assert config["modelfs"] == {"type": "layers", "diffIds": [layer["digest"] for layer in manifest["layers"]]}
    assert config["descriptor"] == {
        "createdAt": CREATED,
        "authors": ["alice"],
        "family": "gpt2",
        "name": "churn",
        "sourceURL": "https://github.com/acme/churn.git",
        "version": "v3",
        "revision": "abc123",
        "licenses": ["Apache-2.0"],  # the code's free text is not an SPDX expression
        "title": "churn",
        "description": "A churn model",
    }
    # 64x32 + 32 bfloat16 parameters in the safetensors header; the rest from the Hugging Face config.json.
    assert config["config"] == {
        "architecture": "transformer",
        "format": "safetensors",
        "paramSize": "2.1k",
        "precision": "bfloat16",
    }


def test_every_weight_file_is_a_raw_layer_and_every_folder_a_tar_of_its_kind(
    packed: tuple[Path, Path, PackResult],
) -> None:
    folder, home, result = packed
    manifest = read_json(home, result.digest)
    shape = [(layer["mediaType"].removeprefix("application/vnd.cncf.model."), layer["annotations"][readers.FILEPATH])
             for layer in manifest["layers"]]  # fmt: skip
    assert shape == [
        ("weight.v1.raw", "model/model.safetensors"),  # the model's first weight: the format DMR runs first
        ("weight.v1.raw", "model/model-extra.bin"),
        ("weight.config.v1.tar", "model"),  # the rest of the MLflow model folder
        ("weight.v1.raw", "llm.gguf"),  # a part that is a weight file
        ("weight.config.v1.raw", "params.json"),
        ("code.v1.tar", "src"),
        ("dataset.v1.raw", "data/train.csv"),
        ("doc.v1.raw", "README.md"),
    ]
    for layer in manifest["layers"]:
        path = layer["annotations"][readers.FILEPATH]
        data = blob_of(home)(layer["digest"]).read_bytes()
        if layer["mediaType"].endswith(".raw"):
            assert data == (folder / path).read_bytes(), "a raw layer is the file's bytes"
            metadata = json.loads(layer["annotations"][readers.FILE_METADATA])
            assert metadata == {
                "name": Path(path).name,
                "mode": 0o644,
                "uid": 0,
                "gid": 0,
                "size": len(data),
                "mtime": CREATED,
                "typeflag": ord("0"),
            }
        else:
            assert readers.FILE_METADATA not in layer["annotations"]


def test_tar_layers_are_written_as_kit_writes_them(packed: tuple[Path, Path, PackResult]) -> None:
    """Relative names, each parent folder before what it holds, names in byte order, constant times and owners:
    kit's extractTar opens a file without creating its parents (pkg/lib/filesystem/unpack/core.go)."""
    _folder, home, result = packed
    manifest = read_json(home, result.digest)
    tars = {
        layer["annotations"][readers.FILEPATH]: layer
        for layer in manifest["layers"]
        if layer["mediaType"].endswith(".tar")
    }
    names = {}
    for path, layer in tars.items():
        with tarfile.open(blob_of(home)(layer["digest"]), "r:") as archive:
            members = archive.getmembers()
        names[path] = [m.name for m in members]
        for index, member in enumerate(members):
            assert not member.name.startswith(("/", "./")) and ".." not in member.name.split("/")
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 1000, 0, "", "")
            parent = member.name.rsplit("/", 1)[0] if "/" in member.name else None
            assert parent is None or parent in names[path][:index], f"{member.name} before its folder"
    assert names == {
        "model": ["model", "model/MLmodel", "model/config.json", "model/tokenizer", "model/tokenizer/tokenizer.json"],
        "src": ["src", "src/train.py", "src/util", "src/util/helpers.py"],
    }


def test_the_kitfile_annotation_names_every_layer_by_its_exact_digest(packed: tuple[Path, Path, PackResult]) -> None:
    """kit ≥ 1.10 unpacks by the Kitfile: one entry per layer, each digest in the manifest
    (generateUnpackPlan, pkg/lib/filesystem/unpack/util.go), digests on all entries or none
    (KitfileHasLayerInfo, pkg/artifact/util.go); the provenance is where read_provenance finds it."""
    _folder, home, result = packed
    manifest = read_json(home, result.digest)
    kitfile = readers.kit_kitfile(manifest)
    entries = readers.kitfile_entries(kitfile)
    # kit's plan takes datasets before code; the manifest is in kit's pack order (code first): one entry per layer.
    assert sorted((e["digest"], e["diffId"]) for _, e in entries) == sorted(
        (layer["digest"], layer["digest"]) for layer in manifest["layers"]
    )
    assert len(entries) == len(manifest["layers"])
    assert kitfile["model"]["path"] == "model/model.safetensors" and kitfile["model"]["framework"] == "transformers"
    assert [part["path"] for part in kitfile["model"]["parts"]] == [
        "model/model-extra.bin",
        "model",
        "llm.gguf",
        "params.json",
    ]
    assert kitfile["model"]["parts"][1]["type"] == "mlflow-model"
    provenance = read_provenance(carried_kitfile(manifest) or {})
    assert provenance is not None and provenance.registered_model is not None
    assert (provenance.run.id, provenance.registered_model.version) == ("0123456789abcdef0123456789abcdef", "3")
    for layer in manifest["layers"]:
        readers.kit_media_type(layer["mediaType"])
    config = read_json(home, manifest["config"]["digest"])
    generated = readers.kit_generated_kitfile(manifest, config)  # kit's path for a ModelPack without a Kitfile
    assert generated["model"]["path"] == "model/model.safetensors"


def test_the_readers_get_every_file_back_byte_for_byte(packed: tuple[Path, Path, PackResult], tmp_path: Path) -> None:
    folder, home, result = packed
    manifest = read_json(home, result.digest)
    config = read_json(home, manifest["config"]["digest"])
    source = readers.tree_bytes(folder)

    bundle = tmp_path / "dmr"
    fields = readers.dmr_unpack(manifest, config, blob_of(home), bundle)
    assert fields == {"safetensors": "model/model.safetensors"}, "DMR runs the safetensors weights"
    for weight in ("model/model.safetensors", "model/model-extra.bin", "llm.gguf"):
        linked = bundle / "model" / weight
        assert linked.read_bytes() == source[weight]
        assert linked.stat().st_ino == blob_of(home)(_digest_of(manifest, weight)).stat().st_ino, "hard-linked"

    unpacked = tmp_path / "kit-unpack"
    readers.kit_unpack(manifest, blob_of(home), unpacked)
    assert readers.tree_bytes(unpacked) == source

    extracted = tmp_path / "modctl"
    readers.modctl_extract(manifest, blob_of(home), extracted)
    assert readers.tree_bytes(extracted) == source


def _digest_of(manifest: dict[str, Any], path: str) -> str:
    return next(layer["digest"] for layer in manifest["layers"] if layer["annotations"][readers.FILEPATH] == path)


def test_the_same_files_give_the_same_digest_and_kit_17_never_lists_it(tmp_path: Path) -> None:
    """kit 1.7's `kit list` reads every manifest of a repository's -index.json and dereferences a nil manifest for
    one whose config is not a Kitfile (pkg/cmd/list/list.go readInfoFromRepo + pkg/cmd/list/util.go fill at
    v1.7.0): a ModelPack is tagged and in the shared index, never in that list."""
    folder = make_folder(tmp_path / "run")
    first = pack(folder, tmp_path / "a")
    second = pack(folder, tmp_path / "b")
    again = pack(folder, tmp_path / "a")
    assert first.digest == second.digest == again.digest
    storage = tmp_path / "a" / "storage"
    assert not list(storage.glob("*-index.json")), "no repository index lists it"
    (tags_file,) = storage.glob("*-tags.json")
    assert json.loads(tags_file.read_text())["v3"]["digest"] == first.digest
    shared = json.loads((storage / "index.json").read_text())
    assert [m["digest"] for m in shared["manifests"]] == [first.digest]
    later = pack(folder, tmp_path / "a", facts=RunFacts("2026-05-02T10:00:00.000Z"))
    assert later.digest != first.digest, "the run's end time is in the config"


def test_a_weight_that_prefixes_another_file_stays_in_its_folder(tmp_path: Path) -> None:
    """kit's walk leaves a file out of a folder's layer when another entry's path is a string prefix of it: split
    out, model.safetensors would take model.safetensors.index.json out of every layer."""
    files = {
        "model/MLmodel": b"flavors: {}\n",
        "model/model.safetensors": safetensors({"w": ("F32", [4], 4)}),
        "model/model.safetensors.index.json": b"{}",
        "model/other.safetensors": safetensors({"v": ("F16", [2], 2)}),
    }
    folder = make_folder(tmp_path / "run", files)
    kitfile = load_kitfile_text("manifestVersion: 1.0.0\npackage: {name: p}\nmodel: {path: model}\n")
    split = split_weights(folder, kitfile)
    assert split.model is not None and split.model.path == "model/other.safetensors"
    assert [part.path for part in split.model.parts] == ["model"]
    result = pack(folder, tmp_path / "kit", "manifestVersion: 1.0.0\npackage: {name: p}\nmodel: {path: model}\n")
    manifest = read_json(tmp_path / "kit", result.digest)
    unpacked = tmp_path / "unpacked"
    readers.kit_unpack(manifest, blob_of(tmp_path / "kit"), unpacked)
    assert readers.tree_bytes(unpacked) == readers.tree_bytes(folder)


def test_a_raw_layer_repeating_another_ones_bytes_is_a_tar_so_kit_finds_each_by_digest(tmp_path: Path) -> None:
    """kit ≥ 1.10 finds each Kitfile entry's layer by digest (generateUnpackPlan): two raw layers of one content
    (a checkpoint copied as best.pt) would both unpack to one path. The repeat is a tar of its entry."""
    checkpoint = bytes(range(256)) * 100
    files = {"last.pt": checkpoint, "best.pt": checkpoint, "other.pt": b"other" * 10}
    folder = make_folder(tmp_path / "run", files)
    kitfile = "manifestVersion: 1.0.0\npackage: {name: p}\nmodel:\n  path: last.pt\n  parts: [{path: best.pt}, {path: other.pt}]\n"
    result = pack(folder, tmp_path / "kit", kitfile)
    manifest = read_json(tmp_path / "kit", result.digest)
    kinds = [
        (layer["mediaType"].rsplit(".", 2)[-2:], layer["annotations"][readers.FILEPATH]) for layer in manifest["layers"]
    ]
    assert kinds == [(["v1", "raw"], "last.pt"), (["v1", "tar"], "best.pt"), (["v1", "raw"], "other.pt")]
    assert len({layer["digest"] for layer in manifest["layers"]}) == 3
    config = read_json(tmp_path / "kit", manifest["config"]["digest"])
    readers.validate_config(config)
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in manifest["layers"]]
    entries = readers.kitfile_entries(readers.kit_kitfile(manifest))
    assert [e["digest"] for _, e in entries] == [layer["digest"] for layer in manifest["layers"]]
    for reader in (readers.kit_unpack, readers.modctl_extract):
        out = tmp_path / reader.__name__
        reader(manifest, blob_of(tmp_path / "kit"), out)
        assert readers.tree_bytes(out) == files
    again = pack(folder, tmp_path / "again", kitfile)
    assert again.digest == result.digest


def test_a_gguf_model_is_gguf_for_docker_model_runner(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "run", {"tiny.gguf": b"GGUF\x03\x00\x00\x00" + b"\x01" * 1000})
    result = pack(folder, tmp_path / "kit", "manifestVersion: 1.0.0\npackage: {}\nmodel: {path: tiny.gguf}\n")
    manifest = read_json(tmp_path / "kit", result.digest)
    config = read_json(tmp_path / "kit", manifest["config"]["digest"])
    readers.validate_config(config)
    assert config["config"] == {"format": "gguf"}
    assert config["descriptor"]["name"] == "churn", "the tag's name when the package has none"
    fields = readers.dmr_unpack(manifest, config, blob_of(tmp_path / "kit"), tmp_path / "bundle")
    assert fields == {"gguf": "tiny.gguf"}
    assert (tmp_path / "bundle" / "model" / "tiny.gguf").read_bytes() == (folder / "tiny.gguf").read_bytes()


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://github.com/acme/churn.git", True),
        ("https://user:token@github.com/acme/churn.git", False),
        ("https://github.com/acme/churn.git?access_token=abc", False),
        ("file:///home/alice/churn", False),
    ],
)
def test_the_source_url_is_kept_only_without_credentials(url: str, kept: bool) -> None:
    facts = RunFacts.from_run(CREATED, {"mlflow.source.git.repoURL": url, "mlflow.source.git.commit": "c0ffee"})
    assert facts.source_url == (url if kept else None)
    assert facts.revision == "c0ffee"


def test_formats_the_writer_refuses_are_bad_input() -> None:
    check_format("modelpack", "native", "none")
    check_format("modelkit", "kit", "gzip")
    with pytest.raises(BadInputError, match="kit 1.7 has no ModelPack writer"):
        check_format("modelpack", "kit", "none")
    with pytest.raises(BadInputError, match="uncompressed"):
        check_format("modelpack", "auto", "gzip")
    with pytest.raises(BadInputError, match="Unknown format"):
        check_format("onnx", "auto", "none")
