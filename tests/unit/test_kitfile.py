"""Tests of kitmlflow_tui.core.kitfile: kit init's classification, MLflow enrichment, validation, YAML.

Corpus cases live in tests/kitinit_corpus/<case>/case.yaml (a description the test turns into a real
folder) with expected-kitfile.yaml, the Kitfile the real `kit init` wrote for that folder. Tests that
run the real kit find it through $KIT_BIN or PATH and are skipped, with the reason, without it.
Re-record the expectations with: KIT_BIN=/path/to/kit python scripts/record-kit-vectors.py init
(tests/kit_vectors/README.md; tests/test_kit_vectors.py holds the other recorded-kit checks).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitmlflow_tui.core.catalogue.records import DatasetInput, LoggedModelInfo, RegisteredModelInfo, RunInfo
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.kitfile import (
    KIT_INIT_COMMIT,
    KIT_INIT_VERSION,
    PROVENANCE_FILE,
    BuiltKitfile,
    KitfileOverrides,
    build_kitfile,
    canonical_kitfile,
    classify_like_kit_init,
    detect_license_id,
    dropped_by_kit,
    dump_kitfile,
    load_kitfile_text,
    validate_kitfile,
    write_provenance_file,
)
from kitmlflow_tui.core.kitfile.describe import NoteText, read_note, stem
from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference
from tests.support import kitvectors
from tests.support.fuzz import examples

CORPUS = Path(__file__).parents[1] / "kitinit_corpus"
LICENSES = CORPUS / "_licenses"
CASES = sorted(p.parent.name for p in CORPUS.glob("*/case.yaml"))
EXPECTED_NAME = "expected-kitfile.yaml"


# ---- corpus folders and the real kit ------------------------------------------------------------


def build_case(name: str, dest: Path) -> Path:
    """Create the folder a corpus case describes under dest and return it."""
    return kitvectors.build_folder(
        yaml.safe_load((CORPUS / name / "case.yaml").read_text(encoding="utf-8")), dest / name
    )


def find_kit() -> str | None:
    candidate = os.environ.get("KIT_BIN") or shutil.which("kit")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


KIT = find_kit()
needs_kit = pytest.mark.skipif(KIT is None, reason="no kit binary: set KIT_BIN or put kit on PATH")


def kit_env(home: Path) -> dict[str, str]:
    """A private kit home, without kit's check for a newer release (a GitHub request per run)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "disable-update-notifications").touch()
    return {**os.environ, "KITOPS_HOME": str(home), "NO_COLOR": "1"}


def run_kit_init(folder: Path, home: Path) -> str:
    """The Kitfile the real kit init writes for folder (removed again afterwards).

    kit runs in the folder itself: kit 1.7.0 reads the license file relative to its working
    directory, not to the folder it was given, so `kit init some/dir` misses (or misreads) it.
    """
    assert KIT is not None
    done = subprocess.run(
        [KIT, "init", "--force", "."],
        cwd=folder,
        env=kit_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    kitfile = folder / "Kitfile"
    text = kitfile.read_text(encoding="utf-8")
    kitfile.unlink()
    return text


def expected_text(name: str) -> str:
    lines = (CORPUS / name / EXPECTED_NAME).read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


# ---- layer 1: kit init ----------------------------------------------------------------------------


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert all((CORPUS / c / EXPECTED_NAME).is_file() for c in CASES), "a case has no recorded Kitfile"


@pytest.mark.parametrize("case", CASES)
def test_classifier_matches_recorded_kit_init(case: str, tmp_path: Path) -> None:
    folder = build_case(case, tmp_path)
    ours = classify_like_kit_init(folder)
    expected = expected_text(case)
    assert ours.to_dict() == yaml.safe_load(expected)
    assert dump_kitfile(ours) == expected  # same keys, same order, same YAML text


@pytest.mark.parametrize("case", CASES)
def test_corpus_classification_is_a_valid_kitfile(case: str, tmp_path: Path) -> None:
    folder = build_case(case, tmp_path)
    validate_kitfile(classify_like_kit_init(folder), folder)
    assert load_kitfile_text(expected_text(case), folder=folder) == classify_like_kit_init(folder)


@needs_kit
@pytest.mark.kit
@pytest.mark.parametrize("case", CASES)
def test_live_kit_init_matches_classifier(case: str, tmp_path: Path) -> None:
    folder = build_case(case, tmp_path / "cases")
    ours = classify_like_kit_init(folder)
    kit_text = run_kit_init(folder, tmp_path / "kithome")
    assert dump_kitfile(ours) == kit_text
    assert kit_text == expected_text(case), "the kit on PATH differs from the recorded one"


def test_expectations_name_the_kit_they_came_from() -> None:
    for case in CASES:
        header = (CORPUS / case / EXPECTED_NAME).read_text(encoding="utf-8").splitlines()[1]
        assert f"(kit {KIT_INIT_VERSION}, commit {KIT_INIT_COMMIT})" in header, case


_TREE_NAMES = st.sampled_from(
    [
        "model.safetensors", "w.pt", "pytorch_model.bin", "x.onnx", "config.json", "params.yaml",
        "notes.txt", "README.md", "guide.md", "train.csv", "data.parquet", "run.py", "MLmodel",
        "LICENSE", "a.zip", "Kitfile", "b.pkl", "schema.xml", "report.html",
    ]
)  # fmt: skip
_DIR_NAMES = st.sampled_from(["docs", "src", "data", "model", "weights", "misc", "lib", "eval", "x"])
_TREES = st.dictionaries(
    st.tuples(st.lists(_DIR_NAMES, max_size=2), _TREE_NAMES).map(lambda t: "/".join([*t[0], t[1]])),
    st.integers(min_value=0, max_value=3000),
    max_size=9,
)


@needs_kit
@pytest.mark.kit
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_TREES)
def test_live_kit_init_on_generated_trees(tree: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("tree")
    for rel, size in tree.items():
        path = folder / rel
        if any(parent.is_file() for parent in path.parents) or path.is_dir():
            continue  # a name used both as a file and as a directory
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "LICENSE":
            shutil.copyfile(LICENSES / ("MIT.txt" if size % 2 else "custom.txt"), path)
        else:
            path.write_bytes(b"w" * size)
    (folder / "Kitfile").unlink(missing_ok=True)
    ours = classify_like_kit_init(folder)
    assert dump_kitfile(ours) == run_kit_init(folder, tmp_path_factory.mktemp("home"))


# ---- license detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text_name", "spdx"),
    [
        ("MIT", "MIT"),
        ("BSD-3-Clause", "BSD-3-Clause"),
        ("BSD-2-Clause", "BSD-2-Clause"),
        ("Apache-2.0-notice", "Apache-2.0"),
        ("GPL-3.0-or-later-notice", "GPL-3.0-or-later"),
        ("ISC", "ISC"),
        ("custom", ""),
        ("MIT-and-Apache-2.0", ""),
        ("MIT-twice", ""),
    ],
)
def test_license_detection(text_name: str, spdx: str) -> None:
    assert detect_license_id((LICENSES / f"{text_name}.txt").read_text(encoding="utf-8")) == spdx


