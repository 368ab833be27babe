"""``kitmlflow watch`` without servers: MLflow's own signing code and payloads against our checks, the strict
body reader, the config file, the on-disk queue (a real SQLite file), the metrics through Prometheus' own
parser, and bad input refused (exit 2) before anything listens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.watch.config import WatchedModel, load_config, parse_duration
from kitmlflow_tui.watch.delivery import MODEL_EVENTS, Refused, check_delivery, parse_event, sign
from kitmlflow_tui.watch.queue import WorkQueue

SECRET = "unit-secret-0123456789"


def mlflow_delivery(event_name: str, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as MLflow 3.17's delivery code builds them for its example payload."""
    from mlflow.entities.webhook import WebhookEvent
    from mlflow.webhooks.delivery import _generate_hmac_signature
    from mlflow.webhooks.types import get_example_payload_for_event

    event = WebhookEvent(*event_name.split("."))
    payload = {
        "entity": event.entity.value,
        "action": event.action.value,
        "timestamp": "2026-12-06T21:03:46.123456+00:00",
        "data": get_example_payload_for_event(event),
    }
    body = json.dumps(payload)
    delivery_id, stamp = "0b8d1c1e-6a55-4f55-9d0a-4e4e1f2f3a4b", str(int(time.time()))
    headers = {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, stamp, body),
    }
    return headers, body.encode()


def lookup(headers: dict[str, str]):
    lowered = {k.lower(): v for k, v in headers.items()}
    return lambda name: lowered.get(name.lower())


# -- deliveries ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", sorted(MODEL_EVENTS))
def test_mlflows_own_deliveries_are_accepted_and_name_their_model(event: str) -> None:
    headers, body = mlflow_delivery(event)
    assert (
        sign(SECRET, headers["X-MLflow-Delivery-Id"], headers["X-MLflow-Timestamp"], body)
        == headers["X-MLflow-Signature"]
    )
    delivery = check_delivery(lookup(headers), body, SECRET, time.time())
    assert delivery.delivery_id == headers["X-MLflow-Delivery-Id"]
    parsed = parse_event(body)
    assert (parsed.name, parsed.model) == (event, "example_model")


def test_other_mlflow_events_are_authentic_but_name_no_model() -> None:
    headers, body = mlflow_delivery("prompt.created")
    check_delivery(lookup(headers), body, SECRET, time.time())
    assert parse_event(body).model is None


@pytest.mark.parametrize(
    ("change", "reason", "status"),
    [
        (lambda h, b: ({**h, "X-MLflow-Signature": "v1,AAAA"}, b), "bad_signature", 401),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-MLflow-Signature"}, b), "no_signature", 401),
        (lambda h, b: (h, b.replace(b"example_model", b"example_modem")), "bad_signature", 401),
        (
            lambda h, b: ({**h, "X-MLflow-Signature": h["X-MLflow-Signature"].replace("v1,", "v2,")}, b),
            "bad_signature",
            401,
        ),
        (lambda h, b: ({**h, "X-MLflow-Timestamp": "12x"}, b), "bad_timestamp", 400),
        (lambda h, b: ({**h, "X-MLflow-Delivery-Id": "a b"}, b), "bad_delivery_id", 400),
    ],
)
def test_a_changed_delivery_is_refused_with_its_reason(change, reason: str, status: int) -> None:
    headers, body = change(*mlflow_delivery("model_version.created"))
    with pytest.raises(Refused) as refused:
        check_delivery(lookup(headers), body, SECRET, time.time())
    assert (refused.value.reason, refused.value.status) == (reason, status)


def test_the_timestamp_must_be_within_five_minutes_either_way() -> None:
    headers, body = mlflow_delivery("model_version.created")
    stamp = int(headers["X-MLflow-Timestamp"])
    check_delivery(lookup(headers), body, SECRET, stamp + 299)
    for now in (stamp + 301, stamp - 301):
        with pytest.raises(Refused, match="more than 300 s"):
            check_delivery(lookup(headers), body, SECRET, now)


def test_without_a_secret_only_the_signature_is_not_checked() -> None:
    headers, body = mlflow_delivery("model_version.created")
    del headers["X-MLflow-Signature"]
    check_delivery(lookup(headers), body, None, time.time())
    with pytest.raises(Refused, match="more than 300 s"):
        check_delivery(lookup(headers), body, None, time.time() + 3600)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"\xff\xfe",
        b'{"entity": "model_version", "entity": "x", "action": "created", "timestamp": "t", "data": {"name": "m"}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": "m"}, "extra": 1}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t"}',
        b'{"entity": "Model Version", "action": "created", "timestamp": "t", "data": {"name": "m"}}',
        b'{"entity": "model_version", "action": "created", "timestamp": 1, "data": {"name": "m"}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": ""}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": ["m"]}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": "m\\n"}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": "m", "version": NaN}}',
        b'{"entity": "model_version", "action": "created", "timestamp": "t", "data": {"name": "m"}, "workspace": 3}',
        b"[" * 200_000 + b"]" * 200_000,
    ],
    ids=lambda body: body[:40].decode(errors="replace"),
)
def test_bodies_mlflow_does_not_send_are_refused(body: bytes) -> None:
    with pytest.raises(Refused) as refused:
        parse_event(body)
    assert (refused.value.reason, refused.value.status) == ("bad_body", 400)


