"""The monitoring stage: the live version's traffic over time, alerts and the retraining trigger.

:func:`run_monitoring` reads everything the inference log holds for the production version,
splits it into time buckets (:func:`bedside.domain.monitoring.plan_buckets`) and computes per
bucket: drift per feature and of the score against the version's reference profile (built once
at training, read once here), the score distribution, the alert rate, performance with
bootstrap intervals where outcomes arrived, and subgroup metrics (``attributes`` sent with the
predictions). The **newest bucket** — one monitoring ``window`` ending now, once there are two
windows of data — is the check: its figures feed the alerts and the pipeline's
``retraining_trigger`` (safe grammar). It writes the monitoring report (over time) and the drift
report (newest bucket), records ``monitoring.checked`` (figures only) and, when they fire,
``monitoring.alert`` (de-duplicated, sent to the webhook; see :mod:`bedside.alerts`) and
``monitoring.retraining_triggered``. A fired trigger never deploys anything: a retrained
candidate must pass the same gates and signatures.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from bedside.alerts import Alert, AlertKind, DeliveryPolicy, raise_alerts
from bedside.domain import monitoring as mon
from bedside.domain.models import User, VersionState
from bedside.domain.permissions import Permission
from bedside.errors import InvalidInput, InvalidTransition

if TYPE_CHECKING:
    from bedside.domain.drift_profile import ReferenceProfile
    from bedside.domain.models import ModelVersion
    from bedside.domain.spec import PipelineSpec
    from bedside.service import Platform
    from bedside.serving.log_reader import InferenceRecord

__all__ = ["SCHEDULER_ACTOR", "run_monitoring"]

logger = logging.getLogger(__name__)

SCHEDULER_ACTOR: Final = "system:scheduler"
DEFAULT_N_BOOT: Final = 200


def _live_version(
    platform: Platform, actor: User | None, model_name: str
) -> tuple[ModelVersion, str, str]:
    """Return the production version and its pipeline file (content, name)."""

    def find(tx: Any) -> tuple[ModelVersion, str, str]:
        model = tx.registry.get_model(model_name)
        live = next(
            (v for v in tx.registry.list_versions(model) if v.state is VersionState.PRODUCTION),
            None,
        )
        if live is None:
            raise InvalidTransition(f"{model_name} has no production version to monitor.")
        record = tx.registry.find_pipeline(live.pipeline_sha256 or "")
        if record is None:
            raise InvalidInput(
                f"{live.ref} has no registered pipeline file; register it with: bedside "
                "pipeline register PIPELINE.yaml"
            )
        return live, record.content, record.name

    if actor is None:
        with platform._tx() as tx:
            return find(tx)
    with platform._authorised(actor, Permission.READ_METRICS, "model", model_name) as tx:
        return find(tx)


def _profile(platform: Platform, live: ModelVersion) -> ReferenceProfile:
    from bedside.domain.drift import ReferenceProfile
    from bedside.service import PROFILE_FILE, model_context
    from bedside.stores.crypto import decrypt_bytes

    assert platform.artifacts_root is not None
    path = platform.artifacts_root / "models" / live.model_name / str(live.version) / PROFILE_FILE
    if not path.exists():
        raise InvalidInput(
            f"{live.ref} has no drift reference profile ({path.name}); it is written at "
            "training. Retrain the version, or restore its artifacts folder."
        )
    plain = decrypt_bytes(
        path.read_bytes(), key_ring=platform.keys, context=model_context(live) + ":profile"
    )
    return ReferenceProfile.from_json(bytes(plain).decode("utf-8"))


def _gate(spec: PipelineSpec) -> tuple[str, int, int]:
    """Return the fairness gate's metric and minimums (defaults without a gate)."""
    for gate in spec.validation.fairness:
        return gate.metric, gate.min_group_size, gate.min_group_events
    return "equalized_odds", 30, 10


