"""Monitoring alerts: a ledger event, a log line and a webhook POST — once per episode.

An alert is raised when a monitoring check crosses a threshold: performance below the pipeline's
``accuracy_alert_threshold`` (judged on the point estimate), dataset drift, or the retraining
trigger firing. Each alert that is not a duplicate

1. is recorded as a ``monitoring.alert`` ledger event (with its alert id, kind, metric, value,
   threshold and version),
2. is logged (WARNING; ids and figures only),
3. is POSTed as JSON to the configured webhook (``alert_webhook_url``), after the ledger commit,
   with a bounded number of attempts, exponential backoff, ``Retry-After`` honoured and a
   timeout per attempt. Retries carry the same ``Idempotency-Key`` (the alert id).

A delivery that still fails after every attempt is recorded as ``monitoring.alert_undelivered``;
it never fails the monitoring run.

De-duplication: the same (model, version, kind) alert is not sent again while it stays active
within the de-dup period (default: the pipeline's ``drift_check_interval``). Both facts come
from the ledger — the last ``monitoring.alert`` event of that kind and the previous
``monitoring.checked`` event's ``active_alerts`` — so de-duplication survives restarts and is
shared by every process. Nothing sent or logged holds patient data: model, version, metric,
value, threshold, time and the alert id.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import httpx

from bedside.domain.models import AuditEvent

if TYPE_CHECKING:
    from bedside.service import Platform

__all__ = [
    "ALERT_ACTION",
    "CHECKED_ACTION",
    "UNDELIVERED_ACTION",
    "Alert",
    "AlertKind",
    "DeliveryPolicy",
    "DeliveryResult",
    "deliver",
    "is_duplicate",
    "raise_alerts",
]

logger = logging.getLogger(__name__)

ALERT_ACTION: Final = "monitoring.alert"
UNDELIVERED_ACTION: Final = "monitoring.alert_undelivered"
CHECKED_ACTION: Final = "monitoring.checked"
ALERT_ACTOR: Final = "system"
_RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertKind(StrEnum):
    """What crossed a threshold."""

    PERFORMANCE = "performance"
    DATASET_DRIFT = "dataset_drift"
    RETRAINING_TRIGGER = "retraining_trigger"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as recorded and sent (figures and ids only)."""

    kind: AlertKind
    model: str
    version: str  # "sepsis-prediction@3"
    metric: str
    value: float | None
    threshold: float | str | None
    time: datetime
    reason: str
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def payload(self) -> dict[str, Any]:
        """Return the webhook body (and the ledger event's ``after``)."""
        value = self.value
        return {
            "source": "bedside",
            "alert_id": self.alert_id,
            "kind": self.kind.value,
            "model": self.model,
            "version": self.version,
            "metric": self.metric,
            "value": None if value is None or not math.isfinite(value) else value,
            "threshold": self.threshold,
            "time": self.time.astimezone(UTC).isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try: attempts, backoff (base × 2^k, capped), timeout per attempt."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of delivering one alert."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None  # what failed last (no URL, no body)


def _retry_after(response: httpx.Response, now: Callable[[], datetime]) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds (None when absent/bad)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def deliver(
    url: str,
    alert: Alert,
    *,
    policy: DeliveryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    transport: httpx.BaseTransport | None = None,
) -> DeliveryResult:
    """POST ``alert`` as JSON to ``url``, retrying what may succeed later.

    Connection errors, timeouts and 408/425/429/5xx answers are retried up to
    ``policy.attempts`` times, waiting ``base_delay × 2^k`` (at most ``max_delay``) or what
    ``Retry-After`` asks (also capped). Other 4xx answers are final. Never raises.
    """
    policy = policy or DeliveryPolicy()
    body = alert.payload()
    headers = {"Idempotency-Key": alert.alert_id, "User-Agent": "bedside-alerts"}
    last_status: int | None = None
    last_error: str | None = None
    attempt = 0
    try:
        client = httpx.Client(timeout=policy.timeout, transport=transport, follow_redirects=False)
    except Exception as exc:  # a malformed proxy or URL setting: report it, never raise
        return DeliveryResult(
            False, 0, None, f"cannot create the HTTP client: {type(exc).__name__}"
        )
    with client:
        for attempt in range(1, policy.attempts + 1):
            wait: float | None = None
            try:
                response = client.post(url, json=body, headers=headers)
            except httpx.InvalidURL:
                return DeliveryResult(False, attempt, None, "the webhook URL is not valid")
            except httpx.UnsupportedProtocol:
                return DeliveryResult(False, attempt, None, "the webhook URL is not http(s)")
            except httpx.TimeoutException:
                last_status, last_error = None, f"timed out after {policy.timeout:g} s"
            except httpx.HTTPError as exc:
                last_status, last_error = None, f"{type(exc).__name__}"
            else:
                last_status = response.status_code
                if 200 <= response.status_code < 300:
                    return DeliveryResult(True, attempt, response.status_code)
                last_error = f"HTTP {response.status_code}"
                if response.status_code not in _RETRY_STATUSES:
                    return DeliveryResult(False, attempt, response.status_code, last_error)
                wait = _retry_after(response, now)
            if attempt == policy.attempts:
                break
            if wait is None:
                wait = policy.base_delay * 2 ** (attempt - 1)
            sleep(min(wait, policy.max_delay))
    return DeliveryResult(False, attempt, last_status, last_error)


def is_duplicate(
    events: Sequence[AuditEvent],
    *,
    version: str,
    kind: AlertKind,
    now: datetime,
    period: timedelta,
) -> bool:
    """Say whether this alert was already sent and has stayed active within ``period``.

    ``events`` are the model's ``monitoring.*`` ledger events, oldest first, before this check.
    An alert is a duplicate when the last alert of the same version and kind was raised less
    than ``period`` ago and the previous check still had it active (it never cleared).
    """
    last_alert = next(
        (
            e
            for e in reversed(events)
            if e.action == ALERT_ACTION
            and (e.after or {}).get("version") == version
            and (e.after or {}).get("kind") == kind.value
        ),
        None,
    )
    if last_alert is None:
        return False
    raised = datetime.fromisoformat(last_alert.occurred_at.replace("Z", "+00:00"))
    if now - raised >= period:
        return False
    last_check = next((e for e in reversed(events) if e.action == CHECKED_ACTION), None)
    if last_check is None or last_check.seq < last_alert.seq:
        return True  # no check since the alert: the same episode
    after = last_check.after or {}
    return after.get("version") == version and kind.value in after.get("active_alerts", [])


def raise_alerts(
    platform: Platform,
    model_name: str,
    candidates: Sequence[Alert],
    *,
    history: Sequence[AuditEvent],
    period: timedelta,
    webhook_url: str | None,
    policy: DeliveryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[dict[str, Any]]]:
    """Record, log and deliver the alerts that are not duplicates; return what happened.

    ``history`` is the model's ``monitoring.*`` events read before this check. Returns
    ``{"sent": [...], "suppressed": [...], "undelivered": [...]}`` (payloads).
    """
    now = platform.now()
    fresh = [
        a
        for a in candidates
        if not is_duplicate(history, version=a.version, kind=a.kind, now=now, period=period)
    ]
    suppressed = [a.payload() for a in candidates if a not in fresh]
    if fresh:
        with platform._tx() as tx:
            for alert in fresh:
                platform._event(
                    tx,
                    ALERT_ACTOR,
                    ALERT_ACTION,
                    "model",
                    model_name,
                    after={**alert.payload(), "delivery": "webhook" if webhook_url else "none"},
                    reason=alert.reason,
                )
    for alert in fresh:
        logger.warning(
            "monitoring alert %s: %s %s %s=%s (threshold %s)",
            alert.alert_id,
            alert.kind.value,
            alert.version,
            alert.metric,
            alert.value,
            alert.threshold,
        )
    for payload in suppressed:
        logger.info(
            "monitoring alert %s for %s still active; not sent again (de-dup)",
            payload["kind"],
            payload["version"],
        )
    undelivered: list[dict[str, Any]] = []
    if webhook_url:
        for alert in fresh:
            result = deliver(webhook_url, alert, policy=policy, sleep=sleep, now=platform.now)
            if result.delivered:
                logger.info(
                    "alert %s delivered after %d attempt(s)", alert.alert_id, result.attempts
                )
                continue
            logger.error(
                "alert %s not delivered after %d attempt(s): %s",
                alert.alert_id,
                result.attempts,
                result.error,
            )
            record = {
                "alert_id": alert.alert_id,
                "kind": alert.kind.value,
                "version": alert.version,
                "attempts": result.attempts,
                "status": result.status,
                "error": result.error,
            }
            undelivered.append(record)
            try:
                with platform._tx() as tx:
                    platform._event(
                        tx,
                        ALERT_ACTOR,
                        UNDELIVERED_ACTION,
                        "model",
                        model_name,
                        after=record,
                        reason="the alert webhook did not accept the alert after every attempt",
                    )
            except Exception:  # the run must not fail because of a delivery record
                logger.exception("could not record the undelivered alert %s", alert.alert_id)
    return {
        "sent": [a.payload() for a in fresh],
        "suppressed": suppressed,
        "undelivered": undelivered,
    }
