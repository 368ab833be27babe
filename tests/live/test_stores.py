"""Every artifact store MLflow reads directly, against real emulators (issue 16), plus S3 behind the proxy.

One real ``mlflow server`` (proxied local artifacts) holds an experiment per store, each with its own
``artifact_location`` (``s3://`` on moto, ``gs://`` on fake-gcs-server, ``wasbs://`` on Azurite, ``sftp://`` on
a real sshd, a local folder), so the client reads each store directly with that store's own client, configured
by the store's own variables. A second server proxies an S3 destination. For each store: an import whose packed
layers hold the listed bytes, a missing client library (exit 7 naming the extra, in a subprocess that hides the
module), wrong credentials (exit 3 naming the store's variables, no secret printed), and a download killed
half-way that resumes from the bytes on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cli import kitmlflow_subprocess_env
from tests.support.emulators import MissingEmulator, ThrottledProxy, azurite, fake_gcs, sftp_server
from tests.support.servers import deterministic_bytes, mlflow_server, moto_s3, seed_run, temp_env

BIG = "weights/model.safetensors"
FILES: dict[str, bytes | int] = {
    BIG: 24_000_000,
    "checkpoints/epoch_001.pt": 300_000,
    "config/params.json": b'{"lr": 0.01}\n',
    "README.md": b"# a model from a direct store\n",
    "empty.txt": b"",
    "deep/a/b/c/leaf.txt": b"leaf",
}
# Names MLflow's own client loses (issue 10 item 6); a direct store keeps them exactly.
ODD_NAMES: dict[str, bytes | int] = {
    "q?mark&x=1.txt": b"question",
    "pct%2Fslash.txt": b"percent-slash",
    "pct%20space.txt": b"percent-space",
    "hash#x.txt": b"hash",
    "plus+a b.txt": b"plus and space",
    "ünï cødé.txt": b"non-ascii",
}
DIRECT = ("s3", "gcs", "azure", "sftp", "local")
ALL = (*DIRECT, "s3-proxied")
HIDE = {
    "s3": ("boto3,botocore", "kitmlflow[s3]", "boto3"),
    "gcs": ("google.cloud.storage", "kitmlflow[gcs]", "google-cloud-storage"),
    "azure": ("azure.storage.blob", "kitmlflow[azure]", "azure-storage-blob"),
    "sftp": ("pysftp,paramiko", "kitmlflow[sftp]", "pysftp"),
}
SECRET = "the-wrong-secret-1234567890"


def content_of(path: str, files: dict[str, bytes | int] = FILES) -> bytes:
    value = files[path]
    return value if isinstance(value, bytes) else b"".join(deterministic_bytes(value, f"{path}:{value}"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    name: str
    server_url: str
    run_id: str
    env: dict[str, str]  # what the client needs to read the store
    odd_run_id: str | None = None
    extra: dict = field(default_factory=dict)  # what a test needs to reach the emulator another way

    def uri(self, run_id: str | None = None, *, url: str | None = None) -> str:
        host = (url or self.server_url).removeprefix("http://")
        return f"mlflow://{host}/runs/{run_id or self.run_id}"


@dataclass
class Stores:
    ready: dict[str, Store]
    missing: dict[str, str]  # store → why its emulator is not there

    def get(self, name: str) -> Store:
        if name not in self.ready:
            pytest.skip(f"{name}: {self.missing.get(name, 'not set up')}")
        return self.ready[name]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    import contextlib

    root = tmp_path_factory.mktemp("stores")
    missing: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        forget_s3_clients()
        s3 = stack.enter_context(moto_s3(root / "moto", authenticated=True))
        emulators: dict[str, object] = {}
        for name, start in (("gcs", fake_gcs), ("azure", azurite), ("sftp", sftp_server)):
            try:
                emulators[name] = stack.enter_context(start(root / name))
            except MissingEmulator as exc:
                missing[name] = str(exc)
                print(f"skipping the {name} store tests: {exc}", file=sys.stderr)
        # MLflow 3.17 refuses experiments whose artifacts live on a host it names (sftp://) unless allowed.
        allow_sftp = {"MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "sftp"}
        server = stack.enter_context(mlflow_server(root / "mlflow", env=allow_sftp))
        proxied = stack.enter_context(mlflow_server(root / "mlflow-s3", artifacts="proxied-s3", s3=s3))
        locations: dict[str, tuple[str, dict[str, str], dict]] = {"s3": (f"s3://{s3.bucket}/direct", s3.env(), {})}
        locations["local"] = (str(root / "local-store"), {}, {})
        if "gcs" in emulators:
            gcs = emulators["gcs"]
            locations["gcs"] = (f"gs://{gcs.bucket}/direct", gcs.env(), {"gcs": gcs})
        if "azure" in emulators:
            az = emulators["azure"]
            locations["azure"] = (az.uri("direct"), az.env(), {"azurite": az})
        if "sftp" in emulators:
            sftp = emulators["sftp"]
            home = sftp.home(root / "sftp-home")
            locations["sftp"] = (sftp.uri("direct"), {"HOME": str(home)}, {"sftp": sftp})
        ready: dict[str, Store] = {}
        for name, (location, env, extra) in locations.items():
            _, run_id = seed_run(server.url, experiment_name=name, files=FILES, env=env, artifact_location=location)
            odd = None
            if name in ("s3", "local"):
                _, odd = seed_run(server.url, experiment_name=name, files=ODD_NAMES, env=env)
            ready[name] = Store(name, server.url, run_id, env, odd, {**extra, "s3": s3})
        _, run_id = seed_run(proxied.url, experiment_name="proxied", files=FILES)
        ready["s3-proxied"] = Store("s3-proxied", proxied.url, run_id, {}, None, {"s3": s3})
        # The proxy serves a local store too: put the odd names straight into its folder.
        exp, odd_run = seed_run(server.url, experiment_name="proxied-local", files={"a.txt": b"a"})
        for name in ODD_NAMES:
            (root / "mlflow" / "art" / exp / odd_run / "artifacts" / name).write_bytes(content_of(name, ODD_NAMES))
        ready["proxied-local"] = Store("proxied-local", server.url, odd_run, {}, odd_run)
        yield Stores(ready, missing)


def forget_s3_clients() -> None:
    """Read S3 as a fresh process would. boto3's default session keeps the credentials it first resolved and
    MLflow keeps one client per endpoint; a kitmlflow process has one set of credentials, while this test
    process goes through several (other modules' moto servers, and wrong ones on purpose)."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    boto3.DEFAULT_SESSION = None
    _cached_get_s3_client.cache_clear()


@pytest.fixture(autouse=True)
def fresh_s3_clients() -> Iterator[None]:
    forget_s3_clients()
    yield
    forget_s3_clients()


def packed_files(kitops_home: Path, manifest_digest: str) -> dict[str, str]:
    """Every regular file in the ModelKit's layers → sha256 of its bytes."""
    from kitmlflow_tui.core.packing.storage import KitStorage

    storage = KitStorage(kitops_home)
    manifest = json.loads(storage.blob_path(manifest_digest).read_bytes())
    found: dict[str, str] = {}
    for layer in manifest["layers"]:
        with tarfile.open(storage.blob_path(layer["digest"]), "r:*") as archive:
            for member in archive:
                if member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    digest = hashlib.sha256()
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                    found[member.name] = digest.hexdigest()
    return found


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


# -- an import from each store --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_an_import_packs_the_bytes_of_every_store(
    stores: Stores, name: str, kitmlflow, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.get(name)
    set_env(monkeypatch, store.env)
    out = kitmlflow("import", store.uri(), "-t", f"{name}:v1", "--yes", "--json", "--packer", "native")
    assert out.code == 0, out.stderr
    doc = out.json
    assert sorted(f["path"] for f in doc["selected"]) == sorted(FILES)
    assert doc["downloaded_bytes"] == doc["selected_bytes"] == sum(len(content_of(p)) for p in FILES)
    packed = packed_files(isolated_env / "kitops", doc["digest"])
    for path in FILES:
        assert packed.get(path) == sha256(content_of(path)), path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s3", "local"])
def test_names_mlflows_client_loses_download_and_pack_under_their_own_names_from_a_direct_store(
    stores: Stores, name: str, kitmlflow, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.get(name)
    set_env(monkeypatch, store.env)
    dest = isolated_env / "dest"
    out = kitmlflow("download", store.uri(store.odd_run_id), "--dest", str(dest), "--yes", "--json")
    assert out.code == 0, out.stderr
    assert sorted(f["path"] for f in out.json["selected"]) == sorted(ODD_NAMES)
    for path in ODD_NAMES:
        assert (dest / path).read_bytes() == content_of(path, ODD_NAMES), path
    out = kitmlflow("import", store.uri(store.odd_run_id), "-t", "odd:v1", "--yes", "--json", "--packer", "native")
    assert out.code == 0, out.stderr
    packed = packed_files(isolated_env / "kitops", out.json["digest"])
    for path in ODD_NAMES:
        assert packed.get(path) == sha256(content_of(path, ODD_NAMES)), path


@pytest.mark.slow
def test_through_the_proxy_odd_names_are_requested_encoded_and_the_unservable_ones_left_out_with_the_reason(
    stores: Stores, kitmlflow, isolated_env: Path
) -> None:
    """MLflow 3.17's proxy serves ``?``, ``&``, ``+``, spaces and non-ASCII once the path is percent-encoded;
    it decodes %XX escapes in a requested path and refuses ``#``, so those names cannot come through it."""
    store = stores.get("proxied-local")
    dest = isolated_env / "dest"
    out = kitmlflow("download", store.uri(), "--dest", str(dest), "--yes", "--json")
    assert out.code == 0, out.stderr
    servable = {"q?mark&x=1.txt", "plus+a b.txt", "ünï cødé.txt"}
    assert sorted(f["path"] for f in out.json["selected"]) == sorted(servable | {"a.txt"})
    for path in servable:
        assert (dest / path).read_bytes() == content_of(path, ODD_NAMES), path
    reasons = {f["path"]: f["reason"] for f in out.json["excluded"]}
    assert set(reasons) == {"pct%2Fslash.txt", "pct%20space.txt", "hash#x.txt"}
    assert "decodes %XX escapes" in reasons["pct%2Fslash.txt"] and "'#'" in reasons["hash#x.txt"]


# -- a missing client library ----------------------------------------------------------------------

BLOCKER = textwrap.dedent(
    '''
    """Hides modules named in KITMLFLOW_TEST_HIDE_MODULES, as if their package were not installed."""
    import os
    import sys

    _HIDDEN = tuple(name for name in os.environ.get("KITMLFLOW_TEST_HIDE_MODULES", "").split(",") if name)


    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if any(name == hidden or name.startswith(hidden + ".") for hidden in _HIDDEN):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, _Hide())
    '''
)


def run_hiding(modules: str, args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    site = tmp_path / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    full_env = kitmlflow_subprocess_env(**env, PYTHONPATH=str(site), KITMLFLOW_TEST_HIDE_MODULES=modules)
    full_env["KITMLFLOW_CACHE_DIR"] = str(tmp_path / "cache")
    full_env["KITOPS_HOME"] = str(tmp_path / "kitops")
    command = [str(Path(sys.executable).parent / "kitmlflow"), *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HIDE))
@pytest.mark.parametrize("command", ["download", "import"])
def test_a_store_whose_client_library_is_missing_is_exit_7_naming_the_extra(
    stores: Stores, name: str, command: str, tmp_path: Path
) -> None:
    store = stores.get(name)
    modules, extra, package = HIDE[name]
    args = [command, store.uri(), "--yes", "--json"]
    args += ["--dest", str(tmp_path / "dest")] if command == "download" else ["-t", "x:1", "--dry-run"]
    done = run_hiding(modules, args, store.env, tmp_path)
    assert done.returncode == 7, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert f"pip install '{extra}'" in message and package in message, message
    assert "could not be reached" not in message and "Traceback" not in done.stderr
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").rglob("*.*"))


# -- wrong credentials ------------------------------------------------------------------------------


def wrong_credentials(store: Store, tmp_path: Path, stack) -> dict[str, str]:
    """The store's variables set to credentials it refuses, each with SECRET inside."""
    if store.name == "s3":
        s3 = store.extra["s3"]
        return {**store.env, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": s3.access_key}
    if store.name == "azure":
        import base64

        key = base64.b64encode(SECRET.encode() * 2).decode()
        return store.extra["azurite"].env(key=key)
    if store.name == "sftp":
        from tests.support.emulators import make_key

        sftp = store.extra["sftp"]
        stranger = make_key(tmp_path / "keys" / "stranger_rsa")
        return {"HOME": str(sftp.home(tmp_path / "home", key=stranger))}
    raise AssertionError(store.name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s3", "azure", "sftp"])
def test_wrong_store_credentials_are_exit_3_naming_what_the_store_reads(
    stores: Stores, name: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib

    store = stores.get(name)
    for key in ("STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    with contextlib.ExitStack() as stack:
        env = wrong_credentials(store, tmp_path, stack)
        if name == "s3":
            env["MLFLOW_S3_ENDPOINT_URL"] = store.env["MLFLOW_S3_ENDPOINT_URL"]
        set_env(monkeypatch, env)
        out = kitmlflow("download", store.uri(), "--dest", str(tmp_path / "dest"), "--yes", "--json")
    assert out.code == 3, out.stderr
    message = out.json["error"]["message"]
    expected = {
        "s3": "AWS_SECRET_ACCESS_KEY",
        "azure": "AZURE_STORAGE_CONNECTION_STRING",
        "sftp": "~/.ssh",
    }[name]
    assert expected in message, message
    assert "MLFLOW_TRACKING_USERNAME" not in message  # the tracking server was fine
    assert SECRET not in out.stdout + out.stderr


def test_google_refusing_the_credentials_is_exit_3_naming_what_the_client_reads() -> None:
    """fake-gcs-server accepts any credentials, and every way to make Google's client refuse them goes to Google's
    own token endpoint (it ignores a credentials file's ``token_uri``), which this offline suite never contacts.
    So the refusal is the library's own exception, mapped as the store's transport maps it."""
    import google.auth.exceptions

    from kitmlflow_tui.core.download.transports import store_error
    from kitmlflow_tui.core.errors import AuthError

    refused = google.auth.exceptions.RefreshError("invalid_grant: Token has been expired or revoked.")
    mapped = store_error(refused, "gs://bucket/1/run/artifacts")
    assert isinstance(mapped, AuthError) and mapped.exit_code == 3
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(mapped) and "gs://bucket" in str(mapped)


# -- a download killed half-way ----------------------------------------------------------------------

RATE = 4_000_000  # bytes/s through the relay: the 24 MB file takes about 6 s


def relayed_env(store: Store, relay_port: int, tmp_path: Path) -> tuple[dict[str, str], str]:
    """The store's variables pointed at a slow relay in front of its emulator, and the run's URI."""
    if store.name == "s3":
        return {**store.env, "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{relay_port}"}, store.uri()
    if store.name == "gcs":
        return {**store.env, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{relay_port}"}, store.uri()
    if store.name == "azure":
        return store.extra["azurite"].env(port=relay_port), store.uri()
    if store.name == "sftp":
        return {"HOME": str(store.extra["sftp"].home(tmp_path / "relay-home", port=relay_port))}, store.uri()
    if store.name == "s3-proxied":
        return {}, store.uri(url=f"http://127.0.0.1:{relay_port}")
    raise AssertionError(store.name)


def target_port(store: Store) -> int:
    from urllib.parse import urlsplit

    if store.name == "s3":
        return int(urlsplit(store.env["MLFLOW_S3_ENDPOINT_URL"]).port)
    if store.name == "gcs":
        return int(urlsplit(store.extra["gcs"].url).port)
    if store.name == "azure":
        return store.extra["azurite"].port
    if store.name == "sftp":
        return store.extra["sftp"].port
    return int(urlsplit(store.server_url).port)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["s3", "gcs", "azure", "sftp", "s3-proxied"])
def test_a_download_killed_half_way_resumes_from_the_bytes_on_disk(
    stores: Stores, name: str, kitmlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.get(name)
    dest = tmp_path / "dest"
    part = dest / ".kitmlflow-partial" / (BIG + ".part")
    with ThrottledProxy(target_port(store), RATE) as relay:
        env, uri = relayed_env(store, relay.port, tmp_path)
        child_env = kitmlflow_subprocess_env(**env, KITMLFLOW_CACHE_DIR=str(tmp_path / "cache"))
        command = [str(Path(sys.executable).parent / "kitmlflow"), "download", uri, "--dest", str(dest)]
        command += ["--yes", "--json", "--jobs", "1", "--include", BIG]
        child = subprocess.Popen(command, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 240
            while not (part.exists() and part.stat().st_size >= 4_000_000):
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                assert time.monotonic() < deadline, "the transfer never reached 4 MB"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=30)
    kept = part.stat().st_size
    size = len(content_of(BIG))
    assert 0 < kept < size
    set_env(monkeypatch, store.env)
    out = kitmlflow("download", store.uri(), "--dest", str(dest), "--yes", "--json", "--include", BIG)
    assert out.code == 0, out.stderr
    if name == "s3-proxied":
        # MLflow 3.17's proxy of a remote store answers every request whole and names no version of the object
        # (no ETag, no Last-Modified): nothing shows the kept bytes belong with the rest, so the file starts over
        # (the proxy sends it whole either way).
        assert out.json["downloaded_bytes"] == size
    else:
        assert out.json["downloaded_bytes"] == size - kept
    assert sha256((dest / BIG).read_bytes()) == sha256(content_of(BIG))


@pytest.mark.slow
def test_a_local_store_resumes_a_part_left_on_disk(stores: Stores, kitmlflow, tmp_path: Path) -> None:
    """A local read is too fast to kill half-way: the part (and the journal naming the file's version) that a
    killed run leaves is made by a download cancelled after 5 MB."""

    from kitmlflow_tui.core import pipeline
    from kitmlflow_tui.core.errors import InterruptedByUser
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.core.selection.plan import FilterSpec

    store = stores.get("local")
    dest = tmp_path / "dest"
    part = dest / ".kitmlflow-partial" / (BIG + ".part")
    session = pipeline.plan(parse_reference(store.uri()), FilterSpec(include=(BIG,)))

    class CancelAt5MB(pipeline.Observer):
        moved = 0

        def progress(self, event) -> None:
            self.moved += event.size if event.kind == "bytes" else 0
            if self.moved >= 5_000_000:
                session.cancel.set()

    with pytest.raises(InterruptedByUser):
        pipeline.download(session, dest, jobs=1, observer=CancelAt5MB())
    kept = part.stat().st_size
    assert 5_000_000 <= kept < len(content_of(BIG))
    out = kitmlflow("download", store.uri(), "--dest", str(dest), "--yes", "--json", "--include", BIG)
    assert out.code == 0, out.stderr
    assert out.json["downloaded_bytes"] == len(content_of(BIG)) - kept
    assert sha256((dest / BIG).read_bytes()) == sha256(content_of(BIG))


# -- the generic fallback, over a real store -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s3", "local"])
def test_the_generic_transport_streams_any_range_through_mlflows_client(stores: Stores, name: str, tmp_path) -> None:
    """Stores without a transport of their own (HDFS, DBFS, ...) go through MLflow's ``_download_file``."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from kitmlflow_tui.core.catalogue import ArtifactFile
    from kitmlflow_tui.core.download.transports.generic import GenericTransport

    store = stores.get(name)
    with temp_env(store.env):
        artifact_uri = MlflowClient(store.server_url).get_run(store.run_id).info.artifact_uri
        transport = GenericTransport(get_artifact_repository(artifact_uri), spool_dir=tmp_path / "spool")
        file = ArtifactFile(BIG, len(content_of(BIG)), artifact_uri, BIG)
        data = b"".join(transport.stream(file, 1_000_000, 3_500_000))
    assert data == content_of(BIG)[1_000_000:3_500_000]
    assert not transport.supports_ranges
    assert list((tmp_path / "spool").iterdir()) == []  # the spool is removed
