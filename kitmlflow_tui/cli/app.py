"""The ``kitmlflow`` command group: a URI that is not a command opens the wizard; the entry point."""

from __future__ import annotations

import click

from kitmlflow_tui import __version__, disable_mlflow_telemetry

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


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
    kitmlflow watch mlflow://HOST/models/NAME --to REG/REPO   ... as it happens (MLflow's webhooks)
    kitmlflow verify REG/REPO:TAG --key cosign.pub   check a pushed ModelKit against its signed provenance
    kitmlflow login REGISTRY -u USER --password-stdin   registry credentials (kit's store)
    kitmlflow download URI --dest DIR                the filtered twin of `mlflow artifacts download`
    kitmlflow profiles list|show|delete              saved filter profiles
    kitmlflow demo                                   a local demo store, opened in the wizard

    URIs: mlflow://[host/]experiments/EXP/runs/RUN, mlflow://[host/]runs/RUN,
    mlflow://[host/]models/NAME/VERSION, mlflow://[host/]models/NAME@ALIAS (sync: also models/NAME).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(cli.commands["browse"], uri=None)


def main() -> None:
    disable_mlflow_telemetry()
    cli(prog_name="kitmlflow")
