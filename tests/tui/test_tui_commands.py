"""The commands the wizard shows: laid out at any width, a real shell reads them back word for word."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.tui.commands import import_words, one_line, shell_lines


def words_bash_reads(lines: list[str]) -> list[str]:
    """What bash makes of the lines pasted as they are (the command ``words`` prints its arguments)."""
    script = 'words() { for word in "$@"; do printf \'%s\\0\' "$word"; done; }\n' + "\n".join(lines)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


WORD = st.text(alphabet=st.sampled_from(list("abcxyz019/._-:=*?[]!#~$'\" \\é日") + ["\t"]), min_size=1, max_size=90)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(WORD, min_size=0, max_size=8), width=st.integers(min_value=12, max_value=130))
def test_any_words_at_any_width_paste_back_as_the_same_words(words: list[str], width: int) -> None:
    command = ["words", *words]
    lines = shell_lines(command, width, indent="  ")
    assert all(cell_len(line) <= width for line in lines), lines
    assert words_bash_reads(lines) == words


def test_a_line_breaks_between_arguments_with_a_continuation() -> None:
    words = import_words(
        "mlflow://experiments/1/runs/7767f6566bb84163abf5daaf939c1b01",
        "resnet18-baseline:7767f656",
        FilterSpec(exclude=("*.pt",)),
        "sqlite:////tmp/store/mlflow.db",
    )
    lines = shell_lines(words, 80)
    assert lines == [
        "kitmlflow import mlflow://experiments/1/runs/7767f6566bb84163abf5daaf939c1b01 \\",
        "  --tracking-uri sqlite:////tmp/store/mlflow.db -t resnet18-baseline:7767f656 \\",
        "  --yes --exclude '*.pt'",
    ]
    assert one_line(words) == " ".join(line.removesuffix(" \\").strip() for line in lines)


def test_the_import_command_carries_the_package_fields_and_the_push() -> None:
    words = import_words(
        "mlflow://runs/abc",
        "localhost:5000/ml/m:v1",
        FilterSpec(include=("/a b/",), exclude=("/x*",)),
        description="A model, described",
        authors=("Dana", "Lee"),
        push=True,
    )
    assert one_line(words) == (
        "kitmlflow import mlflow://runs/abc -t localhost:5000/ml/m:v1 --yes --include '/a b/' --exclude '/x*' "
        "--description 'A model, described' --author Dana --author Lee --push"
    )


def test_the_import_command_carries_the_format_and_the_signing_key() -> None:
    words = import_words(
        "mlflow://runs/abc",
        "registry.example.com/ml/m:v1",
        FilterSpec(),
        push=True,
        artifact_format="modelpack",
        sign_key=Path("/keys/my key.pem"),
    )
    assert one_line(words) == (
        "kitmlflow import mlflow://runs/abc -t registry.example.com/ml/m:v1 --yes --format modelpack --push "
        "--sign-key '/keys/my key.pem'"
    )
    # The default format is the default: no flag.
    assert "--format" not in import_words("mlflow://runs/abc", "m:v1", FilterSpec(), artifact_format="modelkit")
