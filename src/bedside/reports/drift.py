"""Render a drift result as self-contained HTML (figures embedded) and JSON.

The HTML is one file: styles inline and matplotlib figures embedded as PNG data URIs, nothing
fetched from anywhere, so it can go into a governance meeting's papers. Like the
:class:`~bedside.domain.drift.DriftResult` it renders, it holds aggregates only: scores, shares
over reference-derived bins and counts — never a patient's row or a current window's value.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import bedside
from bedside.domain.drift import ColumnDrift, DriftMethod, DriftResult
from bedside.reports._files import write_text_atomically
from bedside.reports._render import TEMPLATES, new_figure, png_data_uri

__all__ = ["drift_json", "render_drift_html", "write_drift_report"]

logger = logging.getLogger(__name__)

_RULES = {
    DriftMethod.KS: "p ≤ threshold",
    DriftMethod.CHISQUARE: "p < threshold",
    DriftMethod.Z: "p < threshold",
    DriftMethod.WASSERSTEIN: "distance ≥ threshold",
    DriftMethod.JENSENSHANNON: "distance ≥ threshold",
    DriftMethod.PSI: "PSI ≥ threshold",
}
_P_VALUES = {DriftMethod.KS, DriftMethod.CHISQUARE, DriftMethod.Z}
#: Industry PSI bands (REGULATORY.md §9.3).
PSI_BANDS = (0.1, 0.25)
MAX_DISTRIBUTION_PANELS = 4

_RED, _GREEN, _GREY, _BLUE = "#b42318", "#1b7f3b", "#98a2b3", "#2e5aac"


def psi_band(psi: float) -> str:
    """Return the conventional reading of a PSI value."""
    if not math.isfinite(psi):
        return "—"
    if psi < PSI_BANDS[0]:
        return "no significant shift"
    if psi <= PSI_BANDS[1]:
        return "moderate shift"
    return "significant shift"


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4f}"


# -- figures --------------------------------------------------------------------------------------


def _score_panel(ax: Any, columns: Sequence[ColumnDrift], p_values: bool) -> None:
    names = [c.name for c in columns]
    if p_values:
        # -log10(p): taller is more surprising; the threshold is drawn per feature.
        values = [-math.log10(max(c.score, 1e-300)) for c in columns]
        limits = [-math.log10(c.threshold) for c in columns]
        ax.set_xlabel("−log10(p-value)   (drift when the bar reaches the mark)")
    else:
        values = [c.score for c in columns]
        limits = [c.threshold for c in columns]
        ax.set_xlabel("distance   (drift when the bar reaches the mark)")
    y = range(len(columns))
    ax.barh(y, values, color=[_RED if c.drifted else _GREEN for c in columns], height=0.65)
    ax.scatter(limits, y, marker="|", s=220, color="#101828", zorder=3, label="threshold")
    ax.set_yticks(list(y), labels=names, fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="x", color="#eaecf0")
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize=8, frameon=False)


def drift_scores_figure(result: DriftResult) -> str:
    """Return a PNG data URI: each feature's drift score against its threshold."""
    groups = [
        (True, [c for c in result.columns if c.method in _P_VALUES]),
        (False, [c for c in result.columns if c.method not in _P_VALUES]),
    ]
    groups = [(p, cols) for p, cols in groups if cols]
    rows = max(len(cols) for _, cols in groups)
    fig = new_figure(7.5 * len(groups), 0.8 + 0.28 * rows)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (p_values, cols) in zip(axes, groups, strict=True):
        _score_panel(ax, cols, p_values)
        ax.set_title("p-value tests" if p_values else "distance tests", fontsize=10)
    return png_data_uri(fig)