SYSTEM_LICENSES = {
    "Apache-2.0": "Apache-2.0",
    "GPL-2": "GPL-2.0",
    "GPL-3": "GPL-3.0",
    "LGPL-2": "LGPL-2.0",
    "LGPL-2.1": "LGPL-2.1",
    "LGPL-3": "LGPL-3.0",
    "MPL-2.0": "MPL-2.0",
    "MPL-1.1": "MPL-1.1",
    "CC0-1.0": "CC0-1.0",
    "BSD": "BSD-3-Clause",
}


@pytest.mark.parametrize(("file_name", "spdx"), sorted(SYSTEM_LICENSES.items()))
def test_license_detection_on_full_texts(file_name: str, spdx: str, tmp_path: Path) -> None:
    source = Path("/usr/share/common-licenses") / file_name
    if not source.is_file():
        pytest.skip(f"{source} is not installed here")
    text = source.read_text(encoding="utf-8")
    assert detect_license_id(text) == spdx
    # A full text followed by a separate notice is two matches for kit: no license.
    assert detect_license_id(text + "\n\n" + (LICENSES / "MIT.txt").read_text()) == ""
    if KIT is not None:
        folder = tmp_path / "f"
        folder.mkdir()
        shutil.copyfile(source, folder / "LICENSE")
        (folder / "m.pkl").write_bytes(b"w")
        kit = yaml.safe_load(run_kit_init(folder, tmp_path / "home"))
        assert kit["model"].get("license", "") == spdx


def test_license_detection_edge_texts() -> None:
    mit = (LICENSES / "MIT.txt").read_text()
    assert detect_license_id("") == ""
    assert detect_license_id(mit.upper()) == "MIT"  # case and punctuation do not matter
    assert detect_license_id(f"<html><body><p>{mit}</p></body></html>") == "MIT"
    mit0 = mit.split("The above copyright")[0] + "THE SOFTWARE IS PROVIDED AS IS."
    assert detect_license_id(mit0) == "MIT-0"
    isc = (LICENSES / "ISC.txt").read_text()
    zero_bsd = isc.replace(
        ", provided that the above\ncopyright notice and this permission notice appear in all copies", ""
    )
    assert detect_license_id(zero_bsd) == "0BSD"


# ---- layer 2: build_kitfile -------------------------------------------------------------------------

RUN = RunInfo(
    tracking_uri="http://127.0.0.1:5000",
    experiment_id="42",
    experiment_name="churn",
    run_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    run_name="bright-owl-7",
    status="FINISHED",
    start_time=1730802093123,
    end_time=1730802153004,
    user="ada",
    artifact_uri="mlflow-artifacts:/42/0a1b2c3d4e5f60718293a4b5c6d7e8f9/artifacts",
    params={"alpha": "0.5", "max_iter": "100"},
    metrics={"accuracy": 0.91, "loss": 0.25},
    tags={
        "mlflow.user": "ada",
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "deadbeef",
        "mlflow.runName": "bright-owl-7",
        "team": "growth",
    },
)
FILTER = {"include": ["**"], "exclude": ["*.png"], "max_file_size": None, "excluded_files": 1}