def _bucket(
    rows: list[InferenceRecord],
    profile: ReferenceProfile,
    *,
    threshold: float,
    n_boot: int,
    gate: tuple[str, int, int],
) -> dict[str, Any]:
    """Every figure of one bucket (aggregates only)."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    probabilities = np.array([float(r.probability or 0.0) for r in rows])
    decisions = np.array([bool(r.decision) for r in rows])
    current = pd.DataFrame([r.inputs for r in rows])
    for name in profile.feature_names:
        if name not in current.columns:
            current[name] = None
    if profile.prediction is not None:
        current[profile.prediction.name] = probabilities
    drift, untestable = mon.bucket_drift(profile, current)
    labelled = [r for r in rows if r.outcome is not None]
    y = [int((r.outcome or {})["label"]) for r in labelled]
    p = [float(r.probability or 0.0) for r in labelled]
    perf = mon.performance(y, p, threshold=threshold, n_boot=n_boot, seed=0)
    metric, min_size, min_events = gate
    groups = None
    if any(r.attributes for r in rows):
        groups = mon.subgroups(
            [r.attributes for r in rows],
            decisions,
            y_true=[int(r.outcome["label"]) if r.outcome is not None else None for r in rows],
            y_prob=probabilities,
            threshold=threshold,
            n_boot=n_boot,
            seed=0,
            gap_metric=metric,
            min_group_size=min_size,
            min_group_events=min_events,
        )
    small = n < mon.SMALL_CELL
    return {
        "n": n if not small else mon.FEWER_THAN,
        "n_labelled": len(labelled)
        if len(labelled) >= mon.SMALL_CELL or not labelled
        else mon.FEWER_THAN,
        "label_coverage": len(labelled) / n,
        "alert_rate": None if small else float(decisions.mean()),
        "mean_prediction": None if small else float(probabilities.mean()),
        "scores": mon.score_summary(probabilities),
        "drift": mon.drift_figures(drift, untestable),
        "performance": perf,
        "subgroups": groups,
        "_drift_result": drift,
    }


_LEDGER_GROUP_METRICS = ("sensitivity", "specificity", "ppv", "auroc")


def _subgroup_digest(newest: dict[str, Any]) -> list[dict[str, Any]]:
    """The newest bucket's subgroup figures, small enough for the ledger (no small counts).

    One entry per group: attribute, group, size (already suppressed below the small-cell size),
    alert rate and the metrics that are defined, each with its interval.
    """
    digest = []
    for attribute, block in ((newest.get("subgroups") or {}).get("attributes") or {}).items():
        for group in block.get("groups") or ():
            metrics = {
                name: {k: estimate.get(k) for k in ("value", "ci_lower", "ci_upper")}
                for name, estimate in (group.get("metrics") or {}).items()
                if name in _LEDGER_GROUP_METRICS
                and isinstance(estimate, dict)
                and estimate.get("value") is not None
            }
            digest.append(
                {
                    "attribute": attribute,
                    "group": group.get("group"),
                    "n": group.get("n"),
                    "alert_rate": group.get("alert_rate"),
                    "metrics": metrics,
                }
            )
    return digest


def _trigger_values(
    newest: dict[str, Any], *, n_rows: int, days_since_training: float
) -> dict[str, float]:
    """The newest bucket's figures under the names the trigger grammar knows."""
    values: dict[str, float] = {
        "prediction_count": float(n_rows),
        "label_coverage": float(newest["label_coverage"]),
        "days_since_training": days_since_training,
    }
    drift = newest["drift"]
    # Too few predictions to tell drift from noise: the trigger cannot use the drift figures.
    if drift.get("drift_score") is not None and n_rows >= mon.MIN_ROWS_FOR_DRIFT_ALERT:
        values.update(
            drift_score=float(drift["drift_score"]),
            share_of_drifted_features=float(drift["drift_score"]),
            drifted_features=float(drift["n_drifted"]),
        )
        if drift.get("prediction_drift") is not None:
            values["prediction_drift"] = float(drift["prediction_drift"])
    if newest["alert_rate"] is not None:
        values["alert_rate"] = float(newest["alert_rate"])
        values["mean_prediction"] = float(newest["mean_prediction"])
    metrics = (newest["performance"] or {}).get("metrics") or {}
    for name, estimate in metrics.items():
        for suffix, key in (("", "value"), ("_ci_lower", "ci_lower"), ("_ci_upper", "ci_upper")):
            number = estimate.get(key)
            if number is not None and math.isfinite(number):
                values[name + suffix] = float(number)
    groups = newest.get("subgroups") or {}
    if groups.get("max_disparity") is not None:
        values["max_disparity"] = float(groups["max_disparity"])
    return values


