"""Evaluate predictions on a split: every metric with a seeded patient-level bootstrap interval.

:func:`evaluate` is what the validation stage runs on the validation and test splits. Point
estimates come from :mod:`bedside.domain.metrics`; intervals are percentile intervals over
patient-level resamples from :mod:`bedside.domain.bootstrap`. The result also carries what
clinical reviewers choose the operating threshold from (a candidate-threshold table), the
decision curve, the calibration-plot bins, and :meth:`EvaluationResult.compare_with` for
DeLong's test against the production model on the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bedside.domain import metrics as m
from bedside.domain.bootstrap import GroupedMetrics, Grouping, percentile_intervals
from bedside.errors import InvalidInput

__all__ = [
    "DEFAULT_SENSITIVITY_TARGETS",
    "DEFAULT_THRESHOLD_GRID",
    "EVALUATED_METRICS",
    "AurocComparison",
    "DecisionPoint",
    "Estimate",
    "EvaluationResult",
    "ThresholdRow",
    "check_confidence_level",
    "check_threshold",
    "evaluate",
    "json_number",
    "threshold_for_sensitivity",
    "threshold_table",
]

#: The metrics of an evaluation, in report order; each has a point estimate and an interval.
EVALUATED_METRICS: Final = (
    "auroc",
    "auprc",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "false_positive_rate",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
    "calibration_joint_intercept",
    "net_benefit",
)
DEFAULT_THRESHOLD_GRID: Final = tuple(round(0.05 * k, 2) for k in range(1, 20))
DEFAULT_SENSITIVITY_TARGETS: Final = (0.80, 0.85, 0.90, 0.95)
_DECISION_CURVE: Final = tuple(round(0.01 * k, 2) for k in range(1, 100))


def json_number(value: float) -> float | None:
    """Return the value for JSON: None for NaN or infinity."""
    return float(value) if math.isfinite(value) else None


def check_threshold(value: float) -> float:
    """Return the operating threshold, or raise InvalidInput unless 0 <= value <= 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput(
            "threshold must be a probability between 0 and 1 (rows with p >= threshold are alerts)",
            details={"argument": "threshold"},
        )
    return float(value)


