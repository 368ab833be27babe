"""kitmlflow's envelopes and registry layouts against what the real cosign accepted (tests/attest_vectors/README.md).

No cosign and no network here: the signatures are checked with ``cryptography`` over a PAE written out in the test,
and the layouts kitmlflow writes today must be the recorded bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kitmlflow_tui.core.attest import attach
from kitmlflow_tui.core.attest.dsse import read_envelope
from kitmlflow_tui.core.attest.keys import load_signing_key, load_verifying_key
from kitmlflow_tui.core.attest.statement import PREDICATE_TYPE, read_statement
from kitmlflow_tui.core.errors import BadInputError

VECTORS = Path(__file__).resolve().parents[1] / "attest_vectors"
PASSWORD = "kitmlflow-vector"
CREATED = "2026-12-06T00:00:00Z"
KINDS = ("cosign", "ed25519")


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def subject() -> attach.Subject:
    manifest = vector("modelkit-manifest.json")
    return attach.Subject(
        "sha256:" + hashlib.sha256(manifest).hexdigest(), json.loads(manifest)["mediaType"], len(manifest)
    )


def test_cosign_accepted_every_recorded_case() -> None:
    results = json.loads(vector("cosign-results.json"))
    assert set(results) == {"docker-registry-2.8", "referrers-api"}
    assert all(code == 0 for cases in results.values() for code in cases.values())
    assert all(len(cases) == 6 for cases in results.values())


@pytest.mark.parametrize("kind", KINDS)
def test_the_recorded_envelope_verifies_by_its_pae_with_cryptography_alone(kind: str) -> None:
    envelope = json.loads(vector(f"{kind}.envelope.json"))
    payload_type = envelope["payloadType"].encode()
    payload = base64.b64decode(envelope["payload"])
    pae = (
        b"DSSEv1 "
        + str(len(payload_type)).encode()
        + b" "
        + payload_type
        + b" "
        + str(len(payload)).encode()
        + b" "
        + payload
    )
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    public = serialization.load_pem_public_key(vector(f"{kind}.pub"))
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, pae, ec.ECDSA(hashes.SHA256()))  # raises when it does not verify
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, pae)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == ""


@pytest.mark.parametrize("kind", KINDS)
def test_kitmlflow_reads_the_recorded_envelope_and_its_statement(kind: str, tmp_path: Path) -> None:
    envelope = read_envelope(vector(f"{kind}.envelope.json"))
    public = tmp_path / "key.pub"
    public.write_bytes(vector(f"{kind}.pub"))
    assert envelope.signed_by(load_verifying_key(public))
    statement = read_statement(envelope.payload)
    assert statement.subject_digests == (subject().digest,)
    assert statement.predicate_type == PREDICATE_TYPE
    assert [f.path for f in statement.files] == ["model/weights.bin"]
    changed = envelope.payload.replace(b"model/weights.bin", b"model/weights.bim")
    assert not type(envelope)(envelope.payload_type, changed, envelope.signatures).signed_by(load_verifying_key(public))


@pytest.mark.parametrize("kind", KINDS)
def test_kitmlflow_writes_the_layouts_cosign_accepted_byte_for_byte(kind: str) -> None:
    envelope = read_envelope(vector(f"{kind}.envelope.json"))
    assert envelope.to_bytes() == vector(f"{kind}.envelope.json")
    bundle = attach.bundle_bytes(envelope)
    assert bundle == vector(f"{kind}.bundle.json")
    assert attach.bundle_referrer_manifest(subject(), bundle, PREDICATE_TYPE, CREATED) == vector(
        f"{kind}.bundle-referrer-manifest.json"
    )
    layers = attach.att_layers([], envelope.to_bytes(), PREDICATE_TYPE)
    assert attach.att_config(layers) == vector(f"{kind}.att-config.json")
    assert attach.att_manifest(layers, attach.att_config(layers)) == vector(f"{kind}.att-manifest.json")


def test_the_recorded_cosign_key_opens_with_its_password_and_is_the_public_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "cosign.key"
    key_file.write_bytes(vector("cosign.key"))
    public_file = tmp_path / "cosign.pub"
    public_file.write_bytes(vector("cosign.pub"))
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    key = load_signing_key(key_file)
    assert key.info.key_id == load_verifying_key(public_file).info.key_id
    assert key.info.algorithm == "ecdsa-p256-sha256"
    monkeypatch.setenv("COSIGN_PASSWORD", "not-the-password")
    with pytest.raises(BadInputError) as refused:
        load_signing_key(key_file)
    assert refused.value.exit_code == 2
    assert str(key_file) in refused.value.message
    assert "not-the-password" not in str(refused.value)
    assert vector("cosign.key").decode().splitlines()[1] not in str(refused.value)
