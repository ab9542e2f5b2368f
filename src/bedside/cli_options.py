"""Options shared by the CLI's commands (declared once, so help texts cannot drift apart)."""

from __future__ import annotations

from typing import Annotated

import typer

UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        envvar="BEDSIDE_USER",
        show_default=False,
        help="Who you are (your bedside user name). Default: BEDSIDE_USER, else your login name.",
    ),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read your password from the first line of standard input "
        "instead of prompting (for scripts).",
    ),
]
