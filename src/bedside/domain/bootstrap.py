"""Compute metrics for many subgroups and many patient-level bootstrap resamples at once.

The percentile bootstrap (REGULATORY §8) resamples **patients** with replacement — all rows of a
patient move together — optionally within outcome strata, and takes the ``α/2`` and ``1 − α/2``
quantiles of each metric over the resamples. A resample is a vector of patient counts (how often
each patient was drawn); each resample has its own random stream spawned from ``seed``
(``numpy.random.SeedSequence(seed).spawn(n_boot)``), so resample *k* is the same whatever
``n_boot`` or the chunk size, and patient ids are sorted first, so the row order does not matter.

Speed comes from sufficient statistics and one sparse product per block of resamples:

* **Score cells.** For each grouping (the whole sample, an attribute, an intersection), the
  distinct scores of each group's positive rows, the operating threshold and the ECE bin edges
  cut the group's score axis into points and open intervals; a cell is one (group, outcome,
  point-or-interval). Confusion counts, AUROC (Mann–Whitney, ties one half), average precision
  and net benefit follow exactly from cumulative sums of the weighted cell counts.
* **Shared sums.** Σ p per ECE bin, Σ (p − y)² and the calibration moments are taken once, on the
  common refinement of all groupings (the *cross*), and summed into each grouping's groups.
* **Calibration refits.** Slope and intercepts have no finite statistics: every resample is
  refitted by Newton's method from the point estimate, with the likelihood sums expanded to
  third order around the centres of narrow logit bins (width 1/64), whose weighted moments are
  linear in the resample — accurate to about 1e-9.

With unit weights the same code gives the point estimates (calibration points are exact fits).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse, special

from bedside.domain.metrics import DEFAULT_ECE_BINS, ece_bin_index, logistic_recalibration, logit
from bedside.errors import InvalidInput

__all__ = [
    "CALIBRATION_METRICS",
    "CELL_METRICS",
    "GroupedMetrics",
    "Grouping",
    "patient_codes",
    "percentile_intervals",
    "resample_counts",
]

logger = logging.getLogger(__name__)

#: Metrics computed from cell statistics, for every group and resample.
CELL_METRICS: Final = (
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
    "net_benefit",
)
#: Metrics refitted per resample by the logistic recalibration solver.
CALIBRATION_METRICS: Final = (
    "calibration_slope",
    "calibration_intercept",
    "calibration_joint_intercept",
)

#: A confidence interval is reported only when at least this share of resamples is defined.
MIN_DEFINED_SHARE: Final = 0.5
_CHUNK_ELEMENTS: Final = 1 << 22
_NEWTON_STEPS: Final = 50
_NEWTON_TOLERANCE: Final = 1e-10
#: Width of the logit bins within which calibration refits sum by a Taylor expansion.
CALIBRATION_BIN_WIDTH: Final = 1 / 64
_TAYLOR_ORDER: Final = 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# ------------------------------------------------------------------------------ resampling


def patient_codes(patient_ids: Any, n_rows: int) -> tuple[IntArray, int]:
    """Return a patient code (0…n_patients−1) per row and the number of patients.

    Without ``patient_ids`` every row is its own patient.

    Raises:
        InvalidInput: the length differs from ``n_rows`` or a patient id is missing.
    """
    if patient_ids is None:
        return np.arange(n_rows, dtype=np.int64), n_rows
    values = (
        np.asarray(patient_ids, dtype=object) if not hasattr(patient_ids, "dtype") else patient_ids
    )
    if len(values) != n_rows:
        raise InvalidInput(
            f"patient_ids needs one id per row: it has {len(values)}, the data have {n_rows}",
            details={"argument": "patient_ids", "length": len(values), "rows": n_rows},
        )
    series = pd.Series(values, copy=False)
    try:  # sorted ids make the resamples independent of the row order
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    except TypeError:  # ids of mixed, unorderable types: order of first appearance
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    missing = codes < 0
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InvalidInput(
            f"patient_ids has {int(missing.sum())} missing id(s), the first at row {first}; "
            "every row needs its patient so that the bootstrap can resample patients",
            details={"argument": "patient_ids", "row": first},
        )
    return codes.astype(np.int64), len(uniques)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput(
            "seed must be a whole number >= 0 (it makes the bootstrap reproducible)",
            details={"argument": "seed"},
        )
    return int(seed)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise InvalidInput(
            "n_boot must be a whole number >= 1 (1000 or more for a 95 % interval)",
            details={"argument": "n_boot"},
        )
    return int(n_boot)


def resample_counts(
    n_patients: int,
    *,
    n_boot: int,
    seed: int,
    strata: IntArray | None = None,
    chunk_size: int = 64,
) -> Iterator[FloatArray]:
    """Yield blocks of bootstrap resamples as patient counts, shape (n_patients, block).

    Each resample draws ``n_patients`` patients with replacement (within each stratum, keeping
    its size, when ``strata`` gives a stratum code per patient).
    """
    n_boot = _check_n_boot(n_boot)
    streams = np.random.SeedSequence(_check_seed(seed)).spawn(n_boot)
    members = (
        [np.arange(n_patients)]
        if strata is None
        else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    )
    for start in range(0, n_boot, chunk_size):
        block = streams[start : start + chunk_size]
        counts = np.zeros((len(block), n_patients), dtype=np.float64)
        for k, stream in enumerate(block):
            rng = np.random.default_rng(stream)
            for group in members:
                drawn = group[rng.integers(0, len(group), size=len(group))]
                counts[k] += np.bincount(drawn, minlength=n_patients)
        yield np.ascontiguousarray(counts.T)


def percentile_intervals(
    samples: FloatArray, confidence_level: float
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Return the lower and upper percentile bounds and the defined count per row of samples.

    Quantiles use numpy's default (linear interpolation); undefined (NaN) resamples are left
    out, and a row with fewer than half its resamples defined gets NaN bounds.
    """
    alpha = 1 - confidence_level
    q = np.array([alpha / 2, 1 - alpha / 2])
    samples = np.atleast_2d(samples)
    finite = np.isfinite(samples)
    n_defined = finite.sum(axis=1)
    lower = np.full(samples.shape[0], math.nan)
    upper = np.full(samples.shape[0], math.nan)
    complete = n_defined == samples.shape[1]
    if complete.any():
        bounds = np.quantile(samples[complete], q, axis=1)
        lower[complete], upper[complete] = bounds[0], bounds[1]
    partial = ~complete & (n_defined >= MIN_DEFINED_SHARE * samples.shape[1]) & (n_defined > 0)
    for row in np.flatnonzero(partial):
        lower[row], upper[row] = np.quantile(samples[row, finite[row]], q)
    return lower, upper, n_defined.astype(np.int64)


