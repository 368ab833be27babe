"""What the commands print: text on the terminal (stderr under --json), one JSON document, and an error
mapped to its exit code with every secret scrubbed. Only this package and the wizard turn errors into text."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from kitmlflow_tui.cli.documents import Document, ErrorDocument
from kitmlflow_tui.core import settings
from kitmlflow_tui.core.errors import InterruptedByUser, KitmlflowError, as_kitmlflow_error, scrub_secrets

if TYPE_CHECKING:
    from rich.console import Console

    from kitmlflow_tui.api import PlanReport
    from kitmlflow_tui.cli.progress import ProgressRenderer
    from kitmlflow_tui.core.attest.produce import Attestation
    from kitmlflow_tui.core.registry import PushResult

# Off a terminal a console is this wide: a log or a pipe gets each record on one line, whatever its length.
UNWRAPPED_WIDTH = 100_000


def make_console(*, stderr: bool, soft_wrap: bool) -> Console:
    """A console for one stream: on a terminal, rich's own layout at the terminal's width; in a pipe, a file or
    a CI log, nothing is ever wrapped (rich would otherwise break lines at 80 columns, splitting a path, a URI
    or a command a script or a reader copies from the log)."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap, emoji=False)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False, width=UNWRAPPED_WIDTH)


class Output:
    """Where text goes: stdout normally, stderr when stdout carries the JSON document."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = make_console(stderr=as_json, soft_wrap=False)
        self.err = make_console(stderr=True, soft_wrap=True)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        """A warning: shown now (stderr), and listed under ``warnings`` in the --json document."""
        self.warnings.append(message)
        self.err.print(f"[bold yellow]warning:[/] {escape(message)}")

    def document(self, document: Document) -> None:
        """With --json, the document on stdout, with ``warnings`` (always, unless it reports an error)."""
        if self.as_json:
            data = document.to_json()
            if self.warnings or "error" not in data:  # a list a script can always read, empty when all is well
                data = {**data, "warnings": list(self.warnings)}
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
        if settings.DEBUG.raw():
            raise
        error = as_kitmlflow_error(exc)
        error.hint = "This is a bug in kitmlflow: please report it (KITMLFLOW_DEBUG=1 shows the traceback)."
        code = _report(out, error)
    sys.exit(code)


def _report(out: Output, exc: KitmlflowError) -> int:
    message = scrub_secrets(exc.message)
    hint = scrub_secrets(exc.hint) if exc.hint else None
    out.err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        out.err.print(escape(hint), style="yellow")
    out.document(ErrorDocument(exc.exit_code, message + (f"\n{hint}" if hint else "")))
    return exc.exit_code


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def show_attestation(out: Output, attestation: Attestation) -> None:
    if attestation.envelope is None:
        what = "unsigned provenance statement"
    else:
        assert attestation.key is not None  # a signed envelope always comes with its key
        what = f"provenance attestation signed by {attestation.key.key_id[:19]}…"
    places = [f"attached ({', '.join(a.where for a in attestation.attached)})"] if attestation.attached else []
    if attestation.output is not None:
        places.append(f"written to {attestation.output}")
    out.console.print(f"[green]✓[/] {what} · {escape(' · '.join(places) or 'kept nowhere')}", soft_wrap=True)


def show_pushed(out: Output, pushed: PushResult) -> None:
    sent = f"{size_text(pushed.uploaded_bytes)} in {pushed.uploaded_blobs} blobs sent"
    if pushed.mounted_blobs:
        sent += f", {pushed.mounted_blobs} mounted"
    out.console.print(
        f"[green]✓[/] pushed {escape(pushed.reference)} {pushed.digest[:19]} · {sent}, "
        f"{pushed.existing_blobs} already there"
    )


def show_next(out: Output, commands: list[list[str]]) -> None:
    """The commands to run next, one a line, quoted as a shell reads them (never wrapped: a copy of the line runs)."""
    from kitmlflow_tui.core.next_commands import shell_line

    for words in commands:
        out.console.print(f"  next: {escape(shell_line(words))}", style="dim", soft_wrap=True)


def size_text(size: int | None) -> str:
    from kitmlflow_tui.core.selection.plan import format_size

    return format_size(size)


PLAN_ROWS = 40


def show_plan(out: Output, report: PlanReport) -> None:
    from rich.table import Table

    plan = report.plan
    run = report.run
    console = out.console
    console.print(
        f"Run [bold]{escape(scrub_secrets(run.run_name))}[/] ({escape(run.run_id)}) · "
        f"experiment {escape(scrub_secrets(run.experiment_name))} "
        f"({escape(run.experiment_id)}) · {escape(run.status)}"
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("", width=1)
    table.add_column("path", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("why left out", style="dim")
    rows = [("✓", f.path, size_text(f.size), "") for f in plan.selected]
    rows += [("·", o.file.path, size_text(o.file.size), o.reason) for o in plan.left_out]
    for mark, path, size, reason in rows[:PLAN_ROWS]:
        table.add_row(mark, escape(path), size, escape(reason), style=None if mark == "✓" else "dim")
    console.print(table)
    if len(rows) > PLAN_ROWS:
        console.print(f"[dim]… and {len(rows) - PLAN_ROWS} more files (--json lists them all)[/]")
    console.print(
        f"[bold]{len(plan.selected)} files · {size_text(plan.selected_bytes)}[/] of "
        f"{len(plan.tree.files)} files · {size_text(plan.total_bytes)} selected"
    )


def progress_renderer(out: Output) -> ProgressRenderer:
    from kitmlflow_tui.cli.progress import ProgressRenderer

    return ProgressRenderer(out.err, interactive=out.err.is_terminal and not settings.CI.raw())
