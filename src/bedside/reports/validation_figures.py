"""Figures of the validation report: matplotlib (Agg) PNGs as data URIs, from report data.

Each function takes the mapping of :func:`~bedside.reports.validation_data.validation_report_data`
(or a part of it) and returns ``data:image/png;base64,…``. Nothing is drawn that the evidence
does not hold: without recorded curve points, the ROC and precision–recall curves are the rows
of the candidate-threshold table, marked as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bedside.reports._render import new_figure, png_data_uri, style_axes
from bedside.reports.validation_data import METRICS, SPLITS, fmt_ci

__all__ = [
    "FEW_PREDICTIONS",
    "SUBGROUP_CHART_METRICS",
    "calibration_figure",
    "curve_points",
    "decision_curve_figure",
    "roc_pr_figure",
    "subgroup_figure",
]

#: Metrics drawn per subgroup.
SUBGROUP_CHART_METRICS: Final = ("sensitivity", "specificity", "ppv", "auroc")
#: Below this many predictions a calibration bin is drawn hollow: its observed rate is unstable.
FEW_PREDICTIONS: Final = 11
_SPLIT_STYLE: Final = {"validation": ("#0072b2", "o"), "test": ("#d55e00", "s")}
_GREY, _INK, _FAINT = "#667085", "#101828", "#eaecf0"


# -- figures -------------------------------------------------------------------------------------


def curve_points(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ROC and PR points per split, recorded or read off the threshold table."""
    out: dict[str, Any] = {"roc": {}, "pr": {}}
    for split in SPLITS:
        ev = data["evaluation"][split]
        if ev is None:
            continue
        table = ev["threshold_table"]
        if ev["roc_curve"]:
            out["roc"][split] = {"source": "recorded", "points": ev["roc_curve"]}
        else:
            points = {
                (1 - r["specificity"], r["sensitivity"])
                for r in table
                if r["specificity"] is not None and r["sensitivity"] is not None
            }
            if points:
                out["roc"][split] = {
                    "source": "threshold_table",
                    "points": [list(p) for p in sorted(points)],
                }
        if ev["pr_curve"]:
            out["pr"][split] = {"source": "recorded", "points": ev["pr_curve"]}
        else:
            points = {
                (r["sensitivity"], r["ppv"])
                for r in table
                if r["sensitivity"] is not None and r["ppv"] is not None
            }
            if points:
                out["pr"][split] = {
                    "source": "threshold_table",
                    "points": [list(p) for p in sorted(points)],
                }
    return out


def _legend_label(data: Mapping[str, Any], split: str, metric: str) -> str:
    est = data["evaluation"][split]["metrics"].get(metric)
    if est is None or est["value"] is None:
        return split
    ci, _ = fmt_ci(est, metric)
    text = f"{split}: {METRICS[metric][0].split(' ')[0]} {est['value']:.3f}"
    return text + (f" ({ci})" if est["ci_lower"] is not None else "")


def roc_pr_figure(data: Mapping[str, Any], curves: Mapping[str, Any]) -> str:
    """Return a PNG data URI: the ROC and precision–recall curves of each split."""
    fig = new_figure(10, 4.4)
    roc_ax, pr_ax = fig.subplots(1, 2)
    roc_ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=1, label="chance")
    for split, series in curves["roc"].items():
        colour, marker = _SPLIT_STYLE[split]
        xs, ys = zip(*series["points"], strict=True)
        drawn = "-" if series["source"] == "recorded" else "-" + marker
        roc_ax.plot(
            xs, ys, drawn, color=colour, markersize=4, label=_legend_label(data, split, "auroc")
        )
    roc_ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 − specificity (false-positive rate)")
    roc_ax.set_ylabel("sensitivity")
    roc_ax.set_title("ROC curve", fontsize=11)
    for split, series in curves["pr"].items():
        colour, marker = _SPLIT_STYLE[split]
        xs, ys = zip(*series["points"], strict=True)
        drawn = "-" if series["source"] == "recorded" else "-" + marker
        pr_ax.plot(
            xs, ys, drawn, color=colour, markersize=4, label=_legend_label(data, split, "auprc")
        )
        prevalence = data["evaluation"][split]["prevalence"]
        if prevalence is not None:
            pr_ax.axhline(prevalence, color=colour, linestyle=":", linewidth=1)
    pr_ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="sensitivity (recall)")
    pr_ax.set_ylabel("PPV (precision)")
    pr_ax.set_title("Precision–recall curve (dotted: prevalence)", fontsize=11)
    for ax in (roc_ax, pr_ax):
        style_axes(ax)
        ax.legend(fontsize=8, frameon=False, loc="lower right" if ax is roc_ax else "upper right")
    return png_data_uri(fig, dpi=120)