# -------------------------------------------------------------------------------- groupings


@dataclass(frozen=True, slots=True)
class Grouping:
    """Rows split into groups: ``codes[i]`` is row i's group, ``labels[code]`` its name."""

    name: str
    codes: IntArray
    labels: tuple[str, ...]

    @classmethod
    def whole(cls, n_rows: int, name: str = "overall") -> Grouping:
        """Return the grouping with a single group holding every row."""
        return cls(name, np.zeros(n_rows, dtype=np.int64), ("all",))

    @property
    def n_groups(self) -> int:
        """Return the number of groups."""
        return len(self.labels)


@dataclass(frozen=True, slots=True)
class _Cells:
    """Where one grouping's cell totals sit in the stacked sparse matrix, and how to read them.

    Slots order each group's score axis: point, interval, point, …, point. Negative rows are
    counted per used slot (``n_neg_cells`` of them), positive rows per cut point (``n_cuts``).
    The ``neg_*`` / ``pos_*`` arrays index the cumulative sums of those counts (with a leading
    zero): ``cum[neg_x]`` is the number of negatives in the slots before slot x.
    """

    offset: int  # first matrix row of this grouping
    harm: float  # pt/(1 − pt) at the threshold: the weight of a false positive in net benefit
    n_groups: int
    n_neg_cells: int
    n_cuts: int
    n_bins: int
    cut_group: IntArray  # group of each cut (cuts sorted by group, then value)
    group_cut_start: IntArray  # first cut of each group (= pos index of the group's start)
    neg_start: IntArray  # per group
    neg_end: IntArray
    neg_threshold: IntArray
    neg_point: IntArray  # per cut: before its point slot
    neg_after_point: IntArray  # per cut: after its point slot
    pos_end: IntArray  # per group
    pos_threshold: IntArray
    pos_bin_start: IntArray  # (groups, bins)
    pos_bin_end: IntArray

    @property
    def n_rows(self) -> int:
        """Return the number of matrix rows this grouping uses."""
        return self.n_neg_cells + self.n_cuts


@dataclass(frozen=True, slots=True)
class _Ranks:
    """Dense ranks of the scores, shared by every grouping: rank of p and of the fixed cuts."""

    n_values: int
    of_p: IntArray
    of_edges: IntArray  # ECE bin edges 0, 1/B, …, 1
    of_threshold: int

    @classmethod
    def of(cls, p: FloatArray, threshold: float, n_bins: int) -> _Ranks:
        """Rank p together with the ECE bin edges and the threshold."""
        fixed = np.r_[np.arange(n_bins + 1) / n_bins, threshold]
        values, inverse = np.unique(np.r_[p, fixed], return_inverse=True)
        n = len(p)
        return cls(len(values), inverse[:n], inverse[n:-1], int(inverse[-1]))


