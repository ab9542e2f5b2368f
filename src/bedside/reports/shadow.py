"""Render the shadow report as self-contained HTML (figures embedded) and JSON.

The report is the evidence a promotion signature binds to (see ``docs/shadow.md``). It renders the
mapping built by :mod:`bedside.shadow_stage` — :meth:`bedside.domain.shadow.ShadowResult.to_dict`
plus the model, the version and the period — and holds aggregates only: counts, shares,
histograms and metrics with intervals, never a request's inputs or score.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import bedside
from bedside.domain.shadow import SHADOW_METRICS
from bedside.reports._files import write_text_atomically
from bedside.reports._render import TEMPLATES, new_figure, png_data_uri, style_axes

__all__ = ["render_shadow_html", "shadow_json", "write_shadow_report"]

logger = logging.getLogger(__name__)

_SHADOW, _PRODUCTION, _GREY, _FAINT = "#d55e00", "#0072b2", "#667085", "#eaecf0"
_METRIC_LABELS: Final = {
    "auroc": "AUROC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV (precision)",
}


# -- figures --------------------------------------------------------------------------------------


def _legend(ax: Any, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty period draws no series
        ax.legend(fontsize=8, frameon=False, **kwargs)


def distributions_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: the score histograms of both versions and their thresholds."""
    dist, alerts = data["distributions"], data["alerts"]
    bins = dist["bins"]
    edges = [k / bins for k in range(bins + 1)]
    fig = new_figure(7.5, 3.6)
    ax = fig.subplots()
    for side, colour, threshold in (
        ("production", _PRODUCTION, alerts["production_threshold"]),
        ("shadow", _SHADOW, alerts["shadow_threshold"]),
    ):
        found = dist[side]
        if found is None:
            continue
        total = max(found["n"], 1)
        shares = [c / total for c in found["histogram"]]
        ax.stairs(shares, edges, color=colour, linewidth=2, label=f"{side} (n={found['n']:,})")
        if threshold is not None:
            ax.axvline(threshold, color=colour, linestyle=":", linewidth=1.2)
    ax.set(xlim=(0, 1), xlabel="predicted probability (dotted: each version's threshold)")
    ax.set_ylabel("share of requests")
    ax.set_title("Score distributions", fontsize=11)
    _legend(ax)
    style_axes(ax)
    return png_data_uri(fig)


def joint_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: requests per (production score, shadow score) cell."""
    import numpy as np

    agreement, alerts = data["agreement"], data["alerts"]
    table = np.array(agreement["joint_histogram"], dtype=float)
    fig = new_figure(5.2, 4.4)
    ax = fig.subplots()
    shown = np.where(table > 0, table, np.nan).T  # rows: shadow bins (y), columns: production
    image = ax.imshow(shown, origin="lower", extent=(0, 1, 0, 1), cmap="Blues", aspect="equal")
    fig.colorbar(image, ax=ax, label="requests")
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=1)
    if alerts["production_threshold"] is not None:
        ax.axvline(alerts["production_threshold"], color=_PRODUCTION, linewidth=1.2)
    ax.axhline(alerts["shadow_threshold"], color=_SHADOW, linewidth=1.2)
    ax.set(xlabel="production probability", ylabel="shadow probability")
    ax.set_title("Same requests, both scores (lines: thresholds)", fontsize=10)
    return png_data_uri(fig)


def alerts_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: alerts per day of the period, shadow (would-be) and production."""
    alerts = data["alerts"]
    days = list(range(1, alerts["n_days"] + 1))
    fig = new_figure(7.5, 3.2)
    ax = fig.subplots()
    width = 0.4
    for offset, side, colour, label in (
        (-width / 2, "production", _PRODUCTION, "production (actual)"),
        (width / 2, "shadow", _SHADOW, "shadow (would-be)"),
    ):
        found = alerts[side]
        if found is not None:
            ax.bar([d + offset for d in days], found["daily"], width, color=colour, label=label)
    ax.set(xlabel="day of the shadow period", ylabel="alerts")
    ax.set_title("Alerts per day", fontsize=11)
    _legend(ax)
    style_axes(ax)
    return png_data_uri(fig)


