"""Fields and tables that several document kinds share, each built from :class:`Evidence`.

Every function returns ``None`` (or an empty table) when the record holds nothing for it, so
the document says *not recorded*; the ``SRC_*`` constants name where each value comes from.
"""

from __future__ import annotations

from typing import Any, Final

from bedside.documents.document import Entry, Table, fmt, fmt_estimate, join_lines
from bedside.documents.evidence import Evidence

SRC_CARD: Final = "the pipeline file's model_card: section ({key})"
SRC_PIPELINE: Final = "the registered pipeline file ({where})"
SRC_EVIDENCE: Final = "the version's training evidence ({where})"
SRC_EVAL: Final = "the version's evaluation on the {split} split (bootstrap over patients)"
SRC_FAIRNESS: Final = "the subgroup analysis in the version's evidence (bedside fairness)"
SRC_GATES: Final = "the gate results recorded in the registry at training"
SRC_MANIFEST: Final = "the dataset snapshot's manifest ({where})"
SRC_LEDGER: Final = "the audit ledger ({where})"
SRC_EXTERNAL: Final = (
    "an evaluation on data from another source than training (an external validation run); "
    "bedside records none yet"
)
SRC_LOCAL: Final = "bedside monitor on this site's inference log with outcomes (monitoring.checked)"