def build(folder: Path, **changes: Any) -> BuiltKitfile:
    arguments: dict[str, Any] = {
        "run": RUN,
        "logged_models": [],
        "tag": parse_modelkit_reference("mymodel:v1"),
        "registered": None,
        "filter_summary": FILTER,
        "importer_version": "0.1.0",
        "overrides": None,
    }
    arguments.update(changes)
    built = build_kitfile(folder, **arguments)
    write_provenance_file(folder, built)  # as the pipeline does before packing
    return built


def logged(name: str, folder: str, model_id: str | None = None, flavors: tuple[str, ...] = ()) -> LoggedModelInfo:
    return LoggedModelInfo(
        model_id=model_id,
        name=name,
        folder=folder,
        artifact_location=f"mlflow-artifacts:/42/models/{model_id or name}/artifacts",
        source_run_id=RUN.run_id,
        flavors=flavors,
    )


def test_mlflow2_model_folder_becomes_the_model(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    result = build(folder, logged_models=[logged("model", "model")])
    kitfile = result.kitfile.to_dict()
    assert list(kitfile) == ["manifestVersion", "package", "model", "code", "datasets"]
    model = kitfile["model"]
    # model.version is the model's (the tag's here: nothing registered); the library's goes to parameters.
    assert {k: model[k] for k in ("name", "path", "framework", "format", "version")} == {
        "name": "model",
        "path": "model",
        "framework": "sklearn",
        "format": "cloudpickle",
        "version": "v1",
    }
    assert {k: v for k, v in model["parameters"].items() if k != "mlflow"} == {
        "flavor": "sklearn",
        "framework_version": "1.5.2",
        "python_version": "3.11.7",
        "mlflow_version": "2.17.0",
    }
    assert model["description"] == "sklearn model logged by MLflow run bright-owl-7 (experiment churn)"
    # Nothing inside model/ has an entry of its own; the root metadata stays a part, as kit has it, named.
    assert model["parts"] == [{"name": "params", "path": "params.yaml"}]
    # confusion_matrix.png is unknown to kit
    assert kitfile["code"] == [
        {"path": ".", "description": "The run's other artifacts (files kit init could not classify)"}
    ]
    assert kitfile["datasets"] == [
        {"name": "feature_importance", "path": "feature_importance.csv", "description": "CSV data logged with the run"}
    ]
    assert result.provenance_location == "model" and result.added_files == ()
    validate_kitfile(kitfile, folder)


def test_provenance_content(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    registered = RegisteredModelInfo("churn-model", "3", "champion", None, RUN.run_id)
    kitfile = build(folder, logged_models=[logged("model", "model")], registered=registered).kitfile.to_dict()
    provenance = kitfile["model"]["parameters"]["mlflow"]
    assert provenance == {
        "tracking_uri": "http://127.0.0.1:5000",
        "experiment": {"id": "42", "name": "churn"},
        "run": {
            "id": RUN.run_id,
            "name": "bright-owl-7",
            "status": "FINISHED",
            "start_time": "2024-11-05T10:21:33.123Z",
            "end_time": "2024-11-05T10:22:33.004Z",
            "user": "ada",
        },
        "source": {"name": "train.py", "type": "LOCAL", "git_commit": "deadbeef"},
        "params": {"alpha": "0.5", "max_iter": "100"},
        "metrics": {"accuracy": 0.91, "loss": 0.25},
        "tags": {"team": "growth"},
        "logged_models": [{"id": None, "name": "model", "folder": "model", "flavors": ["python_function", "sklearn"]}],
        "registered_model": {"name": "churn-model", "version": "3", "alias": "champion"},
        "importer": {"name": "kitmlflow", "version": "0.1.0"},
        "filter": FILTER,
    }
    assert list(provenance) == [
        "tracking_uri", "experiment", "run", "source", "params", "metrics", "tags",
        "logged_models", "registered_model", "importer", "filter",
    ]  # fmt: skip
    assert json.loads(json.dumps(provenance)) == provenance  # JSON-compatible, as kit's config needs


def test_two_logged_models_main_and_part(tmp_path: Path) -> None:
    folder = build_case("mlflow3-two-logged-models", tmp_path)
    models = [
        logged("model", "model", "m-0001", ("python_function", "sklearn")),
        logged("quantized", "model_quantized", "m-fedcba9876543210fedcba9876543210"),
    ]
    kitfile = build(folder, logged_models=models).kitfile.to_dict()
    assert kitfile["model"]["path"] == "model"
    assert kitfile["model"]["parts"] == [{"name": "quantized", "path": "model_quantized", "type": "mlflow-model"}]
    assert kitfile["datasets"] == [{"name": "eval", "path": "eval", "description": "Data folder logged with the run"}]
    assert kitfile["docs"] == [{"path": "README.md", "description": "Readme file"}]
    assert "code" not in kitfile

    # Through the registry, the registered version's model is the main one, whatever the order.
    # It is named and versioned as registered; the library's version goes to parameters.
    registered = RegisteredModelInfo("q", "1", None, "m-fedcba9876543210fedcba9876543210", RUN.run_id)
    kitfile = build(folder, logged_models=models, registered=registered).kitfile.to_dict()
    assert (kitfile["model"]["name"], kitfile["model"]["path"]) == ("q", "model_quantized")
    assert (kitfile["model"]["framework"], kitfile["model"]["version"]) == ("pytorch", "1")
    assert kitfile["model"]["parameters"]["framework_version"] == "2.5.1"
    assert "format" not in kitfile["model"]
    assert kitfile["model"]["parts"] == [{"name": "model", "path": "model", "type": "mlflow-model"}]
    validate_kitfile(kitfile, folder)


def test_model_folder_at_the_root_is_matched_by_model_id(tmp_path: Path) -> None:
    folder = build_case("mlflow-pyfunc-root", tmp_path)
    models = [logged("echo", "echo", "m-0123456789abcdef0123456789abcdef"), logged("other", "other", "m-2")]
    kitfile = build(folder, logged_models=models).kitfile.to_dict()
    assert kitfile["model"]["name"] == "echo"
    assert kitfile["model"]["path"] == "."
    assert (kitfile["model"]["framework"], kitfile["model"]["version"]) == ("pyfunc", "v1")
    assert kitfile["model"]["parameters"]["flavor"] == "python_function"
    assert kitfile["model"]["parameters"]["framework_version"] == "3.17.2"
    assert set(kitfile) == {"manifestVersion", "package", "model"}  # everything else is inside the model
    assert "parts" not in kitfile["model"]


def test_real_mlflow_pyfunc_model(tmp_path: Path) -> None:
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[str]) -> list[str]:
            return model_input

    folder = tmp_path / "run"
    mlflow.pyfunc.save_model(str(folder / "echo"), python_model=Echo())
    (folder / "notes.md").write_text("# notes\n")
    kitfile = build(folder, logged_models=[logged("echo", "echo", "m-1", ("python_function",))]).kitfile.to_dict()
    assert kitfile["model"]["framework"] == "pyfunc"
    assert kitfile["model"]["version"] == "v1"
    assert kitfile["model"]["parameters"]["framework_version"] == mlflow.__version__
    assert kitfile["model"]["parameters"]["mlflow_version"] == mlflow.__version__
    assert kitfile["docs"] == [{"path": "notes.md", "description": "Markdown document logged with the run"}]
    validate_kitfile(load_kitfile_text(dump_kitfile(kitfile)), folder)


def test_weights_without_mlmodel_keep_kit_classification(tmp_path: Path) -> None:
    folder = build_case("weights-one-dominant", tmp_path)
    kitfile = build(folder).kitfile.to_dict()
    kit = classify_like_kit_init(folder).to_dict()
    model = dict(kitfile["model"])
    assert model.pop("parameters")["mlflow"]["run"]["id"] == RUN.run_id
    # kit's classification, with the model's version (the tag's), a description and every part named.
    assert model == {
        **kit["model"],
        "version": "v1",
        "description": "Model logged by MLflow run bright-owl-7 (experiment churn)",
        "parts": [{"name": stem(part["path"]), **part} for part in kit["model"]["parts"]],
    }


def test_kit_weights_outside_the_mlflow_model_become_parts(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    (folder / "extra.safetensors").write_bytes(b"w" * 10)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "epoch1.ckpt").write_bytes(b"w" * 10)
    kitfile = build(folder, logged_models=[logged("model", "model")]).kitfile.to_dict()
    assert kitfile["model"]["parts"] == [
        {"name": "extra", "path": "extra.safetensors"},
        {"name": "epoch1", "path": "checkpoints/epoch1.ckpt"},
        {"name": "params", "path": "params.yaml"},
    ]
    validate_kitfile(kitfile, folder)


def test_root_metadata_become_parts_once_mlflow_finds_a_model(tmp_path: Path) -> None:
    # A models-from-code pyfunc has no weight file, so kit sees no model and makes metadata datasets.
    folder = tmp_path / "run"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    (folder / "model" / "model.py").write_text("x = 1\n")
    (folder / "metrics.json").write_text("{}\n")
    assert classify_like_kit_init(folder).to_dict()["datasets"] == [{"path": "metrics.json"}]
    kitfile = build(folder).kitfile.to_dict()
    assert kitfile["model"]["parts"] == [{"name": "metrics", "path": "metrics.json"}]
    assert kitfile["model"]["name"] == "model"  # no logged model info: the folder's name
    assert "datasets" not in kitfile


def test_provenance_goes_to_the_first_dataset_without_a_model(tmp_path: Path) -> None:
    folder = build_case("datasets-only", tmp_path)
    result = build(folder)
    assert "model" not in result.kitfile.to_dict()
    assert result.provenance_location == "datasets[0]"
    assert result.kitfile.to_dict()["datasets"][0]["parameters"]["mlflow"]["experiment"]["name"] == "churn"
    assert not (folder / PROVENANCE_FILE).exists()


def test_provenance_file_when_there_is_no_model_nor_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "README.md").write_text("# hi\n")
    (folder / "plot.png").write_bytes(b"png")
    result = build(folder)
    assert result.provenance_location == PROVENANCE_FILE
    assert result.added_files == (PROVENANCE_FILE,)
    assert result.kitfile.to_dict()["docs"][-1]["path"] == PROVENANCE_FILE
    written = yaml.safe_load((folder / PROVENANCE_FILE).read_text())
    assert written["mlflow"]["run"]["id"] == RUN.run_id
    validate_kitfile(result.kitfile, folder)

    # Building again over the same folder does not take our own file for a dataset.
    again = build(folder)
    assert again.kitfile == result.kitfile and again.added_files == (PROVENANCE_FILE,)

    # Once a dataset arrives, provenance moves into the Kitfile and the stale file goes.
    (folder / "data.csv").write_text("a\n1\n")
    third = build(folder)
    assert third.provenance_location == "datasets[0]" and third.added_files == ()
    assert not (folder / PROVENANCE_FILE).exists()
    assert [d["path"] for d in third.kitfile.to_dict()["datasets"]] == ["data.csv"]


