"""Judge the validation gates of the pipeline file on an evaluation and a fairness assessment.

Verdicts are ``pass``, ``fail`` or ``insufficient_evidence``; a gate's verdict is ``fail`` if any
of its checks fails, else ``insufficient_evidence`` if any check could not be judged, else
``pass``. Rules:

* **statistical** — each bound is judged on the point estimate (``compare: point_estimate``) or
  on the confidence bound (``compare: confidence_bound``, the default): a ``min_`` bound on the
  lower bound, a ``max_`` bound on the upper bound. A bound whose number is undefined (no
  positives, too few resamples defined) is ``insufficient_evidence``.
* **fairness** — for each attribute (and intersection when ``intersections: true``), the
  between-group difference of the gate's metric (for ``equalized_odds`` the worst case of the TPR
  and FPR differences) over the groups with sufficient evidence must not exceed
  ``max_disparity``; an attribute with fewer than two such groups is ``insufficient_evidence``.
  Groups below ``min_group_size`` patients or ``min_group_events`` events are listed in the
  outcome, not gated on.
* **expression** — evaluated with :mod:`bedside.domain.expressions` on the evaluation's metric
  values (and ``max_disparity``); a name without a number is ``insufficient_evidence``.

``clinical_review`` gates are signatures, judged where the signatures live, not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Final, Literal

from bedside.domain.evaluation import EvaluationResult, json_number, threshold_for_sensitivity
from bedside.domain.expressions import Expression
from bedside.domain.fairness import INTERSECTION_SEPARATOR, FairnessResult
from bedside.domain.spec_gates import FairnessGate, GateKind, StatisticalGate, ValidationStage
from bedside.errors import InvalidInput

__all__ = [
    "VERDICTS",
    "GateCheck",
    "GateOutcome",
    "Verdict",
    "combine_verdicts",
    "gate_values",
    "judge_expression",
    "judge_fairness",
    "judge_statistical",
    "judge_validation",
    "operating_threshold",
]

#: The operating threshold when the gate names neither a threshold nor a minimum sensitivity.
DEFAULT_THRESHOLD: Final = 0.5

Verdict = Literal["pass", "fail", "insufficient_evidence"]
VERDICTS: Final = ("pass", "fail", "insufficient_evidence")
Compared = Literal["point_estimate", "ci_lower", "ci_upper", "expression"]


def combine_verdicts(verdicts: Sequence[Verdict]) -> Verdict:
    """Return ``fail`` if any fails, else ``insufficient_evidence`` if any is, else ``pass``."""
    if "fail" in verdicts:
        return "fail"
    if "insufficient_evidence" in verdicts:
        return "insufficient_evidence"
    return "pass"


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One judged bound: the metric, its value and interval, what was compared, the verdict."""

    metric: str
    key: str  # the pipeline-file key (min_auc_roc, max_disparity) or "expression"
    value: float
    ci_lower: float
    ci_upper: float
    compared: Compared
    judged_value: float  # the number held against the threshold
    direction: Literal["min", "max"] | None
    threshold: float | None
    verdict: Verdict
    reason: str | None = None
    attribute: str | None = None  # fairness checks: the attribute or intersection

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (None for undefined numbers)."""
        return {
            "metric": self.metric,
            "key": self.key,
            "attribute": self.attribute,
            "value": json_number(self.value),
            "ci_lower": json_number(self.ci_lower),
            "ci_upper": json_number(self.ci_upper),
            "compared": self.compared,
            "judged_value": json_number(self.judged_value),
            "direction": self.direction,
            "threshold": self.threshold,
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """The verdict of one gate with every check behind it, ready for the audit ledger."""

    gate: str  # the gate's name in the stage: "statistical", "fairness_2", …
    kind: GateKind
    verdict: Verdict
    checks: tuple[GateCheck, ...]
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Return whether the verdict is ``pass``."""
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "gate": self.gate,
            "kind": self.kind,
            "verdict": self.verdict,
            "summary": self.summary,
            "checks": [check.to_dict() for check in self.checks],
            "details": dict(self.details),
        }


def _summary(name: str, checks: Sequence[GateCheck], verdict: Verdict) -> str:
    counts = {v: sum(c.verdict == v for c in checks) for v in VERDICTS}
    parts = [f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICTS if counts[v]]
    return f"{name}: {verdict.replace('_', ' ')} ({', '.join(parts) or 'no checks'})"


# ------------------------------------------------------------------------------- statistical