def check_confidence_level(value: float) -> float:
    """Return the confidence level, or raise InvalidInput unless 0.5 < value < 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 < value < 1:
        raise InvalidInput(
            "confidence_level must be a number between 0.5 and 1, e.g. 0.95",
            details={"argument": "confidence_level"},
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric's point estimate and its percentile bootstrap interval."""

    value: float
    ci_lower: float = math.nan
    ci_upper: float = math.nan
    reason: str | None = None  # why the value is undefined
    ci_reason: str | None = None  # why the interval is undefined
    n_defined: int = 0  # resamples in which the metric was defined

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (None for undefined numbers)."""
        return {
            "value": json_number(self.value),
            "ci_lower": json_number(self.ci_lower),
            "ci_upper": json_number(self.ci_upper),
            "reason": self.reason,
            "ci_reason": self.ci_reason,
            "n_defined_resamples": self.n_defined,
        }


def make_estimates(
    points: Mapping[str, m.MetricValue],
    samples: Mapping[str, npt.NDArray[np.float64]] | None,
    *,
    n_boot: int,
    confidence_level: float,
) -> dict[str, Estimate]:
    """Pair each point estimate with the percentile interval of its resamples (one group)."""
    out = {}
    for name, point in points.items():
        if samples is None or n_boot == 0:
            out[name] = Estimate(point.value, reason=point.reason, ci_reason="no bootstrap")
            continue
        lower, upper, defined = percentile_intervals(samples[name], confidence_level)
        ci_reason = None
        if not point.is_defined:
            lower[0] = upper[0] = math.nan
            ci_reason = point.reason
        elif not math.isfinite(lower[0]):
            ci_reason = (
                f"defined in {int(defined[0])} of {n_boot} resamples (fewer than half): "
                "too few patients or events for an interval"
            )
        out[name] = Estimate(
            point.value, float(lower[0]), float(upper[0]), point.reason, ci_reason, int(defined[0])
        )
    return out


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """One candidate operating threshold and what it would mean at the bedside."""

    threshold: float
    source: str  # "operating", "grid" or "sensitivity >= 0.90"
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    alerts_per_100: float  # alerts per 100 admissions (rows)
    tp: int
    fp: int
    tn: int
    fn: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "threshold": self.threshold,
            "source": self.source,
            "sensitivity": json_number(self.sensitivity),
            "specificity": json_number(self.specificity),
            "ppv": json_number(self.ppv),
            "npv": json_number(self.npv),
            "alerts_per_100": json_number(self.alerts_per_100),
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
        }


def _counts_at(
    y: npt.NDArray[np.int8], p: npt.NDArray[np.float64], thresholds: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], ...]:
    """Return TP, FP, TN, FN at each threshold (positive when p >= threshold), vectorised."""
    all_sorted = np.sort(p)
    pos_sorted = np.sort(p[y == 1])
    predicted = len(p) - np.searchsorted(all_sorted, thresholds, side="left")
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = predicted - tp
    fn = len(pos_sorted) - tp
    tn = len(p) - len(pos_sorted) - fp
    return tp, fp, tn, fn


def threshold_for_sensitivity(y_true: Any, y_prob: Any, target: float) -> float:
    """Return the largest threshold whose sensitivity reaches ``target`` (NaN without positives).

    That is the k-th highest score among the positive rows, k = ⌈target · positives⌉.
    """
    y, p = m.as_labels(y_true), m.as_scores(y_prob, "y_prob")
    m.check_same_length(y_true=y, y_prob=p)
    if not 0 <= target <= 1:
        raise InvalidInput(
            "a target sensitivity lies between 0 and 1", details={"argument": "target"}
        )
    positives = np.sort(p[y == 1])[::-1]
    if not len(positives):
        return math.nan
    needed = max(1, math.ceil(target * len(positives) - 1e-9))
    return float(positives[needed - 1])


def threshold_table(
    y_true: Any,
    y_prob: Any,
    *,
    operating_threshold: float | None = None,
    grid: Sequence[float] = DEFAULT_THRESHOLD_GRID,
    sensitivities: Sequence[float] = DEFAULT_SENSITIVITY_TARGETS,
) -> tuple[ThresholdRow, ...]:
    """Return candidate thresholds with sensitivity, specificity, PPV, NPV and alert burden.

    Rows come from the grid, from each target sensitivity (the largest threshold whose
    sensitivity reaches the target), and from the operating threshold; highest threshold first.
    """
    y, p = m.as_labels(y_true), m.as_scores(y_prob, "y_prob")
    m.check_same_length(y_true=y, y_prob=p)
    for value in (*grid, *sensitivities):
        if not 0 <= value <= 1:
            raise InvalidInput(
                "threshold grid values and target sensitivities must lie between 0 and 1",
                details={"argument": "grid/sensitivities"},
            )
    rows: list[tuple[float, str]] = [(float(t), "grid") for t in grid]
    for target in sensitivities:
        found = threshold_for_sensitivity(y, p, target)
        if not math.isnan(found):
            rows.append((found, f"sensitivity >= {target:.2f}"))
    if operating_threshold is not None:
        rows.append((float(operating_threshold), "operating"))
    thresholds = np.array([t for t, _ in rows], dtype=np.float64)
    tp, fp, tn, fn = _counts_at(y, p, thresholds)
    n = len(y)
    table = []
    for k, (threshold, source) in enumerate(rows):
        counts = m.ConfusionCounts(int(tp[k]), int(fp[k]), int(tn[k]), int(fn[k]))
        table.append(
            ThresholdRow(
                threshold=threshold,
                source=source,
                sensitivity=counts.sensitivity().value,
                specificity=counts.specificity().value,
                ppv=counts.ppv().value,
                npv=counts.npv().value,
                alerts_per_100=100 * counts.predicted_positive / n if n else math.nan,
                tp=counts.tp,
                fp=counts.fp,
                tn=counts.tn,
                fn=counts.fn,
            )
        )
    table.sort(key=lambda row: (-row.threshold, row.source))
    return tuple(table)


@dataclass(frozen=True, slots=True)
class DecisionPoint:
    """Net benefit of the model and of treating everyone at one threshold probability."""

    threshold_probability: float
    model: float
    treat_all: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (treat-none is 0 everywhere)."""
        return {
            "threshold_probability": self.threshold_probability,
            "model": json_number(self.model),
            "treat_all": json_number(self.treat_all),
        }


def _decision_curve(
    y: npt.NDArray[np.int8], p: npt.NDArray[np.float64]
) -> tuple[DecisionPoint, ...]:
    n = len(y)
    if n == 0:
        return ()
    pts = np.array(_DECISION_CURVE)
    tp, fp, _, _ = _counts_at(y, p, pts)
    odds = pts / (1 - pts)
    prevalence = float(np.count_nonzero(y)) / n
    model = tp / n - fp / n * odds
    treat_all = prevalence - (1 - prevalence) * odds
    return tuple(
        DecisionPoint(float(pt), float(a), float(b))
        for pt, a, b in zip(pts, model, treat_all, strict=True)
    )


