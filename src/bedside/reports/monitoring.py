"""Render the monitoring report (the live version over time) as self-contained HTML and JSON.

Input is the mapping :func:`bedside.monitor_stage.run_monitoring` builds: per time bucket the
drift per feature, the score distribution, the alert rate, performance with intervals and
subgroup metrics, plus the alerts timeline from the ledger. Figures are matplotlib PNGs embedded
as data URIs; nothing is fetched. Like its input it holds aggregates only, and a count below 10
is never printed (the input already says ``"fewer than 10"`` instead).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import bedside
from bedside.reports._files import write_text_atomically
from bedside.reports._render import TEMPLATES, new_figure, png_data_uri, style_axes

__all__ = [
    "alerts_figure",
    "drift_heatmap_figure",
    "monitoring_json",
    "performance_figure",
    "render_monitoring_html",
    "scores_figure",
    "subgroup_figure",
    "write_monitoring_report",
]

logger = logging.getLogger(__name__)

_INK, _GREY, _FAINT, _BLUE, _RED, _GREEN = (
    "#101828",
    "#667085",
    "#eaecf0",
    "#2e5aac",
    "#b42318",
    "#1b7f3b",
)
_GROUP_COLOURS: Final = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#000000",
)
_KIND_STYLE: Final = {
    "performance": (_RED, "v", "performance below threshold"),
    "dataset_drift": ("#9a6700", "D", "dataset drift"),
    "retraining_trigger": (_BLUE, "^", "retraining trigger fired"),
}
MAX_HEATMAP_FEATURES: Final = 40


# -- helpers --------------------------------------------------------------------------------------


def _mid(bucket: Mapping[str, Any]) -> datetime:
    start = datetime.fromisoformat(bucket["start"])
    end = datetime.fromisoformat(bucket["end"])
    return start + (end - start) / 2


def _num(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return math.nan


def _fmt(value: Any, digits: int = 3) -> str:
    number = _num(value)
    return "—" if math.isnan(number) else f"{number:.{digits}f}"


def _count(value: Any) -> str:
    """A count as printed: numbers with separators; suppressed cells as they were given."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _fmt_ci(estimate: Mapping[str, Any] | None) -> str:
    if not estimate or _num(estimate.get("value")) != _num(estimate.get("value")):
        return "—"
    text = _fmt(estimate["value"])
    if not math.isnan(_num(estimate.get("ci_lower"))):
        text += f" ({_fmt(estimate['ci_lower'])}–{_fmt(estimate['ci_upper'])})"
    return text


def _time_axis(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_GREY)
    ax.set_xticks([])
    ax.set_yticks([])


# -- figures --------------------------------------------------------------------------------------


def drift_heatmap_figure(data: Mapping[str, Any]) -> str:
    """Drift per feature over time: one cell per feature and bucket, 1 = the test's threshold."""
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap

    buckets = data["buckets"]
    features = list(data["features"])[:MAX_HEATMAP_FEATURES]
    grid = np.full((len(features), len(buckets)), np.nan)
    drifted = np.zeros_like(grid, dtype=bool)
    for j, bucket in enumerate(buckets):
        cells = (bucket.get("drift") or {}).get("features") or {}
        for i, name in enumerate(features):
            cell = cells.get(name)
            if cell is not None:
                grid[i, j] = min(_num(cell.get("strength")), 3.0)
                drifted[i, j] = bool(cell.get("drifted"))
    fig = new_figure(9.5, 1.6 + 0.24 * len(features))
    top, ax = fig.subplots(2, 1, height_ratios=[1, max(2, len(features) / 4)], sharex=False)
    scores = [_num((b.get("drift") or {}).get("drift_score")) for b in buckets]
    x = list(range(len(buckets)))
    top.plot(x, scores, marker="o", color=_INK)
    share = next(
        (_num((b.get("drift") or {}).get("drift_share")) for b in buckets if b.get("drift")),
        0.5,
    )
    top.axhline(share, color=_RED, linestyle="--", linewidth=0.9, label="dataset drift share")
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("drift_score", fontsize=8)
    top.set_xlim(-0.5, len(buckets) - 0.5)
    top.set_xticks([])
    top.legend(fontsize=7, frameon=False, loc="upper left")
    style_axes(top)
    cmap = LinearSegmentedColormap.from_list("drift", ["#ffffff", "#fde68a", _RED]).with_extremes(
        bad="#f2f4f7"
    )
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    for i, j in zip(*np.nonzero(drifted), strict=True):
        ax.text(j, i, "×", ha="center", va="center", fontsize=8, color=_INK)
    ax.set_yticks(range(len(features)), labels=features, fontsize=7)
    labels = [_mid(b).strftime("%m-%d %H:%M") for b in buckets]
    step = max(1, math.ceil(len(buckets) / 12))
    ax.set_xticks(x[::step], labels=labels[::step], rotation=45, ha="right", fontsize=7)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("drift strength (1 = threshold)", fontsize=8)
    return png_data_uri(fig)


