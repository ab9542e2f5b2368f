"""The monitoring report: self-contained HTML with its figures, JSON, no small counts."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bedside.domain import monitoring as mon
from bedside.domain.drift import build_profile
from bedside.reports.monitoring import write_monitoring_report

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _data(*, attributes: bool = True) -> dict[str, Any]:
    """Report data built with the domain functions, as the monitoring stage builds it."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"hr": rng.normal(90, 15, 2000), "lactate": rng.gamma(2, 1, 2000)})
    reference["prediction"] = rng.beta(2, 8, 2000)
    profile = build_profile(reference, columns=["hr", "lactate"], prediction_column="prediction")
    scores = profile.prediction
    assert scores is not None
    buckets = []
    for k in range(4):
        n = 300
        current = pd.DataFrame(
            {"hr": rng.normal(90 + 10 * k, 15, n), "lactate": rng.gamma(2, 1, n)}
        )
        current["prediction"] = p = rng.beta(2, 8, n)
        y = (rng.random(n) < p * 2).astype(int)
        drift, untestable = mon.bucket_drift(profile, current)
        groups = ["<b>X</b>"] * 150 + ["Y"] * 146 + ["Z"] * 4
        buckets.append(
            {
                "index": k,
                "start": (T0 + timedelta(days=7 * k)).isoformat(),
                "end": (T0 + timedelta(days=7 * (k + 1))).isoformat(),
                "n": n,
                "n_labelled": n,
                "label_coverage": 1.0,
                "alert_rate": float((p >= 0.3).mean()),
                "mean_prediction": float(p.mean()),
                "scores": mon.score_summary(p),
                "drift": mon.drift_figures(drift, untestable),
                "performance": mon.performance(y, p, threshold=0.3, n_boot=50, seed=0),
                "subgroups": (
                    mon.subgroups(
                        [{"race": g} for g in groups],
                        p >= 0.3,
                        y_true=list(y),
                        y_prob=p,
                        threshold=0.3,
                        n_boot=50,
                        seed=0,
                    )
                    if attributes
                    else None
                ),
            }
        )
    return {
        "model": "sepsis-prediction",
        "version": "sepsis-prediction@1",
        "generated_at": (T0 + timedelta(days=28)).isoformat(),
        "generated_by": "eli",
        "threshold": 0.3,
        "performance_metric": "auroc",
        "accuracy_alert_threshold": 0.8,
        "drift_check_interval_seconds": 86400.0,
        "retraining_trigger": "drift_score > 0.3",
        "trigger_fired": True,
        "plan": {"mode": "window", "bucket_seconds": 7 * 86400.0, "window_seconds": 7 * 86400.0},
        "features": ["hr", "lactate"],
        "reference_scores": mon.reference_quantiles(np.asarray(scores.values), scores.counts),
        "buckets": buckets,
        "values": {"drift_score": 0.5, "auroc": math.nan},
        "alerts": {
            "sent": [
                {
                    "alert_id": "a1",
                    "kind": "dataset_drift",
                    "metric": "drift_score",
                    "value": 0.5,
                    "threshold": 0.5,
                    "version": "sepsis-prediction@1",
                }
            ],
            "suppressed": [],
            "undelivered": [
                {
                    "alert_id": "a1",
                    "kind": "dataset_drift",
                    "version": "sepsis-prediction@1",
                    "attempts": 5,
                    "status": 503,
                    "error": "HTTP 503",
                }
            ],
        },
        "alerts_timeline": [
            {
                "time": "2026-03-29T00:00:00.000000Z",
                "action": "monitoring.alert",
                "kind": "dataset_drift",
                "version": "sepsis-prediction@1",
                "metric": "drift_score",
                "value": 0.5,
                "alert_id": "a1",
            },
            {
                "time": "2026-03-29T00:00:01.000000Z",
                "action": "monitoring.alert_undelivered",
                "kind": "dataset_drift",
                "version": "sepsis-prediction@1",
                "metric": None,
                "value": None,
                "alert_id": "a1",
            },
        ],
        "drift_report": "drift.html",
    }


def test_monitoring_report_is_self_contained_with_every_figure(tmp_path: Path) -> None:
    html_path, json_path = write_monitoring_report(_data(), tmp_path)
    html = html_path.read_text(encoding="utf-8")
    # heatmap, scores, performance, one subgroup attribute, alerts timeline
    assert html.count('src="data:image/png;base64,') == 5
    assert not re.search(r"(src|href)=\"https?://", html)
    assert "<script" not in html.lower() and "&lt;b&gt;X&lt;/b&gt;" in html  # escaped
    assert "Monitoring report" in html and "sepsis-prediction@1" in html
    assert "drift_score &gt; 0.3" in html and "fired" in html
    assert "Webhook delivery failed" in html
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["values"]["auroc"] is None  # NaN becomes null
    assert len(data["buckets"]) == 4 and data["buckets"][0]["drift"]["features"]["hr"]


def test_monitoring_report_never_prints_a_small_count(tmp_path: Path) -> None:
    html_path, _ = write_monitoring_report(_data(), tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "fewer than 10" in html and "withheld" in html
    # Group Z (4 predictions) appears with no number of its own.
    row = re.search(r"<tr><td>Z</td>(.*?)</tr>", html, re.S)
    assert row is not None and "fewer than 10" in row.group(1)
    assert not re.search(r">\s*[1-9]\s*<", row.group(1))


def test_monitoring_report_without_attributes_or_outcomes_says_so(tmp_path: Path) -> None:
    data = _data(attributes=False)
    for bucket in data["buckets"]:
        bucket["performance"] = {"n": 0, "metrics": None, "reason": "fewer than 10 outcomes"}
    data["alerts"] = {"sent": [], "suppressed": [], "undelivered": []}
    data["alerts_timeline"] = []
    html_path, _ = write_monitoring_report(data, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "No stratification attributes were sent" in html
    assert "No alerts so far." in html and "No alert in the newest bucket" in html
    assert html.count('src="data:image/png;base64,') == 4


def test_monitoring_report_with_attributes_but_no_outcomes_renders(tmp_path: Path) -> None:
    """Subgroups sent with the requests before any outcome arrived: counts and alert rates only."""
    rng = np.random.default_rng(3)
    data = _data()
    for bucket in data["buckets"]:
        p = rng.beta(2, 8, 300)
        bucket["n_labelled"] = 0
        bucket["performance"] = {"n": 0, "metrics": None, "reason": "no outcomes yet"}
        bucket["subgroups"] = mon.subgroups(
            [{"race": g} for g in ["X"] * 150 + ["Y"] * 150],
            p >= 0.3,
            y_true=[None] * 300,
            y_prob=p,
            threshold=0.3,
            n_boot=50,
            seed=0,
        )
    html_path, _ = write_monitoring_report(data, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "Newest bucket by race" in html
    gap_row = re.search(r"Largest gap</th>(.*?)</tr>", html, re.S)
    assert gap_row is not None and gap_row.group(1).count("—") == 4
