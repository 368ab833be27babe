"""Every one-line break ``make mutate`` applies still names one line of today's code.

``scripts/mutate.py`` refuses to run when a listed line is gone, but nothing ran it on every commit, so an
edit that moved a line left its mutation broken until the next manual run. This checks what ``--list`` checks.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_mutate_script():
    spec = importlib.util.spec_from_file_location("mutate_script", REPO / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutation_names_exactly_one_line_and_its_tests_exist() -> None:
    mutate = load_mutate_script()
    mutations = mutate.load_mutations(REPO / "tests" / "mutations.yaml")
    assert mutations
    for mutation in mutations:
        text = (REPO / mutation.file).read_text(encoding="utf-8")
        mutate.locate(mutation, text)  # SystemExit naming the mutation when its line is gone or ambiguous
        assert mutate.mutated(mutation, text) != text, mutation.id
        for test in mutation.tests:
            test_file = REPO / test.split("::")[0]
            assert test_file.is_file(), f"mutation {mutation.id}: {test_file} does not exist"
