"""The mlflow:// grammar (docs/architecture.md): every form, every refusal, and no crash on any text."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.reference import (
    BrowseRef,
    ModelRef,
    RunRef,
    format_reference,
    parse_reference,
    redact_uri,
    resolve_tracking_uri,
)
from tests.support.fuzz import examples

ACCEPTED = [
    ("mlflow://experiments/42/runs/abc123", RunRef(None, "abc123", "42")),
    ("mlflow://runs/abc123", RunRef(None, "abc123")),
    ("mlflow://runs/abc123/", RunRef(None, "abc123")),
    ("mlflow://localhost:5000/experiments/1/runs/r1", RunRef("http://localhost:5000", "r1", "1")),
    ("mlflow://127.0.0.1:8080/runs/r1", RunRef("http://127.0.0.1:8080", "r1")),
    ("mlflow://[::1]:5000/runs/r1", RunRef("http://[::1]:5000", "r1")),
    ("mlflow://mlflow.example.com/runs/r1", RunRef("https://mlflow.example.com", "r1")),
    (
        "mlflow://MLflow.Example.com:8443/a/b/experiments/7/runs/r1",
        RunRef("https://mlflow.example.com:8443/a/b", "r1", "7"),
    ),
    ("mlflow+http://mlflow.internal:5000/runs/r1", RunRef("http://mlflow.internal:5000", "r1")),
    ("mlflow+https://localhost/runs/r1", RunRef("https://localhost", "r1")),
    ("mlflow://models/demo-classifier/1", ModelRef(None, "demo-classifier", version="1")),
    ("mlflow://models/demo-classifier@champion", ModelRef(None, "demo-classifier", alias="champion")),
    ("mlflow://host/models/my%20model/12", ModelRef("https://host", "my model", version="12")),
    ("mlflow://host/prefix/models/x@prod", ModelRef("https://host/prefix", "x", alias="prod")),
    ("mlflow://", BrowseRef(None)),
    ("mlflow://localhost:5000", BrowseRef("http://localhost:5000")),
    ("mlflow://localhost:5000/", BrowseRef("http://localhost:5000")),
    ("mlflow://experiments/3", BrowseRef(None, "3")),
    ("mlflow://h.example/experiments/3", BrowseRef("https://h.example", "3")),
    # A prefix may itself hold keyword segments: the reference is read from the end.
    ("mlflow://h/runs/experiments/1/runs/r", RunRef("https://h/runs", "r", "1")),
]


@pytest.mark.parametrize(("uri", "expected"), ACCEPTED)
def test_accepted_forms(uri: str, expected: object) -> None:
    assert parse_reference(uri) == expected


@pytest.mark.parametrize(("uri", "_expected"), ACCEPTED)
def test_format_round_trips(uri: str, _expected: object) -> None:
    ref = parse_reference(uri)
    assert parse_reference(format_reference(ref)) == ref


REFUSED = [
    ("", "empty"),
    ("runs/abc", "must start with mlflow://"),
    ("http://localhost:5000/runs/abc", "must start with mlflow://"),
    ("mlflow://runs", "'runs' must be followed by a run id"),
    ("mlflow://experiments", "'experiments' must be followed by an experiment id"),
    ("mlflow://experiments/1/runs", "'runs' must be followed by a run id"),
    ("mlflow://experiments/1/foo", "unexpected 'foo'"),
    ("mlflow://models/x", "needs a version"),
    ("mlflow://models/x/latest", "must be a number"),
    ("mlflow://models/x@", "alias ''"),
    ("mlflow://host:0/runs/a", "port '0'"),
    ("mlflow://host:abc/runs/a", "port 'abc'"),
    ("mlflow://ho st/runs/a", "spaces"),
    ("mlflow://host/runs/a?x=1", "query strings"),
    ("mlflow://host//runs/a", "empty path segment"),
    ("mlflow://runs/a b", "spaces"),
    ("mlflow://runs/../etc", "the path 'runs/../etc' is not one of the accepted forms"),
    ("mlflow+http://runs/abc", "needs a host"),
    ("mlflow://[::1/runs/a", "unclosed IPv6"),
    ("mlflow://bad_host!/runs/a", "not a host name"),
]


@pytest.mark.parametrize(("uri", "fragment"), REFUSED)
def test_refused_forms_exit_2_with_the_accepted_forms(uri: str, fragment: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_reference(uri)
    assert caught.value.exit_code == 2
    assert fragment in caught.value.message
    assert "mlflow://[host/]experiments/EXP_ID/runs/RUN_ID" in caught.value.hint


def test_credentials_in_the_uri_are_refused_without_echoing_them() -> None:
    with pytest.raises(BadInputError) as caught:
        parse_reference("mlflow://alice:s3cr3t-pw@mlflow.example.com/runs/abc")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "MLFLOW_TRACKING_USERNAME" in str(caught.value)


@given(st.text(max_size=200))
@settings(max_examples=examples(2000), deadline=None)
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_reference(text)
    except BadInputError as exc:
        assert exc.exit_code == 2


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)


@given(
    st.lists(
        st.sampled_from(["mlflow://", "experiments", "runs", "models", "/", "@", ":", "%", "[", "]"]) | _segment,
        max_size=12,
    )
)
@settings(max_examples=examples(2000), deadline=None)
def test_grammar_like_text_never_crashes(parts: list[str]) -> None:
    with contextlib.suppress(BadInputError):
        parse_reference("".join(parts))


def test_the_uri_host_and_the_flag_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("http://a:1", None) == "http://a:1"
    assert resolve_tracking_uri(None, "http://b:2") == "http://b:2"
    assert resolve_tracking_uri("http://a:1", "http://a:1/") == "http://a:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:3")
    assert resolve_tracking_uri(None, None) == "http://env:3"
    with pytest.raises(BadInputError, match="--tracking-uri"):
        resolve_tracking_uri("http://a:1", "http://b:2")


def test_redaction_hides_user_info_and_tokens_and_keeps_the_rest() -> None:
    assert redact_uri("https://bob:pw@host:5000/p?token=abc&x=1") == "https://***@host:5000/p?token=***&x=1"
    assert redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert redact_uri("http://localhost:5000") == "http://localhost:5000"
