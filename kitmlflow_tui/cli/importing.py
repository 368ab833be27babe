"""``kitmlflow import`` (plan, download, Kitfile, pack, push) and ``kitmlflow download`` (the filtered download alone)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.browse import open_wizard
from kitmlflow_tui.cli.options import (
    LocalPath,
    build_spec,
    filter_options,
    pack_options,
    package_overrides,
    parse_uri,
    push_target,
    registry_options,
)
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    plan_document,
    progress_renderer,
    pushed_document,
    run_guarded,
    show_next,
    show_plan,
    show_pushed,
    size_text,
)
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser

if TYPE_CHECKING:
    from kitmlflow_tui.core.kitfile import Kitfile


@cli.command("import", context_settings=CONTEXT)
@click.argument("uri")
@click.option("--tag", "-t", "tag", required=True, metavar="REPO[:TAG]", help="ModelKit reference, e.g. mymodel:v1.")
@filter_options
@click.option("--dry-run", is_flag=True, help="Show the plan and the Kitfile; download nothing.")
@click.option(
    "--kitfile", "kitfile_path", type=LocalPath(dir_okay=False, path_type=Path), help="Use this Kitfile as is."
)
@pack_options
@click.option("--keep-download", is_flag=True, help="Keep the downloaded files in the cache after packing.")
@click.option("--description", metavar="TEXT", help="The Kitfile's package description (over a profile's).")
@click.option(
    "--author", "authors", multiple=True, metavar="NAME", help="A package author (repeatable; over a profile's)."
)
@click.option("--push", is_flag=True, help="After packing, push the ModelKit to the registry -t names.")
@click.option(
    "--allow-no-model",
    is_flag=True,
    help="With --yes, import even when the filters leave out every file of the run's MLflow model.",
)
@registry_options
def import_command(
    uri: str,
    tag: str,
    dry_run: bool,
    kitfile_path: Path | None,
    packer: str,
    compression: str,
    keep_download: bool,
    description: str | None,
    authors: tuple[str, ...],
    push: bool,
    allow_no_model: bool,
    **options: Any,
) -> None:
    """Import an MLflow run (or registered model) as a ModelKit (and push it with --push)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core import pipeline
        from kitmlflow_tui.core.modelkit_reference import parse_modelkit_reference, parse_push_reference

        reference = parse_uri(uri)
        tag_ref = parse_push_reference(tag) if push else parse_modelkit_reference(tag)
        push_to, registry = push_target(tag_ref, push, options)
        spec, profile = build_spec(
            options["includes"], options["excludes"], options["max_file_size"], options["profile"]
        )
        if kitfile_path is not None:  # a Kitfile kit would reject fails before any byte moves
            _check_kitfile(kitfile_path)
        if not dry_run and not options["yes"]:
            if not interactive():
                raise BadInputError(
                    "kitmlflow import needs --yes when it cannot ask (no terminal).",
                    hint="Add --yes (filters come from --include/--exclude/--max-file-size/--profile), or --dry-run.",
                )
            # A person at a terminal reviews the selection in the wizard, opened at the run's artifacts.
            return open_wizard(reference, tracking_uri_flag=options["tracking_uri"], tag=tag, push=push, spec=spec)
        import_options = pipeline.ImportOptions(
            tag=tag_ref,
            packer=packer,
            compression=compression,
            kitfile_path=kitfile_path,
            keep_download=keep_download,
            overrides=package_overrides(profile, description, authors),
            jobs=options["jobs"],
            push_to=push_to,
            registry=registry,
        )
        renderer = progress_renderer(out)
        session = pipeline.plan(
            reference, spec, tracking_uri_flag=options["tracking_uri"], jobs=options["jobs"], observer=renderer
        )
        session = pipeline.settle_layers(session, import_options, renderer)  # what the ModelKit cannot hold
        _check_model_kept(out, session, refuse=options["yes"] and not dry_run and not allow_no_model)
        document = plan_document(session)
        show_plan(out, session)
        if dry_run:
            kitfile = pipeline.preview_kitfile(session, import_options, renderer)
            document["kitfile"] = kitfile.to_dict()
            _show_kitfile(out, kitfile)
            out.document(document)
            return 0
        with renderer.live():
            result = pipeline.run_import(session, import_options, renderer)
        out.console.print(
            f"[green]✓[/] {escape(result.reference)} {result.digest[:19]} · {size_text(result.size)} · "
            f"packed by {result.packer}"
        )
        if result.pushed is not None:
            show_pushed(out, result.pushed)
        show_next(out, _next_commands(result))
        document.update(
            kitfile=result.kitfile.to_dict(),
            reference=result.reference,
            digest=result.digest,
            packer=result.packer,
            size=result.size,
            downloaded_bytes=result.download.downloaded_bytes,
            reused_bytes=result.download.reused_bytes,
        )
        if result.pushed is not None:
            document["pushed"] = pushed_document(result.pushed)
        out.document(document)
        return 0

    run_guarded(options["as_json"], body)


