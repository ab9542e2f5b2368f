"""The shadow report through the platform: real inference log, real registry, every backend."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, Purpose, VersionState
from bedside.errors import InvalidTransition, PermissionDenied
from bedside.service import Platform
from bedside.serving.inference_log import InferenceLog, prediction_entry
from bedside.shadow_stage import shadow_report
from tests.support import FOUNDING_PIPELINE, PASSWORD, Clock, Team

MODEL = "sepsis-prediction"
FEATURES = {"heart_rate_max_6h": 97.0, "lactate_max_6h": 1.4}


def _approved(platform: Platform, team: Team, *, threshold: float, model: str = MODEL) -> str:
    ref = platform.register_version(
        team.scientist,
        model,
        run_id=f"run-{uuid.uuid4().hex[:6]}",
        evidence={"threshold": threshold},
    ).ref
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(team.scientist, ref, gate=gate, passed=True)
    platform.transition(team.engineer, ref, Action.VALIDATE)
    platform.sign("carol", PASSWORD, ref, meaning=Meaning.APPROVED)
    platform.sign("ivan", PASSWORD, ref, meaning=Meaning.APPROVED)
    return ref


def _promote(platform: Platform, team: Team, clock: Clock, ref: str) -> None:
    platform.transition(team.engineer, ref, Action.DEPLOY_SHADOW)
    clock.advance(days=14, seconds=1)
    platform.sign("cora", PASSWORD, ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION)
    platform.transition(team.engineer, ref, Action.PROMOTE)


def _shadow(
    request_id: str,
    version: str,
    threshold: float,
    p: float | None,
    error: str | None = None,
    *,
    model: str = MODEL,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "shadow",
        "request_id": request_id,
        "model": model,
        "version": version,
        "threshold": threshold,
    }
    if p is None:
        entry["error"] = error
    else:
        entry.update(probability=p, decision=p >= threshold)
    return entry


def _traffic(
    platform: Platform,
    *,
    n: int,
    production: str | None,
    shadow: str,
    labelled: int = 0,
    errors: int = 0,
    skipped: int = 0,
    missing: int = 0,
    seed: int = 3,
    model: str = MODEL,
) -> None:
    """Log ``n`` requests scored by the shadow (and production, when given) as the server would."""
    assert platform.home is not None
    rng = np.random.default_rng(seed)
    now = platform.now().timestamp()
    predictions: list[dict[str, Any]] = []
    shadows: list[dict[str, Any]] = []
    outcomes: list[tuple[str, int]] = []
    for i in range(n + errors + skipped + missing):
        rid = str(uuid.uuid4())
        label = int(rng.integers(0, 2))
        p_prod = float(np.clip(0.2 + 0.5 * label + rng.normal(0, 0.12), 0, 1))
        p_shadow = float(np.clip(0.15 + 0.7 * label + rng.normal(0, 0.05), 0, 1))
        entry = prediction_entry(
            request_id=rid,
            received=now - 60 * i,
            model=model,
            version=production or "",
            threshold=0.5,
            inputs=FEATURES,
            probability=p_prod,
            decision=p_prod >= 0.5,
            shadow_version=shadow,
        )
        if production is None:  # shadow alone: nothing was returned
            entry.update(version=None, threshold=None, probability=None, decision=None)
        predictions.append(entry)
        if i < n:
            shadows.append(_shadow(rid, shadow, 0.5, p_shadow, model=model))
            if i < labelled:
                outcomes.append((rid, label))
        elif i < n + errors:
            shadows.append(_shadow(rid, shadow, 0.5, None, error="ValueError", model=model))
        elif i < n + errors + skipped:
            shadows.append(
                _shadow(rid, shadow, 0.5, None, error="skipped: shadow queue full", model=model)
            )
    log = InferenceLog.open(platform.home / "inference-log", key_ring=platform.keys)
    try:
        log.append_sync(predictions)
        log.append_sync(shadows)
        for rid, label in outcomes:
            log.append_outcome(rid, label, now)
    finally:
        log.close()


def _other_traffic(
    platform: Platform, production: str, pairs: tuple[tuple[str, str | None], ...]
) -> None:
    """Requests the report must leave out: (model, shadow version) ``pairs`` of requests."""
    assert platform.home is not None
    log = InferenceLog.open(platform.home / "inference-log", key_ring=platform.keys)
    try:
        log.append_sync(
            [
                prediction_entry(
                    request_id=str(uuid.uuid4()),
                    received=platform.now().timestamp(),
                    model=model,
                    version=production,
                    threshold=0.5,
                    inputs=FEATURES,
                    probability=0.9,
                    decision=True,
                    shadow_version=shadow,
                )
                for model, shadow in pairs
                for _ in range(5)
            ]
        )
    finally:
        log.close()


def test_shadow_report_compares_with_production_and_becomes_promotion_evidence(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path
) -> None:
    platform.home = tmp_path
    first = _approved(platform, team, threshold=0.5)
    _promote(platform, team, clock, first)
    clock.advance(days=1)
    _other_traffic(platform, "1", ((MODEL, "2"),))  # before the shadow period
    second = _approved(platform, team, threshold=0.5)
    platform.transition(team.engineer, second, Action.DEPLOY_SHADOW)
    clock.advance(days=3)
    _traffic(
        platform, n=150, production="1", shadow="2", labelled=80, errors=1, skipped=2, missing=1
    )
    _other_traffic(platform, "1", ((MODEL, None), ("other-model", "2")))

    result = shadow_report(platform, team.informaticist, second, n_boot=200)

    assert result["passed"] is True, result["outcomes"]
    assert [o["status"] for o in result["outcomes"]] == ["pass", "pass", "pass"]
    summary = result["summary"]
    assert (summary["scored"], summary["errors"], summary["skipped"], summary["missing"]) == (
        150,
        1,
        2,
        1,
    )
    assert summary["labelled"] == 80 and summary["shadow_alone"] == 0
    assert summary["shadow_auroc"] >= summary["production_auroc"]
    report = json.loads(Path(result["json"]).read_bytes())
    assert hashlib.sha256(Path(result["json"]).read_bytes()).hexdigest() == result["sha256"]
    assert report["production_versions"] == {f"{MODEL}@1": 150}
    assert report["agreement"]["applicable"] is True and report["performance"]["delong"]
    assert Path(result["html"]).parent.parent == tmp_path / "reports" / "shadow" / MODEL / "2"
    # The verdict is kept in the version's evidence, where promotion signatures bind it.
    evidence = platform.get_version(second).evidence["shadow_report"]
    assert evidence["passed"] is True and evidence["sha256"] == result["sha256"]
    assert evidence["criteria"]["min_scored"] == 100
    events = platform.list_audit_events(team.auditor, action_prefix="version.shadow_report")
    assert [(e.subject_id, e.actor, (e.after or {})["passed"]) for e in events] == [
        (second, "ivan", True)
    ]
    # The clinical-review signatures do not cover the report, so they still verify.
    assert all(problem is None for _, problem in platform.verify_signatures(second))
    # A second report replaces the first while nobody has signed the promotion.
    clock.advance(hours=1)
    again = shadow_report(platform, team.engineer, second, n_boot=200)
    assert again["sha256"] != result["sha256"]  # a longer period, a later generation time
    # Once a promotion signature binds the evidence, the report cannot be replaced.
    clock.advance(days=11)
    platform.sign("cora", PASSWORD, second, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION)
    with pytest.raises(InvalidTransition, match="promotion signature"):
        shadow_report(platform, team.engineer, second)
    refused = platform.list_audit_events(team.auditor, action_prefix="refused.shadow_report")
    assert [e.subject_id for e in refused] == [second]
    assert all(problem is None for _, problem in platform.verify_signatures(second))
    platform.transition(team.engineer, second, Action.PROMOTE)
    assert platform.get_version(second).state is VersionState.PRODUCTION


def test_shadow_alone_report_has_no_agreement_and_waits_for_outcomes(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path
) -> None:
    platform.home = tmp_path
    ref = _approved(platform, team, threshold=0.5)
    platform.transition(team.engineer, ref, Action.DEPLOY_SHADOW)
    clock.advance(days=2)
    _traffic(platform, n=120, production=None, shadow="1", errors=2)

    result = shadow_report(platform, team.engineer, ref, n_boot=50)

    report = json.loads(Path(result["json"]).read_text(encoding="utf-8"))
    assert report["agreement"]["applicable"] is False
    assert report["production_versions"] == {}
    assert result["summary"]["shadow_alone"] == 120
    statuses = {o["name"]: o["status"] for o in result["outcomes"]}
    # 2 errors in 122 attempts is over 1 %: the report fails, and says what was not evaluated.
    assert statuses == {
        "min_scored": "pass",
        "max_error_rate": "fail",
        "auroc_non_inferior": "not evaluated",
    }
    assert result["passed"] is False
    assert platform.get_version(ref).evidence["shadow_report"]["passed"] is False
    assert "not applicable" in Path(result["html"]).read_text(encoding="utf-8")


def test_shadow_report_is_refused_for_a_version_not_in_shadow_or_a_disabled_user(
    platform: Platform, team: Team, tmp_path: Path
) -> None:
    platform.home = tmp_path
    ref = _approved(platform, team, threshold=0.5)
    with pytest.raises(InvalidTransition, match="'approved'; a shadow report is made for"):
        shadow_report(platform, team.engineer, ref)
    platform.set_user_active(team.admin, "aud", active=False)
    with pytest.raises(PermissionDenied):
        shadow_report(platform, team.auditor, ref)
    assert "shadow_report" not in platform.get_version(ref).evidence


def test_auto_promote_promotes_only_after_a_passing_report(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path
) -> None:
    platform.home = tmp_path
    model = f"sepsis-{uuid.uuid4().hex[:8]}"
    text = FOUNDING_PIPELINE.read_text(encoding="utf-8")
    text = text.replace(
        "  name: sepsis-prediction-pipeline\n",
        f"  name: sepsis-prediction-pipeline\n  model_name: {model}\n",
        1,
    ).replace("auto_promote: false", "auto_promote: true")
    assert "auto_promote: true" in text
    platform.register_pipeline(team.admin, content=text)
    ref = _approved(platform, team, threshold=0.5, model=model)
    platform.transition(team.engineer, ref, Action.DEPLOY_SHADOW)
    clock.advance(days=14, seconds=1)
    with pytest.raises(InvalidTransition, match="shadow report has not passed"):
        platform.transition(team.engineer, ref, Action.PROMOTE)
    _traffic(platform, n=100, production=None, shadow="1", errors=5, model=model)
    assert shadow_report(platform, team.engineer, ref, n_boot=0)["passed"] is False
    with pytest.raises(InvalidTransition, match="shadow report has not passed"):
        platform.transition(team.engineer, ref, Action.PROMOTE)
    _traffic(platform, n=400, production=None, shadow="1", model=model, seed=4)
    assert shadow_report(platform, team.engineer, ref, n_boot=0)["passed"] is True  # 5 in 505
    promoted = platform.transition(team.engineer, ref, Action.PROMOTE)
    assert promoted.state is VersionState.PRODUCTION
