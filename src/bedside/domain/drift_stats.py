"""Evidently's default drift statistics, computed from precomputed reference summaries.

Each function reproduces one Evidently 0.7.23 stattest (``evidently/legacy/calculations/
stattests/*.py``) exactly, but takes the reference as sorted unique values with counts (stored
once per model version) and the current window as one sorted array or a table of counts, so a
window of a million rows costs one sort per numerical column and one hash pass per categorical
one. See docs/monitoring.md for the method table and REGULATORY.md §9 for the source facts.

``scipy.stats`` (≈50 MB resident) is imported only when a p-value test runs: the default tests of
a reference larger than 1000 rows need none of it.

Agreement with Evidently is to rounding: the same per-point CDF values and bin shares are formed
with the same floating-point operations; only summation order can differ (≈1e-16 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import rel_entr

__all__ = [
    "KS_EXACT_MAX_N",
    "SortedSample",
    "binned_shares",
    "chisquare_pvalue",
    "counts_in_bins",
    "fill_zero_shares",
    "jensenshannon_distance",
    "ks_pvalue",
    "population_stability_index",
    "sturges_edges",
    "summarise",
    "union_counts",
    "wasserstein_normed",
    "z_test_pvalue",
]

#: scipy's ``ks_2samp(method="auto")`` is exact when both samples have at most this many values.
KS_EXACT_MAX_N = 10_000

_F64 = np.dtype(np.float64)


@dataclass(frozen=True, slots=True)
class SortedSample:
    """One column's finite values as sorted unique ``values`` with their ``counts``.

    ``integer`` records whether the column's dtype was an integer dtype; numpy's Sturges bin
    width is computed differently for integer data (REGULATORY.md §9.2, binning).
    """

    values: np.ndarray  # float64, strictly increasing
    counts: np.ndarray  # int64, > 0
    integer: bool = False

    @property
    def n(self) -> int:
        """Return the number of values (the sum of the counts)."""
        return int(self.counts.sum())

    def expand(self) -> np.ndarray:
        """Return every value, repeated by its count (sorted)."""
        return np.repeat(self.values, self.counts)

    @classmethod
    def from_sorted(cls, data: np.ndarray, *, integer: bool = False) -> SortedSample:
        """Summarise an already sorted finite float64 array (run lengths, one pass)."""
        if data.size == 0:
            return cls(np.empty(0, _F64), np.empty(0, np.int64), integer)
        starts = np.flatnonzero(data[1:] != data[:-1]) + 1
        starts = np.concatenate(([0], starts))
        counts = np.diff(np.append(starts, data.size)).astype(np.int64)
        return cls(data[starts].astype(_F64, copy=False), counts, integer)


#: Values sampled from a current column to choose between hashing and sorting it.
_PROBE = 4096


def summarise(values: np.ndarray, *, integer: bool = False) -> tuple[SortedSample, int]:
    """Return a float64 column's finite values as a :class:`SortedSample`, and the dropped count.

    NaN and ±inf are dropped (Evidently replaces ±inf by NaN, then drops NaN). Clinical values
    are mostly recorded at a fixed precision, so a window of a million rows often holds a few
    thousand distinct values: those are hashed and only the distinct values sorted. A column
    whose first values are mostly distinct is sorted whole instead. Both paths give the same
    sample, so the choice changes speed only.
    """
    probe = values[:_PROBE]
    if values.size > 4 * _PROBE and np.unique(probe).size * 4 < probe.size:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        counts = np.bincount(
            codes[codes >= 0] if (codes < 0).any() else codes, minlength=uniques.size
        )
        order = np.argsort(uniques, kind="stable")
        ordered = np.asarray(uniques)[order]
        counts = counts[order].astype(np.int64)
        low = int(np.searchsorted(ordered, -np.inf, side="right"))
        high = int(np.searchsorted(ordered, np.inf, side="left"))
        ordered, counts = ordered[low:high], counts[low:high]
        if ordered.size > 1 and (ordered[1:] == ordered[:-1]).any():  # -0.0 and 0.0
            starts = np.concatenate(([0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1))
            ordered = ordered[starts]
            counts = np.add.reduceat(counts, starts)
        sample = SortedSample(ordered.astype(_F64, copy=False), counts, integer)
        return sample, values.size - sample.n
    ordered = np.sort(values)
    low = int(np.searchsorted(ordered, -np.inf, side="right"))
    high = int(np.searchsorted(ordered, np.inf, side="left"))
    sample = SortedSample.from_sorted(ordered[low:high], integer=integer)
    return sample, values.size - (high - low)


# -- helpers on the merged reference ∪ current sequence -------------------------------------------


def _merged_cdfs(ref: SortedSample, cur: SortedSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the merged distinct values and cumulative reference/current counts at each.

    Reference values are inserted before equal current values; at any position followed by a
    strictly larger value the cumulative counts equal the right-continuous empirical CDFs
    times n (scipy's ``searchsorted(..., "right")``). Where the next value is equal the step
    has zero width, so the order inside ties does not matter.
    """
    k = ref.values.size
    positions = np.searchsorted(cur.values, ref.values, side="left") + np.arange(k)
    total = k + cur.values.size
    is_ref = np.zeros(total, dtype=bool)
    is_ref[positions] = True
    is_cur = ~is_ref
    merged = np.empty(total, dtype=_F64)
    merged[positions] = ref.values
    merged[is_cur] = cur.values
    cum_ref = np.zeros(total, dtype=np.int64)
    cum_ref[positions] = ref.counts
    np.cumsum(cum_ref, out=cum_ref)
    cum_cur = np.zeros(total, dtype=np.int64)
    cum_cur[is_cur] = cur.counts
    np.cumsum(cum_cur, out=cum_cur)
    return merged, cum_ref, cum_cur


