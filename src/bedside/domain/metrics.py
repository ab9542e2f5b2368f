"""Compute clinical evaluation metrics for one sample: pure numpy/scipy, no crash on edge cases.

Definitions follow ``shared/reference/REGULATORY.md`` §8 (and ``docs/evaluation.md``). A metric
that is undefined for the data (no positives, a zero denominator, a logistic fit that does not
converge) is returned as ``MetricValue(nan, reason)`` — never an exception, never a silent 0.
Bad *input* (labels other than 0/1, probabilities outside [0, 1], lengths that differ) raises
:class:`bedside.errors.InvalidInput` naming the argument and the row, never the value.

Conventions:

* Threshold metrics predict positive when ``p >= threshold``.
* AUROC is the Mann–Whitney statistic with ties counted one half (equal to scikit-learn's
  ``roc_auc_score``); AUPRC is scikit-learn's ``average_precision_score`` step sum.
* ECE uses ``n_bins`` equal-width bins whose edges are the doubles nearest to ``k / n_bins``
  (so ``0.3`` lies in ``[0.3, 0.4)``); each bin is closed on the left, the last one also on the
  right; empty bins are skipped.
* Logistic recalibration clips probabilities to ``[1e-12, 1 - 1e-12]`` before the logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from bedside.errors import InvalidInput

__all__ = [
    "DEFAULT_ECE_BINS",
    "PROBABILITY_CLIP",
    "CalibrationBin",
    "ConfusionCounts",
    "DeLongResult",
    "MetricValue",
    "Recalibration",
    "as_labels",
    "as_scores",
    "auroc",
    "average_precision",
    "brier_score",
    "calibration_bins",
    "calibration_in_the_large",
    "calibration_slope",
    "confusion_counts",
    "delong_test",
    "ece_bin_index",
    "expected_calibration_error",
    "logistic_recalibration",
    "net_benefit",
    "treat_all_net_benefit",
]

DEFAULT_ECE_BINS: Final = 10
PROBABILITY_CLIP: Final = 1e-12
_MAX_NEWTON_STEPS: Final = 100
_NEWTON_TOLERANCE: Final = 1e-10

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric's value, or NaN and the reason it is undefined for these data."""

    value: float
    reason: str | None = None

    @property
    def is_defined(self) -> bool:
        """Return whether the value is a number (not NaN)."""
        return not math.isnan(self.value)

    def __float__(self) -> float:
        return self.value


def undefined(reason: str) -> MetricValue:
    """Return an undefined metric value with its reason."""
    return MetricValue(math.nan, reason)


def ratio(numerator: float, denominator: float, reason: str) -> MetricValue:
    """Return ``numerator / denominator``, or NaN with ``reason`` when the denominator is 0."""
    if denominator == 0:
        return undefined(reason)
    return MetricValue(float(numerator) / float(denominator))


# ------------------------------------------------------------------------------------ inputs


