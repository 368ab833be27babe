"""The Python API's contract: its signatures (scripts call them by keyword), and bad input refused as the CLI
refuses it (exit 2) before any server is asked. The functions against real servers: tests/live/test_python_api.py."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import kitmlflow_tui
from kitmlflow_tui import download_artifacts, import_modelkit, sync_model
from kitmlflow_tui.core.errors import BadInputError, KitmlflowError

POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
KEYWORD = inspect.Parameter.KEYWORD_ONLY
_ = inspect.Parameter.empty

FILTERS = [
    ("include", KEYWORD, ()),
    ("exclude", KEYWORD, ()),
    ("max_file_size", KEYWORD, None),
    ("profile", KEYWORD, None),
]
REGISTRY = [
    ("plain_http", KEYWORD, False),
    ("tls_verify", KEYWORD, True),
    ("cert", KEYWORD, None),
    ("key", KEYWORD, None),
]
PROGRESS = [("progress", KEYWORD, None), ("cancel", KEYWORD, None)]

SIGNATURES = {
    import_modelkit: [
        ("uri", POSITIONAL, _),
        ("tag", POSITIONAL, _),
        *FILTERS,
        ("push", KEYWORD, False),
        ("force", KEYWORD, False),
        ("tracking_uri", KEYWORD, None),
        ("jobs", KEYWORD, 8),
        ("packer", KEYWORD, "auto"),
        ("compression", KEYWORD, "none"),
        ("kitfile", KEYWORD, None),
        ("description", KEYWORD, None),
        ("authors", KEYWORD, ()),
        ("dry_run", KEYWORD, False),
        ("keep_download", KEYWORD, False),
        *REGISTRY,
        ("format", KEYWORD, "modelkit"),
        ("sign_key", KEYWORD, None),
        ("attestation_output", KEYWORD, None),
        ("allow_no_model", KEYWORD, False),
        *PROGRESS,
    ],
    sync_model: [
        ("uri", POSITIONAL, _),
        ("to", POSITIONAL, _),
        ("tag_template", KEYWORD, "v{version}"),
        *FILTERS,
        ("force", KEYWORD, False),
        ("dry_run", KEYWORD, False),
        ("prune_aliases", KEYWORD, False),
        ("tracking_uri", KEYWORD, None),
        ("jobs", KEYWORD, 8),
        ("packer", KEYWORD, "auto"),
        ("compression", KEYWORD, "none"),
        *REGISTRY,
        ("format", KEYWORD, "modelkit"),
        ("sign_key", KEYWORD, None),
        *PROGRESS,
    ],
    download_artifacts: [
        ("uri", POSITIONAL, _),
        ("dest", POSITIONAL, _),
        *FILTERS,
        ("tracking_uri", KEYWORD, None),
        ("jobs", KEYWORD, 8),
        ("any_status", KEYWORD, False),
        *PROGRESS,
    ],
}


@pytest.mark.parametrize("function", list(SIGNATURES), ids=lambda f: f.__name__)
def test_the_signatures_are_the_contract(function) -> None:
    parameters = inspect.signature(function).parameters.values()
    assert [(p.name, p.kind, p.default) for p in parameters] == SIGNATURES[function]


def test_the_package_root_exports_the_api() -> None:
    assert {"import_modelkit", "sync_model", "download_artifacts"} <= set(kitmlflow_tui.__all__)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: import_modelkit("http://x/runs/abc", "m:v1"), "mlflow://"),
        (lambda: import_modelkit("mlflow://runs/abc", "Bad Tag!"), "Bad Tag!"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", include="*.pt"), "list of glob patterns"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", exclude=["[oops"]), "no closing"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", max_file_size="lots"), "lots"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", plain_http=True), "only apply with push=True"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", packer="zip"), "packer"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", jobs=0), "jobs"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", profile="no-such-profile"), "no-such-profile"),
        (lambda: import_modelkit("mlflow://runs/abc", "m:v1", progress=42), "progress="),
        (lambda: sync_model("mlflow://runs/abc", "reg.example.com/ml/m"), "registered model"),
        (lambda: sync_model("mlflow://models/m", "reg.example.com/ml/m:v1"), "not a tag"),
        (lambda: sync_model("mlflow://models/m", "reg.example.com/ml/m", tag_template="fixed"), "same tag"),
        (lambda: download_artifacts("mlflow://runs/abc", "out", include=["a/**/["]), "no closing"),
    ],
)
def test_bad_input_is_exit_2_before_any_server_is_asked(isolated_env: Path, call, words: str) -> None:
    # No tracking URI is set anywhere (isolated_env): reaching a server would fail otherwise, not with exit 2.
    with pytest.raises(BadInputError) as raised:
        call()
    assert raised.value.exit_code == 2
    assert words in str(raised.value)


def test_every_error_is_of_the_family_with_its_exit_code(isolated_env: Path) -> None:
    with pytest.raises(KitmlflowError) as raised:
        import_modelkit("mlflow://127.0.0.1:9/runs/abc", "m:v1")  # port 9 (discard): nothing listens
    assert raised.value.exit_code == 6