def scores_figure(data: Mapping[str, Any]) -> str:
    """Score distribution over time: 10–90% and 25–75% bands and the median, with the reference."""
    fig = new_figure(9.5, 3.2)
    ax = fig.subplots()
    rows = [
        (b, _mid(b)) for b in data["buckets"] if not (b.get("scores") or {}).get("suppressed", True)
    ]
    if not rows:
        _no_data(ax, "no bucket with 10 or more predictions")
        return png_data_uri(fig)
    x = [t for _, t in rows]
    q = [b["scores"]["quantiles"] for b, _ in rows]
    ax.fill_between(
        x,
        [v["p10"] for v in q],
        [v["p90"] for v in q],
        color=_BLUE,
        alpha=0.15,
        label="10–90% of scores",
    )
    ax.fill_between(
        x, [v["p25"] for v in q], [v["p75"] for v in q], color=_BLUE, alpha=0.3, label="25–75%"
    )
    ax.plot(x, [v["p50"] for v in q], color=_BLUE, marker="o", markersize=3, label="median")
    reference = data.get("reference_scores")
    if reference:
        ax.axhline(
            reference["p50"], color=_GREY, linestyle="--", linewidth=0.9, label="training median"
        )
        ax.axhspan(
            reference["p25"], reference["p75"], color=_GREY, alpha=0.08, label="training 25–75%"
        )
    ax.axhline(data["threshold"], color=_RED, linewidth=0.9, label="operating threshold")
    ax.set_ylabel("predicted probability", fontsize=8)
    ax.set_ylim(0, 1)
    _time_axis(ax)
    style_axes(ax)
    ax.legend(fontsize=7, frameon=False, ncols=3, loc="upper left")
    return png_data_uri(fig)


def performance_figure(data: Mapping[str, Any]) -> str:
    """The performance metric (and sensitivity) over time with CI bands and the alert line."""
    metric = data["performance_metric"]
    names = [metric] + (["sensitivity"] if metric != "sensitivity" else [])
    fig = new_figure(9.5, 3.2)
    ax = fig.subplots()
    plotted = False
    for name, colour in zip(names, (_INK, "#0072b2"), strict=False):
        points = []
        for b in data["buckets"]:
            est = ((b.get("performance") or {}).get("metrics") or {}).get(name)
            if est and not math.isnan(_num(est.get("value"))):
                points.append((_mid(b), est))
        if not points:
            continue
        plotted = True
        x = [t for t, _ in points]
        lower = [_num(e.get("ci_lower")) for _, e in points]
        upper = [_num(e.get("ci_upper")) for _, e in points]
        ax.fill_between(x, lower, upper, color=colour, alpha=0.15)
        ax.plot(
            x,
            [_num(e["value"]) for _, e in points],
            marker="o",
            color=colour,
            label=f"{name} (95% CI band)",
        )
    if not plotted:
        _no_data(ax, "no bucket with outcomes of both classes yet")
        return png_data_uri(fig)
    ax.axhline(
        data["accuracy_alert_threshold"],
        color=_RED,
        linestyle="--",
        linewidth=0.9,
        label=f"accuracy_alert_threshold ({metric})",
    )
    ax.set_ylim(0, 1.02)
    _time_axis(ax)
    style_axes(ax)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    return png_data_uri(fig)


