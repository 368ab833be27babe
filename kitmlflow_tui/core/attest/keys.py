"""The keys of attestations: a private key that signs (``--sign-key``), a public key that verifies (``verify --key``).

Accepted private keys, all PEM: PKCS#8 (``PRIVATE KEY``, or ``ENCRYPTED PRIVATE KEY`` with its password in
``KITMLFLOW_SIGN_KEY_PASSWORD``), SEC1 (``EC PRIVATE KEY``), and cosign's own ``cosign.key``
(``ENCRYPTED SIGSTORE PRIVATE KEY``, or ``ENCRYPTED COSIGN PRIVATE KEY`` from older cosign: a PKCS#8 key sealed
with NaCl secretbox under a scrypt key, the format of go-securesystemslib's ``encrypted`` package; the password
in ``COSIGN_PASSWORD``, as cosign reads it). Algorithms: ECDSA P-256 with SHA-256, and Ed25519 — what cosign
verifies with ``--key``. Public keys: PEM ``PUBLIC KEY`` (``cosign.pub``).

A key and its password are never printed, logged or stored: errors name the file, never its content, and a password
read here is registered with the scrubber. PyNaCl opens cosign's secretbox because ``cryptography`` has no
XSalsa20-Poly1305; scrypt is ``cryptography``'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError, register_secret

MAX_KEY_FILE_BYTES = 64 * 1024
PASSWORD_ENV = settings.SIGN_KEY_PASSWORD.name
COSIGN_PASSWORD_ENV = settings.COSIGN_PASSWORD.name
ECDSA_P256 = "ecdsa-p256-sha256"
ED25519 = "ed25519"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_PRIVATE_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY")
_COSIGN_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# go-securesystemslib accepts exactly these scrypt parameters (legacy, standard, OWASP); they also bound the memory
# the key derivation takes (128 * r * N bytes: 128 MiB at most).
_SCRYPT_PARAMS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
_SUPPORTED = "ECDSA P-256 or Ed25519"


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: its file, algorithm and id (``sha256:`` of its public key's DER)."""

    path: Path
    algorithm: str
    key_id: str


