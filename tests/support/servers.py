"""Real servers for the test suite: ``mlflow server`` (plain, S3-backed, basic-auth) and ``moto_server``.

Every server binds 127.0.0.1 on a free port, runs as a subprocess in its own session, writes its
output to a log file in its folder, and is stopped by PID (SIGTERM, wait, then SIGKILL), never by
name. ``mlflow server`` is a supervisor that starts uvicorn as a child; stopping and killing deal
with both (the process group is the supervisor's PID, and the descendants are tracked by PID too).

Typical use::

    with moto_s3(tmp_path / "s3") as s3, mlflow_server(tmp_path / "mlf", artifacts="direct-s3", s3=s3) as srv:
        exp_id, run_id = seed_run(srv.url, experiment_name="e", files={"a.txt": b"hi"}, env=srv.client_env())

``mlflow`` is imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import psutil
import requests

__all__ = [
    "AuthConfig",
    "MlflowServer",
    "MotoS3",
    "ServerStartError",
    "create_user",
    "free_port",
    "grant",
    "mlflow_server",
    "moto_s3",
    "seed_run",
    "start_on_a_free_port",
    "temp_env",
]

ArtifactsMode = Literal["proxied-local", "proxied-s3", "direct-s3"]

_BIN = Path(sys.executable).parent
MLFLOW_BIN = str(_BIN / "mlflow") if (_BIN / "mlflow").exists() else (shutil.which("mlflow") or "mlflow")
MOTO_BIN = (
    str(_BIN / "moto_server") if (_BIN / "moto_server").exists() else (shutil.which("moto_server") or "moto_server")
)

HOST = "127.0.0.1"
POLL_INTERVAL = 0.2
# Readiness budget. `mlflow server` is two Python processes that each import mlflow (about 6 s of
# CPU apiece): 12-20 s on an idle 2-core machine, 25-45 s measured under a load average of 8.
# A start that fails exits early (we watch the process), so a generous budget costs nothing.
READY_TIMEOUT = float(os.environ.get("KITMLFLOW_TEST_SERVER_TIMEOUT", "120"))
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 60

# Variables of the calling process that must not leak into a server (a test may have set them to
# point a client somewhere else) and the ones we always set for a quiet, offline, single-process server.
_STRIPPED_PREFIXES = ("MLFLOW_", "AWS_")
_QUIET_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runner subprocesses
    "MLFLOW_DISABLE_TELEMETRY": "true",  # no telemetry config fetch / upload
    "DO_NOT_TRACK": "true",
    "PYTHONUNBUFFERED": "1",
}


# What a server needs to send webhooks to a receiver on 127.0.0.1 (``webhooks=True``): a fixed key for the
# secrets it stores (else each process makes one up and cannot read them back), plain http and loopback allowed.
WEBHOOK_SERVER_ENV = {
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "a2l0bWxmbG93IHRlc3Qgd2ViaG9va3Mga2V5LCAzMkI=",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
}


class ServerStartError(RuntimeError):
    """A server did not become ready; the message ends with the tail of its log."""


# --------------------------------------------------------------------------------------------
# small helpers


_handed_out_ports: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and was not handed out before by this process."""
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise RuntimeError("could not find a free port")


BIND_ATTEMPTS = 5
_BIND_FAILED = re.compile(r"(?i)address already in use|errno 98\b")
T = TypeVar("T")


def start_on_a_free_port(start: Callable[[int], T], log_path: Path) -> T:
    """``start(port)`` on a free port, and again on another one when the server could not bind it: between
    ``free_port()`` and the server's own bind, another process (another test run, another helper's server)
    may take the port; ``free_port`` only knows the ports this process handed out."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            return start(free_port())
        except ServerStartError:
            if attempt == BIND_ATTEMPTS or not _BIND_FAILED.search(_log_since(log_path, offset)):
                raise
            print(f"{log_path.name}: port taken before the server bound it; trying another", file=sys.stderr)
    raise AssertionError("unreachable")


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def temp_env(values: Mapping[str, str | None] | None = None, /, **kwargs: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block; the whole of ``os.environ``
    is restored afterwards, including anything the block itself changed (mlflow's
    ``set_tracking_uri`` writes ``MLFLOW_TRACKING_URI``, for instance)."""
    snapshot = dict(os.environ)
    try:
        for key, value in {**(values or {}), **kwargs}.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key in list(os.environ):
            if key not in snapshot:
                del os.environ[key]
        for key, value in snapshot.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def _server_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
    env.update(_QUIET_ENV)
    env.update(extra)
    return env


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<no log: {e}>"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# process management (by PID only)