def wasserstein_normed(ref: SortedSample, ref_std: float, cur: SortedSample) -> float:
    """Return Evidently's ``wasserstein``: W1(ref, cur) / max(std(ref), 0.001).

    Args:
        ref: the reference column.
        ref_std: ``np.std`` of the reference values (ddof=0), precomputed.
        cur: the current column.
    """
    merged, cum_ref, cum_cur = _merged_cdfs(ref, cur)
    gaps = np.diff(merged)
    diff = cum_ref[:-1] / ref.n
    diff -= cum_cur[:-1] / cur.n
    np.abs(diff, out=diff)
    distance_ = float(np.dot(diff, gaps))
    return distance_ / max(float(ref_std), 0.001)


def ks_pvalue(ref: SortedSample, cur: SortedSample) -> float:
    """Return the two-sided two-sample K-S p-value of scipy ``ks_2samp(ref, cur)`` (``ks``).

    Small samples (both at most :data:`KS_EXACT_MAX_N`) go to scipy itself, which uses its exact
    distribution; otherwise the statistic is formed here and scipy's asymptotic Smirnov formula
    (``kstwo.sf(d, round(m·n/(m+n)))``) is applied, as ``ks_2samp`` does.
    """
    from scipy import stats

    n_ref, n_cur = ref.n, cur.n
    if max(n_ref, n_cur) <= KS_EXACT_MAX_N:
        return float(stats.ks_2samp(ref.expand(), cur.expand()).pvalue)
    merged, cum_ref, cum_cur = _merged_cdfs(ref, cur)
    steps = np.empty(merged.size, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=steps[:-1])
    steps[-1] = True
    cdf_diff = cum_ref[steps] / n_ref - cum_cur[steps] / n_cur
    max_s = float(cdf_diff.max())
    min_s = float(np.clip(-cdf_diff.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def chisquare_pvalue(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Return scipy ``chisquare(f_obs=cur, f_exp=ref·n_cur/n_ref)``'s p-value (``chisquare``).

    A category absent from the reference has an expected count of 0, so the statistic is
    infinite and the p-value 0, as in Evidently (which lets numpy warn; we do not).
    """
    from scipy import stats

    n_ref = int(ref_counts.sum())
    n_cur = int(cur_counts.sum())
    k_norm = n_cur / n_ref
    f_exp = ref_counts * k_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur_counts, f_exp)[1])


def z_test_pvalue(keys_sorted_counts: tuple[np.ndarray, np.ndarray]) -> float:
    """Return Evidently's pooled two-proportion Z-test p-value (``z``).

    Args:
        keys_sorted_counts: reference and current counts per key, keys in sorted order. The
            first key is coded 0 and every other key 1, as in Evidently.
    """
    from scipy import stats

    ref_counts, cur_counts = keys_sorted_counts
    ref_present = np.count_nonzero(ref_counts)
    cur_present = np.count_nonzero(cur_counts)
    if (
        ref_present == 1
        and cur_present == 1
        and int(np.flatnonzero(ref_counts)[0]) == int(np.flatnonzero(cur_counts)[0])
    ):
        return 1.0
    n1 = int(ref_counts.sum())
    n2 = int(cur_counts.sum())
    p1 = float(n1 - int(ref_counts[0])) / n1
    p2 = float(n2 - int(cur_counts[0])) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def jensenshannon_distance(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Return ``scipy.spatial.distance.jensenshannon(ref, cur)`` (natural log), step by step.

    The same operations as scipy's, without importing ``scipy.spatial``: normalise both vectors,
    then sqrt((KL(p‖m) + KL(q‖m)) / 2) with m the mean of the two.
    """
    p = np.asarray(ref_shares, dtype=_F64)
    q = np.asarray(cur_shares, dtype=_F64)
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    return float(np.sqrt(js / 2.0))


def fill_zero_shares(shares: np.ndarray) -> np.ndarray:
    """Replace zero shares as Evidently's PSI binning does (``feel_zeroes``).

    A zero becomes (smallest non-zero share) / 10⁶ when that smallest share is at most 0.0001,
    otherwise 0.0001.
    """
    out = np.array(shares, dtype=_F64)
    nonzero = out[out != 0]
    if nonzero.size == 0 or nonzero.size == out.size:
        return out
    smallest = float(nonzero.min())
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def population_stability_index(
    expected: np.ndarray | Sequence[float], actual: np.ndarray | Sequence[float]
) -> float:
    """Return PSI = Σ (expected − actual)·ln(expected / actual) over bins (REGULATORY.md §9.3).

    Args:
        expected: reference shares per bin.
        actual: current shares per bin, same length. Zero shares on either side are replaced
            first (:func:`fill_zero_shares`), as Evidently's ``psi`` does.
    """
    e = fill_zero_shares(np.asarray(expected, dtype=_F64))
    a = fill_zero_shares(np.asarray(actual, dtype=_F64))
    return float(np.sum((e - a) * np.log(e / a)))


# -- binning --------------------------------------------------------------------------------------


def sturges_edges(low: float, high: float, n: int, *, integer: bool) -> np.ndarray:
    """Return ``np.histogram_bin_edges(data, bins="sturges")`` from the data's min, max and size.

    Reproduces numpy 2's ``_get_bin_edges`` for a string bin rule: width = ptp / (log2(n) + 1),
    at least 1 for integer data; ``ceil(ptp / width)`` equal bins between min and max; a constant
    sample gets the range (min − 0.5, max + 0.5).
    """
    first, last = float(low), float(high)
    if first == last:
        first -= 0.5
        last += 0.5
    ptp = float(high) - float(low)
    width = ptp / (np.log2(n) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def counts_in_bins(sample: SortedSample, edges: np.ndarray) -> np.ndarray:
    """Count a sample into histogram bins (``[e_i, e_{i+1})``, last bin closed)."""
    cum = np.concatenate(([0], np.cumsum(sample.counts)))
    below = cum[np.searchsorted(sample.values, edges[:-1], side="left")]
    upper = np.append(below[1:], cum[np.searchsorted(sample.values, edges[-1], side="right")])
    return upper - below


def union_counts(ref: SortedSample, cur: SortedSample) -> tuple[np.ndarray, np.ndarray]:
    """Return reference and current counts over every distinct value of reference ∪ current."""
    keys = np.union1d(ref.values, cur.values)
    ref_counts = np.zeros(keys.size, dtype=np.int64)
    cur_counts = np.zeros(keys.size, dtype=np.int64)
    ref_counts[np.searchsorted(keys, ref.values)] = ref.counts
    cur_counts[np.searchsorted(keys, cur.values)] = cur.counts
    return ref_counts, cur_counts


def binned_shares(
    ref: SortedSample, cur: SortedSample, cur_integer: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return reference and current shares per bin, binned as Evidently's ``get_binned_data``.

    A numerical column with more than 20 unique reference values is cut at the Sturges edges of
    reference ∪ current (these depend on the current window's min, max and size); otherwise each
    value of reference ∪ current is its own bin. No zero-filling (JS uses the raw shares).
    """
    n_ref, n_cur = ref.n, cur.n
    if ref.values.size > 20:
        low = min(float(ref.values[0]), float(cur.values[0]))
        high = max(float(ref.values[-1]), float(cur.values[-1]))
        edges = sturges_edges(low, high, n_ref + n_cur, integer=ref.integer and cur_integer)
        ref_counts = counts_in_bins(ref, edges)
        cur_counts = counts_in_bins(cur, edges)
    else:
        ref_counts, cur_counts = union_counts(ref, cur)
    return ref_counts / n_ref, cur_counts / n_cur
