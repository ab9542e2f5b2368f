"""The shadow comparison on hand-computable requests: agreement, alerts, performance, verdict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bedside.domain.shadow import ShadowCriteria, cohen_kappa, compare_shadow
from bedside.errors import InvalidInput

DAY = 86400.0
NAN = math.nan

# Ten requests over two days. Production alerts on 0, 1, 4; the shadow (threshold 0.5) on 0, 4, 5.
PRODUCTION_P = [0.9, 0.6, 0.1, 0.2, 0.7, 0.3, 0.1, 0.2, 0.1, 0.4]
SHADOW_P = [0.8, 0.4, 0.2, 0.2, 0.9, 0.6, 0.1, 0.1, 0.3, 0.2]
RECEIVED = [0.5 * DAY] * 5 + [1.5 * DAY] * 5


def _compare(**overrides: Any) -> Any:
    n = len(overrides.get("shadow_probability", SHADOW_P))
    arguments: dict[str, Any] = {
        "shadow_probability": SHADOW_P,
        "production_probability": PRODUCTION_P,
        "production_decision": [float(p >= 0.5) for p in PRODUCTION_P],
        "labels": [NAN] * n,
        "received": RECEIVED,
        "shadow_threshold": 0.5,
        "production_threshold": 0.5,
        "period_start": 0.0,
        "period_end": 2 * DAY,
        "n_boot": 200,
        "criteria": ShadowCriteria(min_scored=5),
    }
    arguments.update(overrides)
    return compare_shadow(**arguments)


def test_shadow_agreement_table_kappa_and_differences_by_hand() -> None:
    agreement = _compare().agreement
    assert agreement["applicable"] is True and agreement["n"] == 10
    assert agreement["table"] == {
        "both_alert": 2,  # 0 and 4
        "production_only": 1,  # 1
        "shadow_only": 1,  # 5
        "neither": 6,
    }
    assert agreement["identical_decisions"] == 8 and agreement["identical_share"] == 0.8
    # p_o = 0.8; each alerts on 3 of 10, so p_e = 0.3·0.3 + 0.7·0.7 = 0.58; κ = 0.22 / 0.42.
    assert agreement["cohen_kappa"] == pytest.approx(0.22 / 0.42, abs=1e-6)
    # |differences|: .1 .2 .1 0 .2 .3 0 .1 .2 .2 → 1.4 / 10
    assert agreement["mean_absolute_difference"] == pytest.approx(0.14, abs=1e-6)
    assert sum(map(sum, agreement["joint_histogram"])) == 10
    assert agreement["joint_histogram"][9][8] == 1  # production 0.9, shadow 0.8


def test_shadow_correlations_of_a_shifted_and_a_reversed_score() -> None:
    base = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.35]
    shifted = _compare(production_probability=base, shadow_probability=[p * 0.5 for p in base])
    assert shifted.agreement["pearson"] == pytest.approx(1.0)
    assert shifted.agreement["spearman"] == pytest.approx(1.0)
    reversed_ = _compare(production_probability=base, shadow_probability=[1 - p for p in base])
    assert reversed_.agreement["pearson"] == pytest.approx(-1.0)
    assert reversed_.agreement["spearman"] == pytest.approx(-1.0)


def test_cohen_kappa_is_undefined_when_every_decision_is_the_same() -> None:
    same = np.zeros(5, dtype=bool)
    kappa, reason = cohen_kappa(same, same)
    assert math.isnan(kappa) and reason and "same decision" in reason
    perfect, none = cohen_kappa(np.array([True, False]), np.array([True, False]))
    assert perfect == 1.0 and none is None


def test_shadow_alerts_per_100_requests_and_per_day() -> None:
    alerts = _compare().alerts
    assert alerts["n_days"] == 2
    assert alerts["shadow"] == {
        "requests": 10,
        "alerts": 3,
        "per_100_requests": 30.0,
        "per_day": 1.5,
        "daily": [2, 1],  # 0 and 4 on day one, 5 on day two
    }
    assert alerts["production"]["alerts"] == 3 and alerts["production"]["daily"] == [3, 0]
    assert alerts["shadow_threshold"] == 0.5


def test_shadow_distributions_hold_histograms_and_quantiles() -> None:
    distributions = _compare().distributions
    shadow = distributions["shadow"]
    assert shadow["n"] == 10 and sum(shadow["histogram"]) == 10
    assert len(shadow["histogram"]) == distributions["bins"] == 20
    assert shadow["quantiles"]["0.5"] == pytest.approx(0.25)  # (0.2 + 0.3) / 2
    assert shadow["mean"] == pytest.approx(np.mean(SHADOW_P))
    assert distributions["production"]["n"] == 10


def _labelled(n: int, *, shadow_noise: float, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    production = np.clip(0.25 + 0.4 * y + rng.normal(0, 0.15, n), 0, 1)
    shadow = np.clip(0.25 + 0.4 * y * (1 - shadow_noise) + rng.normal(0, 0.15, n), 0, 1)
    if shadow_noise == 1:
        shadow = rng.uniform(0, 1, n)
    return {
        "shadow_probability": shadow,
        "production_probability": production,
        "production_decision": (production >= 0.5).astype(float),
        "labels": y,
        "received": np.linspace(0, 2 * DAY - 1, n),
    }


def test_shadow_performance_of_both_on_the_same_cases_with_ordered_intervals() -> None:
    result = _compare(**_labelled(200, shadow_noise=0.0), criteria=ShadowCriteria())
    performance = result.performance
    assert performance["n_labelled"] == 200
    for side in ("shadow", "production"):
        assert performance[side]["n"] == 200
        for name, estimate in performance[side]["metrics"].items():
            assert estimate["ci_lower"] is not None, name
            assert estimate["ci_lower"] <= estimate["value"] <= estimate["ci_upper"], name
    delong = performance["delong"]
    assert delong["difference"] == pytest.approx(
        performance["shadow"]["metrics"]["auroc"]["value"]
        - performance["production"]["metrics"]["auroc"]["value"]
    )
    assert 0 <= delong["p_value"] <= 1
    assert result.passed and result.not_evaluated == ()
    assert [o.status for o in result.outcomes] == ["pass", "pass", "pass"]


def test_a_shadow_worse_than_production_fails_the_auroc_criterion() -> None:
    result = _compare(**_labelled(200, shadow_noise=1.0), criteria=ShadowCriteria())
    auroc = next(o for o in result.outcomes if o.name == "auroc_non_inferior")
    assert auroc.status == "fail" and "lower bound" in auroc.observed
    assert not result.passed


def test_performance_is_not_evaluated_without_enough_outcomes() -> None:
    labels = [1.0, 0.0, 1.0] + [NAN] * 7
    result = _compare(labels=labels)
    assert result.performance["n_labelled"] == 3
    assert result.performance["shadow"]["n"] == 3  # the few labelled cases are still shown
    auroc = next(o for o in result.outcomes if o.name == "auroc_non_inferior")
    assert auroc.status == "not evaluated" and "only 3 labelled" in (auroc.reason or "")
    assert result.passed and result.not_evaluated == ("auroc_non_inferior",)
    nothing = _compare()
    assert nothing.performance["shadow"] is None
    assert "no outcome" in nothing.performance["reason"]


def test_shadow_alone_gives_only_shadow_figures() -> None:
    data = _labelled(60, shadow_noise=0.0)
    data["production_probability"] = [NAN] * 60
    data["production_decision"] = [NAN] * 60
    result = _compare(**data, production_threshold=None)
    assert result.agreement["applicable"] is False
    assert "not applicable" in result.agreement["reason"]
    assert result.counts["shadow_alone"] == 60 and result.counts["with_production"] == 0
    assert result.distributions["production"] is None
    assert result.alerts["production"] is None and result.alerts["shadow"]["requests"] == 60
    assert result.performance["production"] is None and result.performance["delong"] is None
    assert result.performance["shadow"]["n"] == 60
    auroc = next(o for o in result.outcomes if o.name == "auroc_non_inferior")
    assert auroc.status == "not evaluated" and "no production" in (auroc.reason or "")


def test_errors_are_counted_and_fail_the_error_rate_criterion() -> None:
    within = _compare(errors=0, skipped=4, missing=1)
    assert within.counts["routed_to_shadow"] == 15 and within.counts["skipped"] == 4
    assert within.passed
    over = _compare(errors=1, error_kinds={"ValueError": 1})  # 1 in 11 attempts > 1 %
    rate = next(o for o in over.outcomes if o.name == "max_error_rate")
    assert rate.status == "fail" and "1 errors in 11 attempts" in rate.observed
    assert over.counts["error_kinds"] == {"ValueError": 1}
    assert not over.passed


def test_too_few_scored_requests_fail() -> None:
    result = _compare(criteria=ShadowCriteria())  # 10 scored, 100 needed
    assert result.outcomes[0].name == "min_scored" and result.outcomes[0].status == "fail"
    assert not result.passed


def test_the_report_dict_carries_the_verdict_and_criteria() -> None:
    report = _compare().to_dict()
    assert report["verdict"]["passed"] is True
    assert report["verdict"]["criteria"]["min_scored"] == 5
    assert {o["name"] for o in report["verdict"]["outcomes"]} == {
        "min_scored",
        "max_error_rate",
        "auroc_non_inferior",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labels": [2.0] * 10}, "labels must be 0, 1"),
        ({"shadow_probability": [1.5] * 10}, "between 0 and 1"),
        ({"received": [0.0] * 9}, "lengths differ"),
        ({"shadow_threshold": 2.0}, "threshold"),
        ({"period_end": -1.0}, "ends before it starts"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _compare(**overrides)


def test_criteria_are_validated() -> None:
    with pytest.raises(InvalidInput, match="min_scored"):
        ShadowCriteria(min_scored=-1)
    with pytest.raises(InvalidInput, match="max_error_rate"):
        ShadowCriteria(max_error_rate=2.0)


def test_a_period_without_traffic_fails_for_too_few_requests_and_evaluates_nothing_else() -> None:
    result = _compare(
        shadow_probability=[],
        production_probability=[],
        production_decision=[],
        labels=[],
        received=[],
        criteria=ShadowCriteria(),
    )
    assert result.agreement == {
        "applicable": False,
        "reason": "not applicable: the shadow has scored no request yet",
    }
    assert result.distributions["shadow"] is None and result.alerts["shadow"] is None
    assert [(o.name, o.status) for o in result.outcomes] == [
        ("min_scored", "fail"),
        ("max_error_rate", "not evaluated"),
        ("auroc_non_inferior", "not evaluated"),
    ]
