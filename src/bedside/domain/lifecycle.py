"""The model-version state machine, as pure functions.

``candidate → validated → approved → shadow → production → retired``, with ``rejected`` reachable
from the review states. :func:`plan_transition` takes what is known about a version (its facts), the
pipeline's policy and an action, and returns the next state — or raises
:class:`~bedside.errors.InvalidTransition` saying exactly what is missing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bedside.domain.models import Meaning, Purpose, VersionState
from bedside.errors import InvalidTransition

S = VersionState


class Action(enum.StrEnum):
    """What can be done to a version."""

    VALIDATE = "validate"
    REJECT = "reject"
    APPROVE = "approve"
    DEPLOY_SHADOW = "deploy_shadow"
    PROMOTE = "promote"
    RETIRE = "retire"
    RESTORE = "restore"  # rollback target: a formerly-production version returns to production


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """Who must sign: ``required_approvers`` distinct people holding the listed roles."""

    required_approvers: int
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The parts of a pipeline file that decide transitions."""

    required_gates: tuple[str, ...]
    review: ReviewPolicy
    promotion_roles: tuple[str, ...]
    auto_promote: bool = False
    shadow_duration: timedelta = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class SignatureFact:
    """A signature that verified against the version's current record."""

    username: str
    role: str
    meaning: Meaning
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """Everything the state machine needs to know about one version."""

    ref: str
    state: VersionState
    history: tuple[VersionState, ...]
    gate_results: Mapping[str, bool] = field(default_factory=dict)
    signatures: tuple[SignatureFact, ...] = ()
    shadow_started_at: datetime | None = None
    shadow_report_passed: bool | None = None


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    """How far a version's sign-off has come for one purpose."""

    have: int
    need: int
    signers: tuple[str, ...]
    missing_roles: tuple[str, ...]

    @property
    def is_satisfied(self) -> bool:
        return self.have >= self.need and not self.missing_roles

    def describe(self, ref: str) -> str:
        text = f"{ref} has {self.have} of {self.need} required approvals"
        if self.missing_roles:
            text += f"; missing role: {', '.join(self.missing_roles)}"
        return text


def review_status(
    signatures: Sequence[SignatureFact], *, purpose: Purpose, need: int, roles: Sequence[str]
) -> ReviewStatus:
    """Count distinct approvers of ``purpose`` holding one of ``roles``.

    When at least as many approvers are required as roles are listed, every listed role must be
    among the approvers (e.g. two approvers from [CMIO, clinical_informaticist] means one of each).
    """
    by_user: dict[str, str] = {}
    for sig in signatures:
        if sig.purpose is purpose and sig.meaning is Meaning.APPROVED and sig.role in roles:
            by_user.setdefault(sig.username, sig.role)
    covered = set(by_user.values())
    missing: tuple[str, ...] = ()
    if need >= len(roles):
        missing = tuple(r for r in roles if r not in covered)
    return ReviewStatus(
        have=len(by_user), need=need, signers=tuple(sorted(by_user)), missing_roles=missing
    )


def _has_rejection(facts: VersionFacts) -> bool:
    return any(s.meaning is Meaning.REJECTED for s in facts.signatures)


_FROM: dict[Action, tuple[VersionState, ...]] = {
    Action.VALIDATE: (S.CANDIDATE,),
    Action.REJECT: (S.CANDIDATE, S.VALIDATED, S.APPROVED, S.SHADOW),
    Action.APPROVE: (S.VALIDATED,),
    Action.DEPLOY_SHADOW: (S.APPROVED,),
    Action.PROMOTE: (S.SHADOW,),
    Action.RETIRE: (S.CANDIDATE, S.VALIDATED, S.APPROVED, S.SHADOW, S.PRODUCTION),
    Action.RESTORE: (S.RETIRED,),
}

_TO: dict[Action, VersionState] = {
    Action.VALIDATE: S.VALIDATED,
    Action.REJECT: S.REJECTED,
    Action.APPROVE: S.APPROVED,
    Action.DEPLOY_SHADOW: S.SHADOW,
    Action.PROMOTE: S.PRODUCTION,
    Action.RETIRE: S.RETIRED,
    Action.RESTORE: S.PRODUCTION,
}

_NEXT_STEP: dict[VersionState, str] = {
    S.CANDIDATE: "validate it (bedside validate)",
    S.VALIDATED: "collect the clinical review signatures (bedside sign)",
    S.APPROVED: "deploy it as shadow (bedside deploy)",
    S.SHADOW: "promote it after the shadow period (bedside promote)",
    S.PRODUCTION: "it is live; retire or roll back",
    S.RETIRED: "it is retired",
    S.REJECTED: "it was rejected; train a new version",
}


