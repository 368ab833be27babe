"""The command line: browse (default), import, download, sync, login, logout, profiles, demo.

Only this module and the TUI turn errors into text. Heavy imports (mlflow, textual) happen inside
commands, so ``kitmlflow --help`` stays instant.

Over 500 lines on purpose: it is the command-line contract (docs/architecture.md), every command's
options and their --json documents in one place where a reader checks them against the contract;
what each command does is one call into the core.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kitmlflow_tui import __version__, disable_mlflow_telemetry
from kitmlflow_tui.errors import BadInputError, InterruptedByUser, KitmlflowError, as_kitmlflow_error, scrub_secrets

if TYPE_CHECKING:
    from kitmlflow_tui.kitfile import Kitfile

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class LocalPath(click.Path):
    """click.Path, with a NUL byte refused as a usage error (exit 2): ``os.stat`` raises ValueError on one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if "\x00" in os.fsdecode(value):
            self.fail("a path cannot contain a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


class DefaultToBrowse(click.Group):
    """``kitmlflow [URI]`` opens the wizard: anything that is not a command goes to ``browse``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        group_options = {"-h", "--help", "--version"}
        if args and args[0] not in self.commands and args[0] not in group_options:
            args = ["browse", *args]  # also `kitmlflow --tracking-uri URI`
        return super().parse_args(ctx, args)


@click.group(cls=DefaultToBrowse, invoke_without_command=True, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="kitmlflow")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Turn a finished MLflow run into a KitOps ModelKit, choosing exactly which artifacts go in.

    \b
    kitmlflow [URI]                                  browse a tracking server in the wizard
    kitmlflow import URI -t REPO[:TAG] --yes         headless import (CI, scripts)
    kitmlflow import URI -t REG/REPO:TAG --yes --push   ... and push it to the registry
    kitmlflow sync mlflow://models/NAME --to REG/REPO --yes   keep a registry in step with a model's versions
    kitmlflow login REGISTRY -u USER --password-stdin   registry credentials (kit's store)
    kitmlflow download URI --dest DIR                the filtered twin of `mlflow artifacts download`
    kitmlflow profiles list|show|delete              saved filter profiles
    kitmlflow demo                                   a local demo store, opened in the wizard

    URIs: mlflow://[host/]experiments/EXP/runs/RUN, mlflow://[host/]runs/RUN,
    mlflow://[host/]models/NAME/VERSION, mlflow://[host/]models/NAME@ALIAS (sync: also models/NAME).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(browse, uri=None)


# -- shared options ----------------------------------------------------------------------------
def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--include", "includes", multiple=True, metavar="GLOB", help="Take only matching files (repeatable)."
        ),
        click.option(
            "--exclude",
            "excludes",
            multiple=True,
            metavar="GLOB",
            help="Leave out matching files (repeatable; wins over --include).",
        ),
        click.option("--max-file-size", metavar="SIZE", help="Leave out files larger than SIZE (500MB, 2GiB)."),
        click.option("--profile", metavar="NAME|PATH", help="A saved filter profile; flags add to it."),
        click.option(
            "--tracking-uri",
            metavar="URI",
            help="Tracking server when the mlflow:// URI names no host (else MLFLOW_TRACKING_URI).",
        ),
        click.option(
            "--jobs", "-j", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel transfers."
        ),
        click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout; human text goes to stderr."),
        click.option("--yes", "-y", is_flag=True, help="Never prompt (for scripts and CI)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def pack_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How a ModelKit is packed: shared by import and sync."""
    options = [
        click.option(
            "--packer",
            type=click.Choice(["auto", "kit", "native"]),
            default="auto",
            show_default=True,
            help="kit: the real `kit pack`; native: kitmlflow's own writer; auto: kit when installed.",
        ),
        click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_spec(includes: tuple[str, ...], excludes: tuple[str, ...], max_file_size: str | None, profile: str | None):
    """The filter spec of a command: the profile's, with the flags added."""
    from kitmlflow_tui.selection import FilterSpec, parse_size

    flags = FilterSpec(
        include=tuple(includes),
        exclude=tuple(excludes),
        max_file_size=parse_size(max_file_size, what="--max-file-size") if max_file_size else None,
    )
    loaded = None
    if profile:
        from kitmlflow_tui.profiles import load_profile

        loaded = load_profile(profile)
        spec = loaded.spec.merged(flags)
    else:
        spec = flags
    spec.validate()
    return spec, loaded


class Output:
    """Where text goes: stdout normally, stderr when stdout carries the JSON document."""

    def __init__(self, as_json: bool) -> None:
        from rich.console import Console

        self.as_json = as_json
        self.console = Console(stderr=as_json, highlight=False, soft_wrap=False, emoji=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

    def document(self, data: dict) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            sys.stdout.flush()


def run_guarded(as_json: bool, body: Callable[[Output], int | None]) -> None:
    """Run a command body; map the error family to its exit code and a message (or JSON error)."""
    out = Output(as_json)
    try:
        code = body(out) or 0
    except KeyboardInterrupt:
        code = _report(out, InterruptedByUser("Interrupted; completed downloads are kept for the next run."))
    except KitmlflowError as exc:
        code = _report(out, exc)
    except (click.exceptions.ClickException, click.exceptions.Abort):
        raise  # click's own (a prompt answered with Ctrl-D, a usage error): click reports them
    except Exception as exc:  # a bug: still one line, and with --json still a document
        if os.environ.get("KITMLFLOW_DEBUG"):
            raise
        error = as_kitmlflow_error(exc)
        error.hint = "This is a bug in kitmlflow: please report it (KITMLFLOW_DEBUG=1 shows the traceback)."
        code = _report(out, error)
    sys.exit(code)


def _report(out: Output, exc: KitmlflowError) -> int:
    message = scrub_secrets(exc.message)
    hint = scrub_secrets(exc.hint) if exc.hint else None
    out.err.print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        out.err.print(_escape(hint), style="yellow")
    out.document({"error": {"code": exc.exit_code, "message": message + (f"\n{hint}" if hint else "")}})
    return exc.exit_code


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def open_wizard(reference, **options: Any) -> int:
    """The Textual wizard, for a person at a terminal; scripts get a clear refusal instead of a hang."""
    if not _interactive():
        raise BadInputError(
            "The wizard needs a terminal (stdin and stdout are not one).",
            hint="Headless: kitmlflow import URI -t REPO:TAG --yes, or kitmlflow download URI --dest DIR --yes.",
        )
    from kitmlflow_tui.tui.app import run_wizard

    return run_wizard(reference, **options)


# Tracking URIs a user may type where the wizard takes an mlflow:// reference.
_SERVER_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def _names_a_server(uri: str) -> bool:
    scheme, sep, _rest = uri.partition(":")
    return bool(sep) and scheme.lower() in _SERVER_SCHEMES


def parse_uri(uri: str, *, all_versions: bool = False):
    from kitmlflow_tui.reference import parse_reference

    return parse_reference(uri, all_versions=all_versions)


# -- registries: import --push, login, logout ------------------------------------------------------
def registry_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """kit's network flags, shared by import --push and login."""
    certificate = LocalPath(exists=True, dir_okay=False, path_type=Path)
    options = [
        click.option("--plain-http", is_flag=True, help="Talk HTTP, not HTTPS (loopback registries need no flag)."),
        click.option(
            "--tls-verify/--no-tls-verify", default=True, show_default=True, help="Check the registry's certificate."
        ),
        click.option("--cert", type=certificate, envvar="KITOPS_CLIENT_CERT", help="TLS client certificate (PEM)."),
        click.option("--key", type=certificate, envvar="KITOPS_CLIENT_KEY", help="Its private key (PEM)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _registry_settings(options: dict[str, Any]):
    from kitmlflow_tui.registry import RegistryOptions

    return RegistryOptions(
        plain_http=options["plain_http"], tls_verify=options["tls_verify"], cert=options["cert"], key=options["key"]
    ).validate()


def _push_target(tag: str, push: bool, options: dict[str, Any]):
    """(destination, network options) of --push, checked before anything is downloaded; (None, None) without it."""
    if not push:
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("plain_http", "tls_verify", "cert", "key")
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise BadInputError(f"{', '.join(given)} only apply with --push.")
        return None, None
    from kitmlflow_tui.registry import parse_registry_reference

    return parse_registry_reference(tag), _registry_settings(options)


def _pushed_document(pushed) -> dict:
    return {
        "reference": pushed.reference,
        "digest": pushed.digest,
        "uploaded_bytes": pushed.uploaded_bytes,
        "uploaded_blobs": pushed.uploaded_blobs,
        "mounted_blobs": pushed.mounted_blobs,
        "existing_blobs": pushed.existing_blobs,
    }


def _show_pushed(out: Output, pushed) -> None:
    sent = f"{_size(pushed.uploaded_bytes)} in {pushed.uploaded_blobs} blobs sent"
    if pushed.mounted_blobs:
        sent += f", {pushed.mounted_blobs} mounted"
    out.console.print(
        f"[green]✓[/] pushed {_escape(pushed.reference)} {pushed.digest[:19]} · {sent}, "
        f"{pushed.existing_blobs} already there"
    )


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
@click.option("--username", "-u", metavar="USER", help="User name (asked for on a terminal when missing).")
@click.option(
    "--password", "-p", metavar="PASS", help="Password or token (visible in the process list: prefer --password-stdin)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password or token from standard input.")
@registry_options
def login(registry: str, username: str | None, password: str | None, password_stdin: bool, **options: Any) -> None:
    """Check credentials against REGISTRY and store them where kit keeps its own ($KITOPS_HOME/credentials.json)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.registry import Credential, parse_registry_host
        from kitmlflow_tui.registry import login as registry_login

        host = parse_registry_host(registry)
        settings = _registry_settings(options)
        user = username or (click.prompt("Username", err=True) if _interactive() else "")
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
        elif _interactive():
            secret = click.prompt("Password", hide_input=True, err=True)
        else:
            raise BadInputError("kitmlflow login needs a password: --password-stdin (or -p PASS).")
        if not secret:
            raise BadInputError("The password is empty.")
        result = registry_login(
            host,
            Credential(user, secret),
            settings,
            on_note=lambda message: out.err.print(f"[dim]→[/] {_escape(message)}"),
        )
        if result.verified:
            out.console.print(f"Login succeeded: {_escape(host)}; credentials stored in {_escape(result.stored_in)}")
        else:
            out.console.print(
                f"{_escape(host)} asks for no credentials, so they could not be checked; stored in {_escape(result.stored_in)}"
            )
        return 0

    run_guarded(False, body)


@cli.command(context_settings=CONTEXT)
@click.argument("registry")
def logout(registry: str) -> None:
    """Remove the credentials of REGISTRY from kit's store (docker's config is left alone)."""

    def body(out: Output) -> int:
        from kitmlflow_tui.registry import CredentialStore, parse_registry_host
        from kitmlflow_tui.registry import logout as registry_logout

        host = parse_registry_host(registry)
        store = CredentialStore.default()
        removed, path = registry_logout(host, store=store)
        if removed:
            out.console.print(f"Logged out of {_escape(host)} (removed from {_escape(path)})")
        else:
            out.console.print(f"Not logged in to {_escape(host)} (nothing for it in {_escape(path)})")
        remaining = store.get(host)
        if remaining is not None:
            out.console.print(
                f"  docker's config still holds credentials for it: {_escape(remaining.source)}", style="dim"
            )
        return 0

    run_guarded(False, body)


# -- browse --------------------------------------------------------------------------------------
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


# -- import --------------------------------------------------------------------------------------
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
    **options: Any,
) -> None:
    """Import an MLflow run (or registered model) as a ModelKit (and push it with --push)."""

    def body(out: Output) -> int:
        from kitmlflow_tui import pipeline

        reference = parse_uri(uri)
        pipeline.check_tag(tag)
        push_to, registry = _push_target(tag, push, options)
        spec, profile = build_spec(
            options["includes"], options["excludes"], options["max_file_size"], options["profile"]
        )
        if kitfile_path is not None:  # a Kitfile kit would reject fails before any byte moves
            _check_kitfile(kitfile_path)
        if not dry_run and not options["yes"]:
            if not _interactive():
                raise BadInputError(
                    "kitmlflow import needs --yes when it cannot ask (no terminal).",
                    hint="Add --yes (filters come from --include/--exclude/--max-file-size/--profile), or --dry-run.",
                )
            # A person at a terminal reviews the selection in the wizard, opened at the run's artifacts.
            return open_wizard(reference, tracking_uri_flag=options["tracking_uri"], tag=tag, push=push, spec=spec)
        import_options = pipeline.ImportOptions(
            tag=tag,
            packer=packer,
            compression=compression,
            kitfile_path=kitfile_path,
            keep_download=keep_download,
            overrides=_package_overrides(profile, description, authors),
            jobs=options["jobs"],
            push_to=push_to,
            registry=registry,
        )
        renderer = _renderer(out)
        session = pipeline.plan(
            reference, spec, tracking_uri_flag=options["tracking_uri"], jobs=options["jobs"], observer=renderer
        )
        session = pipeline.settle_layers(session, import_options, renderer)  # what the ModelKit cannot hold
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
            f"[green]✓[/] {_escape(result.reference)} {result.digest[:19]} · {_size(result.size)} · "
            f"packed by {result.packer}"
        )
        kit_ref = _escape(result.reference)  # the name kit resolves (kit list shows it)
        if result.pushed is not None:
            _show_pushed(out, result.pushed)
        else:
            out.console.print(
                f"  next: kit push {kit_ref} REGISTRY/REPO:TAG · kit unpack {kit_ref} -d DIR", style="dim"
            )
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
            document["pushed"] = _pushed_document(result.pushed)
        out.document(document)
        return 0

    run_guarded(options["as_json"], body)


def _check_kitfile(path: Path) -> None:
    """Parse and validate a --kitfile up front (paths in it are checked against the files later)."""
    from kitmlflow_tui.kitfile import load_kitfile_text
    from kitmlflow_tui.pipeline import read_kitfile

    load_kitfile_text(read_kitfile(path), source=str(path))


def _package_overrides(profile, description: str | None, authors: tuple[str, ...]):
    """The package fields --description/--author and a profile's Kitfile defaults set (the flags win)."""
    from kitmlflow_tui.kitfile import KitfileOverrides
    from kitmlflow_tui.profiles import PackageDefaults

    package = profile.package if profile is not None else PackageDefaults()
    description = description.strip() if description and description.strip() else package.description
    names = tuple(a.strip() for a in authors if a.strip()) or package.authors
    if not (description or names or package.license):
        return None
    return KitfileOverrides(description=description, authors=names or None, license=package.license)


def _show_kitfile(out: Output, kitfile: Kitfile) -> None:
    from rich.syntax import Syntax

    from kitmlflow_tui.kitfile import dump_kitfile

    text = dump_kitfile(kitfile)
    out.console.print("[bold]Kitfile[/]")
    if out.console.is_terminal:
        out.console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default", word_wrap=True))
    else:  # logs and pipes get the YAML exactly, never cropped to a width
        out.console.out(text, highlight=False, end="")


# -- download ------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.argument("uri")
@click.option(
    "--dest", "-d", required=True, type=LocalPath(file_okay=False, path_type=Path), help="Folder to download into."
)
@filter_options
def download(uri: str, dest: Path, **options: Any) -> None:
    """Download the selected artifacts of a run (no Kitfile, no pack)."""

    def body(out: Output) -> int:
        from kitmlflow_tui import pipeline

        reference = parse_uri(uri)
        spec, _profile = build_spec(
            options["includes"], options["excludes"], options["max_file_size"], options["profile"]
        )
        if not options["yes"] and not _interactive():
            raise BadInputError(
                "kitmlflow download needs --yes when it cannot ask (no terminal).",
                hint="Add --yes; filters come from --include/--exclude/--max-file-size/--profile.",
            )
        renderer = _renderer(out)
        session = pipeline.plan(
            reference, spec, tracking_uri_flag=options["tracking_uri"], jobs=options["jobs"], observer=renderer
        )
        show_plan(out, session)
        if not options["yes"] and not click.confirm(
            f"Download {len(session.plan.selected)} files into {dest}?", default=True, err=True
        ):
            raise InterruptedByUser("Nothing downloaded.")
        with renderer.live():
            result = pipeline.download(session, dest, jobs=options["jobs"], observer=renderer)
        out.console.print(
            f"[green]✓[/] {len(result.paths)} files in {_escape(str(result.dest))} "
            f"({_size(result.downloaded_bytes)} moved, {_size(result.reused_bytes)} already there)"
        )
        document = plan_document(session)
        document.update(dest=str(result.dest.resolve()), downloaded_bytes=result.downloaded_bytes)
        out.document(document)
        return 0

    run_guarded(options["as_json"], body)


# -- sync ------------------------------------------------------------------------------------------
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
        from kitmlflow_tui import sync as core
        from kitmlflow_tui.reference import ModelRef

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
            registry=_registry_settings(options),
            force=force,
            dry_run=dry_run,
            packer=options["packer"],
            compression=options["compression"],
            overrides=_package_overrides(profile, None, ()),
            jobs=options["jobs"],
            tracking_uri_flag=options["tracking_uri"],
        )
        core.check_sync(reference, sync_options)
        if not dry_run and not options["yes"]:
            if not _interactive():
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
    from kitmlflow_tui.progress import SyncLines

    return SyncLines(out.console, out.err, interactive=out.err.is_terminal and not os.environ.get("CI"))


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
        f"[bold]{prefix}{_escape(result.model)} → {_escape(result.target)}:[/] {text} · {state}", soft_wrap=True
    )


# -- rendering -----------------------------------------------------------------------------------
def _size(size: int | None) -> str:
    from kitmlflow_tui.selection import format_size

    return format_size(size)


def plan_document(session) -> dict:
    run = session.resolved.run
    plan = session.plan
    document: dict = {
        "run": {
            "tracking_uri": run.tracking_uri,
            "experiment_id": run.experiment_id,
            "experiment_name": scrub_secrets(run.experiment_name),  # user text: masked as in the provenance
            "run_id": run.run_id,
            "run_name": scrub_secrets(run.run_name),
            "status": run.status,
        },
        "selected": [{"path": f.path, "size": f.size} for f in plan.selected],
        "excluded": [{"path": o.file.path, "size": o.file.size, "reason": o.reason} for o in plan.left_out],
        "selected_bytes": plan.selected_bytes,
        "total_bytes": plan.total_bytes,
        "filter": plan.spec.summary(),
        "logged_models": [
            {"id": m.model_id, "name": m.name, "folder": m.folder} for m in session.resolved.tree.logged_models
        ],
    }
    if session.resolved.registered:
        reg = session.resolved.registered
        document["registered_model"] = {"name": reg.name, "version": reg.version, "alias": reg.alias}
    return document


PLAN_ROWS = 40


def show_plan(out: Output, session) -> None:
    from rich.table import Table

    plan = session.plan
    run = session.resolved.run
    console = out.console
    console.print(
        f"Run [bold]{_escape(scrub_secrets(run.run_name))}[/] ({_escape(run.run_id)}) · "
        f"experiment {_escape(scrub_secrets(run.experiment_name))} "
        f"({_escape(run.experiment_id)}) · {_escape(run.status)}"
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("", width=1)
    table.add_column("path", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("why left out", style="dim")
    rows = [("✓", f.path, _size(f.size), "") for f in plan.selected]
    rows += [("·", o.file.path, _size(o.file.size), o.reason) for o in plan.left_out]
    for mark, path, size, reason in rows[:PLAN_ROWS]:
        table.add_row(mark, _escape(path), size, _escape(reason), style=None if mark == "✓" else "dim")
    console.print(table)
    if len(rows) > PLAN_ROWS:
        console.print(f"[dim]… and {len(rows) - PLAN_ROWS} more files (--json lists them all)[/]")
    console.print(
        f"[bold]{len(plan.selected)} files · {_size(plan.selected_bytes)}[/] of "
        f"{len(plan.tree.files)} files · {_size(plan.total_bytes)} selected"
    )


def _renderer(out: Output):
    from kitmlflow_tui.progress import ProgressRenderer

    return ProgressRenderer(out.err, interactive=out.err.is_terminal and not os.environ.get("CI"))


# -- profiles ------------------------------------------------------------------------------------
@cli.group(context_settings=CONTEXT)
def profiles() -> None:
    """List, show and delete saved filter profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """Names of the saved profiles."""

    def body(out: Output) -> int:
        from kitmlflow_tui.profiles import list_profiles, profiles_dir

        names = list_profiles()
        for name in names:
            click.echo(name)
        if not names:
            click.echo(f"No profiles yet (they live in {profiles_dir()}).", err=True)
        return 0

    run_guarded(False, body)


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """Print a profile's YAML."""

    def body(out: Output) -> int:
        from kitmlflow_tui.profiles import load_profile

        profile = load_profile(name)
        click.echo(f"# {profile.path}", err=True)
        click.echo(profile.to_yaml(), nl=False)
        return 0

    run_guarded(False, body)


@profiles.command("delete")
@click.argument("name")
def profiles_delete(name: str) -> None:
    """Delete a saved profile."""

    def body(out: Output) -> int:
        from kitmlflow_tui.profiles import delete_profile

        path = delete_profile(name)
        click.echo(f"Deleted {path}", err=True)
        return 0

    run_guarded(False, body)


# -- demo ----------------------------------------------------------------------------------------
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
        if _interactive():
            from kitmlflow_tui.reference import BrowseRef

            return open_wizard(BrowseRef(store.tracking_uri))
        out.console.print(f"Demo store: {store.tracking_uri}")
        finished = store.runs["finished"]
        out.console.print(
            f"Try: kitmlflow import mlflow://runs/{finished} --tracking-uri {store.tracking_uri} "
            "-t demo-classifier:v1 --dry-run"
        )
        for role, run_id in sorted(store.runs.items()):
            out.console.print(f"  {role:<22} mlflow://runs/{run_id}")
        return 0

    run_guarded(False, body)


def main() -> None:
    disable_mlflow_telemetry()
    cli(prog_name="kitmlflow")


if __name__ == "__main__":
    main()
