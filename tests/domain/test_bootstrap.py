"""The grouped, vectorised patient-level bootstrap engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from bedside.domain import metrics as m
from bedside.domain.bootstrap import (
    CELL_METRICS,
    GroupedMetrics,
    Grouping,
    patient_codes,
    percentile_intervals,
    resample_counts,
)
from bedside.errors import InvalidInput


def _sample(
    seed: int, n: int = 600, patients: int = 250, decimals: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    p = np.round(np.clip(rng.beta(2, 5, n) + 0.25 * y, 0, 1), decimals)
    pid = rng.integers(0, patients, n)
    group = rng.integers(0, 3, n)
    return y, p, pid, group


def _reference(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every cell metric (and the recalibration) computed row by row, independently."""
    counts = m.confusion_counts(y, p, threshold=threshold)
    fit = m.logistic_recalibration(y, p)
    return {
        "sensitivity": counts.sensitivity().value,
        "specificity": counts.specificity().value,
        "ppv": counts.ppv().value,
        "npv": counts.npv().value,
        "false_positive_rate": counts.false_positive_rate().value,
        "selection_rate": counts.selection_rate().value,
        "prevalence": counts.prevalence().value,
        "auroc": roc_auc_score(y, p),
        "auprc": average_precision_score(y, p),
        "brier": brier_score_loss(y, p),
        "ece": m.expected_calibration_error(y, p).value,
        "net_benefit": m.net_benefit(y, p, threshold_probability=threshold).value,
        "calibration_slope": fit.slope.value,
        "calibration_intercept": fit.citl.value,
        "calibration_joint_intercept": fit.intercept.value,
    }


def test_point_estimates_equal_the_row_by_row_metrics_per_group() -> None:
    y, p, pid, group = _sample(0)
    engine = GroupedMetrics(
        y,
        p,
        threshold=0.3,
        groupings=[Grouping.whole(len(y)), Grouping("g", group, ("a", "b", "c"))],
        patient_ids=pid,
    )
    points = engine.point_estimates()
    assert engine.labels == [("overall", "all"), ("g", "a"), ("g", "b"), ("g", "c")]
    for k, rows in enumerate([np.arange(len(y)), *(np.flatnonzero(group == g) for g in range(3))]):
        expected = _reference(y[rows], p[rows], 0.3)
        for name, value in expected.items():
            assert points[name][k] == pytest.approx(value, abs=1e-12), (k, name)
        assert points["n"][k] == len(rows)
        assert points["n_events"][k] == y[rows].sum()


@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.3, 1.0])
def test_thresholds_on_cut_points_and_extremes(threshold: float) -> None:
    y, p, _, _ = _sample(1)
    engine = GroupedMetrics(y, p, threshold=threshold, groupings=[Grouping.whole(len(y))])
    counts = m.confusion_counts(y, p, threshold=threshold)
    points = engine.point_estimates()
    assert points["sensitivity"][0] == pytest.approx(counts.sensitivity().value, abs=1e-15)
    assert points["specificity"][0] == pytest.approx(counts.specificity().value, abs=1e-15)
    assert points["selection_rate"][0] == pytest.approx(counts.selection_rate().value)


def test_each_resample_equals_the_metrics_of_the_rows_it_draws() -> None:
    y, p, pid, group = _sample(2, n=400, patients=150)
    engine = GroupedMetrics(
        y,
        p,
        threshold=0.35,
        groupings=[Grouping.whole(len(y)), Grouping("g", group, ("a", "b", "c"))],
        patient_ids=pid,
    )
    samples = engine.bootstrap(n_boot=6, seed=9)
    codes, n_patients = patient_codes(pid, len(y))
    counts = next(resample_counts(n_patients, n_boot=6, seed=9, chunk_size=6))
    for b in range(6):
        drawn = np.repeat(np.arange(len(y)), counts[codes, b].astype(int))  # rows, with repeats
        for k, mask in enumerate([np.ones(len(y), bool), group == 0, group == 1, group == 2]):
            rows = drawn[mask[drawn]]
            expected = _reference(y[rows], p[rows], 0.35)
            for name, value in expected.items():
                # calibration refits sum within narrow logit bins by a Taylor expansion
                tol = 1e-7 if name.startswith("calibration") else 1e-12
                assert samples[name][k, b] == pytest.approx(value, abs=tol), (b, k, name)


def test_same_seed_same_resamples_other_seed_other_resamples() -> None:
    y, p, pid, _ = _sample(3)
    engine = GroupedMetrics(
        y, p, threshold=0.3, groupings=[Grouping.whole(len(y))], patient_ids=pid
    )
    first = engine.bootstrap(n_boot=50, seed=123)
    again = engine.bootstrap(n_boot=50, seed=123)
    other = engine.bootstrap(n_boot=50, seed=124)
    for name in CELL_METRICS:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["auroc"], other["auroc"])