# -- the config file -----------------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(text)
    return path


def test_a_config_names_models_and_globs_with_their_options(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "tracking_uri: https://mlflow.example.com\n"
            "models:\n"
            "  - name: fraud\n"
            "    to: registry.example.com/ml/fraud\n"
            "    include: [model/**]\n"
            "    max_file_size: 2GB\n"
            "  - name: 'team-*'\n"
            "    to: registry.example.com/ml/{name}\n"
            "    tag_template: '{version}'\n"
            "    format: modelkit\n",
        )
    )
    assert config.tracking_uri == "https://mlflow.example.com"
    assert config.exact_names == ("fraud",) and config.has_globs
    fraud, team = config.models
    assert (fraud.spec.include, fraud.spec.max_file_size, fraud.line) == (("model/**",), 2_000_000_000, 3)
    assert [entry.name for entry in config.entries_for("team-a")] == ["team-*"]
    assert team.target_text("team-a") == "registry.example.com/ml/team-a"
    assert config.entries_for("other") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - name: m\n    to: r.io/m\n    colour: red\n", "line 4: unknown key models[].colour"),
        ("tracking: x\nmodels: []\n", "line 1: unknown key tracking"),
        ("tracking_uri: x\n", "`models` is missing"),
        ("models: []\n", "at least one entry"),
        ("models:\n  - name: m\n", "needs `name` and `to`"),
        ("models:\n  - name: 'a*'\n    to: r.io/ml/m\n", "would share the tags"),
        ("models:\n  - name: m\n    to: r.io/ml/m:v1\n", "not a tag"),
        ("models:\n  - name: m\n    to: r.io/m\n    tag_template: '{foo}'\n", "is not a field"),
        ("models:\n  - name: m\n    to: r.io/m\n    max_file_size: lots\n", "line 4"),
        ("models:\n  - name: m\n    to: r.io/m\n    format: zip\n", "not one of modelkit, modelpack"),
        ("models:\n  - name: m\n    to: r.io/m\n    sign_key: /nonexistent/key\n", "not a readable file"),
        (
            "models:\n  - name: m\n    to: r.io/m\n  - name: m\n    to: r.io/m\n    name: n\n",
            "line 6: key models[].name appears twice",
        ),
        ("a: &a [*a]\n", "refused"),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_a_bad_config_is_exit_2_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInputError) as refused:
        load_config(write(tmp_path, text))
    assert message in refused.value.message
    assert str(tmp_path / "watch.yaml") in refused.value.message


def test_a_modelpack_entry_is_synced_as_a_modelpack(tmp_path: Path) -> None:
    (entry,) = load_config(write(tmp_path, "models:\n  - name: m\n    to: r.io/m\n    format: modelpack\n")).models
    assert entry.format == "modelpack"


