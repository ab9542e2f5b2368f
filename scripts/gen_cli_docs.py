"""Regenerate docs/cli.md from the CLI's --help text (run by `make docs`)."""

from __future__ import annotations

from pathlib import Path

from bedside.cli import app
from bedside.cli_docs import render_cli_reference

TARGET = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

if __name__ == "__main__":
    TARGET.write_text(render_cli_reference(app), encoding="utf-8")
    print(f"wrote {TARGET}")