def _build_cells(
    grouping: Grouping,
    y: npt.NDArray[np.int8],
    p: FloatArray,
    patient: IntArray,
    ranks: _Ranks,
    *,
    threshold: float,
    n_bins: int,
    offset: int,
) -> tuple[_Cells, tuple[IntArray, IntArray, FloatArray]]:
    """Return the cell layout of one grouping and its sparse entries (row, patient, value)."""
    codes, n_groups = grouping.codes, grouping.n_groups
    positive = y == 1
    n_values = ranks.n_values
    fixed = np.r_[ranks.of_edges, ranks.of_threshold]
    groups = np.arange(n_groups)
    cut_key = np.unique(
        np.r_[
            codes[positive] * n_values + ranks.of_p[positive],
            (groups[:, None] * n_values + fixed[None, :]).ravel(),
        ]
    )
    row_key = codes * n_values + ranks.of_p
    cut_group = cut_key // n_values
    group_cut_start = np.searchsorted(cut_group, np.arange(n_groups + 1))
    # slot 2j − g is cut j's point (g its group), slot 2j − g + 1 the interval after it
    point_slot = 2 * np.arange(len(cut_key)) - cut_group
    group_start = point_slot[group_cut_start[:-1]]
    group_end = point_slot[group_cut_start[1:] - 1] + 1

    def slot_of(group: IntArray, rank: IntArray) -> IntArray:
        found: IntArray = point_slot[np.searchsorted(cut_key, group * n_values + rank)]
        return found

    threshold_slot = slot_of(groups, np.full(n_groups, ranks.of_threshold))
    bin_start = slot_of(np.repeat(groups, n_bins), np.tile(ranks.of_edges[:-1], n_groups)).reshape(
        n_groups, n_bins
    )
    bin_end = np.column_stack([bin_start[:, 1:], group_end])

    cut = np.searchsorted(cut_key, row_key, side="right") - 1
    row_slot = point_slot[cut] + (cut_key[cut] != row_key)
    n_slots = 2 * len(cut_key) - n_groups
    neg_used = np.flatnonzero(np.bincount(row_slot[~positive], minlength=n_slots))

    def neg(slots: IntArray) -> IntArray:
        return np.searchsorted(neg_used, slots)

    def pos(slots: IntArray) -> IntArray:
        return np.searchsorted(point_slot, slots)

    n_neg_cells, n_cuts = len(neg_used), len(cut_key)
    rows = np.where(positive, offset + n_neg_cells + cut, offset + neg(row_slot))
    cells = _Cells(
        offset=offset,
        harm=threshold / (1 - threshold) if threshold < 1 else math.nan,
        n_groups=n_groups,
        n_neg_cells=n_neg_cells,
        n_cuts=n_cuts,
        n_bins=n_bins,
        cut_group=cut_group,
        group_cut_start=group_cut_start[:-1],
        neg_start=neg(group_start),
        neg_end=neg(group_end),
        neg_threshold=neg(threshold_slot),
        neg_point=neg(point_slot),
        neg_after_point=neg(point_slot + 1),
        pos_end=group_cut_start[1:],
        pos_threshold=pos(threshold_slot),
        pos_bin_start=pos(bin_start),
        pos_bin_end=pos(bin_end),
    )
    return cells, (rows, patient, np.ones(len(p)))


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(numerator, denominator).shape, math.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _cumulative(block: FloatArray) -> FloatArray:
    out = np.zeros((block.shape[0] + 1, block.shape[1]))
    np.cumsum(block, axis=0, out=out[1:])
    return out


