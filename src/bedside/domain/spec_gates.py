"""The ``validation`` stage of the pipeline file: statistical, fairness, expression, review."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from bedside.domain.spec_types import (
    EvaluationExpression,
    Identifier,
    Probability,
    RoleName,
    SpecModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    custom_error,
    duplicate_problems,
    merge_problems,
)

# Built-in role kinds (DESIGN §6). Clinical sign-off is by clinical-reviewer roles the pipeline
# names, so a built-in role in `clinical_review.roles` could never sign.
_BUILT_IN_ROLES: Final = frozenset(
    {"data_scientist", "ml_engineer", "privacy_officer", "auditor", "admin"}
)


@dataclass(frozen=True, slots=True)
class GateThreshold:
    """One bound of a statistical gate: ``metric`` must be ``direction`` ``value``."""

    key: str  # the pipeline-file key, e.g. min_auc_roc
    metric: str  # the metric name, e.g. auroc
    direction: Literal["min", "max"]
    value: float


_THRESHOLD_KEYS: Final[Mapping[str, tuple[str, Literal["min", "max"]]]] = {
    "min_auc_roc": ("auroc", "min"),
    "min_auprc": ("auprc", "min"),
    "min_sensitivity": ("sensitivity", "min"),
    "min_specificity": ("specificity", "min"),
    "min_ppv": ("ppv", "min"),
    "min_npv": ("npv", "min"),
    "max_false_positive_rate": ("false_positive_rate", "max"),
    "max_brier": ("brier", "max"),
    "max_ece": ("ece", "max"),
}


class StatisticalGate(SpecModel):
    """Performance bounds the model must meet on the evaluation split.

    With ``compare: confidence_bound`` a ``min_`` bound is tested against the lower confidence
    bound and a ``max_`` bound against the upper one; with ``point_estimate`` against the value.
    """

    min_auc_roc: Probability | None = None
    min_auprc: Probability | None = None
    min_sensitivity: Probability | None = None
    min_specificity: Probability | None = None
    min_ppv: Probability | None = None
    min_npv: Probability | None = None
    max_false_positive_rate: Probability | None = None
    max_brier: Probability | None = None
    max_ece: Probability | None = None
    compare: Literal["confidence_bound", "point_estimate"] = "confidence_bound"
    # The spelling of the same choice: judge: ci_bound | point_estimate.
    judge: Literal["ci_bound", "point_estimate"] | None = None
    confidence_level: StrictFloat = Field(default=0.95, gt=0.5, lt=1)
    split: Literal["test", "validation"] = "test"
    threshold: Probability | None = None
    bootstrap_samples: StrictInt = Field(default=1000, ge=100, le=100_000)

    @model_validator(mode="after")
    def _judge_sets_compare(self) -> StatisticalGate:
        if self.judge is None:
            return self
        wanted = "confidence_bound" if self.judge == "ci_bound" else "point_estimate"
        if "compare" in self.model_fields_set and self.compare != wanted:
            raise custom_error(
                "judge_and_compare",
                "judge and compare say different things",
                expected="one of them, or both agreeing (judge: ci_bound = compare: "
                "confidence_bound)",
                fix="remove compare (or judge)",
            )
        object.__setattr__(self, "compare", wanted)
        return self

    @model_validator(mode="after")
    def _has_a_bound(self) -> StatisticalGate:
        if not self.thresholds:
            raise custom_error(
                "no_thresholds",
                "a statistical gate needs at least one bound",
                expected="at least one of " + ", ".join(_THRESHOLD_KEYS),
                fix="add e.g. min_auc_roc: 0.85",
            )
        return self

    @property
    def thresholds(self) -> tuple[GateThreshold, ...]:
        """Return the bounds that are set, in the order of the keys above."""
        found = []
        for key, (metric, direction) in _THRESHOLD_KEYS.items():
            value = getattr(self, key)
            if value is not None:
                found.append(GateThreshold(key, metric, direction, value))
        return tuple(found)


FairnessMetric = Literal[
    "equalized_odds",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "false_positive_rate",
    "auroc",
    "selection_rate",
]


class FairnessGate(SpecModel):
    """The largest between-group difference of ``metric`` must not exceed ``max_disparity``."""

    max_disparity: Probability = Field(examples=[0.05])
    stratify_by: Annotated[tuple[Identifier, ...], Field(min_length=1)] = Field(
        examples=[["race", "sex", "age_group"]]
    )
    metric: FairnessMetric = "equalized_odds"
    min_group_size: StrictInt = Field(default=30, ge=1)
    min_group_events: StrictInt = Field(default=10, ge=0)
    intersections: StrictBool = False

    @field_validator("stratify_by", mode="wrap")
    @classmethod
    def _unique_attributes(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="attribute")
        return merge_problems(value, handler, problems, title="FairnessGate")


class ClinicalReviewGate(SpecModel):
    """Sign-off by ``required_approvers`` distinct people holding the listed roles.

    When ``required_approvers`` is at least the number of roles, every listed role must be among
    the approvers; otherwise approvers may hold any of the roles.
    """

    required_approvers: StrictInt = Field(ge=1, le=20, examples=[2])
    roles: Annotated[tuple[RoleName, ...], Field(min_length=1)] = Field(
        examples=[["CMIO", "clinical_informaticist"]]
    )

    @field_validator("roles", mode="wrap")
    @classmethod
    def _clinical_roles(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="role")
        if isinstance(value, list | tuple):
            for index, role in enumerate(value):
                if isinstance(role, str) and role in _BUILT_IN_ROLES:
                    problems.append(
                        InitErrorDetails(
                            type=custom_error(
                                "reserved_role",
                                f"{role!r} is a built-in role, not a clinical reviewer role",
                                expected="clinical reviewer role names, such as CMIO",
                                fix="name the clinical roles that sign, e.g. CMIO",
                            ),
                            loc=(index,),
                            input=role,
                        )
                    )
        return merge_problems(value, handler, problems, title="ClinicalReviewGate")


GateKind = Literal["statistical", "fairness", "clinical_review", "expression"]
_GATE_KINDS: Final = ("statistical", "fairness", "clinical_review", "expression")


class Gate(SpecModel):
    """One validation gate, written as a one-key mapping: ``- statistical: {...}``."""

    statistical: StatisticalGate | None = None
    fairness: FairnessGate | None = None
    clinical_review: ClinicalReviewGate | None = None
    expression: EvaluationExpression | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            if len(data) > 1:
                keys = ", ".join(str(key) for key in data)
                raise custom_error(
                    "gate_shape",
                    f"a gate has exactly one kind; this one has {len(data)} keys ({keys})",
                    expected="a one-key mapping such as statistical: {...}",
                    fix="split it into one list item per gate, each starting with '- '",
                )
            if not data:
                raise custom_error(
                    "gate_shape",
                    "the gate is empty",
                    expected="a one-key mapping: " + ", ".join(_GATE_KINDS),
                )
        elif not isinstance(data, Gate):
            raise custom_error(
                "gate_shape",
                "a gate is a one-key mapping",
                expected="a one-key mapping such as statistical: {min_auc_roc: 0.85}",
            )
        return data

    @model_validator(mode="after")
    def _kind_set(self) -> Gate:
        if sum(getattr(self, kind) is not None for kind in _GATE_KINDS) != 1:
            raise custom_error(
                "gate_shape",
                "the gate's settings are empty",
                expected="settings for the gate, such as statistical: {min_auc_roc: 0.85}",
            )
        return self

    @model_serializer(mode="wrap")
    def _only_its_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written back the way it is read: a one-key mapping.
        data = handler(self)
        return {self.kind: data[self.kind]}

    @property
    def kind(self) -> GateKind:
        """Return which kind of gate this is."""
        for kind in _GATE_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("a validated gate has a kind")  # pragma: no cover


def _gate_kind(item: object) -> str | None:
    if isinstance(item, Gate):
        return item.kind
    if isinstance(item, Mapping) and len(item) == 1:
        key = next(iter(item))
        return key if key in _GATE_KINDS else None
    return None


class ValidationStage(SpecModel):
    """Gates a model version must pass before it may serve: exactly one clinical review."""

    name: Literal["validation"]
    gates: Annotated[tuple[Gate, ...], Field(min_length=1)] = Field(
        examples=[["clinical_review: {required_approvers: 2, roles: [CMIO]}"]]
    )

    @field_validator("gates", mode="wrap")
    @classmethod
    def _gate_counts(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems: list[InitErrorDetails] = []
        if isinstance(value, list | tuple) and value:
            kinds = [_gate_kind(item) for item in value]
            for kind in ("statistical", "clinical_review"):
                positions = [i for i, k in enumerate(kinds) if k == kind]
                for index in positions[1:]:
                    problems.append(
                        InitErrorDetails(
                            type=custom_error(
                                "duplicate",
                                f"a second {kind} gate (the first is item {positions[0] + 1})",
                                expected=f"at most one {kind} gate",
                                fix=f"merge the {kind} gates into one",
                            ),
                            loc=(index,),
                            input=kind,
                        )
                    )
            all_known = all(isinstance(item, Gate | Mapping) for item in value)
            if "clinical_review" not in kinds and all_known and None not in kinds:
                problems.append(
                    InitErrorDetails(
                        type=custom_error(
                            "gate_missing",
                            "the validation stage has no clinical_review gate",
                            expected="one clinical_review gate: who signs a version off",
                            fix="add - clinical_review: {required_approvers: 2, roles: "
                            "[CMIO, clinical_informaticist]}",
                        ),
                        loc=(),
                        input=value,
                    )
                )
        return merge_problems(value, handler, problems, title="ValidationStage")

    def _of_kind(self, kind: str) -> tuple[Any, ...]:
        return tuple(getattr(gate, kind) for gate in self.gates if gate.kind == kind)

    @property
    def clinical_review(self) -> ClinicalReviewGate:
        """Return the clinical review gate (there is exactly one)."""
        return self._of_kind("clinical_review")[0]  # type: ignore[no-any-return]

    @property
    def statistical(self) -> StatisticalGate | None:
        """Return the statistical gate, if any (there is at most one)."""
        found = self._of_kind("statistical")
        return found[0] if found else None

    @property
    def fairness(self) -> tuple[FairnessGate, ...]:
        """Return the fairness gates, in file order."""
        return self._of_kind("fairness")

    @property
    def expressions(self) -> tuple[Any, ...]:
        """Return the expression gates (:class:`~bedside.domain.expressions.Expression`)."""
        return self._of_kind("expression")

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Return a stable name per gate: its kind, numbered (``fairness_2``) when repeated."""
        counts: dict[str, int] = {}
        for gate in self.gates:
            counts[gate.kind] = counts.get(gate.kind, 0) + 1
        seen: dict[str, int] = {}
        names = []
        for gate in self.gates:
            seen[gate.kind] = seen.get(gate.kind, 0) + 1
            names.append(gate.kind if counts[gate.kind] == 1 else f"{gate.kind}_{seen[gate.kind]}")
        return tuple(names)
