"""Which version of an object an answer came from, and the store's own checksum of that version.

Bytes of one file may arrive over several answers: parallel ranges, retries after a break, a re-run that resumes
a part a killed run left. They belong together only if every answer came from the same version of the object,
so each transport names the version its answer came from (:class:`ObjectVersion`), before its first byte:

- the MLflow proxy: the strong ``ETag`` of the answer (MLflow 3.17 sends one for a local artifact store, stable
  across requests and server restarts), else its ``Last-Modified``; a proxied remote store (S3, ...) is fetched
  into a temporary file per request and answered with neither, so it names no version;
- a presigned URL: the store's ``ETag`` (and ``x-amz-version-id``);
- S3: ``ETag`` and ``VersionId``; GCS: the object's ``generation``; Azure: the blob's ``ETag``;
- a local folder: the file's inode, size and modification time in nanoseconds; SFTP: size and modification time
  (whole seconds: SFTP carries no more);
- MLflow's generic client: nothing.

An answer that names no version cannot prove it continues the bytes already there, so those are dropped and the
file starts over (``transfer``). Where the store gives a checksum of the whole object it comes along
(:class:`Checksum`) and the finished file is checked against it: S3's ``ETag`` of an object uploaded in one part
without KMS or customer keys (its MD5), S3's full-object ``Checksum*`` (asked for with ``ChecksumMode``), GCS's
``md5Hash`` (else ``crc32c``), Azure's ``Content-MD5``.

A version is written into range journals as one whitespace-free token (:meth:`ObjectVersion.token`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
# Server-side encryption whose ETag is not the MD5 of the bytes (S3: KMS keys, customer-provided keys).
_OPAQUE_ETAG_ENCRYPTION = ("aws:kms", "aws:kms:dsse")


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


ALGORITHMS = ("md5", "sha1", "sha256", "crc32", "crc32c")


@dataclass(frozen=True)
class Checksum:
    """The store's digest of a whole object: ``algorithm`` one of ``ALGORITHMS``, ``digest`` its raw bytes."""

    algorithm: str
    digest: bytes

    def hasher(self) -> _Hasher | None:
        """A fresh hasher for this algorithm; None when this machine cannot compute it (crc32c without the
        ``google-crc32c`` package that the GCS extra brings)."""
        if self.algorithm in ("md5", "sha1", "sha256"):
            return hashlib.new(self.algorithm, usedforsecurity=False)
        if self.algorithm == "crc32":
            return _Crc32()
        if self.algorithm == "crc32c":
            try:
                import google_crc32c
            except ImportError:
                return None
            return google_crc32c.Checksum()
        return None

    def describe(self) -> str:
        return f"{self.algorithm} {base64.b64encode(self.digest).decode()}"


@dataclass(frozen=True)
class ObjectVersion:
    """``tag`` names the version (``"proxy etag ..."``, ``"s3 etag ... version ..."``); None: the store names
    none. Two answers are of one version when their tags are equal and not None. ``checksum``: the store's
    digest of that version, when it gives one."""

    tag: str | None
    checksum: Checksum | None = None

    def same_as(self, other: ObjectVersion | None) -> bool:
        return other is not None and self.tag is not None and self.tag == other.tag

    def token(self) -> str:
        """One whitespace-free token for a journal line."""
        document: dict[str, Any] = {"tag": self.tag}
        if self.checksum is not None:
            document["checksum"] = [self.checksum.algorithm, base64.b64encode(self.checksum.digest).decode()]
        return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()

    @classmethod
    def from_token(cls, token: str) -> ObjectVersion | None:
        """The version a journal recorded (None for a token that is not one)."""
        try:
            document = json.loads(base64.urlsafe_b64decode(token.encode()))
            tag = document["tag"]
            checksum = None
            if "checksum" in document:
                algorithm, digest = document["checksum"]
                if algorithm not in ALGORITHMS:
                    return None
                checksum = Checksum(algorithm, base64.b64decode(digest, validate=True))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if tag is not None and not isinstance(tag, str):
            return None
        return cls(tag, checksum)


