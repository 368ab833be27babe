"""``kitmlflow sync`` without servers: the URI form, tag templates, the target, provenance, and bad input
refused (exit 2) before anything is asked of a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.provenance import MlflowProvenance, read_provenance
from kitmlflow_tui.core.reference import ModelRef, parse_reference
from kitmlflow_tui.core.sync import TagTemplate, parse_target


# -- without servers ----------------------------------------------------------------------------------------------
def test_every_version_is_a_uri_form_of_sync_only() -> None:
    assert parse_reference("mlflow://host/models/fraud", all_versions=True) == ModelRef("https://host", "fraud")
    assert parse_reference("mlflow://models/fraud@champion", all_versions=True) == ModelRef(
        None, "fraud", alias="champion"
    )
    with pytest.raises(BadInputError, match="kitmlflow sync"):
        parse_reference("mlflow://host/models/fraud")


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("v{version}", "v3"),
        ("{name}-{version}", "fraud-3"),
        ("{alias}.{version}", "champion.3"),
        ("run-{run_id}", "run-abc"),
        ("{{literal}}{version}", "{literal}3"),
    ],
)
def test_tag_templates_render_their_fields(text: str, rendered: str) -> None:
    assert TagTemplate.parse(text).render(version="3", name="fraud", run_id="abc", alias="champion") == rendered


@pytest.mark.parametrize("text", ["{foo}", "{version:>3}", "{version!r}", "{0}", "{}", "v{version", " "])
def test_bad_tag_templates_are_refused(text: str) -> None:
    with pytest.raises(BadInputError):
        TagTemplate.parse(text)


def test_sync_target_is_a_repository_of_a_registry() -> None:
    target = parse_target("127.0.0.1:5000/team/fraud")
    assert (target.registry, target.repository, str(target.ref("v1"))) == (
        "127.0.0.1:5000",
        "team/fraud",
        "127.0.0.1:5000/team/fraud:v1",
    )
    for text in ("127.0.0.1:5000/team/fraud:v1", "team/fraud", "reg.io/Team", "reg.io/m@sha256:00"):
        with pytest.raises(BadInputError):
            parse_target(text)


def test_provenance_is_read_where_the_kitfile_builder_puts_it() -> None:
    mlflow = {"run": {"id": "r"}, "registered_model": {"name": "m", "version": "1"}}
    recorded = MlflowProvenance.from_mapping(mlflow)
    assert recorded is not None and recorded.run.id == "r" and recorded.registered_model is not None
    assert read_provenance({"model": {"parameters": {"mlflow": mlflow}}}) == recorded
    assert read_provenance({"datasets": [{"path": "d", "parameters": {"mlflow": mlflow}}]}) == recorded
    assert read_provenance({"model": {"path": "m"}, "datasets": []}) is None
    assert read_provenance({"model": {"parameters": "not a mapping"}}) is None


BAD_SYNC_INPUT = [
    (["mlflow://127.0.0.1:9/models/m", "--tag-template", "{foo}"], "is not a field"),
    (["mlflow://127.0.0.1:9/models/m", "--tag-template", "-{version}"], "does not accept"),
    (["mlflow://127.0.0.1:9/models/m", "--tag-template", "latest"], "the same tag"),
    (["mlflow://127.0.0.1:9/models/m", "--tag-template", "{alias}-{version}"], "names no alias"),
    (["mlflow://127.0.0.1:9/models/My%20Model", "--tag-template", "{name}-{version}"], "does not accept"),
    (["mlflow://127.0.0.1:9/runs/abc123"], "takes a registered model"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:5000/team/m:v1"], "not a tag"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "team/m"], "names no registry"),
    (["mlflow://127.0.0.1:9/models/m", "--max-file-size", "lots"], "max-file-size"),
    (["mlflow://127.0.0.1:9/models/m@champion", "--prune-aliases"], "needs the whole model"),
    (["mlflow://127.0.0.1:9/models/m/3", "--prune-aliases"], "needs the whole model"),
    (["mlflow://127.0.0.1:9/models/m/3", "--tag-template", "kitmlflow.alias-tags"], "record of the alias tags"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SYNC_INPUT)
def test_bad_sync_input_is_exit_2_before_any_connection(kitmlflow, isolated_env: Path, args, message) -> None:
    # The tracking server and the registry do not exist: reaching either would be exit 6.
    to = [] if "--to" in args else ["--to", "127.0.0.1:9/team/m"]
    out = kitmlflow("sync", *args, *to, "--yes", "--json")
    assert out.code == 2, out.stderr
    assert message in out.json["error"]["message"]
    assert not (isolated_env / "cache").exists()


def test_sync_without_yes_and_without_a_terminal_is_exit_2(kitmlflow, isolated_env: Path) -> None:
    out = kitmlflow("sync", "mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/team/m", "--json")
    assert out.code == 2 and "--yes" in out.json["error"]["message"]


def test_import_of_every_version_is_refused(kitmlflow) -> None:
    out = kitmlflow("import", "mlflow://127.0.0.1:9/models/m", "-t", "m:v1", "--yes", "--json")
    assert out.code == 2 and "kitmlflow sync" in out.json["error"]["message"]