def test_resample_k_does_not_depend_on_chunks_or_n_boot() -> None:
    whole = np.hstack(list(resample_counts(40, n_boot=30, seed=5, chunk_size=64)))
    chunked = np.hstack(list(resample_counts(40, n_boot=30, seed=5, chunk_size=7)))
    longer = np.hstack(list(resample_counts(40, n_boot=45, seed=5, chunk_size=8)))
    np.testing.assert_array_equal(whole, chunked)
    np.testing.assert_array_equal(whole, longer[:, :30])
    assert (whole.sum(axis=0) == 40).all()  # every resample draws as many patients


def test_rows_of_one_patient_move_together() -> None:
    # Every patient has the same row twice. Resampling patients must give exactly the metrics
    # of the single-row data resampled by row (duplicating every row changes no proportion);
    # resampling the duplicated rows independently must not.
    y, p, _, _ = _sample(4, n=300)
    single = GroupedMetrics(y, p, threshold=0.3, groupings=[Grouping.whole(len(y))])
    y2, p2 = np.repeat(y, 2), np.repeat(p, 2)
    patients = np.repeat(np.arange(len(y)), 2)
    doubled = GroupedMetrics(
        y2, p2, threshold=0.3, groupings=[Grouping.whole(len(y2))], patient_ids=patients
    )
    by_row = GroupedMetrics(y2, p2, threshold=0.3, groupings=[Grouping.whole(len(y2))])
    a = single.bootstrap(n_boot=40, seed=1)
    b = doubled.bootstrap(n_boot=40, seed=1)
    c = by_row.bootstrap(n_boot=40, seed=1)
    for name in (*CELL_METRICS, "calibration_slope", "calibration_intercept"):
        np.testing.assert_allclose(a[name], b[name], atol=1e-9, err_msg=name)
    assert not np.allclose(a["auroc"], c["auroc"])


def test_stratified_resamples_keep_the_number_of_event_patients() -> None:
    y, p, _, _ = _sample(5)
    engine = GroupedMetrics(y, p, threshold=0.3, groupings=[Grouping.whole(len(y))])
    stratified = engine.bootstrap(n_boot=30, seed=2, stratify=True)
    plain = engine.bootstrap(n_boot=30, seed=2)
    np.testing.assert_allclose(stratified["prevalence"], y.mean(), atol=1e-15)
    assert plain["prevalence"].std() > 0


def test_percentile_intervals_match_numpy_and_leave_out_undefined_resamples() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(3, 200))
    samples[1, :40] = np.nan  # 160 of 200 defined: an interval from those
    samples[2, :150] = np.nan  # 50 of 200 defined: fewer than half, no interval
    lower, upper, defined = percentile_intervals(samples, 0.9)
    assert (lower[0], upper[0]) == tuple(np.quantile(samples[0], [0.05, 0.95]))
    assert (lower[1], upper[1]) == tuple(np.quantile(samples[1, 40:], [0.05, 0.95]))
    assert math.isnan(lower[2]) and math.isnan(upper[2])
    assert list(defined) == [200, 160, 50]


def test_a_group_without_positives_is_undefined_not_an_error() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0], dtype=np.int8)
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.3, 0.4, 0.5])
    group = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    engine = GroupedMetrics(y, p, threshold=0.5, groupings=[Grouping("g", group, ("none", "some"))])
    points = engine.point_estimates()
    for name in ("sensitivity", "auroc", "auprc", "calibration_slope"):
        assert math.isnan(points[name][0]), name
    assert points["specificity"][0] == pytest.approx(2 / 3)
    samples = engine.bootstrap(n_boot=20, seed=0)
    assert np.isnan(samples["sensitivity"][0]).all()


def test_patient_ids_must_be_complete_and_match_the_rows() -> None:
    with pytest.raises(InvalidInput, match="row 1"):
        patient_codes(["a", None, "b"], 3)
    with pytest.raises(InvalidInput, match="one id per row"):
        patient_codes(["a", "b"], 3)
    codes, n = patient_codes(["b", "a", "b", "c"], 4)
    assert n == 3 and list(codes) == [1, 0, 1, 2]  # sorted ids: row order does not matter


@pytest.mark.parametrize(("n_boot", "seed"), [(0, 1), (10, -1), (True, 1), (10, 1.5)])
def test_bad_bootstrap_arguments_are_refused(n_boot: int, seed: int) -> None:
    with pytest.raises(InvalidInput):
        next(resample_counts(5, n_boot=n_boot, seed=seed))


def test_threshold_outside_zero_one_is_refused() -> None:
    y, p, _, _ = _sample(6, n=20)
    with pytest.raises(InvalidInput, match="threshold"):
        GroupedMetrics(y, p, threshold=1.5, groupings=[Grouping.whole(len(y))])


def test_without_calibration_the_calibration_metrics_are_nan() -> None:
    y, p, pid, group = _sample(7)
    engine = GroupedMetrics(
        y,
        p,
        threshold=0.3,
        groupings=[Grouping.whole(len(y)), Grouping("g", group, ("a", "b", "c"))],
        patient_ids=pid,
        calibration=False,
    )
    samples = engine.bootstrap(n_boot=10, seed=0)
    points = engine.point_estimates()
    assert np.isnan(samples["calibration_slope"]).all()
    assert np.isnan(points["calibration_intercept"]).all()
    assert np.isfinite(samples["auroc"]).all()
