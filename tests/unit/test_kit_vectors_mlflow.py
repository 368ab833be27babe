"""A real MLflow run imported by the real CLI and wizard, checked against what kit 1.7.0 recorded.

Issue 9's defects as users meet them: MLflow params (strings) must reach kit's config as the same
strings whichever packer runs, and every name the CLI and the wizard report or print in a "next"
command must be one kit resolves. No kit is needed: kit's side comes from tests/kit_vectors/.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kitmlflow_tui.core.packing.kit_cli import dump_kitfile_yaml, find_kit
from kitmlflow_tui.core.reference import RunRef
from kitmlflow_tui.tui.app import KitmlflowApp
from tests.support import kitvectors as kv
from tests.support.cli import run_cli
from tests.support.live import mlflow_globals_restored
from tests.support.tui import screen_text, wait_for

SCALARS = {record.value: record for record in kv.scalar_records()}
REFERENCES = kv.reference_records()
COMMAND_OF = {"push": "push_source", "unpack": "unpack", "tag": "tag_source", "inspect": "inspect"}


class ParamsRun:
    def __init__(self, tracking_uri: str, run_id: str, params: dict[str, str]) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.params = params


@pytest.fixture(scope="module")
def params_run(tmp_path_factory: pytest.TempPathFactory) -> ParamsRun:
    """A FINISHED run in a local MLflow store whose params are every recorded scalar MLflow accepts."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("params-store")
    uri = f"sqlite:///{root}/mlflow.db"
    with mlflow_globals_restored():
        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("params", artifact_location=(root / "artifacts").as_uri())
        run_id = client.create_run(experiment, run_name="params").info.run_id
        params = {f"p{index:03d}": value for index, value in enumerate(SCALARS) if value.strip()}
        client.log_batch(run_id, params=[Param(key, value) for key, value in params.items()])
        (root / "model.pkl").write_bytes(b"weights")
        client.log_artifact(run_id, str(root / "model.pkl"))
        client.set_terminated(run_id, "FINISHED")
    return ParamsRun(uri, run_id, params)