_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()


def _spawn(cmd: list[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n==== {time.strftime('%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group (pgid == pid); no terminal signals
        )
    with _live_lock:
        _live[proc.pid] = proc
    return proc


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _killpg_unreaped(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group whose id is the leader's PID. Only while the leader is not yet
    reaped (returncode None), so the id cannot have been reused by another process."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _finish(proc: subprocess.Popen[bytes], children: list[psutil.Process], timeout: float) -> None:
    """After the leader is gone: wait for its former children, SIGKILL the survivors."""
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    with _live_lock:
        _live.pop(proc.pid, None)


def _terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the leader (mlflow forwards it to uvicorn), wait, then SIGKILL the whole tree."""
    children = _descendants(proc.pid)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            children = list({p.pid: p for p in children + _descendants(proc.pid)}.values())
            _killpg_unreaped(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    _finish(proc, children, timeout)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the leader and every descendant at once (a crash, for fault tests)."""
    children = _descendants(proc.pid)
    _killpg_unreaped(proc, signal.SIGKILL)
    for p in children:  # in case a descendant left the group
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait(timeout=10)
    _finish(proc, children, 10)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        with contextlib.suppress(Exception):
            _terminate(proc, timeout=5)


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, what: str, timeout: float = READY_TIMEOUT
) -> float:
    """Poll ``url`` until it answers 200; fail early if the process exits. Returns seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    session = requests.Session()
    session.trust_env = False  # never go through a proxy for 127.0.0.1
    try:
        while True:
            if proc.poll() is not None:
                _finish(proc, [], 1)
                reason = f"exited with code {proc.returncode}"
                break
            try:
                if session.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                reason = f"not ready after {timeout:.0f} s"
                _terminate(proc)
                break
            time.sleep(POLL_INTERVAL)
    finally:
        session.close()
    tail = _log_tail(log_path)
    message = f"{what} {reason} (GET {url}); log {log_path}:\n{tail}"
    print(message, file=sys.stderr)
    raise ServerStartError(message)


# --------------------------------------------------------------------------------------------
# moto S3


@dataclass
class MotoS3:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    pid: int
    root: Path = field(default_factory=Path)
    log_path: Path = field(default_factory=Path)
    region: str = "us-east-1"
    ready_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """What a process needs to reach this bucket (an mlflow server, or a client in direct mode)."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):  # -> botocore S3 client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def keys(self, prefix: str = "") -> list[str]:
        """All object keys in the bucket under ``prefix``, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        out: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(out)

    def stop(self) -> None:
        if self._proc is not None:
            _terminate(self._proc)


# With ``authenticated``: the IAM calls that make the test user (create_user, put_user_policy,
# create_access_key) are the only ones moto lets through unsigned; every later request must carry that key.
_MOTO_SETUP_ACTIONS = 3


@contextlib.contextmanager
def moto_s3(root: Path, bucket: str = "mlflow", *, authenticated: bool = False) -> Iterator[MotoS3]:
    """A ``moto_server`` on 127.0.0.1 with ``bucket`` created. State lives in memory only.
    ``authenticated``: moto checks signatures and IAM policies, so a wrong key is refused as S3 would."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "moto.log"

    extra_env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(_MOTO_SETUP_ACTIONS)} if authenticated else {}

    def start(port: int) -> tuple[subprocess.Popen[bytes], str, float]:
        proc = _spawn([MOTO_BIN, "-H", HOST, "-p", str(port)], _server_env(extra_env), log_path, root)
        url = f"http://{HOST}:{port}"
        return proc, url, _wait_ready(proc, f"{url}/moto-api/", log_path, "moto_server")

    proc, url, ready = start_on_a_free_port(start, log_path)
    try:
        s3 = MotoS3(
            endpoint_url=url,
            bucket=bucket,
            access_key="kitmlflow-test",
            secret_key="kitmlflow-test-secret",
            pid=proc.pid,
            root=root,
            log_path=log_path,
            ready_seconds=ready,
            _proc=proc,
        )
        if authenticated:
            s3.access_key, s3.secret_key = _moto_iam_user(s3)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        _terminate(proc)


def _moto_iam_user(s3: MotoS3) -> tuple[str, str]:
    import json

    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
    )
    iam.create_user(UserName="kitmlflow")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="kitmlflow", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="kitmlflow")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