def _subgroup_series(
    buckets: Sequence[Mapping[str, Any]], attribute: str, metric: str
) -> dict[str, list[tuple[datetime, float, float, float]]]:
    series: dict[str, list[tuple[datetime, float, float, float]]] = {}
    for b in buckets:
        groups = (((b.get("subgroups") or {}).get("attributes") or {}).get(attribute) or {}).get(
            "groups", []
        )
        for g in groups:
            if metric == "alert_rate":
                value, low, high = _num(g.get("alert_rate")), math.nan, math.nan
            else:
                est = (g.get("metrics") or {}).get(metric) or {}
                value, low, high = (_num(est.get(k)) for k in ("value", "ci_lower", "ci_upper"))
            if not math.isnan(value):
                series.setdefault(g["group"], []).append((_mid(b), value, low, high))
    return series


def subgroup_figure(data: Mapping[str, Any], attribute: str) -> str:
    """Per group of one attribute over time: alert rate, and sensitivity with CI bands."""
    fig = new_figure(9.5, 3.0)
    left, right = fig.subplots(1, 2)
    for ax, metric in ((left, "alert_rate"), (right, "sensitivity")):
        series = _subgroup_series(data["buckets"], attribute, metric)
        if not series:
            _no_data(ax, f"no {metric.replace('_', ' ')} for groups of 10 or more")
            continue
        for (group, points), colour in zip(
            sorted(series.items()), _GROUP_COLOURS * 8, strict=False
        ):
            x = [p[0] for p in points]
            if metric != "alert_rate":
                ax.fill_between(
                    x, [p[2] for p in points], [p[3] for p in points], color=colour, alpha=0.12
                )
            ax.plot(x, [p[1] for p in points], marker="o", markersize=3, color=colour, label=group)
        ax.set_title(
            f"{attribute}: {metric.replace('_', ' ')}"
            + (" (95% CI)" if metric != "alert_rate" else ""),
            fontsize=9,
        )
        ax.set_ylim(0, 1.02)
        _time_axis(ax)
        style_axes(ax)
        ax.legend(fontsize=7, frameon=False)
    return png_data_uri(fig)


def alerts_figure(data: Mapping[str, Any]) -> str:
    """The alerts timeline from the ledger: one marker per alert, by kind; undelivered hollow."""
    fig = new_figure(9.5, 1.9)
    ax = fig.subplots()
    timeline = data.get("alerts_timeline") or []
    undelivered = {e["alert_id"] for e in timeline if e["action"].endswith("_undelivered")}
    alerts = [e for e in timeline if e["action"] == "monitoring.alert"]
    if not alerts:
        _no_data(ax, "no alerts raised")
        return png_data_uri(fig)
    kinds = list(_KIND_STYLE)
    for row, kind in enumerate(kinds):
        colour, marker, label = _KIND_STYLE[kind]
        times = [
            datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
            for e in alerts
            if e["kind"] == kind
        ]
        hollow = [
            datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
            for e in alerts
            if e["kind"] == kind and e["alert_id"] in undelivered
        ]
        if times:
            ax.scatter(times, [row] * len(times), marker=marker, color=colour, s=50, label=label)
        if hollow:
            ax.scatter(
                hollow,
                [row] * len(hollow),
                marker="o",
                facecolors="none",
                edgecolors=_INK,
                s=140,
                label="webhook undelivered",
            )
    ax.set_yticks(range(len(kinds)), labels=[_KIND_STYLE[k][2] for k in kinds], fontsize=7)
    ax.set_ylim(-0.6, len(kinds) - 0.4)
    _time_axis(ax)
    style_axes(ax)
    return png_data_uri(fig)


# -- rendering ------------------------------------------------------------------------------------


def _bucket_rows(data: Mapping[str, Any]) -> list[dict[str, str]]:
    metric = data["performance_metric"]
    rows = []
    for b in data["buckets"]:
        drift = b.get("drift") or {}
        perf = b.get("performance") or {}
        est = (perf.get("metrics") or {}).get(metric)
        rows.append(
            {
                "start": datetime.fromisoformat(b["start"]).strftime("%Y-%m-%d %H:%M"),
                "end": datetime.fromisoformat(b["end"]).strftime("%Y-%m-%d %H:%M"),
                "n": _count(b.get("n", 0)),
                "drift_score": _fmt(drift.get("drift_score")),
                "drifted": (
                    f"{drift['n_drifted']} / {drift['n_features']}" if "n_drifted" in drift else "—"
                ),
                "dataset_drift": "yes" if drift.get("dataset_drift") else "",
                "alert_rate": _fmt(b.get("alert_rate")),
                "labelled": _count(b.get("n_labelled", 0)),
                "performance": _fmt_ci(est) if est else (perf.get("reason") or "—"),
            }
        )
    return rows


