"""Render a trained version's evidence as a validation report: self-contained HTML and JSON.

The report is for a clinical governance meeting: what was trained on what, the operating
threshold and how it was chosen, the gate verdicts, every metric with its interval on the
validation and test splits, the ROC, precision–recall, calibration and decision curves, the
subgroup metrics with insufficient-evidence groups marked, the candidate-threshold table and the
e-signature manifestations (21 CFR 11.50: printed name, date and time, meaning).

Only the known fields of the evidence are read, one by one
(:mod:`bedside.reports.validation_data`): an unexpected key is never rendered, so nothing
row-level that might have slipped into the evidence reaches a report. A field the evidence does
not hold is shown as ``not recorded``. Figures (:mod:`bedside.reports.validation_figures`) are
matplotlib (Agg) PNGs embedded as data URIs; nothing is fetched from anywhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import bedside
from bedside.domain.evaluation import EVALUATED_METRICS
from bedside.reports._files import write_text_atomically
from bedside.reports._render import TEMPLATES
from bedside.reports.validation_data import (
    METRICS,
    NOT_RECORDED,
    SPLITS,
    fmt,
    fmt_ci,
    validation_report_data,
)
from bedside.reports.validation_figures import (
    FEW_PREDICTIONS,
    SUBGROUP_CHART_METRICS,
    calibration_figure,
    curve_points,
    decision_curve_figure,
    roc_pr_figure,
    subgroup_figure,
)

__all__ = [
    "NOT_RECORDED",
    "SECTIONS",
    "render_validation_html",
    "validation_report_data",
    "write_validation_report",
]

logger = logging.getLogger(__name__)

#: The report's section headings, in order.
SECTIONS: Final = (
    "Summary",
    "Validation gates",
    "Performance on the validation and test splits",
    "Discrimination: ROC and precision–recall curves",
    "Calibration",
    "Decision curve",
    "Subgroup performance",
    "Candidate operating thresholds",
    "Electronic signatures",
)
#: The fairness disparities tabulated per attribute: (metric, agg, label).
_DISPARITIES: Final = (
    ("equal_opportunity", None, "Equal opportunity (sensitivity gap)"),
    ("equalized_odds", "worst_case", "Equalized odds (worst of sensitivity and FPR gaps)"),
    ("demographic_parity", None, "Demographic parity (alert-rate gap)"),
)


# -- formatting ---------------------------------------------------------------------------------


def _fmt_threshold(value: float | None) -> str:
    return NOT_RECORDED if value is None else f"{value:.4g}"


def _fmt_count(value: int | None) -> str:
    return NOT_RECORDED if value is None else f"{value:,}"


# Small-cell suppression: a subgroup count from 1 to 10 is shown as "fewer than 11", the usual rule
# for publishing aggregates (CMS cell-size suppression policy), so a rare group's size cannot help
# re-identify the few patients in it. Zero is shown: it identifies nobody.
SMALL_CELL = 11


def _fmt_cell_count(value: int | None) -> str:
    if value is not None and 0 < value < SMALL_CELL:
        return f"fewer than {SMALL_CELL}"
    return _fmt_count(value)


_LEADING_COUNT = re.compile(r"^(\d+)(?= )")


def suppress_small_count(reason: str) -> str:
    """Say "fewer than 11 patients (minimum 30)" where a reason starts with a small count."""
    match = _LEADING_COUNT.match(reason)
    if match and 0 < int(match.group(1)) < SMALL_CELL:
        return f"fewer than {SMALL_CELL}" + reason[match.end() :]
    return reason


def _cell(est: Mapping[str, Any] | None, metric: str) -> dict[str, str | None]:
    """Return the display strings of one estimate: value, interval, and a note when undefined."""
    if est is None:
        return {"value": NOT_RECORDED, "ci": NOT_RECORDED, "note": None}
    ci, why = fmt_ci(est, metric)
    if est["value"] is None:
        return {"value": "undefined", "ci": "—", "note": est["reason"] or "no value recorded"}
    return {"value": fmt(est["value"], metric), "ci": ci, "note": why}


def _ci_label(level: float | None) -> str:
    return "CI" if level is None else f"{100 * level:.0f}% CI"


# -- rendering -----------------------------------------------------------------------------------


def _gate_rows(gates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    compared = {
        "point_estimate": "point estimate",
        "ci_lower": "lower CI bound",
        "ci_upper": "upper CI bound",
        "expression": "expression",
    }
    rows = []
    for gate in gates:
        checks = []
        for c in gate["checks"]:
            metric = c["metric"] or NOT_RECORDED
            if c["compared"] == "expression":
                values = gate["details"]["values"]
                value = (
                    ", ".join(f"{k} = {fmt(v, k, missing='undefined')}" for k, v in values.items())
                    or NOT_RECORDED
                )
            else:
                value = fmt(c["value"], metric, missing="undefined")
            est = {**c, "reason": None, "ci_reason": None}
            ci = fmt_ci(est, metric)[0] if c["compared"] != "expression" else "—"
            if c["threshold"] is None:
                limit = "—" if c["compared"] == "expression" else NOT_RECORDED
            else:
                sign = {"min": "≥ ", "max": "≤ "}.get(c["direction"] or "", "")
                limit = sign + fmt(c["threshold"], metric)
            checks.append(
                {
                    "label": METRICS.get(metric, (metric,))[0],
                    "attribute": c["attribute"],
                    "key": c["key"],
                    "value": value,
                    "ci": ci,
                    "compared": compared.get(c["compared"] or "", NOT_RECORDED),
                    "limit": limit,
                    "verdict": c["verdict"],
                    "reason": c["reason"],
                }
            )
        rows.append({**gate, "rows": checks})
    return rows


def _metric_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric in EVALUATED_METRICS:
        label, explain, _ = METRICS.get(metric, (metric, "", False))
        cells = {}
        for split in SPLITS:
            ev = data["evaluation"][split]
            cells[split] = _cell(ev["metrics"][metric] if ev else None, metric)
        rows.append({"label": label, "explain": explain, "cells": cells})
    return rows


def _subgroup_tables(fairness: Mapping[str, Any]) -> list[dict[str, Any]]:
    tables = []
    for attribute in fairness["attributes"]:
        groups = [g for g in fairness["groups"] if g["attribute"] == attribute]
        rows = [
            {
                "group": g["group"],
                "n_patients": _fmt_cell_count(g["n_patients"]),
                "n_events": _fmt_cell_count(g["n_events"]),
                "status": g["status"],
                "reasons": [suppress_small_count(r) for r in g["reasons"]],
                "cells": {m: _cell(g["metrics"].get(m), m) for m in SUBGROUP_CHART_METRICS},
            }
            for g in groups
        ]
        disparities = []
        for metric, agg, label in _DISPARITIES:
            found = next(
                (
                    d
                    for d in fairness["disparities"]
                    if (d["attribute"], d["metric"], d["kind"], d["method"], d["agg"])
                    == (attribute, metric, "difference", "between_groups", agg)
                ),
                None,
            )
            if found is None:
                disparities.append({"label": label, "value": NOT_RECORDED, "ci": "", "note": None})
                continue
            cell = _cell(found, "")
            disparities.append(
                {
                    "label": label,
                    "value": cell["value"],
                    "ci": cell["ci"],
                    "note": cell["note"],
                    "groups": found["groups_compared"],
                }
            )
        tables.append({"attribute": attribute, "rows": rows, "disparities": disparities})
    return tables


def _threshold_rows(ev: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if ev is None:
        return []
    return [
        {
            "threshold": _fmt_threshold(r["threshold"]),
            "source": r["source"] or NOT_RECORDED,
            "operating": r["source"] == "operating",
            **{
                m: fmt(r[m], m, missing="undefined")
                for m in ("sensitivity", "specificity", "ppv", "npv")
            },
            "alerts": "undefined" if r["alerts_per_100"] is None else f"{r['alerts_per_100']:.1f}",
        }
        for r in ev["threshold_table"]
    ]


def _alt(curves: Mapping[str, Any]) -> str:
    parts = []
    for kind, name in (("roc", "ROC curve"), ("pr", "precision–recall curve")):
        for split, series in curves[kind].items():
            source = (
                "recorded curve points"
                if series["source"] == "recorded"
                else f"{len(series['points'])} points from the candidate-threshold table"
            )
            parts.append(f"{name} of the {split} split ({source})")
    return "; ".join(parts)


def render_validation_html(
    evidence: Mapping[str, Any],
    *,
    model_ref: str,
    generated_at: datetime,
    signatures: Sequence[Mapping[str, Any]] = (),
    title: str = "Validation report",
) -> str:
    """Return the validation report as one self-contained HTML page with embedded figures.

    Args:
        evidence: a trained version's evidence (``evidence.json``; see ``train_stage``).
        model_ref: the version, ``name@version``.
        generated_at: when the report was made (time is an argument, never read here).
        signatures: e-signatures on the version, as mappings (or objects) with
            ``printed_name``, ``role``, ``meaning``, ``signed_at`` and optionally ``purpose``
            and ``record_sha256``; e.g. ``dataclasses.asdict(signature)``.
        title: the page title.

    Raises:
        InvalidInput: ``evidence`` is not a mapping.
    """
    data = validation_report_data(
        evidence, model_ref=model_ref, generated_at=generated_at, signatures=signatures
    )
    return _render(data, title=title)


def _render(data: Mapping[str, Any], *, title: str) -> str:
    curves = curve_points(data)
    evaluations = [data["evaluation"][s] for s in SPLITS if data["evaluation"][s]]
    by_gate = data["fairness_by_gate"] or (
        {"fairness": data["fairness"]} if data["fairness"] else {}
    )
    has_bins = any(ev["calibration_bins"] for ev in evaluations)
    has_decision = any(ev["decision_curve"] for ev in evaluations)
    derived = [
        split
        for kind in ("roc", "pr")
        for split, series in curves[kind].items()
        if series["source"] == "threshold_table"
    ]
    gates = data["gates"] or []
    statistical_split = next(
        (g["details"]["split"] for g in gates if g["kind"] == "statistical"), None
    )
    summary = data["summary"]
    template = TEMPLATES.get_template("validation.html")
    return template.render(
        title=title,
        data=data,
        s=summary,
        version=bedside.__version__,
        sections=SECTIONS,
        nr=NOT_RECORDED,
        splits=SPLITS,
        gates=_gate_rows(gates),
        metric_rows=_metric_rows(data),
        ci_label=_ci_label(next((ev["confidence_level"] for ev in evaluations), None)),
        curves_png=roc_pr_figure(data, curves) if curves["roc"] or curves["pr"] else None,
        curves_alt=_alt(curves),
        curves_derived=bool(derived),
        curves_recorded=any(
            series["source"] == "recorded"
            for kind in ("roc", "pr")
            for series in curves[kind].values()
        ),
        calibration_png=calibration_figure(data) if has_bins else None,
        decision_png=decision_curve_figure(data) if has_decision else None,
        assessments=[
            {
                "gate": name,
                "f": fairness,
                "png": subgroup_figure(fairness) if fairness["groups"] else None,
                "tables": _subgroup_tables(fairness),
                "n_insufficient": sum(g["status"] != "ok" for g in fairness["groups"]),
            }
            for name, fairness in by_gate.items()
        ],
        fairness_split=statistical_split,
        threshold_tables={s: _threshold_rows(data["evaluation"][s]) for s in SPLITS},
        few=FEW_PREDICTIONS,
        fmt=fmt,
        fmt_threshold=_fmt_threshold,
        fmt_count=_fmt_count,
        chart_metrics=[(m, METRICS[m][0]) for m in SUBGROUP_CHART_METRICS],
    )


def write_validation_report(
    evidence: Mapping[str, Any],
    folder: Path,
    *,
    model_ref: str,
    generated_at: datetime,
    signatures: Sequence[Mapping[str, Any]] = (),
    stem: str = "validation",
    title: str = "Validation report",
) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into ``folder``; return their paths.

    The JSON holds what the HTML shows (:func:`validation_report_data`) plus the curve points
    the figures draw and where they came from. Each file is written to a temporary name and
    renamed, so a reader never sees half a report.

    Raises:
        InvalidInput: ``evidence`` is not a mapping.
    """
    data = validation_report_data(
        evidence, model_ref=model_ref, generated_at=generated_at, signatures=signatures
    )
    html = _render(data, title=title)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    payload = {**data, "curves": curve_points(data)}
    write_text_atomically(json_path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    write_text_atomically(html_path, html)
    logger.info(
        "wrote validation report for %s (%d gates, %d signatures) to %s",
        model_ref,
        len(data["gates"] or ()),
        len(data["signatures"]),
        folder,
    )
    return html_path, json_path
