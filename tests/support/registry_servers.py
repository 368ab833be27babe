"""Real OCI registries for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8) on 127.0.0.1.

Three set-ups, each started by PID on a free port and stopped by PID:

- ``auth.htpasswd`` (bcrypt entries made by ``htpasswd -Bbn``), or none;
- TLS with a certificate from a CA the fixture makes (``cryptography``), optionally requiring client
  certificates signed by that CA (``http.tls.clientcas``);
- ``auth.token``: the registry sends Bearer challenges and checks JWTs against a certificate the fixture
  makes (``rootcertbundle``). The token service is the one part written here (``TokenIssuer``): a tiny HTTP
  server that checks Basic credentials and signs tokens with the fixture's key, so the registry's real
  challenge and token checks run.

The registry's access log (Apache format, in its log file) tells which requests it got: the tests count
uploads there instead of trusting the client under test.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from tests.support.disk import bytes_of
from tests.support.servers import HOST, _kill, _spawn, _terminate, free_port

REGISTRY_BIN = os.environ.get("KITMLFLOW_TEST_REGISTRY_BIN") or shutil.which("docker-registry") or ""
HTPASSWD_BIN = shutil.which("htpasswd") or ""
READY_TIMEOUT = 30.0
_ACCESS_RE = re.compile(r'"(GET|HEAD|POST|PATCH|PUT|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) ')


def registry_available() -> str | None:
    """Why registry tests cannot run here, or None."""
    if not REGISTRY_BIN or not Path(REGISTRY_BIN).is_file():
        return "no docker-registry binary (apt-get install docker-registry, or set KITMLFLOW_TEST_REGISTRY_BIN)"
    return None


# -- certificates ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate signed by it."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _certificate(subject: str, key, issuer_name=None, issuer_key=None, *, ca: bool = False, san: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cert = _certificate("kitmlflow test CA", ca_key, ca=True)
    files = {}
    for role, san in (("server", True), ("client", False)):
        key = _key()
        cert = _certificate(f"kitmlflow test {role}", key, ca_cert.subject, ca_key, san=san)
        (folder / f"{role}.key").write_bytes(_pem_key(key))
        (folder / f"{role}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[role] = (folder / f"{role}.crt", folder / f"{role}.key")
    (folder / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(folder / "ca.crt", *files["server"], *files["client"])


# -- the token service -----------------------------------------------------------------------------------
@dataclass
class TokenIssuer:
    """Issues JWTs the registry trusts: users with the right password get what they ask for (``grant``)."""

    users: dict[str, str]
    service: str = "kitmlflow-test-registry"
    issuer: str = "kitmlflow-test-issuer"
    grant: tuple[str, ...] = ("pull", "push")  # what a known user may do on every repository
    anonymous: tuple[str, ...] = ()  # what an anonymous request may do
    refuse_everyone: bool = False  # the token service refuses every credential (HTTP 401)
    lifetime: int = 300
    requests: list[dict] = field(default_factory=list)
    port: int = 0
    cert_path: Path = field(default_factory=Path)
    _key: object = None
    _x5c: str = ""
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://{HOST}:{self.port}/token"

    def start(self, folder: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = _key()
        cert = _certificate(self.issuer, self._key, ca=True)
        self.cert_path = folder / "token-signer.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                issuer._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qsl(urlsplit(handler.path).query)
        scopes = [part for key, value in query if key == "scope" for part in value.split()]
        user, password = "", ""
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        self.requests.append({"user": user, "scopes": scopes, "service": dict(query).get("service")})
        if self.refuse_everyone or (header and self.users.get(user) != password):
            handler.send_response(401)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(b'{"details":"invalid credentials"}')
            return
        allowed = self.grant if user else self.anonymous
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in allowed]
            if kind == "repository" and granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        token = self._sign({"sub": user, "access": access})
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.lifetime}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _sign(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            **claims,
        }

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
        return f"{signing_input}.{b64(signature)}"


# -- the registry -----------------------------------------------------------------------------------------
@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT", as a reference names it
    root: Path
    log_path: Path
    config_path: Path
    port: int
    scheme: str = "http"
    users: dict[str, str] = field(default_factory=dict)
    pki: Pki | None = None
    issuer: TokenIssuer | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    @property
    def storage(self) -> Path:
        return self.root / "data"

    def access_log(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the registry answered, in order."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [(m, p, int(s)) for m, p, s in _ACCESS_RE.findall(text)]

    def mark(self) -> int:
        return len(self.access_log())

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        return self.access_log()[mark:]

    def _start(self) -> None:
        self._proc = _spawn([REGISTRY_BIN, "serve", str(self.config_path)], dict(os.environ), self.log_path, self.root)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                _terminate(self._proc)
                raise RuntimeError(f"docker-registry not listening after {READY_TIMEOUT} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            _terminate(self._proc)

    def kill(self) -> None:
        """SIGKILL (a crash): connections break at once."""
        if self._proc is not None:
            _kill(self._proc)

    def restart(self) -> None:
        self.stop()
        self._start()

    def upload_data_bytes(self) -> int:
        """Bytes the registry holds in unfinished uploads (its ``_uploads/*/data`` files)."""
        return bytes_of(self.storage.rglob("_uploads/*/data"))


def uploads(entries: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """The blob-upload requests among access-log entries."""
    return [e for e in entries if "/blobs/uploads/" in e[1]]


def uploaded_digests(entries: list[tuple[str, str, int]]) -> set[str]:
    """The digests whose upload the registry completed (the PUT naming the digest, answered 201)."""
    return set(uploaded_digest_list(entries))


def uploaded_digest_list(entries: list[tuple[str, str, int]]) -> list[str]:
    """The same, once per completed upload: a blob sent twice is listed twice."""
    from urllib.parse import parse_qs

    done = []
    for method, path, status in uploads(entries):
        query = parse_qs(urlsplit(path).query)
        if method == "PUT" and status == 201 and "digest" in query:
            done.append(query["digest"][0])
    return done


def manifest_puts(entries: list[tuple[str, str, int]]) -> list[str]:
    """The references (tags) of the manifests the registry stored, in order."""
    return [
        path.rsplit("/manifests/", 1)[1]
        for method, path, status in entries
        if method == "PUT" and "/manifests/" in path and status == 201
    ]


def htpasswd_line(user: str, password: str) -> str:
    if not HTPASSWD_BIN:
        import pytest

        pytest.skip("no htpasswd (apt-get install apache2-utils)")
    done = subprocess.run([HTPASSWD_BIN, "-Bbn", user, password], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def registry_server(
    root: Path,
    *,
    users: dict[str, str] | None = None,
    tls: bool = False,
    client_certs: bool = False,
    issuer: TokenIssuer | None = None,
    delete_enabled: bool = True,
) -> Iterator[Registry]:
    """A running ``docker-registry``; ``users`` → htpasswd auth; ``issuer`` → token auth (started here);
    ``delete_enabled=False`` leaves out ``storage.delete`` (distribution's default: DELETE is 405 UNSUPPORTED)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    registry = Registry(f"{HOST}:{port}", root, root / "registry.log", root / "config.yml", port)
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {registry.storage}",
        *(["  delete:", "    enabled: true"] if delete_enabled else []),
        "http:",
        f"  addr: {HOST}:{port}",
        "  secret: kitmlflow-test-secret",
    ]
    if tls or client_certs:
        registry.pki = make_pki(root / "pki")
        registry.scheme = "https"
        lines += ["  tls:", f"    certificate: {registry.pki.server_cert}", f"    key: {registry.pki.server_key}"]
        if client_certs:
            lines += ["    clientcas:", f"      - {registry.pki.ca}"]
    if users:
        registry.users = dict(users)
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
        lines += ["auth:", "  htpasswd:", "    realm: kitmlflow-test", f"    path: {htpasswd}"]
    if issuer is not None:
        issuer.start(root)
        registry.issuer = issuer
        registry.users = dict(issuer.users)
        lines += [
            "auth:",
            "  token:",
            f"    realm: {issuer.realm}",
            f"    service: {issuer.service}",
            f"    issuer: {issuer.issuer}",
            f"    rootcertbundle: {issuer.cert_path}",
        ]
    registry.config_path.write_text("\n".join(lines) + "\n")
    registry._start()
    try:
        yield registry
    finally:
        registry.stop()
        if issuer is not None:
            issuer.stop()


def module_registry(factory, name: str, **options) -> Iterator[Registry]:
    """The body of a module-scoped registry fixture: skips where there is no registry binary."""
    import pytest

    reason = registry_available()
    if reason:
        pytest.skip(reason)
    with registry_server(factory.mktemp(name), **options) as registry:
        yield registry
