"""``kitmlflow sync``: a registry repository kept in step with a registered model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.options import (
    build_spec,
    filter_options,
    pack_options,
    package_overrides,
    parse_uri,
    registry_options,
    registry_settings,
)
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    run_guarded,
)
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser


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
@pack_options
@registry_options
def sync(uri: str, to: str, tag_template: str, dry_run: bool, force: bool, **options: Any) -> None:
    """Keep REGISTRY/REPO in step with a registered model: import and push the versions it lacks.

    \b
    mlflow://[host/]models/NAME          every version (FINISHED source runs only)
    mlflow://[host/]models/NAME/VERSION  one version
    mlflow://[host/]models/NAME@ALIAS    the alias's version, and a tag ALIAS pointed at it
    A tag that already holds the same MLflow version and run is left alone: a second sync changes nothing.
    """

    def body(out: Output) -> int:
        from kitmlflow_tui.core import sync as core
        from kitmlflow_tui.core.reference import ModelRef

        reference = parse_uri(uri, all_versions=True)
        if not isinstance(reference, ModelRef):
            raise BadInputError(
                "kitmlflow sync takes a registered model: mlflow://[host/]models/NAME[@ALIAS|/VERSION].",
                hint="To import and push one run: kitmlflow import URI -t REGISTRY/REPO:TAG --yes --push.",
            )
        spec, profile = build_spec(
            options["includes"], options["excludes"], options["max_file_size"], options["profile"]
        )
        sync_options = core.SyncOptions(
            target=core.parse_target(to),
            spec=spec,
            template=core.TagTemplate.parse(tag_template),
            registry=registry_settings(options),
            force=force,
            dry_run=dry_run,
            packer=options["packer"],
            compression=options["compression"],
            format=options["artifact_format"],
            overrides=package_overrides(profile, None, ()),
            jobs=options["jobs"],
            tracking_uri_flag=options["tracking_uri"],
        )
        core.check_sync(reference, sync_options)
        if not dry_run and not options["yes"]:
            if not interactive():
                raise BadInputError(
                    "kitmlflow sync needs --yes when it cannot ask (no terminal).",
                    hint="Add --yes, or --dry-run to see what it would do.",
                )
            out.console.print("[bold]What the sync would do[/]")
            preview = core.run_sync(reference, replace(sync_options, dry_run=True), _sync_lines(out))
            _show_sync_summary(out, preview)
            if not click.confirm("Go ahead?", default=True, err=True):
                raise InterruptedByUser("Nothing changed.")
        result = core.run_sync(reference, sync_options, _sync_lines(out))
        _show_sync_summary(out, result)
        out.document(
            {
                "model": {"name": result.model, "tracking_uri": result.tracking_uri, "alias": result.alias},
                "target": result.target,
                "dry_run": result.dry_run,
                "records": [record.as_dict() for record in result.records],
                "summary": result.counts(),
                "exit_code": result.exit_code,
            }
        )
        return result.exit_code

    run_guarded(options["as_json"], body)


def _sync_lines(out: Output):
    from kitmlflow_tui.cli.progress import SyncLines

    return SyncLines(out.console, out.err, interactive=out.err.is_terminal and not settings.CI.raw())


def _show_sync_summary(out: Output, result) -> None:
    counts = {action: count for action, count in result.counts().items() if count}
    text = ", ".join(f"{count} {action.replace('_', ' ')}" for action, count in counts.items()) or "no versions"
    prefix = "dry run: " if result.dry_run else ""
    if result.exit_code:
        state = f"exit {result.exit_code}"
    elif counts.get("would_push") or counts.get("would_move_tag"):
        state = "not in step yet"
    else:
        state = "in step"
    out.console.print(
        f"[bold]{prefix}{escape(result.model)} → {escape(result.target)}:[/] {text} · {state}", soft_wrap=True
    )
