"""What the attestation tests run besides kitmlflow: a registry with the OCI 1.1 referrers API, and the real cosign.

- ``referrers-registry`` is ``tests/support/referrers_registry`` (go-containerregistry's ``pkg/registry`` with its
  referrers support on, plus the ``OCI-Subject`` answer the spec asks for), built by ``make tools`` into
  ``.tools/bin``; started by PID on a free port of 127.0.0.1, stopped by PID.
- ``cosign`` (v3) from ``.tools/bin`` or PATH: ``verify-attestation --key … --insecure-ignore-tlog`` with the flags
  loopback plain-HTTP registries need. A test that needs either skips with the reason when it is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import HOST, _spawn, _terminate, free_port

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"
READY_TIMEOUT = 30.0


def tool(name: str, env_var: str) -> str:
    """The tool's path: ``$env_var``, else ``.tools/bin/NAME``, else PATH; "" when there is none."""
    configured = os.environ.get(env_var)
    if configured:
        return configured
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name) or ""


REFERRERS_REGISTRY_BIN = tool("referrers-registry", "KITMLFLOW_TEST_REFERRERS_REGISTRY_BIN")
COSIGN_BIN = tool("cosign", "KITMLFLOW_TEST_COSIGN_BIN")


def referrers_registry_missing() -> str | None:
    if not REFERRERS_REGISTRY_BIN:
        return "no referrers-registry (make tools builds tests/support/referrers_registry with go)"
    return None


def cosign_missing() -> str | None:
    if not COSIGN_BIN:
        return "no cosign (make tools installs cosign v3.1.3 into .tools/bin with go)"
    return None


@dataclass
class ReferrersRegistry:
    host: str
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def requests(self) -> list[str]:
        """The requests it logged ("METHOD PATH"), in order."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [" ".join(line.split()[2:4]) for line in text.splitlines() if line[:2].isdigit()]


@contextlib.contextmanager
def referrers_registry(root: Path) -> Iterator[ReferrersRegistry]:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    registry = ReferrersRegistry(f"{HOST}:{port}", root / "referrers-registry.log")
    registry._proc = _spawn([REFERRERS_REGISTRY_BIN, "-addr", registry.host], dict(os.environ), registry.log_path, root)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            if registry._proc.poll() is not None:
                raise RuntimeError(
                    f"referrers-registry exited: {registry.log_path.read_text(errors='replace')[-2000:]}"
                )
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"referrers-registry not listening after {READY_TIMEOUT} s")
            time.sleep(0.05)
        yield registry
    finally:
        _terminate(registry._proc)


@dataclass(frozen=True)
class CosignOutcome:
    code: int
    output: str


def cosign_verify_attestation(reference: str, public_key: Path, *, timeout: float = 120) -> CosignOutcome:
    """``cosign verify-attestation --key PUB --type slsaprovenance1 --insecure-ignore-tlog REF`` against a loopback
    plain-HTTP registry; offline (no TUF, no Rekor)."""
    command = [
        COSIGN_BIN,
        "verify-attestation",
        "--key",
        str(public_key),
        "--type",
        "slsaprovenance1",
        "--insecure-ignore-tlog",
        "--allow-http-registry",
        "--allow-insecure-registry",
        reference,
    ]
    env = {**os.environ, "TUF_ROOT": str(public_key.parent / ".sigstore"), "SIGSTORE_NO_CACHE": "true"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return CosignOutcome(done.returncode, done.stdout + done.stderr)


def cosign_generate_key_pair(folder: Path, password: str) -> tuple[Path, Path]:
    """``cosign generate-key-pair`` in ``folder`` (password in COSIGN_PASSWORD): (cosign.key, cosign.pub)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COSIGN_PASSWORD": password}
    subprocess.run([COSIGN_BIN, "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True, timeout=60)
    return folder / "cosign.key", folder / "cosign.pub"


def pem_key_pair(folder: Path, password: str | None = None, name: str = "sign") -> tuple[Path, Path]:
    """A new ECDSA P-256 key as PKCS#8 PEM (encrypted with ``password``) and its public key beside it:
    (``NAME.pem``, ``NAME.pub``), as ``openssl genpkey`` and ``openssl pkey -pubout`` write them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public
