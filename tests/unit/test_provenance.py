"""The typed MLflow provenance: one writer, one reader, and the reader never trusts a registry."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kitmlflow_tui.core.provenance import (
    CodeSource,
    DatasetSource,
    ExperimentSource,
    Importer,
    LoggedModelSource,
    MlflowProvenance,
    RegisteredVersion,
    RunSource,
    read_provenance,
)

text = st.text(max_size=12)
maybe = st.none() | text
provenances = st.builds(
    MlflowProvenance,
    tracking_uri=text,
    experiment=st.builds(ExperimentSource, text, maybe),
    run=st.builds(RunSource, text, maybe, maybe, maybe, maybe, maybe),
    source=st.builds(CodeSource, maybe, maybe, maybe),
    params=st.dictionaries(text, text, max_size=3),
    metrics=st.dictionaries(text, st.floats(allow_nan=False) | st.sampled_from(["NaN", "Infinity"]), max_size=3),
    tags=st.dictionaries(text, text, max_size=3),
    logged_models=st.tuples(st.builds(LoggedModelSource, maybe, maybe, maybe, st.tuples(text))),
    registered_model=st.none()
    | st.builds(RegisteredVersion, text, text, maybe, st.tuples() | st.tuples(text, text), st.booleans()),
    importer=st.builds(Importer, text, text),
    filter=st.fixed_dictionaries({"include": st.lists(text, max_size=2), "max_file_size": st.none() | st.integers()}),
    masked_fields=st.tuples(text),
    datasets=st.tuples() | st.tuples(st.builds(DatasetSource, text, maybe, maybe, maybe, maybe)),
)


@given(provenances)
def test_what_is_written_reads_back_the_same(provenance: MlflowProvenance) -> None:
    assert MlflowProvenance.from_mapping(provenance.to_mapping()) == provenance
    assert read_provenance({"model": {"parameters": {"mlflow": provenance.to_mapping()}}}) == provenance


def test_the_stored_keys_are_the_ones_modelkits_already_carry() -> None:
    """Sync reads tags that earlier versions pushed: these keys are a contract (added to, never renamed)."""
    written = MlflowProvenance(
        "http://mlflow",
        ExperimentSource("1", "churn"),
        RunSource("r1"),
        registered_model=RegisteredVersion("churn", "3", "champion"),
        importer=Importer("kitmlflow", "0.1.0"),
        masked_fields=("params.url",),
    ).to_mapping()
    assert list(written) == [
        "tracking_uri",
        "experiment",
        "run",
        "source",
        "params",
        "metrics",
        "tags",
        "logged_models",
        "registered_model",
        "importer",
        "filter",
        "masked",
    ]
    assert written["registered_model"] == {"name": "churn", "version": "3", "alias": "champion"}
    assert list(written["run"]) == ["id", "name", "status", "start_time", "end_time", "user"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda inner: st.lists(inner) | st.dictionaries(text, inner),
        max_leaves=20,
    )
)
def test_the_reader_never_raises_on_what_a_registry_sends(value: Any) -> None:
    MlflowProvenance.from_mapping(value)
    MlflowProvenance.from_mapping(
        {"run": value, "registered_model": value, "logged_models": value, "masked": value, "datasets": value}
    )
    MlflowProvenance.from_mapping(
        {"run": {"id": "r"}, "registered_model": {"name": "m", "version": "1", "aliases": value}}
    )
    read_provenance({"model": value, "datasets": value})


def test_a_document_without_a_run_records_no_provenance() -> None:
    assert MlflowProvenance.from_mapping({"registered_model": {"name": "m", "version": "1"}}) is None
    assert MlflowProvenance.from_mapping({"run": {"id": ["not", "text"]}}) is None
    version_as_number = MlflowProvenance.from_mapping(
        {"run": {"id": "r"}, "registered_model": {"name": "m", "version": 3}}
    )
    assert version_as_number is not None and version_as_number.registered_model == RegisteredVersion("m", "3")


def test_aliases_and_datasets_are_added_keys_that_old_mappings_lack() -> None:
    """A registered version's aliases and the run's logged datasets are keys added this round: written only when
    there are some (a ModelKit without them keeps the mapping earlier versions wrote), read back when present."""
    old = {"run": {"id": "r"}, "registered_model": {"name": "churn", "version": "2", "alias": None}}
    read = MlflowProvenance.from_mapping(old)
    assert read is not None and read.registered_model == RegisteredVersion("churn", "2")
    assert read.to_mapping()["registered_model"] == old["registered_model"] and "datasets" not in read.to_mapping()
    new = MlflowProvenance(
        "http://mlflow",
        ExperimentSource("1"),
        RunSource("r"),
        registered_model=RegisteredVersion("churn", "2", None, ("champion", "prod"), imported_from_run=True),
        datasets=(DatasetSource("churn-train", "7b19d0b7", "s3", "s3://b/train.csv", "training"),),
    )
    written = new.to_mapping()
    assert written["registered_model"]["aliases"] == ["champion", "prod"]
    assert written["registered_model"]["imported_from"] == "run"  # a run imported whole, its model registered
    assert written["datasets"] == [
        {
            "name": "churn-train",
            "digest": "7b19d0b7",
            "source_type": "s3",
            "source": "s3://b/train.csv",
            "context": "training",
        }
    ]
    assert list(written).index("datasets") == list(written).index("logged_models") + 1
    assert MlflowProvenance.from_mapping(written) == new
