"""``kitmlflow sync``: a registry repository kept in step with a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.documents import SyncDocument
from kitmlflow_tui.cli.options import (
    FilterFlags,
    RegistryFlags,
    filter_options,
    pack_options,
    registry_arguments,
    registry_options,
    sign_key_option,
)
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    run_guarded,
)
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser, SyncFailedError

if TYPE_CHECKING:
    from kitmlflow_tui.api import SyncRequest
    from kitmlflow_tui.cli.sync_lines import SyncLines
    from kitmlflow_tui.core.sync import SyncObserver, SyncResult


@cli.command(context_settings=CONTEXT)
@click.argument("uri")
@click.option("--to", "to", required=True, metavar="REGISTRY/REPO", help="The repository to keep in step.")
@click.option(
    "--tag-template",
    default="v{version}",
    show_default=True,
    metavar="T",
    help="Each version's tag; fields {version}, {name}, {run_id}, {alias}.",
)
@filter_options
@click.option("--dry-run", is_flag=True, help="Say what would be pushed, skipped or in conflict; change nothing.")
@click.option("--force", is_flag=True, help="Replace a tag that holds another version's ModelKit.")
@click.option(
    "--prune-aliases",
    is_flag=True,
    help="Delete the tags sync made for aliases MLflow no longer has (whole models only).",
)
@pack_options
@registry_options
@sign_key_option
def sync(
    uri: str,
    to: str,
    tag_template: str,
    filters: FilterFlags,
    tracking_uri: str | None,
    jobs: int,
    as_json: bool,
    yes: bool,
    dry_run: bool,
    force: bool,
    prune_aliases: bool,
    packer: str,
    compression: str,
    artifact_format: str,
    network: RegistryFlags,
    sign_key: Path | None,
) -> None:
    """Keep REGISTRY/REPO in step with a registered model: import and push the versions it lacks.

    \b
    mlflow://[host/]models/NAME          every version (FINISHED source runs only)
    mlflow://[host/]models/NAME/VERSION  one version
    mlflow://[host/]models/NAME@ALIAS    the alias's version, and a tag ALIAS pointed at it
    A tag that already holds the same MLflow version and run is left alone: a second sync changes nothing.
    The tag of an alias MLflow no longer has is reported (stale alias); --prune-aliases deletes it.
    """

    def body(out: Output) -> int:
        from kitmlflow_tui.api import prepare_sync

        request = prepare_sync(
            uri,
            to,
            tag_template=tag_template,
            include=filters.includes,
            exclude=filters.excludes,
            max_file_size=filters.max_file_size,
            profile=filters.profile,
            force=force,
            dry_run=dry_run,
            tracking_uri=tracking_uri,
            jobs=jobs,
            packer=packer,
            compression=compression,
            prune_aliases=prune_aliases,
            format=artifact_format,
            **registry_arguments(True, network),
            sign_key=None if dry_run else sign_key,
        )
        if not dry_run and not yes:
            if not interactive():
                raise BadInputError(
                    "kitmlflow sync needs --yes when it cannot ask (no terminal).",
                    hint="Add --yes, or --dry-run to see what it would do.",
                )
            out.console.print("[bold]What the sync would do[/]")
            preview = _records(request.dry_run(), _sync_lines(out))
            _show_sync_summary(out, preview)
            if not click.confirm("Go ahead?", default=True, err=True):
                raise InterruptedByUser("Nothing changed.")
        result = _records(request, _sync_lines(out))
        _show_sync_summary(out, result)
        out.document(SyncDocument(result))
        return result.exit_code

    run_guarded(as_json, body)


def _records(request: SyncRequest, observer: SyncObserver) -> SyncResult:
    """The sync's result, also when versions failed: the records say what happened to each."""
    try:
        return request.run(observer)
    except SyncFailedError as failed:
        return failed.result


def _sync_lines(out: Output) -> SyncLines:
    from kitmlflow_tui.cli.sync_lines import SyncLines

    return SyncLines(out.console, out.err, interactive=out.err.is_terminal and not settings.CI.raw())


def _show_sync_summary(out: Output, result: SyncResult) -> None:
    counts = {action: count for action, count in result.counts().items() if count}
    text = ", ".join(f"{count} {action.replace('_', ' ')}" for action, count in counts.items()) or "no versions"
    prefix = "dry run: " if result.dry_run else ""
    if result.exit_code:
        state = f"exit {result.exit_code}"
    elif counts.get("would_push") or counts.get("would_move_tag"):
        state = "not in step yet"
    elif any(r.action == "stale_alias" and r.digest is not None for r in result.records):
        state = "stale alias tags left" + ("" if result.dry_run else " (--prune-aliases deletes them)")
    else:
        state = "in step"
    out.console.print(
        f"[bold]{prefix}{escape(result.model)} → {escape(result.target)}:[/] {text} · {state}", soft_wrap=True
    )