def calibration_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: observed against predicted risk per bin, with bin sizes."""
    fig = new_figure(6.4, 6.0)
    ax, counts_ax = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=1, label="perfect calibration")
    width = 0.04
    for k, split in enumerate(SPLITS):
        ev = data["evaluation"][split]
        if ev is None or not ev["calibration_bins"]:
            continue
        colour, marker = _SPLIT_STYLE[split]
        bins = [b for b in ev["calibration_bins"] if b["count"] and b["mean_predicted"] is not None]
        full = [b for b in bins if b["count"] >= FEW_PREDICTIONS and b["observed_rate"] is not None]
        few = [b for b in bins if b["count"] < FEW_PREDICTIONS and b["observed_rate"] is not None]
        line = sorted(full + few, key=lambda b: b["mean_predicted"])
        ax.plot(
            [b["mean_predicted"] for b in line],
            [b["observed_rate"] for b in line],
            color=colour,
            linewidth=1,
            alpha=0.6,
        )
        ax.plot(
            [b["mean_predicted"] for b in full],
            [b["observed_rate"] for b in full],
            marker,
            color=colour,
            markersize=7,
            label=split,
        )
        if few:
            ax.plot(
                [b["mean_predicted"] for b in few],
                [b["observed_rate"] for b in few],
                marker,
                color=colour,
                markerfacecolor="white",
                markersize=7,
                label=f"{split}: bin of fewer than {FEW_PREDICTIONS} predictions",
            )
        centres = [
            ((b["lower"] or 0) + (b["upper"] or 0)) / 2 + (k - 0.5) * width
            for b in ev["calibration_bins"]
        ]
        counts_ax.bar(
            centres, [b["count"] or 0 for b in ev["calibration_bins"]], width, color=colour
        )
    ax.set(xlim=(0, 1), ylim=(-0.03, 1.03), ylabel="observed rate of the outcome")
    ax.set_title("Calibration (equal-width bins of predicted risk)", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    counts_ax.set_yscale("symlog", linthresh=1)
    counts_ax.set(xlabel="mean predicted risk in the bin", ylabel="predictions")
    for axis in (ax, counts_ax):
        style_axes(axis)
    return png_data_uri(fig, dpi=120)


def decision_curve_figure(data: Mapping[str, Any]) -> str:
    """Return a PNG data URI: net benefit of the model, treat-all and treat-none."""
    fig = new_figure(7.5, 4.4)
    ax = fig.subplots()
    top, last_useful = 0.0, 0.0
    for split in SPLITS:
        ev = data["evaluation"][split]
        if ev is None:
            continue
        points = [p for p in ev["decision_curve"] if p["threshold_probability"] is not None]
        colour, _ = _SPLIT_STYLE[split]
        model = [(p["threshold_probability"], p["model"]) for p in points if p["model"] is not None]
        treat = [
            (p["threshold_probability"], p["treat_all"])
            for p in points
            if p["treat_all"] is not None
        ]
        if model:
            ax.plot(*zip(*model, strict=True), color=colour, linewidth=2, label=f"model ({split})")
            top = max(top, *(v for _, v in model))
            last_useful = max([last_useful, *(t for t, v in model if v > 0)])
        if treat:
            ax.plot(
                *zip(*treat, strict=True),
                color=colour,
                linestyle="--",
                linewidth=1,
                label=f"treat all ({split})",
            )
            top = max(top, *(v for _, v in treat))
    ax.axhline(0, color=_INK, linewidth=1, label="treat none")
    threshold = data["summary"]["threshold"]
    right = min(1.0, max(0.2, last_useful + 0.05, (threshold or 0) + 0.05))
    if threshold is not None:
        ax.axvline(threshold, color=_GREY, linestyle=":", linewidth=1, label="operating threshold")
    top = top or 0.1
    ax.set(xlim=(0, right), ylim=(-0.25 * top, 1.15 * top))
    ax.set_xlabel("threshold probability (risk at which a clinician would act)")
    ax.set_ylabel("net benefit")
    ax.set_title("Decision curve", fontsize=11)
    style_axes(ax)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return png_data_uri(fig, dpi=120)


def subgroup_figure(fairness: Mapping[str, Any]) -> str:
    """Return a PNG data URI: each group's metrics with intervals, insufficient groups hollow."""
    attributes = [
        (a, [g for g in fairness["groups"] if g["attribute"] == a]) for a in fairness["attributes"]
    ]
    attributes = [(a, groups) for a, groups in attributes if groups]
    metrics = SUBGROUP_CHART_METRICS
    heights = [len(groups) + 1.2 for _, groups in attributes]
    fig = new_figure(11, 0.6 + 0.3 * sum(heights))
    axes = fig.subplots(len(attributes), len(metrics), squeeze=False, height_ratios=heights)
    for row, (attribute, groups) in enumerate(attributes):
        ys = list(range(len(groups)))
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            overall = fairness["overall"].get(metric)
            if overall is not None and overall["value"] is not None:
                ax.axvline(overall["value"], color=_GREY, linestyle="--", linewidth=1)
            for y, group in zip(ys, groups, strict=True):
                est = group["metrics"].get(metric)
                weak = group["status"] != "ok"
                colour = _GREY if weak else _INK
                if est is None or est["value"] is None:
                    ax.text(0.02, y, "undefined", va="center", fontsize=7, color=_GREY)
                    continue
                if est["ci_lower"] is not None and est["ci_upper"] is not None:
                    ax.plot([est["ci_lower"], est["ci_upper"]], [y, y], color=colour, linewidth=1.5)
                ax.plot(
                    est["value"],
                    y,
                    "D" if weak else "o",
                    color=colour,
                    markerfacecolor="white" if weak else colour,
                    markersize=6,
                )
            ax.set_xlim(0, 1)
            ax.set_ylim(len(groups) - 0.4, -0.6)
            ax.set_yticks(ys)
            if col == 0:
                labels = [
                    g["group"] + ("  [insufficient evidence]" if g["status"] != "ok" else "")
                    for g in groups
                ]
                ax.set_yticklabels(labels, fontsize=8)
                for tick, g in zip(ax.get_yticklabels(), groups, strict=True):
                    if g["status"] != "ok":
                        tick.set_color(_GREY)
                        tick.set_fontstyle("italic")
                ax.set_ylabel(attribute, fontsize=9, fontweight="bold")
            else:
                ax.set_yticklabels([])
            if row == 0:
                ax.set_title(METRICS[metric][0], fontsize=10)
            ax.tick_params(axis="x", labelsize=7)
            style_axes(ax)
    return png_data_uri(fig, dpi=120)
