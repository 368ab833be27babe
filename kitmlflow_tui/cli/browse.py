"""The commands that open the wizard: ``browse`` (the default) and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.options import (
    LocalPath,
    parse_uri,
)
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    run_guarded,
)
from kitmlflow_tui.core.errors import BadInputError

if TYPE_CHECKING:
    from kitmlflow_tui.core.reference import Reference
    from kitmlflow_tui.core.selection.plan import FilterSpec


def open_wizard(
    reference: Reference | None,
    *,
    tracking_uri_flag: str | None = None,
    tag: str | None = None,
    push: bool = False,
    spec: FilterSpec | None = None,
    artifact_format: str | None = None,
    sign_key: Path | None = None,
) -> int:
    """The Textual wizard, for a person at a terminal; scripts get a clear refusal instead of a hang."""
    if not interactive():
        raise BadInputError(
            "The wizard needs a terminal (stdin and stdout are not one).",
            hint="Headless: kitmlflow import URI -t REPO:TAG --yes, or kitmlflow download URI --dest DIR --yes.",
        )
    from kitmlflow_tui.tui.app import run_wizard

    return run_wizard(
        reference,
        tracking_uri_flag=tracking_uri_flag,
        tag=tag,
        push=push,
        spec=spec,
        artifact_format=artifact_format,
        sign_key=sign_key,
    )


# Tracking URIs a user may type where the wizard takes an mlflow:// reference.
_SERVER_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def _names_a_server(uri: str) -> bool:
    scheme, sep, _rest = uri.partition(":")
    return bool(sep) and scheme.lower() in _SERVER_SCHEMES


@cli.command(context_settings=CONTEXT)
@click.argument("uri", required=False)
@click.option("--tracking-uri", metavar="URI", help="Tracking server when the URI names no host.")
def browse(uri: str | None, tracking_uri: str | None = None) -> None:
    """Open the wizard (experiments → runs → artifacts → review → import).

    URI is an mlflow:// reference, or a tracking server (http://HOST:PORT, sqlite:///PATH), as --tracking-uri."""

    def body(out: Output) -> int:
        reference, flag = None, tracking_uri
        if uri and _names_a_server(uri):  # `kitmlflow http://127.0.0.1:5000`: that server, as --tracking-uri
            if flag and flag.rstrip("/") != uri.rstrip("/"):
                raise BadInputError(f"Two servers given: {uri} and --tracking-uri {flag}; keep one.")
            flag = uri
        elif uri:
            reference = parse_uri(uri)
        return open_wizard(reference, tracking_uri_flag=flag)

    run_guarded(False, body)


@cli.command(context_settings=CONTEXT)
@click.option("--root", type=LocalPath(file_okay=False, path_type=Path), help="Where to build the store.")
@click.option("--rebuild", is_flag=True, help="Build it again even when it exists.")
@click.option("--print-uri", is_flag=True, help="Only build it and print its tracking URI.")
@click.option("--print-run", metavar="ROLE", help="Only build it and print the id of the run with this role.")
def demo(root: Path | None, rebuild: bool, print_uri: bool, print_run: str | None) -> None:
    """Build a small local MLflow store with realistic runs (cached) and open the wizard on it."""

    def body(out: Output) -> int:
        from kitmlflow_tui.demo import build_demo_store, default_demo_root

        def told(number: int, total: int, what: str) -> None:  # on stderr: --print-uri's stdout stays the URI
            if number == 0:
                where = root or default_demo_root()
                click.echo(f"Building the demo MLflow store in {where} (once: later runs reuse it)…", err=True)
            click.echo(f"  [{number}/{total}] {what}" if total else f"  {what}…", err=True)

        store = build_demo_store(root, force=rebuild, on_step=told)
        if print_uri:
            click.echo(store.tracking_uri)
            return 0
        if print_run:
            if print_run not in store.runs:
                raise BadInputError(f"No demo run with role {print_run!r}; roles: {', '.join(sorted(store.runs))}.")
            click.echo(store.runs[print_run])
            return 0
        if interactive():
            from kitmlflow_tui.core.reference import BrowseRef

            return open_wizard(BrowseRef(store.tracking_uri))
        from kitmlflow_tui.core.next_commands import shell_line

        out.console.print(f"Demo store: {escape(store.tracking_uri)}", soft_wrap=True)
        finished = store.runs["finished"]
        words = ["kitmlflow", "import", f"mlflow://runs/{finished}", "--tracking-uri", store.tracking_uri]
        out.console.print(
            f"Try: {escape(shell_line([*words, '-t', 'demo-classifier:v1', '--dry-run']))}", soft_wrap=True
        )
        for role, run_id in sorted(store.runs.items()):
            out.console.print(f"  {role:<22} mlflow://runs/{run_id}")
        return 0

    run_guarded(False, body)
