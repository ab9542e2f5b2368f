"""Judging validation gates: point estimate vs confidence bound, fairness evidence, expressions."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from bedside.domain.evaluation import EvaluationResult, evaluate
from bedside.domain.expressions import EVALUATION_METRICS, parse_expression
from bedside.domain.fairness import FairnessResult, assess_fairness
from bedside.domain.gates import (
    combine_verdicts,
    gate_values,
    judge_expression,
    judge_fairness,
    judge_statistical,
    judge_validation,
    operating_threshold,
)
from bedside.domain.spec_gates import FairnessGate, StatisticalGate, ValidationStage
from bedside.errors import InvalidInput


def _cohort(seed: int = 0, n: int = 1500) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n)
    y = (rng.random(n) < 0.25).astype(int)
    lift = np.where(group == "B", 0.15, 0.0)  # B's positives score higher: a TPR gap
    p = np.clip(rng.beta(2, 5, n) + (0.2 + lift) * y, 0, 1)
    # a tiny third group with few patients and events
    group[:12] = "C"
    return {"y": y, "p": p, "group": group, "sex": rng.choice(["F", "M"], n)}


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    return _cohort()


@pytest.fixture(scope="module")
def evaluation(cohort: dict[str, Any]) -> EvaluationResult:
    return evaluate(cohort["y"], cohort["p"], threshold=0.4, seed=1, n_boot=1000)


def _gate(**bounds: Any) -> StatisticalGate:
    return StatisticalGate.model_validate(bounds)


# -------------------------------------------------------------------------------- statistical


def test_a_bound_between_the_lower_bound_and_the_estimate_passes_only_on_the_point(
    evaluation: EvaluationResult,
) -> None:
    auroc = evaluation.metrics["auroc"]
    assert auroc.ci_lower < auroc.value
    bound = round((auroc.ci_lower + auroc.value) / 2, 6)
    point = judge_statistical(_gate(min_auc_roc=bound, compare="point_estimate"), evaluation)
    on_ci = judge_statistical(_gate(min_auc_roc=bound), evaluation)  # confidence_bound default
    assert point.verdict == "pass" and point.checks[0].compared == "point_estimate"
    assert on_ci.verdict == "fail" and on_ci.checks[0].compared == "ci_lower"
    check = on_ci.checks[0]
    assert check.judged_value == auroc.ci_lower and check.threshold == bound
    assert (check.value, check.ci_lower, check.ci_upper) == (
        auroc.value,
        auroc.ci_lower,
        auroc.ci_upper,
    )
    assert "below" in (check.reason or "")


def test_a_max_bound_is_judged_on_the_upper_bound(evaluation: EvaluationResult) -> None:
    fpr = evaluation.metrics["false_positive_rate"]
    bound = round((fpr.value + fpr.ci_upper) / 2, 6)
    on_ci = judge_statistical(_gate(max_false_positive_rate=bound), evaluation)
    point = judge_statistical(
        _gate(max_false_positive_rate=bound, compare="point_estimate"), evaluation
    )
    assert on_ci.checks[0].compared == "ci_upper" and on_ci.verdict == "fail"
    assert point.verdict == "pass"


def test_gate_verdict_is_fail_over_insufficient_over_pass(evaluation: EvaluationResult) -> None:
    outcome = judge_statistical(
        _gate(min_auc_roc=0.5, min_sensitivity=0.99, max_brier=0.9), evaluation
    )
    assert [c.verdict for c in outcome.checks] == ["pass", "fail", "pass"]
    assert outcome.verdict == "fail" and not outcome.passed
    assert combine_verdicts(["pass", "insufficient_evidence"]) == "insufficient_evidence"
    assert combine_verdicts(["insufficient_evidence", "fail"]) == "fail"
    assert combine_verdicts(["pass", "pass"]) == "pass"


def test_an_undefined_metric_is_insufficient_evidence_not_a_pass() -> None:
    result = evaluate([0] * 40, np.linspace(0.05, 0.95, 40), threshold=0.5, seed=0, n_boot=1000)
    outcome = judge_statistical(_gate(min_sensitivity=0.8, max_false_positive_rate=0.9), result)
    sensitivity, fpr = outcome.checks
    assert sensitivity.verdict == "insufficient_evidence"
    assert "positive" in (sensitivity.reason or "")
    assert fpr.verdict == "pass"
    assert outcome.verdict == "insufficient_evidence"


def test_a_mismatched_evaluation_is_refused(evaluation: EvaluationResult) -> None:
    with pytest.raises(InvalidInput, match="confidence_level=0.9"):
        judge_statistical(_gate(min_auc_roc=0.7, confidence_level=0.9), evaluation)
    with pytest.raises(InvalidInput, match="n_boot=2000"):
        judge_statistical(_gate(min_auc_roc=0.7, bootstrap_samples=2000), evaluation)
    with pytest.raises(InvalidInput, match="threshold"):
        judge_statistical(_gate(min_auc_roc=0.7, threshold=0.6), evaluation)
    # judged on the point estimate, the interval settings do not matter
    outcome = judge_statistical(
        _gate(min_auc_roc=0.7, confidence_level=0.9, compare="point_estimate"), evaluation
    )
    assert outcome.verdict == "pass"


# ---------------------------------------------------------------------------------- fairness


def _fairness(cohort: dict[str, Any], **kwargs: Any) -> FairnessResult:
    options: dict[str, Any] = {"threshold": 0.4, "seed": 2, "n_boot": 200, **kwargs}
    return assess_fairness(
        cohort["y"], cohort["p"], {"group": cohort["group"], "sex": cohort["sex"]}, **options
    )


def test_fairness_gate_fails_on_a_large_gap_and_lists_the_small_group(
    cohort: dict[str, Any],
) -> None:
    gate = FairnessGate.model_validate(
        {"max_disparity": 0.05, "stratify_by": ["group"], "metric": "sensitivity"}
    )
    result = _fairness(cohort)
    outcome = judge_fairness(gate, result)
    (check,) = outcome.checks
    a, b, c = result.groups_of("group")
    assert c.status == "insufficient_evidence"
    expected = abs(a.metrics["sensitivity"].value - b.metrics["sensitivity"].value)
    assert check.value == pytest.approx(expected)  # the small group C is not gated on
    assert check.verdict == "fail" and outcome.verdict == "fail"
    assert check.ci_lower <= check.value <= check.ci_upper
    listed = outcome.details["insufficient_groups"]
    assert [(g["attribute"], g["group"]) for g in listed] == [("group", "C")]
    assert "insufficient evidence" in outcome.summary


def test_fairness_gate_passes_with_a_loose_bound_and_equalized_odds(
    cohort: dict[str, Any],
) -> None:
    gate = FairnessGate.model_validate({"max_disparity": 0.9, "stratify_by": ["group", "sex"]})
    outcome = judge_fairness(gate, _fairness(cohort))
    assert outcome.verdict == "pass"
    assert [c.attribute for c in outcome.checks] == ["group", "sex"]
    assert all(c.metric == "equalized_odds" for c in outcome.checks)


def test_fairness_gate_with_one_evidenced_group_is_insufficient(
    cohort: dict[str, Any],
) -> None:
    gate = FairnessGate.model_validate(
        {"max_disparity": 0.5, "stratify_by": ["group"], "min_group_size": 900}
    )
    outcome = judge_fairness(gate, _fairness(cohort, min_group_size=900))
    assert outcome.verdict == "insufficient_evidence"
    assert "sufficient evidence" in (outcome.checks[0].reason or "")


def test_fairness_gate_needs_an_assessment_that_matches_it(cohort: dict[str, Any]) -> None:
    result = _fairness(cohort, n_boot=0)
    other_bounds = FairnessGate.model_validate(
        {"max_disparity": 0.1, "stratify_by": ["group"], "min_group_size": 50}
    )
    with pytest.raises(InvalidInput, match="gate's bounds"):
        judge_fairness(other_bounds, result)
    intersections = FairnessGate.model_validate(
        {"max_disparity": 0.1, "stratify_by": ["group", "sex"], "intersections": True}
    )
    with pytest.raises(InvalidInput, match="group & sex"):
        judge_fairness(intersections, result)
    both = _fairness(cohort, n_boot=0, intersections=True)
    outcome = judge_fairness(intersections, both)
    assert [c.attribute for c in outcome.checks] == ["group", "sex", "group & sex"]


# ------------------------------------------------------------------------------- expressions


def test_expression_gate_pass_fail_and_insufficient(evaluation: EvaluationResult) -> None:
    values = evaluation.metric_values()
    passing = parse_expression(
        "auroc_ci_lower >= 0.6 and brier <= 0.5", allowed_names=EVALUATION_METRICS
    )
    failing = parse_expression("auroc >= 0.999", allowed_names=EVALUATION_METRICS)
    unknown = parse_expression("max_disparity < 0.1", allowed_names=EVALUATION_METRICS)
    assert judge_expression(passing, values).verdict == "pass"
    outcome = judge_expression(failing, values)
    assert outcome.verdict == "fail" and "is false" in (outcome.checks[0].reason or "")
    outcome = judge_expression(unknown, values)
    assert outcome.verdict == "insufficient_evidence"
    assert "max_disparity" in (outcome.checks[0].reason or "")


def test_gate_values_carry_the_largest_judged_disparity(
    cohort: dict[str, Any], evaluation: EvaluationResult
) -> None:
    gate = FairnessGate.model_validate({"max_disparity": 0.5, "stratify_by": ["group", "sex"]})
    result = _fairness(cohort, n_boot=0)
    values = gate_values(evaluation, [(gate, result)])
    expected = max(result.disparity(a, "equalized_odds").value for a in ("group", "sex"))
    assert values["max_disparity"] == expected
    assert math.isnan(gate_values(evaluation)["max_disparity"])


# --------------------------------------------------------------------------------- the stage


def test_judge_validation_judges_every_gate_in_file_order(
    cohort: dict[str, Any], evaluation: EvaluationResult
) -> None:
    stage = ValidationStage.model_validate(
        {
            "name": "validation",
            "gates": [
                {"expression": "auroc_ci_lower >= 0.6 and max_disparity <= 0.9"},
                {"statistical": {"min_auc_roc": 0.6, "max_false_positive_rate": 0.9}},
                {"fairness": {"max_disparity": 0.9, "stratify_by": ["group"]}},
                {"fairness": {"max_disparity": 0.01, "stratify_by": ["sex"]}},
                {"clinical_review": {"required_approvers": 1, "roles": ["CMIO"]}},
            ],
        }
    )
    result = _fairness(cohort)
    outcomes = judge_validation(stage, evaluation=evaluation, fairness=result)
    assert [o.gate for o in outcomes] == ["expression", "statistical", "fairness_1", "fairness_2"]
    assert [o.verdict for o in outcomes][:3] == ["pass", "pass", "pass"]
    assert outcomes[3].verdict == "fail"
    text = json.dumps([o.to_dict() for o in outcomes], allow_nan=False)
    assert "insufficient_groups" in text
    by_name = judge_validation(
        stage, evaluation=evaluation, fairness={"fairness_1": result, "fairness_2": result}
    )
    assert [o.verdict for o in by_name] == [o.verdict for o in outcomes]
    with pytest.raises(InvalidInput, match="fairness_2 gate needs a fairness assessment"):
        judge_validation(stage, evaluation=evaluation, fairness={"fairness_1": result})


def test_operating_threshold_follows_the_gate(cohort: dict[str, Any]) -> None:
    y, p = cohort["y"], cohort["p"]
    assert operating_threshold(_gate(min_auc_roc=0.7, threshold=0.42), y, p) == 0.42
    chosen = operating_threshold(_gate(min_sensitivity=0.9), y, p)
    counts = evaluate(y, p, threshold=chosen, seed=0, n_boot=0).metrics["sensitivity"]
    assert counts.value >= 0.9
    above = np.sort(p[y == 1])
    above = above[above > chosen]
    assert evaluate(y, p, threshold=above[0], seed=0, n_boot=0).metrics["sensitivity"].value < 0.9
    assert operating_threshold(_gate(min_auc_roc=0.7), y, p) == 0.5
    assert operating_threshold(None, y, p) == 0.5
