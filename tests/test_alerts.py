"""Alerts: webhook delivery with retries against a real HTTP receiver, and ledger de-duplication."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from bedside.alerts import (
    Alert,
    AlertKind,
    DeliveryPolicy,
    deliver,
    is_duplicate,
)
from bedside.domain.models import AuditEvent, ModelVersion
from bedside.monitor_stage import run_monitoring
from bedside.service import Platform
from tests.service.test_monitor_stage import MODEL, _frame, live, log_traffic  # noqa: F401
from tests.serving.support import free_port
from tests.support import Clock, Team

FAST = DeliveryPolicy(attempts=4, base_delay=0.01, max_delay=0.5, timeout=2.0)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first ``failures`` requests."""

    url: str
    failures: int = 0
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(
                {"body": json.loads(body), "key": self.headers.get("Idempotency-Key")}
            )
            if state.delay:
                time.sleep(state.delay)
            failing = len(state.requests) <= state.failures
            self.send_response(state.status if failing else 204)
            if failing and state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _alert(kind: AlertKind = AlertKind.PERFORMANCE) -> Alert:
    return Alert(
        kind,
        MODEL,
        f"{MODEL}@1",
        "auroc",
        0.71,
        0.8,
        datetime(2026, 3, 1, 9, tzinfo=UTC),
        "auroc below accuracy_alert_threshold",
    )


def test_deliver_retries_with_exponential_backoff_until_accepted(receiver: Receiver) -> None:
    receiver.failures = 2
    waits: list[float] = []
    alert = _alert()
    result = deliver(receiver.url, alert, policy=FAST, sleep=waits.append)
    assert result.delivered and result.attempts == 3 and result.status == 204
    assert waits == [0.01, 0.02]
    assert len(receiver.requests) == 3
    assert {r["key"] for r in receiver.requests} == {alert.alert_id}
    body = receiver.requests[-1]["body"]
    assert set(body) == {
        "source",
        "alert_id",
        "kind",
        "model",
        "version",
        "metric",
        "value",
        "threshold",
        "time",
        "reason",
    }
    assert body["model"] == MODEL and body["value"] == 0.71 and body["threshold"] == 0.8


def test_deliver_honours_retry_after_capped_by_the_policy(receiver: Receiver) -> None:
    receiver.failures, receiver.status, receiver.retry_after = 2, 429, "0"
    waits: list[float] = []
    assert deliver(receiver.url, _alert(), policy=FAST, sleep=waits.append).delivered
    assert waits == [0.0, 0.0]
    receiver.requests.clear()
    receiver.failures, receiver.retry_after = 1, "120"
    waits.clear()
    assert deliver(receiver.url, _alert(), policy=FAST, sleep=waits.append).delivered
    assert waits == [FAST.max_delay]


def test_deliver_gives_up_after_the_last_attempt_and_on_a_permanent_refusal(
    receiver: Receiver,
) -> None:
    receiver.failures = 100
    waits: list[float] = []
    result = deliver(receiver.url, _alert(), policy=FAST, sleep=waits.append)
    assert not result.delivered and result.attempts == FAST.attempts
    assert result.error == "HTTP 503" and len(waits) == FAST.attempts - 1
    receiver.requests.clear()
    receiver.status = 400
    result = deliver(receiver.url, _alert(), policy=FAST, sleep=waits.append)
    assert not result.delivered and result.attempts == 1 and len(receiver.requests) == 1


def test_deliver_survives_refused_connections_and_timeouts(receiver: Receiver) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    result = deliver(nobody, _alert(), policy=FAST, sleep=lambda s: None)
    assert not result.delivered and result.attempts == FAST.attempts and result.error
    receiver.delay = 0.5
    slow = DeliveryPolicy(attempts=2, base_delay=0.0, timeout=0.1)
    result = deliver(receiver.url, _alert(), policy=slow, sleep=lambda s: None)
    assert not result.delivered and result.error == "timed out after 0.1 s"
    result = deliver("ftp://127.0.0.1/hook", _alert(), policy=FAST, sleep=lambda s: None)
    assert not result.delivered and result.attempts == 1


