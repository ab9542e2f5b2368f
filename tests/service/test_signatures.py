"""E-signature rules (21 CFR Part 11) through the Platform, on every backend.

Each refusal must be a clear error naming the rule, and be recorded in the ledger as an attempt.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from bedside.domain.models import Meaning, ModelVersion, Purpose, VersionState
from bedside.errors import SignatureRefused
from bedside.service import Platform
from bedside.stores.registry import ModelRegistry
from bedside.stores.tables import signatures
from tests.support import PASSWORD, Clock, Team

MODEL = "sepsis-prediction"


def validated_version(
    platform: Platform, team: Team, *, trainer: str = "scientist"
) -> ModelVersion:
    who = getattr(team, trainer)
    version = platform.register_version(
        who, MODEL, run_id="run-1", evidence={"auroc": 0.91, "threshold": 0.3}
    )
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(
            team.scientist, version.ref, gate=gate, passed=True, details={"checked": gate}
        )
    from bedside.domain.lifecycle import Action

    return platform.transition(team.engineer, version.ref, Action.VALIDATE)


def refusals(platform: Platform, team: Team) -> list[dict[str, object]]:
    events = platform.list_audit_events(team.auditor, action_prefix="signature.refused")
    return [e.after or {} for e in events]


def test_two_reviewers_approve_and_the_version_becomes_approved(
    platform: Platform, team: Team
) -> None:
    v = validated_version(platform, team)
    first = platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert platform.get_version(v.ref).state is VersionState.VALIDATED
    assert (first.printed_name, first.role, first.meaning) == (
        "Dr Carol Chief",
        "CMIO",
        Meaning.APPROVED,
    )
    platform.sign("ivan", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert platform.get_version(v.ref).state is VersionState.APPROVED
    assert all(problem is None for _, problem in platform.verify_signatures(v.ref))
    actions = [e.action for e in platform.list_audit_events(team.auditor, subject_id=v.ref)]
    assert actions[-3:] == ["signature.signed", "signature.signed", "version.approve"]


def test_signing_without_password_is_refused_and_recorded(platform: Platform, team: Team) -> None:
    v = validated_version(platform, team)
    with pytest.raises(SignatureRefused, match="needs your password"):
        platform.sign("carol", None, v.ref, meaning=Meaning.APPROVED)
    with pytest.raises(SignatureRefused, match="Re-authentication failed"):
        platform.sign("carol", "not the password!", v.ref, meaning=Meaning.APPROVED)
    assert [r["rule"] for r in refusals(platform, team)] == ["reauth_missing", "reauth_failed"]
    assert platform.list_signatures(v.ref) == []


def test_the_trainer_cannot_approve_their_own_version(platform: Platform, team: Team) -> None:
    platform.grant_role(team.admin, "carol", "data_scientist")
    carol = platform.authenticate("carol", PASSWORD)
    v = platform.register_version(carol, MODEL)
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(team.scientist, v.ref, gate=gate, passed=True)
    from bedside.domain.lifecycle import Action

    platform.transition(team.engineer, v.ref, Action.VALIDATE)
    with pytest.raises(SignatureRefused, match="trained .* and cannot approve it"):
        platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED, role="CMIO")
    assert refusals(platform, team)[-1]["rule"] == "self_approval"


def test_the_same_person_cannot_sign_twice(platform: Platform, team: Team) -> None:
    v = validated_version(platform, team)
    platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    with pytest.raises(SignatureRefused, match="already signed"):
        platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert refusals(platform, team)[-1]["rule"] == "duplicate_signer"
    assert len(platform.list_signatures(v.ref)) == 1


@pytest.mark.parametrize("who", ["dana", "eli", "aud", "admin"])
def test_people_without_a_reviewer_role_cannot_approve(
    platform: Platform, team: Team, who: str
) -> None:
    v = validated_version(platform, team)
    with pytest.raises(SignatureRefused, match="may not sign|none of the roles"):
        platform.sign(who, PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert refusals(platform, team)[-1]["rule"] == "wrong_role"


def test_a_role_not_named_by_the_pipeline_cannot_approve(platform: Platform, team: Team) -> None:
    platform.add_role(team.admin, "nurse_lead", kind="clinical_reviewer")
    platform.grant_role(team.admin, "ivan", "nurse_lead")
    v = validated_version(platform, team)
    with pytest.raises(SignatureRefused, match="requires one of: CMIO, clinical_informaticist"):
        platform.sign("ivan", PASSWORD, v.ref, meaning=Meaning.APPROVED, role="nurse_lead")
    assert refusals(platform, team)[-1]["rule"] == "wrong_role"


def test_a_signature_copied_to_another_record_fails_verification(
    platform: Platform, team: Team
) -> None:
    v1 = validated_version(platform, team)
    v2 = validated_version(platform, team)
    platform.sign("carol", PASSWORD, v1.ref, meaning=Meaning.APPROVED)
    with platform.database.transaction() as conn:
        row = conn.execute(select(signatures)).mappings().one()
        copied = {k: v for k, v in row.items() if k != "id"} | {"version_id": v2.id}
        conn.execute(insert(signatures).values(**copied))
    ((_sig, problem),) = platform.verify_signatures(v2.ref)
    assert problem is not None and "does not match its seal" in problem
    # The copy does not count: one more real approval is not enough to approve v2.
    platform.sign("ivan", PASSWORD, v2.ref, meaning=Meaning.APPROVED)
    assert platform.get_version(v2.ref).state is VersionState.VALIDATED
    (status,) = platform.status()
    pending = {row.version.ref: row for row in status.versions}[v2.ref]
    assert pending.invalid_signatures and pending.review is not None
    assert pending.review.missing_roles == ("CMIO",)


def test_a_record_changed_after_signing_invalidates_the_signature(
    platform: Platform, team: Team
) -> None:
    v = validated_version(platform, team)
    platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    with platform.database.transaction() as conn:
        ModelRegistry(conn).set_evidence(v, {**v.evidence, "threshold": 0.05})
    ((_sig, problem),) = platform.verify_signatures(v.ref)
    assert problem is not None and "different record" in problem
    platform.sign("ivan", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert platform.get_version(v.ref).state is VersionState.VALIDATED


def test_a_rejection_signature_rejects_the_version(platform: Platform, team: Team) -> None:
    v = validated_version(platform, team)
    sig = platform.sign(
        "ivan",
        PASSWORD,
        v.ref,
        meaning=Meaning.REJECTED,
        comment="calibration poor in the over-80s",
    )
    assert sig.meaning is Meaning.REJECTED
    assert platform.get_version(v.ref).state is VersionState.REJECTED


def test_signing_a_version_not_under_review_is_refused(platform: Platform, team: Team) -> None:
    v = platform.register_version(team.scientist, MODEL)
    with pytest.raises(SignatureRefused, match="needs it to be 'validated'"):
        platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    assert refusals(platform, team)[-1]["rule"] == "wrong_state"


def test_promotion_signature_is_separate_from_review(platform: Platform, team: Team) -> None:
    v = validated_version(platform, team)
    with pytest.raises(SignatureRefused, match="needs it to be 'shadow'"):
        platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION)


def test_the_shadow_report_added_after_review_keeps_review_signatures_and_binds_promotion(
    platform: Platform, team: Team, clock: Clock
) -> None:
    from bedside.domain.lifecycle import Action

    v = validated_version(platform, team)
    platform.sign("carol", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    platform.sign("ivan", PASSWORD, v.ref, meaning=Meaning.APPROVED)
    platform.transition(team.engineer, v.ref, Action.DEPLOY_SHADOW)
    shadowed = platform.get_version(v.ref)
    report = {"passed": True, "sha256": "a" * 64}
    with platform.database.transaction() as conn:
        ModelRegistry(conn).set_evidence(shadowed, {**shadowed.evidence, "shadow_report": report})
    # The clinical reviewers signed before the shadow period: their records still verify.
    assert [problem for _, problem in platform.verify_signatures(v.ref)] == [None, None]
    clock.advance(days=14, seconds=1)
    platform.sign("cora", PASSWORD, v.ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION)
    # The promotion signature binds to the shadow report: a replaced report breaks it alone.
    current = platform.get_version(v.ref)
    changed = {**report, "passed": False}
    with platform.database.transaction() as conn:
        ModelRegistry(conn).set_evidence(current, {**current.evidence, "shadow_report": changed})
    problems = {s.purpose: p for s, p in platform.verify_signatures(v.ref)}
    assert problems[Purpose.CLINICAL_REVIEW] is None
    assert (
        problems[Purpose.PROMOTION] is not None
        and "different record" in problems[Purpose.PROMOTION]
    )
