"""Read a trained version's evidence for the validation report: known fields only.

:func:`validation_report_data` copies the fields the report shows out of the evidence, one by
one, into a JSON-ready mapping; an unexpected key is never copied, so nothing row-level that
might have slipped into the evidence reaches a report. Numbers that are missing, undefined or not
numbers become ``None``, shown as ``not recorded`` (or ``undefined`` with the evidence's reason).
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import bedside
from bedside.domain.evaluation import EVALUATED_METRICS
from bedside.domain.fairness import GROUP_METRICS
from bedside.errors import InvalidInput

__all__ = [
    "METRICS",
    "NOT_RECORDED",
    "SPLITS",
    "fmt",
    "fmt_ci",
    "validation_report_data",
]

NOT_RECORDED: Final = "not recorded"
SPLITS: Final = ("validation", "test")
VERDICTS: Final = ("pass", "fail", "insufficient_evidence")
_FAIRNESS_GATE: Final = re.compile(r"fairness(_[0-9]+)?")  # gate names: fairness, fairness_2

# name → (label, how to read it, shown as a percentage)
METRICS: Final[Mapping[str, tuple[str, str, bool]]] = {
    "auroc": ("AUROC", "discrimination; 0.5 is chance, 1 is perfect", False),
    "auprc": ("AUPRC (average precision)", "chance level is the prevalence", False),
    "sensitivity": ("Sensitivity", "patients with the outcome who are alerted", True),
    "specificity": ("Specificity", "patients without the outcome who are not alerted", True),
    "ppv": ("PPV (precision)", "alerts followed by the outcome", True),
    "npv": ("NPV", "non-alerted patients without the outcome", True),
    "false_positive_rate": ("False-positive rate", "1 − specificity", True),
    "selection_rate": ("Alert rate", "share of rows alerted", True),
    "prevalence": ("Prevalence", "share of rows with the outcome", True),
    "brier": ("Brier score", "mean squared error of the risk; lower is better", False),
    "ece": ("Expected calibration error", "mean gap between predicted and observed", False),
    "calibration_slope": ("Calibration slope", "1 is ideal; below 1, risks too extreme", False),
    "calibration_intercept": (
        "Calibration-in-the-large",
        "0 is ideal; above 0, the model under-predicts",
        False,
    ),
    "calibration_joint_intercept": ("Calibration intercept (joint fit)", "beside the slope", False),
    "net_benefit": ("Net benefit", "at the operating threshold (decision curve)", False),
    "equal_opportunity": ("Equal opportunity difference", "sensitivity gap", False),
    "equalized_odds": ("Equalized odds difference", "worst of the TPR and FPR gaps", False),
    "demographic_parity": ("Demographic parity difference", "alert-rate gap", False),
}

# -- reading the evidence: known fields only -----------------------------------------------------


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None and number == int(number) else None


def _text(value: Any) -> str | None:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat(sep=" ", timespec="seconds")
    return value if isinstance(value, str) and value.strip() else None


def _label(value: Any) -> str | None:
    number = _int(value)
    return str(number) if number is not None else _text(value)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _estimate(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    return {
        "value": _num(raw.get("value")),
        "ci_lower": _num(raw.get("ci_lower")),
        "ci_upper": _num(raw.get("ci_upper")),
        "reason": _text(raw.get("reason")),
        "ci_reason": _text(raw.get("ci_reason")),
    }


def _estimates(raw: Any, names: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    found = _map(raw)
    return {name: _estimate(found.get(name)) for name in names}


def _points(raw: Any, x: str, y: str) -> list[list[float]]:
    out = []
    for item in _records(raw):
        px, py = _num(item.get(x)), _num(item.get(y))
        if px is not None and py is not None:
            out.append([px, py])
    return out


def _evaluation(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    return {
        "n_rows": _int(raw.get("n_rows")),
        "n_patients": _int(raw.get("n_patients")),
        "n_events": _int(raw.get("n_events")),
        "prevalence": _num(raw.get("prevalence")),
        "threshold": _num(raw.get("threshold")),
        "confidence_level": _num(raw.get("confidence_level")),
        "n_boot": _int(raw.get("n_boot")),
        "ci_method": _text(raw.get("ci_method")),
        "metrics": _estimates(raw.get("metrics"), EVALUATED_METRICS),
        "treat_all_net_benefit": _num(raw.get("treat_all_net_benefit")),
        "threshold_table": [
            {
                "threshold": _num(row.get("threshold")),
                "source": _text(row.get("source")),
                **{
                    key: _num(row.get(key))
                    for key in ("sensitivity", "specificity", "ppv", "npv", "alerts_per_100")
                },
            }
            for row in _records(raw.get("threshold_table"))
        ],
        "decision_curve": [
            {key: _num(p.get(key)) for key in ("threshold_probability", "model", "treat_all")}
            for p in _records(raw.get("decision_curve"))
        ],
        "calibration_bins": [
            {
                "lower": _num(b.get("lower")),
                "upper": _num(b.get("upper")),
                "count": _int(b.get("count")),
                "mean_predicted": _num(b.get("mean_predicted")),
                "observed_rate": _num(b.get("observed_rate")),
            }
            for b in _records(raw.get("calibration_bins"))
        ],
        # Curve points, when a later evaluation records them ([{fpr, tpr}], [{recall, precision}]).
        "roc_curve": _points(raw.get("roc_curve"), "fpr", "tpr"),
        "pr_curve": _points(raw.get("pr_curve"), "recall", "precision"),
    }


def _fairness(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    groups: list[dict[str, Any]] = []
    for g in _records(raw.get("groups")):
        status = g.get("status")
        groups.append(
            {
                "attribute": _text(g.get("attribute")) or NOT_RECORDED,
                "group": _text(g.get("group")) or NOT_RECORDED,
                "n_rows": _int(g.get("n_rows")),
                "n_patients": _int(g.get("n_patients")),
                "n_events": _int(g.get("n_events")),
                "status": status if status in ("ok", "insufficient_evidence") else None,
                "reasons": [r for r in map(_text, g.get("reasons") or ()) if r],
                "metrics": _estimates(g.get("metrics"), GROUP_METRICS),
            }
        )
    attributes = [a for a in map(_text, raw.get("attributes") or ()) if a]
    attributes += [g["attribute"] for g in groups if g["attribute"] not in attributes]
    attributes = list(dict.fromkeys(attributes))
    return {
        "threshold": _num(raw.get("threshold")),
        "confidence_level": _num(raw.get("confidence_level")),
        "n_boot": _int(raw.get("n_boot")),
        "min_group_size": _int(raw.get("min_group_size")),
        "min_group_events": _int(raw.get("min_group_events")),
        "attributes": attributes,
        "overall": _estimates(raw.get("overall"), GROUP_METRICS),
        "groups": groups,
        "disparities": [
            {
                "attribute": _text(d.get("attribute")),
                "metric": _text(d.get("metric")),
                "kind": _text(d.get("kind")),
                "method": _text(d.get("method")),
                "agg": _text(d.get("agg")),
                "value": _num(d.get("value")),
                "ci_lower": _num(d.get("ci_lower")),
                "ci_upper": _num(d.get("ci_upper")),
                "groups_compared": _int(d.get("groups_compared")),
                "reason": _text(d.get("reason")),
            }
            for d in _records(raw.get("disparities"))
        ],
    }


def _gate(raw: Mapping[str, Any]) -> dict[str, Any]:
    details = _map(raw.get("details"))
    expression = _text(details.get("expression"))
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression or ""))
    checks = []
    for c in _records(raw.get("checks")):
        direction = c.get("direction")
        checks.append(
            {
                "metric": _text(c.get("metric")),
                "key": _text(c.get("key")),
                "attribute": _text(c.get("attribute")),
                "value": _num(c.get("value")),
                "ci_lower": _num(c.get("ci_lower")),
                "ci_upper": _num(c.get("ci_upper")),
                "compared": _text(c.get("compared")),
                "direction": direction if direction in ("min", "max") else None,
                "threshold": _num(c.get("threshold")),
                "verdict": c.get("verdict") if c.get("verdict") in VERDICTS else None,
                "reason": _text(c.get("reason")),
            }
        )
    return {
        "gate": _text(raw.get("gate")) or NOT_RECORDED,
        "kind": _text(raw.get("kind")),
        "verdict": raw.get("verdict") if raw.get("verdict") in VERDICTS else None,
        "summary": _text(raw.get("summary")),
        "checks": checks,
        "details": {
            "split": _text(details.get("split")),
            "compare": _text(details.get("compare")),
            "confidence_level": _num(details.get("confidence_level")),
            "metric": _text(details.get("metric")),
            "expression": expression,
            # only the names the expression uses
            "values": {
                str(k): _num(v) for k, v in _map(details.get("values")).items() if k in names
            },
        },
    }


def _param(value: Any) -> str:
    if value is None or isinstance(value, str | int | float | bool):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, default=str)


def _signature(raw: Any) -> dict[str, str | None]:
    def field(name: str) -> Any:
        return raw.get(name) if isinstance(raw, Mapping) else getattr(raw, name, None)

    return {
        name: _text(field(name))
        for name in ("printed_name", "role", "meaning", "signed_at", "purpose", "record_sha256")
    }


def validation_report_data(
    evidence: Mapping[str, Any],
    *,
    model_ref: str,
    generated_at: datetime,
    signatures: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Return the report's content, JSON-ready: the evidence's known fields, nothing else.

    Numbers that are missing, undefined or not numbers are ``None``; a missing section is
    ``None`` (rendered as "not recorded"). This is what the JSON report holds.

    Raises:
        InvalidInput: ``evidence`` is not a mapping.
    """
    if not isinstance(evidence, Mapping):
        raise InvalidInput(
            "evidence must be a mapping (a version's evidence.json), "
            f"not {type(evidence).__name__}",
            details={"argument": "evidence"},
        )
    name, sep, number = model_ref.rpartition("@")
    evaluation = _map(evidence.get("evaluation"))
    gates = evidence.get("gates")
    features = []
    for f in _records(evidence.get("feature_schema")):
        categories = f.get("categories")
        features.append(
            {
                "name": _text(f.get("name")) or NOT_RECORDED,
                "kind": _text(f.get("kind")),
                "n_categories": len(categories) if isinstance(categories, list | tuple) else None,
            }
        )
    gate_list = [_gate(g) for g in _records(gates)] if isinstance(gates, list | tuple) else None
    verdicts = [g["verdict"] for g in gate_list or ()]
    overall = None
    if gate_list:
        overall = (
            "fail"
            if "fail" in verdicts
            else "insufficient_evidence"
            if "insufficient_evidence" in verdicts or None in verdicts
            else "pass"
        )
    params = evidence.get("params")
    return {
        "report": "validation",
        "model_ref": model_ref,
        "model": name if sep else model_ref,
        "version": number if sep and number.isdigit() else None,
        "generated_at": generated_at.isoformat(),
        "bedside_version": bedside.__version__,
        "summary": {
            "dataset_digest": _text(evidence.get("dataset_digest")),
            "estimator": _text(evidence.get("estimator")),
            "params": (
                {str(k): _param(v) for k, v in params.items()}
                if isinstance(params, Mapping)
                else None
            ),
            "seed": _int(evidence.get("seed")),
            "label": _text(evidence.get("label")),
            "features": features or None,
            "n_train": _int(evidence.get("n_train")),
            "n_train_events": _int(evidence.get("n_train_events")),
            "threshold": _num(evidence.get("threshold")),
            "threshold_rule": _text(evidence.get("threshold_rule")),
            "mlflow_model_id": _text(evidence.get("mlflow_model_id")),
            "mlflow_version": _label(evidence.get("mlflow_version")),
        },
        "gates": gate_list,
        "gates_verdict": overall,
        "evaluation": {split: _evaluation(evaluation.get(split)) for split in SPLITS},
        "fairness": _fairness(evidence.get("fairness")),
        "fairness_by_gate": {
            name: found
            for name, raw in _map(evidence.get("fairness_by_gate")).items()
            if isinstance(name, str) and _FAIRNESS_GATE.fullmatch(name)
            if (found := _fairness(raw)) is not None
        }
        or None,
        "signatures": [_signature(s) for s in signatures],
    }


# -- formatting ----------------------------------------------------------------------------------


def _is_pct(metric: str) -> bool:
    return METRICS.get(metric, ("", "", False))[2]


def fmt(value: float | None, metric: str = "", *, missing: str = NOT_RECORDED) -> str:
    """Return a metric's value for people: a percentage for rates, else three decimals."""
    if value is None:
        return missing
    if _is_pct(metric):
        return f"{100 * value:.1f}%"
    return f"{value:.3f}".replace("-", "−")


def fmt_ci(est: Mapping[str, Any] | None, metric: str) -> tuple[str, str | None]:
    """Return the interval's text and, when there is none, why."""
    if est is None:
        return NOT_RECORDED, None
    lower, upper = est.get("ci_lower"), est.get("ci_upper")
    if lower is None or upper is None:
        return "no interval", est.get("ci_reason") or est.get("reason")
    if _is_pct(metric):
        return f"{100 * lower:.1f}–{100 * upper:.1f}%", None
    if lower < 0:  # "−1.979 to −0.549" reads better than "-1.979–-0.549"
        return f"{lower:.3f} to {upper:.3f}".replace("-", "−"), None
    return f"{lower:.3f}–{upper:.3f}", None
