"""Case 21 of docs/reliability.md: every file an import calls selected is in a layer of the ModelKit, or the plan
moves it to ``excluded`` with the reason before anything downloads (issue 10, item 1).

A run's artifacts named ``.kitignore`` (holding ``*``) and ``Kitfile`` used to empty or escape the ModelKit
silently: kit obeys a root ``.kitignore`` and never packs a root ``Kitfile``. Against the session's real
``mlflow server``; the packed layers are read back from the kit storage (and unpacked by the real kit where it
is installed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kitmlflow_tui.core.packing.kit_cli import find_kit
from tests.live.test_stores import packed_files
from tests.support.live import LiveServer
from tests.support.servers import seed_run

RUN_FILES: dict[str, bytes | int] = {
    ".kitignore": b"*\n",
    "Kitfile": b"manifestVersion: 1.0.0\npackage:\n  name: the run's own\n",
    "model/MLmodel": b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
    "model/model.pkl": 2_000,
    "model/model.pkl.bak": 100,
    "data/a..b.csv": b"a,b\n",
    "data/ok.csv": b"x,y\n",
    "README.md": b"# a run\n",
    "train.py": b"print('hi')\n",
}
KIT_OWN = {".kitignore", "Kitfile"}
DOTS = "data/a..b.csv"  # the built Kitfile's dataset entry ``data`` cannot hold it (kit's sameDirTree rule)


@pytest.fixture(scope="module")
def run_uri(live: LiveServer) -> str:
    exp, run_id = seed_run(live.url, experiment_name="layer-coverage", files=RUN_FILES)
    return f"mlflow://{live.host}/experiments/{exp}/runs/{run_id}"


def excluded(document: dict) -> dict[str, str]:
    return {entry["path"]: entry["reason"] for entry in document["excluded"]}


def selected(document: dict) -> set[str]:
    return {entry["path"] for entry in document["selected"]}


def cached_files(cache: Path) -> set[str]:
    return {path.name for path in cache.rglob("*") if path.is_file()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("dry_run", [False, True], ids=["import", "dry-run"])
def test_kits_own_names_in_a_run_are_excluded_with_the_reason_never_dropped(
    run_uri: str, live: LiveServer, kitmlflow, isolated_env: Path, dry_run: bool
) -> None:
    offset = live.server.log_offset() if live.server else 0
    args = ["import", run_uri, "-t", "coverage:v1", "--yes", "--json", "--packer", "native"]
    out = kitmlflow(*args, *(["--dry-run"] if dry_run else []))
    assert out.code == 0, out.stderr
    document = out.json
    reasons = excluded(document)
    assert set(reasons) == KIT_OWN | {DOTS}
    assert all("kit never packs a root" in reasons[name] for name in KIT_OWN)
    assert "'..'" in reasons[DOTS]
    assert selected(document) == set(RUN_FILES) - KIT_OWN - {DOTS}
    requested = " ".join(live.server.requests_since(offset)) if live.server else ""
    assert not any(name in requested for name in (".kitignore", "Kitfile", "a..b"))  # excluded before any download
    assert not {".kitignore", "Kitfile", "a..b.csv"} & cached_files(isolated_env / "cache")
    if dry_run:
        return
    in_layers = packed_files(isolated_env / "kitops", document["digest"])
    # Every selected file is in the ModelKit (the run's .kitignore was data, not applied), each once.
    assert set(in_layers) == selected(document)  # provenance goes in the config here, not a file


@pytest.mark.timeout(300)
def test_a_given_kitfile_that_leaves_files_out_moves_them_to_excluded_before_the_download(
    run_uri: str, kitmlflow, isolated_env: Path
) -> None:
    kitfile = isolated_env / "Kitfile.given"
    kitfile.write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: given\nmodel:\n  path: model/model.pkl\n"
        "code:\n  - path: .\ndatasets:\n  - path: data\n",
        encoding="utf-8",
    )
    out = kitmlflow(
        "import", run_uri, "-t", "given:v1", "--yes", "--json", "--packer", "native", "--kitfile", str(kitfile)
    )
    assert out.code == 0, out.stderr
    document = out.json
    reasons = excluded(document)
    assert set(reasons) == KIT_OWN | {"model/model.pkl.bak", DOTS}
    assert "'model/model.pkl'" in reasons["model/model.pkl.bak"]  # kit's prefix rule, named
    assert "'..'" in reasons[DOTS]
    assert not {"model.pkl.bak", "a..b.csv"} & cached_files(isolated_env / "cache")
    assert set(packed_files(isolated_env / "kitops", document["digest"])) == selected(document)
    assert "4 selected files left out" in out.stderr


@pytest.mark.timeout(300)
def test_kit_unpacks_every_selected_file(run_uri: str, kitmlflow, isolated_env: Path) -> None:
    kit = find_kit()
    if kit is None:
        pytest.skip("the real kit binary is not installed (set KIT_BIN or put kit on PATH; see README)")
    home = isolated_env / "kitops"
    home.mkdir(exist_ok=True)
    (home / "disable-update-notifications").touch()
    out = kitmlflow("import", run_uri, "-t", "bykit:v1", "--yes", "--json", "--packer", "kit")
    assert out.code == 0, out.stderr
    target = isolated_env / "unpacked"
    subprocess.run(
        [kit, "unpack", "bykit:v1", "-d", str(target)],
        check=True,
        capture_output=True,
        env={"KITOPS_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(isolated_env)},
        timeout=120,
    )
    unpacked = {str(path.relative_to(target)) for path in target.rglob("*") if path.is_file()}
    assert unpacked == selected(out.json) | {"Kitfile"}  # the ModelKit's own Kitfile, not the run's
    assert "the run's own" not in (target / "Kitfile").read_text(encoding="utf-8")


@pytest.mark.timeout(300)
async def test_the_wizards_review_shows_the_files_left_out_of_the_modelkit(run_uri: str, isolated_env: Path) -> None:
    from kitmlflow_tui.core.reference import parse_reference
    from kitmlflow_tui.tui.app import KitmlflowApp
    from tests.support.tui import screen_text, shows, wait_for

    app = KitmlflowApp(parse_reference(run_uri), cursor_blink=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "browser", None) is not None and app.screen.browser.listed)
        await pilot.press("c")
        await wait_for(pilot, lambda: getattr(app.screen, "kitfile", None) is not None, what="the review")
        await shows(pilot, "3 selected files left out")
        shown = screen_text(app)
        plan = app.screen.plan
    assert "· .kitignore: kit never packs a root .kitignore" in shown
    assert "· Kitfile: kit never packs a root Kitfile" in shown
    assert {o.file.path for o in plan.left_out} == KIT_OWN | {DOTS}
    assert "Download" in shown and f"({len(RUN_FILES) - 3} files)" in shown  # the total without them