def test_a_users_own_provenance_named_file_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / PROVENANCE_FILE).write_text("mine: true\n")
    result = build(folder)
    assert result.provenance_location == "datasets[0]"
    assert (folder / PROVENANCE_FILE).read_text() == "mine: true\n"


@pytest.mark.parametrize(
    ("tag", "name", "version"),
    [
        ("mymodel:v1", "mymodel", "v1"),
        ("org/team/mymodel:2024-11", "mymodel", "2024-11"),
        ("localhost:5000/org/mymodel:latest", "mymodel", "latest"),
        ("registry.example.com/mymodel", "mymodel", None),
        (None, "bright-owl-7", None),
    ],
)
def test_package_name_and_version_from_tag(tmp_path: Path, tag: str | None, name: str, version: str | None) -> None:
    (tmp_path / "m.pkl").write_bytes(b"w")
    package = build(tmp_path, tag=parse_modelkit_reference(tag) if tag else None).kitfile.to_dict()["package"]
    assert package["name"] == name
    assert package.get("version") == version
    assert package["authors"] == ["ada"]


def test_package_description_from_the_note(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"w")
    generated = build(tmp_path).kitfile.to_dict()["package"]["description"]
    assert generated == f"MLflow run bright-owl-7 ({RUN.run_id}) from experiment churn"
    noted = RunInfo(
        **{**RUN.__dict__, "tags": {**RUN.tags, "mlflow.note.content": "  First para\nline 2\n\n  Second  "}}
    )
    assert build(tmp_path, run=noted).kitfile.to_dict()["package"]["description"] == "First para\nline 2"
    # A heading is the note's title (kit has no title field: it describes the model); the prose describes the package.
    headed = RunInfo(**{**RUN.__dict__, "tags": {"mlflow.note.content": "## ResNet-18 baseline ##\n\nFirst."}})
    kitfile = build(tmp_path, run=headed).kitfile.to_dict()
    assert kitfile["package"]["description"] == "First."
    assert kitfile["model"]["description"] == "ResNet-18 baseline"
    only_heading = RunInfo(**{**RUN.__dict__, "tags": {"mlflow.note.content": "ResNet-18\n=========\n"}})
    assert build(tmp_path, run=only_heading).kitfile.to_dict()["package"]["description"] == "ResNet-18"
    nobody = RunInfo(**{**RUN.__dict__, "user": "unknown", "tags": {"mlflow.user": "unknown"}})
    assert "authors" not in build(tmp_path, run=nobody).kitfile.to_dict()["package"]
    anonymous = RunInfo(**{**RUN.__dict__, "run_name": "", "user": None, "tags": {}})
    package = build(tmp_path, run=anonymous, tag=None).kitfile.to_dict()["package"]
    assert package["name"] == RUN.run_id
    assert package["description"] == f"MLflow run {RUN.run_id} from experiment churn"
    assert "authors" not in package