def run_monitoring(
    platform: Platform,
    actor: User | None,
    model_name: str,
    *,
    window: timedelta | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    webhook_url: str | None = None,
    delivery: DeliveryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    reports: bool = True,
) -> dict[str, Any]:
    """Check the production version of ``model_name`` over time; record and alert.

    Args:
        platform: the open project.
        actor: who asked; ``None`` for the scheduled check inside the server (recorded as
            ``system:scheduler``, no permission check).
        model_name: the registered model.
        window: the bucket length; default the pipeline's ``monitoring.window``.
        n_boot: bootstrap resamples for every interval.
        webhook_url: where alerts are POSTed; default the platform's ``alert_webhook_url``
            setting (none: alerts are recorded and logged only).
        delivery: attempts, backoff and timeout of the webhook.
        sleep: how to wait between webhook attempts (tests pass a recorder).
        reports: write the monitoring and drift reports (HTML + JSON); False records the
            check and its alerts only (the figures cost most of a check's time).

    Returns:
        A summary: the version, the newest bucket's figures (``values``), drift, alert and
        trigger verdicts, what was alerted, and the report paths.

    Raises:
        InvalidTransition: the model has no production version.
        InvalidInput: no project folder, no reference profile, or no prediction of the live
            version in the newest window ("nothing to monitor yet").
        PermissionDenied: ``actor`` may not read the model's metrics.
    """
    from bedside.domain.specfile import load_pipeline_text
    from bedside.reports.drift import write_drift_report
    from bedside.reports.monitoring import write_monitoring_report
    from bedside.serving.log_reader import InferenceLogReader

    if platform.home is None or platform.artifacts_root is None:
        raise InvalidInput("This platform has no project folder; open it from settings.")
    started = time.perf_counter()
    actor_name = SCHEDULER_ACTOR if actor is None else actor.username
    live, content, source = _live_version(platform, actor, model_name)
    spec = load_pipeline_text(content, source=source).spec
    stage = spec.monitoring
    span = window or stage.window
    now = platform.now()
    profile = _profile(platform, live)
    version = str(live.version)
    rows = sorted(
        (
            r
            for r in InferenceLogReader(
                platform.home / "inference-log", key_ring=platform.keys
            ).records()
            if r.model == model_name and r.version == version
        ),
        key=lambda r: r.received,
    )
    if not rows or rows[-1].received < now - span:
        raise InvalidInput(
            f"No predictions of {live.ref} in the last {span}; nothing to monitor yet."
        )
    plan = mon.plan_buckets(
        rows[0].received, rows[-1].received, window=span, now=now, n_rows=len(rows)
    )
    where = plan.assign([r.received for r in rows])
    threshold = float(live.evidence.get("threshold", rows[-1].threshold or 0.5))
    gate = _gate(spec)
    buckets = []
    for bucket in plan.buckets:
        members = [r for r, k in zip(rows, where, strict=True) if k == bucket.index]
        figures = _bucket(members, profile, threshold=threshold, n_boot=n_boot, gate=gate)
        buckets.append({**bucket.to_dict(), **figures})
    newest = buckets[-1]
    newest_rows = sum(1 for k in where if k == plan.newest.index)
    if newest_rows == 0:
        raise InvalidInput(
            f"No predictions of {live.ref} in the newest bucket ({plan.newest.start:%Y-%m-%d %H:%M}"
            f" to {plan.newest.end:%Y-%m-%d %H:%M}); nothing to monitor yet."
        )
    values = _trigger_values(
        newest,
        n_rows=newest_rows,
        days_since_training=(now - live.created_at).total_seconds() / 86400,
    )

    trigger = stage.retraining_trigger
    fired: bool | None = None
    trigger_reason = None
    if trigger is not None:
        try:
            fired = trigger.evaluate(values)
        except InvalidInput as exc:  # a value the trigger needs (e.g. auroc) is not known yet
            fired, trigger_reason = None, str(exc)
    metric = stage.performance_metric
    candidates: list[Alert] = []
    performance_alert = metric in values and values[metric] < stage.accuracy_alert_threshold
    if performance_alert:
        candidates.append(
            Alert(
                AlertKind.PERFORMANCE,
                model_name,
                live.ref,
                metric,
                values[metric],
                stage.accuracy_alert_threshold,
                now,
                f"{metric} below accuracy_alert_threshold",
            )
        )
    drift_result = newest.pop("_drift_result")
    for b in buckets[:-1]:
        b.pop("_drift_result", None)
    drift_judged = newest_rows >= mon.MIN_ROWS_FOR_DRIFT_ALERT
    if drift_result is not None and drift_result.dataset_drift and drift_judged:
        candidates.append(
            Alert(
                AlertKind.DATASET_DRIFT,
                model_name,
                live.ref,
                "drift_score",
                drift_result.drift_score,
                drift_result.drift_share,
                now,
                "share of drifted features at or above the dataset drift share",
            )
        )
    if fired:
        candidates.append(
            Alert(
                AlertKind.RETRAINING_TRIGGER,
                model_name,
                live.ref,
                "retraining_trigger",
                1.0,
                str(trigger),
                now,
                "retraining_trigger fired; a new candidate must pass the same gates and signatures",
            )
        )

    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    folder = platform.home / "reports" / "monitoring" / model_name / stamp
    drift_html: Path | None = None
    if reports and drift_result is not None:
        drift_html, _ = write_drift_report(
            drift_result,
            folder,
            model=live.ref,
            window=f"{plan.newest.start:%Y-%m-%d %H:%M} to {plan.newest.end:%Y-%m-%d %H:%M} UTC",
            generated_at=now,
            retraining_trigger=None if trigger is None else str(trigger),
            trigger_fired=fired,
        )
    perf = newest["performance"]
    estimate = ((perf or {}).get("metrics") or {}).get(metric)
    summary: dict[str, Any] = {
        "version": live.ref,
        "rows": len(rows),
        "labelled": sum(1 for r in rows if r.outcome is not None),
        "checked_rows": newest_rows,
        "window": {
            "start": plan.newest.start.isoformat(),
            "end": plan.newest.end.isoformat(),
            "mode": plan.mode,
            "buckets": len(plan.buckets),
        },
        "drift_score": None if drift_result is None else drift_result.drift_score,
        "dataset_drift": False if drift_result is None else drift_result.dataset_drift,
        # Whether the newest bucket had enough predictions for its drift to be acted on.
        "drift_judged": drift_judged,
        "performance": (
            None
            if estimate is None
            else {
                "metric": metric,
                "value": estimate["value"],
                "ci_lower": estimate["ci_lower"],
                "ci_upper": estimate["ci_upper"],
                "threshold": stage.accuracy_alert_threshold,
            }
        ),
        "values": {k: round(v, 6) for k, v in values.items()},
        "trigger_fired": fired,
        "trigger_reason": trigger_reason,
        "alert": performance_alert,
        "active_alerts": [a.kind.value for a in candidates],
    }
    with platform._read() as tx:
        history = tx.audit.list_events(
            subject_type="model", subject_id=model_name, action_prefix="monitoring."
        )
    with platform._tx() as tx:
        platform._event(
            tx,
            actor_name,
            "monitoring.checked",
            "model",
            model_name,
            after={
                **{k: v for k, v in summary.items() if k not in ("values", "trigger_reason")},
                "values": {
                    k: v
                    for k, v in summary["values"].items()
                    if not k.endswith(("_ci_lower", "_ci_upper"))
                },
                "subgroups": _subgroup_digest(newest),
                "report": (
                    str((folder / "monitoring.html").relative_to(platform.home))
                    if reports
                    else None
                ),
            },
        )
        if fired:
            platform._event(
                tx,
                "system",
                "monitoring.retraining_triggered",
                "model",
                model_name,
                after={"trigger": str(trigger), "values": summary["values"]},
                reason="retraining_trigger fired; a new candidate must pass the same gates and "
                "signatures",
            )
    url = webhook_url if webhook_url is not None else getattr(platform, "alert_webhook_url", None)
    alerted = raise_alerts(
        platform,
        model_name,
        candidates,
        history=history,
        period=stage.drift_check_interval,
        webhook_url=url,
        policy=delivery,
        sleep=sleep,
    )
    if not reports:
        summary.update(alerts=alerted, report=None, report_json=None, drift_report=None)
        return summary
    with platform._read() as tx:
        timeline = [
            {
                "time": e.occurred_at,
                "action": e.action,
                "kind": (e.after or {}).get("kind"),
                "version": (e.after or {}).get("version"),
                "metric": (e.after or {}).get("metric"),
                "value": (e.after or {}).get("value"),
                "alert_id": (e.after or {}).get("alert_id"),
            }
            for e in tx.audit.list_events(
                subject_type="model", subject_id=model_name, action_prefix="monitoring.alert"
            )
        ]
    html, json_path = write_monitoring_report(
        {
            "model": model_name,
            "version": live.ref,
            "generated_at": now.isoformat(),
            "generated_by": actor_name,
            "threshold": threshold,
            "performance_metric": metric,
            "accuracy_alert_threshold": stage.accuracy_alert_threshold,
            "drift_check_interval_seconds": stage.drift_check_interval.total_seconds(),
            "retraining_trigger": None if trigger is None else str(trigger),
            "trigger_fired": fired,
            "plan": {
                "mode": plan.mode,
                "bucket_seconds": plan.length.total_seconds(),
                "window_seconds": span.total_seconds(),
            },
            "features": list(profile.feature_names),
            "reference_scores": (
                mon.reference_quantiles(profile.prediction.values, profile.prediction.counts)
                if profile.prediction is not None
                and isinstance(profile.prediction.values, np.ndarray)
                else None
            ),
            "buckets": buckets,
            "values": summary["values"],
            "alerts": alerted,
            "alerts_timeline": timeline,
            "drift_report": None if drift_html is None else drift_html.name,
        },
        folder,
    )
    summary.update(
        alerts=alerted,
        report=str(html),
        report_json=str(json_path),
        drift_report=None if drift_html is None else str(drift_html),
    )
    logger.info(
        "monitored %s: %d predictions in %d bucket(s) in %.1f s",
        live.ref,
        len(rows),
        len(buckets),
        time.perf_counter() - started,
    )
    return summary
