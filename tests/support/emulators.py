"""Real artifact-store emulators for the suite, each on 127.0.0.1 and stopped by PID (see tests/support/servers.py):

- ``fake_gcs``: fake-gcs-server (Go, ``go install github.com/fsouza/fake-gcs-server``), reached through
  ``STORAGE_EMULATOR_HOST``;
- ``azurite``: Azurite's blob service (npm ``azurite``, run with node), with its well-known development account;
- ``sftp_server``: OpenSSH's ``sshd`` (Debian ``openssh-server``) as the current user with its own config, host
  key and user key, plus a HOME whose ``~/.ssh`` MLflow's SFTP store (pysftp) reads;
- ``ThrottledProxy``: a TCP relay that slows the store's answers down, so that a test can kill a download
  half-way (it forwards real bytes between the client and the real emulator).

``scripts/install-test-tools.sh`` installs the binaries into ``.tools/``; a fixture whose binary is missing skips
with the reason. Nothing here imports mlflow.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.servers import HOST, _spawn, _terminate, _wait_ready, free_port

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"


class MissingEmulator(RuntimeError):
    """The emulator's binary is not installed (run scripts/install-test-tools.sh)."""


def _tool(name: str, *candidates: Path) -> str:
    for candidate in (*candidates, TOOLS / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise MissingEmulator(f"{name} is not installed (scripts/install-test-tools.sh installs it into .tools/)")


# --------------------------------------------------------------------------------------------
# Google Cloud Storage


@dataclass
class FakeGcs:
    url: str
    bucket: str
    pid: int

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url, "GOOGLE_CLOUD_PROJECT": "kitmlflow-test"}


@contextlib.contextmanager
def fake_gcs(root: Path, bucket: str = "mlflow") -> Iterator[FakeGcs]:
    binary = _tool("fake-gcs-server")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    cmd = [binary, "-scheme", "http", "-host", HOST, "-port", str(port), "-backend", "memory"]
    cmd += ["-external-url", url, "-public-host", f"{HOST}:{port}", "-log-level", "warn"]
    proc = _spawn(cmd, {"PATH": os.environ.get("PATH", "")}, root / "fake-gcs.log", root)
    try:
        _wait_ready(proc, f"{url}/storage/v1/b", root / "fake-gcs.log", "fake-gcs-server")
        requests.post(f"{url}/storage/v1/b", json={"name": bucket}, timeout=10).raise_for_status()
        yield FakeGcs(url, bucket, proc.pid)
    finally:
        _terminate(proc)


# --------------------------------------------------------------------------------------------
# Azure Blob Storage

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite)
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    port: int
    container: str
    pid: int

    def connection_string(self, *, port: int | None = None, key: str = AZURITE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint=http://{HOST}:{port or self.port}/{AZURITE_ACCOUNT};"
        )

    def env(self, **kwargs) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string(**kwargs)}

    def uri(self, path: str) -> str:
        return f"wasbs://{self.container}@{AZURITE_ACCOUNT}.blob.core.windows.net/{path}"


@contextlib.contextmanager
def azurite(root: Path, container: str = "mlflow") -> Iterator[Azurite]:
    script = _tool("azurite-blob", TOOLS / "azurite" / "node_modules" / ".bin" / "azurite-blob")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [script, "--blobHost", HOST, "--blobPort", str(port), "--location", str(root / "data")]  # on disk: 1 GB blobs
    cmd += ["--skipApiVersionCheck", "--loose", "--silent"]
    proc = _spawn(cmd, {"PATH": os.environ.get("PATH", ""), "HOME": str(root)}, root / "azurite.log", root)
    try:
        # Any answer means it is up; an unsigned listing is refused with 403 once the service runs.
        _wait_until(lambda: _answers(f"http://{HOST}:{port}/{AZURITE_ACCOUNT}?comp=list"), proc, "azurite")
        server = Azurite(port, container, proc.pid)
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(server.connection_string()).create_container(container)
        yield server
    finally:
        _terminate(proc)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


def _wait_until(ready, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# SFTP

SFTP_HOST_ALIAS = "kitmlflow-sftp"


@dataclass
class SftpServer:
    port: int
    root: Path  # the store's folder on the server (the same machine, so a local path)
    user: str
    key: Path  # the user's private key (RSA: pysftp reads no other kind)
    host_key_line: str
    pid: int

    def uri(self, path: str) -> str:
        return f"sftp://{SFTP_HOST_ALIAS}{self.root / path}"

    def home(self, folder: Path, *, port: int | None = None, key: Path | None = None) -> Path:
        """A HOME whose ~/.ssh names this server as ``kitmlflow-sftp`` (or a relay in front of it, ``port``)."""
        ssh = folder / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        identity = ssh / "id_rsa"
        shutil.copyfile(key or self.key, identity)
        identity.chmod(0o600)
        (ssh / "config").write_text(
            f"Host {SFTP_HOST_ALIAS}\n  HostName {HOST}\n  Port {port or self.port}\n  User {self.user}\n"
            f"  IdentityFile {identity}\n"
        )
        # pysftp looks host keys up by host name alone, without the port.
        (ssh / "known_hosts").write_text(f"{HOST} {self.host_key_line}\n")
        return folder


def make_key(path: Path, kind: str = "rsa") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["ssh-keygen", "-q", "-N", "", "-C", "kitmlflow-test", "-f", str(path), "-t", kind]
    if kind == "rsa":
        args += ["-b", "2048", "-m", "PEM"]
    subprocess.run(args, check=True)
    return path


@contextlib.contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    sshd = _tool("sshd", Path("/usr/sbin/sshd"))
    _tool("ssh-keygen")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    host_key = make_key(root / "host_ed25519", "ed25519")
    user_key = make_key(root / "user_rsa")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(str(user_key) + ".pub").read_text())
    store = root / "store"
    store.mkdir()
    user = getpass.getuser()
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {HOST}\nHostKey {host_key}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nAllowUsers {user}\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder when root
    proc = _spawn([sshd, "-D", "-e", "-f", str(config)], {"PATH": os.environ.get("PATH", "")}, root / "sshd.log", root)
    try:
        _wait_until(lambda: _ssh_banner(port), proc, "sshd")
        host_key_line = " ".join(Path(str(host_key) + ".pub").read_text().split()[:2])
        yield SftpServer(port, store, user, user_key, host_key_line, proc.pid)
    finally:
        _terminate(proc)


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# a slow link


class ThrottledProxy:
    """Relays TCP connections from 127.0.0.1:``port`` to ``target_port``, the answers at ``rate`` bytes/s."""

    def __init__(self, target_port: int, rate: int) -> None:
        self.target_port = target_port
        self.rate = rate
        self.connections = 0
        self.request_lines: list[str] = []  # the HTTP request lines clients sent through it, in order
        self._stop = threading.Event()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ThrottledProxy:
        thread = threading.Thread(target=self._accept, name="throttle-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            for source, sink, rate in ((client, upstream, None), (upstream, client, self.rate)):
                thread = threading.Thread(target=self._pump, args=(source, sink, rate), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int | None) -> None:
        block = 16 * 1024
        try:
            source.settimeout(0.5)
            while not self._stop.is_set():
                try:
                    data = source.recv(block)
                except TimeoutError:
                    continue
                if not data:
                    break
                if rate is None and data.startswith((b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ")):
                    self.request_lines.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
