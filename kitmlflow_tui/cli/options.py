"""Options several commands share (filters, packing, registries) and what they become: a filter spec,
registry settings, a push target."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kitmlflow_tui.core.errors import BadInputError


class LocalPath(click.Path):
    """click.Path, with a NUL byte refused as a usage error (exit 2): ``os.stat`` raises ValueError on one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if "\x00" in os.fsdecode(value):
            self.fail("a path cannot contain a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


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
    from kitmlflow_tui.core.selection.plan import FilterSpec, parse_size

    flags = FilterSpec(
        include=tuple(includes),
        exclude=tuple(excludes),
        max_file_size=parse_size(max_file_size, what="--max-file-size") if max_file_size else None,
    )
    loaded = None
    if profile:
        from kitmlflow_tui.core.selection.profiles import load_profile

        loaded = load_profile(profile)
        spec = loaded.spec.merged(flags)
    else:
        spec = flags
    spec.validate()
    return spec, loaded


def package_overrides(profile, description: str | None, authors: tuple[str, ...]):
    """The package fields --description/--author and a profile's Kitfile defaults set (the flags win)."""
    from kitmlflow_tui.core.kitfile import KitfileOverrides
    from kitmlflow_tui.core.selection.profiles import PackageDefaults

    package = profile.package if profile is not None else PackageDefaults()
    description = description.strip() if description and description.strip() else package.description
    names = tuple(a.strip() for a in authors if a.strip()) or package.authors
    if not (description or names or package.license):
        return None
    return KitfileOverrides(description=description, authors=names or None, license=package.license)


def parse_uri(uri: str, *, all_versions: bool = False):
    from kitmlflow_tui.core.reference import parse_reference

    return parse_reference(uri, all_versions=all_versions)


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


def registry_settings(options: dict[str, Any]):
    from kitmlflow_tui.core.registry import RegistryOptions

    return RegistryOptions(
        plain_http=options["plain_http"], tls_verify=options["tls_verify"], cert=options["cert"], key=options["key"]
    ).validate()


def push_target(tag: str, push: bool, options: dict[str, Any]):
    """(destination, network options) of --push, checked before anything is downloaded; (None, None) without it."""
    if not push:
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("plain_http", "tls_verify", "cert", "key", "force")
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise BadInputError(f"{', '.join(given)} only apply with --push.")
        return None, None
    from kitmlflow_tui.core.registry import parse_registry_reference

    return parse_registry_reference(tag), registry_settings(options)
