"""Monitoring over time: time buckets, and per bucket drift, scores, performance and subgroups.

Everything logged for the live version is split into time buckets (:func:`plan_buckets`): one
monitoring ``window`` per bucket, the newest ending now — or, while the data span less than two
windows (a newly promoted model, a demo), up to :data:`MAX_EQUAL_BUCKETS` equal-time buckets
between the first and the last prediction, so a series exists from the start. Per bucket:

* :func:`bucket_drift` — data and prediction drift against the version's reference profile
  (computed once per version; never rebuilt per bucket);
* :func:`score_summary` — the distribution of the predicted probabilities (quantiles, shares);
* :func:`performance` — the monitored metrics with a percentile bootstrap interval over records
  (the inference log has no patient id: each record is resampled alone);
* :func:`subgroups` — per attribute value: size, alert rate and, once outcomes arrived,
  sensitivity/specificity/PPV/AUROC with intervals and the largest gap between groups.

Small cells are suppressed here, before anything reaches a report or the ledger: a group (or a
bucket's score summary) of fewer than :data:`SMALL_CELL` records shows ``"fewer than 10"`` and
no rates; when exactly one group of an attribute is suppressed, the smallest other group's count
is withheld too, so the hidden count cannot be recovered by subtraction. Nothing here holds a
patient's row: only counts, rates, quantiles and metrics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from bedside.domain.drift import DriftMethod, DriftOverride, DriftResult, compute_drift
from bedside.domain.drift_profile import ColumnKind, ReferenceProfile
from bedside.domain.evaluation import evaluate, json_number
from bedside.domain.fairness import MISSING_GROUP, assess_fairness
from bedside.errors import InvalidInput

__all__ = [
    "FEWER_THAN",
    "MAX_EQUAL_BUCKETS",
    "MAX_WINDOW_BUCKETS",
    "MONITORED_METRICS",
    "SMALL_CELL",
    "SUBGROUP_METRICS",
    "Bucket",
    "BucketPlan",
    "bucket_drift",
    "performance",
    "plan_buckets",
    "reference_quantiles",
    "score_summary",
    "subgroups",
    "suppressed_counts",
]

#: Fewest records a reported cell may hold; smaller cells show :data:`FEWER_THAN`.
SMALL_CELL: Final = 10
FEWER_THAN: Final = "fewer than 10"
WITHHELD: Final = "withheld"
MAX_EQUAL_BUCKETS: Final = 12
#: Window-length buckets kept (the newest); older predictions are left out of the series.
MAX_WINDOW_BUCKETS: Final = 52
#: Equal-time buckets hold on average at least this many records: below a few hundred rows the
#: distance tests (normed Wasserstein ≥ 0.1) flag drift from sampling noise alone.
MIN_ROWS_PER_BUCKET: Final = 500
#: Fewest predictions in the newest bucket for its drift to raise an alert or feed the retraining
#: trigger. Evidently's tests at their default thresholds flag "dataset drift" on unchanged data
#: by sampling noise alone in about 30% of 200-row samples, 5% at 300 and 2.5% at 500 (measured
#: on this project's synthetic features); below this the drift is shown but not acted on.
MIN_ROWS_FOR_DRIFT_ALERT: Final = 500
SCORE_QUANTILES: Final = (0.1, 0.25, 0.5, 0.75, 0.9)
SCORE_BINS: Final = 10
#: Metrics monitored overall (point estimate and interval), in report order.
MONITORED_METRICS: Final = (
    "auroc",
    "auprc",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "false_positive_rate",
    "brier",
    "ece",
)
#: Metrics reported per subgroup; the gap between groups is reported for each.
SUBGROUP_METRICS: Final = ("sensitivity", "specificity", "ppv", "auroc")
FloatArray = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------ time buckets


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket ``[start, end)`` (the newest includes its end)."""

    index: int
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True, slots=True)
class BucketPlan:
    """How predictions are split over time: ``window`` buckets or ``equal``-time buckets."""

    buckets: tuple[Bucket, ...]
    mode: Literal["window", "equal"]
    length: timedelta

    @property
    def newest(self) -> Bucket:
        return self.buckets[-1]

    def assign(self, times: Sequence[datetime]) -> npt.NDArray[np.int64]:
        """Return each time's bucket index, or -1 when it falls outside every bucket."""
        start = self.buckets[0].start
        end = self.buckets[-1].end
        span = self.length.total_seconds()
        out = np.full(len(times), -1, dtype=np.int64)
        for i, moment in enumerate(times):
            if moment < start or moment > end:
                continue
            if span <= 0:
                out[i] = 0
                continue
            k = int((moment - start).total_seconds() // span)
            out[i] = min(k, len(self.buckets) - 1)
        return out


def plan_buckets(
    first: datetime, last: datetime, *, window: timedelta, now: datetime, n_rows: int
) -> BucketPlan:
    """Split the time from ``first`` to now (or ``last``) into buckets.

    With at least two windows of data, each bucket is one ``window`` long and the newest ends at
    ``max(now, last)`` (at most :data:`MAX_WINDOW_BUCKETS`, the newest kept). With less, the time
    from ``first`` to ``last`` is split into up to :data:`MAX_EQUAL_BUCKETS` equal buckets (fewer
    when there are fewer than :data:`MIN_ROWS_PER_BUCKET` records per bucket on average).

    Raises:
        InvalidInput: the window is not positive, or ``last`` is before ``first``.
    """
    if window <= timedelta(0):
        raise InvalidInput(f"The monitoring window must be positive; got {window}.")
    if last < first:
        raise InvalidInput("The last prediction is older than the first; times are out of order.")
    end = max(now, last)
    if end - first >= 2 * window:
        count = min(math.ceil((end - first) / window), MAX_WINDOW_BUCKETS)
        buckets = tuple(
            Bucket(i, end - (count - i) * window, end - (count - i - 1) * window)
            for i in range(count)
        )
        return BucketPlan(buckets, "window", window)
    count = max(1, min(MAX_EQUAL_BUCKETS, n_rows // MIN_ROWS_PER_BUCKET))
    if last == first:
        count = 1
    length = (last - first) / count
    buckets = tuple(
        Bucket(i, first + i * length, last if i == count - 1 else first + (i + 1) * length)
        for i in range(count)
    )
    return BucketPlan(buckets, "equal", length)


# ------------------------------------------------------------------------------------- drift


def bucket_drift(
    profile: ReferenceProfile, current: pd.DataFrame
) -> tuple[DriftResult | None, list[str]]:
    """Test one bucket for drift; return the result and the features with no values in it.

    A feature with no value in the bucket (all missing) cannot be tested: it is left out of the
    bucket's ``drift_score`` and named in the second element. The prediction column is tested
    with the normed Wasserstein distance (``prediction_drift`` in the trigger grammar).
    Returns ``None`` when no feature can be tested.
    """
    untestable = [c.name for c in profile.columns if not _has_values(current[c.name], c.kind)]
    columns = tuple(c for c in profile.columns if c.name not in untestable)
    if not columns:
        return None, untestable
    prediction = profile.prediction
    if prediction is not None and not _has_values(current[prediction.name], prediction.kind):
        prediction = None
    usable = dataclasses.replace(profile, columns=columns, prediction=prediction)
    overrides = {}
    if prediction is not None and prediction.kind is ColumnKind.NUMERICAL:
        overrides[prediction.name] = DriftOverride(method=DriftMethod.WASSERSTEIN)
    return compute_drift(usable, current, per_column_overrides=overrides), untestable


def _has_values(series: pd.Series, kind: ColumnKind) -> bool:
    if kind is ColumnKind.NUMERICAL:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        return bool(np.isfinite(values).any())
    return bool(series.notna().any())


def drift_figures(result: DriftResult | None, untestable: Sequence[str]) -> dict[str, Any]:
    """Return a bucket's drift as a small JSON-ready mapping (scores and verdicts only)."""
    if result is None:
        return {"drift_score": None, "untestable": list(untestable), "features": {}}
    return {
        "drift_score": result.drift_score,
        "dataset_drift": result.dataset_drift,
        "drift_share": result.drift_share,
        "n_drifted": result.n_drifted,
        "n_features": len(result.columns),
        "untestable": list(untestable),
        "prediction_drift": (
            json_number(result.prediction.score) if result.prediction is not None else None
        ),
        "features": {
            c.name: {
                "method": c.method.value,
                "score": json_number(c.score),
                "threshold": c.threshold,
                "drifted": c.drifted,
                "psi": json_number(c.psi),
                "strength": json_number(drift_strength(c.method, c.score, c.threshold)),
            }
            for c in result.columns
        },
    }


_P_VALUE_METHODS: Final = frozenset({DriftMethod.KS, DriftMethod.CHISQUARE, DriftMethod.Z})


def drift_strength(method: DriftMethod, score: float, threshold: float) -> float:
    """Return a score on one scale for every test: 1 at the threshold, above 1 is drift.

    Distances are divided by their threshold; p-values become ``log(p) / log(threshold)``.
    """
    if not math.isfinite(score):
        return math.nan
    if method in _P_VALUE_METHODS:
        return math.log(max(score, 1e-300)) / math.log(threshold) if 0 < threshold < 1 else math.nan
    return score / threshold if threshold > 0 else math.nan


# ---------------------------------------------------------------------------- score summary


def score_summary(probabilities: Sequence[float] | FloatArray) -> dict[str, Any]:
    """Summarise predicted probabilities: mean, quantiles and shares in ten equal bins.

    A bucket of fewer than :data:`SMALL_CELL` records gets its count only (suppressed).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[np.isfinite(p)]
    if len(p) < SMALL_CELL:
        return {"n": FEWER_THAN if len(p) else 0, "suppressed": True}
    counts, _ = np.histogram(np.clip(p, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    return {
        "n": len(p),
        "suppressed": False,
        "mean": float(p.mean()),
        "quantiles": {
            f"p{round(q * 100)}": float(v)
            for q, v in zip(SCORE_QUANTILES, np.quantile(p, SCORE_QUANTILES), strict=True)
        },
        "shares": [float(c / len(p)) for c in counts],
    }


def reference_quantiles(values: FloatArray, counts: npt.NDArray[np.int64]) -> dict[str, float]:
    """Return the score quantiles of a reference column held as sorted values with counts."""
    cumulative = np.cumsum(counts) / counts.sum()
    return {
        f"p{round(q * 100)}": float(
            values[min(int(np.searchsorted(cumulative, q)), len(values) - 1)]
        )
        for q in SCORE_QUANTILES
    }


# ------------------------------------------------------------------------------- performance


def _interval(draws: FloatArray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def performance(
    y_true: Sequence[int] | npt.NDArray[np.integer[Any]],
    y_prob: Sequence[float] | FloatArray,
    *,
    threshold: float,
    n_boot: int,
    seed: int,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """Return the monitored metrics with percentile bootstrap intervals over records.

    Needs both outcome classes; otherwise the mapping says why and holds no metrics. Fewer than
    :data:`SMALL_CELL` labelled records are suppressed.
    """
    y = np.asarray(y_true, dtype=np.int8)
    p = np.asarray(y_prob, dtype=np.float64)
    n = len(y)
    if n < SMALL_CELL:
        return {"n": FEWER_THAN if n else 0, "metrics": None, "reason": "fewer than 10 outcomes"}
    n_events = int(y.sum())
    if n_events == 0 or n_events == n:
        return {
            "n": n,
            "metrics": None,
            "reason": "both outcome classes are needed (only one has arrived)",
        }
    result = evaluate(
        y, p, threshold=threshold, seed=seed, n_boot=n_boot, confidence_level=confidence_level
    )
    metrics = {
        name: result.metrics[name].to_dict() for name in MONITORED_METRICS if name != "accuracy"
    }
    correct = ((p >= threshold).astype(np.int8) == y).astype(np.float64)
    accuracy: dict[str, Any] = {"value": float(correct.mean()), "ci_lower": None, "ci_upper": None}
    if n_boot:
        rng = np.random.default_rng(seed)
        draws = correct[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        accuracy["ci_lower"], accuracy["ci_upper"] = _interval(draws, confidence_level)
    metrics["accuracy"] = accuracy
    return {
        "n": n,
        "n_events": n_events if n_events >= SMALL_CELL else FEWER_THAN,
        "confidence_level": confidence_level,
        "n_boot": n_boot,
        "ci_method": "percentile bootstrap over records",
        "metrics": {name: metrics[name] for name in MONITORED_METRICS},
        "reason": None,
    }


# --------------------------------------------------------------------------------- subgroups


def suppressed_counts(counts: Sequence[int]) -> list[int | str]:
    """Return counts fit to print: below :data:`SMALL_CELL` → ``"fewer than 10"``.

    When exactly one count of several is suppressed, the smallest other count is withheld too,
    so the hidden one cannot be found by subtracting the others from the total.
    """
    shown: list[int | str] = [c if c >= SMALL_CELL else FEWER_THAN for c in counts]
    small = [i for i, c in enumerate(counts) if c < SMALL_CELL]
    if len(small) == 1 and len(counts) > 1:
        others = [i for i in range(len(counts)) if i not in small]
        shown[min(others, key=lambda i: counts[i])] = WITHHELD
    return shown


def _group_label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    text = str(value)
    return text if text.strip() else MISSING_GROUP


def _ordered(labels: Sequence[str]) -> list[str]:
    return sorted(set(labels), key=lambda g: (g == MISSING_GROUP, g))


def subgroups(
    attributes: Sequence[Mapping[str, Any] | None],
    decisions: Sequence[bool] | npt.NDArray[np.bool_],
    *,
    y_true: Sequence[int | None],
    y_prob: Sequence[float] | FloatArray,
    threshold: float,
    n_boot: int,
    seed: int,
    gap_metric: str = "equalized_odds",
    min_group_size: int = 30,
    min_group_events: int = 10,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """Per attribute value: size, alert rate and, with outcomes, metrics with intervals.

    Args:
        attributes: each record's stratification attributes (``{"race": ...}``) or None.
        decisions: each record's alert decision at the signed threshold.
        y_true: each record's outcome (0/1), or None before it arrived.
        y_prob: each record's predicted probability.
        threshold: the operating threshold.
        n_boot: bootstrap resamples for the intervals (over records).
        seed: bootstrap seed.
        gap_metric: the fairness gate's metric; its largest between-group difference over all
            attributes is returned as ``max_disparity``.
        min_group_size: fewest labelled records for a group to count in a gap (at least
            :data:`SMALL_CELL`).
        min_group_events: fewest positive outcomes for a group to count in a gap.

    Returns:
        ``{"attributes": {name: {"groups": [...], "gaps": {...}}}, "max_disparity": x}``.
    """
    n = len(attributes)
    if not (len(decisions) == len(y_true) == len(y_prob) == n):
        raise InvalidInput(
            "attributes, decisions, outcomes and probabilities must have one value per record."
        )
    names = sorted({k for a in attributes if a for k in a})
    decided = np.asarray(decisions, dtype=bool)
    probs = np.asarray(y_prob, dtype=np.float64)
    labelled = np.array([v is not None for v in y_true], dtype=bool)
    labels = np.array([int(v) if v is not None else 0 for v in y_true], dtype=np.int8)
    per_attribute: dict[str, Any] = {}
    disparities: list[float] = []
    for name in names:
        values = [_group_label(a.get(name) if a else None) for a in attributes]
        order = _ordered(values)
        column = np.array(values, dtype=object)
        sizes = [int((column == g).sum()) for g in order]
        shown_n = suppressed_counts(sizes)
        lab_sizes = [int(((column == g) & labelled).sum()) for g in order]
        shown_lab = suppressed_counts(lab_sizes)
        assessed = _assess(
            column[labelled],
            labels[labelled],
            probs[labelled],
            name=name,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
            min_group_size=max(SMALL_CELL, min_group_size),
            min_group_events=min_group_events,
            level=confidence_level,
            gap_metric=gap_metric,
        )
        groups = []
        for g, size, n_show, lab, lab_show in zip(
            order, sizes, shown_n, lab_sizes, shown_lab, strict=True
        ):
            small = size < SMALL_CELL
            metrics = None
            if assessed is not None and lab >= SMALL_CELL and g in assessed["groups"]:
                metrics = assessed["groups"][g]
            groups.append(
                {
                    "group": g,
                    "n": n_show,
                    "suppressed": small,
                    "alert_rate": None if small else float(decided[column == g].mean()),
                    "n_labelled": lab_show,
                    "metrics": metrics,
                }
            )
        gaps = assessed["gaps"] if assessed is not None else {}
        gap = assessed["gate_gap"] if assessed is not None else None
        if gap is not None and gap.get("value") is not None:
            disparities.append(float(gap["value"]))
        per_attribute[name] = {"groups": groups, "gaps": gaps, "gate_gap": gap}
    return {
        "attributes": per_attribute,
        "gap_metric": gap_metric if gap_metric in _GATE_METRICS else "equalized_odds",
        "max_disparity": max(disparities) if disparities else None,
        "min_group_size": max(SMALL_CELL, min_group_size),
        "min_group_events": min_group_events,
    }


_GATE_METRICS: Final = frozenset(
    {
        "equalized_odds",
        "equal_opportunity",
        "demographic_parity",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "false_positive_rate",
        "selection_rate",
        "auroc",
        "auprc",
    }
)


def _assess(
    groups: npt.NDArray[np.object_],
    y: npt.NDArray[np.int8],
    p: FloatArray,
    *,
    name: str,
    threshold: float,
    n_boot: int,
    seed: int,
    min_group_size: int,
    min_group_events: int,
    level: float,
    gap_metric: str = "equalized_odds",
) -> dict[str, Any] | None:
    """Return per-group metrics (with CIs) and between-group gaps, or None without outcomes."""
    if len(y) < SMALL_CELL or y.min() == y.max():
        return None
    result = assess_fairness(
        y,
        p,
        {name: groups},
        threshold=threshold,
        seed=seed,
        min_group_size=min_group_size,
        min_group_events=min_group_events,
        n_boot=n_boot,
        confidence_level=level,
        calibration=False,
    )
    per_group = {
        g.group: {m: g.metrics[m].to_dict() for m in SUBGROUP_METRICS}
        for g in result.groups_of(name)
        if g.n_rows >= SMALL_CELL
    }
    gaps = {
        m: result.disparity(name, m, kind="difference", method="between_groups").to_dict()
        for m in SUBGROUP_METRICS
    }
    metric = gap_metric if gap_metric in _GATE_METRICS else "equalized_odds"
    gate_gap = result.disparity(name, metric, kind="difference", method="between_groups")
    return {"groups": per_group, "gaps": gaps, "gate_gap": gate_gap.to_dict()}
