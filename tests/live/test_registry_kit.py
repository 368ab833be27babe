"""kitmlflow and the real kit sharing registries and credentials, and what kit did, recorded for CI.

With kit (``KIT_BIN`` or kit on the PATH): each tool's login serves the other, kit pulls and unpacks what
kitmlflow pushed, and ``kit push`` of a fixed ModelKit gives the registry digest kitmlflow's push gives.
Without kit, the recorded vectors in ``tests/kit_vectors/registry/`` check the same: the bytes of the
credentials file kit writes, and the registry digests of kit's push of the fixed input.

Regenerate the vectors where kit is installed::

    KIT_BIN=/path/to/kit .venv/bin/python tests/test_registry_kit.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from kitmlflow_tui.core.packing.kit_cli import find_kit, pack_with_kit
from kitmlflow_tui.core.packing.native import pack_native
from kitmlflow_tui.core.registry import Credential, CredentialStore, RegistryClient, RegistryOptions, push_modelkit
from tests.support.kit_storage import kit_home
from tests.support.registry_servers import Registry, module_registry, registry_available, registry_server

VECTORS = Path(__file__).parents[1] / "kit_vectors" / "registry"
HOST_PLACEHOLDER = "REGISTRY-HOST"
USER, PASSWORD = "alice", "kit-and-kitmlflow-pw"
# The fixed input of the push vectors: a model, a part, code and docs, every byte fixed.
FILES: dict[str, bytes] = {
    "model/weights.safetensors": bytes(range(256)) * 4096,
    "model/config.json": b'{"hidden": 8}\n',
    "src/train.py": b"print('train')\n",
    "README.md": b"# fixed input\n",
}
KITFILE = {
    "manifestVersion": "1.0.0",
    "package": {"name": "fixed", "version": "v1", "authors": ["tests"]},
    "model": {
        "name": "fixed-model",
        "path": "model/weights.safetensors",
        "parts": [{"path": "model/config.json"}],
    },
    "code": [{"path": "src"}],
    "docs": [{"path": "README.md"}],
}


def write_input(folder: Path) -> Path:
    for name, content in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def run_kit(kit: str, home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [kit, *args, "--config", str(kit_home(home)), "--progress", "none"],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def kit_version(kit: str) -> str:
    output = subprocess.run([kit, "version"], capture_output=True, text=True, timeout=60).stdout
    return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Version:"))


def registry_manifest(registry: Registry, repository: str, tag: str) -> tuple[str, dict]:
    with RegistryClient(registry.host, RegistryOptions(plain_http=True), None) as client:
        client.ping()
        manifest = client.get_manifest(repository, tag)
    assert manifest is not None
    return manifest.digest, manifest.json()


def vector(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kit() -> str:
    found = find_kit()
    if found is None:
        pytest.skip("the kit binary was not found (set KIT_BIN) - the recorded vectors cover CI")
    return found


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-open")


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from module_registry(tmp_path_factory, "reg-kit-basic", users={USER: PASSWORD})


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path


# -- without kit: the recorded vectors ----------------------------------------------------------------------
def test_kitmlflow_writes_the_credentials_file_kit_writes(tmp_path: Path) -> None:
    recorded = vector("credentials.json")
    store = CredentialStore(tmp_path / "credentials.json")
    store.put("127.0.0.1:5000", Credential(USER, PASSWORD))
    assert (tmp_path / "credentials.json").read_text() == recorded["after_login"].replace(
        HOST_PLACEHOLDER, "127.0.0.1:5000"
    )
    assert store.delete("127.0.0.1:5000")
    assert (tmp_path / "credentials.json").read_text() == recorded["after_logout"]
    kit_file = tmp_path / "kit-wrote.json"
    kit_file.write_text(recorded["after_login"].replace(HOST_PLACEHOLDER, "r.example.com"))
    found = CredentialStore(kit_file).get("r.example.com")
    assert found is not None and (found.credential.username, found.credential.password) == (USER, PASSWORD)


def test_kitmlflow_push_gives_the_registry_digest_kit_push_gave(open_registry: Registry, homes: Path) -> None:
    recorded = vector("push.json")
    folder = write_input(homes / "ctx")
    reference = f"{open_registry.host}/vectors/fixed:v1"
    packed = pack_native(
        folder,
        KITFILE,
        parse_modelkit_reference(reference),
        storage_root=homes / "home",
        cli_version=recorded["kit_version"],
    )
    pushed = push_modelkit(
        parse_modelkit_reference(reference), storage_root=homes / "home", options=RegistryOptions(plain_http=True)
    )
    assert pushed.digest == packed.digest == recorded["manifest_digest"]
    digest, manifest = registry_manifest(open_registry, "vectors/fixed", "v1")
    assert digest == recorded["manifest_digest"]
    assert manifest["config"]["digest"] == recorded["config_digest"]
    assert [(layer["mediaType"], layer["digest"], layer["size"]) for layer in manifest["layers"]] == [
        tuple(layer) for layer in recorded["layers"]
    ]


# -- with kit --------------------------------------------------------------------------------------------
def test_kit_login_serves_kitmlflow_and_kitmlflow_login_serves_kit(
    kit: str, basic_registry: Registry, homes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_input(homes / "ctx")
    kit_side = homes / "kit-home"
    run_kit(kit, kit_side, "login", basic_registry.host, "-u", USER, "--password-stdin", "--plain-http", stdin=PASSWORD)
    reference = f"{basic_registry.host}/interop/by-kit-login:v1"
    packed = pack_native(folder, KITFILE, parse_modelkit_reference(reference), storage_root=kit_side)
    pushed = push_modelkit(
        parse_modelkit_reference(reference), storage_root=kit_side, credentials=CredentialStore.default(kit_side)
    )
    assert pushed.digest == packed.digest

    from click.testing import CliRunner

    from kitmlflow_tui.cli import cli

    ours = homes / "kitmlflow-home"
    monkeypatch.setenv("KITOPS_HOME", str(ours))
    result = CliRunner().invoke(cli, ["login", basic_registry.host, "-u", USER, "--password-stdin"], input=PASSWORD)
    assert result.exit_code == 0, result.output
    assert (ours / "credentials.json").read_text() == (kit_side / "credentials.json").read_text()
    reference = f"{basic_registry.host}/interop/by-kitmlflow-login:v1"
    kit_home(ours)
    pack_with_kit(folder, KITFILE, parse_modelkit_reference(reference), kit_bin=kit, storage_root=ours)
    run_kit(kit, ours, "push", reference, "--plain-http")
    assert registry_manifest_authorised(basic_registry, "interop/by-kitmlflow-login")


def registry_manifest_authorised(registry: Registry, repository: str) -> bool:
    store = CredentialStore.default()
    with RegistryClient(registry.host, RegistryOptions(plain_http=True), store.get(registry.host)) as client:
        client.ping()
        return client.get_manifest(repository, "v1") is not None


def test_kit_pulls_and_unpacks_what_kitmlflow_pushed(kit: str, open_registry: Registry, homes: Path) -> None:
    folder = write_input(homes / "ctx")
    reference = f"{open_registry.host}/interop/pulled:v1"
    packed = pack_native(folder, KITFILE, parse_modelkit_reference(reference), storage_root=homes / "ours")
    push_modelkit(
        parse_modelkit_reference(reference), storage_root=homes / "ours", options=RegistryOptions(plain_http=True)
    )
    puller = homes / "kit-pull"
    run_kit(kit, puller, "pull", reference, "--plain-http")
    listed = json.loads(run_kit(kit, puller, "list", "--format", "json").stdout)
    assert [(item["repo"], item["digest"]) for item in listed] == [
        (f"{open_registry.host}/interop/pulled", packed.digest)
    ]
    out = homes / "unpacked"
    run_kit(kit, puller, "unpack", reference, "-d", str(out))
    for name, content in FILES.items():
        assert (out / name).read_bytes() == content, name


def test_kit_push_gives_the_same_registry_digest(kit: str, open_registry: Registry, homes: Path) -> None:
    recorded = record_push(kit, open_registry, homes)
    folder = write_input(homes / "ctx-native")
    reference = f"{open_registry.host}/compare/native:v1"
    pack_native(
        folder,
        KITFILE,
        parse_modelkit_reference(reference),
        storage_root=homes / "native",
        cli_version=kit_version(kit),
    )
    pushed = push_modelkit(
        parse_modelkit_reference(reference), storage_root=homes / "native", options=RegistryOptions(plain_http=True)
    )
    assert pushed.digest == recorded["manifest_digest"]
    assert recorded == vector("push.json"), "kit's push changed: regenerate the vectors (see the module doc)"


def test_kit_needs_plain_http_even_for_loopback(kit: str, open_registry: Registry, homes: Path) -> None:
    # kit 1.7 has no loopback exemption: without --plain-http it speaks HTTPS to 127.0.0.1 too.
    folder = write_input(homes / "ctx")
    reference = f"{open_registry.host}/compare/https-only:v1"
    home = kit_home(homes / "kit")
    pack_with_kit(folder, KITFILE, parse_modelkit_reference(reference), kit_bin=kit, storage_root=home)
    done = subprocess.run(
        [kit, "push", reference, "--config", str(home), "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "HTTP response to HTTPS client" in done.stdout + done.stderr


# -- recording -------------------------------------------------------------------------------------------
def record_push(kit: str, registry: Registry, work: Path) -> dict:
    """kit pack + kit push of the fixed input; what the registry then holds."""
    folder = write_input(work / "ctx-kit")
    reference = f"{registry.host}/compare/kit:v1"
    home = kit_home(work / "kit-push")
    pack_with_kit(folder, KITFILE, parse_modelkit_reference(reference), kit_bin=kit, storage_root=home)
    run_kit(kit, home, "push", reference, "--plain-http")
    digest, manifest = registry_manifest(registry, "compare/kit", "v1")
    return {
        "kit_version": kit_version(kit),
        "manifest_digest": digest,
        "config_digest": manifest["config"]["digest"],
        "layers": [[layer["mediaType"], layer["digest"], layer["size"]] for layer in manifest["layers"]],
    }


def record_credentials(kit: str, registry: Registry, work: Path) -> dict:
    home = kit_home(work / "kit-login")
    run_kit(kit, home, "login", registry.host, "-u", USER, "--password-stdin", "--plain-http", stdin=PASSWORD)
    after_login = (home / "credentials.json").read_text().replace(registry.host, HOST_PLACEHOLDER)
    run_kit(kit, home, "logout", registry.host)
    return {"after_login": after_login, "after_logout": (home / "credentials.json").read_text()}


def record() -> None:
    kit = find_kit()
    if kit is None or registry_available():
        sys.exit("needs KIT_BIN and docker-registry")
    VECTORS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with registry_server(work / "open") as registry:
            push = record_push(kit, registry, work)
        with registry_server(work / "basic", users={USER: PASSWORD}) as registry:
            credentials = record_credentials(kit, registry, work)
    for name, value in (("push.json", push), ("credentials.json", credentials)):
        (VECTORS / name).write_text(json.dumps(value, indent=2) + "\n")
        print(f"wrote {VECTORS / name}")


if __name__ == "__main__":
    os.environ.setdefault("DOCKER_CONFIG", tempfile.mkdtemp())
    record()
