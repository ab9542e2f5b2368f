"""Subgroup metrics and disparities: agreement with fairlearn 0.15.0, evidence rules, properties."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_score,
    roc_auc_score,
)

from bedside.domain.fairness import (
    DISPARITY_METRICS,
    GROUP_METRICS,
    MISSING_GROUP,
    Agg,
    FairnessResult,
    Kind,
    Method,
    assess_fairness,
)
from bedside.errors import InvalidInput

THRESHOLD = 0.5


def _npv(y_true: Any, y_pred: Any) -> float:
    tn, _, fn, _ = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return float(tn / (tn + fn))


FAIRLEARN_LABEL_METRICS = {
    "sensitivity": true_positive_rate,
    "specificity": true_negative_rate,
    "false_positive_rate": false_positive_rate,
    "selection_rate": selection_rate,
    "ppv": precision_score,
    "npv": _npv,
}
FAIRLEARN_SCORE_METRICS = {
    "auroc": roc_auc_score,
    "auprc": average_precision_score,
    "brier": brier_score_loss,
}


def _population(seed: int, n: int = 1200) -> pd.DataFrame:
    """A synthetic cohort: three attributes with missing values and a tiny group, tied scores.

    Every group of every attribute (and of race × sex) has both outcomes and both predictions,
    so each metric is defined in fairlearn and here alike.
    """
    rng = np.random.default_rng(seed)
    race = rng.choice(
        ["White", "Black", "Asian", "Hispanic", "missing"], n, p=[0.5, 0.2, 0.1, 0.15, 0.05]
    )
    sex = rng.choice(["F", "M"], n)
    age = rng.choice(["18-44", "45-64", "65-79", "80+"], n)
    shift = pd.Series(race).map(
        {"White": 0.0, "Black": 0.08, "Asian": -0.05, "Hispanic": 0.03, "missing": 0.0}
    )
    y = (rng.random(n) < 0.3).astype(int)
    p = np.round(np.clip(rng.beta(2, 5, n) + 0.3 * y + shift.to_numpy(), 0, 1), 3)
    # a tiny group: two rows per sex, covering both outcomes and both predictions
    tiny = pd.DataFrame(
        {
            "race": ["Pacific"] * 8,
            "sex": ["F", "F", "F", "F", "M", "M", "M", "M"],
            "age": ["18-44", "45-64", "65-79", "80+"] * 2,
            "y": [1, 0, 1, 0] * 2,
            "p": [0.9, 0.1, 0.2, 0.8] * 2,
        }
    )
    frame = pd.DataFrame({"race": race, "sex": sex, "age": age, "y": y, "p": p})
    frame = pd.concat([frame, tiny], ignore_index=True)
    # missing written three ways: None, NaN and empty text
    race_values = frame["race"].astype(object)
    missing_rows = np.flatnonzero(race_values == "missing")
    for k, row in enumerate(missing_rows):
        race_values.iloc[row] = (None, np.nan, "")[k % 3]
    frame["race"] = race_values
    frame["patient"] = rng.integers(0, len(frame) * 2 // 3, len(frame))
    return frame


def _fairlearn_labels(values: pd.Series) -> pd.Series:
    """The same groups for fairlearn, written independently: missing → "(missing)"."""
    return values.map(lambda v: MISSING_GROUP if v is None or v != v or v == "" else str(v))


def _assess(frame: pd.DataFrame, **kwargs: Any) -> FairnessResult:
    options: dict[str, Any] = {
        "threshold": THRESHOLD,
        "seed": 0,
        "min_group_size": 1,
        "min_group_events": 0,
        "n_boot": 0,
        **kwargs,
    }
    return assess_fairness(
        frame["y"].to_numpy(),
        frame["p"].to_numpy(),
        frame[["race", "sex", "age"]],
        **options,
    )


def _ours_by_group(result: FairnessResult, attribute: str, metric: str) -> dict[Any, float]:
    return {g.group: g.metrics[metric].value for g in result.groups_of(attribute)}


@pytest.mark.parametrize("seed", [0, 1])
def test_by_group_values_agree_with_fairlearn_metricframe(seed: int) -> None:
    frame = _population(seed)
    result = _assess(frame, intersections=[("race", "sex")])
    y = frame["y"].to_numpy()
    predicted = (frame["p"].to_numpy() >= THRESHOLD).astype(int)
    features = {
        "race": _fairlearn_labels(frame["race"]),
        "sex": frame["sex"],
        "age": frame["age"],
    }
    for attribute, labels in features.items():
        for metrics, y_pred in (
            (FAIRLEARN_LABEL_METRICS, predicted),
            (FAIRLEARN_SCORE_METRICS, frame["p"]),
        ):
            frame_fl = MetricFrame(
                metrics=metrics, y_true=y, y_pred=y_pred, sensitive_features=labels
            )
            for name in metrics:
                theirs = frame_fl.by_group[name].to_dict()
                ours = _ours_by_group(result, attribute, name)
                assert set(ours) == set(theirs), (attribute, name)
                for group, value in theirs.items():
                    assert ours[group] == pytest.approx(value, abs=1e-12), (attribute, name, group)
                assert result.overall[name].value == pytest.approx(
                    frame_fl.overall[name], abs=1e-12
                )
    # the intersection race × sex
    both = pd.DataFrame({"race": features["race"], "sex": frame["sex"]})
    frame_fl = MetricFrame(
        metrics=FAIRLEARN_LABEL_METRICS, y_true=y, y_pred=predicted, sensitive_features=both
    )
    for name in FAIRLEARN_LABEL_METRICS:
        ours = _ours_by_group(result, "race & sex", name)
        for (race, sex), value in frame_fl.by_group[name].items():
            assert ours[f"{race} & {sex}"] == pytest.approx(value, abs=1e-12), (race, sex, name)


def test_disparities_agree_with_fairlearn() -> None:
    frame = _population(0)
    result = _assess(frame)
    y = frame["y"].to_numpy()
    predicted = (frame["p"].to_numpy() >= THRESHOLD).astype(int)
    methods: tuple[Method, ...] = ("between_groups", "to_overall")
    for attribute in ("race", "sex", "age"):
        labels = _fairlearn_labels(frame[attribute])
        frames = [
            MetricFrame(metrics=metrics, y_true=y, y_pred=y_pred, sensitive_features=labels)
            for metrics, y_pred in (
                (FAIRLEARN_LABEL_METRICS, predicted),
                (FAIRLEARN_SCORE_METRICS, frame["p"]),
            )
        ]
        for method in methods:
            named = {"sensitive_features": labels, "method": method}
            expected: dict[tuple[str, Kind, Agg | None], float] = {
                ("demographic_parity", "difference", None): demographic_parity_difference(
                    y, predicted, **named
                ),
                ("demographic_parity", "ratio", None): demographic_parity_ratio(
                    y, predicted, **named
                ),
                ("equal_opportunity", "difference", None): equal_opportunity_difference(
                    y, predicted, **named
                ),
                ("equal_opportunity", "ratio", None): equal_opportunity_ratio(
                    y, predicted, **named
                ),
            }
            aggs: tuple[Agg, ...] = ("worst_case", "mean")
            for agg in aggs:
                expected["equalized_odds", "difference", agg] = equalized_odds_difference(
                    y, predicted, agg=agg, **named
                )
                expected["equalized_odds", "ratio", agg] = equalized_odds_ratio(
                    y, predicted, agg=agg, **named
                )
            for (metric, kind, agg_), value in expected.items():
                ours = result.disparity(attribute, metric, kind=kind, method=method, agg=agg_)
                assert ours.value == pytest.approx(value, abs=1e-12), (attribute, metric, kind)
            # MetricFrame.difference / ratio of every rate
            for frame_fl in frames:
                differences = frame_fl.difference(method=method)
                ratios = frame_fl.ratio(method=method)
                for name in differences.index:
                    if name not in DISPARITY_METRICS:
                        continue
                    ours_d = result.disparity(attribute, name, kind="difference", method=method)
                    ours_r = result.disparity(attribute, name, kind="ratio", method=method)
                    assert ours_d.value == pytest.approx(differences[name], abs=1e-12)
                    assert ours_r.value == pytest.approx(ratios[name], abs=1e-12)


def test_the_test_vector_disparities() -> None:
    y = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    p = [0.10, 0.40, 0.35, 0.80, 0.20, 0.90, 0.60, 0.70, 0.55, 0.30]
    result = assess_fairness(
        y,
        p,
        {"A": list("aaaaabbbbb")},
        threshold=0.5,
        seed=0,
        min_group_size=1,
        min_group_events=0,
        n_boot=0,
    )
    assert result.disparity("A", "demographic_parity").value == pytest.approx(0.6, abs=1e-15)
    assert result.disparity("A", "demographic_parity", kind="ratio").value == pytest.approx(0.25)
    assert result.disparity("A", "equalized_odds").value == pytest.approx(0.5)
    assert result.disparity("A", "equalized_odds", agg="mean").value == pytest.approx(0.5)
    assert result.disparity("A", "equal_opportunity").value == pytest.approx(0.5)
    a, b = result.groups_of("A")
    assert (a.metrics["selection_rate"].value, a.metrics["sensitivity"].value) == (0.2, 0.5)
    assert a.metrics["false_positive_rate"].value == 0.0
    assert (b.metrics["selection_rate"].value, b.metrics["sensitivity"].value) == (0.8, 1.0)
    assert b.metrics["false_positive_rate"].value == 0.5


# ------------------------------------------------------------------------- evidence and gaps


def test_small_groups_are_insufficient_evidence_reported_and_left_out() -> None:
    frame = _population(2)
    result = _assess(frame, min_group_size=30, min_group_events=10)
    tiny = next(g for g in result.groups_of("race") if g.group == "Pacific")
    assert tiny.status == "insufficient_evidence"
    assert any("patients (minimum 30)" in reason for reason in tiny.reasons)
    assert any("positive outcomes (minimum 10)" in reason for reason in tiny.reasons)
    assert tiny.metrics["sensitivity"].value == 0.5  # still reported
    assert tiny in result.insufficient_groups
    # the disparity is taken over the other groups only
    evidenced = [
        g.metrics["sensitivity"].value for g in result.groups_of("race") if g.status == "ok"
    ]
    expected = max(evidenced) - min(evidenced)
    assert result.disparity("race", "sensitivity").value == pytest.approx(expected, abs=1e-15)
    assert result.disparity("race", "sensitivity").groups_compared == len(evidenced)


def test_an_attribute_with_one_evidenced_group_has_no_between_group_disparity() -> None:
    frame = _population(3)
    result = _assess(frame, min_group_size=2000)
    found = result.disparity("sex", "equalized_odds")
    assert math.isnan(found.value) and "sufficient evidence" in (found.reason or "")


def test_missing_values_are_their_own_group() -> None:
    frame = _population(4)
    frame.loc[:4, "sex"] = [None, np.nan, "", "  ", pd.NA]
    result = _assess(frame)
    labels = [g.group for g in result.groups_of("sex")]
    assert labels == ["F", "M", MISSING_GROUP]
    missing = result.groups_of("sex")[-1]
    assert missing.n_rows == 5
    race_missing = next(g for g in result.groups_of("race") if g.group == MISSING_GROUP)
    assert race_missing.n_rows == int(
        frame["race"].map(lambda v: v is None or v != v or v == "").sum()
    )


def test_a_group_without_positives_is_undefined_with_a_reason_not_zero() -> None:
    # fairlearn (through scikit-learn) would report TPR 0 here; bedside reports "undefined"
    y = [1, 0, 1, 0, 0, 0, 1, 0]
    p = [0.9, 0.2, 0.4, 0.7, 0.1, 0.8, 0.6, 0.3]
    result = assess_fairness(
        y,
        p,
        {"a": ["x", "x", "x", "x", "z", "z", "w", "w"]},
        threshold=0.5,
        seed=0,
        min_group_size=1,
        min_group_events=0,
        n_boot=20,
    )
    z = next(g for g in result.groups_of("a") if g.group == "z")
    assert math.isnan(z.metrics["sensitivity"].value)
    assert "no positive outcomes" in (z.metrics["sensitivity"].reason or "")
    assert math.isnan(z.metrics["sensitivity"].ci_lower)
    x, w = (next(g for g in result.groups_of("a") if g.group == name) for name in "xw")
    expected = abs(x.metrics["sensitivity"].value - w.metrics["sensitivity"].value)
    assert result.disparity("a", "equal_opportunity").value == pytest.approx(expected)


# -------------------------------------------------------------------------------- intervals


def test_intervals_are_seeded_and_contain_the_estimate_for_large_groups() -> None:
    frame = _population(5, n=3000)
    first = _assess(frame, n_boot=200, seed=11, min_group_size=30, min_group_events=10)
    again = _assess(frame, n_boot=200, seed=11, min_group_size=30, min_group_events=10)
    assert first.to_dict() == again.to_dict()
    for group in first.groups_of("sex"):
        for name in (
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "auroc",
            "brier",
            "calibration_slope",
        ):
            estimate = group.metrics[name]
            assert estimate.ci_lower <= estimate.value <= estimate.ci_upper, (group.group, name)
    eo = first.disparity("race", "equalized_odds")
    assert eo.ci_lower < eo.ci_upper


def test_intervals_ignore_row_order_given_patient_ids() -> None:
    frame = _population(6, n=600)
    kwargs = {"n_boot": 60, "seed": 2, "patient_ids": None}
    shuffled = frame.sample(frac=1.0, random_state=1)
    a = _assess(frame, **{**kwargs, "patient_ids": frame["patient"].to_numpy()})
    b = _assess(shuffled, **{**kwargs, "patient_ids": shuffled["patient"].to_numpy()})
    for ga, gb in zip(a.groups, b.groups, strict=True):
        assert (ga.attribute, ga.group) == (gb.attribute, gb.group)
        for name in GROUP_METRICS:
            x, z = ga.metrics[name], gb.metrics[name]
            assert z.value == pytest.approx(x.value, abs=1e-12, nan_ok=True)
            assert z.ci_lower == pytest.approx(x.ci_lower, abs=1e-9, nan_ok=True)
            assert z.ci_upper == pytest.approx(x.ci_upper, abs=1e-9, nan_ok=True)


def test_to_dict_is_json() -> None:
    result = _assess(_population(7, n=300), n_boot=30, intersections=True)
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    assert "race & sex & age" in data["attributes"]


# ------------------------------------------------------------------------------- properties

_rows = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 10), st.sampled_from(["a", "b", "c", None])),
    min_size=1,
    max_size=40,
)


def _from_rows(rows: list[tuple[int, int, Any]]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    return (
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]) / 10,
        [r[2] for r in rows],
    )


@given(_rows)
def test_one_group_metrics_equal_the_overall_values(rows: list[tuple[int, int, Any]]) -> None:
    y, p, _ = _from_rows(rows)
    result = assess_fairness(y, p, {"a": ["same"] * len(y)}, threshold=0.5, seed=0, n_boot=0)
    (group,) = result.groups_of("a")
    for name in GROUP_METRICS:
        assert group.metrics[name].value == pytest.approx(
            result.overall[name].value, abs=1e-12, nan_ok=True
        ), name


@given(_rows)
def test_differences_are_non_negative_and_ratios_within_zero_one(
    rows: list[tuple[int, int, Any]],
) -> None:
    y, p, groups = _from_rows(rows)
    result = assess_fairness(
        y, p, {"a": groups}, threshold=0.5, seed=0, n_boot=0, min_group_size=1, min_group_events=0
    )
    for item in result.disparities:
        if math.isnan(item.value):
            continue
        if item.kind == "difference":
            assert item.value >= 0, item
        else:
            assert 0 <= item.value <= 1, item


@given(_rows, st.randoms(use_true_random=False))
def test_results_ignore_row_order(rows: list[tuple[int, int, Any]], random: Any) -> None:
    y, p, groups = _from_rows(rows)
    order = list(range(len(y)))
    random.shuffle(order)
    kwargs: dict[str, Any] = {"threshold": 0.5, "seed": 0, "n_boot": 0, "min_group_size": 1}
    a = assess_fairness(y, p, {"a": groups}, **kwargs)
    b = assess_fairness(y[order], p[order], {"a": [groups[k] for k in order]}, **kwargs)
    assert [(g.group, g.n_rows, g.status) for g in a.groups] == [
        (g.group, g.n_rows, g.status) for g in b.groups
    ]
    for ga, gb in zip(a.groups, b.groups, strict=True):
        for name in GROUP_METRICS:
            # iterative fits stop within 1e-10, so their last digits may depend on the order
            tol = 1e-8 if name.startswith("calibration") else 1e-12
            assert gb.metrics[name].value == pytest.approx(
                ga.metrics[name].value, rel=tol, abs=tol, nan_ok=True
            )
    for da, db in zip(a.disparities, b.disparities, strict=True):
        assert db.value == pytest.approx(da.value, abs=1e-12, nan_ok=True)


# ------------------------------------------------------------------------------- bad input


def test_unknown_attribute_and_wrong_length_are_refused_clearly() -> None:
    frame = _population(8, n=50)
    with pytest.raises(InvalidInput, match="unknown: ethnicity"):
        _assess(frame, stratify_by=["race", "ethnicity"])
    with pytest.raises(InvalidInput, match="has 3 values"):
        assess_fairness(
            [0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], {"a": ["x", "y", "z"]}, threshold=0.5, seed=0
        )
    with pytest.raises(InvalidInput, match="two or more"):
        _assess(frame, intersections=[("race",)])
    with pytest.raises(InvalidInput, match="was not assessed"):
        _assess(frame).groups_of("ethnicity")