def _subgroup_tables(bucket: Mapping[str, Any]) -> list[dict[str, Any]]:
    tables = []
    for attribute, block in (((bucket.get("subgroups") or {}).get("attributes")) or {}).items():
        rows = []
        for g in block["groups"]:
            metrics = g.get("metrics") or {}
            rows.append(
                {
                    "group": g["group"],
                    "n": _count(g["n"]),
                    "alert_rate": "suppressed" if g["suppressed"] else _fmt(g["alert_rate"]),
                    "labelled": _count(g["n_labelled"]),
                    **{
                        m: _fmt_ci(metrics.get(m))
                        for m in ("sensitivity", "specificity", "ppv", "auroc")
                    },
                }
            )
        gaps = {m: _fmt_ci(v) for m, v in (block.get("gaps") or {}).items()}
        tables.append(
            {
                "attribute": attribute,
                "rows": rows,
                "gaps": gaps,
                "gate_gap": _fmt_ci(block.get("gate_gap")),
            }
        )
    return tables


def render_monitoring_html(data: Mapping[str, Any]) -> str:
    """Return the monitoring data as one self-contained HTML page with embedded figures."""
    buckets = data["buckets"]
    newest = buckets[-1]
    attributes = sorted(
        {a for b in buckets for a in (((b.get("subgroups") or {}).get("attributes")) or {})}
    )
    perf = newest.get("performance") or {}
    estimate = (perf.get("metrics") or {}).get(data["performance_metric"])
    sent = data.get("alerts") or {}
    timeline = [
        {
            "time": e["time"],
            "what": e["action"].removeprefix("monitoring."),
            "kind": e.get("kind") or "",
            "version": e.get("version") or "",
            "metric": e.get("metric") or "",
            "value": _fmt(e.get("value")),
        }
        for e in (data.get("alerts_timeline") or [])
    ]
    return TEMPLATES.get_template("monitoring.html.j2").render(
        d=data,
        version=bedside.__version__,
        newest=newest,
        newest_drift=newest.get("drift") or {},
        newest_perf=_fmt_ci(estimate) if estimate else (perf.get("reason") or "no outcomes yet"),
        below=bool(estimate and _num(estimate.get("value")) < data["accuracy_alert_threshold"]),
        n_newest=_count(newest.get("n", 0)),
        alert_rate=_fmt(newest.get("alert_rate")),
        rows=_bucket_rows(data),
        subgroup_tables=_subgroup_tables(newest),
        attributes=attributes,
        sent=sent.get("sent", []),
        suppressed=sent.get("suppressed", []),
        undelivered=sent.get("undelivered", []),
        timeline=timeline[-50:],
        heatmap_png=drift_heatmap_figure(data),
        scores_png=scores_figure(data),
        performance_png=performance_figure(data),
        subgroup_pngs=[(a, subgroup_figure(data, a)) for a in attributes],
        alerts_png=alerts_figure(data),
        bucket_hours=_fmt(data["plan"]["bucket_seconds"] / 3600, 2),
    )


def monitoring_json(data: Mapping[str, Any]) -> str:
    """Return the monitoring data as indented JSON (non-finite numbers become null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(
        {**clean(data), "bedside_version": bedside.__version__},
        indent=2,
        sort_keys=True,
        allow_nan=False,
    )


def write_monitoring_report(
    data: Mapping[str, Any], folder: Path, *, stem: str = "monitoring"
) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into ``folder`` atomically; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    write_text_atomically(json_path, monitoring_json(data))
    write_text_atomically(html_path, render_monitoring_html(data))
    logger.info("wrote monitoring report (%d buckets) to %s", len(data["buckets"]), folder)
    return html_path, json_path