UNVERSIONED = ObjectVersion(None)


def http_version(source: str, headers: Mapping[str, str]) -> ObjectVersion:
    """The version an HTTP answer names (``headers`` as ``requests`` gives them: case-insensitive): its strong
    ``ETag``, else its ``Last-Modified``, prefixed by ``source`` (answers of two sources never match)."""
    etag = headers.get("ETag", "").strip()
    version_id = headers.get("x-amz-version-id", "").strip()
    if etag and not etag.startswith("W/"):  # a weak ETag may name two different byte sequences
        tag = f"{source} etag {etag}" + (f" version {version_id}" if version_id else "")
    elif headers.get("Last-Modified", "").strip():
        tag = f"{source} modified {headers['Last-Modified'].strip()}"
    else:
        tag = None
    return ObjectVersion(tag, _http_checksum(headers))


def if_range(version: ObjectVersion | None) -> str | None:
    """The ``If-Range`` value that asks a server for the range only if the object is still ``version`` (a
    strong ETag or an HTTP date; anything else: None)."""
    if version is None or version.tag is None:
        return None
    _, kind, value = (version.tag.split(" ", 2) + ["", ""])[:3]
    if kind == "etag":
        return value.split(" version ", 1)[0]
    if kind == "modified":
        return value
    return None


def _http_checksum(headers: Mapping[str, str]) -> Checksum | None:
    """A whole-object checksum an HTTP answer carries: GCS's ``x-goog-hash``, Azure's ``x-ms-blob-content-md5``,
    or S3's MD5 ``ETag`` (an answer of S3's: ``x-amz-`` headers; not multipart, not KMS/customer-key encrypted)."""
    goog = headers.get("x-goog-hash", "")
    if goog:
        hashes = dict(part.strip().split("=", 1) for part in goog.split(",") if "=" in part)
        for algorithm in ("md5", "crc32c"):
            if algorithm in hashes and (digest := _b64(hashes[algorithm])) is not None:
                return Checksum(algorithm, digest)
    azure_md5 = headers.get("x-ms-blob-content-md5", "")
    if azure_md5 and (digest := _b64(azure_md5)) is not None:
        return Checksum("md5", digest)
    if any(name.lower().startswith("x-amz-") for name in headers):
        return s3_etag_checksum(
            headers.get("ETag", ""),
            headers.get("x-amz-server-side-encryption", ""),
            bool(headers.get("x-amz-server-side-encryption-customer-algorithm")),
        )
    return None


def s3_etag_checksum(etag: str, encryption: str, customer_key: bool) -> Checksum | None:
    """S3's ETag as the MD5 of the object, when it is one: an object stored in one part (a multipart ETag ends
    in ``-N``), not encrypted with a KMS or customer key."""
    match = _MD5_ETAG.match(etag.strip())
    if match is None or encryption.lower() in _OPAQUE_ETAG_ENCRYPTION or customer_key:
        return None
    return Checksum("md5", bytes.fromhex(match.group(1)))


def s3_full_object_checksum(answer: Mapping[str, Any]) -> Checksum | None:
    """A ``get_object`` answer's full-object checksum (``ChecksumMode`` asked; a composite one of a multipart
    upload, ``...-N``, is not the digest of the bytes)."""
    if str(answer.get("ChecksumType", "FULL_OBJECT")).upper() != "FULL_OBJECT":
        return None
    for key, algorithm in (
        ("ChecksumSHA256", "sha256"),
        ("ChecksumSHA1", "sha1"),
        ("ChecksumCRC32", "crc32"),
        ("ChecksumCRC32C", "crc32c"),
    ):
        value = answer.get(key)
        if isinstance(value, str) and "-" not in value and (digest := _b64(value)) is not None:
            return Checksum(algorithm, digest)
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True) or None
    except (ValueError, binascii.Error):
        return None
