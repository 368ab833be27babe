"""The typed MLflow provenance: one writer, one reader, and the reader never trusts a registry."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kitmlflow_tui.core.provenance import (
    CodeSource,
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
    registered_model=st.none() | st.builds(RegisteredVersion, text, text, maybe),
    importer=st.builds(Importer, text, text),
    filter=st.fixed_dictionaries({"include": st.lists(text, max_size=2), "max_file_size": st.none() | st.integers()}),
    masked_fields=st.tuples(text),
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
    MlflowProvenance.from_mapping({"run": value, "registered_model": value, "logged_models": value, "masked": value})
    read_provenance({"model": value, "datasets": value})


def test_a_document_without_a_run_records_no_provenance() -> None:
    assert MlflowProvenance.from_mapping({"registered_model": {"name": "m", "version": "1"}}) is None
    assert MlflowProvenance.from_mapping({"run": {"id": ["not", "text"]}}) is None
    version_as_number = MlflowProvenance.from_mapping(
        {"run": {"id": "r"}, "registered_model": {"name": "m", "version": 3}}
    )
    assert version_as_number is not None and version_as_number.registered_model == RegisteredVersion("m", "3")
