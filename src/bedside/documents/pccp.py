"""FDA Predetermined Change Control Plan (PCCP) skeleton, from the pipeline file and the record.

The three components of the FDA's final AI-PCCP guidance (December 2024; REGULATORY §3.1):
description of modifications, modification protocol (data management, re-training, performance
evaluation, update procedures) and impact assessment. The planned modification is the one the
pipeline file already governs: re-training the same model on new data when the retraining
trigger fires, judged by the same pre-specified gates and signed off the same way.
"""

from __future__ import annotations

from bedside.documents import common as c
from bedside.documents.document import Document, Entry, Section, Table, fmt, join_lines
from bedside.documents.evidence import Evidence

TITLE = "Predetermined Change Control Plan (skeleton)"
STANDARD = (
    "FDA, Marketing Submission Recommendations for a Predetermined Change Control Plan for "
    "AI-Enabled Device Software Functions (final guidance, December 2024): description of "
    "modifications, modification protocol, impact assessment. A skeleton filled from the record; "
    "a manufacturer completes and owns the submission."
)


def build(ev: Evidence) -> Document:
    """Return the PCCP skeleton of the version ``ev`` describes."""
    p = c.SRC_PIPELINE
    monitoring = ev.stage("monitoring")
    deployment = ev.stage("deployment")
    training = ev.stage("training")
    trigger = monitoring.get("retraining_trigger")
    modification = (
        (
            f"M1 — Re-training of {ev.model_name} on newer data from the same source, "
            f"when `{trigger}` holds at a monitoring check. Model weights and the operating "
            "threshold may change; the estimator, its hyper-parameters, the input features, "
            "the outcome definition and the intended use do not (they are fixed by the "
            "registered pipeline file; changing them needs a new pipeline file and a new "
            "submission)."
        )
        if trigger
        else None
    )
    traceability = Table(
        "Traceability: modification → protocol elements",
        ("Modification", "Data management", "Re-training", "Performance evaluation", "Update"),
        (("M1 re-training", "2.1", "2.2", "2.3", "2.4"),) if trigger else (),
        p.format(where="monitoring.retraining_trigger"),
    )
    sections = (
        Section(
            "1. Description of modifications",
            (
                Entry(
                    "Planned modification(s)",
                    modification,
                    p.format(where="monitoring.retraining_trigger"),
                ),
                Entry(
                    "Rationale",
                    "Keep performance as patients, practice and data drift over time "
                    "(GMLP principle 10)."
                    if trigger
                    else None,
                    p.format(where="monitoring.retraining_trigger"),
                ),
                Entry(
                    "Automatic or manual",
                    (
                        "Re-training starts when the trigger fires; release is manual: the "
                        "candidate needs clinical-review signatures and, after shadow, a "
                        "promotion signature"
                        + (" (auto_promote is on)" if deployment.get("auto_promote") else "")
                        + "."
                    )
                    if deployment
                    else None,
                    p.format(where="deployment.auto_promote"),
                ),
                Entry(
                    "Global or local",
                    None,
                    "a site or population scope for each modification; the pipeline file "
                    "names none yet",
                ),
                Entry(
                    "Specification after the change",
                    c.criteria_text(ev),
                    p.format(where="validation gates"),
                ),
                traceability,
            ),
        ),
        Section(
            "2. Modification protocol",
            (
                Entry(
                    "2.1 Data management practices",
                    join_lines(
                        [
                            c.source_text(ev) and f"Source: {c.source_text(ev)}.",
                            c.cohort_text(ev),
                            c.label_text(ev)
                            and f"Reference standard (outcome): {c.label_text(ev)}",
                            c.split_text(ev),
                            c.deid_text(ev),
                            c.quality_text(ev),
                            "Each dataset is an encrypted, content-addressed snapshot; its "
                            "digest is bound to the model version."
                            if ev.training.get("dataset_digest")
                            else None,
                        ]
                    ),
                    p.format(where="data_preparation") + " and the dataset manifest",
                ),
                Entry(
                    "2.2 Re-training practices",
                    join_lines(
                        [
                            c.retraining_text(ev),
                            c.model_type(ev) and f"Model: {c.model_type(ev)}.",
                            f"Seed {training.get('seed')}; tracked in {training.get('tracking')}."
                            if training
                            else None,
                            "Versions are reproducible from their recorded lineage "
                            "(bedside reproduce)."
                            if ev.run_id
                            else None,
                        ]
                    ),
                    p.format(where="training, monitoring.retraining_trigger"),
                ),
                Entry(
                    "2.3 Performance evaluation protocol",
                    join_lines(
                        [
                            "Pre-specified acceptance criteria (all must pass before release):",
                            c.criteria_text(ev),
                            (
                                f"Intervals: {ev.evaluation['test'].get('ci_method')}, "
                                f"{fmt(ev.evaluation['test'].get('confidence_level'), 2)} level."
                            )
                            if ev.evaluation.get("test")
                            else None,
                            "A candidate is compared with the production version (DeLong test "
                            "on AUROC) at training."
                            if ev.comparison_with_production is not None
                            or ev.state in ("production", "shadow")
                            else None,
                        ]
                    )
                    if c.criteria_text(ev)
                    else None,
                    p.format(where="validation gates"),
                ),
                c.gate_checks_table(ev),
                Entry(
                    "2.4 Update procedures",
                    join_lines(
                        [
                            c.review_text(ev) and f"Clinical review: {c.review_text(ev)}",
                            c.deployment_text(ev),
                            "Every change is a ledger event; the previous production version "
                            "stays registered for rollback."
                            if deployment
                            else None,
                            c.monitoring_plan(ev),
                        ]
                    ),
                    p.format(where="validation.clinical_review, deployment, monitoring"),
                ),
            ),
        ),
        Section(
            "3. Impact assessment",
            (
                Entry(
                    "Benefits and risks of the modification",
                    None,
                    "a risk analysis written by people (benefit, risk of harm and of bias); "
                    "bedside records the evidence below, not the judgement",
                ),
                Entry(
                    "Mitigations",
                    join_lines(
                        [
                            "Release is blocked unless every pre-specified gate passes "
                            "(statistical, fairness, expression).",
                            c.review_text(ev) and f"Clinical review: {c.review_text(ev)}",
                            c.deployment_text(ev),
                            c.monitoring_plan(ev),
                        ]
                    )
                    if ev.stage("validation")
                    else None,
                    p.format(where="validation, deployment, monitoring"),
                ),
                Entry(
                    "Evidence for this version",
                    join_lines(
                        [
                            c.metric_summary(ev, "test", ("auroc", "sensitivity", "ece")),
                            c.fairness_summary(ev),
                            c.shadow_text(ev),
                        ]
                    ),
                    c.SRC_EVAL.format(split="test") + ", the fairness gate and the shadow report",
                ),
                Entry(
                    "Comparison with the device before the change",
                    c.comparison_text(ev),
                    c.SRC_EVIDENCE.format(where="comparison_with_production"),
                ),
                Entry(
                    "Cumulative effect of several modifications",
                    None,
                    "the life-cycle history of successive versions; one planned modification "
                    "type so far",
                ),
                c.history_table(ev),
            ),
        ),
    )
    return Document("pccp", f"{TITLE}: {ev.ref}", STANDARD, ev, sections)
