"""``kitmlflow import`` (plan, download, Kitfile, pack, push) and ``kitmlflow download`` (the filtered download alone)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.browse import open_wizard
from kitmlflow_tui.cli.documents import DownloadDocument, ImportDocument
from kitmlflow_tui.cli.options import (
    FilterFlags,
    LocalPath,
    RegistryFlags,
    check_registry_flags,
    filter_options,
    given_on_command_line,
    pack_options,
    registry_arguments,
    registry_options,
    sign_key_option,
)
from kitmlflow_tui.cli.output import (
    Output,
    escape,
    interactive,
    progress_renderer,
    run_guarded,
    show_attestation,
    show_next,
    show_plan,
    show_pushed,
    size_text,
)
from kitmlflow_tui.core.errors import BadInputError, InterruptedByUser

if TYPE_CHECKING:
    from kitmlflow_tui.core.kitfile import Kitfile
    from kitmlflow_tui.core.registry import PushResult


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
    "--force",
    is_flag=True,
    help="With --push: replace a tag that holds another ModelKit (another model, version or run).",
)
@click.option(
    "--allow-no-model",
    is_flag=True,
    help="With --yes, import even when the filters leave out every file of the run's MLflow model.",
)
@registry_options
@sign_key_option
@click.option(
    "--attestation-output",
    type=LocalPath(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the provenance attestation here (signed with --sign-key, else the bare in-toto statement).",
)
def import_command(
    uri: str,
    tag: str,
    filters: FilterFlags,
    tracking_uri: str | None,
    jobs: int,
    as_json: bool,
    yes: bool,
    dry_run: bool,
    kitfile_path: Path | None,
    packer: str,
    compression: str,
    artifact_format: str,
    keep_download: bool,
    description: str | None,
    authors: tuple[str, ...],
    push: bool,
    force: bool,
    allow_no_model: bool,
    network: RegistryFlags,
    sign_key: Path | None,
    attestation_output: Path | None,
) -> None:
    """Import an MLflow run (or registered model) as a ModelKit (and push it with --push)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.api import prepare_import

        check_registry_flags(push)
        request = prepare_import(
            uri,
            tag,
            include=filters.includes,
            exclude=filters.excludes,
            max_file_size=filters.max_file_size,
            profile=filters.profile,
            push=push,
            force=force,
            tracking_uri=tracking_uri,
            jobs=jobs,
            packer=packer,
            compression=compression,
            kitfile=kitfile_path,
            description=description,
            authors=authors,
            dry_run=dry_run,
            keep_download=keep_download,
            format=artifact_format,
            sign_key=_sign_key(sign_key, push, attestation_output),
            attestation_output=attestation_output,
            allow_no_model=allow_no_model,
            **registry_arguments(push, network),
        )
        if not dry_run and not yes:
            if not interactive():
                raise BadInputError(
                    "kitmlflow import needs --yes when it cannot ask (no terminal).",
                    hint="Add --yes (filters come from --include/--exclude/--max-file-size/--profile), or --dry-run.",
                )
            # A person at a terminal reviews the selection in the wizard, opened at the run's artifacts.
            return open_wizard(
                request.reference,
                tracking_uri_flag=tracking_uri,
                tag=tag,
                push=push,
                spec=request.spec,
                artifact_format=artifact_format,
                sign_key=sign_key,
            )
        renderer = progress_renderer(out)
        planned = request.plan(renderer)  # with what the ModelKit cannot hold left out
        for warning in planned.warnings:  # a model the filters leave out (all of it: refused unless allowed)
            out.warn(warning)
        show_plan(out, planned.report)
        if dry_run:
            kitfile = planned.preview().kitfile
            _show_kitfile(out, kitfile)
            out.document(ImportDocument(planned.report, kitfile, artifact_format))
            return 0
        with renderer.live():
            result = planned.run()
        assert result.reference is not None and result.digest is not None and result.size is not None
        out.console.print(
            f"[green]✓[/] {escape(result.reference)} {result.digest[:19]} · {size_text(result.size)} · "
            f"packed by {result.packer}"
        )
        if result.pushed is not None:
            show_pushed(out, result.pushed)
        if result.attestation is not None:
            show_attestation(out, result.attestation)
        show_next(out, _next_commands(result.reference, result.pushed))
        out.document(ImportDocument(planned.report, result.kitfile, artifact_format, imported=result))
        return 0

    run_guarded(as_json, body)


def _next_commands(reference: str, pushed: PushResult | None) -> list[list[str]]:
    """What to run next: for a pushed ModelKit, pull or unpack it from its registry (with the flags kit needs to
    reach it); else push it somewhere, or unpack it from local storage, under the name kit resolves."""
    from kitmlflow_tui.core.next_commands import kit_words, pulled_words

    if pushed is not None:
        return pulled_words(pushed.reference, pushed.access)
    return [kit_words("push", reference, "REGISTRY/REPO:TAG"), kit_words("unpack", reference, "-d", "DIR")]


def _sign_key(sign_key: Path | None, push: bool, output: Path | None) -> Path | None:
    """--sign-key as given; KITMLFLOW_SIGN_KEY of the environment only for an import that pushes or writes an
    attestation (the variable is meant for those), never an error for one that does neither."""
    if sign_key is not None and not push and output is None and not given_on_command_line("sign_key"):
        return None
    return sign_key


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
def download(
    uri: str,
    dest: Path,
    filters: FilterFlags,
    tracking_uri: str | None,
    jobs: int,
    as_json: bool,
    yes: bool,
    any_status: bool,
) -> None:
    """Download the selected artifacts of a run (no Kitfile, no pack)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.api import prepare_download

        request = prepare_download(
            uri,
            dest,
            include=filters.includes,
            exclude=filters.excludes,
            max_file_size=filters.max_file_size,
            profile=filters.profile,
            tracking_uri=tracking_uri,
            jobs=jobs,
            any_status=any_status,
        )
        if not yes and not interactive():
            raise BadInputError(
                "kitmlflow download needs --yes when it cannot ask (no terminal).",
                hint="Add --yes; filters come from --include/--exclude/--max-file-size/--profile.",
            )
        renderer = progress_renderer(out)
        planned = request.plan(renderer)
        show_plan(out, planned.report)
        if not yes and not click.confirm(
            f"Download {len(planned.report.selected)} files into {dest}?", default=True, err=True
        ):
            raise InterruptedByUser("Nothing downloaded.")
        with renderer.live():
            result = planned.run()
        out.console.print(
            f"[green]✓[/] {len(result.paths)} files in {escape(str(result.dest))} "
            f"({size_text(result.downloaded_bytes)} moved, {size_text(result.reused_bytes)} already there)"
        )
        out.document(DownloadDocument(result))
        return 0

    run_guarded(as_json, body)
