"""Render the CLI reference (docs/cli.md) from the commands' own --help text."""

from __future__ import annotations

from typing import Any

import typer

HEADER = """# CLI reference

Generated from `bedside --help` by `make docs` (`scripts/gen_cli_docs.py`); a test fails when this
file and the commands disagree. Do not edit by hand.

Every command accepts the global options of `bedside` (`--project`, `--debug`). Errors print one
line (`Error: …`) on standard error and exit non-zero; `--debug` shows the traceback.
"""


def _walk(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    # Typer ships its own copy of click, so commands are duck-typed rather than imported.
    found = [(path, command)]
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command)
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found.extend(_walk(sub, [*path, name]))
    return found


def render_cli_reference(app: typer.Typer) -> str:
    """Return the Markdown reference of every command of ``app``."""
    root = typer.main.get_command(app)
    parts = [HEADER]
    for path, command in _walk(root, ["bedside"]):
        ctx = command.context_class(
            command, info_name=" ".join(path), terminal_width=100, max_content_width=100
        )
        text = command.get_help(ctx).rstrip()
        level = "#" * min(len(path) + 1, 4)
        parts.append(f"{level} `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)
