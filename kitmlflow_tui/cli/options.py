"""Options several commands share (filters, packing, registries); the Python API (``kitmlflow_tui.api``)
turns them into a filter spec, registry settings and a push target.

The filter flags and the registry flags reach a command as one value each (:class:`FilterFlags`,
:class:`RegistryFlags`): their decorators declare the click options and bundle what click passes by name."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import click

from kitmlflow_tui.core.errors import BadInputError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from kitmlflow_tui.core.reference import Reference
    from kitmlflow_tui.core.registry import RegistryOptions

# A command's function as click calls it: every option by name.
Command = Callable[..., None]


class LocalPath(click.Path):
    """click.Path, with a NUL byte refused as a usage error (exit 2): ``os.stat`` raises ValueError on one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if "\x00" in os.fsdecode(value):
            self.fail("a path cannot contain a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


def complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of a profile: the saved names (a listing of the profiles folder, nothing heavier), or the
    shell's own file completion once the value is a path (it holds a ``/``)."""
    from click.shell_completion import CompletionItem

    from kitmlflow_tui.core.selection.profiles import list_profiles

    if "/" in incomplete:
        return [CompletionItem(incomplete, type="file")]
    return [CompletionItem(name) for name in list_profiles() if name.startswith(incomplete)]


@dataclass(frozen=True)
class FilterFlags:
    """--include, --exclude, --max-file-size and --profile as given: the Python API turns them into a filter spec."""

    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    max_file_size: str | None
    profile: str | None


def filter_options(command: Command) -> Command:
    """The filter flags (passed as ``filters``: a :class:`FilterFlags`), and --tracking-uri, --jobs, --json and
    --yes (passed as ``tracking_uri``, ``jobs``, ``as_json``, ``yes``)."""

    # wraps() also carries over the options declared below this decorator (click keeps them on the function).
    @functools.wraps(command)
    def with_filters(
        *args: Any,
        includes: tuple[str, ...],
        excludes: tuple[str, ...],
        max_file_size: str | None,
        profile: str | None,
        **others: Any,
    ) -> None:
        command(*args, filters=FilterFlags(includes, excludes, max_file_size, profile), **others)

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
        click.option(
            "--profile",
            metavar="NAME|PATH",
            shell_complete=complete_profiles,
            help="A saved filter profile; flags add to it.",
        ),
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
        with_filters = option(with_filters)
    return with_filters


def pack_options(command: Command) -> Command:
    """What is packed and how: shared by import, sync and watch."""
    options = [
        click.option(
            "--packer",
            type=click.Choice(["auto", "kit", "native"]),
            default="auto",
            show_default=True,
            help="kit: the real `kit pack`; native: kitmlflow's own writer; auto: kit when installed.",
        ),
        click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True),
        click.option(
            "--format",
            "artifact_format",
            type=click.Choice(["modelkit", "modelpack"]),
            default="modelkit",
            show_default=True,
            help="modelkit: a KitOps ModelKit; modelpack: a CNCF ModelPack (Docker Model Runner, modctl, kit >= 1.10).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_uri(uri: str, *, all_versions: bool = False) -> Reference:
    from kitmlflow_tui.core.reference import parse_reference

    return parse_reference(uri, all_versions=all_versions)


@dataclass(frozen=True)
class RegistryFlags:
    """kit's network flags as given: --plain-http, --tls-verify/--no-tls-verify, --cert, --key."""

    plain_http: bool
    tls_verify: bool
    cert: Path | None
    key: Path | None

    def settings(self) -> RegistryOptions:
        from kitmlflow_tui.core.registry import RegistryOptions

        return RegistryOptions(
            plain_http=self.plain_http, tls_verify=self.tls_verify, cert=self.cert, key=self.key
        ).validate()


class RegistryArguments(TypedDict, total=False):
    """The registry flags as the Python API's keyword arguments."""

    plain_http: bool
    tls_verify: bool
    cert: Path | None
    key: Path | None


def registry_options(command: Command) -> Command:
    """kit's network flags, shared by import --push, sync, watch and login (passed as ``network``: a
    :class:`RegistryFlags`)."""

    @functools.wraps(command)
    def with_registry(
        *args: Any, plain_http: bool, tls_verify: bool, cert: Path | None, key: Path | None, **others: Any
    ) -> None:
        command(*args, network=RegistryFlags(plain_http, tls_verify, cert, key), **others)

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
        with_registry = option(with_registry)
    return with_registry


def check_registry_flags(push: bool) -> None:
    """Registry flags typed on the command line without --push are a mistake (exit 2); KITOPS_CLIENT_CERT and
    KITOPS_CLIENT_KEY in the environment are not."""
    if push:
        return
    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("plain_http", "tls_verify", "cert", "key", "force")
        if name in ctx.params and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise BadInputError(f"{', '.join(given)} only apply with --push.")


def registry_arguments(push: bool, network: RegistryFlags) -> RegistryArguments:
    """The registry flags as the Python API's keyword arguments; without --push none applies."""
    if not push:
        return {}
    return {
        "plain_http": network.plain_http,
        "tls_verify": network.tls_verify,
        "cert": network.cert,
        "key": network.key,
    }


def sign_key_option(command: Command) -> Command:
    """--sign-key (import, sync): the private key that signs each pushed ModelKit's provenance attestation."""
    from kitmlflow_tui.core import settings

    return click.option(
        "--sign-key",
        type=LocalPath(dir_okay=False, path_type=Path),
        envvar=settings.SIGN_KEY.name,
        metavar="PATH",
        help="Sign a provenance attestation with this key (cosign.key or a PEM ECDSA P-256/Ed25519 key; password in "
        "COSIGN_PASSWORD / KITMLFLOW_SIGN_KEY_PASSWORD) and attach it to the pushed ModelKit.",
    )(command)


def given_on_command_line(name: str) -> bool:
    return click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