def plan_transition(
    facts: VersionFacts, action: Action, policy: LifecyclePolicy, *, now: datetime
) -> VersionState:
    """Return the state ``action`` moves the version to, or raise saying what is missing.

    Raises:
        InvalidTransition: the action is not allowed from the current state, or its
            preconditions (gates, signatures, shadow period, history) are not met.
    """
    allowed = _FROM[action]
    if facts.state not in allowed:
        raise InvalidTransition(
            f"Cannot {action.value} {facts.ref}: it is '{facts.state.value}', and {action.value} "
            f"needs one of: {', '.join(s.value for s in allowed)}. "
            f"Next step for a '{facts.state.value}' version: {_NEXT_STEP[facts.state]}."
        )
    check = _CHECKS.get(action)
    if check is not None:
        check(facts, policy, now)
    return _TO[action]


def _check_validate(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    missing = [g for g in policy.required_gates if g not in facts.gate_results]
    if missing:
        raise InvalidTransition(
            f"Cannot validate {facts.ref}: no result recorded for gate(s) {', '.join(missing)}. "
            "Run the validation stage so every gate of the pipeline has a result."
        )
    failed = [g for g in policy.required_gates if not facts.gate_results[g]]
    if failed:
        raise InvalidTransition(
            f"Cannot validate {facts.ref}: gate(s) {', '.join(failed)} failed. "
            "A version that fails a gate can only be rejected."
        )


def _check_reject(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    failed_gate = any(not ok for ok in facts.gate_results.values())
    if facts.state is S.CANDIDATE and failed_gate:
        return
    if _has_rejection(facts):
        return
    raise InvalidTransition(
        f"Cannot reject {facts.ref}: a rejection needs a failed gate (for a candidate) or a "
        "signature with meaning 'rejected' from a reviewer. Sign with: bedside sign "
        f"{facts.ref} --meaning rejected"
    )


def _check_approve(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    status = review_status(
        facts.signatures,
        purpose=Purpose.CLINICAL_REVIEW,
        need=policy.review.required_approvers,
        roles=policy.review.roles,
    )
    if not status.is_satisfied:
        raise InvalidTransition(
            f"Cannot approve: {status.describe(facts.ref)} "
            f"(roles that may approve: {', '.join(policy.review.roles)})."
        )


def _check_deploy(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    # The approvals must still verify against the version's current record.
    _check_approve(facts, policy, now)


def _check_promote(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    if facts.shadow_started_at is None:
        raise InvalidTransition(f"Cannot promote {facts.ref}: it has no recorded shadow start.")
    ends = facts.shadow_started_at + policy.shadow_duration
    if now < ends:
        raise InvalidTransition(
            f"Cannot promote {facts.ref}: its shadow period runs until {ends.isoformat()} "
            f"(shadow_duration {policy.shadow_duration}); it started "
            f"{facts.shadow_started_at.isoformat()}."
        )
    status = review_status(
        facts.signatures, purpose=Purpose.PROMOTION, need=1, roles=policy.promotion_roles
    )
    if status.have >= 1:
        return
    if policy.auto_promote and facts.shadow_report_passed:
        return
    reason = (
        "auto_promote is false, so promotion needs a human approval signature"
        if not policy.auto_promote
        else "auto_promote is true but the shadow report has not passed; a human approval "
        "signature is needed instead"
    )
    raise InvalidTransition(
        f"Cannot promote {facts.ref}: {reason} (purpose 'promotion', from one of: "
        f"{', '.join(policy.promotion_roles)}). Sign with: bedside sign {facts.ref} "
        "--purpose promotion --meaning approved"
    )


def _check_restore(facts: VersionFacts, policy: LifecyclePolicy, now: datetime) -> None:
    if S.PRODUCTION not in facts.history:
        raise InvalidTransition(
            f"Cannot roll back to {facts.ref}: it was never in production. Rollback returns "
            "production to a version that served before."
        )
    _check_approve(facts, policy, now)


_CHECKS = {
    Action.VALIDATE: _check_validate,
    Action.REJECT: _check_reject,
    Action.APPROVE: _check_approve,
    Action.DEPLOY_SHADOW: _check_deploy,
    Action.PROMOTE: _check_promote,
    Action.RESTORE: _check_restore,
}
