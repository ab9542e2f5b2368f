"""A document as data: sections of fields and tables, rendered as Markdown or print-ready HTML.

Each document kind builds a :class:`Document` from :class:`~bedside.documents.evidence.Evidence`;
the two Jinja2 templates here render every kind the same way. A :class:`Entry` whose value is
``None`` renders as *not recorded* followed by where the value would come from, so a reader
sees every gap and what would fill it; nothing is invented to fill it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bedside.documents.evidence import Evidence

__all__ = [
    "NOT_RECORDED",
    "Document",
    "Entry",
    "Section",
    "Table",
    "fmt",
    "fmt_estimate",
    "render_html",
    "render_markdown",
]

NOT_RECORDED: Final = "not recorded"

TextFormat = Literal["md", "html"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One field of a document: its label, its value (``None``: not recorded) and its source.

    ``source`` names where the value comes from when it is recorded, and where it would come
    from when it is not (shown after *not recorded*).
    """

    label: str
    value: str | None
    source: str
    key: str = ""

    @property
    def recorded(self) -> bool:
        return self.value is not None and self.value.strip() != ""


@dataclass(frozen=True, slots=True)
class Table:
    """A table of evidence; with no rows it renders as *not recorded* and its source."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    source: str
    note: str = ""

    @property
    def recorded(self) -> bool:
        return bool(self.rows)


@dataclass(frozen=True, slots=True)
class Section:
    """A heading with its fields and tables."""

    title: str
    items: tuple[Entry | Table, ...]
    intro: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """A whole document of one kind for one version."""

    kind: str
    title: str
    standard: str
    evidence: Evidence
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def entries(self) -> list[Entry]:
        """Return every field of the document, in order."""
        return [i for s in self.sections for i in s.items if isinstance(i, Entry)]


# -- formatting ---------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str | None:
    """Return a number or text for a document, or ``None`` when there is nothing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list | tuple):
        parts = [p for p in (fmt(v, digits) for v in value) if p]
        return ", ".join(parts) or None
    text = str(value).strip()
    return text or None


def fmt_estimate(est: Mapping[str, Any] | None, level: Any = None) -> str | None:
    """Return ``0.713 (95% CI 0.650–0.770)``, or why the estimate or its interval is missing."""
    if not isinstance(est, Mapping):
        return None
    value = est.get("value")
    if value is None:
        reason = est.get("reason")
        return f"undefined ({reason})" if reason else None
    text = f"{float(value):.3f}"
    lower, upper = est.get("ci_lower"), est.get("ci_upper")
    percent = f"{float(level) * 100:g}% " if isinstance(level, int | float) else ""
    if lower is not None and upper is not None:
        return f"{text} ({percent}CI {float(lower):.3f}–{float(upper):.3f})"
    why = est.get("ci_reason")
    return f"{text} (no interval: {why})" if why else f"{text} (no interval recorded)"


def join_lines(lines: Sequence[str | None]) -> str | None:
    """Join the recorded lines into one value (``None`` when none is recorded)."""
    kept = [line for line in lines if line]
    return "\n".join(kept) if kept else None


# -- rendering ----------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bedside.documents", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = _md_cell
    env.filters["md_text"] = _md_text
    env.tests["entry"] = lambda item: isinstance(item, Entry)
    return env


def _md_cell(value: Any) -> str:
    """Return text safe inside a Markdown table cell (no pipes or line breaks)."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _md_text(value: Any) -> str:
    """Return free text for Markdown: a line starting with '#' must not become a heading."""
    lines = str(value).splitlines()
    # Two trailing spaces keep each recorded line on its own line (a Markdown hard break).
    return "  \n".join("\\" + line if line.lstrip().startswith("#") else line for line in lines)


def _context(document: Document) -> dict[str, Any]:
    return {
        "doc": document,
        "ev": document.evidence,
        "not_recorded": NOT_RECORDED,
    }


def render_markdown(document: Document) -> str:
    """Render ``document`` as Markdown."""
    return _environment().get_template("document.md.j2").render(_context(document))


def render_html(document: Document) -> str:
    """Render ``document`` as one self-contained, print-ready HTML page (inline CSS, no links)."""
    return _environment().get_template("document.html.j2").render(_context(document))


def render(document: Document, fmt_: TextFormat) -> str:
    """Render ``document`` in ``fmt_`` (``md`` or ``html``)."""
    return render_markdown(document) if fmt_ == "md" else render_html(document)
