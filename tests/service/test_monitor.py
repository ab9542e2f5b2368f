"""Monitoring the production version from the inference log: drift, trigger, alert, ledger."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bedside.errors import InvalidTransition
from bedside.service import Platform
from bedside.serving.inference_log import InferenceLog, prediction_entry
from bedside.stores.snapshots import find_snapshot, read_snapshot
from tests.service.test_train import (  # noqa: F401 - hospital is a fixture
    _tracker,
    hospital,
    trained_to_production,
)
from tests.support import REPO, Clock, Team


def _log_traffic(platform: Platform, rows: list[dict], *, shift: float) -> None:
    """Write predictions for ``rows`` (heart rate shifted by ``shift``) as the server would."""
    assert platform.home is not None
    log = InferenceLog.open(platform.home / "inference-log", key_ring=platform.keys)
    try:
        now = platform.now().timestamp()
        entries = []
        for i, row in enumerate(rows):
            inputs = dict(row)
            if inputs.get("heart_rate_max_6h") is not None:
                inputs["heart_rate_max_6h"] += shift
            entries.append(
                prediction_entry(
                    request_id=str(uuid.uuid4()),
                    received=now - i,
                    model="sepsis-prediction",
                    version="1",
                    threshold=0.1,
                    inputs=inputs,
                    probability=0.05 + 0.9 * (i % 2),
                    decision=bool(i % 2),
                    shadow_version=None,
                )
            )
        log.append_sync(entries)
        for i, entry in enumerate(entries[:200]):
            log.append_outcome(entry["request_id"], i % 2, now)
    finally:
        log.close()


@pytest.mark.slow
def test_monitor_reports_drift_fires_the_trigger_and_records_it(
    platform: Platform,
    team: Team,
    clock: Clock,
    tmp_path: Path,
    hospital: Path,  # noqa: F811
) -> None:
    pipeline, version = trained_to_production(platform, team, clock, tmp_path, hospital)

    frame, _ = read_snapshot(
        find_snapshot(tmp_path / "artifacts", version.evidence["dataset_digest"]), platform.keys
    )
    names = [f["name"] for f in version.evidence["feature_schema"]]
    rows = frame[names].astype(object).where(frame[names].notna(), None).to_dict("records")

    _log_traffic(platform, rows, shift=0.0)
    calm = platform.monitor(team.engineer, "sepsis-prediction")
    assert calm["rows"] == len(rows) and calm["labelled"] == 200
    assert calm["drift_score"] < 0.3 and calm["trigger_fired"] is False
    assert Path(calm["report"]).exists()
    # No trigger yet: retraining on the trigger's behalf is refused, and nothing is prepared.
    with pytest.raises(InvalidTransition, match="has not fired"):
        platform.retrain(team.scientist, pipeline, tracker=_tracker(tmp_path), n_boot=50)

    clock.advance(days=8)  # a new window
    for column in names:  # every numeric feature moves: a changed assay, a new population
        frame[column] = frame[column] * 1.5 if frame[column].dtype.kind == "f" else frame[column]
    rows = frame[names].astype(object).where(frame[names].notna(), None).to_dict("records")
    _log_traffic(platform, rows, shift=40.0)
    drifted = platform.monitor(team.engineer, "sepsis-prediction")
    assert drifted["drift_score"] > 0.3 and drifted["trigger_fired"] is True
    actions = [
        e.action for e in platform.list_audit_events(team.auditor, subject_id="sepsis-prediction")
    ]
    assert actions.count("monitoring.checked") == 2
    assert "monitoring.retraining_triggered" in actions
    # A fired trigger deploys nothing: production is unchanged.
    assert platform.get_version(version.ref).state.value == "production"
    # The retrained candidate is compared with production on the same patients (DeLong).
    # Retraining answers the trigger: fresh data prepared, a candidate trained, nothing deployed.
    candidate = platform.retrain(
        team.scientist, pipeline, tracker=_tracker(tmp_path), repo=REPO, lock_file=None, n_boot=50
    )
    assert candidate.state.value == "candidate" and candidate.version == 2
    assert {g.gate for g in candidate.gate_results} == {g.gate for g in version.gate_results}
    retrained = platform.list_audit_events(team.auditor, action_prefix="monitoring.retrained")
    assert [(e.after or {}).get("candidate") for e in retrained] == [candidate.ref]
    assert platform.get_version(version.ref).state.value == "production"
    comparison = candidate.evidence["comparison_with_production"]
    assert comparison["production"] == version.ref
    assert comparison["method"].startswith("DeLong")
    assert comparison["candidate_auroc"] == pytest.approx(
        candidate.evidence["evaluation"]["test"]["metrics"]["auroc"]["value"]
    )
    # Same snapshot, same seed: the same model, so no difference (and no test statistic).
    assert comparison["difference"] == 0.0
    assert comparison["p_value"] is None and comparison["reason"]
