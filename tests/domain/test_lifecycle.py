"""The lifecycle state machine as pure functions, including the property that nothing reaches
production without passing validated and approved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import find, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bedside.domain.lifecycle import (
    Action,
    LifecyclePolicy,
    ReviewPolicy,
    SignatureFact,
    VersionFacts,
    plan_transition,
    review_status,
)
from bedside.domain.models import Meaning, Purpose, VersionState
from bedside.errors import InvalidTransition

S = VersionState
NOW = datetime(2026, 3, 1, tzinfo=UTC)
POLICY = LifecyclePolicy(
    required_gates=("statistical", "fairness"),
    review=ReviewPolicy(required_approvers=2, roles=("CMIO", "clinical_informaticist")),
    promotion_roles=("CMIO", "clinical_informaticist"),
    auto_promote=False,
    shadow_duration=timedelta(days=14),
)


def approve(user: str, role: str, purpose: Purpose = Purpose.CLINICAL_REVIEW) -> SignatureFact:
    return SignatureFact(user, role, Meaning.APPROVED, purpose)


def facts(state: VersionState, **kw: object) -> VersionFacts:
    return VersionFacts(ref="sepsis@3", state=state, history=(S.CANDIDATE, state), **kw)  # type: ignore[arg-type]


def test_validate_needs_every_gate_result() -> None:
    with pytest.raises(InvalidTransition, match="no result recorded for gate.*fairness"):
        plan_transition(
            facts(S.CANDIDATE, gate_results={"statistical": True}), Action.VALIDATE, POLICY, now=NOW
        )


def test_validate_refuses_a_failed_gate() -> None:
    with pytest.raises(InvalidTransition, match="gate.*fairness failed"):
        plan_transition(
            facts(S.CANDIDATE, gate_results={"statistical": True, "fairness": False}),
            Action.VALIDATE,
            POLICY,
            now=NOW,
        )


def test_validate_with_all_gates_passed() -> None:
    ok = facts(S.CANDIDATE, gate_results={"statistical": True, "fairness": True})
    assert plan_transition(ok, Action.VALIDATE, POLICY, now=NOW) is S.VALIDATED


def test_approval_names_the_missing_role() -> None:
    one = facts(S.VALIDATED, signatures=(approve("ivan", "clinical_informaticist"),))
    with pytest.raises(
        InvalidTransition, match="sepsis@3 has 1 of 2 required approvals; missing role: CMIO"
    ):
        plan_transition(one, Action.APPROVE, POLICY, now=NOW)


def test_two_approvers_of_the_same_role_do_not_cover_both_roles() -> None:
    status = review_status(
        (approve("carol", "CMIO"), approve("cora", "CMIO")),
        purpose=Purpose.CLINICAL_REVIEW,
        need=2,
        roles=("CMIO", "clinical_informaticist"),
    )
    assert status.have == 2 and status.missing_roles == ("clinical_informaticist",)
    assert not status.is_satisfied


def test_promotion_waits_for_the_shadow_period() -> None:
    shadow = facts(
        S.SHADOW, shadow_started_at=NOW, signatures=(approve("carol", "CMIO", Purpose.PROMOTION),)
    )
    with pytest.raises(InvalidTransition, match="shadow period runs until"):
        plan_transition(shadow, Action.PROMOTE, POLICY, now=NOW + timedelta(days=13))
    assert (
        plan_transition(shadow, Action.PROMOTE, POLICY, now=NOW + timedelta(days=14))
        is S.PRODUCTION
    )


def test_promotion_needs_a_human_signature_when_auto_promote_is_false() -> None:
    shadow = facts(S.SHADOW, shadow_started_at=NOW, shadow_report_passed=True)
    with pytest.raises(InvalidTransition, match="auto_promote is false"):
        plan_transition(shadow, Action.PROMOTE, POLICY, now=NOW + timedelta(days=15))


def test_auto_promote_true_promotes_on_a_passing_shadow_report_only() -> None:
    auto = LifecyclePolicy(
        **{**{f: getattr(POLICY, f) for f in POLICY.__slots__}, "auto_promote": True}
    )
    later = NOW + timedelta(days=15)
    passing = facts(S.SHADOW, shadow_started_at=NOW, shadow_report_passed=True)
    assert plan_transition(passing, Action.PROMOTE, auto, now=later) is S.PRODUCTION
    failing = facts(S.SHADOW, shadow_started_at=NOW, shadow_report_passed=False)
    with pytest.raises(InvalidTransition, match="shadow report has not passed"):
        plan_transition(failing, Action.PROMOTE, auto, now=later)


def test_wrong_state_error_says_the_next_step() -> None:
    with pytest.raises(InvalidTransition, match="it is 'candidate'.*validate it"):
        plan_transition(facts(S.CANDIDATE), Action.DEPLOY_SHADOW, POLICY, now=NOW)


def test_restore_only_a_version_that_served_before() -> None:
    never = VersionFacts(
        ref="sepsis@2", state=S.RETIRED, history=(S.CANDIDATE, S.VALIDATED, S.APPROVED, S.RETIRED)
    )
    with pytest.raises(InvalidTransition, match="never in production"):
        plan_transition(never, Action.RESTORE, POLICY, now=NOW)


GOOD_SIGNATURES = (
    approve("carol", "CMIO"),
    approve("ivan", "clinical_informaticist"),
    approve("cora", "CMIO", Purpose.PROMOTION),
)
signature_facts = st.builds(
    SignatureFact,
    username=st.sampled_from(["carol", "ivan", "cora", "dana"]),
    role=st.sampled_from(["CMIO", "clinical_informaticist", "data_scientist"]),
    meaning=st.sampled_from(list(Meaning)),
    purpose=st.sampled_from(list(Purpose)),
)
ALL_PASS = {"statistical": True, "fairness": True}
# Well-formed steps along the happy path, mixed with arbitrary ones, so that generated sequences
# do reach production (see the vacuity guard below) while random steps try every shortcut.
happy_steps = st.sampled_from(
    [
        (Action.VALIDATE, ALL_PASS, GOOD_SIGNATURES, 0, None),
        (Action.APPROVE, ALL_PASS, GOOD_SIGNATURES, 0, None),
        (Action.DEPLOY_SHADOW, ALL_PASS, GOOD_SIGNATURES, 0, None),
        (Action.PROMOTE, ALL_PASS, GOOD_SIGNATURES, 20, None),
        (Action.RETIRE, ALL_PASS, GOOD_SIGNATURES, 0, None),
        (Action.RESTORE, ALL_PASS, GOOD_SIGNATURES, 0, None),
    ]
)
random_steps = st.tuples(
    st.sampled_from(list(Action)),
    st.dictionaries(st.sampled_from(["statistical", "fairness"]), st.booleans()),
    st.one_of(st.just(GOOD_SIGNATURES), st.lists(signature_facts, max_size=4).map(tuple)),
    st.integers(min_value=0, max_value=30),
    st.one_of(st.none(), st.booleans()),
)
steps = st.lists(st.one_of(happy_steps, random_steps), max_size=40)
Step = tuple[Action, dict[str, bool], tuple[SignatureFact, ...], int, bool | None]


def simulate(sequence: list[Step], policy: LifecyclePolicy) -> tuple[VersionState, ...]:
    """Apply every allowed step of ``sequence``; return the history of states passed."""
    state, history = S.CANDIDATE, (S.CANDIDATE,)
    shadow_start: datetime | None = None
    for action, gates, sigs, days, report in sequence:
        current = VersionFacts(
            ref="m@1",
            state=state,
            history=history,
            gate_results=gates,
            signatures=sigs,
            shadow_started_at=shadow_start,
            shadow_report_passed=report,
        )
        try:
            target = plan_transition(current, action, policy, now=NOW + timedelta(days=days))
        except InvalidTransition:
            continue
        if target is S.SHADOW:
            shadow_start = NOW
        state, history = target, (*history, target)
    return history


def _policy(auto_promote: bool) -> LifecyclePolicy:
    return LifecyclePolicy(
        **{**{f: getattr(POLICY, f) for f in POLICY.__slots__}, "auto_promote": auto_promote}
    )


@given(steps, st.booleans())
def test_no_sequence_reaches_production_without_validated_and_approved(
    sequence: list[Step], auto_promote: bool
) -> None:
    history = simulate(sequence, _policy(auto_promote))
    for i, state in enumerate(history):
        if state is S.PRODUCTION:
            before = history[:i]
            assert S.VALIDATED in before and S.APPROVED in before, history
            assert before.index(S.VALIDATED) < before.index(S.APPROVED)


def test_the_generated_sequences_do_reach_production() -> None:
    # Guards the property above against vacuity: the strategy can produce a path to production.
    found = find(
        steps,
        lambda seq: S.PRODUCTION in simulate(seq, POLICY),
        settings=hsettings(max_examples=5000, database=None, derandomize=True),
    )
    assert S.PRODUCTION in simulate(found, POLICY)
