"""``kitmlflow watch``: a registry kept in step with MLflow as it happens (MLflow's webhooks, and a reconcile)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.options import (
    FilterFlags,
    LocalPath,
    RegistryFlags,
    filter_options,
    given_on_command_line,
    pack_options,
    parse_uri,
    registry_options,
    sign_key_option,
)
from kitmlflow_tui.cli.output import Output, run_guarded
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import BadInputError

if TYPE_CHECKING:
    from kitmlflow_tui.watch.config import WatchConfig

SECRET_VARIABLE = settings.WEBHOOK_SECRET.name
_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")


@cli.command(context_settings=CONTEXT)
@click.argument("uri", required=False)
@click.option(
    "--config", "config_path", type=LocalPath(dir_okay=False, path_type=Path), help="The models to follow (YAML)."
)
@click.option("--to", "to", metavar="REGISTRY/REPO", help="The repository to keep in step (with a URI).")
@click.option("--tag-template", default=None, metavar="T", help="Each version's tag (default v{version}).")
@filter_options
@pack_options
@registry_options
@sign_key_option
@click.option("--prune-aliases", is_flag=True, help="Delete the tags of aliases MLflow no longer has.")
@click.option("--listen", default="127.0.0.1:8765", show_default=True, metavar="HOST:PORT", help="Where to listen.")
@click.option(
    "--reconcile-every",
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="Sync every model this often whatever the events (30s, 10m, 1h; 0 = only at start).",
)
@click.option("--state-dir", type=LocalPath(file_okay=False, path_type=Path), help="Where the queue lives.")
@click.option(
    "--insecure-no-signature",
    is_flag=True,
    help=f"Accept unsigned webhooks when {SECRET_VARIABLE} is not set (events are only hints; never on a network).",
)
@click.option("--register-webhook", is_flag=True, help="Create or update the MLflow webhook for these models.")
@click.option("--public-url", metavar="URL", help="Where MLflow reaches this receiver (with --register-webhook).")
@click.option("--webhook-name", default="kitmlflow-watch", show_default=True, help="The MLflow webhook's name.")
def watch(
    uri: str | None,
    config_path: Path | None,
    to: str | None,
    tag_template: str | None,
    filters: FilterFlags,
    tracking_uri: str | None,
    jobs: int,
    as_json: bool,
    yes: bool,  # unused: the watch never asks
    packer: str,
    compression: str,
    artifact_format: str,
    network: RegistryFlags,
    sign_key: Path | None,
    prune_aliases: bool,
    listen: str,
    reconcile_every: str,
    state_dir: Path | None,
    insecure_no_signature: bool,
    register_webhook: bool,
    public_url: str | None,
    webhook_name: str,
) -> None:
    """Keep registries in step with MLflow as it happens: MLflow's webhooks, then `sync` of the model.

    \b
    kitmlflow watch mlflow://HOST/models/NAME --to REGISTRY/REPO [sync options]
    kitmlflow watch --config watch.yaml
    Serves POST /webhooks/mlflow (signed with KITMLFLOW_WEBHOOK_SECRET), GET /healthz, GET /metrics.
    Every model is synced at start and every --reconcile-every; an event syncs its model at once.
    SIGTERM or Ctrl-C stops it; queued work is kept in --state-dir for the next start.
    """

    def body(out: Output) -> int:
        from kitmlflow_tui.core.errors import register_secret
        from kitmlflow_tui.core.reference import resolve_tracking_uri
        from kitmlflow_tui.watch.config import parse_duration
        from kitmlflow_tui.watch.log import WatchLog
        from kitmlflow_tui.watch.registration import webhook_url
        from kitmlflow_tui.watch.service import WatchSettings, default_state_dir, run_watch
        from kitmlflow_tui.watch.worker import SyncSettings

        model_flags = _ModelFlags(to, tag_template, filters, artifact_format, sign_key)
        config, uri_server = _watch_config(uri, config_path, model_flags)
        address = _listen(listen)
        every = parse_duration(reconcile_every)
        secret = settings.WEBHOOK_SECRET.raw() or None
        if secret is None and not insecure_no_signature:
            raise BadInputError(
                f"No webhook secret: set {SECRET_VARIABLE} (the secret of the MLflow webhook).",
                hint="Or --insecure-no-signature to accept unsigned events (only on a trusted host).",
            )
        if secret is not None and insecure_no_signature:
            raise BadInputError(f"--insecure-no-signature contradicts {SECRET_VARIABLE}, which is set.")
        if secret is not None:
            register_secret(secret)
        if register_webhook != bool(public_url):
            raise BadInputError("--register-webhook and --public-url go together.")
        if public_url:
            webhook_url(public_url)  # checked now, before anything listens
        server = resolve_tracking_uri(uri_server or config.tracking_uri, tracking_uri)
        watch_settings = WatchSettings(
            listen=address,
            state_dir=(state_dir or default_state_dir()).expanduser(),
            reconcile_every=every,
            secret=secret,
            sync=SyncSettings(
                tracking_uri=server,
                registry=network.settings(),
                packer=packer,
                compression=compression,
                jobs=jobs,
                prune_aliases=prune_aliases,
            ),
            public_url=public_url,
            webhook_name=webhook_name,
        )
        stop = threading.Event()
        with _stopping_on_signals(stop):
            return run_watch(config, watch_settings, WatchLog(json_lines=as_json), stop)

    run_guarded(as_json, body)


@dataclass(frozen=True)
class _ModelFlags:
    """The options of the single-model form, which a --config file gives per model instead."""

    to: str | None
    tag_template: str | None
    filters: FilterFlags
    artifact_format: str
    sign_key: Path | None  # --sign-key, else KITMLFLOW_SIGN_KEY


def _watch_config(uri: str | None, config_path: Path | None, flags: _ModelFlags) -> tuple[WatchConfig, str | None]:
    """The models to follow, from --config or from the URI and its options; and the URI's server, if any. With
    --config, KITMLFLOW_SIGN_KEY signs for the entries that name no sign_key of their own."""
    from kitmlflow_tui.api import filter_spec
    from kitmlflow_tui.core.reference import ModelRef
    from kitmlflow_tui.watch.config import WatchConfig, WatchedModel, check_entry, load_config

    filters = flags.filters
    per_model = [
        flag
        for flag, given in (
            ("--to", flags.to),
            ("--tag-template", flags.tag_template),
            ("--include", filters.includes),
            ("--exclude", filters.excludes),
            ("--max-file-size", filters.max_file_size),
            ("--profile", filters.profile),
            ("--format", given_on_command_line("artifact_format")),
            ("--sign-key", given_on_command_line("sign_key")),
        )
        if given
    ]
    if config_path is not None:
        if uri is not None:
            raise BadInputError("Give either a model URI or --config, not both.")
        if per_model:
            raise BadInputError(f"With --config, {', '.join(per_model)} go in the file, under each model.")
        config = load_config(config_path)
        if flags.sign_key is not None:
            signed = (
                entry
                if entry.sign_key
                else check_entry(replace(entry, sign_key=flags.sign_key), f"Config {config_path} line {entry.line}")
                for entry in config.models
            )
            config = replace(config, models=tuple(signed))
        return config, None
    if uri is None:
        raise BadInputError(
            "kitmlflow watch needs the models to follow.",
            hint="kitmlflow watch mlflow://HOST/models/NAME --to REGISTRY/REPO, or --config FILE.",
        )
    reference = parse_uri(uri, all_versions=True)
    if not isinstance(reference, ModelRef) or not reference.all_versions:
        raise BadInputError(
            "kitmlflow watch follows whole registered models: mlflow://[host/]models/NAME.",
            hint="Its aliases get tags of their own, as with kitmlflow sync mlflow://HOST/models/NAME.",
        )
    if not flags.to:
        raise BadInputError("--to REGISTRY/REPO is required with a model URI.")
    spec, _profile = filter_spec(filters.includes, filters.excludes, filters.max_file_size, filters.profile)
    template = flags.tag_template or "v{version}"
    entry = WatchedModel(reference.name, flags.to, template, spec, flags.artifact_format, flags.sign_key)
    return WatchConfig(None, (check_entry(entry, "The model"),)), reference.tracking_uri


def _listen(text: str) -> tuple[str, int]:
    match = _LISTEN.match(text.strip())
    if not match or int(match["port"]) > 65535:
        raise BadInputError(f"Invalid --listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 or 0.0.0.0:8765.")
    return match["host"].strip("[]"), int(match["port"])


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the watch finishes or abandons the current version and exits 0); a second
    one exits at once. The previous handlers come back afterwards."""

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