def psi_figure(result: DriftResult) -> str:
    """Return a PNG data URI: PSI per feature with the 0.1 and 0.25 bands."""
    columns = list(result.columns)
    fig = new_figure(7.5, 0.8 + 0.28 * len(columns))
    ax = fig.subplots()
    values = [c.psi if math.isfinite(c.psi) else 0.0 for c in columns]
    colours = [
        _GREEN if v < PSI_BANDS[0] else ("#9a6700" if v <= PSI_BANDS[1] else _RED) for v in values
    ]
    y = range(len(columns))
    ax.barh(y, values, color=colours, height=0.65)
    for band in PSI_BANDS:
        ax.axvline(band, color="#101828", linewidth=0.8, linestyle="--")
    ax.set_yticks(list(y), labels=[c.name for c in columns], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("PSI   (< 0.1 stable · 0.1–0.25 moderate · > 0.25 significant)")
    ax.grid(axis="x", color="#eaecf0")
    ax.set_axisbelow(True)
    return png_data_uri(fig)


def _distribution_panel(ax: Any, column: ColumnDrift) -> None:
    dist = column.distribution
    x = list(range(len(dist.labels)))
    width = 0.42
    ax.bar([i - width / 2 for i in x], dist.reference, width, color=_GREY, label="reference")
    ax.bar([i + width / 2 for i in x], dist.current, width, color=_BLUE, label="current")
    step = max(1, math.ceil(len(x) / 8))
    ax.set_xticks(x[::step], labels=list(dist.labels)[::step], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share", fontsize=8)
    verdict = "drift" if column.drifted else "no drift"
    ax.set_title(f"{column.name} — {verdict} (PSI {_fmt(column.psi)})", fontsize=9)
    ax.legend(fontsize=7, frameon=False)


def distribution_figure(columns: Sequence[ColumnDrift]) -> str:
    """Return a PNG data URI: reference vs current shares for each given column."""
    n = len(columns)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = new_figure(5.2 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, column in zip(axes, columns, strict=False):
        _distribution_panel(ax, column)
    for ax in axes[n:]:
        ax.set_visible(False)
    return png_data_uri(fig)


# -- rendering ------------------------------------------------------------------------------------


def _features_to_show(result: DriftResult) -> list[ColumnDrift]:
    """Drifted features first, then the rest, each by PSI, at most a few panels."""
    ranked = sorted(
        result.columns,
        key=lambda c: (not c.drifted, -(c.psi if math.isfinite(c.psi) else 0.0)),
    )
    return ranked[:MAX_DISTRIBUTION_PANELS]


def render_drift_html(
    result: DriftResult,
    *,
    title: str = "Data drift report",
    model: str | None = None,
    window: str | None = None,
    generated_at: datetime | None = None,
    retraining_trigger: str | None = None,
    trigger_fired: bool | None = None,
) -> str:
    """Return the drift result as one self-contained HTML page with embedded figures.

    Args:
        result: the output of :func:`bedside.domain.drift.compute_drift`.
        title: the page title.
        model: the model version monitored (e.g. ``"sepsis@3"``), shown in the header.
        window: the monitoring window's description (e.g. ``"2026-03-01 to 2026-03-02"``).
        generated_at: when the report was made (time is an argument, never read here).
        retraining_trigger: the pipeline's trigger text (e.g. ``"drift_score > 0.3"``), shown
            with ``trigger_fired`` when the caller evaluated it.
    """
    rows = [
        {
            "c": c,
            "score": _fmt(c.score),
            "threshold": _fmt(c.threshold),
            "rule": _RULES[c.method],
            "psi": _fmt(c.psi),
            "band": psi_band(c.psi),
        }
        for c in result.columns
    ]
    prediction = result.prediction
    template = TEMPLATES.get_template("drift.html")
    return template.render(
        result=result,
        rows=rows,
        title=title,
        model=model,
        window=window,
        generated_at=generated_at.isoformat(timespec="seconds") if generated_at else None,
        version=bedside.__version__,
        retraining_trigger=retraining_trigger,
        trigger_fired=trigger_fired,
        prediction=prediction,
        prediction_row=(
            {
                "score": _fmt(prediction.score),
                "threshold": _fmt(prediction.threshold),
                "rule": _RULES[prediction.method],
                "psi": _fmt(prediction.psi),
                "band": psi_band(prediction.psi),
            }
            if prediction
            else None
        ),
        scores_png=drift_scores_figure(result),
        psi_png=psi_figure(result),
        prediction_png=distribution_figure([prediction]) if prediction else None,
        features_png=distribution_figure(_features_to_show(result)),
        share_pct=f"{100 * result.drift_score:.1f}%",
        drift_share_pct=f"{100 * result.drift_share:.0f}%",
    )


def drift_json(result: DriftResult, **extra: Any) -> str:
    """Return the result as indented JSON; ``extra`` keys (e.g. ``model``) are added on top."""
    return json.dumps({**result.to_dict(), **extra}, indent=2, sort_keys=True, allow_nan=False)


def write_drift_report(
    result: DriftResult,
    folder: Path,
    *,
    stem: str = "drift",
    title: str = "Data drift report",
    model: str | None = None,
    window: str | None = None,
    generated_at: datetime | None = None,
    retraining_trigger: str | None = None,
    trigger_fired: bool | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into ``folder``; return their paths.

    Each file is written to a temporary name and renamed, so a reader never sees half a report.
    """
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    extra: dict[str, Any] = {"model": model, "window": window}
    if generated_at is not None:
        extra["generated_at"] = generated_at.isoformat()
    if retraining_trigger is not None:
        extra["retraining_trigger"] = {"expression": retraining_trigger, "fired": trigger_fired}
    write_text_atomically(json_path, drift_json(result, **extra))
    html = render_drift_html(
        result,
        title=title,
        model=model,
        window=window,
        generated_at=generated_at,
        retraining_trigger=retraining_trigger,
        trigger_fired=trigger_fired,
    )
    write_text_atomically(html_path, html)
    logger.info(
        "wrote drift report (%d of %d features drifted) to %s",
        result.n_drifted,
        len(result.columns),
        folder,
    )
    return html_path, json_path
