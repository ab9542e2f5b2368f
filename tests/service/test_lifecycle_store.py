"""The lifecycle through the Platform and a real database, on every backend.

The property: whatever sequence of operations people attempt — in any order, by any role — no
version reaches production without having passed validated and approved, and every refused step
leaves the database and the ledger consistent.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, Purpose, VersionState
from bedside.errors import BedsideError, InvalidTransition, PermissionDenied
from bedside.service import Platform
from tests.support import FOUNDING_PIPELINE, PASSWORD, Clock, Team

MODEL = "sepsis-prediction"
S = VersionState

HAPPY_PATH: list[tuple[object, ...]] = [
    ("register", "scientist"),
    ("gate", "statistical", True),
    ("gate", "fairness", True),
    ("act", Action.VALIDATE, "engineer"),
    ("sign", "carol", Meaning.APPROVED, Purpose.CLINICAL_REVIEW),
    ("sign", "ivan", Meaning.APPROVED, Purpose.CLINICAL_REVIEW),
    ("act", Action.DEPLOY_SHADOW, "engineer"),
    ("wait", 14),
    ("sign", "cora", Meaning.APPROVED, Purpose.PROMOTION),
    ("act", Action.PROMOTE, "engineer"),
]
random_op = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(["scientist", "engineer", "cmio"])),
    st.tuples(st.just("gate"), st.sampled_from(["statistical", "fairness"]), st.booleans()),
    st.tuples(
        st.just("sign"),
        st.sampled_from(["carol", "ivan", "cora", "dana", "eli"]),
        st.sampled_from(list(Meaning)),
        st.sampled_from(list(Purpose)),
    ),
    st.tuples(
        st.just("act"),
        st.sampled_from(list(Action)),
        st.sampled_from(["scientist", "engineer", "cmio", "admin"]),
    ),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=20)),
    st.tuples(st.just("rollback"), st.sampled_from(["engineer", "scientist"])),
)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[object, ...]]:
    """The happy path, perturbed: steps dropped, swapped, repeated, random steps inserted.

    Unperturbed it reaches production, so the property below is not vacuous.
    """
    ops = [step for step in HAPPY_PATH if draw(st.integers(0, 19)) > 0]  # drop ~5% of steps
    for _ in range(draw(st.integers(0, 6))):
        ops.insert(draw(st.integers(0, len(ops))), draw(random_op))
    if len(ops) > 1 and draw(st.booleans()):
        i, j = draw(st.integers(0, len(ops) - 1)), draw(st.integers(0, len(ops) - 1))
        ops[i], ops[j] = ops[j], ops[i]
    repeat = draw(st.integers(0, 1))
    return ops * (1 + repeat)


def fresh_model(platform: Platform, team: Team) -> str:
    """Register the founding pipeline under a new model name; return the name."""
    name = f"sepsis-{uuid.uuid4().hex[:8]}"
    text = FOUNDING_PIPELINE.read_text(encoding="utf-8").replace(
        "  name: sepsis-prediction-pipeline\n",
        f"  name: sepsis-prediction-pipeline\n  model_name: {name}\n",
        1,
    )
    platform.register_pipeline(team.admin, content=text)
    return name


def run(
    platform: Platform,
    team: Team,
    clock: Clock,
    ops: list[tuple[object, ...]],
    *,
    model: str = MODEL,
) -> None:
    """Attempt every operation on ``model``; refusals are expected and ignored."""
    latest: str | None = None
    for op in ops:
        try:
            if op[0] == "register":
                latest = platform.register_version(getattr(team, str(op[1])), model).ref
            elif op[0] == "wait":
                clock.advance(days=int(op[1]))  # type: ignore[call-overload]
            elif op[0] == "rollback":
                platform.rollback(getattr(team, str(op[1])), model, reason="property test")
            elif latest is None:
                continue
            elif op[0] == "gate":
                platform.record_gate_result(
                    team.scientist, latest, gate=str(op[1]), passed=bool(op[2])
                )
            elif op[0] == "sign":
                platform.sign(
                    str(op[1]),
                    PASSWORD,
                    latest,
                    meaning=op[2],  # type: ignore[arg-type]
                    purpose=op[3],
                )  # type: ignore[arg-type]
            elif op[0] == "act":
                platform.transition(getattr(team, str(op[2])), latest, op[1])  # type: ignore[arg-type]
        except BedsideError:
            pass


def test_the_happy_path_reaches_production(platform: Platform, team: Team, clock: Clock) -> None:
    run(platform, team, clock, HAPPY_PATH)
    assert platform.get_version(f"{MODEL}@1").state is S.PRODUCTION


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations())
def test_no_operation_sequence_reaches_production_unvalidated_or_unapproved(
    platform: Platform, team: Team, clock: Clock, ops: list[tuple[object, ...]]
) -> None:
    name = fresh_model(platform, team)
    run(platform, team, clock, ops, model=name)
    reached = False
    for model in platform.status():
        if model.model.name != name:
            continue
        live = [v for v in model.versions if v.version.state is S.PRODUCTION]
        assert len(live) <= 1
        for row in model.versions:
            history = row.version.history
            if S.PRODUCTION in history:
                reached = True
                first = history.index(S.PRODUCTION)
                assert S.VALIDATED in history[:first] and S.APPROVED in history[:first], history
    event(f"production reached: {reached}")
    assert platform.verify_audit().ok


def _to_production(platform: Platform, team: Team, clock: Clock) -> str:
    ref = platform.register_version(team.scientist, MODEL).ref
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(team.scientist, ref, gate=gate, passed=True)
    platform.transition(team.engineer, ref, Action.VALIDATE)
    platform.sign("carol", PASSWORD, ref, meaning=Meaning.APPROVED)
    platform.sign("ivan", PASSWORD, ref, meaning=Meaning.APPROVED)
    platform.transition(team.engineer, ref, Action.DEPLOY_SHADOW)
    clock.advance(days=14)
    platform.sign("cora", PASSWORD, ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION)
    platform.transition(team.engineer, ref, Action.PROMOTE)
    return ref


def test_full_path_promotion_retires_the_old_version_and_rollback_restores_it(
    platform: Platform, team: Team, clock: Clock
) -> None:
    first = _to_production(platform, team, clock)
    clock.advance(hours=1)
    while_first = clock()
    second = _to_production(platform, team, clock)
    clock.advance(hours=1)
    while_second = clock()
    assert platform.get_version(first).state is S.RETIRED
    assert platform.get_version(second).state is S.PRODUCTION
    restored = platform.rollback(team.engineer, MODEL, reason="alert rate doubled overnight")
    assert restored.ref == first and restored.state is S.PRODUCTION
    assert platform.get_version(second).state is S.RETIRED
    events = platform.list_audit_events(team.auditor, action_prefix="version.")
    assert [(e.action, e.subject_id) for e in events[-2:]] == [
        ("version.retire", second),
        ("version.restore", first),
    ]
    assert "alert rate doubled overnight" in events[-1].reason
    # "Which version was live then, and who approved it?" — answered from the ledger.
    then = platform.history(team.auditor, MODEL, at=while_first)
    assert then["production"] == first and then["shadow"] is None
    assert {a["printed_name"] for a in then["approved_by"]} == {
        "Dr Carol Chief",
        "Ivan Informaticist",
        "Dr Cora Second",
    }
    assert platform.history(team.auditor, MODEL, at=while_second)["production"] == second
    assert platform.history(team.auditor, MODEL)["production"] == first  # after the rollback


def test_promotion_before_the_shadow_period_ends_is_refused_and_recorded(
    platform: Platform, team: Team, clock: Clock
) -> None:
    ref = platform.register_version(team.scientist, MODEL).ref
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(team.scientist, ref, gate=gate, passed=True)
    platform.transition(team.engineer, ref, Action.VALIDATE)
    platform.sign("carol", PASSWORD, ref, meaning=Meaning.APPROVED)
    platform.sign("ivan", PASSWORD, ref, meaning=Meaning.APPROVED)
    platform.transition(team.engineer, ref, Action.DEPLOY_SHADOW)
    clock.advance(days=3)
    with pytest.raises(InvalidTransition, match="shadow period runs until"):
        platform.transition(team.engineer, ref, Action.PROMOTE)
    refused = platform.list_audit_events(team.auditor, action_prefix="refused.")
    assert refused[-1].action == "refused.promote" and refused[-1].subject_id == ref


def test_a_data_scientist_may_not_deploy(platform: Platform, team: Team) -> None:
    ref = platform.register_version(team.scientist, MODEL).ref
    with pytest.raises(PermissionDenied, match="may not deployment.deploy"):
        platform.transition(team.scientist, ref, Action.DEPLOY_SHADOW)
    denied = platform.list_audit_events(team.auditor, action_prefix="denied.")
    assert denied[-1].actor == "dana"


def test_a_second_shadow_is_refused(platform: Platform, team: Team) -> None:
    refs = []
    for _ in range(2):
        ref = platform.register_version(team.scientist, MODEL).ref
        for gate in ("statistical", "fairness"):
            platform.record_gate_result(team.scientist, ref, gate=gate, passed=True)
        platform.transition(team.engineer, ref, Action.VALIDATE)
        platform.sign("carol", PASSWORD, ref, meaning=Meaning.APPROVED)
        platform.sign("ivan", PASSWORD, ref, meaning=Meaning.APPROVED)
        refs.append(ref)
    platform.transition(team.engineer, refs[0], Action.DEPLOY_SHADOW)
    with pytest.raises(InvalidTransition, match="already in shadow"):
        platform.transition(team.engineer, refs[1], Action.DEPLOY_SHADOW)


def test_failed_gate_lets_a_candidate_be_rejected_only(platform: Platform, team: Team) -> None:
    ref = platform.register_version(team.scientist, MODEL).ref
    platform.record_gate_result(team.scientist, ref, gate="statistical", passed=True)
    platform.record_gate_result(
        team.scientist, ref, gate="fairness", passed=False, details={"max_disparity": 0.09}
    )
    with pytest.raises(InvalidTransition, match="fairness failed"):
        platform.transition(team.engineer, ref, Action.VALIDATE)
    assert platform.transition(team.engineer, ref, Action.REJECT).state is S.REJECTED


def test_unknown_gate_names_are_refused(platform: Platform, team: Team) -> None:
    ref = platform.register_version(team.scientist, MODEL).ref
    with pytest.raises(BedsideError, match="its gates are: statistical, fairness"):
        platform.record_gate_result(team.scientist, ref, gate="vibes", passed=True)