def _check_model_kept(out: Output, session, *, refuse: bool) -> None:
    """Say so when the filters leave out the model MLflow knows about (all of it: refused when ``refuse``)."""
    from kitmlflow_tui.core.selection.model_coverage import model_coverage, require_a_model

    coverage = model_coverage(session.plan)
    if refuse:
        require_a_model(coverage)
    for warning in coverage.warnings():
        out.warn(warning)


def _next_commands(result) -> list[list[str]]:
    """What to run next: for a pushed ModelKit, pull or unpack it from its registry (with the flags kit needs to
    reach it); else push it somewhere, or unpack it from local storage, under the name kit resolves."""
    from kitmlflow_tui.core.next_commands import kit_words, pulled_words

    if result.pushed is not None:
        return pulled_words(result.pushed.reference, result.pushed.access)
    return [
        kit_words("push", result.reference, "REGISTRY/REPO:TAG"),
        kit_words("unpack", result.reference, "-d", "DIR"),
    ]


def _check_kitfile(path: Path) -> None:
    """Parse and validate a --kitfile up front (paths in it are checked against the files later)."""
    from kitmlflow_tui.core.kitfile import load_kitfile_text
    from kitmlflow_tui.core.pipeline import read_kitfile

    load_kitfile_text(read_kitfile(path), source=str(path))


def _show_kitfile(out: Output, kitfile: Kitfile) -> None:
    from rich.syntax import Syntax

    from kitmlflow_tui.core.kitfile import dump_kitfile

    text = dump_kitfile(kitfile)
    out.console.print("[bold]Kitfile[/]")
    if out.console.is_terminal:
        out.console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:  # logs and pipes get the YAML exactly, never cropped to a width
        out.console.out(text, highlight=False, end="")


@cli.command(context_settings=CONTEXT)
@click.argument("uri")
@click.option(
    "--dest", "-d", required=True, type=LocalPath(file_okay=False, path_type=Path), help="Folder to download into."
)
@filter_options
@click.option("--any-status", is_flag=True, help="Also download a run that is not FINISHED (RUNNING, FAILED, KILLED).")
def download(uri: str, dest: Path, any_status: bool, **options: Any) -> None:
    """Download the selected artifacts of a run (no Kitfile, no pack)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.core import pipeline

        reference = parse_uri(uri)
        spec, _profile = build_spec(
            options["includes"], options["excludes"], options["max_file_size"], options["profile"]
        )
        if not options["yes"] and not interactive():
            raise BadInputError(
                "kitmlflow download needs --yes when it cannot ask (no terminal).",
                hint="Add --yes; filters come from --include/--exclude/--max-file-size/--profile.",
            )
        renderer = progress_renderer(out)
        session = pipeline.plan(
            reference,
            spec,
            tracking_uri_flag=options["tracking_uri"],
            jobs=options["jobs"],
            observer=renderer,
            command="download",
            any_status=any_status,
        )
        show_plan(out, session)
        if not options["yes"] and not click.confirm(
            f"Download {len(session.plan.selected)} files into {dest}?", default=True, err=True
        ):
            raise InterruptedByUser("Nothing downloaded.")
        with renderer.live():
            result = pipeline.download(session, dest, jobs=options["jobs"], observer=renderer)
        out.console.print(
            f"[green]✓[/] {len(result.paths)} files in {escape(str(result.dest))} "
            f"({size_text(result.downloaded_bytes)} moved, {size_text(result.reused_bytes)} already there)"
        )
        document = plan_document(session)
        document.update(dest=str(result.dest.resolve()), downloaded_bytes=result.downloaded_bytes)
        out.document(document)
        return 0

    run_guarded(options["as_json"], body)
