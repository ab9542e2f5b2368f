"""Time buckets, score summaries, performance intervals and subgroup suppression (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from bedside.domain import monitoring as mon
from bedside.domain.drift import build_profile
from bedside.errors import InvalidInput

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_plan_buckets_uses_window_buckets_ending_now_with_two_windows_of_data() -> None:
    now = T0 + timedelta(days=20)
    plan = mon.plan_buckets(T0, now - timedelta(hours=1), window=WEEK, now=now, n_rows=5000)
    assert plan.mode == "window" and len(plan.buckets) == 3
    assert plan.newest.end == now and plan.newest.start == now - WEEK
    assert plan.buckets[0].start <= T0
    times = [T0, now - WEEK - timedelta(seconds=1), now - WEEK, now]
    assert plan.assign(times).tolist() == [0, 1, 2, 2]
    assert plan.assign([T0 - timedelta(days=30)]).tolist() == [-1]


def test_plan_buckets_keeps_the_newest_window_buckets_only() -> None:
    now = T0 + timedelta(days=7 * 100)
    plan = mon.plan_buckets(T0, now, window=WEEK, now=now, n_rows=10)
    assert len(plan.buckets) == mon.MAX_WINDOW_BUCKETS and plan.newest.end == now


def test_plan_buckets_splits_a_short_history_into_equal_buckets() -> None:
    last = T0 + timedelta(minutes=30)
    plan = mon.plan_buckets(T0, last, window=WEEK, now=last, n_rows=100_000)
    assert plan.mode == "equal" and len(plan.buckets) == mon.MAX_EQUAL_BUCKETS
    assert plan.buckets[0].start == T0 and plan.newest.end == last
    assert plan.length == timedelta(seconds=150)
    assert plan.assign([T0, last, T0 + timedelta(seconds=149)]).tolist() == [0, 11, 0]
    # Few records: fewer buckets, each with about MIN_ROWS_PER_BUCKET on average.
    few = mon.plan_buckets(T0, last, window=WEEK, now=last, n_rows=1600)
    assert len(few.buckets) == 1600 // mon.MIN_ROWS_PER_BUCKET == 3
    one = mon.plan_buckets(T0, T0, window=WEEK, now=T0, n_rows=5000)
    assert len(one.buckets) == 1 and one.assign([T0]).tolist() == [0]


def test_plan_buckets_refuses_a_non_positive_window() -> None:
    with pytest.raises(InvalidInput, match="window must be positive"):
        mon.plan_buckets(T0, T0, window=timedelta(0), now=T0, n_rows=1)


def test_score_summary_gives_quantiles_and_suppresses_small_buckets() -> None:
    p = (np.arange(100) + 0.5) / 100  # ten in each tenth
    summary = mon.score_summary(p)
    assert summary["n"] == 100 and summary["mean"] == pytest.approx(0.5)
    assert summary["quantiles"]["p50"] == pytest.approx(0.5)
    assert summary["shares"] == [pytest.approx(0.1)] * 10
    small = mon.score_summary(p[:9])
    assert small == {"n": "fewer than 10", "suppressed": True}


def test_reference_quantiles_follow_the_counts() -> None:
    values = np.array([0.1, 0.2, 0.9])
    counts = np.array([10, 80, 10], dtype=np.int64)
    q = mon.reference_quantiles(values, counts)
    assert q["p10"] == 0.1 and q["p50"] == 0.2 and q["p90"] == 0.2


def test_performance_has_intervals_around_the_point_and_needs_both_classes() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 300), 0, 1)
    perf = mon.performance(y, p, threshold=0.5, n_boot=200, seed=1)
    auroc, accuracy = perf["metrics"]["auroc"], perf["metrics"]["accuracy"]
    assert auroc["ci_lower"] < auroc["value"] < auroc["ci_upper"]
    assert accuracy["value"] == pytest.approx(float(np.mean((p >= 0.5) == y)))
    assert accuracy["ci_lower"] < accuracy["value"] < accuracy["ci_upper"]
    assert perf["ci_method"] == "percentile bootstrap over records"
    assert mon.performance(y, p, threshold=0.5, n_boot=200, seed=1) == perf  # seeded
    one_class = mon.performance(np.ones(50, int), p[:50], threshold=0.5, n_boot=10, seed=1)
    assert one_class["metrics"] is None and "both outcome classes" in one_class["reason"]
    few = mon.performance(y[:5], p[:5], threshold=0.5, n_boot=10, seed=1)
    assert few["n"] == "fewer than 10" and few["metrics"] is None


def test_suppressed_counts_hide_small_cells_and_their_complement() -> None:
    assert mon.suppressed_counts([50, 40, 3]) == [50, "withheld", "fewer than 10"]
    assert mon.suppressed_counts([50, 4, 3]) == [50, "fewer than 10", "fewer than 10"]
    assert mon.suppressed_counts([50, 40]) == [50, 40]
    assert mon.suppressed_counts([7]) == ["fewer than 10"]


def test_subgroups_report_alert_rates_metrics_and_gaps_without_small_cells() -> None:
    rng = np.random.default_rng(2)
    n = 600
    groups = ["A"] * 300 + ["B"] * 295 + ["C"] * 5
    y = rng.integers(0, 2, n)
    # Group B's scores carry less signal: its sensitivity is lower.
    noise = np.where(np.array(groups) == "B", 0.45, 0.1)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 1, n) * noise, 0, 1)
    decisions = p >= 0.5
    attributes: list[dict[str, str] | None] = [{"race": g} for g in groups]
    attributes[0] = None  # no attributes sent with one record
    result = mon.subgroups(
        attributes,
        decisions,
        y_true=list(y),
        y_prob=p,
        threshold=0.5,
        n_boot=200,
        seed=0,
        gap_metric="sensitivity",
    )
    block = result["attributes"]["race"]
    by = {g["group"]: g for g in block["groups"]}
    assert list(by) == ["A", "B", "C", "(missing)"]
    assert by["C"]["n"] == "fewer than 10" and by["C"]["alert_rate"] is None
    assert by["(missing)"]["n"] == "fewer than 10" and by["(missing)"]["metrics"] is None
    assert by["B"]["n"] == 295
    assert by["B"]["alert_rate"] == pytest.approx(float(decisions[300:595].mean()))
    sens_a = by["A"]["metrics"]["sensitivity"]["value"]
    sens_b = by["B"]["metrics"]["sensitivity"]["value"]
    assert sens_a > sens_b
    gap = block["gaps"]["sensitivity"]
    assert gap["value"] == pytest.approx(sens_a - sens_b)
    assert gap["ci_lower"] <= gap["value"] <= gap["ci_upper"]
    assert result["max_disparity"] == pytest.approx(gap["value"])


def test_subgroups_without_outcomes_still_give_alert_rates() -> None:
    decisions = np.array([True, False] * 20)
    attributes = [{"sex": "F" if i < 20 else "M"} for i in range(40)]
    result = mon.subgroups(
        attributes,
        decisions,
        y_true=[None] * 40,
        y_prob=np.full(40, 0.5),
        threshold=0.5,
        n_boot=10,
        seed=0,
    )
    groups = result["attributes"]["sex"]["groups"]
    assert [g["alert_rate"] for g in groups] == [0.5, 0.5]
    assert all(g["metrics"] is None for g in groups) and result["max_disparity"] is None


def test_bucket_drift_leaves_out_features_without_values() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000), "prediction": rng.random(2000)}
    )
    profile = build_profile(reference, columns=["a", "b"], prediction_column="prediction")
    current = pd.DataFrame(
        {"a": rng.normal(3, 1, 300), "b": [None] * 300, "prediction": rng.random(300)}
    )
    result, untestable = mon.bucket_drift(profile, current)
    assert untestable == ["b"] and result is not None
    assert [c.name for c in result.columns] == ["a"] and result.drift_score == 1.0
    assert result.prediction is not None and result.prediction.method.value == "wasserstein"
    figures = mon.drift_figures(result, untestable)
    assert figures["features"]["a"]["drifted"] and figures["features"]["a"]["strength"] > 1
    empty, missing = mon.bucket_drift(profile, current.assign(a=None))
    assert empty is None and missing == ["a", "b"]