def judge_statistical(
    gate: StatisticalGate, evaluation: EvaluationResult, *, name: str = "statistical"
) -> GateOutcome:
    """Judge each bound of a statistical gate on the point estimate or the confidence bound.

    Raises:
        InvalidInput: the evaluation does not match the gate (another confidence level, fewer
            resamples than the gate asks for, or another operating threshold).
    """
    on_bound = gate.compare == "confidence_bound"
    if on_bound and not math.isclose(evaluation.confidence_level, gate.confidence_level):
        raise InvalidInput(
            f"the gate judges {gate.confidence_level:.0%} confidence bounds but the evaluation "
            f"has {evaluation.confidence_level:.0%} intervals; evaluate with "
            f"confidence_level={gate.confidence_level}",
            details={"gate": name},
        )
    if on_bound and evaluation.n_boot < gate.bootstrap_samples:
        raise InvalidInput(
            f"the gate asks for {gate.bootstrap_samples} bootstrap resamples; the evaluation "
            f"used {evaluation.n_boot}. Evaluate with n_boot={gate.bootstrap_samples}",
            details={"gate": name},
        )
    if gate.threshold is not None and not math.isclose(gate.threshold, evaluation.threshold):
        raise InvalidInput(
            f"the gate sets the operating threshold {gate.threshold}; the evaluation used "
            f"{evaluation.threshold}. Evaluate at the gate's threshold",
            details={"gate": name},
        )
    checks = []
    for bound in gate.thresholds:
        estimate = evaluation.metrics[bound.metric]
        compared: Compared = "point_estimate"
        judged = estimate.value
        reason = estimate.reason
        if on_bound:
            compared = "ci_lower" if bound.direction == "min" else "ci_upper"
            judged = estimate.ci_lower if bound.direction == "min" else estimate.ci_upper
            reason = reason or estimate.ci_reason
        verdict: Verdict
        if math.isnan(judged):
            verdict = "insufficient_evidence"
            reason = reason or f"{bound.metric} could not be computed"
        elif (judged >= bound.value) if bound.direction == "min" else (judged <= bound.value):
            verdict, reason = "pass", None
        else:
            verdict = "fail"
            word = "below" if bound.direction == "min" else "above"
            reason = f"{compared.replace('_', ' ')} {judged:.4f} is {word} {bound.value}"
        checks.append(
            GateCheck(
                metric=bound.metric,
                key=bound.key,
                value=estimate.value,
                ci_lower=estimate.ci_lower,
                ci_upper=estimate.ci_upper,
                compared=compared,
                judged_value=judged,
                direction=bound.direction,
                threshold=bound.value,
                verdict=verdict,
                reason=reason,
            )
        )
    verdict = combine_verdicts([c.verdict for c in checks])
    return GateOutcome(
        gate=name,
        kind="statistical",
        verdict=verdict,
        checks=tuple(checks),
        summary=_summary(name, checks, verdict),
        details={
            "compare": gate.compare,
            "confidence_level": evaluation.confidence_level,
            "n_boot": evaluation.n_boot,
            "seed": evaluation.seed,
            "split": gate.split,
            "threshold": evaluation.threshold,
            "n_patients": evaluation.n_patients,
            "n_events": evaluation.n_events,
        },
    )


def operating_threshold(gate: StatisticalGate | None, y_true: Any, y_prob: Any) -> float:
    """Return the operating threshold a statistical gate implies, from the validation split.

    The gate's ``threshold`` when set; else the largest threshold whose sensitivity on these
    rows reaches ``min_sensitivity``; else 0.5. Clinical reviewers confirm it at sign-off.
    """
    if gate is not None and gate.threshold is not None:
        return float(gate.threshold)
    if gate is not None and gate.min_sensitivity is not None:
        found = threshold_for_sensitivity(y_true, y_prob, gate.min_sensitivity)
        if not math.isnan(found):
            return found
    return DEFAULT_THRESHOLD


# ---------------------------------------------------------------------------------- fairness


def _gate_attributes(gate: FairnessGate) -> list[str]:
    attributes = list(gate.stratify_by)
    if gate.intersections:
        attributes += [
            INTERSECTION_SEPARATOR.join(combo)
            for size in range(2, len(gate.stratify_by) + 1)
            for combo in combinations(gate.stratify_by, size)
        ]
    return attributes


