"""Profiles: strict YAML, errors that name the key and line, atomic saves, the profiles commands."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kitmlflow_tui.cli import cli
from kitmlflow_tui.core.errors import BadInputError
from kitmlflow_tui.core.selection.plan import FilterSpec
from kitmlflow_tui.core.selection.profiles import (
    PackageDefaults,
    Profile,
    delete_profile,
    list_profiles,
    load_profile,
    parse_profile,
    profiles_dir,
    save_profile,
)
from tests.support.fuzz import examples


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def test_profiles_live_under_xdg_config_home(config_home: Path) -> None:
    assert profiles_dir() == config_home / "kitmlflow" / "profiles"


def test_round_trip_and_listing() -> None:
    profile = Profile(
        "weights-only",
        FilterSpec(include=("*.pt", "model/"), exclude=("checkpoints/epoch_00*",), max_file_size=2_000_000_000),
        PackageDefaults(description="Weights", authors=("ml-team",), license="Apache-2.0"),
    )
    path = save_profile(profile)
    loaded = load_profile("weights-only")
    assert loaded.spec == profile.spec and loaded.package == profile.package
    assert load_profile(str(path)).spec == profile.spec  # by path, too
    assert list_profiles() == ["weights-only"]
    assert not list(path.parent.glob("*.tmp"))
    delete_profile("weights-only")
    assert list_profiles() == []


def test_unknown_keys_name_the_key_and_the_line() -> None:
    text = "include: ['*.pt']\nexclud: ['x']\n"
    with pytest.raises(BadInputError) as caught:
        parse_profile(text, name="p", source="p.yaml")
    assert caught.value.exit_code == 2
    assert "line 2" in caught.value.message and "exclud" in caught.value.message
    with pytest.raises(BadInputError, match=r"line 3: unknown key package\.licence"):
        parse_profile("include: []\npackage:\n  licence: MIT\n", name="p", source="p.yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("max_file_size: 2 parsecs\n", "line 1"),
        ("include: '*.pt'\ninclude: x\n", "appears twice"),
        ("include: {a: 1}\n", "must be a list of strings"),
        ("include: [[1]]\n", "items must be strings"),
        ("- a\n- b\n", "expected a mapping"),
        ("include: ['[abc']\n", "'[' has no closing ']'"),
        ("include: [a\n", "not valid YAML"),
        ("package: [1]\n", "'package' must be a mapping"),
    ],
)
def test_bad_profiles_are_exit_2(text: str, fragment: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_profile(text, name="p", source="p.yaml")
    assert fragment in caught.value.message


def test_missing_profile_lists_the_known_ones() -> None:
    save_profile(Profile("small", FilterSpec(max_file_size=10)))
    with pytest.raises(BadInputError) as caught:
        load_profile("nope")
    assert "small" in caught.value.hint


def test_invalid_names_are_refused() -> None:
    with pytest.raises(BadInputError):
        save_profile(Profile("../escape", FilterSpec()))


def test_a_failed_save_keeps_the_old_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_profile(Profile("keep", FilterSpec(include=("a",))))
    import os

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError):
            save_profile(Profile("keep", FilterSpec(include=("b",))))
    assert load_profile("keep").spec.include == ("a",)
    assert [p.name for p in path.parent.iterdir()] == ["keep.yaml"]


def test_profiles_commands() -> None:
    save_profile(Profile("weights", FilterSpec(include=("*.pt",))))
    runner = CliRunner()
    listed = runner.invoke(cli, ["profiles", "list"])
    assert listed.exit_code == 0 and listed.stdout.strip() == "weights"
    shown = runner.invoke(cli, ["profiles", "show", "weights"])
    assert shown.exit_code == 0 and "include:\n- '*.pt'" in shown.stdout
    assert runner.invoke(cli, ["profiles", "show", "missing"]).exit_code == 2
    assert runner.invoke(cli, ["profiles", "delete", "weights"]).exit_code == 0
    assert runner.invoke(cli, ["profiles", "delete", "weights"]).exit_code == 2


@given(st.text(max_size=300))
@settings(max_examples=examples(1000), deadline=None)
def test_the_loader_never_crashes(text: str) -> None:
    with contextlib.suppress(BadInputError):
        parse_profile(text, name="fuzz")


@pytest.mark.parametrize("command", ["show", "delete"])
@pytest.mark.parametrize("name", ["config.yaml", "./config.yaml", "../config", ".hidden", "a..b", "sub/config"])
def test_profile_commands_take_names_only_and_never_touch_a_file_outside_the_profiles_folder(
    command: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 item 8: ``profiles delete config.yaml`` deleted ./config.yaml."""
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    bystanders = [work / "config.yaml", work / "sub" / "config.yaml", work.parent / "config", work / ".hidden"]
    for path in bystanders:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("include: ['*']\n")
    out = CliRunner().invoke(cli, ["profiles", command, name])
    assert out.exit_code == 2, out.output
    assert "profile name" in out.output and "Traceback" not in out.output
    assert all(path.read_text() == "include: ['*']\n" for path in bystanders)


@pytest.mark.parametrize("name", ["params.yaml", "../params", ".params", "a/b", "x" * 65])
def test_saving_takes_a_name_only(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wizard's "save profile" named ``params.yaml`` overwrote ./params.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("lr: 0.1\n")
    with pytest.raises(BadInputError) as caught:
        save_profile(Profile(name, FilterSpec(include=("*.pt",))))
    assert (tmp_path / "params.yaml").read_text() == "lr: 0.1\n"
    if name == "params.yaml":
        assert "--profile ./params.yaml" in caught.value.hint


def test_only_a_value_with_a_slash_is_read_as_a_file_by_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("include: ['*.pt']\n")
    assert load_profile("./params.yaml").spec.include == ("*.pt",)
    with pytest.raises(BadInputError, match="without its .yaml"):
        load_profile("params.yaml")
