"""Data and prediction drift against a training reference, with Evidently's default choices.

A :class:`ReferenceProfile` is built once per model version from its training reference
(:func:`build_profile`): per column its kind, the sorted unique finite values with counts
(numerical) or the category counts (categorical), and the reference standard deviation. It is
stored as JSON or npz and reused for every monitoring window. :func:`compute_drift` then compares
a current window with it, column by column, choosing the test as Evidently 0.7.23's
``DataDriftPreset`` does (REGULATORY.md §9.1, n_ref = non-missing reference values, n_unique =
distinct values of reference ∪ current):

==================  ==========================  ===========================
column              n_ref ≤ 1000                n_ref > 1000
==================  ==========================  ===========================
numerical, > 5      ``ks`` (p ≤ 0.05)           ``wasserstein`` (≥ 0.1)
numerical, 3–5      ``chisquare`` (p < 0.05)    ``jensenshannon`` (≥ 0.1)
numerical, ≤ 2      ``z`` (p < 0.05)            ``jensenshannon``
categorical, > 2    ``chisquare``               ``jensenshannon``
categorical, ≤ 2    ``z``                       ``jensenshannon``
==================  ==========================  ===========================

The dataset's ``drift_score`` is the share of drifted feature columns; the dataset drifts when it
is at least ``drift_share`` (0.5). The prediction (score) column, when the profile has one, is
tested the same way and reported apart; it does not count in the share. Every column also gets
its PSI (Evidently's ``psi`` binning, REGULATORY.md §9.3) as an extra statistic.

Missing values (NaN/None) and ±inf are dropped before testing, as Evidently does. Values from the
current window never appear in a result: display distributions use reference categories and
reference-derived bins, and categories new in the current window are counted together.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pandas as pd

from bedside.domain import drift_stats as st
from bedside.domain.drift_profile import (
    Category,
    ColumnKind,
    ColumnProfile,
    ReferenceProfile,
    build_profile,
    category_counts,
    category_key,
    numeric_array,
)
from bedside.errors import InvalidInput

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "DEFAULT_THRESHOLDS",
    "METHOD_LABELS",
    "ColumnDrift",
    "ColumnKind",
    "ColumnProfile",
    "Distribution",
    "DriftMethod",
    "DriftOverride",
    "DriftResult",
    "ReferenceProfile",
    "build_profile",
    "compute_drift",
    "population_stability_index",
]

logger = logging.getLogger(__name__)

population_stability_index = st.population_stability_index

DEFAULT_DRIFT_SHARE: Final = 0.5
DISPLAY_BINS: Final = 20


class DriftMethod(StrEnum):
    """A drift statistic (Evidently's stattest names)."""

    KS = "ks"
    CHISQUARE = "chisquare"
    Z = "z"
    WASSERSTEIN = "wasserstein"
    JENSENSHANNON = "jensenshannon"
    PSI = "psi"


DEFAULT_THRESHOLDS: Final[Mapping[DriftMethod, float]] = {
    DriftMethod.KS: 0.05,
    DriftMethod.CHISQUARE: 0.05,
    DriftMethod.Z: 0.05,
    DriftMethod.WASSERSTEIN: 0.1,
    DriftMethod.JENSENSHANNON: 0.1,
    DriftMethod.PSI: 0.1,
}

#: Evidently's display names, as they appear in its reports.
METHOD_LABELS: Final[Mapping[DriftMethod, str]] = {
    DriftMethod.KS: "K-S p_value",
    DriftMethod.CHISQUARE: "chi-square p_value",
    DriftMethod.Z: "Z-test p_value",
    DriftMethod.WASSERSTEIN: "Wasserstein distance (normed)",
    DriftMethod.JENSENSHANNON: "Jensen-Shannon distance",
    DriftMethod.PSI: "PSI",
}

_P_VALUE_METHODS: Final = frozenset({DriftMethod.KS, DriftMethod.CHISQUARE, DriftMethod.Z})
_NUMERICAL_ONLY: Final = frozenset({DriftMethod.KS, DriftMethod.WASSERSTEIN})


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftOverride:
    """A per-column choice of method and/or threshold (Evidently's ``per_column_method``)."""

    method: DriftMethod | str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Distribution:
    """Reference and current shares over display bins built from the reference only.

    Numerical columns with many values get equal-width bins over the reference range (``edges``)
    plus "below"/"above" bins; others get one bin per reference value, plus one bin for values
    new in the current window. Current values themselves never appear.
    """

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    edges: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "labels": list(self.labels),
            "reference": list(self.reference),
            "current": list(self.current),
            "edges": list(self.edges) if self.edges is not None else None,
        }


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift test of one column in one window.

    ``score`` is a p-value for ``ks``/``chisquare``/``z`` (drift when small) and a distance for
    ``wasserstein``/``jensenshannon``/``psi`` (drift when large); ``psi`` is always given too.
    """

    name: str
    kind: ColumnKind
    method: DriftMethod
    score: float
    threshold: float
    drifted: bool
    psi: float
    n_reference: int
    n_current: int
    n_current_missing: int
    new_categories: int
    distribution: Distribution

    @property
    def method_label(self) -> str:
        """Return Evidently's display name of the method."""
        return METHOD_LABELS[self.method]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (non-finite numbers become null)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "method": self.method.value,
            "method_label": self.method_label,
            "score": _json_float(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "psi": _json_float(self.psi),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "n_current_missing": self.n_current_missing,
            "new_categories": self.new_categories,
            "distribution": self.distribution.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one window: per feature, the dataset verdict, and prediction drift."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    n_current_rows: int
    n_reference_rows: int
    prediction: ColumnDrift | None = None
    n_drifted: int = field(init=False)
    drift_score: float = field(init=False)
    dataset_drift: bool = field(init=False)

    def __post_init__(self) -> None:
        n_drifted = sum(1 for c in self.columns if c.drifted)
        share = n_drifted / len(self.columns)
        object.__setattr__(self, "n_drifted", n_drifted)
        object.__setattr__(self, "drift_score", share)
        object.__setattr__(self, "dataset_drift", bool(share >= self.drift_share))

    def column(self, name: str) -> ColumnDrift:
        """Return one feature's result by name.

        Raises:
            KeyError: no such feature.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the whole result (aggregates only)."""
        return {
            "drift_score": self.drift_score,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "n_columns": len(self.columns),
            "n_current_rows": self.n_current_rows,
            "n_reference_rows": self.n_reference_rows,
            "columns": [c.to_dict() for c in self.columns],
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }


# -- computing drift ------------------------------------------------------------------------------


def _default_method(kind: ColumnKind, n_ref: int, n_unique: int) -> DriftMethod:
    """Return Evidently's default stattest (``_get_default_stattest``)."""
    if n_ref <= 1000:
        if kind is ColumnKind.NUMERICAL and n_unique > 5:
            return DriftMethod.KS
        return DriftMethod.CHISQUARE if n_unique > 2 else DriftMethod.Z
    if kind is ColumnKind.NUMERICAL and n_unique > 5:
        return DriftMethod.WASSERSTEIN
    return DriftMethod.JENSENSHANNON


def _is_drifted(method: DriftMethod, score: float, threshold: float) -> bool:
    """Apply Evidently's decision rule: K-S p ≤ t; chi-square, Z p < t; distances ≥ t."""
    if method is DriftMethod.KS:
        return bool(score <= threshold)
    if method in _P_VALUE_METHODS:
        return bool(score < threshold)
    return bool(score >= threshold)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _numeric_display(ref: st.SortedSample, cur: st.SortedSample) -> Distribution:
    """Bin a numerical column for display using reference-only bins."""
    n_ref, n_cur = ref.n, cur.n
    if ref.values.size <= DISPLAY_BINS:
        positions = np.searchsorted(cur.values, ref.values)
        found = positions < cur.values.size
        found[found] = cur.values[positions[found]] == ref.values[found]
        cur_counts = np.zeros(ref.values.size, dtype=np.int64)
        cur_counts[found] = cur.counts[positions[found]]
        other = n_cur - int(cur_counts.sum())
        labels = [_fmt(v) for v in ref.values.tolist()]
        ref_shares = (ref.counts / n_ref).tolist()
        cur_shares = (cur_counts / n_cur).tolist()
        if other:
            labels.append("other values")
            ref_shares.append(0.0)
            cur_shares.append(other / n_cur)
        return Distribution(tuple(labels), tuple(ref_shares), tuple(cur_shares))
    low, high = float(ref.values[0]), float(ref.values[-1])
    edges = np.linspace(low, high, DISPLAY_BINS + 1)
    ref_counts = st.counts_in_bins(ref, edges)
    inside = st.counts_in_bins(cur, edges)
    cum = np.concatenate(([0], np.cumsum(cur.counts)))
    below = int(cum[np.searchsorted(cur.values, low, side="left")])
    above = n_cur - int(cum[np.searchsorted(cur.values, high, side="right")])
    labels = [
        "below reference",
        *(f"{_fmt(a)}–{_fmt(b)}" for a, b in itertools.pairwise(edges.tolist())),
        "above reference",
    ]
    ref_shares = [0.0, *(ref_counts / n_ref).tolist(), 0.0]
    cur_shares = [below / n_cur, *(inside / n_cur).tolist(), above / n_cur]
    return Distribution(tuple(labels), tuple(ref_shares), tuple(cur_shares), tuple(edges.tolist()))


def _numerical_drift(
    col: ColumnProfile, series: pd.Series, override: DriftOverride | None
) -> ColumnDrift:
    values, cur_integer = numeric_array(series, col.name, "current")
    cur, n_dropped = st.summarise(values, integer=cur_integer)
    del values
    _require_values(col.name, cur.n)
    ref = col.sample()
    n_unique = ref.values.size
    if n_unique <= 5:
        n_unique = np.union1d(ref.values, cur.values).size
    method, threshold = _resolve(col, override, ref.n, n_unique)

    ref_shares, cur_shares = st.binned_shares(ref, cur, cur_integer)
    psi = st.population_stability_index(ref_shares, cur_shares)
    if method is DriftMethod.WASSERSTEIN:
        score = st.wasserstein_normed(ref, col.std, cur)
    elif method is DriftMethod.KS:
        score = st.ks_pvalue(ref, cur)
    elif method is DriftMethod.JENSENSHANNON:
        score = st.jensenshannon_distance(ref_shares, cur_shares)
    elif method is DriftMethod.PSI:
        score = psi
    elif method is DriftMethod.CHISQUARE:
        score = st.chisquare_pvalue(*st.union_counts(ref, cur))
    else:
        score = st.z_test_pvalue(st.union_counts(ref, cur))
    return ColumnDrift(
        name=col.name,
        kind=col.kind,
        method=method,
        score=float(score),
        threshold=threshold,
        drifted=_is_drifted(method, score, threshold),
        psi=psi,
        n_reference=ref.n,
        n_current=cur.n,
        n_current_missing=n_dropped,
        new_categories=0,
        distribution=_numeric_display(ref, cur),
    )


def _categorical_drift(
    col: ColumnProfile, series: pd.Series, override: DriftOverride | None
) -> ColumnDrift:
    assert isinstance(col.values, tuple)
    categories, counts, n_dropped = category_counts(series, col.name)
    n_cur = int(counts.sum())
    _require_values(col.name, n_cur)
    index = {value: i for i, value in enumerate(col.values)}
    k = len(col.values)
    cur_known = np.zeros(k, dtype=np.int64)
    new: dict[Category, int] = {}
    for value, count in zip(categories, counts.tolist(), strict=True):
        i = index.get(value)
        if i is None:
            new[value] = new.get(value, 0) + count
        else:
            cur_known[i] += count
    new_keys = sorted(new, key=category_key)
    ref_counts = np.concatenate([col.counts, np.zeros(len(new_keys), dtype=np.int64)])
    cur_counts = np.concatenate([cur_known, np.asarray([new[v] for v in new_keys], np.int64)])
    n_ref = col.n_reference
    method, threshold = _resolve(col, override, n_ref, k + len(new_keys))

    ref_shares, cur_shares = ref_counts / n_ref, cur_counts / n_cur
    psi = st.population_stability_index(ref_shares, cur_shares)
    if method is DriftMethod.JENSENSHANNON:
        score = st.jensenshannon_distance(ref_shares, cur_shares)
    elif method is DriftMethod.PSI:
        score = psi
    elif method is DriftMethod.CHISQUARE:
        score = st.chisquare_pvalue(ref_counts, cur_counts)
    else:
        keys = [*col.values, *new_keys]
        order = sorted(range(len(keys)), key=lambda i: category_key(keys[i]))
        score = st.z_test_pvalue((ref_counts[order], cur_counts[order]))
    labels = [str(v) for v in col.values]
    ref_display = (col.counts / n_ref).tolist()
    cur_display = (cur_known / n_cur).tolist()
    if new_keys:
        labels.append(f"new categories ({len(new_keys)})")
        ref_display.append(0.0)
        cur_display.append(sum(new.values()) / n_cur)
    return ColumnDrift(
        name=col.name,
        kind=col.kind,
        method=method,
        score=float(score),
        threshold=threshold,
        drifted=_is_drifted(method, score, threshold),
        psi=psi,
        n_reference=n_ref,
        n_current=n_cur,
        n_current_missing=n_dropped,
        new_categories=len(new_keys),
        distribution=Distribution(tuple(labels), tuple(ref_display), tuple(cur_display)),
    )


def _require_values(name: str, n: int) -> None:
    if n == 0:
        raise InvalidInput(
            f"Column {name!r} has no values in the current window (all missing or infinite); "
            "drift cannot be tested. Check the feature feed, or leave the column out of the "
            "profile."
        )


def _resolve(
    col: ColumnProfile, override: DriftOverride | None, n_ref: int, n_unique: int
) -> tuple[DriftMethod, float]:
    method = None
    threshold = None
    if override is not None:
        method = DriftMethod(override.method) if override.method is not None else None
        threshold = override.threshold
    if method is None:
        method = _default_method(col.kind, n_ref, n_unique)
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[method]
    return method, float(threshold)


def _check_overrides(
    profile: ReferenceProfile, overrides: Mapping[str, DriftOverride]
) -> dict[str, DriftOverride]:
    by_name = {c.name: c for c in profile.columns}
    if profile.prediction is not None:
        by_name[profile.prediction.name] = profile.prediction
    checked: dict[str, DriftOverride] = {}
    for name, override in overrides.items():
        if name not in by_name:
            raise InvalidInput(
                f"per_column_overrides names column {name!r}, which is not in the reference "
                f"profile; profiled columns: {sorted(by_name)}."
            )
        method = override.method
        if method is not None:
            try:
                method = DriftMethod(method)
            except ValueError:
                valid = ", ".join(m.value for m in DriftMethod)
                raise InvalidInput(
                    f"per_column_overrides[{name!r}] method {method!r} is unknown; expected one "
                    f"of: {valid}."
                ) from None
            if method in _NUMERICAL_ONLY and by_name[name].kind is ColumnKind.CATEGORICAL:
                raise InvalidInput(
                    f"per_column_overrides[{name!r}]: {method.value} tests numerical columns "
                    f"only; {name!r} is categorical. Use chisquare, z, jensenshannon or psi."
                )
        threshold = override.threshold
        if threshold is not None and not (math.isfinite(threshold) and threshold >= 0):
            raise InvalidInput(
                f"per_column_overrides[{name!r}] threshold must be a finite number ≥ 0."
            )
        checked[name] = DriftOverride(method=method, threshold=threshold)
    return checked


def _column_drift(
    col: ColumnProfile, current: pd.DataFrame, override: DriftOverride | None
) -> ColumnDrift:
    series = current[col.name]
    if col.kind is ColumnKind.NUMERICAL:
        return _numerical_drift(col, series, override)
    return _categorical_drift(col, series, override)


def compute_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    *,
    per_column_overrides: Mapping[str, DriftOverride] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DriftResult:
    """Test a current window for drift against the reference profile.

    Args:
        profile: the model version's :class:`ReferenceProfile`.
        current: the window's rows; must hold every profiled column (others are ignored).
        per_column_overrides: a method and/or threshold for named columns.
        drift_share: the dataset drifts when at least this share of features drifted.

    Returns:
        Per-feature results, ``drift_score`` (share of drifted features), ``dataset_drift``,
        and prediction drift when the profile has a prediction column.

    Raises:
        InvalidInput: a column is missing, of the wrong type or has no values; a bad override.
    """
    if not (isinstance(drift_share, int | float) and 0 < drift_share <= 1):
        raise InvalidInput(f"drift_share must be in (0, 1]; got {drift_share!r}.")
    overrides = _check_overrides(profile, per_column_overrides or {})
    needed = [*profile.feature_names, *([profile.prediction.name] if profile.prediction else [])]
    missing = [c for c in needed if c not in current.columns]
    if missing:
        raise InvalidInput(
            f"Current data has no column(s) {missing}, which the reference profile monitors. "
            "Send every profiled column (missing values may be NaN)."
        )
    if len(current) == 0:
        raise InvalidInput("Current data has no rows; drift needs at least one row per window.")
    results = tuple(_column_drift(c, current, overrides.get(c.name)) for c in profile.columns)
    prediction = None
    if profile.prediction is not None:
        prediction = _column_drift(
            profile.prediction, current, overrides.get(profile.prediction.name)
        )
    result = DriftResult(
        columns=results,
        drift_share=float(drift_share),
        n_current_rows=len(current),
        n_reference_rows=profile.n_rows,
        prediction=prediction,
    )
    logger.info(
        "drift: %d of %d features drifted over %d rows",
        result.n_drifted,
        len(results),
        len(current),
    )
    return result