def _read_cells(
    cells: _Cells, sums: FloatArray, p_sum: FloatArray, squared: FloatArray
) -> dict[str, FloatArray]:
    """Turn one grouping's cell totals (rows × resamples) into metrics (groups × resamples).

    ``p_sum`` (groups, ECE bins, resamples) holds Σ w·p per bin, ``squared`` Σ w·(p − y)².
    """
    o = cells.offset
    pos_at = sums[o + cells.n_neg_cells : o + cells.n_neg_cells + cells.n_cuts]
    neg = _cumulative(sums[o : o + cells.n_neg_cells])
    pos = _cumulative(pos_at)
    gs = cells.group_cut_start
    n_neg = neg[cells.neg_end] - neg[cells.neg_start]
    n_pos = pos[cells.pos_end] - pos[gs]
    total = n_neg + n_pos
    tn = neg[cells.neg_threshold] - neg[cells.neg_start]
    fn = pos[cells.pos_threshold] - pos[gs]
    fp = n_neg - tn
    tp = n_pos - fn

    # ranking metrics: positives sit only on cut points
    cg = cells.cut_group
    neg_at = neg[cells.neg_after_point] - neg[cells.neg_point]
    neg_below = neg[cells.neg_point] - neg[cells.neg_start][cg]
    pos_below = pos[:-1] - pos[gs][cg]
    u = np.add.reduceat(pos_at * (neg_below + 0.5 * neg_at), gs, axis=0)
    tp_above = n_pos[cg] - pos_below
    fp_above = n_neg[cg] - neg_below
    precision = np.zeros_like(pos_at)
    np.divide(tp_above, tp_above + fp_above, out=precision, where=pos_at > 0)
    ap_sum = np.add.reduceat(pos_at * precision, gs, axis=0)

    events = pos[cells.pos_bin_end] - pos[cells.pos_bin_start]
    return {
        "sensitivity": _divide(tp, n_pos),
        "specificity": _divide(tn, n_neg),
        "ppv": _divide(tp, tp + fp),
        "npv": _divide(tn, tn + fn),
        "false_positive_rate": _divide(fp, n_neg),
        "selection_rate": _divide(tp + fp, total),
        "prevalence": _divide(n_pos, total),
        "auroc": _divide(u, n_pos * n_neg),
        "auprc": _divide(ap_sum, n_pos),
        "brier": _divide(squared, total),
        "net_benefit": _divide(tp - fp * cells.harm, total),
        "ece": _divide(np.abs(events - p_sum).sum(axis=1), total),
        "n": total,
        "n_events": n_pos,
    }


# ------------------------------------------------------------------------ recalibration fits


@dataclass(frozen=True, slots=True)
class _Shared:
    """Linear statistics kept once, on the common refinement of all groupings (the *cross*).

    Every grouping's groups are unions of cross groups, so its Σ p per ECE bin, Σ (p − y)² and
    calibration moments are sums of the cross's: one sparse product serves every grouping.
    """

    offset: int
    n_cross: int
    n_bins: int  # ECE bins
    cal_offset: int  # first row of the calibration statistics (moments, then observed sums)
    n_cal_bins: int  # non-empty (cross group, logit bin) pairs; 0 without calibration
    cal_keys: IntArray  # cross group · span + logit-bin index, per calibration bin
    span: int
    k_min: int

    @property
    def n_rows(self) -> int:
        """Return the number of matrix rows these statistics use."""
        calibration = (_TAYLOR_ORDER + 1) * self.n_cal_bins + (
            2 * self.n_cross if self.n_cal_bins else 0
        )
        return self.n_cross * (self.n_bins + 1) + calibration


def _build_shared(
    cross: IntArray,
    n_cross: int,
    y: npt.NDArray[np.int8],
    p: FloatArray,
    patient: IntArray,
    *,
    n_bins: int,
    calibration: bool,
    offset: int,
) -> tuple[_Shared, tuple[IntArray, IntArray, FloatArray]]:
    """Return the shared statistics' layout and sparse entries (row, patient, value).

    Per cross group: Σ p per ECE bin and Σ (p − y)². With ``calibration``, each row also lands
    in logit bin ⌊logit(p)/h⌋ of its cross group, contributing the powers dᵠ (q = 0…3) of its
    distance d to the bin's centre; positive rows add 1 and logit(p) (the observed sums).
    """
    rows = [offset + cross * n_bins + ece_bin_index(p, n_bins), offset + n_cross * n_bins + cross]
    data = [p, (p - y) ** 2]
    cols = [patient, patient]
    cal_offset = offset + n_cross * (n_bins + 1)
    keys, span, k_min = np.zeros(0, dtype=np.int64), 1, 0
    if calibration and len(p):
        x = logit(p)
        k = np.floor(x / CALIBRATION_BIN_WIDTH).astype(np.int64)
        k_min = int(k.min())
        span = int(k.max()) - k_min + 1
        flat = cross * span + (k - k_min)
        if n_cross * span <= 1 << 24:  # counting beats sorting
            present = np.bincount(flat, minlength=n_cross * span) > 0
            keys = np.flatnonzero(present)
            which = (np.cumsum(present) - 1)[flat]
        else:
            keys, which = np.unique(flat, return_inverse=True)
        d = x - ((keys % span)[which] + k_min + 0.5) * CALIBRATION_BIN_WIDTH
        order = _TAYLOR_ORDER + 1
        positive = y == 1
        observed = cal_offset + order * len(keys) + 2 * cross[positive]
        rows += [cal_offset + which * order + q for q in range(order)] + [observed, observed + 1]
        data += [d**q for q in range(order)] + [np.ones(int(positive.sum())), x[positive]]
        cols += [patient] * order + [patient[positive]] * 2
    shared = _Shared(
        offset=offset,
        n_cross=n_cross,
        n_bins=n_bins,
        cal_offset=cal_offset,
        n_cal_bins=len(keys),
        cal_keys=keys,
        span=span,
        k_min=k_min,
    )
    return shared, (np.concatenate(rows), np.concatenate(cols), np.concatenate(data))


