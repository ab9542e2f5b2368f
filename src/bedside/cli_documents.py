"""``bedside docs``: issue regulatory documents for a model version from its record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bedside import cli_options

out = Console(highlight=False, soft_wrap=True)

KIND_HELP = (
    "Which document: model-card, chai, hti1, pccp, tripod-ai, eu-ai-act, or all "
    "(repeat the option or separate with commas for several)."
)


def docs(
    version: Annotated[str, typer.Argument(help="The model version, NAME@VERSION.")],
    kind: Annotated[list[str], typer.Option("--kind", "-k", help=KIND_HELP)],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write to. Default: <home>/documents/<model>/<version>/.",
            show_default=False,
        ),
    ] = None,
    user: cli_options.UserOpt = None,
    password_stdin: cli_options.PasswordStdinOpt = False,
) -> None:
    """Generate regulatory documents from the record of VERSION, as Markdown and HTML.

    Every document is built from the registry, the pipeline file, the dataset manifest, the
    evaluations, the e-signatures and the ledger; a field without evidence says "not recorded"
    and where it would come from. The CHAI card is also written as XML validated against the
    CHAI v0.2 schema. Each file's SHA-256 is recorded in the audit ledger (document.issued).
    """
    from bedside.cli import _session
    from bedside.documents.issue import issue_documents, parse_kinds

    kinds = parse_kinds(kind)  # a wrong kind fails before the password is asked
    platform, actor = _session(user, password_stdin)
    issued = issue_documents(platform, actor, version, kinds, out_dir=out_dir)
    for item in issued:
        out.print(f"{item.kind:<10} {item.format:<4} {item.path}", markup=False)
        out.print(f"{'':<15} sha256 {item.sha256} (ledger #{item.ledger_seq})", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``bedside docs`` to the ``bedside`` app."""
    app.command("docs")(docs)
