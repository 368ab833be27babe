"""The attestation's parts without servers: keys, DSSE, the statement, file digests, the layer reader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from kitmlflow_tui.core.attest.dsse import pae, read_envelope, sign_payload
from kitmlflow_tui.core.attest.keys import check_sign_key, load_signing_key, load_verifying_key, public_key_beside
from kitmlflow_tui.core.attest.layer_contents import ByteBudget, LayerError, layer_files
from kitmlflow_tui.core.attest.statement import (
    BUILD_TYPE,
    Invocation,
    StatementInput,
    artifact_uri,
    build_statement,
    read_statement,
    statement_bytes,
)
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.packing.file_digests import RegionDigests
from kitmlflow_tui.core.packing.layers import TarEntry, tar_layout
from kitmlflow_tui.core.packing.tar_format import padding, tar_header
from kitmlflow_tui.core.provenance import ExperimentSource, MlflowProvenance, RegisteredVersion, RunSource
from kitmlflow_tui.core.registry.referrers import referrers_tag

KEY_PASSWORD = "Key-Pa55word-42"


# -- keys ------------------------------------------------------------------------------------------------------
def write_key(path: Path, key, password: str | None = None) -> Path:
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def write_public(path: Path, key) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


@pytest.fixture
def no_key_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KITMLFLOW_SIGN_KEY_PASSWORD", "COSIGN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256-sha256", "ed25519"])
def test_a_pem_key_signs_and_its_public_key_verifies(tmp_path: Path, algorithm: str, no_key_passwords) -> None:
    private = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm.startswith("ecdsa")
        else ed25519.Ed25519PrivateKey.generate()
    )
    key = load_signing_key(write_key(tmp_path / "key.pem", private))
    public = load_verifying_key(write_public(tmp_path / "key.pub", private))
    assert key.info.algorithm == algorithm == public.info.algorithm
    assert key.info.key_id == public.info.key_id
    envelope = read_envelope(sign_payload(b'{"_type":"x"}', key).to_bytes())
    assert envelope.signed_by(public)
    other = load_verifying_key(write_public(tmp_path / "other.pub", ed25519.Ed25519PrivateKey.generate()))
    assert not envelope.signed_by(other)


def test_an_encrypted_key_needs_its_password_and_no_message_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_key_passwords
) -> None:
    path = write_key(tmp_path / "key.pem", ec.generate_private_key(ec.SECP256R1()), KEY_PASSWORD)
    with pytest.raises(BadInputError, match="KITMLFLOW_SIGN_KEY_PASSWORD") as refused:
        load_signing_key(path)
    assert str(path) in refused.value.message
    monkeypatch.setenv("KITMLFLOW_SIGN_KEY_PASSWORD", "wrong-password-1")
    with pytest.raises(BadInputError, match="does not open") as refused:
        load_signing_key(path)
    assert "wrong-password-1" not in str(refused.value)
    monkeypatch.setenv("KITMLFLOW_SIGN_KEY_PASSWORD", KEY_PASSWORD)
    assert load_signing_key(path).info.algorithm == "ecdsa-p256-sha256"
    with pytest.raises(BadInputError):
        check_sign_key(path, "wrong-password-2")
    assert check_sign_key(path, KEY_PASSWORD).algorithm == "ecdsa-p256-sha256"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "an RSA key"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "an ECDSA secp384r1 key"),
    ],
)
def test_keys_cosign_cannot_check_are_refused(tmp_path: Path, make, message: str, no_key_passwords) -> None:
    path = write_key(tmp_path / "key.pem", make())
    with pytest.raises(BadInputError, match=message):
        load_signing_key(path)


def test_a_public_key_is_no_signing_key_and_a_private_key_no_verifying_key(tmp_path: Path, no_key_passwords) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(BadInputError, match="holds a public key"):
        load_signing_key(write_public(tmp_path / "key.pub", private))
    key_file = write_key(tmp_path / "key.pem", private)
    with pytest.raises(BadInputError, match="holds a private key") as refused:
        load_verifying_key(key_file)
    body = key_file.read_text().splitlines()[1]
    assert body not in str(refused.value)


def test_the_public_key_beside_a_signing_key_is_found_only_when_it_is_its(tmp_path: Path, no_key_passwords) -> None:
    """What the wizard's done screen puts after `verify --key`: NAME.pub beside NAME.pem (cosign.pub beside
    cosign.key), when it verifies that key; anything else there is no answer."""
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = write_key(tmp_path / "sign.pem", private)
    key_id = check_sign_key(key_file).key_id
    assert public_key_beside(key_file, key_id) is None  # nothing beside it yet
    write_public(tmp_path / "sign.pub", ed25519.Ed25519PrivateKey.generate())
    assert public_key_beside(key_file, key_id) is None  # another key's
    (tmp_path / "sign.pub").write_text("not a key")
    assert public_key_beside(key_file, key_id) is None
    write_public(tmp_path / "sign.pub", private)
    assert public_key_beside(key_file, key_id) == tmp_path / "sign.pub"


def test_a_push_cannot_sign_what_was_packed_without_the_key(tmp_path: Path, no_key_passwords) -> None:
    """pipeline.push_packed (the wizard's push of a ModelKit packed before) signs from the digests the import took:
    a ModelKit packed without a key has none, and is refused before anything is sent (exit 2)."""
    import threading

    from kitmlflow_tui.core.events import Observer
    from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference, parse_push_reference
    from kitmlflow_tui.core.pipeline import ImportOptions, ImportResult, push_packed

    key_file = write_key(tmp_path / "sign.pem", ec.generate_private_key(ec.SECP256R1()))
    packed = ImportResult(
        reference="m:v1",
        digest="sha256:" + "0" * 64,
        packer="native",
        size=1,
        kitfile=None,  # never read: the refusal comes first
        storage_root=tmp_path,
        download=None,
        provenance_location="",
    )
    options = ImportOptions(
        tag=parse_modelkit_reference("m:v1"),
        push_to=parse_push_reference("127.0.0.1:9/ml/m:v1"),  # nothing listens: no request may be made
        sign_key=key_file,
    )
    with pytest.raises(BadInputError, match="packed without a signing key"):
        push_packed(packed, options, Observer(), threading.Event())


@pytest.mark.parametrize("content", [b"", b"not a key", b"\xff\xfe" * 10, b"A" * (70 * 1024)])
def test_what_is_not_a_key_file_is_bad_input(tmp_path: Path, content: bytes, no_key_passwords) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(BadInputError) as refused:
        load_signing_key(path)
    assert str(path) in refused.value.message
    with pytest.raises(BadInputError):
        load_signing_key(tmp_path / "missing.pem")


# -- DSSE --------------------------------------------------------------------------------------------------------
def test_pae_is_dsse_v1s_encoding() -> None:
    # The DSSE spec's own example (protocol.md): PAE("http://example.com/HelloWorld", "hello world").
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"payloadType":"x","payload":"!!","signatures":[{"sig":"AA=="}]}',
        b'{"payloadType":"x","payload":"","signatures":[]}',
    ],
)
def test_what_is_not_an_envelope_is_refused(data: bytes) -> None:
    from kitmlflow_tui.core.attest.dsse import EnvelopeError

    with pytest.raises(EnvelopeError):
        read_envelope(data)


# -- the statement ------------------------------------------------------------------------------------------------
def provenance(**changes) -> MlflowProvenance:
    values = {
        "tracking_uri": "https://mlflow.example.com",
        "experiment": ExperimentSource("3", "exp"),
        "run": RunSource("a" * 32, "run", "FINISHED"),
        "filter": {"include": ["model/**"], "exclude": ["*.tmp"], "max_file_size": 1000},
    }
    return MlflowProvenance(**{**values, **changes})


def statement_input(**changes) -> StatementInput:
    from kitmlflow_tui.core.packing.file_digests import FileDigest

    values = {
        "subject_name": "registry.example.com/org/model",
        "subject_digest": "sha256:" + "d" * 64,
        "provenance": provenance(),
        "files": [FileDigest("model/w.bin", 3, "1" * 64), FileDigest("mlflow-provenance.yaml", 9, "2" * 64)],
        "run_files": {"model/w.bin": "model"},
        "config_media_type": "application/vnd.kitops.modelkit.config.v1+json",
        "config_digest": "sha256:" + "c" * 64,
        "invocation": Invocation("id-1", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
    }
    return StatementInput(**{**values, **changes})


def test_the_statement_names_the_manifest_the_run_and_every_file() -> None:
    statement = build_statement(statement_input())
    assert statement["subject"] == [{"name": "registry.example.com/org/model", "digest": {"sha256": "d" * 64}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"] == {
        "source": f"mlflow://mlflow.example.com/experiments/3/runs/{'a' * 32}",
        "trackingUri": "https://mlflow.example.com",
        "experimentId": "3",
        "runId": "a" * 32,
        "filter": {"include": ["model/**"], "exclude": ["*.tmp"], "maxFileSize": 1000},
        "format": "modelkit",
    }
    assert definition["resolvedDependencies"][0] == {
        "name": "model/w.bin",
        "uri": f"runs:/{'a' * 32}/model/w.bin",
        "digest": {"sha256": "1" * 64},
        "annotations": {"size": 3},
    }
    assert definition["resolvedDependencies"][1]["name"] == "Kitfile"
    assert statement["predicate"]["runDetails"]["byproducts"] == [
        {"name": "mlflow-provenance.yaml", "digest": {"sha256": "2" * 64}, "annotations": {"size": 9}}
    ]
    read = read_statement(statement_bytes(statement))
    assert read.subject_digests == ("sha256:" + "d" * 64,)
    assert read.config_digest == "sha256:" + "c" * 64
    assert {f.path: f.uri for f in read.files} == {
        "model/w.bin": f"runs:/{'a' * 32}/model/w.bin",
        "mlflow-provenance.yaml": None,
    }


def test_a_registered_models_files_are_models_uris_and_other_files_runs_uris() -> None:
    registered = provenance(registered_model=RegisteredVersion("fraud detector", "4", "champion"))
    assert artifact_uri("fraud/MLmodel", "fraud", registered) == "models:/fraud%20detector/4/MLmodel"
    assert artifact_uri("fraud/sub dir/w.bin", "fraud", registered) == "models:/fraud%20detector/4/sub%20dir/w.bin"
    assert artifact_uri("notes.txt", None, registered) == f"runs:/{'a' * 32}/notes.txt"
    statement = build_statement(statement_input(provenance=registered))
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["source"] == "mlflow://mlflow.example.com/models/fraud%20detector@champion"
    assert external["registeredModel"] == {"name": "fraud detector", "version": "4", "alias": "champion"}


def test_a_run_imported_whole_is_attested_as_the_run_though_its_model_is_registered() -> None:
    # The source was the run and its files are the run's: models:/ URIs would name a version nobody imported.
    registered = provenance(
        registered_model=RegisteredVersion("churn", "2", None, ("champion",), imported_from_run=True)
    )
    assert artifact_uri("model/w.bin", "model", registered) == f"runs:/{'a' * 32}/model/w.bin"
    statement = build_statement(statement_input(provenance=registered))
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["source"] == f"mlflow://mlflow.example.com/experiments/3/runs/{'a' * 32}"
    assert "registeredModel" not in external


def test_no_credential_reaches_the_statement() -> None:
    secret = "Sup3r-s3cret-pw"
    leaky = provenance(
        tracking_uri=f"https://user:{secret}@mlflow.example.com",
        filter={"include": [f"token={secret}"], "exclude": []},
        registered_model=RegisteredVersion(f"m?password={secret}", "1"),
    )
    text = statement_bytes(build_statement(statement_input(provenance=leaky))).decode()
    assert secret not in text
    assert "***" in text


def test_a_foreign_statement_is_read_without_trusting_it() -> None:
    from kitmlflow_tui.core.attest.statement import StatementError

    for payload in (
        b"[]",
        b'{"_type": "other"}',
        b"\xff",
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{"resolvedDependencies":[{"name":"x"}]}}}',
    ):
        with pytest.raises(StatementError):
            read_statement(payload)


# -- each file's digest from the layer's bytes ---------------------------------------------------------------------
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 4000), min_size=1, max_size=40),
)
def test_region_digests_are_each_files_sha256_however_the_tar_is_chunked(sizes: list[int], cuts: list[int]) -> None:
    entries = [TarEntry(f"d/f{i}.bin", False, 0o644, size) for i, size in enumerate(sizes)]
    contents = {e.name: os.urandom(e.size) for e in entries}
    tar = bytearray()
    for entry in entries:
        tar += tar_header(entry.name, entry.mode, entry.size, False) + contents[entry.name] + padding(entry.size)
    tar += bytes(1024)
    layout = tar_layout(entries)
    assert layout.size == len(tar)
    digests = RegionDigests(layout.files)
    offset, index = 0, 0
    while offset < len(tar):
        size = cuts[index % len(cuts)]
        digests.update(offset, tar[offset : offset + size])
        offset += len(tar[offset : offset + size])
        index += 1
    assert {d.path: (d.size, d.sha256) for d in digests.result()} == {
        name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in contents.items()
    }


def test_region_digests_refuse_a_tar_not_read_to_its_end() -> None:
    from kitmlflow_tui.core.errors import PackError

    layout = tar_layout([TarEntry("a", False, 0o644, 10), TarEntry("b", False, 0o644, 0)])
    digests = RegionDigests(layout.files)
    digests.update(0, bytes(600))
    with pytest.raises(PackError):
        digests.result()
    with pytest.raises(PackError):
        digests.update(0, b"x")  # out of order


# -- the layer reader --------------------------------------------------------------------------------------------
def python_tar(files: dict[str, bytes], *, fmt=tarfile.PAX_FORMAT, symlink: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "elsewhere"
            tar.addfile(info)
    return out.getvalue()


def read_layer(
    blob: bytes, media_type: str = "application/vnd.kitops.modelkit.model.v1.tar", budget: int = 1 << 30, **kw
):
    """The layer's files as verify reads them (chunks of an odd size); a blob that is not its descriptor's raises."""
    chunks = [blob[i : i + 777] for i in range(0, len(blob), 777)]
    digest = kw.get("digest", "sha256:" + hashlib.sha256(blob).hexdigest())
    contents = layer_files(
        chunks, media_type, digest, kw.get("size", len(blob)), kw.get("annotations", {}), ByteBudget(budget)
    )
    if contents.problem:
        raise LayerError(contents.problem)
    return contents.files


def test_the_layer_reader_gives_each_files_digest_from_kit_style_and_python_tars() -> None:
    long_name = "deep/" + "x" * 150 + "/weights-ü.bin"
    files = {"a.txt": b"hello", long_name: os.urandom(3000), "empty": b""}
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        blob = python_tar(files, fmt=fmt)
        assert {f.path: f.sha256 for f in read_layer(blob)} == expected
        gz = gzip.compress(blob)
        assert {
            f.path: f.sha256 for f in read_layer(gz, "application/vnd.kitops.modelkit.model.v1.tar+gzip")
        } == expected


def test_the_layer_reader_refuses_what_a_modelkit_layer_never_holds() -> None:
    with pytest.raises(LayerError, match="not a regular file"):
        read_layer(python_tar({"a": b"1"}, symlink="link"))
    with pytest.raises(LayerError, match="not that blob"):
        read_layer(python_tar({"a": b"1"}), digest="sha256:" + "0" * 64)
    with pytest.raises(LayerError, match="larger than its descriptor"):
        read_layer(python_tar({"a": b"1"}), size=100)
    with pytest.raises(LayerError, match="more than the 1000 bytes"):
        read_layer(python_tar({"big": bytes(5000)}), budget=1000)
    with pytest.raises(LayerError, match="checksum"):
        read_layer(b"x" * 1024)
    huge_pax = bytearray(tar_header("p", 0o644, 0, False))
    huge_pax[156:157] = b"x"
    huge_pax[124:136] = b"%011o\x00" % (64 * 1024 * 1024)
    huge_pax[148:156] = b"        "
    huge_pax[148:156] = b"%06o\x00 " % sum(huge_pax)
    with pytest.raises(LayerError, match="extended tar header"):
        read_layer(bytes(huge_pax) + bytes(1024))
    with pytest.raises(LayerError, match="not valid gzip|ends early"):
        read_layer(b"\x1f\x8b" + b"junk" * 10, "application/vnd.kitops.modelkit.model.v1.tar+gzip")


def test_a_raw_layer_is_the_file_its_annotation_names() -> None:
    data = os.urandom(5000)
    (found,) = read_layer(
        data, "application/vnd.cncf.model.weight.v1.raw", annotations={"org.cncf.model.filepath": "w.gguf"}
    )
    assert (found.path, found.size, found.sha256) == ("w.gguf", 5000, hashlib.sha256(data).hexdigest())
    with pytest.raises(LayerError, match="names its file"):
        read_layer(data, "application/vnd.cncf.model.weight.v1.raw")


def test_the_referrers_tag_schema() -> None:
    assert referrers_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32
    assert referrers_tag("sha512:" + "f" * 128) == "sha512-" + "f" * 64  # the hex truncated to 64
