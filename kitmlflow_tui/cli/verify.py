"""``kitmlflow verify``: check a pushed ModelKit against its signed provenance attestation (exit 10 when it fails)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.app import CONTEXT, cli
from kitmlflow_tui.cli.documents import VerifyDocument
from kitmlflow_tui.cli.options import LocalPath
from kitmlflow_tui.cli.output import Output, escape, run_guarded, size_text
from kitmlflow_tui.core.errors import VerificationError

if TYPE_CHECKING:
    from kitmlflow_tui.core.attest.verify import VerifyResult


@cli.command(context_settings=CONTEXT)
@click.argument("reference", metavar="REGISTRY/REPO:TAG")
@click.option(
    "--key",
    "key",
    required=True,
    type=LocalPath(exists=True, dir_okay=False, path_type=Path),
    metavar="PUB",
    help="The public key the attestation must be signed with (PEM, e.g. cosign.pub).",
)
@click.option("--deep", is_flag=True, help="Also read the layers: they must hold exactly the attested files.")
@click.option("--mlflow", "ask_mlflow", is_flag=True, help="Also ask the tracking server: run FINISHED, files listed.")
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="With --mlflow: the server to ask (else MLFLOW_TRACKING_URI, else the attested one).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout; human text goes to stderr.")
@click.option("--plain-http", is_flag=True, help="Talk HTTP, not HTTPS (loopback registries need no flag).")
@click.option("--tls-verify/--no-tls-verify", default=True, show_default=True, help="Check the registry's certificate.")
@click.option(
    "--client-cert",
    type=LocalPath(exists=True, dir_okay=False, path_type=Path),
    envvar="KITOPS_CLIENT_CERT",
    help="TLS client certificate (PEM).",
)
@click.option(
    "--client-key",
    type=LocalPath(exists=True, dir_okay=False, path_type=Path),
    envvar="KITOPS_CLIENT_KEY",
    help="Its private key (PEM).",
)
def verify(
    reference: str,
    key: Path,
    deep: bool,
    ask_mlflow: bool,
    tracking_uri: str | None,
    as_json: bool,
    plain_http: bool,
    tls_verify: bool,
    client_cert: Path | None,
    client_key: Path | None,
) -> None:
    """Verify a pushed ModelKit against its signed provenance attestation.

    \b
    Finds the attestations attached to the manifest (referrers API, referrers tag, cosign's .att tag), checks the
    signature with --key and that the attestation names this manifest, and shows the MLflow run it came from.
    Exit 0 verified, 10 not (the reason is named): no attestation, a bad signature or another key, the attestation
    of another manifest, files added, removed or changed (--deep), MLflow no longer agreeing (--mlflow).
    """

    def body(out: Output) -> int:
        from kitmlflow_tui.core.attest.verify import VerifyOptions, parse_target, verify_modelkit
        from kitmlflow_tui.core.registry import RegistryOptions

        target = parse_target(reference)
        options = VerifyOptions(
            key=key,
            deep=deep,
            mlflow=ask_mlflow,
            tracking_uri_flag=tracking_uri,
            registry=RegistryOptions(
                plain_http=plain_http, tls_verify=tls_verify, cert=client_cert, key=client_key
            ).validate(),
        )
        result = verify_modelkit(target, options, on_step=lambda message: out.err.print(escape(message), style="dim"))
        _show(out, result)
        if result.verified:
            out.document(VerifyDocument(result, key))
            return 0
        error = VerificationError(f"{result.reference} is not verified: {'; '.join(result.problems)}")
        out.document(VerifyDocument(result, key, error))
        return error.exit_code

    run_guarded(as_json, body)


def _show(out: Output, result: VerifyResult) -> None:
    statement = result.statement
    if result.verified:
        out.console.print(f"[green]✓ verified[/] {escape(result.reference)} {result.digest[:19]}…", soft_wrap=True)
    else:
        out.err.print(f"[bold red]✗ not verified:[/] {escape(result.reference)} {result.digest[:19]}…")
        for problem in result.problems:
            out.err.print(f"  - {escape(problem)}")
    if statement is None:
        return
    registered = statement.registered_model
    model = f" · registered model {registered.name} version {registered.version}" if registered else ""
    attested = sum(f.size or 0 for f in statement.files)
    console = out.console if result.verified else out.err
    console.print(
        f"  run {escape(statement.run_id)} of experiment {escape(statement.experiment_id)} on "
        f"{escape(statement.tracking_uri)}{escape(model)}",
        soft_wrap=True,
    )
    console.print(
        f"  signed by {result.key_id[:19]}… · {len(statement.files)} files ({size_text(attested)}) · found in "
        f"{escape(result.where or '')} · checked: {', '.join(result.checked)}",
        soft_wrap=True,
    )
