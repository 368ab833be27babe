"""Hypothesis profiles: the same examples on every run unless asked otherwise.

"ci" (the default, for `make test` and .ci/run) draws them from a fixed seed with no example database, so a
clean checkout tests exactly what the last one did and a failure reproduces; "fuzz" (`make fuzz`) draws new
ones, FUZZ_FACTOR times as many. What a fuzz run finds becomes an @example on its test (the failure prints
the falsifying example)."""

from __future__ import annotations

import os

from hypothesis import settings

HYPOTHESIS_PROFILE = os.environ.get("KITMLFLOW_HYPOTHESIS_PROFILE", "ci")
FUZZ_FACTOR = int(os.environ.get("KITMLFLOW_FUZZ_FACTOR", "10"))

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz", derandomize=False, database=None, deadline=None, print_blob=True, max_examples=100 * FUZZ_FACTOR
)


def load_hypothesis_profile() -> None:
    settings.load_profile(HYPOTHESIS_PROFILE)


def examples(count: int) -> int:
    """A @given test's max_examples: ``count`` in CI, FUZZ_FACTOR times more under `make fuzz` (a count
    set in a test's @settings wins over the profile's, so the profile alone cannot raise it)."""
    return count * FUZZ_FACTOR if HYPOTHESIS_PROFILE == "fuzz" else count
