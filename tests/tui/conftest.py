"""Fixtures of the wizard's tests (the demo store is in tests/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered columns (the user state dir) never leak between tests or from the developer's own, nor does
    the developer's signing key (it would pre-fill the review's "Sign with")."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    for name in ("KITMLFLOW_SIGN_KEY", "KITMLFLOW_SIGN_KEY_PASSWORD", "COSIGN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def held_connection() -> Iterator[threading.Event]:
    """A connector that keeps 'connecting' until the test releases it (for the first-paint state)."""
    release = threading.Event()
    yield release
    release.set()