@dataclass(frozen=True, slots=True)
class AurocComparison:
    """DeLong's test of this model's AUROC against the production model's, on the same rows."""

    candidate_auroc: float
    production_auroc: float
    difference: float  # candidate − production
    ci_lower: float
    ci_upper: float
    z: float
    p_value: float
    confidence_level: float
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "method": "DeLong (Sun & Xu fast algorithm)",
            "candidate_auroc": json_number(self.candidate_auroc),
            "production_auroc": json_number(self.production_auroc),
            "difference": json_number(self.difference),
            "ci_lower": json_number(self.ci_lower),
            "ci_upper": json_number(self.ci_upper),
            "confidence_level": self.confidence_level,
            "z": json_number(self.z),
            "p_value": json_number(self.p_value),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Every metric of one evaluation with its interval, and the tables reviewers read."""

    threshold: float
    confidence_level: float
    n_boot: int
    seed: int
    stratified: bool
    n_rows: int
    n_patients: int
    n_events: int
    metrics: Mapping[str, Estimate]
    treat_all_net_benefit: float
    threshold_table: tuple[ThresholdRow, ...]
    decision_curve: tuple[DecisionPoint, ...]
    calibration_bins: tuple[m.CalibrationBin, ...]
    y_true: npt.NDArray[np.int8] = field(repr=False, compare=False)
    y_prob: npt.NDArray[np.float64] = field(repr=False, compare=False)

    @property
    def prevalence(self) -> float:
        """Return the share of rows with a positive outcome (NaN without rows)."""
        return self.n_events / self.n_rows if self.n_rows else math.nan

    def compare_with(self, production: EvaluationResult | Any) -> AurocComparison:
        """Compare this AUROC with the production model's on the same rows (DeLong's test).

        Args:
            production: the production model's evaluation on the same rows, or its scores.

        Raises:
            InvalidInput: the production result is for other rows (length or outcomes differ).
        """
        scores = production.y_prob if isinstance(production, EvaluationResult) else production
        scores = m.as_scores(scores, "production scores", probability=False)
        if len(scores) != self.n_rows or (
            isinstance(production, EvaluationResult)
            and not np.array_equal(production.y_true, self.y_true)
        ):
            raise InvalidInput(
                "DeLong's test compares two models on the same rows; the production evaluation "
                "has other rows (a different length or different outcomes). Evaluate the "
                "production model on this split first",
                details={"rows": self.n_rows, "production_rows": len(scores)},
            )
        test = m.delong_test(self.y_true, self.y_prob, scores)
        lower, upper = test.difference_interval(self.confidence_level)
        return AurocComparison(
            candidate_auroc=test.auc_a,
            production_auroc=test.auc_b,
            difference=test.difference,
            ci_lower=lower,
            ci_upper=upper,
            z=test.z,
            p_value=test.p_value,
            confidence_level=self.confidence_level,
            reason=test.reason,
        )

    def metric_values(self) -> dict[str, float]:
        """Return the numbers an ``expression`` gate may name (see ``EVALUATION_METRICS``)."""
        values: dict[str, float] = {}
        for name, estimate in self.metrics.items():
            values[name] = estimate.value
            values[f"{name}_ci_lower"] = estimate.ci_lower
            values[f"{name}_ci_upper"] = estimate.ci_upper
        values.update(
            prevalence=self.prevalence,
            n_patients=float(self.n_patients),
            n_events=float(self.n_events),
        )
        return values

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of the whole evaluation (no row-level data)."""
        return {
            "threshold": self.threshold,
            "confidence_level": self.confidence_level,
            "ci_method": "percentile bootstrap over patients",
            "n_boot": self.n_boot,
            "seed": self.seed,
            "stratified": self.stratified,
            "n_rows": self.n_rows,
            "n_patients": self.n_patients,
            "n_events": self.n_events,
            "prevalence": json_number(self.prevalence),
            "metrics": {name: est.to_dict() for name, est in self.metrics.items()},
            "treat_all_net_benefit": json_number(self.treat_all_net_benefit),
            "threshold_table": [row.to_dict() for row in self.threshold_table],
            "decision_curve": [point.to_dict() for point in self.decision_curve],
            "calibration_bins": [
                {
                    "lower": b.lower,
                    "upper": b.upper,
                    "count": b.count,
                    "mean_predicted": json_number(b.mean_predicted),
                    "observed_rate": json_number(b.observed_rate),
                }
                for b in self.calibration_bins
            ],
        }