def judge_fairness(
    gate: FairnessGate, fairness: FairnessResult, *, name: str = "fairness"
) -> GateOutcome:
    """Judge the between-group difference of the gate's metric for every attribute.

    Raises:
        InvalidInput: the assessment used other evidence bounds than the gate, or lacks one of
            the gate's attributes (or intersections).
    """
    if (fairness.min_group_size, fairness.min_group_events) != (
        gate.min_group_size,
        gate.min_group_events,
    ):
        raise InvalidInput(
            f"the gate counts groups with at least {gate.min_group_size} patients and "
            f"{gate.min_group_events} events; the assessment used {fairness.min_group_size} "
            f"and {fairness.min_group_events}. Assess fairness with the gate's bounds",
            details={"gate": name},
        )
    attributes = _gate_attributes(gate)
    missing = [a for a in attributes if a not in fairness.attributes]
    if missing:
        raise InvalidInput(
            f"the fairness assessment has no results for {', '.join(missing)}; assess these "
            "attributes (and intersections) first",
            details={"gate": name, "missing": missing},
        )
    checks = []
    for attribute in attributes:
        found = fairness.disparity(attribute, gate.metric)
        verdict: Verdict
        if math.isnan(found.value):
            verdict, reason = "insufficient_evidence", found.reason
        elif found.value <= gate.max_disparity:
            verdict, reason = "pass", None
        else:
            verdict = "fail"
            reason = f"difference {found.value:.4f} exceeds {gate.max_disparity}"
        checks.append(
            GateCheck(
                metric=gate.metric,
                key="max_disparity",
                attribute=attribute,
                value=found.value,
                ci_lower=found.ci_lower,
                ci_upper=found.ci_upper,
                compared="point_estimate",
                judged_value=found.value,
                direction="max",
                threshold=gate.max_disparity,
                verdict=verdict,
                reason=reason,
            )
        )
    insufficient = [
        {
            "attribute": g.attribute,
            "group": g.group,
            "n_patients": g.n_patients,
            "n_events": g.n_events,
            "reasons": list(g.reasons),
        }
        for g in fairness.insufficient_groups
        if g.attribute in attributes
    ]
    verdict = combine_verdicts([c.verdict for c in checks])
    return GateOutcome(
        gate=name,
        kind="fairness",
        verdict=verdict,
        checks=tuple(checks),
        summary=_summary(name, checks, verdict)
        + (f"; {len(insufficient)} group(s) with insufficient evidence" if insufficient else ""),
        details={
            "metric": gate.metric,
            "disparity": "difference between groups (max - min)",
            "min_group_size": gate.min_group_size,
            "min_group_events": gate.min_group_events,
            "insufficient_groups": insufficient,
        },
    )


# -------------------------------------------------------------------------------- expression


def gate_values(
    evaluation: EvaluationResult,
    fairness: Sequence[tuple[FairnessGate, FairnessResult]] = (),
) -> dict[str, float]:
    """Return the numbers expression gates may name, ``max_disparity`` included when known.

    ``max_disparity`` is the largest judged difference over the fairness gates (NaN when no
    fairness gate has one).
    """
    values = evaluation.metric_values()
    disparities = [
        fairness_result.disparity(attribute, gate.metric).value
        for gate, fairness_result in fairness
        for attribute in _gate_attributes(gate)
    ]
    defined = [d for d in disparities if not math.isnan(d)]
    values["max_disparity"] = max(defined) if defined else math.nan
    return values


def judge_expression(
    expression: Expression, values: Mapping[str, float], *, name: str = "expression"
) -> GateOutcome:
    """Evaluate an expression gate; a name without a defined number is insufficient evidence."""
    used = {key: values.get(key, math.nan) for key in sorted(expression.names)}
    undefined = [key for key, value in used.items() if math.isnan(value)]
    verdict: Verdict
    if undefined:
        verdict = "insufficient_evidence"
        reason: str | None = "no defined value for " + ", ".join(undefined)
    else:
        verdict = "pass" if expression.evaluate(used) else "fail"
        reason = None if verdict == "pass" else f"'{expression}' is false"
    check = GateCheck(
        metric=str(expression),
        key="expression",
        value=math.nan,
        ci_lower=math.nan,
        ci_upper=math.nan,
        compared="expression",
        judged_value=math.nan,
        direction=None,
        threshold=None,
        verdict=verdict,
        reason=reason,
    )
    return GateOutcome(
        gate=name,
        kind="expression",
        verdict=verdict,
        checks=(check,),
        summary=_summary(name, [check], verdict),
        details={
            "expression": str(expression),
            "values": {k: json_number(v) for k, v in used.items()},
        },
    )


# --------------------------------------------------------------------------------- the stage


def judge_validation(
    stage: ValidationStage,
    *,
    evaluation: EvaluationResult,
    fairness: FairnessResult | Mapping[str, FairnessResult] | None = None,
) -> tuple[GateOutcome, ...]:
    """Judge every statistical, fairness and expression gate of the stage, in file order.

    Args:
        stage: the validation stage of the pipeline file.
        evaluation: the evaluation on the statistical gate's split.
        fairness: one assessment covering every fairness gate, or one per gate name
            (``fairness``, ``fairness_2`` …, see ``ValidationStage.gate_names``).

    Raises:
        InvalidInput: a fairness gate has no assessment, or an input does not match its gate.
    """
    assessments: dict[str, tuple[FairnessGate, FairnessResult]] = {}
    for gate, name in zip(stage.gates, stage.gate_names, strict=True):
        if gate.fairness is not None:
            result = fairness.get(name) if isinstance(fairness, Mapping) else fairness
            if result is None:
                raise InvalidInput(
                    f"the {name} gate needs a fairness assessment; none was given",
                    details={"gate": name},
                )
            assessments[name] = (gate.fairness, result)
    values = gate_values(evaluation, list(assessments.values()))
    outcomes = []
    for gate, name in zip(stage.gates, stage.gate_names, strict=True):
        if gate.statistical is not None:
            outcomes.append(judge_statistical(gate.statistical, evaluation, name=name))
        elif gate.fairness is not None:
            outcomes.append(judge_fairness(*assessments[name], name=name))
        elif gate.expression is not None:
            outcomes.append(judge_expression(gate.expression, values, name=name))
    return tuple(outcomes)