@dataclass(frozen=True, slots=True)
class _CalibrationCells:
    """One grouping's logit bins: where its groups' Taylor moments come from, and point fits."""

    n_groups: int
    n_bins: int  # non-empty (group, logit bin) pairs, sorted by group then bin
    center: FloatArray  # logit at the middle of each bin
    group_bin_start: IntArray
    from_cross: sparse.csr_matrix  # (bins, cross bins): sums the cross's moments into these bins
    joint: FloatArray  # (groups, 2): point estimates of intercept and slope
    citl: FloatArray  # (groups,): point estimate of the calibration-in-the-large intercept


def _calibration_cells(
    shared: _Shared, group_of_cross: IntArray, n_groups: int, fits: tuple[FloatArray, FloatArray]
) -> _CalibrationCells:
    """Return one grouping's logit bins, as unions of the cross's bins."""
    cross_of_bin, bin_index = np.divmod(shared.cal_keys, shared.span)
    keys, which = np.unique(
        group_of_cross[cross_of_bin] * shared.span + bin_index, return_inverse=True
    )
    bin_group = keys // shared.span
    from_cross = sparse.csr_matrix(
        (np.ones(len(which)), (which, np.arange(len(which)))), shape=(len(keys), len(which))
    )
    joint, citl = fits
    return _CalibrationCells(
        n_groups=n_groups,
        n_bins=len(keys),
        center=np.asarray(
            ((keys % shared.span) + shared.k_min + 0.5) * CALIBRATION_BIN_WIDTH, dtype=np.float64
        ),
        group_bin_start=np.searchsorted(bin_group, np.arange(n_groups)),
        from_cross=from_cross,
        joint=joint,
        citl=citl,
    )


def _point_fits(
    grouping: Grouping, y: npt.NDArray[np.int8], p: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return each group's exact recalibration fit: (intercept, slope) and the CITL intercept."""
    n_groups = grouping.n_groups
    joint = np.full((n_groups, 2), math.nan)
    citl = np.full(n_groups, math.nan)
    rows_by_group = np.argsort(grouping.codes, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(grouping.codes, minlength=n_groups))]
    for g in range(n_groups):
        rows = rows_by_group[bounds[g] : bounds[g + 1]]
        fit = logistic_recalibration(y[rows], p[rows])
        joint[g] = fit.intercept.value, fit.slope.value
        citl[g] = fit.citl.value
    return joint, citl


def _joint_sums(
    center: FloatArray,
    moments: FloatArray,
    intercept: FloatArray,
    slope: FloatArray | None,
    starts: IntArray,
) -> tuple[FloatArray, ...]:
    """Return the sums Newton's method needs, per group and resample, from binned moments.

    With η = a + b·x and σ the logistic function: the score sums S₀ = Σ w σ(η) and
    S₁ = Σ w x σ(η), and the Hessian sums H_k = Σ w xᵏ σ′(η), k = 0, 1, 2. Within a bin each
    summand g(x) is expanded around the centre c: Σ w g(x) ≈ Σ_q g⁽ᵠ⁾(c) · Σ w dᵠ / q!, to third
    order for the score sums (their accuracy sets the root) and first order for the Hessian
    (which only sets the speed of convergence). For g = xᵏσ(a + b x), g⁽ᵠ⁾ follows from
    σ⁽ᵠ⁾ and Leibniz's rule. ``intercept``/``slope`` are per bin (bins × resamples),
    ``moments`` is (q, bins, resamples) holding Σ w dᵠ / q!, ``starts`` each group's first bin;
    ``slope`` None means b = 1 (the calibration-in-the-large fit: only S₀ and H₀ are returned).
    """
    c = center[:, None]
    eta = intercept + (slope * c if slope is not None else c)
    mu = special.expit(eta)
    s1 = mu * (1 - mu)  # σ′
    s2 = s1 * (1 - 2 * mu)  # σ″
    s3 = s1 * (1 - 6 * s1)  # σ‴
    d0, d1, d2, d3 = moments
    if slope is None:
        score0 = mu * d0 + s1 * d1 + s2 * d2 + s3 * d3
        hessian0 = s1 * d0 + s2 * d1
        return tuple(np.add.reduceat(v, starts, axis=0) for v in (score0, hessian0))
    t1 = slope * s1  # t_q = b^q σ⁽ᵠ⁾
    b2 = slope * slope
    t2 = b2 * s2
    t3 = b2 * slope * s3
    score0 = mu * d0 + t1 * d1 + t2 * d2 + t3 * d3
    score1 = c * score0 + mu * d1 + 2 * t1 * d2 + 3 * t2 * d3
    e = s1 * d1
    hessian0 = s1 * d0 + slope * s2 * d1
    hessian1 = c * hessian0 + e
    hessian2 = c * (hessian1 + e)
    return tuple(
        np.add.reduceat(v, starts, axis=0) for v in (score0, score1, hessian0, hessian1, hessian2)
    )