def test_license_is_placed_as_kit_does_and_overrides_win(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    shutil.copyfile(LICENSES / "MIT.txt", folder / "LICENSE")
    kitfile = build(folder, logged_models=[logged("model", "model")]).kitfile.to_dict()
    assert kitfile["model"]["license"] == "MIT"
    assert "license" not in kitfile["package"]
    assert {"path": "LICENSE", "description": "License file"} in kitfile["docs"]

    overrides = KitfileOverrides(
        name="churn", version="2.0", description="Churn model", authors=("ada", "bob"), license="Apache-2.0"
    )
    kitfile = build(folder, logged_models=[logged("model", "model")], overrides=overrides).kitfile.to_dict()
    assert kitfile["package"] == {
        "name": "churn",
        "version": "2.0",
        "description": "Churn model",
        "license": "Apache-2.0",
        "authors": ["ada", "bob"],
    }
    assert kitfile["model"]["license"] == "Apache-2.0"
    assert "authors: [ada, bob]" in dump_kitfile(kitfile)


def test_license_falls_back_to_the_package(tmp_path: Path) -> None:
    folder = build_case("license-isc-package", tmp_path)
    kitfile = build(folder).kitfile.to_dict()
    assert kitfile["package"]["license"] == "ISC"
    assert all("license" not in d for d in kitfile["datasets"])


def test_non_finite_metrics_stay_json(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"w")
    run = RunInfo(**{**RUN.__dict__, "metrics": {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.5}})
    kitfile = build(tmp_path, run=run).kitfile.to_dict()
    assert kitfile["model"]["parameters"]["mlflow"]["metrics"] == {
        "a": "NaN",
        "b": "Infinity",
        "c": "-Infinity",
        "d": 1.5,
    }
    assert load_kitfile_text(dump_kitfile(kitfile), folder=tmp_path).to_dict() == kitfile


def test_files_kit_pack_would_drop_get_an_entry(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    (folder / "model_card.png").write_bytes(b"png")  # unknown: only the "." layer would hold it...
    (folder / "model_card.png.bak").write_bytes(b"bak")
    (folder / "modeling.py").write_text("x = 1\n")
    (folder / "other.py").write_text("y = 2\n")
    kitfile = build(folder, logged_models=[logged("model", "model")]).kitfile.to_dict()
    # ...but kit skips files whose path starts with another layer's path ("model"), as a string.
    unclassified = "Run artifact kit init does not classify"
    assert kitfile["code"] == [
        {"path": ".", "description": "The run's other artifacts (files kit init could not classify)"},
        {"path": "model_card.png", "description": unclassified},
        {"path": "model_card.png.bak", "description": unclassified},
        {"path": "modeling.py", "description": unclassified},
    ]
    validate_kitfile(kitfile, folder)


def kit_pack_drops_literally(file: str, layers: list[str]) -> bool:
    """kit pack's rule as it reads, checked against every layer: the reference for ``dropped_by_kit``."""
    containing = [x for x in layers if x == "." or file == x or file.startswith(x + "/")]
    return bool(containing) and all(
        any(not layer.startswith(other) and file.startswith(other) for other in layers) for layer in containing
    )


_NAME = st.sampled_from(["m", "model", "model_card.png", "mo", ".", ".git", "a", "a.b", "b"])


@settings(max_examples=examples(500), deadline=None)
@given(
    file=st.lists(_NAME.filter(lambda n: n != "."), min_size=1, max_size=4).map("/".join),
    layers=st.lists(st.lists(_NAME, min_size=1, max_size=3).map(lambda parts: posixpath.normpath("/".join(parts)))),
)
def test_the_dropped_file_rule_is_kits_literal_rule(file: str, layers: list[str]) -> None:
    assert dropped_by_kit(file, set(layers)) == kit_pack_drops_literally(file, layers)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "Kitfile"}


@needs_kit
@pytest.mark.kit
@pytest.mark.parametrize(
    "case", ["mlflow2-run-model-dir", "mlflow3-two-logged-models", "datasets-only", "empty-folder"]
)
def test_real_kit_packs_and_unpacks_every_file(case: str, tmp_path: Path) -> None:
    folder = build_case(case, tmp_path / "cases")
    if case == "mlflow2-run-model-dir":
        (folder / "model_card.png").write_bytes(b"png")
        (folder / "modeling.py").write_text("x = 1\n")
    models = [logged("model", "model"), logged("quantized", "model_quantized")]
    result = build(folder, logged_models=models)
    (folder / "Kitfile").write_text(dump_kitfile(result.kitfile), encoding="utf-8")
    reference = f"kitmlflow-test/{case}:v1"
    for command in (["pack", str(folder), "-t", reference], ["unpack", reference, "-d", str(tmp_path / "out")]):
        done = subprocess.run(
            [KIT, *command],
            env=kit_env(tmp_path / "home"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr + done.stdout
    assert files_under(tmp_path / "out") == files_under(folder)
    assert yaml.safe_load((tmp_path / "out" / "Kitfile").read_text()) == result.kitfile.to_dict()


# ---- layer 3: YAML and validation -----------------------------------------------------------------


def problems_of(text: str, folder: Path | None = None) -> str:
    with pytest.raises(BadInputError) as raised:
        load_kitfile_text(text, folder=folder)
    assert raised.value.exit_code == 2
    return raised.value.message


def test_unknown_key_is_named_with_its_line() -> None:
    message = problems_of("manifestVersion: 1.0.0\nmodel:\n  path: a.pkl\n  bogus: 1\n")
    assert "line 4: model.bogus: unknown key 'bogus'" in message
    assert "line 1: extra: unknown key" in problems_of("extra: 1\nmanifestVersion: 1.0.0\n")
    message = problems_of("manifestVersion: 1.0.0\ndatasets:\n  - path: a\n  - path: b\n    nme: x\n")
    assert "line 5: datasets[1].nme: unknown key 'nme'" in message


def test_duplicate_keys_and_wrong_types_are_named() -> None:
    message = problems_of("manifestVersion: 1.0.0\nmodel:\n  path: a\nmodel:\n  path: b\n")
    assert "line 4: model: key 'model' already defined at line 2" in message
    message = problems_of(
        "manifestVersion: 1.0.0\npackage:\n  authors: ada\nmodel:\n  name: {a: 1}\ncode:\n  path: x\n"
    )
    assert "line 3: package.authors: must be a list, not a scalar" in message
    assert "line 5: model.name: must be a string, not a mapping" in message
    assert "line 7: code: must be a list, not a mapping" in message
    assert "is not valid YAML (line 2)" in problems_of("manifestVersion: 1.0.0\n  bad: [\n")
    assert "empty" in problems_of("")


def test_scalars_are_read_as_text_like_kit() -> None:
    kitfile = load_kitfile_text(
        "manifestVersion: 1.0.0\npackage:\n  name: 123\n  version: 1.0\n  authors: [1, true]\nmodel:\n  name: null\n"
        "  path: m.pkl\n  parameters:\n    on: yes\n    n: 0x1F\n    d: 2024-01-01\n"
    ).to_dict()
    assert kitfile["package"] == {"name": "123", "version": "1.0", "authors": ["1", "true"]}
    # go-yaml's types in parameters: a date is a timestamp, which kit's config holds as RFC 3339 text
    # (tests/kit_vectors/recorded/scalars.json: kit 1.7.0 turns 2024-01-02 into "2024-01-02T00:00:00Z").
    assert kitfile["model"] == {"path": "m.pkl", "parameters": {"on": "yes", "n": 31, "d": "2024-01-01T00:00:00Z"}}


@pytest.mark.parametrize(
    ("model_paths", "expected"),
    [
        (("", "."), "model.parts[0].path: path '.' is already used by model"),
        (("a", "./a"), "path './a' is already used by model"),
        (("a", "a/"), "path 'a/' is already used by model"),
    ],
)
def test_duplicate_paths(model_paths: tuple[str, str], expected: str) -> None:
    kitfile = {"manifestVersion": "1.0.0", "model": {"path": model_paths[0], "parts": [{"path": model_paths[1]}]}}
    with pytest.raises(BadInputError, match=expected.replace("[", r"\[").replace(".", r"\.")):
        validate_kitfile(kitfile)


def test_duplicate_paths_across_sections_with_lines() -> None:
    message = problems_of(
        "manifestVersion: 1.0.0\nmodel:\n  path: x\ncode:\n  - path: src\ndatasets:\n  - path: x\n"
        "docs:\n  - path: src\nprompts:\n  - path: p\n"
    )
    assert "line 7: datasets[0].path: path 'x' is already used by model" in message
    assert "line 9: docs[0].path: path 'src' is already used by code[0]" in message


def test_paths_must_stay_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"w")
    message = problems_of(
        "manifestVersion: 1.0.0\nmodel:\n  path: /abs/m.pkl\ncode:\n  - path: ../up\n  - path: a/../../b\n"
        "datasets:\n  - path: C:\\data\n"
    )
    assert "line 3: model.path: absolute path '/abs/m.pkl'" in message
    assert "line 5: code[0].path: path '../up' leaves the folder" in message
    assert "code[1].path: path 'a/../../b' leaves the folder" in message
    assert "datasets[0].path: absolute path" in message
    message = problems_of("manifestVersion: 1.0.0\nmodel:\n  path: m.pkl\ndocs:\n  - path: gone.md\n", tmp_path)
    assert "line 5: docs[0].path: path 'gone.md' does not exist" in message
    # A model path naming another ModelKit is not a file in the folder.
    load_kitfile_text("manifestVersion: 1.0.0\nmodel:\n  path: registry.io/org/base:v1\n", folder=tmp_path)


def test_part_types() -> None:
    def kitfile_with(part_type: str) -> dict[str, Any]:
        return {"manifestVersion": "1.0.0", "model": {"path": "m", "parts": [{"path": "p", "type": part_type}]}}

    for good in ("mlflow-model", "a", "_x.y-z", "x" * 64, "Tokenizer_2"):
        validate_kitfile(kitfile_with(good))
    for bad in ("-x", ".x", "a b", "ü", "x\n", "a/b"):
        with pytest.raises(BadInputError, match=r"model\.parts\[0\]\.type"):
            validate_kitfile(kitfile_with(bad))
    with pytest.raises(BadInputError, match="longer than 64"):
        validate_kitfile(kitfile_with("x" * 65))


def test_manifest_version_and_types_of_mappings() -> None:
    assert "manifestVersion: is required" in problems_of("model:\n  path: a\n")
    assert "line 1: manifestVersion: 'v99.99.99' is not a Kitfile version" in problems_of(
        "manifestVersion: v99.99.99\n"
    )
    for accepted in ("1.0.0", "1.0", "v1.0.0"):
        validate_kitfile({"manifestVersion": accepted})
    with pytest.raises(BadInputError, match=r"package\.name: must be a string, not int"):
        validate_kitfile({"manifestVersion": "1.0.0", "package": {"name": 3}})
    with pytest.raises(BadInputError, match=r"datasets\[0\]\.parameters\.x: NaN"):
        validate_kitfile({"manifestVersion": "1.0.0", "datasets": [{"path": "d", "parameters": {"x": math.nan}}]})
    with pytest.raises(BadInputError, match="parameter keys must be strings"):
        validate_kitfile({"manifestVersion": "1.0.0", "model": {"path": "m", "parameters": {1: "a"}}})
    with pytest.raises(BadInputError, match="unknown key 'annotations'"):
        validate_kitfile({"manifestVersion": "1.0.0", "annotations": {}})


def test_dump_is_kit_ordered_block_yaml_without_aliases() -> None:
    shared = {"k": "v"}
    kitfile = {
        "docs": [{"description": "d", "path": "README.md"}],
        "model": {"parameters": {"a": shared, "b": shared}, "path": "m.pkl", "name": "mödel"},
        "package": {"authors": ["ada"], "name": "x"},
        "manifestVersion": "1.0.0",
    }
    text = dump_kitfile(kitfile)
    assert text == (
        "manifestVersion: 1.0.0\n"
        "package:\n  name: x\n  authors: [ada]\n"
        "model:\n  name: mödel\n  path: m.pkl\n  parameters:\n    a:\n      k: v\n    b:\n      k: v\n"
        "docs:\n  - path: README.md\n    description: d\n"
    )
    assert "&" not in text and "*" not in text


# Any text (controls, line and paragraph separators, U+0085, U+FEFF included): every string we write must
# read back as that same string (kit reads our Kitfile with go-yaml; our reader reads as go-yaml does, as
# tests/unit/test_kit_vectors.py checks against the recordings).
_SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_SAFE_TEXT, inner, max_size=3),
    max_leaves=10,
)
_PATHS = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=10).filter(
    lambda p: p.strip(".") != ""
)


