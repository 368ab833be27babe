"""A run named by a unique prefix of its id, as git takes commits: the 8 characters the wizard's runs
table shows work on the command line (issue 15, item 9). Against the demo MLflow store."""

from __future__ import annotations

import pytest

from kitmlflow_tui.core.catalogue.gateway import unique_run_id
from kitmlflow_tui.core.errors import BadInputError, NotFoundError


def test_the_8_characters_the_table_shows_import_that_run(kitmlflow, demo_store) -> None:
    run_id = demo_store.runs["finished"]
    for uri in (
        f"mlflow://runs/{run_id[:8]}",
        f"mlflow://experiments/{demo_store.experiments['vision']}/runs/{run_id[:8]}",
    ):
        out = kitmlflow("import", uri, "--tracking-uri", demo_store.tracking_uri, "-t", "p:1", "--dry-run", "--json")
        assert out.code == 0, out.stderr
        assert out.json["run"]["run_id"] == run_id


def test_a_prefix_no_run_has_is_exit_4(kitmlflow, demo_store) -> None:
    from kitmlflow_tui.core.catalogue import Catalogue

    taken = {run_id[:4] for run_id in Catalogue(demo_store.tracking_uri)._run_ids(None)}  # every run, sweeps too
    prefix = next(p for p in (f"{n:04x}" for n in range(0x10000)) if p not in taken)
    out = kitmlflow(
        "import", f"mlflow://runs/{prefix}", "--tracking-uri", demo_store.tracking_uri, "-t", "p:1", "--dry-run"
    )
    assert out.code == 4
    assert f"No run of any experiment has an id starting with {prefix}." in out.stderr


def test_an_ambiguous_prefix_names_the_runs_and_asks_for_more() -> None:
    ids = ["abcd" + "0" * 28, "abcd" + "1" * 28, "abce" + "2" * 28]
    assert unique_run_id("abce", ids) == ids[2]
    with pytest.raises(BadInputError) as raised:
        unique_run_id("abcd", ids, "7")
    assert raised.value.message == (
        f"The run id prefix abcd is ambiguous: 2 runs of experiment 7 start with it ({ids[0]}, {ids[1]})."
    )
    with pytest.raises(NotFoundError):
        unique_run_id("ffff", ids)
