"""``kitmlflow sync``: a registered model of the real ``mlflow server`` kept in step with a real registry.

The registry is Debian's ``docker-registry`` with token (Bearer) auth; what a sync sent is counted in its own
access log. Each test registers a model of its own (MLflow 2-style versions: ``runs:/RUN/model`` of a run
whose artifacts hold an ``MLmodel`` folder) and syncs it into a repository of its own.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitmlflow_tui.core.errors import ServerUnreachableError
from kitmlflow_tui.core.provenance import read_provenance
from tests.support.cli import kitmlflow_subprocess_env, run_cli
from tests.support.hostile_registry import RegistryScenario, Seen, hostile_registry
from tests.support.hostile_server import MODEL_NAME, Content, Scenario, hostile_server
from tests.support.hostile_server import file as hostile_file
from tests.support.hostile_server import folder as hostile_folder
from tests.support.live import LiveServer
from tests.support.registered_models import (
    MLMODEL,
    blobs_of,
    copy_tag,
    make_model,
    remote_manifest,
    remote_provenance,
    writes,
)
from tests.support.registry_servers import (
    Registry,
    TokenIssuer,
    manifest_puts,
    module_registry,
    registry_available,
    uploaded_digest_list,
    uploaded_digests,
    uploads,
)

PASSWORD = "sync-Pa55word!"
needs_registry = pytest.mark.skipif(registry_available() is not None, reason=registry_available() or "")


# -- a version listing that does not end (the hostile stand-in server) -----------------------------------
@pytest.mark.timeout(120)
def test_a_version_listing_that_repeats_its_page_token_is_refused(kitmlflow) -> None:
    with hostile_server(Scenario(page_token=lambda page: "same-token")) as server:
        out = kitmlflow(
            "sync", f"mlflow://127.0.0.1:{server.port}/models/{MODEL_NAME}", "--to", "127.0.0.1:9/x", "--yes", "--json"
        )
    assert out.code == 6, out.stderr
    assert "sent a page token it had sent before while listing the versions" in out.json["error"]["message"]
    assert server.pages_sent["model-versions"] == 2


@pytest.mark.timeout(120)
def test_a_version_listing_without_end_stops_at_the_page_limit() -> None:
    from kitmlflow_tui.core.catalogue import Catalogue

    scenario = Scenario(page_token=lambda page: f"token-{page}")
    with hostile_server(scenario) as server, pytest.raises(ServerUnreachableError, match="in more than 5 pages"):
        Catalogue(server.url).list_model_versions(MODEL_NAME, max_pages=5)
    assert server.pages_sent["model-versions"] == 5


@pytest.mark.timeout(120)
def test_a_version_listing_past_its_deadline_is_refused() -> None:
    from kitmlflow_tui.core.catalogue import Catalogue

    scenario = Scenario(page_token=lambda page: f"token-{page}")
    with hostile_server(scenario) as server, pytest.raises(ServerUnreachableError, match="took more than 0 s"):
        Catalogue(server.url).list_model_versions(MODEL_NAME, deadline_seconds=0.0)
    assert server.pages_sent["model-versions"] == 1


# -- a registered model on the real mlflow server ----------------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    issuer = TokenIssuer({"alice": PASSWORD}, grant=("pull", "push", "delete"))
    yield from module_registry(tmp_path_factory, "reg-sync", issuer=issuer)


@pytest.fixture
def logged_in(isolated_env: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials for the registry in kit's store of the isolated kit home."""
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_env / "docker"))
    out = run_cli("login", registry.host, "-u", "alice", "-p", PASSWORD)
    assert out.code == 0, out.stderr
    return isolated_env


def sync_args(model_uri: str, registry: Registry, repository: str, *extra: str) -> list[str]:
    to = f"{registry.host}/{repository}"
    return ["sync", model_uri, "--to", to, "--yes", "--json", "--packer", "native", *extra]


