"""``kitmlflow login`` and ``logout``: registry credentials in kit's own store."""

from __future__ import annotations

import sys

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.options import RegistryFlags, registry_options
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    run_guarded,
)
from kitmlflow_tui.core.errors import BadInputError, CredentialsRefusedError


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
@click.option("--username", "-u", metavar="USER", help="User name (asked for on a terminal when missing).")
@click.option(
    "--password", "-p", metavar="PASS", help="Password or token (visible in the process list: prefer --password-stdin)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password or token from standard input.")
@registry_options
def login(
    registry: str, username: str | None, password: str | None, password_stdin: bool, network: RegistryFlags
) -> None:
    """Check credentials against REGISTRY and store them where kit keeps its own ($KITOPS_HOME/credentials.json)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core.registry import Credential, parse_registry_host
        from kitmlflow_tui.core.registry import login as registry_login

        host = parse_registry_host(registry)
        settings = network.settings()
        user = username or (click.prompt("Username", err=True) if interactive() else "")
        if not user:
            raise BadInputError("kitmlflow login needs a user name: -u USER.")
        if password is not None and password_stdin:
            raise BadInputError("Give the password with -p or --password-stdin, not both.")
        if password_stdin:
            secret = sys.stdin.read().rstrip("\r\n")
        elif password is not None:
            secret = password
            out.err.print(
                "warning: -p leaves the password in shell history and the process list; use --password-stdin.",
                style="yellow",
            )
        elif interactive():
            secret = click.prompt("Password", hide_input=True, err=True)
        else:
            raise BadInputError("kitmlflow login needs a password: --password-stdin (or -p PASS).")
        if not secret:
            raise BadInputError("The password is empty.")
        try:
            result = registry_login(
                host,
                Credential(user, secret),
                settings,
                on_note=lambda message: out.err.print(f"[dim]→[/] {escape(message)}"),
            )
        except CredentialsRefusedError as exc:  # its hint says to log in: this is the login
            exc.hint = f"Check the user name and the password (or token) for {host}; nothing was stored."
            raise
        if result.verified:
            out.console.print(f"Login succeeded: {escape(host)}; credentials stored in {escape(result.stored_in)}")
        else:
            out.console.print(
                f"{escape(host)} asks for no credentials, so they could not be checked; stored in {escape(result.stored_in)}"
            )
        return 0

    run_guarded(False, body)


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
def logout(registry: str) -> None:
    """Remove the credentials of REGISTRY from kit's store (docker's config is left alone)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core.registry import CredentialStore, parse_registry_host
        from kitmlflow_tui.core.registry import logout as registry_logout

        host = parse_registry_host(registry)
        store = CredentialStore.default()
        removed, path = registry_logout(host, store=store)
        if removed:
            out.console.print(f"Logged out of {escape(host)} (removed from {escape(path)})")
        else:
            out.console.print(f"Not logged in to {escape(host)} (nothing for it in {escape(path)})")
        remaining = store.get(host)
        if remaining is not None:
            out.console.print(
                f"  docker's config still holds credentials for it: {escape(remaining.source)}", style="dim"
            )
        return 0

    run_guarded(False, body)
