"""Fixtures of the wizard's tests (the demo store is in tests/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def held_connection() -> Iterator[threading.Event]:
    """A connector that keeps 'connecting' until the test releases it (for the first-paint state)."""
    release = threading.Event()
    yield release
    release.set()
