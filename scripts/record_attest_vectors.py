"""Record what the real cosign accepted as kitmlflow's attestations: tests/attest_vectors/.

A machine without cosign still checks kitmlflow's envelopes and layouts against these files byte for byte
(tests/unit/test_attest_vectors.py). Run it where cosign (``make tools``) and docker-registry are installed:

    .venv/bin/python scripts/record_attest_vectors.py

It makes a cosign key pair (cosign generate-key-pair) and an Ed25519 PEM key, signs a statement about a small fixed
ModelKit manifest with each, pushes the manifest to Debian's docker-registry (no referrers API) and to the loopback
referrers registry, attaches the envelope in each layout alone and in both, and asks
``cosign verify-attestation --key … --type slsaprovenance1 --insecure-ignore-tlog`` about each. The files are written
only when cosign accepted every case; ``cosign-results.json`` says what it answered where.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VECTORS = REPO / "tests" / "attest_vectors"
PASSWORD = "kitmlflow-vector"  # the recorded cosign.key's password (a test vector: it signs nothing real)
CREATED = "2026-12-06T00:00:00Z"
CONFIG = b'{"manifestVersion":"1.0.0","package":{"name":"vector"}}'
LAYER = b"kitmlflow attestation vector layer\n"


def manifest_bytes() -> bytes:
    import hashlib

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.kitops.modelkit.config.v1+json",
            "digest": digest(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {"mediaType": "application/vnd.kitops.modelkit.model.v1.tar", "digest": digest(LAYER), "size": len(LAYER)}
        ],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def statement(subject_name: str, subject_digest: str) -> bytes:
    from kitmlflow_tui.core.attest.statement import Invocation, StatementInput, build_statement, statement_bytes
    from kitmlflow_tui.core.packing.file_digests import FileDigest
    from kitmlflow_tui.core.provenance import ExperimentSource, MlflowProvenance, RunSource

    provenance = MlflowProvenance(
        tracking_uri="https://mlflow.example.com",
        experiment=ExperimentSource("7", "vectors"),
        run=RunSource("0123456789abcdef0123456789abcdef", "vector-run", "FINISHED"),
        filter={"include": [], "exclude": ["*.tmp"]},
    )
    given = StatementInput(
        subject_name=subject_name,
        subject_digest=subject_digest,
        provenance=provenance,
        files=[FileDigest("model/weights.bin", 35, "5" * 64)],
        run_files={"model/weights.bin": None},
        config_media_type="application/vnd.kitops.modelkit.config.v1+json",
        config_digest="sha256:" + "c" * 64,
        invocation=Invocation("00000000-0000-4000-8000-000000000000", CREATED, CREATED),
    )
    return statement_bytes(build_statement(given))


def ed25519_pem(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private, public = folder / "ed25519.pem", folder / "ed25519.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def main() -> int:
    from kitmlflow_tui.core.attest import attach
    from kitmlflow_tui.core.attest.dsse import sign_payload
    from kitmlflow_tui.core.attest.keys import load_signing_key
    from kitmlflow_tui.core.attest.statement import PREDICATE_TYPE
    from kitmlflow_tui.core.registry import RegistryClient
    from tests.support.attest_tools import (
        cosign_generate_key_pair,
        cosign_missing,
        cosign_verify_attestation,
        referrers_registry,
        referrers_registry_missing,
    )
    from tests.support.registry_servers import registry_available, registry_server

    missing = cosign_missing() or referrers_registry_missing() or registry_available()
    if missing:
        print(f"cannot record: {missing}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="attest-vectors-"))
    keys = {
        "cosign": cosign_generate_key_pair(work / "cosign", PASSWORD),
        "ed25519": ed25519_pem(work),
    }
    os.environ["COSIGN_PASSWORD"] = PASSWORD
    manifest = manifest_bytes()
    subject = attach.Subject(attach._sha256(manifest), "application/vnd.oci.image.manifest.v1+json", len(manifest))
    results: dict[str, dict[str, int]] = {}
    envelopes = {}
    for kind, (private, _public) in keys.items():
        envelopes[kind] = sign_payload(
            statement("registry.example.com/vectors/model", subject.digest), load_signing_key(private)
        )
    with registry_server(work / "reg") as fallback, referrers_registry(work / "rr") as referrers:
        for registry_kind, host in (("docker-registry-2.8", fallback.host), ("referrers-api", referrers.host)):
            client = RegistryClient.connect(host)
            for kind, envelope in envelopes.items():
                for layouts in ((attach.BUNDLE_REFERRER,), (attach.COSIGN_ATT_TAG,), attach.LAYOUTS):
                    repository = f"vectors/{kind}-{'-and-'.join(layouts)}"
                    client.upload_bytes(repository, CONFIG)
                    client.upload_bytes(repository, LAYER)
                    client.put_manifest(repository, "v1", manifest)
                    attach.attach_envelope(
                        client, repository, subject, envelope, PREDICATE_TYPE, created=CREATED, layouts=layouts
                    )
                    outcome = cosign_verify_attestation(f"{host}/{repository}:v1", keys[kind][1])
                    results.setdefault(registry_kind, {})[f"{kind}: {' + '.join(layouts)}"] = outcome.code
                    if outcome.code != 0:
                        print(f"cosign refused {registry_kind} {repository}:\n{outcome.output}")
    refused = [f"{where} {case}" for where, cases in results.items() for case, code in cases.items() if code]
    if refused:
        print("not recorded: cosign refused " + "; ".join(refused))
        return 1
    VECTORS.mkdir(parents=True, exist_ok=True)
    cosign_key, cosign_pub = keys["cosign"]
    ed_key, ed_pub = keys["ed25519"]
    files = {
        "cosign.key": cosign_key.read_bytes(),
        "cosign.pub": cosign_pub.read_bytes(),
        "ed25519.pem": ed_key.read_bytes(),
        "ed25519.pub": ed_pub.read_bytes(),
        "modelkit-manifest.json": manifest,
    }
    for kind, envelope in envelopes.items():
        bundle = attach.bundle_bytes(envelope)
        layers = attach.att_layers([], envelope.to_bytes(), PREDICATE_TYPE)
        config = attach.att_config(layers)
        files[f"{kind}.envelope.json"] = envelope.to_bytes()
        files[f"{kind}.bundle.json"] = bundle
        files[f"{kind}.bundle-referrer-manifest.json"] = attach.bundle_referrer_manifest(
            subject, bundle, PREDICATE_TYPE, CREATED
        )
        files[f"{kind}.att-config.json"] = config
        files[f"{kind}.att-manifest.json"] = attach.att_manifest(layers, config)
    files["cosign-results.json"] = (json.dumps(results, indent=2, sort_keys=True) + "\n").encode()
    for name, data in files.items():
        (VECTORS / name).write_bytes(data)
    print(f"recorded {len(files)} files in {VECTORS}: cosign accepted every case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
