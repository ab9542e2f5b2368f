"""The monitoring stage over time: buckets, performance with CIs, subgroups, alerts, the trigger.

The production version here is registered through the platform and put in production through
the registry store (no training: these tests check monitoring, not models); its reference
profile is built from a synthetic training frame and encrypted exactly as training does.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bedside.domain.drift import build_profile
from bedside.domain.models import ModelVersion, VersionState
from bedside.errors import InvalidInput, InvalidTransition
from bedside.monitor_stage import SCHEDULER_ACTOR, run_monitoring
from bedside.service import PROFILE_FILE, Platform, model_context
from bedside.serving.inference_log import InferenceLog, outcome_entry, prediction_entry
from bedside.stores.crypto import encrypt_bytes
from tests.support import Clock, Team

MODEL = "sepsis-prediction"
FEATURES = ("heart_rate", "lactate", "temperature", "sex")


def _frame(rng: np.random.Generator, n: int, *, shift: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "heart_rate": rng.normal(90, 15, n) * shift,
            "lactate": rng.gamma(2.0, 1.0, n) * shift,
            "temperature": rng.normal(37.2, 0.6, n) * (1 + (shift - 1) / 10),
            "sex": rng.choice(["F", "M"], n),
        }
    )


def _probability(frame: pd.DataFrame) -> np.ndarray:
    z = (frame["heart_rate"] - 90) / 15 + (frame["lactate"] - 2) / 1.4 - 2.0
    return np.asarray(1 / (1 + np.exp(-z)), dtype=np.float64)


@pytest.fixture
def live(platform: Platform, team: Team, tmp_path: Path) -> ModelVersion:
    """Version 1 of the founding pipeline's model, in production, with its reference profile."""
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    version = platform.register_version(team.scientist, MODEL, evidence={"threshold": 0.5})
    with platform._tx() as tx:
        version = tx.registry.set_state(version, VersionState.PRODUCTION, now=platform.now())
    reference = _frame(np.random.default_rng(1), 3000)
    reference["prediction"] = _probability(reference)
    profile = build_profile(reference, columns=list(FEATURES), prediction_column="prediction")
    folder = platform.artifacts_root / "models" / MODEL / "1"
    folder.mkdir(parents=True)
    (folder / PROFILE_FILE).write_bytes(
        bytes(
            encrypt_bytes(
                profile.to_json().encode("utf-8"),
                key_ring=platform.keys,
                key_id=platform.keys.current_data_key_id(),
                context=model_context(version) + ":profile",
            )
        )
    )
    return version


def log_traffic(
    platform: Platform,
    frame: pd.DataFrame,
    *,
    start: float,
    spacing: float = 1.0,
    labels: np.ndarray | None = None,
    attributes: list[dict[str, str]] | None = None,
) -> None:
    """Write predictions for ``frame`` (and outcomes) as the server would."""
    assert platform.home is not None
    log = InferenceLog.open(platform.home / "inference-log", key_ring=platform.keys)
    try:
        p = _probability(frame)
        entries = [
            prediction_entry(
                request_id=str(uuid.uuid4()),
                received=start + i * spacing,
                model=MODEL,
                version="1",
                threshold=0.5,
                inputs=row,
                probability=float(p[i]),
                decision=bool(p[i] >= 0.5),
                shadow_version=None,
                attributes=None if attributes is None else attributes[i],
            )
            for i, row in enumerate(frame.to_dict("records"))
        ]
        outcomes = []
        if labels is not None:
            outcomes = [
                outcome_entry(e["request_id"], int(y), start + len(entries) * spacing, model=MODEL)
                for e, y in zip(entries, labels, strict=True)
            ]
        log.append_sync(entries + outcomes)
    finally:
        log.close()


def _actions(platform: Platform, team: Team) -> list[str]:
    return [e.action for e in platform.list_audit_events(team.auditor, subject_id=MODEL)]