def _binned_fit(
    cells: _CalibrationCells, moments: FloatArray, observed: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Refit the recalibration of every group in every resample from the binned statistics.

    ``moments`` (q, bins, resamples) holds Σ w dᵠ / q! per logit bin, ``observed`` (groups, 2,
    resamples) Σ w·y and Σ w·y·logit(p). Newton's method from the point estimate, each step
    clipped to at most 1 per coefficient, until the step is below 1e-10 · (1 + |coefficient|);
    a fit that has not converged after 50 steps (separation in the resample, a group left
    empty) is NaN. Only groups with an open fit are recomputed, so a tiny group that never
    converges costs little.
    Returns (joint intercept, slope, CITL intercept), each of shape (groups, resamples).
    """
    n_res = moments.shape[2]
    bin_end = np.r_[cells.group_bin_start[1:], cells.n_bins]
    a = np.repeat(cells.joint[:, :1], n_res, axis=1)
    b = np.repeat(cells.joint[:, 1:], n_res, axis=1)
    c = np.repeat(cells.citl[:, None], n_res, axis=1)
    joint_open = np.repeat(np.isfinite(cells.joint[:, 1:]), n_res, axis=1)
    citl_open = np.repeat(np.isfinite(cells.citl[:, None]), n_res, axis=1)
    joint_failed = ~joint_open
    citl_failed = ~citl_open

    def subset(groups: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        sizes = bin_end[groups] - cells.group_bin_start[groups]
        local = np.repeat(np.arange(len(groups)), sizes)
        first = np.r_[0, np.cumsum(sizes)[:-1]]
        bins = cells.group_bin_start[groups][local] + np.arange(len(local)) - first[local]
        return bins, local, first

    with np.errstate(all="ignore"):
        for _ in range(_NEWTON_STEPS):
            groups = np.flatnonzero(joint_open.any(axis=1))
            if len(groups):
                bins, local, first = subset(groups)
                s00, s10, h00, h10, h20 = _joint_sums(
                    cells.center[bins], moments[:, bins], a[groups][local], b[groups][local], first
                )
                g0 = observed[groups, 0] - s00
                g1 = observed[groups, 1] - s10
                det = h00 * h20 - h10 * h10
                da = np.clip((h20 * g0 - h10 * g1) / det, -1, 1)
                db = np.clip((h00 * g1 - h10 * g0) / det, -1, 1)
                still = joint_open[groups]
                a[groups] += np.where(still, da, 0)
                b[groups] += np.where(still, db, 0)
                # a step below the tolerance relative to the coefficients' size converges
                size = 1 + np.maximum(np.abs(a[groups]), np.abs(b[groups]))
                step = np.maximum(np.abs(da), np.abs(db)) / size
                joint_failed[groups] |= still & ~np.isfinite(step)
                joint_open[groups] = still & (step >= _NEWTON_TOLERANCE)
            groups = np.flatnonzero(citl_open.any(axis=1))
            if len(groups):
                bins, local, first = subset(groups)
                s0, h0 = _joint_sums(
                    cells.center[bins], moments[:, bins], c[groups][local], None, first
                )
                dc = np.clip((observed[groups, 0] - s0) / h0, -1, 1)
                still = citl_open[groups]
                c[groups] += np.where(still, dc, 0)
                citl_failed[groups] |= still & ~np.isfinite(dc)
                citl_open[groups] = still & (
                    np.abs(dc) >= _NEWTON_TOLERANCE * (1 + np.abs(c[groups]))
                )
            if not (joint_open.any() or citl_open.any()):
                break
    joint_failed |= joint_open  # not converged within the steps
    citl_failed |= citl_open
    a[joint_failed] = b[joint_failed] = math.nan
    c[citl_failed] = math.nan
    return a, b, c


# --------------------------------------------------------------------------------- the engine


class GroupedMetrics:
    """Metrics for every group of several groupings, on the sample and on bootstrap resamples.

    Args:
        y: outcome labels (0/1).
        p: predicted probabilities.
        threshold: operating threshold (positive when ``p >= threshold``).
        groupings: the groupings of the rows (e.g. the whole sample, then each attribute).
        patient_ids: the patient of each row; None when every row is its own patient.
        n_bins: ECE bins.
        calibration: also compute calibration slope and intercepts (point and resamples).
    """

    def __init__(
        self,
        y: npt.NDArray[np.int8],
        p: FloatArray,
        *,
        threshold: float,
        groupings: Sequence[Grouping],
        patient_ids: Any = None,
        n_bins: int = DEFAULT_ECE_BINS,
        calibration: bool = True,
    ) -> None:
        if not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
            raise InvalidInput(
                "threshold must be a probability between 0 and 1 (rows with p >= threshold "
                "are predicted positive)",
                details={"argument": "threshold"},
            )
        self.y, self.p, self.threshold = y, p, float(threshold)
        self.groupings = tuple(groupings)
        self.patient, self.n_patients = patient_codes(patient_ids, len(y))
        self.labels = [(g.name, label) for g in self.groupings for label in g.labels]
        self.calibration = calibration
        self._n_bins = n_bins
        ranks = _Ranks.of(p, self.threshold, n_bins)
        entries = []
        self._cells: list[_Cells] = []
        offset = 0
        for grouping in self.groupings:
            cells, entry = _build_cells(
                grouping,
                y,
                p,
                self.patient,
                ranks,
                threshold=self.threshold,
                n_bins=n_bins,
                offset=offset,
            )
            self._cells.append(cells)
            entries.append(entry)
            offset += cells.n_rows
        # the common refinement of all groupings, and each grouping's groups as its unions
        key, size = np.zeros(len(y), dtype=np.int64), 1
        for grouping in self.groupings:
            if size * grouping.n_groups >= 1 << 62:  # renumber before the key could overflow
                key = np.unique(key, return_inverse=True)[1]
                size = int(key.max()) + 1
            key, size = key * grouping.n_groups + grouping.codes, size * grouping.n_groups
        _, first_rows, cross = np.unique(key, return_index=True, return_inverse=True)
        n_cross = len(first_rows)
        self._of_cross = [grouping.codes[first_rows] for grouping in self.groupings]
        self._to_groups = []
        for grouping, of_cross in zip(self.groupings, self._of_cross, strict=True):
            self._to_groups.append(
                sparse.csr_matrix(
                    (np.ones(n_cross), (of_cross, np.arange(n_cross))),
                    shape=(grouping.n_groups, n_cross),
                )
            )
        self._shared, entry = _build_shared(
            cross, n_cross, y, p, self.patient, n_bins=n_bins, calibration=False, offset=offset
        )
        entries.append(entry)
        self._point_entries = [np.concatenate(part) for part in zip(*entries, strict=True)]
        self._point_rows = offset + self._shared.n_rows
        self._cross = cross
        self._n_cross = n_cross
        self._score_rows = offset
        # exact point fits now; the binned statistics only when a bootstrap needs them
        self._fits = [_point_fits(g, y, p) for g in self.groupings] if calibration else []
        self._resampling: tuple[sparse.csr_matrix, _Shared, list[_CalibrationCells]] | None = None
        logger.debug(
            "grouped metrics: %d rows, %d patients, %d groups, %d cross groups",
            len(y),
            self.n_patients,
            len(self.labels),
            n_cross,
        )

    @property
    def n_groups(self) -> int:
        """Return the number of groups over all groupings (the rows of every result)."""
        return len(self.labels)

    def patients_per_group(self) -> IntArray:
        """Return the number of distinct patients in each group."""
        counts = []
        n_p = max(self.n_patients, 1)
        for grouping in self.groupings:
            keys = grouping.codes * n_p + self.patient
            if grouping.n_groups * n_p <= 1 << 26:  # counting beats sorting
                seen = np.bincount(keys, minlength=grouping.n_groups * n_p) > 0
                counts.append(seen.reshape(grouping.n_groups, n_p).sum(axis=1))
            else:
                pairs = np.unique(keys)
                counts.append(np.bincount(pairs // n_p, minlength=grouping.n_groups))
        return np.concatenate(counts).astype(np.int64)

    def _prepare_resampling(self) -> tuple[sparse.csr_matrix, _Shared, list[_CalibrationCells]]:
        if self._resampling is None:
            rows, cols, data = self._point_entries
            keep = rows < self._score_rows  # the score cells; shared statistics are rebuilt
            shared, entry = _build_shared(
                self._cross,
                self._n_cross,
                self.y,
                self.p,
                self.patient,
                n_bins=self._n_bins,
                calibration=self.calibration,
                offset=self._score_rows,
            )
            rows, cols, data = (
                np.concatenate([part[keep], extra])
                for part, extra in zip((rows, cols, data), entry, strict=True)
            )
            matrix = sparse.csr_matrix(
                (data, (rows, cols)), shape=(self._score_rows + shared.n_rows, self.n_patients)
            )
            cal = [
                _calibration_cells(shared, of_cross, grouping.n_groups, fits)
                for grouping, of_cross, fits in zip(
                    self.groupings, self._of_cross, self._fits, strict=False
                )
            ]
            self._resampling = (matrix, shared, cal)
        return self._resampling

    def _metrics(self, weights: FloatArray | None) -> dict[str, FloatArray]:
        if weights is None:  # the sample itself: every patient once
            rows, _, data = self._point_entries
            sums = np.asarray(
                np.bincount(rows, weights=data, minlength=self._point_rows), dtype=np.float64
            )[:, None]
            shared = self._shared
            cal: list[_CalibrationCells] = []
        else:
            matrix, shared, cal = self._prepare_resampling()
            sums = np.asarray(matrix @ weights)
        n_res = sums.shape[1]
        lin = shared.offset
        n_x, n_bins = shared.n_cross, shared.n_bins
        p_sum_x = sums[lin : lin + n_x * n_bins].reshape(n_x, n_bins * n_res)
        squared_x = sums[lin + n_x * n_bins : lin + n_x * (n_bins + 1)]
        parts = []
        for cells, to in zip(self._cells, self._to_groups, strict=True):
            p_sum = np.asarray(to @ p_sum_x).reshape(cells.n_groups, n_bins, n_res)
            parts.append(_read_cells(cells, sums, p_sum, np.asarray(to @ squared_x)))
        out = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        for name in CALIBRATION_METRICS:
            out[name] = np.full((self.n_groups, n_res), math.nan)
        if weights is None:  # the exact fits on the rows themselves
            fitted = [(joint[:, :1], joint[:, 1:], citl[:, None]) for joint, citl in self._fits]
        elif not self.calibration:
            fitted = []
        else:
            order = _TAYLOR_ORDER + 1
            co = shared.cal_offset
            block = sums[co : co + order * shared.n_cal_bins].reshape(
                shared.n_cal_bins, order * n_res
            )
            observed = sums[
                co + order * shared.n_cal_bins : co + order * shared.n_cal_bins + 2 * n_x
            ]
            observed = observed.reshape(n_x, 2 * n_res)
            fitted = []
            for bins, to in zip(cal, self._to_groups, strict=True):
                moments = np.asarray(bins.from_cross @ block).reshape(bins.n_bins, order, n_res)
                moments = np.stack([moments[:, q] / math.factorial(q) for q in range(order)])
                group_observed = np.asarray(to @ observed).reshape(bins.n_groups, 2, n_res)
                fitted.append(_binned_fit(bins, moments, group_observed))
        first = 0
        for grouping, (a, b, c) in zip(self.groupings, fitted, strict=False):
            groups = slice(first, first + grouping.n_groups)
            out["calibration_joint_intercept"][groups] = a
            out["calibration_slope"][groups] = b
            out["calibration_intercept"][groups] = c
            first += grouping.n_groups
        return out

    def point_estimates(self) -> dict[str, FloatArray]:
        """Return every metric for every group on the sample itself (arrays of length n_groups).

        Besides the metrics, ``n`` (rows) and ``n_events`` (positive rows) are included.
        """
        return {k: v[:, 0] for k, v in self._metrics(None).items()}

    def bootstrap(self, *, n_boot: int, seed: int, stratify: bool = False) -> dict[str, FloatArray]:
        """Return every metric per group and resample (arrays of shape (n_groups, n_boot)).

        ``stratify`` resamples patients with and without a positive row separately.
        """
        n_boot = _check_n_boot(n_boot)
        strata = None
        if stratify:
            strata = np.zeros(self.n_patients, dtype=np.int64)
            strata[self.patient[self.y == 1]] = 1
        width = max(len(self.y), self.n_patients, 1)
        chunk = int(min(256, max(8, _CHUNK_ELEMENTS // width)))
        out: dict[str, FloatArray] = {}
        column = 0
        for weights in resample_counts(
            self.n_patients, n_boot=n_boot, seed=seed, strata=strata, chunk_size=chunk
        ):
            span = slice(column, column + weights.shape[1])
            for name, values in self._metrics(weights).items():
                if name not in out:
                    out[name] = np.empty((self.n_groups, n_boot))
                out[name][:, span] = values
            column += weights.shape[1]
        return out
