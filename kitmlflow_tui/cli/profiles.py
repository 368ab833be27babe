"""``kitmlflow profiles list|show|delete``: saved filter profiles."""

from __future__ import annotations

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.options import complete_profiles
from kitmlflow_tui.cli.output import (
    Output,
    run_guarded,
)


@cli.group(context_settings=CONTEXT)
def profiles() -> None:
    """List, show and delete saved filter profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """Names of the saved profiles."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core.selection.profiles import list_profiles, profiles_dir

        names = list_profiles()
        for name in names:
            click.echo(name)
        if not names:
            click.echo(f"No profiles yet (they live in {profiles_dir()}).", err=True)
        return 0

    run_guarded(False, body)


@profiles.command("show")
@click.argument("name", shell_complete=complete_profiles)
def profiles_show(name: str) -> None:
    """Print a profile's YAML."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core.selection.profiles import load_named_profile

        profile = load_named_profile(name)
        click.echo(f"# {profile.path}", err=True)
        click.echo(profile.to_yaml(), nl=False)
        return 0

    run_guarded(False, body)


@profiles.command("delete")
@click.argument("name", shell_complete=complete_profiles)
def profiles_delete(name: str) -> None:
    """Delete a saved profile."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core.selection.profiles import delete_profile

        path = delete_profile(name)
        click.echo(f"Deleted {path}", err=True)
        return 0

    run_guarded(False, body)