@settings(max_examples=examples(400), deadline=None)
@given(
    name=_SAFE_TEXT,
    description=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
    authors=st.lists(_SAFE_TEXT, max_size=3),
    paths=st.lists(_PATHS, min_size=2, max_size=6, unique=True),
    parameters=st.dictionaries(_SAFE_TEXT, _JSON, max_size=4),
)
def test_dump_then_load_round_trips(
    name: str, description: str, authors: list[str], paths: list[str], parameters: dict[str, Any]
) -> None:
    kitfile = canonical_kitfile(
        {
            "manifestVersion": "1.0.0",
            "package": {"name": name, "description": description, "authors": authors},
            "model": {"path": paths[0], "parameters": {"mlflow": parameters}},
            "datasets": [{"path": p, "parameters": parameters} for p in paths[1:]],
        }
    )
    assert load_kitfile_text(dump_kitfile(kitfile)).to_dict() == kitfile


@pytest.mark.parametrize(
    ("note", "title", "paragraph"),
    [
        ("# Churn model\n\nPredicts churn.\n\nMore.", "Churn model", "Predicts churn."),
        ("# Churn model\nPredicts churn.\nOn two lines.", "Churn model", "Predicts churn.\nOn two lines."),
        ("Churn model\n===========\n\nPredicts churn.", "Churn model", "Predicts churn."),
        ("## A ##\n\n### B\n\nText", "A", "Text"),
        ("Just prose.\n\n# A heading later", None, "Just prose."),
        ("# Only a title", "Only a title", None),
        ("#hashtag is prose", None, "#hashtag is prose"),
        ("", None, None),
    ],
)
def test_a_notes_heading_and_its_first_paragraph_of_prose(note: str, title: str | None, paragraph: str | None) -> None:
    assert read_note(note) == NoteText(title, paragraph)