@dataclass(frozen=True)
class VerifyingKey:
    info: KeyInfo
    _public: Any = field(repr=False, compare=False)

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            if self.info.algorithm == ECDSA_P256:
                self._public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                self._public.verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    info: KeyInfo
    _private: Any = field(repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        """An ASN.1 DER signature (ECDSA, SHA-256) or a raw Ed25519 signature, as cosign verifies them."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        if self.info.algorithm == ECDSA_P256:
            return bytes(self._private.sign(data, ec.ECDSA(hashes.SHA256())))
        return bytes(self._private.sign(data))


def load_signing_key(path: Path, password: str | None = None) -> SigningKey:
    """The private key in ``path``, opened with ``password``, else the environment's (KITMLFLOW_SIGN_KEY_PASSWORD;
    COSIGN_PASSWORD first for a cosign key). Bad input is exit 2."""
    text = _read_pem_file(path, "signing key")
    blocks = {label: body for label, body in _PEM_BLOCK.findall(text)}
    cosign = next((label for label in _COSIGN_LABELS if label in blocks), None)
    if cosign is not None:
        private = _open_cosign_key(path, blocks[cosign], password)
    else:
        label = next((label for label in _PRIVATE_LABELS if label in blocks), None)
        if label is None:
            kind = "a public key" if "PUBLIC KEY" in blocks else "no PEM private key"
            raise BadInputError(
                f"The signing key {path} holds {kind}.",
                hint="--sign-key takes a private key: cosign's cosign.key, or a PKCS#8 PEM (openssl genpkey).",
            )
        private = _load_pem_private(path, f"-----BEGIN {label}-----\n{blocks[label]}-----END {label}-----\n", password)
    return SigningKey(_key_info(path, private.public_key(), "signing key"), private)


def check_sign_key(path: Path, password: str | None = None) -> KeyInfo:
    """Whether ``path`` is a key kitmlflow can sign with, opened with ``password`` (else the environment's): its
    algorithm and id, or the BadInputError an import would raise. Nothing is signed (the wizard's "Sign with")."""
    return load_signing_key(path, password).info


def public_key_beside(signing_key: Path, key_id: str) -> Path | None:
    """The public key file next to a signing key (``cosign.key`` → ``cosign.pub``, ``sign.pem`` → ``sign.pub``) when it
    is that key's (the same key id): what ``verify --key`` takes. None when there is no such file."""
    candidate = signing_key.with_suffix(".pub")
    if candidate == signing_key or not candidate.is_file():
        return None
    try:
        found = load_verifying_key(candidate).info
    except BadInputError:
        return None
    return candidate if found.key_id == key_id else None


def load_verifying_key(path: Path) -> VerifyingKey:
    """The public key in ``path`` (PEM ``PUBLIC KEY``, as ``cosign.pub``)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = _read_pem_file(path, "public key")
    blocks = {label: body for label, body in _PEM_BLOCK.findall(text)}
    if "PUBLIC KEY" not in blocks:
        private = any(label in blocks for label in (*_PRIVATE_LABELS, *_COSIGN_LABELS))
        raise BadInputError(
            f"The key {path} holds {'a private key' if private else 'no PEM public key'}.",
            hint="--key takes the public key (cosign.pub, or openssl pkey -pubout).",
        )
    try:
        public = load_pem_public_key(
            f"-----BEGIN PUBLIC KEY-----\n{blocks['PUBLIC KEY']}-----END PUBLIC KEY-----\n".encode()
        )
    except (ValueError, TypeError):
        raise BadInputError(f"The public key {path} cannot be read (not a valid PEM public key).") from None
    return VerifyingKey(_key_info(path, public, "public key"), public)


# -- reading ---------------------------------------------------------------------------------------------------
def _read_pem_file(path: Path, what: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise BadInputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise BadInputError(f"The {what} {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file.")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise BadInputError(f"The {what} {path} is not a PEM file.") from None


def _password(given: str | None, *variables: settings.Setting) -> str | None:
    """``given``, else the first of ``variables`` that is set (its value as set: spaces belong to a password)."""
    for value in (given, *(variable.raw() for variable in variables)):
        if value is not None:
            register_secret(value)
            return value
    return None


def _load_pem_private(path: Path, pem: str, given: str | None) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(pem.encode(), None)
    except TypeError:
        pass  # encrypted: it needs its password
    except ValueError:
        raise BadInputError(f"The signing key {path} cannot be read (not a valid PEM private key).") from None
    password = _password(given, settings.SIGN_KEY_PASSWORD)
    if password is None:
        raise BadInputError(f"The signing key {path} is encrypted: give its password in {PASSWORD_ENV}.")
    try:
        return load_pem_private_key(pem.encode(), password.encode())
    except (ValueError, TypeError):
        raise BadInputError(f"The password in {PASSWORD_ENV} does not open the signing key {path}.") from None


def _open_cosign_key(path: Path, body: str, given: str | None) -> Any:
    """cosign's ``cosign.key``: JSON ``{kdf: {name: scrypt, params: {N, r, p}, salt}, cipher: {name: nacl/secretbox,
    nonce}, ciphertext}`` (bytes as base64) around a PKCS#8 DER key."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        sealed = json.loads(base64.b64decode("".join(body.split()), validate=True))
        kdf, cipher = sealed["kdf"], sealed["cipher"]
        params = (int(kdf["params"]["N"]), int(kdf["params"]["r"]), int(kdf["params"]["p"]))
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
        known = kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox"
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadInputError(f"The cosign key {path} is malformed (not cosign's encrypted key format).") from None
    if not known or params not in _SCRYPT_PARAMS or len(nonce) != SecretBox.NONCE_SIZE:
        raise BadInputError(f"The cosign key {path} uses a key derivation or cipher cosign does not write.")
    # cosign reads COSIGN_PASSWORD, and a key made with an empty password opens with an empty one.
    password = _password(given, settings.COSIGN_PASSWORD, settings.SIGN_KEY_PASSWORD)
    secret = Scrypt(salt=salt, length=SecretBox.KEY_SIZE, n=params[0], r=params[1], p=params[2]).derive(
        (password or "").encode()
    )
    try:
        der = SecretBox(secret).decrypt(ciphertext, nonce)
    except CryptoError:
        if password is None:
            raise BadInputError(
                f"The cosign key {path} is encrypted: give its password in {COSIGN_PASSWORD_ENV}."
            ) from None
        raise BadInputError(f"The password in {COSIGN_PASSWORD_ENV} does not open the cosign key {path}.") from None
    try:
        return load_der_private_key(der, None)
    except (ValueError, TypeError):
        raise BadInputError(f"The cosign key {path} does not hold a private key kitmlflow can read.") from None


def _key_info(path: Path, public: Any, what: str) -> KeyInfo:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        algorithm = ECDSA_P256
    elif isinstance(public, ed25519.Ed25519PublicKey):
        algorithm = ED25519
    else:
        if isinstance(public, ec.EllipticCurvePublicKey):
            kind = f"an ECDSA {public.curve.name}"
        else:
            kind = "an RSA" if isinstance(public, rsa.RSAPublicKey) else "another kind of"
        raise BadInputError(
            f"The {what} {path} is {kind} key; attestations are signed with {_SUPPORTED} keys.",
            hint="Make one with cosign generate-key-pair, or openssl genpkey -algorithm ed25519.",
        )
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return KeyInfo(path, algorithm, "sha256:" + hashlib.sha256(der).hexdigest())