def test_monitoring_splits_a_short_history_into_equal_buckets_and_records_the_check(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    rng = np.random.default_rng(2)
    now = platform.now().timestamp()
    log_traffic(platform, _frame(rng, 2400), start=now - 2400)
    result = run_monitoring(platform, team.engineer, MODEL, n_boot=50)
    assert result["version"] == "sepsis-prediction@1" and result["rows"] == 2400
    # At least 500 predictions per bucket on average: 2,400 make 4 buckets, not 12.
    assert result["window"]["mode"] == "equal" and result["window"]["buckets"] == 4
    assert result["checked_rows"] == pytest.approx(600, abs=2)  # the newest bucket only
    assert result["drift_judged"] is True
    assert result["drift_score"] < 0.5 and result["trigger_fired"] is False
    assert result["alerts"]["sent"] == [] and result["performance"] is None
    report = json.loads(Path(result["report_json"]).read_text(encoding="utf-8"))
    assert len(report["buckets"]) == 4
    assert sum(b["n"] for b in report["buckets"]) == 2400
    assert set(report["buckets"][0]["drift"]["features"]) == set(FEATURES)
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 4 and "http://" not in html
    checked = [
        e
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.checked"
    ]
    assert len(checked) == 1 and checked[0].actor == "eli"
    assert (
        checked[0].after is not None and checked[0].after["checked_rows"] == result["checked_rows"]
    )
    assert len(json.dumps(checked[0].after)) < 4000  # figures only, not the series


def test_monitoring_uses_window_buckets_once_two_windows_of_data_exist(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    rng = np.random.default_rng(3)
    day = 86400.0
    now = platform.now().timestamp()
    log_traffic(platform, _frame(rng, 300), start=now - 20 * day, spacing=day / 30)
    log_traffic(platform, _frame(rng, 600, shift=1.5), start=now - 3 * day, spacing=100)
    result = run_monitoring(platform, None, MODEL, n_boot=50, reports=False)
    assert result["window"]["mode"] == "window" and result["window"]["buckets"] == 3
    assert result["report"] is None
    assert result["checked_rows"] == 600 and result["dataset_drift"] is True
    assert result["trigger_fired"] is True  # drift_score > 0.3 in the newest bucket
    event = next(
        e
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.checked"
    )
    assert event.actor == SCHEDULER_ACTOR
    actions = _actions(platform, team)
    assert "monitoring.retraining_triggered" in actions
    kinds = {
        (e.after or {}).get("kind")
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.alert"
    }
    assert kinds == {"dataset_drift", "retraining_trigger"}
    # A fired trigger deploys nothing.
    assert platform.get_version(live.ref).state is VersionState.PRODUCTION


def test_monitoring_reports_performance_with_an_interval_and_alerts_on_the_point_estimate(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    rng = np.random.default_rng(4)
    frame = _frame(rng, 400)
    # Outcomes unrelated to the score: AUROC near 0.5, below accuracy_alert_threshold (0.80).
    labels = rng.integers(0, 2, 400)
    log_traffic(platform, frame, start=platform.now().timestamp() - 400, labels=labels)
    result = run_monitoring(
        platform, team.engineer, MODEL, window=timedelta(hours=1), n_boot=100, reports=False
    )
    perf = result["performance"]
    assert perf["metric"] == "auroc" and perf["threshold"] == 0.8
    assert perf["ci_lower"] < perf["value"] < perf["ci_upper"]
    assert perf["value"] < 0.8 and result["alert"] is True
    assert "performance" in [a["kind"] for a in result["alerts"]["sent"]]
    alert = next(
        e
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.alert"
    )
    assert alert.after is not None
    assert alert.after["metric"] == "auroc" and alert.after["value"] == pytest.approx(perf["value"])
    assert alert.after["version"] == "sepsis-prediction@1" and alert.after["alert_id"]


def test_monitoring_reports_subgroups_and_suppresses_small_cells(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    rng = np.random.default_rng(5)
    n = 390  # under 400: one bucket holds every record
    frame = _frame(rng, n)
    p = _probability(frame)
    labels = (rng.random(n) < p).astype(int)
    races = ["C" if i % 100 == 0 else ("A" if i % 3 == 1 else "B") for i in range(n)]
    attributes = [{"race": r} for r in races]
    log_traffic(
        platform, frame, start=platform.now().timestamp() - n, labels=labels, attributes=attributes
    )
    # One bucket: the data span less than the window and there are too few rows for more.
    result = run_monitoring(platform, team.engineer, MODEL, window=timedelta(hours=1), n_boot=100)
    report = json.loads(Path(result["report_json"]).read_text(encoding="utf-8"))
    newest = report["buckets"][-1]
    groups = {g["group"]: g for g in newest["subgroups"]["attributes"]["race"]["groups"]}
    assert groups["C"]["n"] == "fewer than 10" and groups["C"]["alert_rate"] is None
    assert groups["C"]["metrics"] is None
    # The hidden count cannot be recovered from the total: the next smallest is withheld.
    assert isinstance(groups["B"]["n"], int) and groups["A"]["n"] == "withheld"
    auroc = groups["B"]["metrics"]["auroc"]
    assert auroc["ci_lower"] <= auroc["value"] <= auroc["ci_upper"]
    gap = newest["subgroups"]["attributes"]["race"]["gaps"]["sensitivity"]
    assert gap["value"] is not None and gap["ci_lower"] <= gap["value"] <= gap["ci_upper"]
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "fewer than 10" in html and ">5<" not in html
    assert "max_disparity" in result["values"]
    # The ledger keeps the newest bucket's subgroup figures (for the dashboard), suppressed too.
    checked = next(
        e
        for e in platform.list_audit_events(team.auditor, subject_id=MODEL)
        if e.action == "monitoring.checked"
    )
    recorded = {g["group"]: g for g in (checked.after or {})["subgroups"]}
    assert recorded["C"]["n"] == "fewer than 10" and recorded["C"]["metrics"] == {}
    assert recorded["A"]["n"] == "withheld" and recorded["B"]["n"] == groups["B"]["n"]
    assert recorded["B"]["metrics"]["auroc"] == {
        k: auroc[k] for k in ("value", "ci_lower", "ci_upper")
    }


def test_monitoring_refuses_what_it_cannot_check(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    with pytest.raises(InvalidInput, match="nothing to monitor yet"):
        run_monitoring(platform, team.engineer, MODEL)
    log_traffic(
        platform, _frame(np.random.default_rng(6), 50), start=platform.now().timestamp() - 50
    )
    clock.advance(days=8)  # the traffic is older than the window
    with pytest.raises(InvalidInput, match="nothing to monitor yet"):
        run_monitoring(platform, None, MODEL)
    with platform._tx() as tx:
        tx.registry.set_state(live, VersionState.RETIRED, now=platform.now())
    with pytest.raises(InvalidTransition, match="no production version"):
        run_monitoring(platform, team.engineer, MODEL)


def test_drift_in_a_bucket_too_small_to_judge_is_shown_but_not_acted_on(
    platform: Platform, team: Team, clock: Clock, live: ModelVersion
) -> None:
    rng = np.random.default_rng(4)
    now = platform.now().timestamp()
    log_traffic(platform, _frame(rng, 200, shift=1.5), start=now - 200)
    result = run_monitoring(platform, team.engineer, MODEL, n_boot=50, reports=False)
    assert result["checked_rows"] == 200 and result["drift_judged"] is False
    assert result["dataset_drift"] is True  # computed and shown, as Evidently would say
    assert "drift_score" not in result["values"]  # the trigger cannot act on it
    assert result["trigger_fired"] is None and "drift_score" in result["trigger_reason"]
    assert result["alerts"]["sent"] == [] and result["active_alerts"] == []
    assert "monitoring.alert" not in _actions(platform, team)
