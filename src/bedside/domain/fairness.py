"""Assess fairness: the evaluation metrics per subgroup, with CIs, and fairlearn's disparities.

For each attribute in ``stratify_by`` (and, on request, their intersections), every group gets
the evaluation metrics with patient-level bootstrap intervals — like fairlearn's ``MetricFrame``
but computed for all groups and resamples at once (:mod:`bedside.domain.bootstrap`). Then the
disparities follow fairlearn 0.15.0's definitions (REGULATORY §8):

* ``difference`` ``between_groups`` = max − min of the group values; ``to_overall`` =
  max |group − overall|;
* ``ratio`` ``between_groups`` = min / max; ``to_overall`` = min over groups of group/overall,
  each ratio above 1 inverted;
* demographic parity = the selection rate's difference/ratio; equal opportunity = the TPR's;
  equalized odds = the larger (``worst_case``) or the mean (``mean``) of the TPR and FPR
  differences (for ratios: the smaller, or the mean).

Differences from fairlearn, on purpose: a missing attribute value (None, NaN, empty text) is a
group of its own, ``(missing)``; a metric that is undefined in a group (TPR without positives,
PPV without alerts) is NaN with a reason and left out of the disparities, where fairlearn (via
scikit-learn) would count it as 0; and disparities are taken over the groups with **sufficient
evidence** only — at least ``min_group_size`` patients and ``min_group_events`` positive rows.
Groups below either bound are reported with status ``insufficient_evidence``, never dropped and
never passed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from bedside.domain import metrics as m
from bedside.domain.bootstrap import (
    CALIBRATION_METRICS,
    GroupedMetrics,
    Grouping,
    percentile_intervals,
)
from bedside.domain.evaluation import Estimate, check_confidence_level, check_threshold, json_number
from bedside.errors import InvalidInput

__all__ = [
    "DISPARITY_METRICS",
    "GROUP_METRICS",
    "INTERSECTION_SEPARATOR",
    "MISSING_GROUP",
    "Agg",
    "Disparity",
    "FairnessResult",
    "GroupResult",
    "Kind",
    "Method",
    "assess_fairness",
    "difference",
    "ratio",
]

MISSING_GROUP: Final = "(missing)"
INTERSECTION_SEPARATOR: Final = " & "

#: Metrics reported for every group, in report order.
GROUP_METRICS: Final = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "false_positive_rate",
    "selection_rate",
    "prevalence",
    "auroc",
    "auprc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)
#: Rates whose between-group difference and ratio are reported for every attribute.
DISPARITY_METRICS: Final = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "false_positive_rate",
    "selection_rate",
    "auroc",
    "auprc",
)
#: fairlearn's named disparities: name → the rates they combine.
_COMPOSITE: Final[Mapping[str, tuple[str, ...]]] = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("sensitivity",),
    "equalized_odds": ("sensitivity", "false_positive_rate"),
}

Kind = Literal["difference", "ratio"]
Method = Literal["between_groups", "to_overall"]
Agg = Literal["worst_case", "mean"]
FloatArray = npt.NDArray[np.float64]


# ------------------------------------------------------------------------ disparity formulas


def difference(values: FloatArray, overall: FloatArray, method: Method) -> FloatArray:
    """Return fairlearn's ``MetricFrame.difference`` over axis 0 (groups), NaN groups skipped.

    ``values`` has one row per group (and any trailing axes, e.g. resamples); ``overall`` the
    matching trailing shape. All-NaN columns give NaN.
    """
    if values.shape[0] == 0:
        return np.full(values.shape[1:], math.nan)
    if method == "between_groups":
        return np.asarray(np.fmax.reduce(values, axis=0) - np.fmin.reduce(values, axis=0))
    return np.asarray(np.fmax.reduce(np.abs(values - overall), axis=0))


def ratio(values: FloatArray, overall: FloatArray, method: Method) -> FloatArray:
    """Return fairlearn's ``MetricFrame.ratio`` over axis 0 (groups), NaN groups skipped.

    ``between_groups`` is min/max (0/0 is NaN); ``to_overall`` is the smallest group/overall
    ratio after inverting ratios above 1 (x/0 is ∞, inverted to 0; 0/0 is NaN and skipped).
    """
    if values.shape[0] == 0:
        return np.full(values.shape[1:], math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            return np.asarray(np.fmin.reduce(values, axis=0) / np.fmax.reduce(values, axis=0))
        quotient = values / overall
        quotient = np.where(quotient > 1, 1 / quotient, quotient)
        return np.asarray(np.fmin.reduce(quotient, axis=0))


def _combine(parts: Sequence[FloatArray], kind: Kind, agg: Agg | None) -> FloatArray:
    if len(parts) == 1:
        return parts[0]
    stacked = np.stack(parts)
    if agg == "mean":
        return np.asarray(stacked.mean(axis=0))
    # worst case: the larger difference or the smaller ratio (NaN if either part is NaN)
    return np.asarray(stacked.max(axis=0) if kind == "difference" else stacked.min(axis=0))


# ----------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One subgroup's size, evidence status and metrics with intervals."""

    attribute: str  # "race", or "race & sex" for an intersection
    group: str  # "Black", "(missing)", or "Black & F"
    n_rows: int
    n_patients: int
    n_events: int
    status: Literal["ok", "insufficient_evidence"]
    reasons: tuple[str, ...]  # why the evidence is insufficient
    metrics: Mapping[str, Estimate]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "attribute": self.attribute,
            "group": self.group,
            "n_rows": self.n_rows,
            "n_patients": self.n_patients,
            "n_events": self.n_events,
            "status": self.status,
            "reasons": list(self.reasons),
            "metrics": {name: est.to_dict() for name, est in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class Disparity:
    """A between-group disparity of one attribute, over its groups with sufficient evidence."""

    attribute: str
    metric: str  # a rate, or demographic_parity / equal_opportunity / equalized_odds
    kind: Kind
    method: Method
    agg: Agg | None  # for equalized_odds only
    value: float
    ci_lower: float
    ci_upper: float
    groups_compared: int  # sufficiently evidenced groups with a defined value
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "attribute": self.attribute,
            "metric": self.metric,
            "kind": self.kind,
            "method": self.method,
            "agg": self.agg,
            "value": json_number(self.value),
            "ci_lower": json_number(self.ci_lower),
            "ci_upper": json_number(self.ci_upper),
            "groups_compared": self.groups_compared,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FairnessResult:
    """Subgroup metrics and disparities for every attribute (and intersection) assessed."""

    threshold: float
    confidence_level: float
    n_boot: int
    seed: int
    min_group_size: int
    min_group_events: int
    attributes: tuple[str, ...]
    overall: Mapping[str, Estimate]
    groups: tuple[GroupResult, ...]
    disparities: tuple[Disparity, ...]

    def groups_of(self, attribute: str) -> tuple[GroupResult, ...]:
        """Return the groups of one attribute (or intersection), in label order."""
        self._check_attribute(attribute)
        return tuple(g for g in self.groups if g.attribute == attribute)

    def disparity(
        self,
        attribute: str,
        metric: str,
        *,
        kind: Kind = "difference",
        method: Method = "between_groups",
        agg: Agg | None = None,
    ) -> Disparity:
        """Return one disparity (``agg`` defaults to ``worst_case`` for equalized odds).

        Raises:
            InvalidInput: the attribute was not assessed or the disparity does not exist.
        """
        self._check_attribute(attribute)
        if metric == "equalized_odds" and agg is None:
            agg = "worst_case"
        for item in self.disparities:
            if (item.attribute, item.metric, item.kind, item.method, item.agg) == (
                attribute,
                metric,
                kind,
                method,
                agg,
            ):
                return item
        raise InvalidInput(
            f"no {kind} ({method}) of {metric!r} was computed; metrics with disparities: "
            + ", ".join((*DISPARITY_METRICS, *_COMPOSITE)),
            details={"metric": metric},
        )

    def _check_attribute(self, attribute: str) -> None:
        if attribute not in self.attributes:
            raise InvalidInput(
                f"attribute {attribute!r} was not assessed; assessed: "
                + ", ".join(self.attributes),
                details={"attribute": attribute},
            )

    @property
    def insufficient_groups(self) -> tuple[GroupResult, ...]:
        """Return the groups reported with insufficient evidence."""
        return tuple(g for g in self.groups if g.status == "insufficient_evidence")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of the whole assessment."""
        return {
            "threshold": self.threshold,
            "confidence_level": self.confidence_level,
            "ci_method": "percentile bootstrap over patients",
            "n_boot": self.n_boot,
            "seed": self.seed,
            "min_group_size": self.min_group_size,
            "min_group_events": self.min_group_events,
            "attributes": list(self.attributes),
            "overall": {name: est.to_dict() for name, est in self.overall.items()},
            "groups": [g.to_dict() for g in self.groups],
            "disparities": [d.to_dict() for d in self.disparities],
        }


# ------------------------------------------------------------------------------ the grouping


def _is_blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _codes(values: Any, attribute: str, n_rows: int) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Return a group code per row and the group labels, sorted, ``(missing)`` last.

    None, NaN, pandas' NA and blank text are missing; other values are grouped by their text.
    """
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    series = pd.Series(np.asarray(array, dtype=object), dtype=object)
    if len(series) != n_rows:
        raise InvalidInput(
            f"attribute {attribute!r} has {len(series)} values; the data have {n_rows} rows",
            details={"attribute": attribute, "length": len(series), "rows": n_rows},
        )
    raw_codes, uniques = pd.factorize(series, use_na_sentinel=True)  # NA-like values → −1
    texts = [None if _is_blank(u) else str(u) for u in uniques]
    labels = sorted({t for t in texts if t is not None})
    position = {label: k for k, label in enumerate(labels)}
    missing_code = len(labels)
    remap = np.array(
        [missing_code if t is None else position[t] for t in texts] + [missing_code],
        dtype=np.int64,
    )
    codes = remap[raw_codes]  # the sentinel −1 picks the last entry: (missing)
    if (codes == missing_code).any():
        labels.append(MISSING_GROUP)
    return codes, labels


def _grouping(name: str, codes: npt.NDArray[np.int64], labels: Sequence[str]) -> Grouping:
    """Return the grouping of the labels that occur, keeping their order."""
    present, compact = np.unique(codes, return_inverse=True)
    return Grouping(name, compact.astype(np.int64), tuple(labels[k] for k in present))


def _intersection(name: str, parts: Sequence[tuple[npt.NDArray[np.int64], list[str]]]) -> Grouping:
    """Return the grouping by every combination of the parts' labels that occurs."""
    key = np.zeros(len(parts[0][0]), dtype=np.int64)
    for codes, labels in parts:
        key = key * (len(labels) + 1) + codes
    present, compact = np.unique(key, return_inverse=True)
    names = []
    for value in present.tolist():
        pieces = []
        for _, labels in reversed(parts):
            value, code = divmod(value, len(labels) + 1)
            pieces.append(labels[code])
        names.append(INTERSECTION_SEPARATOR.join(reversed(pieces)))
    return Grouping(name, compact.astype(np.int64), tuple(names))


def _intersection_sets(
    stratify_by: Sequence[str], intersections: bool | Sequence[Sequence[str]]
) -> list[tuple[str, ...]]:
    if intersections is True:
        return [
            combo
            for size in range(2, len(stratify_by) + 1)
            for combo in itertools.combinations(stratify_by, size)
        ]
    if intersections is False:
        return []
    sets = []
    for combo in intersections:
        combo = tuple(combo)
        unknown = [a for a in combo if a not in stratify_by]
        if len(combo) < 2 or unknown:
            raise InvalidInput(
                "each intersection names two or more of the stratify_by attributes"
                + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                details={"intersection": list(combo)},
            )
        sets.append(combo)
    return sets


# --------------------------------------------------------------------------------- assessing


def assess_fairness(
    y_true: Any,
    y_prob: Any,
    attributes: Mapping[str, Any] | pd.DataFrame,
    *,
    threshold: float,
    seed: int,
    stratify_by: Sequence[str] | None = None,
    intersections: bool | Sequence[Sequence[str]] = False,
    patient_ids: Any = None,
    min_group_size: int = 30,
    min_group_events: int = 10,
    n_boot: int = 1000,
    confidence_level: float = 0.95,
    calibration: bool = True,
    n_bins: int = m.DEFAULT_ECE_BINS,
) -> FairnessResult:
    """Compute every group's metrics with intervals, and the disparities between groups.

    Args:
        y_true: outcome per row (0/1).
        y_prob: predicted probability per row.
        attributes: demographic values per row, by attribute name (a mapping or a DataFrame).
        threshold: operating threshold (alert when ``y_prob >= threshold``).
        seed: bootstrap seed.
        stratify_by: the attributes to assess (default: all of ``attributes``).
        intersections: True for every combination of two or more attributes, or the
            combinations to assess (e.g. ``[("race", "sex")]``).
        patient_ids: patient per row (resampled together); None when rows are patients.
        min_group_size: fewest patients for a group to count as evidence.
        min_group_events: fewest positive rows for a group to count as evidence.
        n_boot: bootstrap resamples (0: point estimates only).
        confidence_level: two-sided level of the percentile intervals.
        calibration: include calibration slope and intercept per group (the costliest part).
        n_bins: ECE bins.

    Raises:
        InvalidInput: bad labels or probabilities, lengths that differ, an unknown attribute,
            or an argument out of range.
    """
    y = m.as_labels(y_true)
    p = m.as_scores(y_prob, "y_prob")
    m.check_same_length(y_true=y, y_prob=p)
    if len(y) == 0:
        raise InvalidInput("there are no rows to assess", details={"rows": 0})
    threshold = check_threshold(threshold)
    confidence_level = check_confidence_level(confidence_level)
    for name, value in (("min_group_size", min_group_size), ("min_group_events", min_group_events)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a whole number >= 0", details={"argument": name})
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise InvalidInput("n_boot must be a whole number >= 0", details={"argument": "n_boot"})
    available = list(attributes.columns if isinstance(attributes, pd.DataFrame) else attributes)
    stratify_by = list(available if stratify_by is None else stratify_by)
    unknown = [a for a in stratify_by if a not in available]
    if unknown or not stratify_by:
        raise InvalidInput(
            "stratify_by must name attributes present in the data; "
            + (f"unknown: {', '.join(map(str, unknown))}; " if unknown else "none named; ")
            + "available: "
            + (", ".join(map(str, available)) or "none"),
            details={"unknown": [str(a) for a in unknown]},
        )
    coded = {a: _codes(attributes[a], a, len(y)) for a in stratify_by}
    groupings = [Grouping.whole(len(y))]
    groupings += [_grouping(a, *coded[a]) for a in stratify_by]
    for combo in _intersection_sets(stratify_by, intersections):
        groupings.append(
            _intersection(INTERSECTION_SEPARATOR.join(combo), [coded[a] for a in combo])
        )

    engine = GroupedMetrics(
        y,
        p,
        threshold=threshold,
        groupings=groupings,
        patient_ids=patient_ids,
        n_bins=n_bins,
        calibration=calibration,
    )
    points = engine.point_estimates()
    samples = engine.bootstrap(n_boot=n_boot, seed=seed) if n_boot else None
    names = [n for n in GROUP_METRICS if calibration or n not in CALIBRATION_METRICS]
    estimates = _estimates(points, samples, names, n_boot=n_boot, level=confidence_level)
    patients = engine.patients_per_group()

    groups: list[GroupResult] = []
    disparities: list[Disparity] = []
    start = 1  # row 0 is the overall group
    for grouping in groupings[1:]:
        rows = range(start, start + grouping.n_groups)
        evidenced = []
        for k, label in zip(rows, grouping.labels, strict=True):
            reasons = []
            if patients[k] < min_group_size:
                reasons.append(f"{patients[k]} patients (minimum {min_group_size})")
            if points["n_events"][k] < min_group_events:
                reasons.append(
                    f"{int(points['n_events'][k])} positive outcomes (minimum {min_group_events})"
                )
            if not reasons:
                evidenced.append(k)
            groups.append(
                GroupResult(
                    attribute=grouping.name,
                    group=label,
                    n_rows=int(points["n"][k]),
                    n_patients=int(patients[k]),
                    n_events=int(points["n_events"][k]),
                    status="insufficient_evidence" if reasons else "ok",
                    reasons=tuple(reasons),
                    metrics=estimates[k],
                )
            )
        disparities += _disparities(
            grouping.name, np.array(evidenced, dtype=np.int64), points, samples, confidence_level
        )
        start += grouping.n_groups
    return FairnessResult(
        threshold=threshold,
        confidence_level=confidence_level,
        n_boot=n_boot,
        seed=seed,
        min_group_size=min_group_size,
        min_group_events=min_group_events,
        attributes=tuple(g.name for g in groupings[1:]),
        overall=estimates[0],
        groups=tuple(groups),
        disparities=tuple(disparities),
    )


def _estimates(
    points: Mapping[str, FloatArray],
    samples: Mapping[str, FloatArray] | None,
    names: Sequence[str],
    *,
    n_boot: int,
    level: float,
) -> list[dict[str, Estimate]]:
    n_groups = len(points["n"])
    bounds = {}
    if samples is not None:
        bounds = {name: percentile_intervals(samples[name], level) for name in names}
    out: list[dict[str, Estimate]] = [{} for _ in range(n_groups)]
    for name in names:
        for k in range(n_groups):
            value = float(points[name][k])
            reason = None if math.isfinite(value) else _why_undefined(name, points, k)
            if name not in bounds:
                out[k][name] = Estimate(value, reason=reason, ci_reason="no bootstrap")
                continue
            lower, upper, defined = (float(b[k]) for b in bounds[name])
            ci_reason = None
            if reason is not None:
                lower = upper = math.nan
                ci_reason = reason
            elif not math.isfinite(lower):
                ci_reason = (
                    f"defined in {int(defined)} of {n_boot} resamples (fewer than half): too "
                    "few patients or events for an interval"
                )
            out[k][name] = Estimate(value, lower, upper, reason, ci_reason, int(defined))
    return out


def _why_undefined(name: str, points: Mapping[str, FloatArray], k: int) -> str:
    events, n = points["n_events"][k], points["n"][k]
    if name in ("sensitivity", "auroc", "auprc", "calibration_slope", "calibration_intercept"):
        if events == 0:
            return f"no positive outcomes in the group: {name} is undefined"
        if events == n and name != "sensitivity" and name != "auprc":
            return f"no negative outcomes in the group: {name} is undefined"
        if name.startswith("calibration"):
            return "the recalibration fit did not converge (the outcome is separable by the score)"
    if name in ("specificity", "false_positive_rate") and events == n:
        return f"no negative outcomes in the group: {name} is undefined"
    if name == "ppv":
        return "no alerts (positive predictions) in the group: PPV is undefined"
    if name == "npv":
        return "no negative predictions in the group: NPV is undefined"
    return f"{name} is undefined for this group"


def _disparities(
    attribute: str,
    evidenced: npt.NDArray[np.int64],
    points: Mapping[str, FloatArray],
    samples: Mapping[str, FloatArray] | None,
    level: float,
) -> list[Disparity]:
    out = []
    specs: list[tuple[str, tuple[str, ...], Agg | None]] = [
        (name, (name,), None) for name in DISPARITY_METRICS
    ]
    for name, parts in _COMPOSITE.items():
        if len(parts) == 1:
            specs.append((name, parts, None))
        else:
            specs += [(name, parts, "worst_case"), (name, parts, "mean")]
    for name, parts, agg in specs:
        compared = min(int(np.isfinite(points[p][evidenced]).sum()) for p in parts)
        for kind in ("difference", "ratio"):
            formula = difference if kind == "difference" else ratio
            for method in ("between_groups", "to_overall"):
                value = float(
                    _combine(
                        [formula(points[p][evidenced], points[p][0], method) for p in parts],
                        kind,
                        agg,
                    )
                )
                lower = upper = math.nan
                if samples is not None and compared:
                    draws = _combine(
                        [formula(samples[p][evidenced], samples[p][0], method) for p in parts],
                        kind,
                        agg,
                    )
                    lo, hi, _ = percentile_intervals(draws[None, :], level)
                    lower, upper = float(lo[0]), float(hi[0])
                reason = None
                if compared < (2 if method == "between_groups" else 1):
                    reason = (
                        f"{compared} group(s) with sufficient evidence and a defined value; a "
                        "disparity needs " + ("two" if method == "between_groups" else "one")
                    )
                    value = lower = upper = math.nan
                out.append(
                    Disparity(
                        attribute,
                        name,
                        kind,
                        method,
                        agg,
                        value,
                        lower,
                        upper,
                        compared,
                        reason,
                    )
                )
    return out