#: Metrics shown in overall tables, in order, with their labels.
METRICS: Final = (
    ("auroc", "AUROC"),
    ("auprc", "AUPRC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
    ("false_positive_rate", "False-positive rate"),
    ("brier", "Brier score"),
    ("ece", "Expected calibration error"),
    ("calibration_slope", "Calibration slope"),
    ("calibration_intercept", "Calibration intercept"),
    ("net_benefit", "Net benefit at the threshold"),
)
#: Metrics shown per subgroup.
GROUP_METRICS: Final = (
    ("auroc", "AUROC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "PPV"),
)


def card(ev: Evidence, key: str, label: str, *, doc_key: str = "") -> Entry:
    """Return the model-card field ``key`` (text only people can write)."""
    value = ev.model_card.get(key)
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value) or None
    return Entry(label, fmt(value), SRC_CARD.format(key=f"model_card.{key}"), doc_key)


def duration(value: Any) -> str:
    """Return a pipeline-file duration as words (``2_days`` → ``2 days``)."""
    return str(value).replace("_", " ")


def n(value: Any) -> str:
    """Return a count or a dash."""
    return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


# -- training, data and model --------------------------------------------------------------------


def model_type(ev: Evidence) -> str | None:
    estimator = ev.training.get("estimator")
    if not estimator:
        return None
    params = ev.training.get("params") or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return (
        f"{estimator}"
        + (f" ({shown})" if shown else "")
        + (f"; seed {ev.training['seed']}" if "seed" in ev.training else "")
    )


def output_text(ev: Evidence) -> str | None:
    label = ev.training.get("label") or (ev.stage("data_preparation").get("label") or {}).get(
        "name"
    )
    if not label:
        return None
    horizon = (ev.stage("data_preparation").get("label") or {}).get("horizon")
    threshold = threshold_text(ev)
    return join_lines(
        [
            f"A probability (0–1) that the outcome '{label}' occurs"
            + (f" within {duration(horizon)}" if horizon else "")
            + " after the prediction time.",
            f"An alert when the probability is at or above the operating threshold: {threshold}."
            if threshold
            else None,
        ]
    )


def threshold_text(ev: Evidence) -> str | None:
    if ev.operating_point and ev.operating_point.get("threshold") is not None:
        op = ev.operating_point
        parts = [f"{float(op['threshold']):.4f}, chosen at clinical review"]
        for key in ("sensitivity", "specificity", "ppv", "alerts_per_100"):
            if op.get(key) is not None:
                parts.append(f"{key.replace('_', ' ')} {float(op[key]):.3f}")
        return "; ".join(parts)
    threshold = ev.training.get("threshold")
    if threshold is None:
        return None
    rule = ev.training.get("threshold_rule")
    return f"{float(threshold):.4f}" + (f" ({rule})" if rule else "")


def cohort_text(ev: Evidence) -> str | None:
    cohort = ev.dataset.get("extraction", {}).get("cohort") or ev.stage("data_preparation").get(
        "cohort"
    )
    if not cohort:
        return None
    ages = f"age {cohort.get('min_age')}+" + (
        f" to {cohort['max_age']}" if cohort.get("max_age") is not None else ""
    )
    lines = [
        "Inclusion: encounters of class "
        + ", ".join(cohort.get("encounter_classes") or ["(any)"])
        + f", {ages}, predicted at {cohort.get('prediction_time')}.",
        "Exclusion: encounters where the outcome had already occurred at the prediction time."
        if cohort.get("exclude_prior_outcome")
        else None,
        f"Period: {cohort.get('start') or 'open'} to {cohort.get('end') or 'open'}."
        if cohort.get("start") or cohort.get("end")
        else None,
    ]
    return join_lines(lines)


def label_text(ev: Evidence) -> str | None:
    label = ev.stage("data_preparation").get("label")
    if not label:
        return None
    return (
        f"'{label.get('name')}' defined as {label.get('definition')}, "
        f"within {duration(label.get('horizon'))} after the prediction time."
    )


def features_text(ev: Evidence) -> str | None:
    features = ev.stage("data_preparation").get("features") or []
    if not features and not ev.feature_schema:
        return None
    lines = []
    for f in features:
        if f.get("kind") == "observation":
            lines.append(
                f"{f.get('name')}: {f.get('aggregation')} of LOINC "
                f"{', '.join(f.get('loinc') or [])} over {f.get('window')}"
                + (f" ({f['unit']})" if f.get("unit") else "")
            )
        else:
            lines.append(f"{f.get('name')}: {f.get('kind')}")
    if not lines:
        lines = [f"{f.get('name')}: {f.get('kind')}" for f in ev.feature_schema]
    return "\n".join(lines)


DEMOGRAPHIC_NAMES: Final = (
    "race",
    "ethnicity",
    "language",
    "sexual_orientation",
    "gender_identity",
    "sex",
    "age",
    "birth_date",
    "date_of_birth",
)


def demographic_inputs(ev: Evidence) -> str | None:
    names = [str(f.get("name")) for f in ev.feature_schema] or [
        str(f.get("name")) for f in ev.stage("data_preparation").get("features") or []
    ]
    if not names:
        return None
    used = [name for name in names if name in DEMOGRAPHIC_NAMES or name.startswith("age")]
    demographic = [
        str(f.get("name"))
        for f in ev.stage("data_preparation").get("features") or []
        if f.get("kind") == "demographic"
    ]
    used = sorted(set(used) | set(demographic))
    if not used:
        return "No demographic variable is an input feature (inputs: " + ", ".join(names) + ")."
    return (
        "Input features that are demographic variables: "
        + ", ".join(used)
        + ". Date of birth is used only as age at the prediction time."
        if "age" in used
        else "Input features that are demographic variables: " + ", ".join(used) + "."
    )


def dataset_text(ev: Evidence) -> str | None:
    counts = ev.dataset.get("counts")
    if not isinstance(counts, dict):
        return None
    lines = []
    for split in ("all", "train", "validation", "test"):
        c = counts.get(split)
        if isinstance(c, dict):
            lines.append(
                f"{split}: {n(c.get('rows'))} rows, {n(c.get('patients'))} patients, "
                f"{n(c.get('events'))} events (prevalence {fmt(c.get('prevalence'))}), "
                f"{c.get('first_date', '?')} to {c.get('last_date', '?')}"
            )
    return "\n".join(lines) or None


def split_text(ev: Evidence) -> str | None:
    split = ev.stage("data_preparation").get("split")
    if not split:
        return None
    fractions = split.get("fractions") or {}
    return (
        f"{split.get('method')} split by {split.get('by')} (no patient in two splits), "
        + ", ".join(f"{k} {v}" for k, v in fractions.items())
        + f"; seed {split.get('seed')}. Test data are sequestered from training."
    )


def source_text(ev: Evidence) -> str | None:
    source = ev.dataset.get("source") or ev.stage("data_preparation").get("source")
    if not source:
        return None
    kind = source.get("kind")
    types = ", ".join(source.get("resource_types") or [])
    return f"{kind} ({types})" if types else str(kind)


def deid_text(ev: Evidence) -> str | None:
    deid = ev.dataset.get("deidentification") or ev.stage("data_preparation").get(
        "deidentification"
    )
    if not deid:
        return None
    return (
        f"HIPAA {deid.get('method')} de-identification, {deid.get('pseudonym')} pseudonyms, "
        f"date shift {deid.get('date_shift_days')} days"
        + (f"; policy hash {deid['policy_hash']}" if deid.get("policy_hash") else "")
    )


def quality_text(ev: Evidence) -> str | None:
    quality = ev.dataset.get("quality")
    if not quality:
        return None
    counts = quality.get("status_counts") or {}
    return (
        f"Data-quality checks {'passed' if quality.get('passed') else 'did not pass'} "
        f"(minimum completeness {quality.get('min_completeness')}; "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + ")."
    )


# -- evaluation and fairness ---------------------------------------------------------------------


def split_summary(ev: Evidence, split: str) -> str | None:
    data = ev.evaluation.get(split)
    if not data:
        return None
    return (
        f"{n(data.get('n_rows'))} rows, {n(data.get('n_patients'))} patients, "
        f"{n(data.get('n_events'))} events (prevalence {fmt(data.get('prevalence'))}); "
        f"{fmt(data.get('confidence_level'), 2)} intervals by {data.get('ci_method')} "
        f"({data.get('n_boot')} resamples)."
    )


def metrics_table(ev: Evidence, split: str) -> Table:
    data = ev.evaluation.get(split) or {}
    metrics = data.get("metrics") or {}
    level = data.get("confidence_level")
    rows = tuple(
        (label, fmt_estimate(metrics.get(key), level) or "not recorded")
        for key, label in METRICS
        if key in metrics
    )
    return Table(
        f"Performance on the {split} split",
        ("Metric", "Estimate (CI)"),
        rows,
        SRC_EVAL.format(split=split),
        note=split_summary(ev, split) or "",
    )


def metric_summary(ev: Evidence, split: str, keys: tuple[str, ...]) -> str | None:
    data = ev.evaluation.get(split) or {}
    metrics = data.get("metrics") or {}
    level = data.get("confidence_level")
    lines = [
        f"{label}: {fmt_estimate(metrics.get(key), level)}"
        for key, label in METRICS
        if key in keys and fmt_estimate(metrics.get(key), level)
    ]
    if not lines:
        return None
    return "\n".join([f"{split} split — {split_summary(ev, split)}", *lines])


def subgroup_table(ev: Evidence) -> Table:
    groups = ev.fairness.get("groups") or []
    level = ev.fairness.get("confidence_level")
    rows = []
    for g in groups:
        metrics = g.get("metrics") or {}
        status = g.get("status") or ""
        rows.append(
            (
                str(g.get("attribute")),
                str(g.get("group")),
                n(g.get("n_patients")),
                n(g.get("n_events")),
                *(fmt_estimate(metrics.get(key), level) or "—" for key, _ in GROUP_METRICS),
                str(status),
            )
        )
    note = ""
    if ev.fairness:
        note = (
            f"Groups below {ev.fairness.get('min_group_size')} patients or "
            f"{ev.fairness.get('min_group_events')} events are marked as insufficient evidence."
        )
    return Table(
        "Performance by subgroup (test split)",
        ("Attribute", "Group", "Patients", "Events", *(lbl for _, lbl in GROUP_METRICS), "Status"),
        tuple(rows),
        SRC_FAIRNESS,
        note=note,
    )


def disparity_table(ev: Evidence) -> Table:
    rows = []
    for d in ev.fairness.get("disparities") or []:
        if d.get("kind") != "difference" or d.get("method") != "between_groups":
            continue
        rows.append(
            (
                str(d.get("attribute")),
                str(d.get("metric")),
                fmt_estimate(d, ev.fairness.get("confidence_level")) or "—",
                n(d.get("groups_compared")),
            )
        )
    return Table(
        "Largest difference between groups",
        ("Attribute", "Metric", "Difference (CI)", "Groups compared"),
        tuple(rows),
        SRC_FAIRNESS,
    )


def fairness_summary(ev: Evidence) -> str | None:
    gate = next((g for g in ev.gates if g.get("gate") == "fairness"), None)
    spec = ev.gate_spec("fairness")
    if gate is None and not isinstance(spec, dict):
        return None
    lines = []
    if isinstance(spec, dict):
        lines.append(
            f"Pre-specified: {spec.get('metric')} disparity at most {spec.get('max_disparity')} "
            f"across {', '.join(spec.get('stratify_by') or [])}; groups need "
            f"{spec.get('min_group_size')} patients and {spec.get('min_group_events')} events."
        )
    if gate is not None:
        lines.append(f"Result: {gate.get('summary') or gate.get('verdict')}.")
        for c in gate.get("checks") or []:
            lines.append(
                f"{c.get('attribute')}: {c.get('metric')} {fmt(c.get('value'))} "
                f"(CI {fmt(c.get('ci_lower'))}–{fmt(c.get('ci_upper'))}) vs "
                f"{c.get('direction')} {c.get('threshold')}: {c.get('verdict')}"
            )
    return "\n".join(lines)


def criteria_text(ev: Evidence) -> str | None:
    """Return the pipeline file's pre-specified acceptance criteria, one line per gate."""
    lines = []
    for gate in ev.stage("validation").get("gates") or []:
        for kind, spec in gate.items():
            if spec is None:
                continue
            if isinstance(spec, dict):
                shown = ", ".join(
                    f"{k} {v}"
                    for k, v in spec.items()
                    if v is not None and v != [] and k not in ("bootstrap_samples",)
                )
                lines.append(f"{kind}: {shown}")
            else:
                lines.append(f"{kind}: {spec}")
    return "\n".join(lines) or None


def gates_table(ev: Evidence) -> Table:
    rows = tuple(
        (
            str(g.get("gate")),
            "pass" if g.get("passed") else "FAIL",
            str(g.get("summary") or g.get("verdict") or ""),
            f"{g.get('recorded_at')} by {g.get('recorded_by')}",
        )
        for g in ev.gates
    )
    return Table(
        "Validation gates (pre-specified in the pipeline file, judged at training)",
        ("Gate", "Verdict", "Summary", "Recorded"),
        rows,
        SRC_GATES,
    )


def gate_checks_table(ev: Evidence) -> Table:
    rows = []
    for g in ev.gates:
        for c in g.get("checks") or []:
            rows.append(
                (
                    str(g.get("gate")),
                    str(c.get("metric") or c.get("key")),
                    str(c.get("attribute") or "overall"),
                    f"{c.get('direction') or ''} {fmt(c.get('threshold')) or ''}".strip() or "—",
                    fmt(c.get("value")) or "—",
                    f"{fmt(c.get('ci_lower')) or '—'}–{fmt(c.get('ci_upper')) or '—'}",
                    str(c.get("compared") or "—"),
                    str(c.get("verdict")),
                )
            )
    return Table(
        "Acceptance criteria and results, check by check",
        ("Gate", "Metric", "Over", "Criterion", "Value", "CI", "Judged on", "Verdict"),
        tuple(rows),
        SRC_GATES,
    )


def comparison_text(ev: Evidence) -> str | None:
    comparison = ev.comparison_with_production
    if not comparison:
        return None
    shown = {k: v for k, v in comparison.items() if not isinstance(v, dict | list)}
    return "; ".join(f"{k}: {fmt(v)}" for k, v in shown.items()) or None


def shadow_text(ev: Evidence) -> str | None:
    shadow = ev.shadow_report
    if not shadow:
        return None
    lines = [
        f"Shadow evaluation {'passed' if shadow.get('passed') else 'did not pass'}"
        + (f" (report SHA-256 {shadow['sha256']})" if shadow.get("sha256") else "")
        + "."
    ]
    summary = shadow.get("summary")
    if isinstance(summary, dict):
        lines.extend(f"{k}: {fmt(v)}" for k, v in summary.items() if not isinstance(v, dict))
    elif summary:
        lines.append(str(summary))
    return "\n".join(lines)


# -- deployment, monitoring, history -------------------------------------------------------------


def deployment_text(ev: Evidence) -> str | None:
    d = ev.stage("deployment")
    if not d:
        return None
    return (
        f"Strategy {d.get('strategy')}: the version first runs in shadow (predictions logged, "
        f"not shown) for {duration(d.get('shadow_duration'))}; "
        + ("promoted automatically" if d.get("auto_promote") else "promotion is manual")
        + f" and needs a promotion signature from: {', '.join(d.get('promotion_roles') or [])}. "
        "Rollback to the previous production version is one command (bedside rollback)."
    )


def review_text(ev: Evidence) -> str | None:
    review = ev.gate_spec("clinical_review")
    if not isinstance(review, dict):
        return None
    return (
        f"{review.get('required_approvers')} approving e-signatures from the roles "
        f"{', '.join(review.get('roles') or [])}, with password re-entry (21 CFR 11.200)."
    )


def monitoring_plan(ev: Evidence) -> str | None:
    m = ev.stage("monitoring")
    if not m:
        return None
    return join_lines(
        [
            f"Drift check every {duration(m.get('drift_check_interval'))} over a "
            f"{duration(m.get('window'))} window "
            "of the inference log.",
            f"Performance ({m.get('performance_metric')}) alert below "
            f"{m.get('accuracy_alert_threshold')} once outcomes are known."
            if m.get("accuracy_alert_threshold") is not None
            else None,
            f"Retraining trigger: {m.get('retraining_trigger')}."
            if m.get("retraining_trigger")
            else None,
        ]
    )


def retraining_text(ev: Evidence) -> str | None:
    trigger = ev.stage("monitoring").get("retraining_trigger")
    if not trigger:
        return None
    return (
        f"When `{trigger}` holds at a monitoring check, bedside records "
        "monitoring.retraining_triggered; a new candidate is trained by the same pipeline file "
        "and must pass the same gates and signatures before it can replace production."
    )


def monitoring_results(ev: Evidence) -> str | None:
    checks = [e for e in ev.monitoring_events if e.action == "monitoring.checked"]
    if not checks:
        return None
    alerts = [e for e in ev.monitoring_events if e.action == "monitoring.alert"]
    triggered = [e for e in ev.monitoring_events if e.action == "monitoring.retraining_triggered"]
    last = checks[-1]
    details = ", ".join(f"{k} {fmt(v)}" for k, v in last.details.items())
    return join_lines(
        [
            f"{len(checks)} monitoring check(s); last {last.occurred_at}: {details}.",
            f"{len(alerts)} alert(s)"
            + (f", last {alerts[-1].occurred_at}: {alerts[-1].details}" if alerts else "")
            + ".",
            f"Retraining triggered {len(triggered)} time(s)." if triggered else None,
        ]
    )


def local_validity(ev: Evidence) -> str | None:
    for e in reversed(ev.monitoring_events):
        if e.action == "monitoring.alert" or (
            e.action == "monitoring.checked" and e.details.get("alert") is not None
        ):
            return f"{e.occurred_at}: " + ", ".join(f"{k} {fmt(v)}" for k, v in e.details.items())
    return None


def history_table(ev: Evidence) -> Table:
    rows = tuple(
        (e.occurred_at, e.action, e.actor, ", ".join(f"{k}={fmt(v)}" for k, v in e.details.items()))
        for e in ev.version_events
        if e.action.startswith(("version.", "gate.", "threshold.", "signature."))
    )
    return Table(
        "Life-cycle history of this version",
        ("When (UTC)", "Event", "By", "Details"),
        rows,
        SRC_LEDGER.format(where="events whose subject is this version"),
    )


def lineage_text(ev: Evidence) -> str | None:
    parts = [
        f"pipeline file SHA-256 {ev.pipeline_sha256}" if ev.pipeline_sha256 else None,
        f"dataset digest {ev.training['dataset_digest']}"
        if ev.training.get("dataset_digest")
        else None,
        f"MLflow run {ev.run_id}" if ev.run_id else None,
        f"MLflow model version {ev.training['mlflow_version']}"
        if ev.training.get("mlflow_version")
        else None,
    ]
    return join_lines(parts)
