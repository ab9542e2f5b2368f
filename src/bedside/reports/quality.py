"""Render a data quality report as self-contained HTML (for people) and JSON (for machines).

The HTML is one file with its styles inline — no scripts, fonts or images fetched from anywhere —
so it can be attached to an email or a governance meeting's papers. Like the
:class:`~bedside.domain.quality.QualityReport` it renders, it holds aggregates only.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import bedside
from bedside.domain.quality import QualityConfig, QualityReport, Status
from bedside.reports._files import write_text_atomically
from bedside.reports._render import TEMPLATES

__all__ = ["quality_json", "render_quality_html", "write_quality_report"]

logger = logging.getLogger(__name__)

CHECK_TITLES = {
    "rows": "Rows",
    "schema": "Columns and types",
    "completeness": "Completeness",
    "plausibility": "Physiologic plausibility",
    "duplicates": "Duplicates",
    "label": "Outcome (label)",
}
_ORDER = {Status.FAIL: 0, Status.WARN: 1}


def _pct(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.{digits}f}%"


def _num(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def render_quality_html(
    report: QualityReport,
    *,
    title: str = "Data quality report",
    dataset: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """Return the report as one self-contained HTML page.

    Args:
        report: the results of :func:`bedside.domain.quality.assess_quality`.
        title: the page title (e.g. the pipeline's name).
        dataset: what was checked (a snapshot digest or a name), shown in the header.
        generated_at: when the report was made (time is an argument, never read here).
    """
    sections: dict[str, list[Any]] = {name: [] for name in CHECK_TITLES}
    for result in report.results:
        sections.setdefault(result.check, []).append(result)
    attention = sorted(
        (r for r in report.results if r.status in _ORDER),
        key=lambda r: _ORDER[r.status],
    )
    defaults = QualityConfig()
    tolerance = next(
        (r.metrics["tolerance"] for r in sections["plausibility"]), defaults.max_implausible_share
    )
    band = next(
        (r.metrics["band"] for r in sections["label"] if "band" in r.metrics),
        list(defaults.prevalence_band),
    )
    template = TEMPLATES.get_template("quality.html")
    return template.render(
        report=report,
        title=title,
        dataset=dataset,
        generated_at=generated_at.isoformat(timespec="seconds") if generated_at else None,
        version=bedside.__version__,
        counts=report.status_counts(),
        sections=sections,
        attention=attention,
        check_titles=CHECK_TITLES,
        tolerance=tolerance,
        band=band,
        min_cell=report.min_cell_size,
        pct=_pct,
        num=_num,
    )


def quality_json(report: QualityReport, **extra: Any) -> str:
    """Return the report as indented JSON; ``extra`` keys (e.g. ``dataset``) are added on top."""
    return json.dumps({**report.to_dict(), **extra}, indent=2, sort_keys=True, allow_nan=False)


def write_quality_report(
    report: QualityReport,
    folder: Path,
    *,
    stem: str = "data-quality",
    title: str = "Data quality report",
    dataset: str | None = None,
    generated_at: datetime | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into ``folder``; return their paths.

    Each file is written to a temporary name and renamed, so a reader never sees half a report.
    """
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    extra: dict[str, Any] = {"dataset": dataset}
    if generated_at is not None:
        extra["generated_at"] = generated_at.isoformat()
    write_text_atomically(json_path, quality_json(report, **extra))
    write_text_atomically(
        html_path,
        render_quality_html(report, title=title, dataset=dataset, generated_at=generated_at),
    )
    logger.info(
        "wrote data quality report (%d results, %d failed) to %s",
        len(report.results),
        len(report.failures),
        folder,
    )
    return html_path, json_path