def _event(seq: int, action: str, when: datetime, after: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        occurred_at=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor="system",
        action=action,
        subject_type="model",
        subject_id=MODEL,
        before=None,
        after=after,
        reason="",
        prev_hash="",
        hash="",
    )


def test_an_alert_is_a_duplicate_only_while_it_stays_active_within_the_period() -> None:
    t0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
    version, kind, period = f"{MODEL}@1", AlertKind.DATASET_DRIFT, timedelta(hours=24)
    raised = _event(1, "monitoring.alert", t0, {"version": version, "kind": kind.value})
    active = _event(2, "monitoring.checked", t0, {"version": version, "active_alerts": [kind]})
    cleared = _event(
        3, "monitoring.checked", t0 + timedelta(hours=1), {"version": version, "active_alerts": []}
    )
    later = t0 + timedelta(hours=2)
    assert is_duplicate([raised, active], version=version, kind=kind, now=later, period=period)
    # It cleared in between: a new episode, sent again.
    assert not is_duplicate(
        [raised, active, cleared], version=version, kind=kind, now=later, period=period
    )
    # The period has passed: sent again as a reminder.
    assert not is_duplicate(
        [raised, active], version=version, kind=kind, now=t0 + period, period=period
    )
    # Another kind or another version is not the same alert.
    assert not is_duplicate(
        [raised, active], version=version, kind=AlertKind.PERFORMANCE, now=later, period=period
    )
    assert not is_duplicate(
        [raised, active], version=f"{MODEL}@2", kind=kind, now=later, period=period
    )


def _drifted_traffic(platform: Platform) -> None:
    rng = np.random.default_rng(11)
    # 500 predictions: the fewest whose drift monitoring acts on (MIN_ROWS_FOR_DRIFT_ALERT).
    log_traffic(platform, _frame(rng, 500, shift=1.6), start=platform.now().timestamp() - 500)


def _scheduled_check(platform: Platform, receiver: Receiver) -> dict[str, Any]:
    """The server's scheduled check, alerting ``receiver`` without waiting between attempts."""
    return run_monitoring(
        platform,
        None,
        MODEL,
        n_boot=20,
        webhook_url=receiver.url,
        delivery=FAST,
        sleep=lambda s: None,
        reports=False,
    )


def _alert_events(platform: Platform, team: Team, action: str) -> list[AuditEvent]:
    return [
        e for e in platform.list_audit_events(team.auditor, subject_id=MODEL) if e.action == action
    ]


def test_monitoring_sends_each_alert_once_per_episode_and_survives_a_failing_webhook(
    platform: Platform,
    team: Team,
    clock: Clock,
    live: ModelVersion,  # noqa: F811 - a fixture
    receiver: Receiver,
) -> None:
    _drifted_traffic(platform)
    receiver.failures = 1
    first = _scheduled_check(platform, receiver)
    kinds = sorted(a["kind"] for a in first["alerts"]["sent"])
    assert kinds == ["dataset_drift", "retraining_trigger"] and not first["alerts"]["undelivered"]
    delivered = {r["body"]["alert_id"] for r in receiver.requests}
    assert delivered == {a["alert_id"] for a in first["alerts"]["sent"]}
    assert len(_alert_events(platform, team, "monitoring.alert")) == 2

    # Still active an hour later: recorded as active, not sent again (state from the ledger).
    clock.advance(hours=1)
    count = len(receiver.requests)
    second = _scheduled_check(platform, receiver)
    assert second["alerts"]["sent"] == [] and len(second["alerts"]["suppressed"]) == 2
    assert len(receiver.requests) == count
    assert len(_alert_events(platform, team, "monitoring.alert")) == 2

    # After the de-dup period (drift_check_interval, 24 h) it is sent again; the webhook is
    # down now: the run still succeeds and the failed delivery is in the ledger.
    clock.advance(hours=24)
    receiver.failures = 1000
    third = _scheduled_check(platform, receiver)
    assert len(third["alerts"]["sent"]) == 2 and len(third["alerts"]["undelivered"]) == 2
    undelivered = _alert_events(platform, team, "monitoring.alert_undelivered")
    assert {(e.after or {})["alert_id"] for e in undelivered} == {
        a["alert_id"] for a in third["alerts"]["sent"]
    }
    assert all((e.after or {})["attempts"] == FAST.attempts for e in undelivered)
