"""The response limits hook into a private MLflow function; this fails loudly when MLflow moves it,
instead of the limits being skipped in silence."""

from __future__ import annotations

from kitmlflow_tui.core.catalogue.http_limits import bounded_response, configure_http


def test_mlflow_sessions_carry_the_response_limits() -> None:
    from mlflow.utils import request_utils

    configure_http()
    factory = request_utils._cached_get_request_session
    assert getattr(factory, "_kitmlflow_bounded", False), "MLflow's session factory moved: re-check the hook"
    session = request_utils._get_request_session(
        max_retries=0,
        backoff_factor=0,
        backoff_jitter=0,
        retry_codes=(),
        raise_on_status=True,
        respect_retry_after_header=True,
    )
    assert bounded_response in session.hooks["response"]
