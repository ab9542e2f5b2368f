"""evaluate(): point estimates, intervals, threshold table, DeLong comparison, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bedside.domain import metrics as m
from bedside.domain.evaluation import EVALUATED_METRICS, evaluate, threshold_table
from bedside.domain.expressions import EVALUATION_METRICS
from bedside.errors import InvalidInput

Y = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
P = [0.10, 0.40, 0.35, 0.80, 0.20, 0.90, 0.60, 0.70, 0.55, 0.30]
P2 = [0.20, 0.30, 0.60, 0.70, 0.10, 0.80, 0.50, 0.40, 0.90, 0.35]


def _cohort(seed: int = 0, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, n // 2, n)
    risk = rng.normal(size=n // 2)[pid]  # rows of a patient share a risk
    p = 1 / (1 + np.exp(-(risk - 1 + rng.normal(0, 0.5, n))))
    y = (rng.random(n) < p).astype(int)
    return y, p, pid


def test_evaluate_reproduces_the_test_vector() -> None:
    result = evaluate(Y, P, threshold=0.5, seed=0, n_boot=200)
    expected = {
        "sensitivity": 0.8,
        "specificity": 0.8,
        "ppv": 0.8,
        "npv": 0.8,
        "auroc": 0.88,
        "auprc": 0.9028571,
        "brier": 0.1425,
        "ece": 0.27,
        "net_benefit": 0.30,
        "calibration_slope": 1.90934,
        "calibration_intercept": 0.05331,
        "calibration_joint_intercept": 0.13284,
    }
    for name, value in expected.items():
        assert result.metrics[name].value == pytest.approx(value, abs=5e-6), name
    assert result.treat_all_net_benefit == pytest.approx(0.0, abs=1e-15)
    assert result.prevalence == 0.5
    comparison = result.compare_with(evaluate(Y, P2, threshold=0.5, seed=0, n_boot=0))
    assert comparison.z == pytest.approx(-0.70711, abs=5e-6)
    assert comparison.p_value == pytest.approx(0.47950, abs=5e-6)
    assert comparison.ci_lower < comparison.difference < comparison.ci_upper


def test_every_metric_has_an_interval_around_its_estimate() -> None:
    y, p, pid = _cohort()
    result = evaluate(y, p, threshold=0.4, seed=7, patient_ids=pid, n_boot=300)
    assert set(result.metrics) == set(EVALUATED_METRICS)
    for name, estimate in result.metrics.items():
        if name != "ece":  # ECE is biased upwards: resampling noise widens every bin's gap
            assert estimate.ci_lower <= estimate.value <= estimate.ci_upper, name
        assert estimate.ci_lower < estimate.ci_upper, name
        assert estimate.n_defined == 300, name
    assert result.n_patients == len(np.unique(pid))


def test_same_seed_same_result_and_row_order_does_not_matter() -> None:
    y, p, pid = _cohort(1, n=800)
    first = evaluate(y, p, threshold=0.4, seed=3, patient_ids=pid, n_boot=100)
    again = evaluate(y, p, threshold=0.4, seed=3, patient_ids=pid, n_boot=100)
    assert first.to_dict() == again.to_dict()
    order = np.random.default_rng(0).permutation(len(y))
    shuffled = evaluate(
        y[order], p[order], threshold=0.4, seed=3, patient_ids=pid[order], n_boot=100
    )
    for name in EVALUATED_METRICS:
        a, b = first.metrics[name], shuffled.metrics[name]
        assert b.value == pytest.approx(a.value, abs=1e-12), name
        assert b.ci_lower == pytest.approx(a.ci_lower, abs=1e-9), name
        assert b.ci_upper == pytest.approx(a.ci_upper, abs=1e-9), name


def test_patient_level_intervals_are_wider_than_row_level_for_clustered_rows() -> None:
    y, p, pid = _cohort(2, n=3000)
    by_patient = evaluate(y, p, threshold=0.4, seed=1, patient_ids=pid, n_boot=300)
    by_row = evaluate(y, p, threshold=0.4, seed=1, n_boot=300)

    def width(result: object, name: str) -> float:
        estimate = result.metrics[name]  # type: ignore[attr-defined]
        return float(estimate.ci_upper - estimate.ci_lower)

    assert width(by_patient, "brier") > width(by_row, "brier")
    assert width(by_patient, "auroc") > width(by_row, "auroc")


def test_no_positive_outcomes_is_reported_not_raised() -> None:
    result = evaluate([0, 0, 0, 0, 0], [0.1, 0.2, 0.7, 0.4, 0.3], threshold=0.5, seed=0, n_boot=50)
    sensitivity = result.metrics["sensitivity"]
    assert math.isnan(sensitivity.value) and "positive" in (sensitivity.reason or "")
    assert math.isnan(sensitivity.ci_lower) and sensitivity.ci_reason
    assert result.metrics["specificity"].value == pytest.approx(0.8)
    json.dumps(result.to_dict(), allow_nan=False)


def test_threshold_table_targets_and_alert_burden() -> None:
    y, p, _ = _cohort(3)
    table = threshold_table(y, p, operating_threshold=0.42, sensitivities=(0.9,))
    target = next(row for row in table if row.source == "sensitivity >= 0.90")
    assert target.sensitivity >= 0.9
    # the next higher positive score would miss the target
    positives = np.sort(p[y == 1])
    higher = positives[positives > target.threshold]
    if higher.size:
        assert m.confusion_counts(y, p, threshold=higher[0]).sensitivity().value < 0.9
    operating = next(row for row in table if row.source == "operating")
    counts = m.confusion_counts(y, p, threshold=0.42)
    assert (operating.tp, operating.fp, operating.tn, operating.fn) == (
        counts.tp,
        counts.fp,
        counts.tn,
        counts.fn,
    )
    assert operating.alerts_per_100 == pytest.approx(100 * counts.predicted_positive / len(y))
    thresholds = [row.threshold for row in table]
    assert thresholds == sorted(thresholds, reverse=True)


def test_decision_curve_and_calibration_bins() -> None:
    result = evaluate(Y, P, threshold=0.5, seed=0, n_boot=0)
    point = next(d for d in result.decision_curve if d.threshold_probability == 0.2)
    assert point.model == pytest.approx(0.40) and point.treat_all == pytest.approx(0.375)
    assert sum(b.count for b in result.calibration_bins) == 10
    assert result.metrics["auroc"].ci_reason == "no bootstrap"


def test_metric_values_cover_the_expression_names() -> None:
    result = evaluate(Y, P, threshold=0.5, seed=0, n_boot=100)
    values = result.metric_values()
    assert set(EVALUATION_METRICS) - set(values) == {"max_disparity"}
    assert values["auroc"] == pytest.approx(0.88)
    assert values["auroc_ci_lower"] == result.metrics["auroc"].ci_lower


def test_to_dict_is_json_without_row_data() -> None:
    result = evaluate(Y, P, threshold=0.5, seed=0, n_boot=50)
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert "0.35" not in text.split('"threshold_table"')[0].split('"metrics"')[0]
    assert set(result.to_dict()["metrics"]) == set(EVALUATED_METRICS)


def test_compare_with_refuses_other_rows() -> None:
    result = evaluate(Y, P, threshold=0.5, seed=0, n_boot=0)
    other = evaluate(Y[:-1], P[:-1], threshold=0.5, seed=0, n_boot=0)
    with pytest.raises(InvalidInput, match="same rows"):
        result.compare_with(other)
    flipped = evaluate([1 - v for v in Y], P2, threshold=0.5, seed=0, n_boot=0)
    with pytest.raises(InvalidInput, match="same rows"):
        result.compare_with(flipped)
    assert result.compare_with(np.array(P2)).production_auroc == pytest.approx(0.96)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"confidence_level": 0.3}, "confidence_level"),
        ({"n_boot": -1}, "n_boot"),
        ({"patient_ids": [1, 2, 3]}, "patient_ids"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs: dict[str, object], fragment: str) -> None:
    arguments: dict[str, object] = {"threshold": 0.5, "seed": 0, "n_boot": 10, **kwargs}
    with pytest.raises(InvalidInput, match=fragment):
        evaluate(Y, P, **arguments)  # type: ignore[arg-type]


def test_no_rows_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no rows"):
        evaluate([], [], threshold=0.5, seed=0)