def test_a_sign_key_is_opened_when_the_config_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "sign.pem"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    config = load_config(write(tmp_path, f"models:\n  - name: m\n    to: r.io/m\n    sign_key: {key}\n"))
    assert config.models[0].sign_key == key
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.delenv("KITMLFLOW_SIGN_KEY_PASSWORD", raising=False)
    broken = tmp_path / "cosign.key"
    broken.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    with pytest.raises(BadInputError, match="holds no PEM private key") as refused:
        load_config(write(tmp_path, f"models:\n  - name: m\n    to: r.io/m\n    sign_key: {broken}\n"))
    assert str(broken) in refused.value.message


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("30s", 30), ("1h", 3600), ("0", 0), ("90", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "-1s", "5d", "0.5s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_duration(text)


def test_a_glob_matches_names_exactly_as_fnmatch_case() -> None:
    entry = WatchedModel("fraud-*", "r.io/{name}")
    assert entry.matches("fraud-eu") and not entry.matches("Fraud-eu") and not entry.matches("fraud")


# -- the queue -----------------------------------------------------------------------------------------------
def test_the_queue_coalesces_per_model_keeps_news_and_remembers_deliveries_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "queue.sqlite3"
    queue = WorkQueue(path)
    assert queue.accept_delivery("d1", "fraud", "model_version.created")
    assert queue.accept_delivery("d2", "fraud", "model_version_alias.created")
    assert queue.accept_delivery("d3", None, "prompt.created")  # remembered, nothing queued
    assert not queue.accept_delivery("d1", "fraud", "model_version.created"), "a replay"
    assert queue.depth() == 1
    taken = queue.next_ready()
    assert taken is not None and taken.model == "fraud"
    queue.enqueue("fraud", "reconcile")  # news while it is being synced
    assert not queue.done(taken), "it waits again"
    queue.close()

    queue = WorkQueue(path)  # a restart
    assert [item.model for item in queue.waiting()] == ["fraud"]
    assert not queue.accept_delivery("d2", "fraud", "x"), "a replay after the restart"
    again = queue.next_ready()
    assert again is not None
    queue.retry_later(again, 60)
    assert queue.next_ready() is None and queue.next_ready(time.time() + 61) is not None
    assert queue.forget_deliveries(time.time() + 1) == 3
    assert queue.accept_delivery("d1", None, "x"), "forgotten once older than the window"
    queue.close()


# -- metrics -------------------------------------------------------------------------------------------------
def test_metrics_are_prometheus_text_that_prometheus_reads() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from kitmlflow_tui.watch.metrics import Metrics

    metrics = Metrics(lambda: 3)
    metrics.received("model_version.created")
    metrics.refused("bad_signature")
    metrics.refused("bad_signature")
    metrics.dropped("not_configured")
    metrics.watching(["fraud", 'odd "name"\\x'])
    metrics.synced("fraud", "changed", in_step=True)
    metrics.synced("fraud", "failed", in_step=False)
    families = {family.name: family for family in text_string_to_metric_families(metrics.render())}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("kitmlflow_watch_events_refused_total", (("reason", "bad_signature"),))] == 2
    assert samples[("kitmlflow_watch_syncs_total", (("model", "fraud"), ("outcome", "changed")))] == 1
    assert samples[("kitmlflow_watch_queue_depth", ())] == 3
    assert samples[("kitmlflow_watch_seconds_since_in_step", (("model", 'odd "name"\\x'),))] == float("inf")
    assert 0 <= samples[("kitmlflow_watch_seconds_since_in_step", (("model", "fraud"),))] < 60
    assert families["kitmlflow_watch_queue_depth"].type == "gauge"
    assert families["kitmlflow_watch_events_received"].type == "counter"


# -- the command line ----------------------------------------------------------------------------------------
BAD_WATCH_INPUT = [
    ([], {}, "needs the models to follow"),
    (["mlflow://127.0.0.1:9/models/m"], {}, "--to REGISTRY/REPO is required"),
    (["mlflow://127.0.0.1:9/models/m@champion", "--to", "127.0.0.1:9/m"], {}, "whole registered models"),
    (["mlflow://127.0.0.1:9/models/m/3", "--to", "127.0.0.1:9/m"], {}, "whole registered models"),
    (["mlflow://127.0.0.1:9/runs/abc", "--to", "127.0.0.1:9/m"], {}, "whole registered models"),
    (
        ["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m"],
        {"KITMLFLOW_WEBHOOK_SECRET": ""},
        "KITMLFLOW_WEBHOOK_SECRET",
    ),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--insecure-no-signature"], {}, "contradicts"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--listen", "8765"], {}, "Invalid --listen"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--reconcile-every", "soon"], {}, "--reconcile-every"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--register-webhook"], {}, "go together"),
    (
        ["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--register-webhook", "--public-url", "ftp://x"],
        {},
        "not an http(s) URL",
    ),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--tag-template", "{foo}"], {}, "is not a field"),
    (["--config", "CONFIG", "--to", "127.0.0.1:9/m"], {}, "go in the file"),
    (["--config", "CONFIG", "--format", "modelpack"], {}, "--format go in the file"),
    (["--config", "CONFIG", "--sign-key", "CONFIG"], {}, "--sign-key go in the file"),
    (["mlflow://127.0.0.1:9/models/m", "--to", "127.0.0.1:9/m", "--sign-key", "CONFIG"], {}, "no PEM private key"),
    (["mlflow://127.0.0.1:9/models/m", "--config", "CONFIG"], {}, "not both"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD_WATCH_INPUT)
def test_bad_watch_input_is_exit_2_before_anything_listens(kitmlflow, isolated_env: Path, args, env, message) -> None:
    config = isolated_env / "watch.yaml"
    config.write_text("models:\n  - name: m\n    to: 127.0.0.1:9/m\n")
    args = [str(config) if arg == "CONFIG" else arg for arg in args]
    out = kitmlflow("watch", *args, "--json", env={"KITMLFLOW_WEBHOOK_SECRET": SECRET, **env})
    assert out.code == 2, out.stderr
    assert message in out.json["error"]["message"]
    assert not (isolated_env / "state").exists(), "no state folder was made"