def as_labels(values: Any, name: str = "y_true") -> npt.NDArray[np.int8]:
    """Return outcome labels as an int8 array of 0/1.

    Raises:
        InvalidInput: not one-dimensional, or a value other than 0/1 (True/False) — the message
            names the first offending row, never the value.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(
            f"{name} must be one-dimensional (one label per row); got {array.ndim} dimensions",
            details={"argument": name},
        )
    if array.dtype == bool:
        return array.astype(np.int8)
    if array.dtype.kind not in "iuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"{name} must hold outcome labels 0 and 1; it holds non-numeric values",
                details={"argument": name},
            ) from None
    bad = ~((array == 0) | (array == 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInput(
            f"{name} must hold only the outcome labels 0 and 1; {int(bad.sum())} row(s) hold "
            f"something else, the first at row {first}. Fix: encode the outcome as 0/1 and "
            "drop rows whose outcome is unknown",
            details={"argument": name, "row": first, "count": int(bad.sum())},
        )
    return array.astype(np.int8)


def as_scores(values: Any, name: str = "y_score", *, probability: bool = True) -> FloatArray:
    """Return scores as a float64 array, finite (and within [0, 1] when ``probability``).

    Raises:
        InvalidInput: not one-dimensional, not numeric, NaN/infinite or outside [0, 1].
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{name} must hold numbers (predicted probabilities)", details={"argument": name}
        ) from None
    if array.ndim != 1:
        raise InvalidInput(
            f"{name} must be one-dimensional (one score per row); got {array.ndim} dimensions",
            details={"argument": name},
        )
    bad = ~np.isfinite(array)
    if probability:
        bad |= (array < 0) | (array > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        expected = "probabilities between 0 and 1" if probability else "finite numbers"
        raise InvalidInput(
            f"{name} must hold {expected}; {int(bad.sum())} row(s) do not, the first at row "
            f"{first}",
            details={"argument": name, "row": first, "count": int(bad.sum())},
        )
    return array


def check_same_length(**arrays: Sequence[Any] | np.ndarray) -> int:
    """Return the common length of the arrays.

    Raises:
        InvalidInput: the lengths differ (the message lists them).
    """
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise InvalidInput(
            f"one value per row is needed in each argument; {listed}", details=lengths
        )
    return next(iter(lengths.values()), 0)


def _labels_and_scores(
    y_true: Any, y_score: Any, *, probability: bool = True
) -> tuple[npt.NDArray[np.int8], FloatArray]:
    y = as_labels(y_true)
    p = as_scores(y_score, probability=probability)
    check_same_length(y_true=y, y_score=p)
    return y, p


# ------------------------------------------------------------------------- threshold metrics


@dataclass(frozen=True, slots=True)
class ConfusionCounts:
    """True/false positives and negatives at a threshold (positive when ``p >= threshold``)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        """Return the number of rows."""
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        """Return the number of rows whose outcome is 1."""
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        """Return the number of rows whose outcome is 0."""
        return self.tn + self.fp

    @property
    def predicted_positive(self) -> int:
        """Return the number of alerts (rows predicted positive)."""
        return self.tp + self.fp

    def sensitivity(self) -> MetricValue:
        """Return TP / (TP + FN)."""
        return ratio(self.tp, self.positives, "no positive outcomes: sensitivity is undefined")

    def specificity(self) -> MetricValue:
        """Return TN / (TN + FP)."""
        return ratio(self.tn, self.negatives, "no negative outcomes: specificity is undefined")

    def false_positive_rate(self) -> MetricValue:
        """Return FP / (FP + TN) = 1 − specificity."""
        return ratio(self.fp, self.negatives, "no negative outcomes: FPR is undefined")

    def ppv(self) -> MetricValue:
        """Return TP / (TP + FP) (precision)."""
        return ratio(self.tp, self.predicted_positive, "no positive predictions: PPV is undefined")

    def npv(self) -> MetricValue:
        """Return TN / (TN + FN)."""
        return ratio(self.tn, self.tn + self.fn, "no negative predictions: NPV is undefined")

    def selection_rate(self) -> MetricValue:
        """Return the share of rows predicted positive."""
        return ratio(self.predicted_positive, self.n, "no rows: selection rate is undefined")

    def prevalence(self) -> MetricValue:
        """Return the share of rows whose outcome is 1."""
        return ratio(self.positives, self.n, "no rows: prevalence is undefined")


def confusion_counts(y_true: Any, y_score: Any, *, threshold: float) -> ConfusionCounts:
    """Count TP, FP, TN, FN when rows with ``y_score >= threshold`` are predicted positive."""
    y, p = _labels_and_scores(y_true, y_score, probability=False)
    predicted = p >= threshold
    positive = y == 1
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted)) - tp
    fn = int(np.count_nonzero(positive)) - tp
    return ConfusionCounts(tp=tp, fp=fp, tn=len(y) - tp - fp - fn, fn=fn)


def net_benefit(y_true: Any, y_score: Any, *, threshold_probability: float) -> MetricValue:
    """Return the decision-curve net benefit TP/n − FP/n · pt/(1 − pt) (Vickers & Elkin 2006).

    Rows with ``y_score >= threshold_probability`` are treated.
    """
    pt = _threshold_probability(threshold_probability)
    counts = confusion_counts(y_true, y_score, threshold=pt)
    if counts.n == 0:
        return undefined("no rows: net benefit is undefined")
    return MetricValue(counts.tp / counts.n - counts.fp / counts.n * pt / (1 - pt))


def treat_all_net_benefit(y_true: Any, *, threshold_probability: float) -> MetricValue:
    """Return the net benefit of treating everyone: π − (1 − π) · pt/(1 − pt)."""
    pt = _threshold_probability(threshold_probability)
    y = as_labels(y_true)
    if len(y) == 0:
        return undefined("no rows: net benefit is undefined")
    prevalence = float(np.count_nonzero(y)) / len(y)
    return MetricValue(prevalence - (1 - prevalence) * pt / (1 - pt))


def _threshold_probability(value: float) -> float:
    if not (isinstance(value, int | float) and 0 <= value < 1):
        raise InvalidInput(
            "threshold_probability must be a number with 0 <= pt < 1 (net benefit weighs false "
            "positives by pt/(1-pt))",
            details={"argument": "threshold_probability"},
        )
    return float(value)


# --------------------------------------------------------------------------- ranking metrics


def auroc(y_true: Any, y_score: Any) -> MetricValue:
    """Return the area under the ROC curve: Mann–Whitney U / (n₁ n₀), ties counted one half."""
    y, score = _labels_and_scores(y_true, y_score, probability=False)
    n_pos = int(np.count_nonzero(y))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return undefined("AUROC needs both outcomes; " + _missing_class(n_pos, n_neg))
    ranks = stats.rankdata(score)  # average ranks for ties
    u = float(ranks[y == 1].sum()) - n_pos * (n_pos + 1) / 2
    return MetricValue(u / (n_pos * n_neg))


def average_precision(y_true: Any, y_score: Any) -> MetricValue:
    """Return AUPRC as scikit-learn's average precision: Σₖ (Rₖ − Rₖ₋₁) · Pₖ, no interpolation.

    The sum runs over the distinct scores from the highest down; tied scores form one step.
    """
    y, score = _labels_and_scores(y_true, y_score, probability=False)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0:
        return undefined("no positive outcomes: average precision is undefined")
    order = np.argsort(-score, kind="stable")
    sorted_score = score[order]
    tps = np.cumsum(y[order], dtype=np.float64)
    # the last row of each block of tied scores closes one threshold
    last = np.r_[np.flatnonzero(np.diff(sorted_score)), len(score) - 1]
    tps = tps[last]
    predicted = (last + 1).astype(np.float64)
    precision = tps / predicted
    recall_step = np.diff(np.r_[0.0, tps]) / n_pos
    return MetricValue(float(np.sum(recall_step * precision)))


def _missing_class(n_pos: int, n_neg: int) -> str:
    if n_pos == 0 and n_neg == 0:
        return "there are no rows"
    return "there are no positive outcomes" if n_pos == 0 else "there are no negative outcomes"


# ------------------------------------------------------------------------------ calibration


def brier_score(y_true: Any, y_prob: Any) -> MetricValue:
    """Return the Brier score (1/n) Σ (pᵢ − yᵢ)² (0 is best)."""
    y, p = _labels_and_scores(y_true, y_prob)
    if len(y) == 0:
        return undefined("no rows: the Brier score is undefined")
    return MetricValue(float(np.mean((p - y) ** 2)))


def ece_bin_index(y_prob: FloatArray, n_bins: int = DEFAULT_ECE_BINS) -> IntArray:
    """Return each probability's equal-width bin: ``k`` when edge_k <= p < edge_k+1.

    Edges are ``np.arange(n_bins + 1) / n_bins`` (the doubles nearest to k/B, so a probability
    written as 0.3 falls in the bin that starts at 0.3); the last bin also holds p = 1.
    """
    edges = np.arange(n_bins + 1) / n_bins
    index = np.searchsorted(edges, y_prob, side="right") - 1
    return np.minimum(index, n_bins - 1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One equal-width bin of the calibration plot."""

    lower: float
    upper: float
    count: int
    mean_predicted: float  # NaN when the bin is empty
    observed_rate: float  # NaN when the bin is empty


def calibration_bins(
    y_true: Any, y_prob: Any, *, n_bins: int = DEFAULT_ECE_BINS
) -> tuple[CalibrationBin, ...]:
    """Return every bin's count, mean predicted probability and observed event rate."""
    y, p = _labels_and_scores(y_true, y_prob)
    n_bins = _check_bins(n_bins)
    index = ece_bin_index(p, n_bins)
    count = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    edges = np.arange(n_bins + 1) / n_bins
    bins = []
    for k in range(n_bins):
        mean_p = float(sum_p[k] / count[k]) if count[k] else math.nan
        rate = float(sum_y[k] / count[k]) if count[k] else math.nan
        bins.append(
            CalibrationBin(float(edges[k]), float(edges[k + 1]), int(count[k]), mean_p, rate)
        )
    return tuple(bins)


def expected_calibration_error(
    y_true: Any, y_prob: Any, *, n_bins: int = DEFAULT_ECE_BINS
) -> MetricValue:
    """Return ECE = Σ_b (n_b/n) · |ȳ_b − p̄_b| over non-empty equal-width bins."""
    y, p = _labels_and_scores(y_true, y_prob)
    n_bins = _check_bins(n_bins)
    if len(y) == 0:
        return undefined("no rows: ECE is undefined")
    index = ece_bin_index(p, n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    # (n_b/n)·|ȳ_b − p̄_b| = |Σy_b − Σp_b| / n; empty bins add 0
    return MetricValue(float(np.sum(np.abs(sum_y - sum_p)) / len(y)))


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise InvalidInput(
            "n_bins must be a whole number of at least 1 (10 is usual)",
            details={"argument": "n_bins"},
        )
    return n_bins


@dataclass(frozen=True, slots=True)
class Recalibration:
    """Logistic recalibration: logit P(y=1) = intercept + slope · logit(p).

    ``citl`` is the calibration-in-the-large intercept (slope fixed at 1, logit(p) as offset) —
    the number reported as ``calibration_intercept``; ``intercept`` is the joint fit's.
    """

    intercept: MetricValue
    slope: MetricValue
    citl: MetricValue


def logit(y_prob: FloatArray) -> FloatArray:
    """Return log(p / (1 − p)) after clipping p to [1e-12, 1 − 1e-12]."""
    clipped = np.clip(y_prob, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.asarray(special.logit(clipped), dtype=np.float64)


def logistic_recalibration(y_true: Any, y_prob: Any) -> Recalibration:
    """Fit the recalibration model by Newton's method (with step halving) and the CITL intercept."""
    y, p = _labels_and_scores(y_true, y_prob)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == len(y):
        reason = "logistic recalibration needs both outcomes; " + _missing_class(
            n_pos, len(y) - n_pos
        )
        return Recalibration(undefined(reason), undefined(reason), undefined(reason))
    x = logit(p)
    yf = y.astype(np.float64)
    # With one covariate the joint fit has a finite optimum exactly when the two outcomes'
    # logits overlap; otherwise (complete or quasi-complete separation) the slope diverges.
    pos, neg = x[y == 1], x[y == 0]
    overlap = pos.min() < neg.max() and neg.min() < pos.max()
    joint = _newton_logistic(x, yf, fit_slope=True) if overlap else None
    citl = _newton_logistic(x, yf, fit_slope=False)
    if joint is None:
        reason = "the recalibration fit did not converge (the outcome is separable by the score)"
        intercept, slope = undefined(reason), undefined(reason)
    else:
        intercept, slope = MetricValue(joint[0]), MetricValue(joint[1])
    if citl is None:  # pragma: no cover - with both outcomes present the CITL fit has an optimum
        citl_value = undefined("the calibration-in-the-large fit did not converge")
    else:
        citl_value = MetricValue(citl[0])
    return Recalibration(intercept=intercept, slope=slope, citl=citl_value)


def calibration_slope(y_true: Any, y_prob: Any) -> MetricValue:
    """Return the logistic recalibration slope b in logit P(y=1) = a + b·logit(p) (1 ideal)."""
    return logistic_recalibration(y_true, y_prob).slope


def calibration_in_the_large(y_true: Any, y_prob: Any) -> MetricValue:
    """Return a in logit P(y=1) = a + logit(p) (slope fixed at 1; 0 ideal, > 0 under-predicts)."""
    return logistic_recalibration(y_true, y_prob).citl


def _log_likelihood(eta: FloatArray, y: FloatArray) -> float:
    # Σ y·η − log(1 + e^η), computed stably
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _newton_logistic(
    x: FloatArray, y: FloatArray, *, fit_slope: bool
) -> tuple[float, float] | None:
    """Maximise the logistic likelihood of (a, b) (or a with b = 1); None when it diverges.

    Newton's method from (0, 1) — the predictions as they are — halving a step that would lower
    the likelihood; converged when the step is below 1e-10 · (1 + |coefficient|) or the gradient
    is at the rounding level of its sum.
    """
    a, b = 0.0, 1.0
    x2 = x * x
    current = _log_likelihood(x, y)
    for _ in range(_MAX_NEWTON_STEPS):
        eta = a + b * x
        mu = special.expit(eta)
        residual = y - mu
        var = mu * (1 - mu)
        g0 = float(residual.sum())
        h00 = float(var.sum())
        if fit_slope:
            # einsum, not BLAS dot: no thread start-up for a single pass over the rows
            g1 = float(np.einsum("i,i->", residual, x))
            h01 = float(np.einsum("i,i->", var, x))
            h11 = float(np.einsum("i,i->", var, x2))
            det = h00 * h11 - h01 * h01
            if not det > 0:
                return None
            da = (h11 * g0 - h01 * g1) / det
            db = (h00 * g1 - h01 * g0) / det
        else:
            if not h00 > 0:
                return None
            g1, da, db = 0.0, g0 / h00, 0.0
        scale = 1.0
        while True:
            value = _log_likelihood(a + scale * da + (b + scale * db) * x, y)
            if value >= current - 1e-12 * abs(current) or scale < 1e-8:
                break
            scale /= 2
        a, b, current = a + scale * da, b + scale * db, value
        if not (math.isfinite(a) and math.isfinite(b)) or max(abs(a), abs(b)) > 1e6:
            return None
        # converged: a step below the tolerance (relative to the coefficient's size), or a
        # gradient at the rounding level of its sum (then the step is noise, however large)
        small_step = max(abs(scale * da), abs(scale * db)) < _NEWTON_TOLERANCE * (
            1 + max(abs(a), abs(b))
        )
        if small_step or max(abs(g0), abs(g1)) <= 1e-14 * len(x):
            return a, b
    return None


# ------------------------------------------------------------------------------------ DeLong


@dataclass(frozen=True, slots=True)
class DeLongResult:
    """DeLong's test for two correlated AUROCs measured on the same rows."""

    auc_a: float
    auc_b: float
    var_a: float
    var_b: float
    covariance: float
    difference: float  # auc_a − auc_b
    z: float
    p_value: float
    reason: str | None = None  # set when z and p are undefined

    def difference_interval(self, confidence_level: float = 0.95) -> tuple[float, float]:
        """Return the normal-approximation interval of ``auc_a − auc_b``."""
        sd = math.sqrt(max(self.var_a + self.var_b - 2 * self.covariance, 0.0))
        if math.isnan(sd):
            return (math.nan, math.nan)
        half = float(stats.norm.ppf(0.5 + confidence_level / 2)) * sd
        return (self.difference - half, self.difference + half)


def delong_test(y_true: Any, score_a: Any, score_b: Any) -> DeLongResult:
    """Compare two AUROCs on the same rows by DeLong's test (fast algorithm of Sun & Xu 2014).

    Structural components: V10ᵢ for each positive and V01ⱼ for each negative; S = S10/m + S01/n
    with sample covariances (ddof 1); z = (AUC_a − AUC_b) / √(S_aa + S_bb − 2 S_ab); two-sided
    p = 2 (1 − Φ(|z|)).
    """
    y = as_labels(y_true)
    a = as_scores(score_a, "score_a", probability=False)
    b = as_scores(score_b, "score_b", probability=False)
    check_same_length(y_true=y, score_a=a, score_b=b)
    m = int(np.count_nonzero(y))
    n = len(y) - m
    nan = math.nan
    if m < 2 or n < 2:
        why = f"DeLong's test needs at least 2 positive and 2 negative outcomes; found {m} and {n}"
        auc_a = auroc(y, a).value
        auc_b = auroc(y, b).value
        return DeLongResult(auc_a, auc_b, nan, nan, nan, auc_a - auc_b, nan, nan, why)
    scores = np.vstack([a, b])
    positives = scores[:, y == 1]
    negatives = scores[:, y == 0]
    tx = stats.rankdata(positives, axis=1)
    ty = stats.rankdata(negatives, axis=1)
    tz = stats.rankdata(np.hstack([positives, negatives]), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n  # per positive: share of negatives ranked below (ties 1/2)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives ranked above
    cov = np.cov(v10) / m + np.cov(v01) / n
    var_diff = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    difference = float(aucs[0] - aucs[1])
    reason: str | None
    if var_diff <= 0:
        reason = "the two scores rank the rows identically: the AUROC difference has no variance"
        z = p_value = nan
    else:
        reason = None
        z = difference / math.sqrt(var_diff)
        p_value = float(2 * stats.norm.sf(abs(z)))
    return DeLongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        var_a=float(cov[0, 0]),
        var_b=float(cov[1, 1]),
        covariance=float(cov[0, 1]),
        difference=difference,
        z=z,
        p_value=p_value,
        reason=reason,
    )