def point_metrics(
    y: npt.NDArray[np.int8], p: npt.NDArray[np.float64], *, threshold: float, n_bins: int
) -> dict[str, m.MetricValue]:
    """Return the point estimate of every metric in :data:`EVALUATED_METRICS`."""
    counts = m.confusion_counts(y, p, threshold=threshold)
    fit = m.logistic_recalibration(y, p)
    return {
        "auroc": m.auroc(y, p),
        "auprc": m.average_precision(y, p),
        "sensitivity": counts.sensitivity(),
        "specificity": counts.specificity(),
        "ppv": counts.ppv(),
        "npv": counts.npv(),
        "false_positive_rate": counts.false_positive_rate(),
        "brier": m.brier_score(y, p),
        "ece": m.expected_calibration_error(y, p, n_bins=n_bins),
        "calibration_slope": fit.slope,
        "calibration_intercept": fit.citl,
        "calibration_joint_intercept": fit.intercept,
        "net_benefit": (
            m.net_benefit(y, p, threshold_probability=threshold)
            if threshold < 1
            else m.undefined("net benefit needs a threshold below 1")
        ),
    }


def evaluate(
    y_true: Any,
    y_prob: Any,
    *,
    threshold: float,
    seed: int,
    patient_ids: Any = None,
    n_boot: int = 1000,
    confidence_level: float = 0.95,
    stratify: bool = False,
    n_bins: int = m.DEFAULT_ECE_BINS,
    threshold_grid: Sequence[float] = DEFAULT_THRESHOLD_GRID,
    sensitivity_targets: Sequence[float] = DEFAULT_SENSITIVITY_TARGETS,
) -> EvaluationResult:
    """Evaluate predicted probabilities against outcomes, with patient-level bootstrap CIs.

    Args:
        y_true: outcome per row (0/1).
        y_prob: predicted probability per row.
        threshold: operating threshold; a row is an alert when ``y_prob >= threshold``.
        seed: bootstrap seed (same seed, same intervals).
        patient_ids: patient per row, so a patient's rows are resampled together; None when
            each row is a different patient.
        n_boot: resamples (0 skips the intervals).
        confidence_level: two-sided level of the percentile intervals.
        stratify: resample patients with and without an event separately (rare outcomes).
        n_bins: ECE bins.
        threshold_grid: thresholds listed in the candidate-threshold table.
        sensitivity_targets: sensitivities whose thresholds the table also lists.

    Raises:
        InvalidInput: labels not 0/1, probabilities outside [0, 1], lengths that differ, a
            missing patient id, or an argument out of range.
    """
    y = m.as_labels(y_true)
    p = m.as_scores(y_prob, "y_prob")
    m.check_same_length(y_true=y, y_prob=p)
    if len(y) == 0:
        raise InvalidInput("there are no rows to evaluate", details={"rows": 0})
    check_threshold(threshold)
    confidence_level = check_confidence_level(confidence_level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise InvalidInput("n_boot must be a whole number >= 0", details={"argument": "n_boot"})
    points = point_metrics(y, p, threshold=threshold, n_bins=n_bins)
    engine = GroupedMetrics(
        y,
        p,
        threshold=threshold,
        groupings=[Grouping.whole(len(y))],
        patient_ids=patient_ids,
        n_bins=n_bins,
        calibration=n_boot > 0,  # the point fits come from metrics; the engine refits resamples
    )
    samples = None
    if n_boot:
        samples = engine.bootstrap(n_boot=n_boot, seed=seed, stratify=stratify)
    return EvaluationResult(
        threshold=float(threshold),
        confidence_level=confidence_level,
        n_boot=n_boot,
        seed=seed,
        stratified=stratify,
        n_rows=len(y),
        n_patients=engine.n_patients,
        n_events=int(np.count_nonzero(y)),
        metrics=make_estimates(points, samples, n_boot=n_boot, confidence_level=confidence_level),
        treat_all_net_benefit=(
            m.treat_all_net_benefit(y, threshold_probability=threshold).value
            if threshold < 1
            else math.nan
        ),
        threshold_table=threshold_table(
            y,
            p,
            operating_threshold=threshold,
            grid=threshold_grid,
            sensitivities=sensitivity_targets,
        ),
        decision_curve=_decision_curve(y, p),
        calibration_bins=m.calibration_bins(y, p, n_bins=n_bins),
        y_true=y,
        y_prob=p,
    )