# --------------------------------------------------------------------------------------------
# basic auth


@dataclass(frozen=True)
class AuthConfig:
    """Basic-auth settings. ``default_permission`` applies to users without an explicit grant."""

    admin_user: str = "admin"
    admin_password: str = "admin-password-1234"
    default_permission: str = "READ"
    secret_key: str = "kitmlflow-test-flask-secret"

    def __post_init__(self) -> None:
        if len(self.admin_password) < 12:
            raise ValueError("mlflow requires passwords of at least 12 characters")

    def ini(self, database_uri: str) -> str:
        return (
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
            f"database_uri = {database_uri}\n"
            f"admin_username = {self.admin_user}\n"
            f"admin_password = {self.admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )

    def env(self) -> dict[str, str]:
        """Client credentials of the admin."""
        return {"MLFLOW_TRACKING_USERNAME": self.admin_user, "MLFLOW_TRACKING_PASSWORD": self.admin_password}


# --------------------------------------------------------------------------------------------
# mlflow server


@dataclass
class MlflowServer:
    url: str
    root: Path
    pid: int
    log_path: Path
    port: int = 0
    artifacts: ArtifactsMode = "proxied-local"
    s3: MotoS3 | None = None
    auth: AuthConfig | None = None
    backend_uri: str = ""
    ready_seconds: float = 0.0  # how long the last (re)start took to answer /health
    _cmd: list[str] = field(default_factory=list, repr=False)
    _env: dict[str, str] = field(default_factory=dict, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client_env(self) -> dict[str, str]:
        """Env a client needs for full access: admin credentials (auth) and S3 access (direct-s3)."""
        env: dict[str, str] = {}
        if self.artifacts == "direct-s3" and self.s3 is not None:
            env.update(self.s3.env())
        if self.auth is not None:
            env.update(self.auth.env())
        return env

    def log_offset(self) -> int:
        """Where the server's log ends now: pass it to ``requests_since`` after the calls to count."""
        return self.log_path.stat().st_size

    def requests_since(self, offset: int) -> list[str]:
        """What the server logged after ``offset``, one entry per HTTP request: ``"GET /path 401"`` from
        uvicorn's access log, ``"INVALID"`` for a request it could not parse (a TLS handshake, say). The log
        trails the responses by a moment, so this waits until it stops growing."""
        seen, settled = -1, 0
        deadline = time.monotonic() + 10
        while settled < 3 and time.monotonic() < deadline:
            size = self.log_offset()
            settled = settled + 1 if size == seen else 0
            seen = size
            time.sleep(0.1)
        found = []
        for line in _log_since(self.log_path, offset).splitlines():
            if access := _ACCESS_LINE.search(line):
                found.append(f"{access.group(1)} {access.group(2)} {access.group(3)}")
            elif "Invalid HTTP request received" in line:
                found.append("INVALID")
        return found

    def _start(self) -> None:
        proc = _spawn(self._cmd, self._env, self.log_path, self.root)
        self._proc = proc
        self.pid = proc.pid
        self.ready_seconds = _wait_ready(proc, f"{self.url}/health", self.log_path, "mlflow server")

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL after a timeout. Idempotent."""
        if self._proc is not None:
            _terminate(self._proc)

    def kill(self) -> None:
        """SIGKILL the server and its uvicorn worker at once (a crash)."""
        if self._proc is not None:
            _kill(self._proc)

    def pause(self) -> None:
        """SIGSTOP the server's process group (a hung server: the kernel still accepts connections)."""
        if self._proc is not None:
            _killpg_unreaped(self._proc, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``: the requests queued meanwhile are served, and logged."""
        if self._proc is not None:
            _killpg_unreaped(self._proc, signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port with the same stores (stops it first if it is running)."""
        self.stop()
        deadline = time.monotonic() + 30
        while _port_in_use(self.port):  # a killed uvicorn's socket goes away with it; be safe
            if time.monotonic() > deadline:
                raise ServerStartError(f"port {self.port} still in use, cannot restart")
            time.sleep(POLL_INTERVAL)
        self._start()


_ACCESS_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def mlflow_server(
    root: Path,
    *,
    artifacts: ArtifactsMode = "proxied-local",
    s3: MotoS3 | None = None,
    auth: AuthConfig | None = None,
    backend_uri: str | None = None,
    s3_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: list[str] | None = None,
    webhooks: bool = False,
) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1 with one uvicorn worker, stopped on exit.

    artifacts:
      - ``proxied-local``: ``--artifacts-destination <root>/art`` (clients use ``mlflow-artifacts:``)
      - ``proxied-s3``: ``--artifacts-destination s3://<bucket>/<prefix>``; only the server talks to S3
      - ``direct-s3``: ``--no-serve-artifacts --default-artifact-root s3://<bucket>/<prefix>``;
        clients need ``s3.env()`` (``MlflowServer.client_env()`` includes it)
    ``env`` adds variables to the server's environment; ``extra_args`` adds ``mlflow server`` options;
    ``webhooks`` lets it deliver webhooks to http receivers on 127.0.0.1 (``WEBHOOK_SERVER_ENV``).
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    backend = backend_uri or f"sqlite:///{root / 'mlflow.db'}"
    server_env: dict[str, str] = {
        # Point the docker SDK (the assistant sandbox reaper runs at startup when a `docker`
        # executable exists) at a socket that does not exist, so a test server never talks to a
        # real daemon.
        "DOCKER_HOST": f"unix://{root / 'no-docker.sock'}",
    }
    args = [
        MLFLOW_BIN,
        "server",
        "--backend-store-uri",
        backend,
        "--host",
        HOST,
        "--workers",
        "1",
    ]
    if artifacts == "proxied-local":
        args += ["--artifacts-destination", str(root / "art")]
    elif artifacts in ("proxied-s3", "direct-s3"):
        if s3 is None:
            raise ValueError(f"artifacts={artifacts!r} needs s3=MotoS3(...)")
        prefix = s3_prefix or artifacts.split("-")[0]
        location = f"s3://{s3.bucket}/{prefix}"
        server_env.update(s3.env())
        if artifacts == "proxied-s3":
            args += ["--artifacts-destination", location]
        else:
            args += ["--no-serve-artifacts", "--default-artifact-root", location]
    else:
        raise ValueError(f"unknown artifacts mode {artifacts!r}")
    if auth is not None:
        ini = root / "basic_auth.ini"
        ini.write_text(auth.ini(f"sqlite:///{root / 'basic_auth.db'}"))
        args += ["--app-name", "basic-auth"]
        server_env.update(
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(ini),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": auth.secret_key,
                "MLFLOW_AUTH_ADMIN_USERNAME": auth.admin_user,
                "MLFLOW_AUTH_ADMIN_PASSWORD": auth.admin_password,
            }
        )
    args += list(extra_args or [])
    if webhooks:
        server_env.update(WEBHOOK_SERVER_ENV)
    server_env.update(env or {})

    def start(port: int) -> MlflowServer:
        server = MlflowServer(
            url=f"http://{HOST}:{port}",
            root=root,
            pid=0,
            log_path=root / "mlflow-server.log",
            port=port,
            artifacts=artifacts,
            s3=s3,
            auth=auth,
            backend_uri=backend,
            _cmd=[*args, "--port", str(port)],
            _env=_server_env(server_env),
        )
        server._start()
        return server

    server = start_on_a_free_port(start, root / "mlflow-server.log")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# users and permissions (basic auth)


@contextlib.contextmanager
def _admin_client(server: MlflowServer):
    if server.auth is None:
        raise ValueError("this server was started without auth")
    from mlflow.server import get_app_client

    with temp_env({"MLFLOW_TRACKING_TOKEN": None, "MLFLOW_TRACKING_AUTH": None, **server.auth.env()}):
        yield get_app_client("basic-auth", tracking_uri=server.url)


def create_user(server: MlflowServer, username: str, password: str) -> None:
    """Create a non-admin user (the password needs 12+ characters)."""
    with _admin_client(server) as client:
        client.create_user(username, password)


def grant(server: MlflowServer, username: str, experiment_id: str, permission: str) -> None:
    """Give ``username`` a permission on one experiment: READ, USE, EDIT, MANAGE or DENY.

    mlflow 3.17 refuses ``NO_PERMISSIONS`` as a per-resource grant (INVALID_PARAMETER_VALUE:
    "Resource-level grants accept only: DENY, EDIT, MANAGE, READ, USE"); it is taken here as DENY,
    the explicit deny that wins over the server's ``default_permission``."""
    if permission == "NO_PERMISSIONS":
        permission = "DENY"
    with _admin_client(server) as client:
        client.grant_user_permission(username, "experiment", str(experiment_id), permission)


# --------------------------------------------------------------------------------------------
# seeding runs


def deterministic_bytes(size: int, seed: str) -> Iterator[bytes]:
    """``size`` pseudo-random bytes (in chunks of at most 1 MiB), the same for the same seed."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    remaining = size
    while remaining > 0:
        n = min(remaining, 1 << 20)
        yield rng.randbytes(n)
        remaining -= n


def _write_files(dest: Path, files: Mapping[str, bytes | int]) -> None:
    for rel, content in files.items():
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts:
            raise ValueError(f"artifact path must be relative and inside the run: {rel!r}")
        path = dest.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            if isinstance(content, int):
                for chunk in deterministic_bytes(content, f"{rel}:{content}"):
                    f.write(chunk)
            else:
                f.write(content)


def seed_run(
    tracking_uri: str,
    *,
    experiment_name: str,
    files: Mapping[str, bytes | int],
    status: str = "FINISHED",
    logged_model: bool = False,
    env: Mapping[str, str] | None = None,
    run_name: str | None = None,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    artifact_location: str | None = None,
) -> tuple[str, str]:
    """Create a run in ``experiment_name`` (created if missing), log ``files`` as its artifacts
    (``bytes`` as is, an ``int`` as that many deterministic pseudo-random bytes), optionally an
    MLflow 3 pyfunc logged model named ``model``, and leave it with ``status``.

    ``artifact_location``: where a new experiment keeps its runs' artifacts (``s3://...``, ``gs://...``: the
    client then writes and reads that store directly, whatever the server's own artifact settings).
    ``env`` is applied for the duration (credentials, S3 access); the process environment and
    mlflow's global tracking URI are restored afterwards. Returns ``(experiment_id, run_id)``.
    """
    from mlflow.tracking import MlflowClient

    with temp_env(env or {}):
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment(experiment_name, artifact_location=artifact_location)
        )
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        run_id = run.info.run_id
        for key, value in (params or {}).items():
            client.log_param(run_id, key, value)
        for key, value in (metrics or {}).items():
            client.log_metric(run_id, key, value)
        if files:
            with tempfile.TemporaryDirectory(prefix="kitmlflow-seed-") as tmp:
                _write_files(Path(tmp), files)
                client.log_artifacts(run_id, tmp)
        if logged_model:
            _log_pyfunc_model(tracking_uri, run_id)
        if status in ("FINISHED", "FAILED", "KILLED"):
            client.set_terminated(run_id, status)
        else:  # RUNNING, SCHEDULED: start_run's exit may have finished it
            client.update_run(run_id, status=status)
    return experiment_id, run_id


def _log_pyfunc_model(tracking_uri: str, run_id: str) -> None:
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking import _tracking_service
    from mlflow.tracking.fluent import _reset_last_logged_model_id

    class EchoModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    previous_uri = _tracking_service.utils._tracking_uri
    try:
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=run_id):
            mlflow.pyfunc.log_model(name="model", python_model=EchoModel(), pip_requirements=["mlflow"])
    finally:
        mlflow.set_tracking_uri(previous_uri)  # the caller's temp_env restores the env var itself
        _reset_last_logged_model_id()