def test_root_environment_files_are_code_and_a_models_own_stay_in_it(tmp_path: Path) -> None:
    folder = build_case("mlflow2-run-model-dir", tmp_path)
    (folder / "requirements.txt").write_text("scikit-learn\n")
    (folder / "conda.yaml").write_text("name: train\n")
    kitfile = build(folder, logged_models=[logged("model", "model")]).kitfile.to_dict()
    assert [p["path"] for p in kitfile["model"]["parts"]] == ["params.yaml"]
    assert [c["path"] for c in kitfile["code"]] == [".", "conda.yaml", "requirements.txt"]  # kit's order
    assert kitfile["code"][2]["description"] == "pip requirements of the run's Python environment"
    # Without a model kit would have made them datasets: they are code all the same.
    (folder / "model" / "MLmodel").unlink()
    (folder / "model" / "model.pkl").unlink()
    kitfile = build(folder).kitfile.to_dict()
    assert "requirements.txt" not in [d["path"] for d in kitfile["datasets"]]
    assert {"path": "requirements.txt", "description": "pip requirements of the run's Python environment"} in kitfile[
        "code"
    ]
    validate_kitfile(kitfile, folder)


def test_datasets_are_named_after_the_inputs_the_run_logged(tmp_path: Path) -> None:
    folder = build_case("datasets-only", tmp_path)
    entries = [d["path"] for d in classify_like_kit_init(folder).to_dict()["datasets"]]
    inputs = (
        DatasetInput(
            "churn-train", "7b19d0b7", "s3", f"s3://bucket/{stem(entries[0])}.csv?X-Amz-Signature=abc", "training"
        ),
        DatasetInput(stem(entries[1]), None, "code", None, None),
    )
    run = RunInfo(**{**RUN.__dict__, "dataset_inputs": inputs})
    datasets = {d["path"]: d for d in build(folder, run=run).kitfile.to_dict()["datasets"]}
    first, second = datasets[entries[0]], datasets[entries[1]]
    assert first["name"] == "churn-train"
    assert first["description"] == (
        "Training data the run logged as an input (MLflow dataset churn-train, digest 7b19d0b7, "
        f"from s3://bucket/{stem(entries[0])}.csv?X-Amz-Signature=***)"
    )
    assert first["parameters"]["mlflow_datasets"] == [
        {"name": "churn-train", "digest": "7b19d0b7", "source_type": "s3",
         "source": f"s3://bucket/{stem(entries[0])}.csv?X-Amz-Signature=***", "context": "training"}
    ]  # fmt: skip
    assert second["name"] == stem(entries[1]) and second["parameters"]["mlflow_datasets"][0]["source_type"] == "code"
    others = [d for path, d in datasets.items() if path not in entries[:2]]
    assert all(d["name"] == stem(d["path"]) and "mlflow_datasets" not in d.get("parameters", {}) for d in others)