def sync(model_uri: str, registry: Registry, repository: str, *extra: str):
    return run_cli(*sync_args(model_uri, registry, repository, *extra))


def actions(out) -> list[tuple[str, str, str | None]]:
    return [(r["action"], r["version"], r["tag"]) for r in out.json["records"]]


@needs_registry
@pytest.mark.timeout(600)
def test_sync_pushes_every_version_and_the_alias_then_nothing_then_only_what_changed(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "sync-story")
    model.alias("champion", "2")
    repository = "team/story"

    mark = registry.mark()
    first = sync(model.uri(), registry, repository)
    assert first.code == 0, first.stderr
    assert actions(first) == [
        ("pushed", "1", "v1"),
        ("pushed", "2", "v2"),
        ("pushed", "3", "v3"),
        ("tag_created", "2", "champion"),
    ]
    assert first.json["summary"]["pushed"] == 3 and first.json["exit_code"] == 0
    # the record that champion is this model's alias tag is written before the tag
    assert manifest_puts(registry.since(mark)) == ["v1", "v2", "v3", "kitmlflow.alias-tags", "champion"]
    for version in ("1", "2", "3"):
        provenance = remote_provenance(registry, repository, f"v{version}")
        assert provenance["registered_model"]["name"] == model.name
        assert provenance["registered_model"]["version"] == version
        assert provenance["run"]["id"] == model.runs[version]
    champion = remote_manifest(registry, repository, "champion")
    assert champion is not None and champion[0] == remote_manifest(registry, repository, "v2")[0]  # type: ignore[index]
    pushed = first.json["records"][0]
    assert pushed["uploaded_blobs"] >= 2 and pushed["uploaded_bytes"] > 20_000 and pushed["size"] > 20_000
    assert pushed["selected_bytes"] == len(MLMODEL) + 20_001 + len(f"{model.name} version 1\n")
    # Nothing of the sync stays on disk: not in the user's kit storage, not in the cache.
    assert not (logged_in / "kitops" / "storage").exists()
    cache = logged_in / "cache"
    assert [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []

    mark = registry.mark()
    second = sync(model.uri(), registry, repository)
    assert second.code == 0, second.stderr
    assert {a for a, _, _ in actions(second)} == {"skipped"}
    assert all(r["reason"].startswith("in step") for r in second.json["records"])
    assert uploads(registry.since(mark)) == [] and writes(registry.since(mark)) == [], "a second sync sends nothing"

    before = {tag: remote_manifest(registry, repository, tag) for tag in ("v1", "v2", "v3")}
    known_blobs = set().union(*(blobs_of(held[1]) for held in before.values() if held))
    four = model.add_version()
    model.alias("champion", four)
    mark = registry.mark()
    third = sync(model.uri(), registry, repository)
    assert third.code == 0, third.stderr
    assert actions(third) == [
        ("skipped", "1", "v1"),
        ("skipped", "2", "v2"),
        ("skipped", "3", "v3"),
        ("pushed", "4", "v4"),
        ("tag_moved", "4", "champion"),
    ]
    sent = registry.since(mark)
    assert manifest_puts(sent) == ["v4", "champion"], "one ModelKit pushed, one tag moved"
    v4 = remote_manifest(registry, repository, "v4")
    assert v4 is not None
    assert uploaded_digests(sent) == blobs_of(v4[1]) - known_blobs
    assert remote_manifest(registry, repository, "champion")[0] == v4[0]  # type: ignore[index]
    assert all(remote_manifest(registry, repository, tag) == held for tag, held in before.items())

    # The alias alone: its version is in step and its tag points at it; the listing pages through.
    mark = registry.mark()
    alias_only = sync(model.uri("@champion"), registry, repository)
    assert alias_only.code == 0, alias_only.stderr
    assert actions(alias_only) == [("skipped", "4", "v4"), ("skipped", "4", "champion")]
    assert writes(registry.since(mark)) == []
    from kitmlflow_tui.core.catalogue import Catalogue

    listed = Catalogue(live.url).list_model_versions(model.name, page_size=2)
    assert [(v.version, v.run_id) for v in listed] == sorted(model.runs.items(), key=lambda item: int(item[0]))


@needs_registry
@pytest.mark.timeout(600)
def test_a_tag_holding_another_version_is_a_conflict_left_alone_unless_forced(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    first_model = make_model(live, "sync-conflict-a", 1)
    other_model = make_model(live, "sync-conflict-b", 2)
    repository = "team/conflict"
    assert sync(first_model.uri(), registry, repository).code == 0
    held = remote_manifest(registry, repository, "v1")
    assert held is not None

    mark = registry.mark()
    out = sync(other_model.uri(), registry, repository)
    assert out.code == 9, out.stderr
    assert actions(out) == [("conflict", "1", "v1"), ("pushed", "2", "v2")], out.json["records"]
    conflict = out.json["records"][0]
    assert "sync-conflict-a version 1" in conflict["reason"] and "--force" in conflict["reason"]
    assert conflict["exit_code"] == 9 and conflict["digest"] == held[0]
    assert "v1" not in manifest_puts(registry.since(mark))
    assert remote_manifest(registry, repository, "v1") == held, "a conflicting tag is not overwritten"

    dry = sync(other_model.uri(), registry, repository, "--dry-run")
    assert dry.code == 9 and actions(dry)[0] == ("conflict", "1", "v1")

    forced = sync(other_model.uri(), registry, repository, "--force")
    assert forced.code == 0, forced.stderr
    assert actions(forced) == [("pushed", "1", "v1"), ("skipped", "2", "v2")]
    assert "replacing sync-conflict-a version 1" in forced.json["records"][0]["reason"]
    assert remote_provenance(registry, repository, "v1")["registered_model"]["name"] == other_model.name


@needs_registry
@pytest.mark.timeout(600)
def test_a_modelpack_sync_is_in_step_with_itself_and_a_modelkit_tag_is_a_conflict(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    """A ModelPack tag is read back through the Kitfile its manifest carries; the other format of the same version
    is a conflict (replacing it is --force's), both ways."""
    from kitmlflow_tui.core.packing.modelpack import ARTIFACT_TYPE, carried_kitfile

    model = make_model(live, "sync-modelpack", 1)
    repository = "team/modelpack"
    first = sync(model.uri(), registry, repository, "--format", "modelpack")
    assert first.code == 0, first.stderr
    assert actions(first) == [("pushed", "1", "v1")]
    held = remote_manifest(registry, repository, "v1")
    assert held is not None and held[1]["artifactType"] == ARTIFACT_TYPE
    provenance = read_provenance(carried_kitfile(held[1]) or {})
    assert provenance is not None and provenance.registered_model is not None
    assert (provenance.registered_model.name, provenance.run.id) == (model.name, model.runs["1"])

    mark = registry.mark()
    second = sync(model.uri(), registry, repository, "--format", "modelpack")
    assert second.code == 0 and actions(second) == [("skipped", "1", "v1")]
    assert second.json["records"][0]["reason"].startswith("in step") and writes(registry.since(mark)) == []

    as_modelkit = sync(model.uri(), registry, repository)
    assert as_modelkit.code == 9 and actions(as_modelkit) == [("conflict", "1", "v1")]
    assert "as a ModelPack" in as_modelkit.json["records"][0]["reason"]
    assert remote_manifest(registry, repository, "v1") == held
    forced = sync(model.uri(), registry, repository, "--force")
    assert forced.code == 0 and actions(forced) == [("pushed", "1", "v1")]
    assert "artifactType" not in remote_manifest(registry, repository, "v1")[1]  # type: ignore[index]
    back = sync(model.uri(), registry, repository, "--format", "modelpack")
    assert back.code == 9 and actions(back) == [("conflict", "1", "v1")], "a ModelKit tag is a ModelPack's conflict"


@needs_registry
@pytest.mark.timeout(300)
def test_a_tag_holding_the_same_version_from_another_run_is_a_conflict(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    # What a second tracking server with a model of the same name would have pushed: same name and version,
    # another run. Made here with `import --kitfile` (the Kitfile, and so the config, exactly as written).
    model = make_model(live, "sync-other-run", 1)
    repository = "team/other-run"
    kitfile = logged_in / "Kitfile"
    provenance = {"run": {"id": "f" * 32}, "registered_model": {"name": model.name, "version": "1"}}
    kitfile.write_text(
        json.dumps(
            {
                "manifestVersion": "1.0.0",
                "package": {"name": "other-run"},
                "model": {"name": "readme", "path": "README.md", "parameters": {"mlflow": provenance}},
            }
        )
    )
    reference = f"{registry.host}/{repository}:v1"
    imported = run_cli(
        "import", live.uri(), "-t", reference, "--yes", "--json", "--packer", "native", "--push",
        "--include", "README.md", "--kitfile", str(kitfile), "--allow-no-model",
    )  # fmt: skip
    assert imported.code == 0, imported.stderr
    out = sync(model.uri(), registry, repository)
    assert out.code == 9, out.stderr
    assert actions(out) == [("conflict", "1", "v1")]
    assert f"(run {'f' * 32})" in out.json["records"][0]["reason"]
    assert remote_manifest(registry, repository, "v1")[0] == imported.json["digest"]  # type: ignore[index]


@needs_registry
@pytest.mark.timeout(600)
def test_versions_of_unfinished_or_deleted_runs_and_deleted_versions_are_reported_and_skipped(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "sync-status", 0)
    model.add_version()
    model.add_version(status="RUNNING")
    model.add_version()
    model.add_version()
    model.add_version()
    client = model.client()
    client.delete_model_version(model.name, "3")
    client.delete_run(model.runs["4"])
    repository = "team/status"

    out = sync(model.uri(), registry, repository)
    assert out.code == 0, out.stderr  # every importable version is in step
    assert actions(out) == [
        ("pushed", "1", "v1"),
        ("skipped", "2", "v2"),
        ("skipped", "3", None),
        ("skipped", "4", "v4"),
        ("pushed", "5", "v5"),
    ]
    reasons = {r["version"]: r["reason"] for r in out.json["records"]}
    assert "RUNNING, not FINISHED" in reasons["2"]
    assert "deleted from the MLflow model registry" in reasons["3"]
    assert "deleted" in reasons["4"]
    assert remote_manifest(registry, repository, "v2") is None and remote_manifest(registry, repository, "v4") is None

    named = sync(model.uri("/2"), registry, repository)
    assert named.code == 5, named.stderr
    assert actions(named) == [("failed", "2", "v2")]
    gone = sync(model.uri("/3"), registry, repository)
    assert gone.code == 4, gone.stderr


@needs_registry
@pytest.mark.timeout(300)
def test_aliases_that_cannot_be_their_own_tag_are_reported(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "sync-odd-aliases", 2)
    model.alias("-odd", "1")  # MLflow takes it; kit refuses a tag that starts with '-'
    model.alias("1", "2")  # with --tag-template {version}, "1" is version 1's tag
    model.alias("_ok", "2")
    repository = "team/odd-aliases"
    out = sync(model.uri(), registry, repository, "--tag-template", "{version}")
    assert out.code == 9, out.stderr
    assert actions(out) == [
        ("pushed", "1", "1"),
        ("pushed", "2", "2"),
        ("skipped", "1", None),
        ("conflict", "2", "1"),
        ("tag_created", "2", "_ok"),
    ]
    assert "cannot be a tag" in out.json["records"][2]["reason"]
    assert "is the tag of version 1" in out.json["records"][3]["reason"]
    assert remote_provenance(registry, repository, "1")["registered_model"]["version"] == "1"


def deletes(entries: list[tuple[str, str, int]]) -> list[str]:
    """The manifests the registry deleted (their digests)."""
    return [
        path.rsplit("/manifests/", 1)[1] for method, path, status in entries if method == "DELETE" and status == 202
    ]


@needs_registry
@pytest.mark.timeout(600)
def test_the_tag_of_a_deleted_alias_is_reported_then_pruned_and_nothing_else_goes(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "sync-prune", 2)
    model.alias("champion", "2")
    model.alias("staging", "1")
    repository = "team/prune"
    first = sync(model.uri(), registry, repository)
    assert first.code == 0, first.stderr
    assert actions(first)[2:] == [("tag_created", "2", "champion"), ("tag_created", "1", "staging")]
    v2 = remote_manifest(registry, repository, "v2")
    assert v2 is not None and remote_manifest(registry, repository, "champion")[0] == v2[0]  # type: ignore[index]
    by_hand = copy_tag(registry, repository, "v2", "prod")  # the same manifest, tagged by someone else
    assert by_hand == v2[0]

    model.client().delete_registered_model_alias(model.name, "champion")
    mark = registry.mark()
    reported = sync(model.uri(), registry, repository)
    assert reported.code == 0, reported.stderr
    assert actions(reported)[-1] == ("stale_alias", "2", "champion")
    stale = reported.json["records"][-1]
    assert stale["digest"] == v2[0] and "--prune-aliases" in stale["reason"]
    assert reported.json["summary"]["stale_alias"] == 1
    assert "stale alias tags left" in reported.stderr + reported.stdout
    assert writes(registry.since(mark)) == [], "without --prune-aliases a stale alias is only reported"

    dry = sync(model.uri(), registry, repository, "--prune-aliases", "--dry-run")
    assert dry.code == 0 and actions(dry)[-1] == ("stale_alias", "2", "champion")
    assert "would delete" in dry.json["records"][-1]["reason"]
    assert writes(registry.since(mark)) == []

    pruned = sync(model.uri(), registry, repository, "--prune-aliases")
    assert pruned.code == 0, pruned.stderr
    assert actions(pruned)[-1] == ("stale_alias", "2", "champion")
    assert pruned.json["records"][-1]["digest"] is None and "deleted" in pruned.json["records"][-1]["reason"]
    assert remote_manifest(registry, repository, "champion") is None
    assert remote_manifest(registry, repository, "v2") == v2, "the version's tag stays"
    assert remote_manifest(registry, repository, "prod") == v2, "a tag kitmlflow did not make stays"
    assert remote_manifest(registry, repository, "staging") is not None
    assert v2[0] not in deletes(registry.since(mark)), "the shared manifest itself is never deleted"

    mark = registry.mark()
    again = sync(model.uri(), registry, repository, "--prune-aliases")
    assert again.code == 0, again.stderr
    assert {action for action, _, _ in actions(again)} == {"skipped"}
    assert writes(registry.since(mark)) == []


@needs_registry
@pytest.mark.timeout(600)
def test_pruning_on_a_registry_that_does_not_delete_says_so_and_leaves_the_tag(
    live: LiveServer, tmp_path: Path, isolated_env: Path
) -> None:
    from tests.support.registry_servers import registry_server

    model = make_model(live, "sync-no-delete", 1)
    model.alias("champion", "1")
    repository = "team/no-delete"
    with registry_server(tmp_path / "reg", delete_enabled=False) as plain:
        assert sync(model.uri(), plain, repository).code == 0
        held = remote_manifest(plain, repository, "champion")
        model.client().delete_registered_model_alias(model.name, "champion")
        out = sync(model.uri(), plain, repository, "--prune-aliases")
        assert out.code == 9, out.stderr
        stale = out.json["records"][-1]
        assert (stale["action"], stale["tag"], stale["exit_code"]) == ("stale_alias", "champion", 9)
        assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in stale["hint"]
        assert remote_manifest(plain, repository, "champion") == held, "the tag is untouched"


@needs_registry
@pytest.mark.timeout(600)
def test_dry_run_says_what_would_move_with_sizes_and_touches_nothing(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "sync-dry", 2)
    model.alias("champion", "1")
    repository = "team/dry"
    mark = registry.mark()
    out = run_cli("sync", model.uri("@champion"), "--to", f"{registry.host}/{repository}", "--dry-run", "--json")
    assert out.code == 0, out.stderr
    assert actions(out) == [("would_push", "1", "v1"), ("would_move_tag", "1", "champion")]
    assert out.json["dry_run"] is True
    selected = out.json["records"][0]["selected_bytes"]
    assert selected == len(MLMODEL) + 20_001 + len(f"{model.name} version 1\n")
    assert writes(registry.since(mark)) == [], "a dry run only reads"
    assert not (logged_in / "cache").exists() and not (logged_in / "kitops" / "storage").exists()

    filtered = run_cli(
        "sync", model.uri(), "--to", f"{registry.host}/{repository}", "--dry-run", "--json", "--exclude", "notes.txt"
    )
    assert filtered.code == 0, filtered.stderr
    assert filtered.json["records"][0]["selected_bytes"] == selected - len(f"{model.name} version 1\n")

    pushed = sync(model.uri("/2"), registry, repository, "--exclude", "notes.txt")
    assert pushed.code == 0, pushed.stderr
    assert remote_provenance(registry, repository, "v2")["filter"]["exclude"] == ["notes.txt"]


# -- processes: killed, and two at once ------------------------------------------------------------------------
def cli_process(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "kitmlflow_tui.cli", *args]


def process_env(root: Path) -> dict[str, str]:
    return kitmlflow_subprocess_env(
        KITOPS_HOME=str(root / "kitops"), KITMLFLOW_CACHE_DIR=str(root / "cache"), DOCKER_CONFIG=str(root / "docker")
    )


@needs_registry
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_sync_killed_mid_push_is_finished_by_the_next(live: LiveServer, registry: Registry, logged_in: Path) -> None:
    model = make_model(live, "sync-killed", 1)
    model.add_version(big=200_000_000)
    repository = "team/killed"
    command = cli_process(sync_args(model.uri(), registry, repository))
    proc = subprocess.Popen(
        command, env=process_env(logged_in), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        while registry.upload_data_bytes() < 10_000_000:  # version 2's big layer is on its way
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert remote_manifest(registry, repository, "v1") is not None
    assert remote_manifest(registry, repository, "v2") is None

    mark = registry.mark()
    rerun = subprocess.run(command, env=process_env(logged_in), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(rerun.stdout)
    assert [(r["action"], r["version"]) for r in doc["records"]] == [("skipped", "1"), ("pushed", "2")]
    finished = doc["records"][1]
    assert finished["downloaded_bytes"] == 0, "the ModelKit the killed sync packed is pushed as it is"
    held = remote_manifest(registry, repository, "v2")
    assert held is not None and held[0] == finished["digest"]
    sent = uploaded_digest_list(registry.since(mark))
    assert set(sent) <= blobs_of(held[1]) and len(sent) == finished["uploaded_blobs"]
    big_layer = max(held[1]["layers"], key=lambda layer: layer["size"])
    assert big_layer["digest"] in sent
    assert [p for p in (logged_in / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


@needs_registry
@pytest.mark.timeout(600)
def test_two_syncs_at_once_push_each_blob_once(live: LiveServer, registry: Registry, logged_in: Path) -> None:
    model = make_model(live, "sync-twice")
    repository = "team/twice"
    command = cli_process(sync_args(model.uri(), registry, repository))
    mark = registry.mark()
    procs = [
        subprocess.Popen(command, env=process_env(logged_in), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    records = [record for stdout, _ in outputs for record in json.loads(stdout)["records"]]
    assert sorted(r["action"] for r in records) == ["pushed"] * 3 + ["skipped"] * 3
    sent = registry.since(mark)
    assert sorted(manifest_puts(sent)) == ["v1", "v2", "v3"], "each tag is written once"
    digests = uploaded_digest_list(sent)
    assert len(digests) == len(set(digests)), "no blob is uploaded twice"


@needs_registry
@pytest.mark.timeout(300)
def test_on_a_terminal_without_yes_the_sync_shows_what_it_would_do_and_asks(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    import pty

    model = make_model(live, "sync-asks", 1)
    repository = "team/asks"
    command = cli_process(["sync", model.uri(), "--to", f"{registry.host}/{repository}", "--packer", "native"])
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, env=process_env(logged_in), stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    answered = False
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal: it exited
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Go ahead?" in seen:
                assert remote_manifest(registry, repository, "v1") is None, "nothing moves before the answer"
                os.write(leader, b"y\r")
                answered = True
    finally:
        os.close(leader)
    assert proc.wait(timeout=120) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert answered and "would push" in text and "pushed" in text.split("Go ahead?", 1)[1]
    assert remote_manifest(registry, repository, "v1") is not None


@needs_registry
@pytest.mark.kit
@pytest.mark.timeout(300)
def test_sync_packs_with_the_real_kit_into_its_own_kit_home(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    from kitmlflow_tui.core.packing.kit_cli import find_kit

    if find_kit() is None:
        pytest.skip("the real kit binary is not installed (set KIT_BIN or put kit on PATH; see README)")
    model = make_model(live, "sync-kit", 1)
    by_kit = sync(model.uri(), registry, "team/by-kit", "--packer", "kit")
    assert by_kit.code == 0, by_kit.stderr
    assert actions(by_kit) == [("pushed", "1", "v1")]
    assert not (logged_in / "kitops" / "storage").exists(), "kit packed into the sync's own kit home"
    held = remote_manifest(registry, "team/by-kit", "v1")
    assert held is not None and held[0] == by_kit.json["records"][0]["digest"]
    assert remote_provenance(registry, "team/by-kit", "v1")["registered_model"]["version"] == "1"


# -- leftovers, gaps, and import --push onto a sync's tags ------------------------------------------------------------
@needs_registry
@pytest.mark.timeout(600)
def test_a_sync_killed_after_its_manifest_put_leaves_nothing_after_the_next(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    # The registry stores the manifest, then its answer is held: the sync is killed with its private kit home
    # (the whole ModelKit) still on disk. The next sync finds the version in step and must remove that home.
    model = make_model(live, "sync-leftover", 1)
    repository = "team/leftover"

    def manifest_put(seen: Seen) -> bool:
        return seen.method == "PUT" and "/manifests/" in seen.path

    scenario = RegistryScenario(upstream=registry, stall=manifest_put, stall_after_forwarding=True)
    with hostile_registry(scenario) as front:
        assert run_cli("login", front.host, "-u", "alice", "-p", PASSWORD).code == 0
        args = ["sync", model.uri(), "--to", f"{front.host}/{repository}", "--yes", "--json", "--packer", "native"]
        proc = subprocess.Popen(
            cli_process(args), env=process_env(logged_in), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert front.stalled.wait(240), proc.communicate()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
        assert remote_manifest(registry, repository, "v1") is not None, "the registry holds what the killed sync sent"
        sync_folder = logged_in / "cache" / "sync"
        left = [p for p in sync_folder.rglob("kit-*") if p.is_dir()]
        assert len(left) == 1 and (left[0] / "storage").is_dir(), "the killed sync left its ModelKit"

        scenario.stall = lambda seen: False
        rerun = subprocess.run(
            cli_process(args), env=process_env(logged_in), capture_output=True, text=True, timeout=300
        )
    assert rerun.returncode == 0, rerun.stderr
    assert [(r["action"], r["version"]) for r in json.loads(rerun.stdout)["records"]] == [("skipped", "1")]
    assert [p for p in sync_folder.rglob("*") if not p.name.endswith(".lock")] == [], "no leftover stays"


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a run-away list fails here, not on the machine


@needs_registry
@pytest.mark.timeout(300)
def test_a_version_listing_with_a_huge_gap_is_one_record(registry: Registry, logged_in: Path) -> None:
    def listing(folder: str) -> list[dict]:
        return {"": [hostile_folder("model")], "model": [hostile_file("MLmodel", len(MLMODEL))]}.get(folder, [])

    scenario = Scenario(
        listing=listing, contents={"model/MLmodel": Content(MLMODEL)}, model_versions=("1", "3", "1000000000000")
    )
    with hostile_server(scenario) as server:
        args = ["sync", f"mlflow://127.0.0.1:{server.port}/models/{MODEL_NAME}", "--to", f"{registry.host}/team/gaps"]
        done = subprocess.run(
            cli_process([*args, "--dry-run", "--json"]),
            env=process_env(logged_in),
            capture_output=True,
            text=True,
            timeout=240,
            preexec_fn=limited_memory,
        )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["records"]
    assert [(r["action"], r["version"], r["tag"]) for r in records] == [
        ("would_push", "1", "v1"),
        ("skipped", "2", None),
        ("would_push", "3", "v3"),
        ("skipped", "4-999999999999", None),
        ("would_push", "1000000000000", "v1000000000000"),
    ]
    assert "999,999,999,996" in records[3]["reason"] and "deleted" in records[3]["reason"]


@needs_registry
@pytest.mark.timeout(600)
def test_import_push_onto_a_tag_holding_other_content_is_a_conflict_unless_forced(
    live: LiveServer, registry: Registry, logged_in: Path
) -> None:
    model = make_model(live, "import-conflict", 2)
    repository = "team/import-conflict"
    assert sync(model.uri("/1"), registry, repository).code == 0
    held = remote_manifest(registry, repository, "v1")
    assert held is not None

    def push(uri: str, tag: str, *extra: str):
        reference = f"{registry.host}/{repository}:{tag}"
        return run_cli("import", uri, "-t", reference, "--yes", "--json", "--packer", "native", "--push", *extra)

    # The run of version 2, imported directly, onto the tag sync wrote for version 1: another run, no version.
    run_of_two = f"mlflow://{live.host}/runs/{model.runs['2']}"
    mark = registry.mark()
    refused = push(run_of_two, "v1")
    assert refused.code == 9, refused.stderr
    message = refused.json["error"]["message"]
    assert "import-conflict version 1" in message and "--force" in message and "kept in local storage" in message
    assert manifest_puts(registry.since(mark)) == [] and uploads(registry.since(mark)) == []
    assert remote_manifest(registry, repository, "v1") == held, "the tag is left as it is"

    # The same registered version again (another Kitfile tag, so another digest): the same content, no conflict.
    again = push(model.uri("/1"), "v1")
    assert again.code == 0, again.stderr
    assert remote_provenance(registry, repository, "v1")["registered_model"]["version"] == "1"
    # A run imported twice onto its own tag is a re-push too.
    assert push(run_of_two, "run-two").code == 0
    assert push(run_of_two, "run-two").code == 0

    forced = push(run_of_two, "v1", "--force")
    assert forced.code == 0, forced.stderr
    assert remote_provenance(registry, repository, "v1")["run"]["id"] == model.runs["2"]
    # and sync now reports its version 1 tag as a conflict, as it did before import --force existed
    assert actions(sync(model.uri("/1"), registry, repository)) == [("conflict", "1", "v1")]
