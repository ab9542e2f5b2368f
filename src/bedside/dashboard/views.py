"""What the dashboard's pages show, computed from the record (no HTTP, no templates here).

Everything returned is an aggregate or a governance fact — versions, gates, signatures, subgroup
metrics, monitoring summaries, ledger events. Nothing here reads the inference log: the dashboard
never shows patient-level rows, whoever is signed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bedside.domain.models import AuditEvent, ModelVersion, VersionState

#: The version-page buttons, their lifecycle action, the permission they need and the states a
#: version must be in for the button to be offered (Platform enforces the rules either way).
ACTIONS: dict[str, tuple[str, tuple[VersionState, ...]]] = {
    "validate": ("Validate", (VersionState.CANDIDATE,)),
    "deploy-shadow": ("Deploy as shadow", (VersionState.APPROVED,)),
    "promote": ("Promote", (VersionState.SHADOW,)),
    "retire": (
        "Retire",
        (
            VersionState.CANDIDATE,
            VersionState.VALIDATED,
            VersionState.APPROVED,
            VersionState.SHADOW,
            VersionState.PRODUCTION,
        ),
    ),
}

#: Subgroup metrics shown in the fairness table, in order, when the evidence has them.
FAIRNESS_METRICS = ("auroc", "sensitivity", "specificity", "ppv", "brier")
#: Monitoring values plotted over time when present.
TREND_METRICS = ("drift_score", "auroc", "sensitivity", "alert_rate", "label_coverage")


def number(value: Any, digits: int = 3) -> str:
    """Format a number for a table cell ('—' when missing or undefined)."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def estimate(entry: Mapping[str, Any] | None, digits: int = 3) -> str:
    """Format ``{value, ci_lower, ci_upper}`` as ``0.812 (0.790–0.834)``."""
    if not entry or entry.get("value") is None:
        return "—"
    text = number(entry.get("value"), digits)
    lower, upper = entry.get("ci_lower"), entry.get("ci_upper")
    if lower is not None and upper is not None:
        text += f" ({number(lower, digits)}–{number(upper, digits)})"
    return text


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: its cells, already formatted."""

    cells: tuple[str, ...]
    status: str = ""


def lineage(version: ModelVersion) -> list[tuple[str, str]]:
    """Return the version's lineage as (label, value) pairs."""
    evidence = version.evidence
    pairs = [
        ("Run id", version.run_id or "not recorded"),
        ("Dataset digest", str(evidence.get("dataset_digest") or "not recorded")),
        ("Pipeline hash", version.pipeline_sha256 or "not recorded"),
        ("Estimator", str(evidence.get("estimator") or "not recorded")),
        ("Seed", number(evidence.get("seed")) if "seed" in evidence else "not recorded"),
        ("MLflow version", str(evidence.get("mlflow_version") or "not recorded")),
        ("Training rows", number(evidence.get("n_train")) if "n_train" in evidence else "—"),
        ("Registered by", version.created_by),
        ("Registered at", version.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    return pairs


def gate_rows(version: ModelVersion) -> list[Row]:
    """Return one row per recorded gate result: gate, verdict, summary, recorded by and when."""
    rows = []
    for gate in version.gate_results:
        verdict = str(gate.details.get("verdict") or ("pass" if gate.passed else "fail"))
        rows.append(
            Row(
                (
                    gate.gate,
                    verdict,
                    str(gate.details.get("summary") or ""),
                    gate.recorded_by,
                    gate.recorded_at.strftime("%Y-%m-%d %H:%M UTC"),
                ),
                status="pass" if gate.passed else "fail",
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class FairnessTable:
    """The subgroup metrics of a version (aggregates with intervals) and its disparities."""

    metrics: tuple[str, ...]
    rows: tuple[Row, ...]
    disparities: tuple[Row, ...] = ()
    threshold: str = "—"
    note: str = ""


def group_count(value: Any) -> str:
    """A subgroup count for display: 1 to 10 shows as "fewer than 11" (small-cell suppression,
    as in the validation report), so a rare group's size cannot help re-identify its patients."""
    from bedside.reports.validation import SMALL_CELL

    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < SMALL_CELL:
        return f"fewer than {SMALL_CELL}"
    return number(value)


def fairness_table(version: ModelVersion) -> FairnessTable | None:
    """Return the fairness table from the version's evidence, or None when none was assessed."""
    fairness = version.evidence.get("fairness")
    if not isinstance(fairness, Mapping):
        return None
    groups = [g for g in fairness.get("groups") or [] if isinstance(g, Mapping)]
    present = {name for g in groups for name in (g.get("metrics") or {})}
    metrics = tuple(m for m in FAIRNESS_METRICS if m in present)
    rows = []
    for g in groups:
        values = g.get("metrics") or {}
        rows.append(
            Row(
                (
                    str(g.get("attribute", "")),
                    str(g.get("group", "")),
                    group_count(g.get("n_patients", g.get("n_rows"))),
                    group_count(g.get("n_events")),
                    str(g.get("status", "")),
                    *(estimate(values.get(m)) for m in metrics),
                ),
                status=str(g.get("status", "")),
            )
        )
    disparities = tuple(
        Row(
            (
                str(d.get("attribute", "")),
                str(d.get("metric", "")),
                str(d.get("kind", "")),
                str(d.get("method", "")) + (f" ({d.get('agg')})" if d.get("agg") else ""),
                estimate(d),
                number(d.get("groups_compared")),
            )
        )
        for d in fairness.get("disparities") or []
        if isinstance(d, Mapping)
    )
    level = fairness.get("confidence_level")
    note = (
        f"{round(float(level) * 100)}% intervals: {fairness.get('ci_method', 'bootstrap')}"
        if (isinstance(level, int | float))
        else ""
    )
    assessed, signed = fairness.get("threshold"), version.evidence.get("threshold")
    if isinstance(assessed, int | float) and isinstance(signed, int | float) and assessed != signed:
        # The fairness gate was judged at training time, before reviewers chose the threshold.
        note = (
            f"assessed at training, before the operating threshold {number(signed)} was chosen "
            "at review (the operating point table shows that threshold)"
            + (f"; {note}" if note else "")
        )
    return FairnessTable(metrics, tuple(rows), disparities, number(assessed), note)


OPERATING_COLUMNS = (
    "threshold",
    "source",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "alerts_per_100",
)


def operating_points(version: ModelVersion) -> tuple[str, list[Row]]:
    """Return (split, rows) of the threshold table reviewers choose the operating point from."""
    evaluation = version.evidence.get("evaluation")
    if not isinstance(evaluation, Mapping) or not evaluation:
        return "", []
    split = "test" if "test" in evaluation else next(iter(evaluation))
    table = (evaluation.get(split) or {}).get("threshold_table") or []
    rows = [
        Row(
            tuple(
                number(r.get(c)) if c != "source" else str(r.get(c, "")) for c in OPERATING_COLUMNS
            )
        )
        for r in table
        if isinstance(r, Mapping)
    ]
    return str(split), rows


def operating_point(version: ModelVersion) -> list[tuple[str, str]]:
    """Return the signed-off (or provisional) threshold and its operating point."""
    evidence = version.evidence
    pairs = [
        ("Threshold", number(evidence.get("threshold"))),
        ("How it was chosen", str(evidence.get("threshold_rule") or "not recorded")),
    ]
    point = evidence.get("operating_point")
    if isinstance(point, Mapping):
        for key, label in (
            ("sensitivity", "Sensitivity"),
            ("specificity", "Specificity"),
            ("ppv", "PPV"),
            ("npv", "NPV"),
            ("alerts_per_100", "Alerts per 100 admissions"),
        ):
            pairs.append((label, number(point.get(key))))
    return pairs


# -- monitoring -----------------------------------------------------------------------------


@dataclass
class MonitoringView:
    """Monitoring checks, alerts and triggers of one model, oldest first."""

    checks: list[AuditEvent] = field(default_factory=list)
    alerts: list[AuditEvent] = field(default_factory=list)
    triggers: list[AuditEvent] = field(default_factory=list)

    @property
    def metric_names(self) -> list[str]:
        names: set[str] = set()
        for event in self.checks:
            names |= set(((event.after or {}).get("values") or {}).keys())
        preferred = [m for m in TREND_METRICS if m in names]
        return preferred + sorted(names - set(preferred))

    def series(self, metric: str) -> list[float | None]:
        out: list[float | None] = []
        for event in self.checks:
            value = ((event.after or {}).get("values") or {}).get(metric)
            out.append(float(value) if isinstance(value, int | float) else None)
        return out

    def subgroup_rows(self) -> list[Row]:
        """Subgroup metrics per check, when the checks recorded them (``after.subgroups``)."""
        rows = []
        for event in self.checks:
            subgroups = (event.after or {}).get("subgroups")
            if not isinstance(subgroups, list):
                continue
            for g in subgroups:
                if not isinstance(g, Mapping):
                    continue
                values = g.get("metrics") or g.get("values") or {}
                shown = "; ".join(
                    f"{k} {estimate(v) if isinstance(v, Mapping) else number(v)}"
                    for k, v in sorted(values.items())
                )
                rows.append(
                    Row(
                        (
                            event.occurred_at[:19].replace("T", " "),
                            str(g.get("attribute", "")),
                            str(g.get("group", "")),
                            number(g.get("n", g.get("n_rows"))),
                            shown,
                        )
                    )
                )
        return rows


def monitoring_view(model_name: str, events: Iterable[AuditEvent]) -> MonitoringView:
    """Sort the ledger's monitoring events of ``model_name`` into checks, alerts and triggers."""
    view = MonitoringView()
    for event in events:
        if event.subject_type != "model" or event.subject_id != model_name:
            continue
        if event.action == "monitoring.checked":
            view.checks.append(event)
        elif event.action == "monitoring.alert":
            view.alerts.append(event)
        elif event.action == "monitoring.retraining_triggered":
            view.triggers.append(event)
    return view


def sparkline(values: Sequence[float | None], *, width: int = 240, height: int = 48) -> str:
    """Return an inline SVG polyline of ``values`` (gaps skipped); empty with fewer than 2."""
    points = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(points) < 2:
        return ""
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = (high - low) or 1.0
    last = max(len(values) - 1, 1)
    pad = 4
    coords = " ".join(
        f"{pad + (width - 2 * pad) * i / last:.1f},"
        f"{height - pad - (height - 2 * pad) * (v - low) / span:.1f}"
        for i, v in points
    )
    return (
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-hidden="true" focusable="false">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{coords}"/></svg>'
    )


def event_summary(event: AuditEvent) -> str:
    """Return a short, aggregate-only description of an event's change for the audit table."""
    parts = []
    if event.before:
        parts.append("before " + _brief(event.before))
    if event.after:
        parts.append("after " + _brief(event.after))
    return "; ".join(parts)


def _brief(values: Mapping[str, Any], limit: int = 160) -> str:
    text = ", ".join(
        f"{k}={v if not isinstance(v, dict | list) else '…'}" for k, v in values.items()
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
