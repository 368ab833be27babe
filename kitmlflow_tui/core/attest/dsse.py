"""DSSE envelopes (secure-systems-lab/dsse, v1): the signed wrapper of an in-toto Statement.

A signature is over the pre-authentication encoding (PAE) ``"DSSEv1" SP len(type) SP type SP len(body) SP body``
of the payload type and the payload bytes, never over the JSON of the envelope. The envelope is JSON
``{payloadType, payload: base64, signatures: [{keyid, sig: base64}]}``. The ``keyid`` is left empty: verifiers
(cosign among them) may skip a signature whose keyid does not name the key they were given, and an empty one names
none. Written by hand (a dozen lines over ``cryptography``) because the libraries that have it either sign only with
keyless certificates (sigstore-python) or bring a key framework of their own (securesystemslib).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.keys import SigningKey, VerifyingKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
MAX_SIGNATURES = 16


class EnvelopeError(ValueError):
    """Bytes that are not a DSSE envelope (what a registry sent: anyone may have pushed it)."""


@dataclass(frozen=True)
class Signature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_mapping(self) -> dict[str, object]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": signature.keyid, "sig": base64.b64encode(signature.sig).decode("ascii")}
                for signature in self.signatures
            ],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_mapping(), separators=(",", ":")).encode()

    def signed_by(self, key: VerifyingKey) -> bool:
        """Whether one of its signatures is ``key``'s over the PAE of this payload."""
        message = pae(self.payload_type, self.payload)
        return any(key.verify(signature.sig, message) for signature in self.signatures)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign_payload(payload: bytes, key: SigningKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    return Envelope(payload_type, payload, (Signature(key.sign(pae(payload_type, payload))),))


def envelope_from_mapping(value: object) -> Envelope:
    """An envelope from its JSON mapping; EnvelopeError when the shape is not DSSE's."""
    if not isinstance(value, dict):
        raise EnvelopeError("not a JSON object")
    payload_type, payload, signatures = value.get("payloadType"), value.get("payload"), value.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload, str) or not isinstance(signatures, list):
        raise EnvelopeError("no payloadType, payload and signatures")
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise EnvelopeError(f"{len(signatures)} signatures (1 to {MAX_SIGNATURES} are read)")
    read = []
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise EnvelopeError("a signature without sig")
        keyid = entry.get("keyid")
        read.append(Signature(_b64(entry["sig"]), keyid if isinstance(keyid, str) else ""))
    return Envelope(payload_type, _b64(payload), tuple(read))


def read_envelope(data: bytes) -> Envelope:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("not JSON") from None
    return envelope_from_mapping(value)


def _b64(text: str) -> bytes:
    # DSSE allows either alphabet; padding may be dropped.
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("a field that is not base64") from None
