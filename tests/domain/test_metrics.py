"""Evaluation metrics: the REGULATORY §8 test vector, scikit-learn agreement, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from bedside.domain import metrics as m
from bedside.errors import InvalidInput

# REGULATORY.md §8, "Test vector"
Y = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
P = [0.10, 0.40, 0.35, 0.80, 0.20, 0.90, 0.60, 0.70, 0.55, 0.30]
P2 = [0.20, 0.30, 0.60, 0.70, 0.10, 0.80, 0.50, 0.40, 0.90, 0.35]


def _close(digits: int) -> float:
    """Return the tolerance of a number stated with ``digits`` decimals."""
    return 0.5 * 10.0**-digits


# ------------------------------------------------------------------------------- test vector


def test_confusion_counts_test_vector() -> None:
    counts = m.confusion_counts(Y, P, threshold=0.5)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (4, 1, 1, 4)
    for value in (counts.sensitivity(), counts.specificity(), counts.ppv(), counts.npv()):
        assert value.value == pytest.approx(0.8, abs=1e-15)
    assert counts.false_positive_rate().value == pytest.approx(0.2, abs=1e-15)


def test_auroc_test_vector() -> None:
    assert m.auroc(Y, P).value == pytest.approx(0.88, abs=1e-15)
    assert m.auroc(Y, P2).value == pytest.approx(0.96, abs=1e-15)


def test_average_precision_test_vector() -> None:
    assert m.average_precision(Y, P).value == pytest.approx(0.9028571, abs=_close(7))


def test_brier_test_vector() -> None:
    assert m.brier_score(Y, P).value == pytest.approx(0.1425, abs=1e-15)


def test_ece_test_vector() -> None:
    assert m.expected_calibration_error(Y, P, n_bins=10).value == pytest.approx(0.27, abs=1e-15)


def test_net_benefit_test_vector() -> None:
    assert m.net_benefit(Y, P, threshold_probability=0.2).value == pytest.approx(0.40, abs=1e-15)
    assert m.treat_all_net_benefit(Y, threshold_probability=0.2).value == pytest.approx(0.375)
    assert m.net_benefit(Y, P, threshold_probability=0.5).value == pytest.approx(0.30, abs=1e-15)
    assert m.treat_all_net_benefit(Y, threshold_probability=0.5).value == pytest.approx(
        0.0, abs=1e-15
    )


def test_delong_test_vector() -> None:
    result = m.delong_test(Y, P, P2)
    assert result.auc_a == pytest.approx(0.88, abs=1e-15)
    assert result.auc_b == pytest.approx(0.96, abs=1e-15)
    assert result.var_a == pytest.approx(0.0128, abs=_close(4))
    assert result.var_b == pytest.approx(0.0032, abs=_close(4))
    assert result.covariance == pytest.approx(0.0016, abs=_close(4))
    assert result.z == pytest.approx(-0.70711, abs=_close(5))
    assert result.p_value == pytest.approx(0.47950, abs=_close(5))
    assert result.reason is None


def test_recalibration_test_vector() -> None:
    fit = m.logistic_recalibration(Y, P)
    assert fit.slope.value == pytest.approx(1.90934, abs=_close(5))
    assert fit.intercept.value == pytest.approx(0.13284, abs=_close(5))
    assert fit.citl.value == pytest.approx(0.05331, abs=_close(5))
    assert m.calibration_slope(Y, P).value == fit.slope.value
    assert m.calibration_in_the_large(Y, P).value == fit.citl.value


# ----------------------------------------------------------------------- scikit-learn agreement


def _tied_sample(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    y[:2] = [0, 1]  # both outcomes, always
    p = np.round(np.clip(rng.beta(2, 5, n) + 0.25 * y, 0, 1), 2)  # heavy ties
    return y, p


@pytest.mark.parametrize("seed", range(8))
def test_ranking_and_brier_agree_with_sklearn_on_ties(seed: int) -> None:
    y, p = _tied_sample(seed)
    assert m.auroc(y, p).value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.average_precision(y, p).value == pytest.approx(
        average_precision_score(y, p), abs=1e-12
    )
    assert m.brier_score(y, p).value == pytest.approx(brier_score_loss(y, p), abs=1e-12)


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=2, max_size=60).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_ranking_metrics_agree_with_sklearn_property(rows: list[tuple[int, int]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows]) / 20
    assert m.auroc(y, p).value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.average_precision(y, p).value == pytest.approx(
        average_precision_score(y, p), abs=1e-12
    )


def test_recalibration_agrees_with_unpenalised_logistic_regression() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 3000)
    y = (rng.random(3000) < p**1.3).astype(int)  # miscalibrated on purpose
    fit = m.logistic_recalibration(y, p)
    x = m.logit(p)[:, None]
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(x, y)
    assert fit.slope.value == pytest.approx(ref.coef_[0, 0], abs=1e-6)
    assert fit.intercept.value == pytest.approx(ref.intercept_[0], abs=1e-6)
    # calibration-in-the-large solves Σ (y − expit(a + logit p)) = 0
    residual = y - 1 / (1 + np.exp(-(fit.citl.value + m.logit(p))))
    assert abs(residual.sum()) < 1e-8


def test_recalibration_of_calibrated_predictions_is_near_ideal() -> None:
    rng = np.random.default_rng(11)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    fit = m.logistic_recalibration(y, p)
    assert fit.slope.value == pytest.approx(1.0, abs=0.06)
    assert fit.citl.value == pytest.approx(0.0, abs=0.05)


# ------------------------------------------------------------------------------ ECE convention


def test_ece_bins_are_closed_on_the_left_at_decimal_edges() -> None:
    # 0.3 * 10 is 3.0000000000000004 and 0.7 * 10 is 7.000000000000001 in floating point; the
    # bin edges are the doubles nearest to k/10, so a value written 0.3 starts bin 3.
    edges = np.arange(11) / 10
    values = np.array([0.0, 0.1, 0.3, 0.6, 0.7, 0.9999, 1.0])
    assert list(m.ece_bin_index(values)) == [0, 1, 3, 6, 7, 9, 9]
    just_below = np.nextafter(edges[3], 0)
    assert m.ece_bin_index(np.array([just_below]))[0] == 2


def test_calibration_bins_count_every_row_and_skip_nothing() -> None:
    bins = m.calibration_bins(Y, P)
    assert sum(b.count for b in bins) == len(Y)
    assert bins[0].count == 0 and math.isnan(bins[0].mean_predicted)
    third = bins[3]  # [0.3, 0.4): 0.35 (event) and 0.30 (no event)
    assert third.count == 2
    assert third.mean_predicted == pytest.approx(0.325)
    assert third.observed_rate == pytest.approx(0.5)


def test_ece_equals_weighted_bin_gaps() -> None:
    y, p = _tied_sample(5)
    bins = m.calibration_bins(y, p, n_bins=15)
    expected = sum(
        b.count / len(y) * abs(b.observed_rate - b.mean_predicted) for b in bins if b.count
    )
    assert m.expected_calibration_error(y, p, n_bins=15).value == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------ DeLong, slowly


def _delong_by_definition(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    """DeLong (1988) with O(m·n) structural components, as an independent reference."""
    pos, neg = y == 1, y == 0

    def components(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        return psi.mean(axis=1), psi.mean(axis=0)

    (v10a, v01a), (v10b, v01b) = components(a), components(b)
    m_, n_ = pos.sum(), neg.sum()
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    s = s10 / m_ + s01 / n_
    return s[0, 0], s[1, 1], s[0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_delong_fast_algorithm_matches_the_definition(seed: int) -> None:
    y, a = _tied_sample(seed, n=150)
    b = np.round(np.clip(a + np.random.default_rng(seed + 100).normal(0, 0.1, a.size), 0, 1), 2)
    result = m.delong_test(y, a, b)
    var_a, var_b, cov = _delong_by_definition(y, a, b)
    assert result.var_a == pytest.approx(var_a, abs=1e-14)
    assert result.var_b == pytest.approx(var_b, abs=1e-14)
    assert result.covariance == pytest.approx(cov, abs=1e-14)
    swapped = m.delong_test(y, b, a)
    assert swapped.z == pytest.approx(-result.z)
    assert swapped.p_value == pytest.approx(result.p_value)


def test_delong_identical_scores_has_no_variance_reason() -> None:
    result = m.delong_test(Y, P, P)
    assert math.isnan(result.z) and math.isnan(result.p_value)
    assert result.reason is not None and "identically" in result.reason
    assert result.difference == 0


def test_delong_needs_two_of_each_outcome() -> None:
    result = m.delong_test([0, 1, 0], [0.1, 0.9, 0.2], [0.2, 0.8, 0.1])
    assert math.isnan(result.var_a) and result.reason is not None
    assert "at least 2 positive" in result.reason


# ------------------------------------------------------------------------------ undefined cases


def test_no_positives_gives_nan_with_reasons_never_an_exception() -> None:
    y = [0, 0, 0, 0]
    p = [0.1, 0.6, 0.3, 0.8]
    counts = m.confusion_counts(y, p, threshold=0.5)
    checks = {
        "sensitivity": counts.sensitivity(),
        "auroc": m.auroc(y, p),
        "average precision": m.average_precision(y, p),
        "slope": m.calibration_slope(y, p),
        "citl": m.calibration_in_the_large(y, p),
    }
    for name, value in checks.items():
        assert math.isnan(value.value), name
        assert value.reason and "positive" in value.reason, name
        assert not value.is_defined
    assert counts.specificity().value == 0.5
    assert m.brier_score(y, p).is_defined


def test_zero_denominators_give_nan_with_reasons() -> None:
    y, p = [0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4]
    counts = m.confusion_counts(y, p, threshold=0.9)  # nobody is an alert
    assert math.isnan(counts.ppv().value) and "positive predictions" in (counts.ppv().reason or "")
    counts = m.confusion_counts(y, p, threshold=0.0)  # everybody is an alert
    assert math.isnan(counts.npv().value) and "negative predictions" in (counts.npv().reason or "")
    empty = m.ConfusionCounts(0, 0, 0, 0)
    assert math.isnan(empty.selection_rate().value)


def test_separable_outcome_gives_nan_slope_with_reason() -> None:
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    fit = m.logistic_recalibration(y, p)
    assert math.isnan(fit.slope.value) and "separable" in (fit.slope.reason or "")
    assert fit.citl.is_defined  # the offset-only fit still has an optimum


def test_probabilities_of_exactly_zero_and_one_are_clipped() -> None:
    y = [0, 1, 0, 1, 1, 0]
    p = [0.0, 1.0, 0.2, 0.6, 0.4, 0.7]
    fit = m.logistic_recalibration(y, p)
    assert fit.slope.is_defined and fit.citl.is_defined


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("y", "p", "fragment", "secret"),
    [
        ([0, 7, 1], [0.1, 0.2, 0.3], "row 1", "7"),
        ([0, 1, 1], [0.1, 1.2345, 0.3], "row 1", "1.2345"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "row 1", "nan"),
        ([0, 1], [0.1, 0.2, 0.3], "y_true has 2", "0.3"),
        ([[0, 1]], [0.1], "one-dimensional", "0.1"),
        (["yes", "no"], [0.1, 0.2], "non-numeric", "yes"),
    ],
)
def test_bad_input_names_the_row_never_the_value(
    y: list[object], p: list[object], fragment: str, secret: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        m.brier_score(y, p)
    message = str(info.value)
    assert fragment in message
    assert secret not in message


def test_net_benefit_refuses_a_threshold_probability_of_one() -> None:
    with pytest.raises(InvalidInput, match="threshold_probability"):
        m.net_benefit(Y, P, threshold_probability=1.0)


def test_boolean_labels_are_accepted() -> None:
    assert m.auroc([False, True, True], [0.2, 0.8, 0.1]).value == pytest.approx(0.5)