def import_run(run: ParamsRun, tag: str, *extra: str) -> Any:
    outcome = run_cli(
        "import", f"mlflow://runs/{run.run_id}", "--tracking-uri", run.tracking_uri, "-t", tag, "--yes", "--json",
        "--packer", "native", *extra,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    return outcome


def params_of(kitfile: dict[str, Any]) -> dict[str, Any]:
    return kitfile["model"]["parameters"]["mlflow"]["params"]


def spellings_in(text: str, path: tuple[str, ...]) -> dict[str, str]:
    """key -> the exact text of each value of the mapping at ``path`` in a YAML document, block
    scalars de-indented to the form the scalar recordings use."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in path:
        node = next(value for name, value in node.value if name.value == key)
    found = {}
    for key_node, value_node in node.value:
        raw = text[value_node.start_mark.index : value_node.end_mark.index].rstrip("\n")
        indent = " " * (key_node.start_mark.column + 2)
        first, *rest = raw.split("\n")
        found[key_node.value] = "\n".join([first, *(line.removeprefix(indent) for line in rest)])
    return found


def test_mlflow_params_stay_strings_in_the_native_config(params_run: ParamsRun, isolated_env: Path) -> None:
    outcome = import_run(params_run, "params:v1")
    assert params_of(outcome.json["kitfile"]) == params_run.params
    storage = isolated_env / "kitops"
    manifest = json.loads(kv.storage_blob(storage, outcome.json["digest"]))
    config = json.loads(kv.storage_blob(storage, manifest["config"]["digest"]))
    assert params_of(config) == params_run.params


def test_mlflow_params_stay_strings_in_the_kitfile_kit_packs(params_run: ParamsRun, isolated_env: Path) -> None:
    """What `--packer kit` hands kit: every param's spelling must be one kit was recorded reading as that string."""
    kitfile = import_run(params_run, "params:v1", "--dry-run").json["kitfile"]
    text = dump_kitfile_yaml(kitfile)
    spellings = spellings_in(text, ("model", "parameters", "mlflow", "params"))
    wrong = []
    for key, value in params_run.params.items():
        recorded = [s for s in SCALARS[value].spellings if s.context == "param" and s.text == spellings[key]]
        if not recorded:
            wrong.append(f"{value!r} written as {spellings[key]!r}: how kit reads that is not recorded")
        elif recorded[0].error or recorded[0].value != value:
            wrong.append(f"{value!r} written as {spellings[key]!r}: kit reads {recorded[0].value!r}")
    assert not wrong, "\n".join(wrong)


# -- the names the CLI and the wizard print -------------------------------------------------------------------
TAGS = ["name:tag", "org/team/name:v1.2.3", "localhost/name:tag", "registry.example.com/org/m:v1"]


def kit_commands(text: str) -> list[list[str]]:
    """The `kit ...` commands in a block of text, as word lists."""
    commands = []
    for chunk in text.replace("·", "\n").replace("next:", "\n").splitlines():
        words = chunk.split()
        if "kit" in words:
            commands.append(words[words.index("kit") :])
    return commands


def unresolved_names(commands: list[list[str]], tag: str) -> list[str]:
    """Each command's ModelKit argument that kit, as recorded for ``-t tag``, would not find."""
    record = REFERENCES[tag]
    problems = []
    for words in commands:
        if len(words) < 3 or words[1] not in COMMAND_OF:
            continue
        name = words[2]
        if "REGISTRY" in name:  # a placeholder the user fills in (kit push REGISTRY/ORG/...)
            continue
        if name not in record.resolved_by(COMMAND_OF[words[1]]):
            problems.append(
                f"`{' '.join(words)}`: kit {words[1]} does not find {name!r} (kit list shows {record.listed})"
            )
    return problems


@pytest.mark.parametrize("tag", TAGS)
def test_the_cli_reports_and_prints_names_kit_resolves(tag: str, params_run: ParamsRun, isolated_env: Path) -> None:
    outcome = import_run(params_run, tag)
    record = REFERENCES[tag]
    next_text = " ".join(outcome.stderr.split("next:", 1)[1].split())  # rich may wrap the line
    commands = kit_commands(next_text)
    assert [words[1] for words in commands] == ["push", "unpack"], outcome.stderr
    problems = unresolved_names(commands, tag)
    reference = outcome.json["reference"]
    if reference not in record.resolved_by("inspect") or reference not in record.listed:
        problems.append(f"--json reference {reference!r}: kit list shows {record.listed}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("tag", ["name:tag", "org/team/name:v1.2.3"])
async def test_the_wizard_prints_names_kit_resolves(tag: str, params_run: ParamsRun, isolated_env: Path) -> None:
    app = KitmlflowApp(
        RunRef(None, params_run.run_id), tracking_uri_flag=params_run.tracking_uri, cursor_blink=False, tag=tag
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ArtifactsScreen" and app.screen.browser.listed)
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ReviewScreen" and app.screen.kitfile is not None)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DoneScreen", timeout=120, what="the import")
        text = screen_text(app)
        copied = app.screen.unpack_command()
        await pilot.press("q")
    commands = kit_commands(text) + kit_commands(copied)
    assert any(words[1] == "unpack" for words in commands if len(words) > 1), text
    problems = unresolved_names(commands, tag)
    assert not problems, "\n".join(problems)


# -- on a machine with kit: the printed commands, pasted -------------------------------------------------------
PUSH_PROBE = "127.0.0.1:1/kitvectors/probe:v1"  # nothing listens on port 1: kit fails only after finding the source


def run_kit(*args: str) -> subprocess.CompletedProcess[str]:
    kit = find_kit()
    assert kit is not None
    home = Path(os.environ["KITOPS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "disable-update-notifications").touch()
    return subprocess.run(
        [kit, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip


def run_pasted(words: list[str], tmp_path: Path) -> str:
    """Run a printed `kit ...` command as a user who fills in the placeholders would; "" when it worked."""
    args = [PUSH_PROBE if "REGISTRY" in word else word for word in words[1:]]
    args = [str(tmp_path / "unpacked") if word in ("DIR", "./" + word.removeprefix("./")) and i and args[i - 1] == "-d"
            else word for i, word in enumerate(args)]  # fmt: skip
    if args[0] == "push":
        args.insert(1, "--plain-http")
    done = run_kit(*args)
    output = done.stdout + done.stderr
    if args[0] == "push" and "connection refused" in output:
        return ""  # kit found the source and failed on the probe registry, as intended
    return "" if done.returncode == 0 else f"`{' '.join(words)}` failed: {output.strip()}"


@pytest.mark.kit
@pytest.mark.parametrize("tag", ["name:tag", "org/team/name:v1.2.3", "localhost/name:tag"])
@pytest.mark.parametrize("packer", ["kit", "native"])
def test_the_printed_next_commands_work_with_real_kit(
    tag: str, packer: str, params_run: ParamsRun, isolated_env: Path, tmp_path: Path
) -> None:
    if find_kit() is None:
        pytest.skip("no kit binary: set KIT_BIN (the recorded references are checked without it)")
    outcome = run_cli(
        "import", f"mlflow://runs/{params_run.run_id}", "--tracking-uri", params_run.tracking_uri, "-t", tag,
        "--yes", "--json", "--packer", packer,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    next_text = " ".join(outcome.stderr.split("next:", 1)[1].split())
    commands = [words for words in kit_commands(next_text) if len(words) > 2]
    assert {words[1] for words in commands} >= {"push", "unpack"}, next_text
    problems = [problem for words in commands if (problem := run_pasted(words, tmp_path))]
    inspected = run_kit("inspect", "--", outcome.json["reference"])
    if inspected.returncode != 0:
        problems.append(f"kit inspect {outcome.json['reference']}: {inspected.stderr.strip()}")
    assert not problems, "\n".join(problems)
    assert (tmp_path / "unpacked" / "model.pkl").read_bytes() == b"weights"
