"""Signed provenance, end to end: ``import --push --sign-key``, ``sync --sign-key`` and ``kitmlflow verify`` against a
real ``mlflow server``, two real registries and the real cosign.

The registries: Debian's ``docker-registry`` 2.8 (no referrers API: the referrers tag lists the attestation) and
``tests/support/referrers_registry`` (go-containerregistry's registry with the referrers API). On each, every
positive case must satisfy both ``cosign verify-attestation --key … --type slsaprovenance1 --insecure-ignore-tlog``
and ``kitmlflow verify``, and every negative case must be refused by both (exit 10 for kitmlflow): another key, no
attestation, a statement changed after signing, an attestation copied onto another manifest, a tag re-pushed with a
file changed. Where cosign is not installed its half is skipped with the reason (the recorded vectors, checked by
tests/unit/test_attest_vectors.py, still pin what cosign accepted).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kitmlflow_tui.core.attest import attach
from kitmlflow_tui.core.attest.dsse import Envelope, read_envelope
from kitmlflow_tui.core.attest.statement import PREDICATE_TYPE
from kitmlflow_tui.core.modelkit_reference import parse_push_reference
from kitmlflow_tui.core.registry import RegistryClient, push_modelkit
from tests.support.attest_tools import (
    cosign_missing,
    cosign_verify_attestation,
    referrers_registry,
    referrers_registry_missing,
)
from tests.support.cli import CliOutcome, run_cli
from tests.support.live import LiveServer
from tests.support.registry_servers import module_registry, registry_available, registry_server
from tests.support.servers import seed_run

VECTORS = Path(__file__).resolve().parents[1] / "attest_vectors"
COSIGN_PASSWORD = "kitmlflow-vector"  # the recorded cosign.key's (tests/attest_vectors/README.md)
ED25519_PASSWORD = "Ed-Pa55word-77"
REGISTRY_KINDS = ("docker-registry", "referrers-api")
needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")


# -- keys, registries, environment ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Keys:
    cosign_key: Path  # cosign's own format (recorded by cosign generate-key-pair)
    cosign_pub: Path
    ed25519_key: Path  # encrypted PKCS#8, password in KITMLFLOW_SIGN_KEY_PASSWORD
    ed25519_pub: Path
    other_pub: Path  # a key that signed nothing


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("cosign.key", "cosign.pub"):
        (folder / name).write_bytes((VECTORS / name).read_bytes())
    ed = ed25519.Ed25519PrivateKey.generate()
    encryption = serialization.BestAvailableEncryption(ED25519_PASSWORD.encode())
    (folder / "ed25519.pem").write_bytes(
        ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    (folder / "ed25519.pub").write_bytes(ed.public_key().public_bytes(serialization.Encoding.PEM, public))
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (folder / "other.pub").write_bytes(other.public_bytes(serialization.Encoding.PEM, public))
    return Keys(
        folder / "cosign.key",
        folder / "cosign.pub",
        folder / "ed25519.pem",
        folder / "ed25519.pub",
        folder / "other.pub",
    )


@dataclass(frozen=True)
class AnyRegistry:
    kind: str
    host: str
    storage: Path | None  # docker-registry's blob storage (the tamper test writes there)


@pytest.fixture(scope="module", params=REGISTRY_KINDS)
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyRegistry]:
    if request.param == "docker-registry":
        for found in module_registry(tmp_path_factory, "reg-attest"):
            yield AnyRegistry(request.param, found.host, found.storage)
        return
    missing = referrers_registry_missing()
    if missing:
        pytest.skip(missing)
    with referrers_registry(tmp_path_factory.mktemp("reg-referrers")) as found:
        yield AnyRegistry(request.param, found.host, None)


def environment(root: Path, **extra: str) -> dict[str, str]:
    """What the CLI runs with: its own kit home, cache and config; the keys' passwords."""
    return {
        "KITOPS_HOME": str(root / "kitops"),
        "KITMLFLOW_CACHE_DIR": str(root / "cache"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "DOCKER_CONFIG": str(root / "docker"),
        "COSIGN_PASSWORD": COSIGN_PASSWORD,
        "KITMLFLOW_SIGN_KEY_PASSWORD": ED25519_PASSWORD,
        "MLFLOW_TRACKING_URI": "",
        **extra,
    }


def cosign_accepts(reference: str, public_key: Path) -> bool | None:
    """cosign's answer (True/False), or None (with the reason printed) where cosign is not installed."""
    missing = cosign_missing()
    if missing:
        print(f"cosign half skipped: {missing}")
        return None
    outcome = cosign_verify_attestation(reference, public_key)
    print(f"cosign verify-attestation {reference}: exit {outcome.code}\n{outcome.output[-800:]}")
    return outcome.code == 0


def verify(reference: str, key: Path, *extra: str, env: dict[str, str] | None = None) -> CliOutcome:
    return run_cli("verify", reference, "--key", str(key), "--json", *extra, env=env)


def assert_both_refuse(reference: str, key: Path, reason: str, *extra: str) -> CliOutcome:
    out = verify(reference, key, *extra)
    assert out.code == 10, out.stderr
    document = out.json
    assert document["verified"] is False and document["error"]["code"] == 10
    assert any(reason in problem for problem in document["problems"]), document["problems"]
    assert cosign_accepts(reference, key) in (False, None)
    return out


# -- one signed import per registry, shared by the cases below ------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    registry: AnyRegistry
    reference: str  # registry/repository:tag
    digest: str
    envelope: Envelope
    document: dict  # import's --json
    kitops: Path  # the kit home holding the packed ModelKit
    root: Path


@pytest.fixture(scope="module")
def signed(live: LiveServer, registry: AnyRegistry, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    root = tmp_path_factory.mktemp(f"signed-{registry.kind}")
    reference = f"{registry.host}/attest/signed:v1"
    output = root / "attestation.json"
    out = run_cli(
        "import", live.uri(), "-t", reference, "--yes", "--json", "--packer", "native", "--push",
        "--sign-key", str(keys.cosign_key), "--attestation-output", str(output),
        env=environment(root),
    )  # fmt: skip
    assert out.code == 0, out.stderr
    document = out.json
    envelope = read_envelope(output.read_bytes())
    return Signed(registry, reference, document["pushed"]["digest"], envelope, document, root / "kitops", root)


@needs_registry
@pytest.mark.timeout(600)
def test_import_push_sign_key_is_accepted_by_cosign_and_by_verify(signed: Signed, keys: Keys, live: LiveServer) -> None:
    attestation = signed.document["attestation"]
    assert attestation["signed"] is True and attestation["predicate_type"] == PREDICATE_TYPE
    assert attestation["subject"] == {"name": signed.reference.rsplit(":", 1)[0], "digest": signed.digest}
    assert attestation["key_id"].startswith("sha256:")
    tag = "sha256-" + signed.digest.removeprefix("sha256:")
    listed_by = "the referrers API" if signed.registry.kind == "referrers-api" else f"tag {tag}"
    assert [(a["layout"], a["where"]) for a in attestation["attached"]] == [
        (attach.BUNDLE_REFERRER, listed_by),
        (attach.COSIGN_ATT_TAG, f"tag {tag}.att"),
    ]
    statement = json.loads(signed.envelope.payload)
    assert statement["subject"][0]["digest"] == {"sha256": signed.digest.removeprefix("sha256:")}
    # Every file's digest is the sha256 of the bytes MLflow holds.
    store = live.artifact_dir()
    for dependency in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        path = store / dependency["name"]
        if path.is_file():
            assert dependency["digest"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), dependency["name"]
            assert dependency["uri"] == f"runs:/{live.runs['full']}/{dependency['name']}"

    assert cosign_accepts(signed.reference, keys.cosign_pub) in (True, None)
    out = verify(signed.reference, keys.cosign_pub, "--deep", "--mlflow", env={"MLFLOW_TRACKING_URI": ""})
    assert out.code == 0, out.stderr
    document = out.json
    assert document["verified"] is True and document["problems"] == []
    assert document["digest"] == signed.digest
    assert document["signer_key"] == attestation["key_id"]
    assert document["run"] == {
        "tracking_uri": live.url,
        "experiment_id": live.experiment_id,
        "run_id": live.runs["full"],
    }
    assert document["registered_model"] is None
    assert document["checked"] == ["signature", "subject", "layers", "mlflow"]
    assert {f["path"] for f in document["files"]} == {f["path"] for f in signed.document["selected"]}


@needs_registry
@pytest.mark.timeout(600)
def test_verify_and_cosign_refuse_another_key_and_a_modelkit_without_attestation(signed: Signed, keys: Keys) -> None:
    out = assert_both_refuse(signed.reference, keys.other_pub, "the signature does not verify with the key")
    assert out.json["run"] is None  # nothing of an unverified statement is shown as its provenance
    unsigned = f"{signed.registry.host}/attest/unsigned:v1"
    push_modelkit(parse_push_reference(signed.reference), parse_push_reference(unsigned), storage_root=signed.kitops)
    assert_both_refuse(unsigned, keys.cosign_pub, "no attestation is attached to")


def attach_to(registry: AnyRegistry, repository: str, digest: str, envelope: Envelope, storage: Path) -> None:
    manifest = (storage / "storage" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    subject = attach.Subject(digest, json.loads(manifest).get("mediaType", attach.OCI_MANIFEST), len(manifest))
    with RegistryClient.connect(registry.host) as client:
        attach.attach_envelope(client, repository, subject, envelope, PREDICATE_TYPE, created="2026-12-06T00:00:00Z")


@needs_registry
@pytest.mark.timeout(600)
def test_verify_and_cosign_refuse_a_statement_changed_after_signing(signed: Signed, keys: Keys) -> None:
    reference = f"{signed.registry.host}/attest/tampered:v1"
    push_modelkit(parse_push_reference(signed.reference), parse_push_reference(reference), storage_root=signed.kitops)
    statement = json.loads(signed.envelope.payload)
    statement["predicate"]["buildDefinition"]["externalParameters"]["runId"] = "f" * 32  # another run, same signature
    changed = Envelope(signed.envelope.payload_type, json.dumps(statement).encode(), signed.envelope.signatures)
    attach_to(signed.registry, "attest/tampered", signed.digest, changed, signed.kitops)
    assert_both_refuse(reference, keys.cosign_pub, "the statement was changed after signing")


@needs_registry
@pytest.mark.timeout(600)
def test_verify_and_cosign_refuse_an_attestation_copied_onto_another_manifest_and_a_repushed_tag(
    signed: Signed, keys: Keys, live: LiveServer
) -> None:
    # Another ModelKit of the same run (one file fewer), packed in the same kit home; the genuine signed envelope
    # (whose subject is the first manifest) is attached to it.
    other = f"{signed.registry.host}/attest/copied:v1"
    out = run_cli(
        "import", live.uri(), "-t", other, "--yes", "--json", "--packer", "native", "--exclude", "plots/**",
        env=environment(signed.root),
    )  # fmt: skip
    assert out.code == 0, out.stderr
    other_digest = out.json["digest"]
    assert other_digest != signed.digest
    push_modelkit(parse_push_reference(other), storage_root=signed.kitops)
    attach_to(signed.registry, "attest/copied", other_digest, signed.envelope, signed.kitops)
    assert_both_refuse(other, keys.cosign_pub, "not this manifest", "--deep")

    # A tag that held the signed ModelKit, re-pushed with a file changed: the tag's new manifest has no attestation.
    repushed = f"{signed.registry.host}/attest/repushed:v1"
    push_modelkit(parse_push_reference(signed.reference), parse_push_reference(repushed), storage_root=signed.kitops)
    attach_to(signed.registry, "attest/repushed", signed.digest, signed.envelope, signed.kitops)
    assert verify(repushed, keys.cosign_pub, "--deep").code == 0
    push_modelkit(parse_push_reference(other), parse_push_reference(repushed), storage_root=signed.kitops)
    assert_both_refuse(repushed, keys.cosign_pub, "no attestation is attached to", "--deep")


# -- a registry that serves changed layer bytes: only --deep sees it ---------------------------------------------------
def tamper_one_byte_of_a_file(registry_storage: Path, manifest: dict) -> str:
    """Change one byte inside the largest layer's file content, in the registry's own storage (same digest path)."""
    import tarfile

    layer = max(manifest["layers"], key=lambda entry: entry["size"])
    hexdigest = layer["digest"].removeprefix("sha256:")
    (data,) = registry_storage.rglob(f"blobs/sha256/{hexdigest[:2]}/{hexdigest}/data")
    with tarfile.open(data) as tar:
        first_file = next(member for member in tar.getmembers() if member.isfile() and member.size)
    with open(data, "r+b") as blob:
        blob.seek(first_file.offset_data + first_file.size // 2)
        original = blob.read(1)
        blob.seek(first_file.offset_data + first_file.size // 2)
        blob.write(bytes([original[0] ^ 0xFF]))
    return layer["digest"]


@needs_registry
@pytest.mark.timeout(600)
def test_a_registry_serving_changed_layer_bytes_is_caught_by_deep_only(
    signed: Signed, keys: Keys, tmp_path: Path
) -> None:
    if signed.registry.kind != "docker-registry":
        pytest.skip("the in-memory referrers registry has no storage to tamper with")
    with registry_server(tmp_path / "reg") as own:
        reference = f"{own.host}/attest/served:v1"
        push_modelkit(
            parse_push_reference(signed.reference), parse_push_reference(reference), storage_root=signed.kitops
        )
        attach_to(
            AnyRegistry("docker-registry", own.host, own.storage),
            "attest/served",
            signed.digest,
            signed.envelope,
            signed.kitops,
        )
        manifest = json.loads(
            (signed.kitops / "storage" / "blobs" / "sha256" / signed.digest.removeprefix("sha256:")).read_bytes()
        )
        tampered = tamper_one_byte_of_a_file(own.storage, manifest)
        assert verify(reference, keys.cosign_pub).code == 0  # the manifest and its attestation are untouched
        assert cosign_accepts(reference, keys.cosign_pub) in (True, None)  # cosign reads no layer
        out = verify(reference, keys.cosign_pub, "--deep")
    assert out.code == 10, out.stderr
    problems = out.json["problems"]
    assert any(tampered[:19] in p and "is not that blob" in p for p in problems), problems
    assert any(p.startswith("weights/big.safetensors changed") for p in problems), problems


# -- an Ed25519 key, sync --sign-key ---------------------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(900)
def test_sync_sign_key_attests_each_pushed_version_and_not_the_alias_tag(
    live: LiveServer, registry: AnyRegistry, keys: Keys, tmp_path: Path
) -> None:
    target = f"{registry.host}/attest/synced"
    command = [
        "sync", f"mlflow://{live.host}/models/{live.model_name}@champion", "--to", target, "--yes", "--json",
        "--packer", "native", "--sign-key", str(keys.ed25519_key),
    ]  # fmt: skip
    out = run_cli(*command, env=environment(tmp_path))
    assert out.code == 0, out.stderr
    records = {record["tag"]: record for record in out.json["records"]}
    assert records["v1"]["action"] == "pushed"
    assert [a["layout"] for a in records["v1"]["attestation"]["attached"]] == list(attach.LAYOUTS)
    assert records["champion"]["action"] == "tag_created" and records["champion"]["attestation"] is None
    for tag in ("v1", "champion"):
        assert cosign_accepts(f"{target}:{tag}", keys.ed25519_pub) in (True, None)
        document = verify(f"{target}:{tag}", keys.ed25519_pub, "--deep", "--mlflow").json
        assert document["verified"] is True, document["problems"]
        # sync imports each version by its number: the alias is a tag, not part of the version's provenance
        assert document["registered_model"] == {"name": live.model_name, "version": "1", "alias": None}
        assert document["run"]["run_id"] == live.runs["full"]
        assert all(f["uri"].startswith(f"models:/{live.model_name}/1/") for f in document["files"] if f["uri"])

    again = run_cli(*command, env=environment(tmp_path))
    assert again.code == 0, again.stderr
    assert {r["action"] for r in again.json["records"]} == {"skipped"}
    with RegistryClient.connect(registry.host) as client:
        found = attach.find_envelopes(client, "attest/synced", records["v1"]["digest"])
    assert len(found.envelopes) == 2  # one attestation, in its two layouts: the second sync added none


# -- a ModelPack: raw layers are their files ----------------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(600)
def test_a_signed_modelpack_is_accepted_by_cosign_and_by_verify_deep(
    live: LiveServer, registry: AnyRegistry, keys: Keys, tmp_path: Path
) -> None:
    if registry.kind != "docker-registry":
        pytest.skip("one registry is enough: the layouts are the ModelKit's")
    reference = f"{registry.host}/attest/modelpack:v1"
    output = tmp_path / "attestation.json"
    out = run_cli(
        "import", live.uri(), "-t", reference, "--yes", "--json", "--format", "modelpack", "--push",
        "--sign-key", str(keys.cosign_key), "--attestation-output", str(output), env=environment(tmp_path),
    )  # fmt: skip
    assert out.code == 0, out.stderr
    external = json.loads(read_envelope(output.read_bytes()).payload)["predicate"]["buildDefinition"]
    assert external["externalParameters"]["format"] == "modelpack"
    assert cosign_accepts(reference, keys.cosign_pub) in (True, None)
    document = verify(reference, keys.cosign_pub, "--deep").json
    assert document["verified"] is True, document["problems"]
    assert {f["path"] for f in document["files"]} == {f["path"] for f in out.json["selected"]}


# -- every packing path attests the same digests -------------------------------------------------------------------
def attested_files(statement: bytes) -> dict[str, str]:
    definition = json.loads(statement)["predicate"]["buildDefinition"]
    return {d["name"]: d["digest"]["sha256"] for d in definition["resolvedDependencies"] if "uri" in d}


@pytest.mark.timeout(600)
def test_the_direct_the_folder_and_the_kit_path_attest_the_same_file_digests(live: LiveServer, tmp_path: Path) -> None:
    from kitmlflow_tui.core.packing import find_kit

    paths = {"direct": [], "folder": ["--compression", "gzip"]}
    if find_kit() is not None:
        paths["kit"] = ["--packer", "kit"]
    else:
        print("--packer kit not checked: the real kit binary is not installed (set KIT_BIN or put kit on PATH)")
    found = {}
    for name, extra in paths.items():
        output = tmp_path / f"{name}.json"
        out = run_cli(
            "import", live.uri(), "-t", f"paths:{name}", "--yes", "--json", "--packer", "native", *extra,
            "--attestation-output", str(output), env=environment(tmp_path / name),
        )  # fmt: skip
        assert out.code == 0, out.stderr
        found[name] = attested_files(output.read_bytes())
        assert set(found[name]) == {f["path"] for f in out.json["selected"]}
    store = live.artifact_dir()
    expected = {
        path: hashlib.sha256((store / path).read_bytes()).hexdigest()
        for path in found["direct"]
        if (store / path).is_file()
    }
    assert len(expected) >= 9  # the run's own files (the logged model's live in its own store)
    for name, files in found.items():
        assert {path: files[path] for path in expected} == expected, name
        assert files == found["direct"], name


# -- bad input, before anything moves ---------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_a_key_that_cannot_sign_is_exit_2_before_anything_is_downloaded(
    live: LiveServer, keys: Keys, tmp_path: Path
) -> None:
    target = "127.0.0.1:9/attest/never:v1"  # nothing listens there: the refusal must come first
    cases = [
        (["--push", "--sign-key", str(keys.cosign_key)], {"COSIGN_PASSWORD": "wrong-password-3"}, "does not open"),
        (["--push", "--sign-key", str(keys.cosign_pub)], {}, "holds a public key"),
        (
            ["--push", "--sign-key", str(keys.ed25519_key)],
            {"KITMLFLOW_SIGN_KEY_PASSWORD": "nope-nope"},
            "does not open",
        ),
        (["--sign-key", str(keys.cosign_key)], {}, "signs the attestation of a pushed ModelKit"),
        (["--attestation-output", str(tmp_path / "missing" / "a.json")], {}, "does not exist or is not writable"),
    ]
    for extra, env, message in cases:
        out = run_cli(
            "import", live.uri(), "-t", target, "--yes", "--json", "--packer", "native", *extra,
            env=environment(tmp_path, **env),
        )  # fmt: skip
        assert out.code == 2, (extra, out.stderr)
        assert message in out.json["error"]["message"]
        assert not any("wrong-password-3" in text or "nope-nope" in text for text in (out.stdout, out.stderr))
        assert not (tmp_path / "cache").exists() and not (tmp_path / "kitops").exists()


# -- secrets --------------------------------------------------------------------------------------------------------------
RUN_PASSWORD = "Pg-Passw0rd-91c2"
TAG_TOKEN = "ghp_" + "A1b2C3d4E5" * 4
TRACKING_PASSWORD = "Track-Pa55-6d0e"


@pytest.mark.timeout(300)
def test_no_secret_of_the_run_or_the_tracking_uri_reaches_the_statement(
    live: LiveServer, keys: Keys, tmp_path: Path
) -> None:
    experiment, run_id = seed_run(
        live.url,
        experiment_name="attest-secrets",
        files={"model/MLmodel": b"flavors: {}\n", "model/model.pkl": b"w" * 50},
        params={"db_uri": f"postgres://etl:{RUN_PASSWORD}@db.internal/x", "lr": "0.1"},
        tags={"ci_token": TAG_TOKEN, "mlflow.source.name": f"https://bot:{RUN_PASSWORD}@git.example.com/r.git"},
    )
    tracking = f"http://reader:{TRACKING_PASSWORD}@{live.host}"
    for extra in ([], ["--sign-key", str(keys.cosign_key)]):
        output = tmp_path / f"statement-{len(extra)}.json"
        out = run_cli(
            "import", f"mlflow://experiments/{experiment}/runs/{run_id}", "-t", f"secrets:v{len(extra)}", "--yes",
            "--json", "--packer", "native", "--attestation-output", str(output), *extra,
            env=environment(tmp_path, MLFLOW_TRACKING_URI=tracking),
        )  # fmt: skip
        assert out.code == 0, out.stderr
        written = output.read_bytes()
        payload = read_envelope(written).payload if extra else written
        for text in (written, payload, out.stdout.encode(), out.stderr.encode()):
            assert not [s for s in (RUN_PASSWORD, TAG_TOKEN, TRACKING_PASSWORD) if s.encode() in text]
        external = json.loads(payload)["predicate"]["buildDefinition"]["externalParameters"]
        assert external["trackingUri"] == f"http://***@{live.host}"
        assert out.json["attestation"]["signed"] is bool(extra)
        assert out.json["attestation"]["output"] == str(output)
        statement = json.loads(payload)
        assert statement["subject"][0] == {
            "name": "secrets",
            "digest": {"sha256": out.json["digest"].removeprefix("sha256:")},
        }
        assert base64.b64encode(RUN_PASSWORD.encode()) not in written
    assert os.environ.get("MLFLOW_TRACKING_URI") != tracking