def performance_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: each metric of both versions with its interval."""
    performance = data["performance"]
    fig = new_figure(7.5, 0.9 + 0.55 * len(SHADOW_METRICS))
    ax = fig.subplots()
    for offset, side, colour in ((-0.15, "production", _PRODUCTION), (0.15, "shadow", _SHADOW)):
        found = performance[side]
        if found is None:
            continue
        for row, name in enumerate(SHADOW_METRICS):
            estimate = found["metrics"][name]
            if estimate["value"] is None:
                continue
            y = row + offset
            if estimate["ci_lower"] is not None and estimate["ci_upper"] is not None:
                ax.plot([estimate["ci_lower"], estimate["ci_upper"]], [y, y], color=colour)
            ax.plot(estimate["value"], y, "o", color=colour, label=side if row == 0 else None)
    ax.set_yticks(range(len(SHADOW_METRICS)), labels=[_METRIC_LABELS[m] for m in SHADOW_METRICS])
    ax.set(xlim=(0, 1), ylim=(len(SHADOW_METRICS) - 0.5, -0.5), xlabel="value (line: interval)")
    ax.set_title("Performance on the same labelled requests", fontsize=11)
    _legend(ax, loc="lower left")
    style_axes(ax)
    return png_data_uri(fig)


# -- rendering ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _estimate(estimate: Mapping[str, Any] | None) -> str:
    if estimate is None or estimate["value"] is None:
        return "undefined" if estimate is None else f"undefined ({estimate['reason']})"
    text = _fmt(estimate["value"])
    if estimate["ci_lower"] is not None and estimate["ci_upper"] is not None:
        text += f" ({_fmt(estimate['ci_lower'])}–{_fmt(estimate['ci_upper'])})"
    return text


def render_shadow_html(data: Mapping[str, Any], *, json_sha256: str | None = None) -> str:
    """Return the shadow report as one self-contained HTML page with embedded figures.

    Args:
        data: the report mapping (see :func:`write_shadow_report`).
        json_sha256: the SHA-256 of the JSON report, printed so a reader can match the two.
    """
    performance = data["performance"]
    rows = [
        {
            "label": _METRIC_LABELS[name],
            "shadow": _estimate(performance["shadow"] and performance["shadow"]["metrics"][name]),
            "production": _estimate(
                performance["production"] and performance["production"]["metrics"][name]
            ),
        }
        for name in SHADOW_METRICS
    ]
    has_performance = performance["shadow"] is not None
    template = TEMPLATES.get_template("shadow.html.j2")
    return template.render(
        data=data,
        version=bedside.__version__,
        fmt=_fmt,
        metric_rows=rows,
        json_sha256=json_sha256,
        distributions_png=distributions_figure(data),
        joint_png=joint_figure(data) if data["agreement"]["applicable"] else None,
        alerts_png=alerts_figure(data),
        performance_png=performance_figure(data) if has_performance else None,
    )


def shadow_json(data: Mapping[str, Any]) -> str:
    """Return the report mapping as indented, key-sorted JSON (no NaN: undefined is null)."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)


def write_shadow_report(
    data: Mapping[str, Any], folder: Path, *, stem: str = "shadow"
) -> tuple[Path, Path, str]:
    """Write ``<stem>.json`` then ``<stem>.html`` into ``folder``.

    Each file is written to a temporary name and renamed, so a reader never sees half a report.

    Returns:
        The HTML path, the JSON path and the SHA-256 of the JSON file's bytes (what the
        version's evidence records, so a signature over the evidence binds the report).
    """
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    text = shadow_json(data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    write_text_atomically(json_path, text)
    write_text_atomically(html_path, render_shadow_html(data, json_sha256=digest))
    logger.info("wrote shadow report (passed=%s) to %s", data["verdict"]["passed"], folder)
    return html_path, json_path, digest
