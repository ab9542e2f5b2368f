"""EU AI Act (Regulation (EU) 2024/1689) Annex IV technical documentation: the nine headings."""

from __future__ import annotations

from bedside.documents import common as c
from bedside.documents.document import Document, Entry, Section, fmt, join_lines
from bedside.documents.evidence import Evidence

TITLE = "EU AI Act Annex IV technical documentation"
STANDARD = (
    "Regulation (EU) 2024/1689, Annex IV: the nine headings of the technical documentation of a "
    "high-risk AI system (Art. 11), filled where the record holds evidence."
)

HEADINGS = (
    "1. General description of the AI system",
    "2. Detailed description of the elements and of the development process",
    "3. Monitoring, functioning and control",
    "4. Appropriateness of the performance metrics",
    "5. Risk management system (Art. 9)",
    "6. Relevant changes over the life cycle",
    "7. Harmonised standards or common specifications applied",
    "8. EU declaration of conformity (Art. 47)",
    "9. Post-market monitoring system (Art. 72)",
)


def build(ev: Evidence) -> Document:
    """Return the Annex IV document of the version ``ev`` describes."""
    p = c.SRC_PIPELINE
    sections = (
        Section(
            HEADINGS[0],
            (
                c.card(ev, "intended_use", "Intended purpose"),
                Entry(
                    "Provider",
                    join_lines(
                        [
                            fmt(ev.pipeline.get("owners")),
                            fmt(ev.model_card.get("contact")),
                        ]
                    ),
                    "the pipeline file's owners and model_card.contact",
                ),
                Entry(
                    "Version and relation to previous versions",
                    f"{ev.ref}, state {ev.state}; history: {' → '.join(ev.history)}",
                    "the registry",
                ),
                Entry(
                    "Software versions",
                    f"bedside {ev.bedside_version}; "
                    + (c.lineage_text(ev) or "").replace("\n", "; "),
                    "the registry and lineage",
                ),
                Entry(
                    "Interaction with other systems",
                    c.source_text(ev)
                    and f"Reads EHR data: {c.source_text(ev)}; answers over HTTP (bedside serve).",
                    c.SRC_MANIFEST.format(where="source"),
                ),
                Entry(
                    "Instructions for use",
                    join_lines([c.output_text(ev), fmt(ev.model_card.get("intended_users"))]),
                    "the model card (model_card.intended_users) and training evidence",
                ),
                Entry(
                    "Target hardware and forms placed on market",
                    None,
                    "a deployment description written by the provider",
                ),
            ),
        ),
        Section(
            HEADINGS[1],
            (
                Entry(
                    "Methods and design choices",
                    c.model_type(ev),
                    c.SRC_EVIDENCE.format(where="estimator"),
                ),
                Entry(
                    "Data requirements and provenance",
                    join_lines(
                        [
                            c.source_text(ev),
                            c.cohort_text(ev),
                            c.label_text(ev),
                            c.dataset_text(ev),
                            c.deid_text(ev),
                            c.quality_text(ev),
                        ]
                    ),
                    p.format(where="data_preparation") + " and the dataset manifest",
                ),
                Entry(
                    "Human oversight",
                    c.review_text(ev) and "Clinical review: " + str(c.review_text(ev)),
                    p.format(where="validation.clinical_review"),
                ),
                Entry(
                    "Pre-determined changes",
                    c.retraining_text(ev),
                    p.format(where="monitoring.retraining_trigger") + " (see the PCCP document)",
                ),
                Entry(
                    "Validation and testing procedures",
                    c.criteria_text(ev),
                    p.format(where="validation gates"),
                ),
                c.gates_table(ev),
                c.metrics_table(ev, "test"),
                Entry(
                    "Cybersecurity measures",
                    (
                        "Encrypted model and data files "
                        f"({ev.stage('training').get('encryption')}), "
                        "HMAC-sealed e-signatures, hash-chained audit ledger, role-based access."
                    )
                    if ev.stage("training").get("encryption")
                    else None,
                    p.format(where="training.encryption"),
                ),
            ),
        ),
        Section(
            HEADINGS[2],
            (
                c.card(ev, "limitations", "Capabilities and limitations"),
                c.subgroup_table(ev),
                c.card(ev, "out_of_scope_uses", "Foreseeable unintended outcomes and misuse"),
                Entry("Input specification", c.features_text(ev), p.format(where="features")),
                Entry(
                    "Oversight measures",
                    c.deployment_text(ev),
                    p.format(where="deployment"),
                ),
            ),
        ),
        Section(
            HEADINGS[3],
            (
                Entry(
                    "Metrics and why",
                    "Discrimination (AUROC) and calibration (ECE, Brier) for risk estimates; "
                    "sensitivity and false-positive rate at the operating threshold for alert "
                    "burden; subgroup disparities for fairness; net benefit for clinical utility."
                    if ev.evaluation
                    else None,
                    c.SRC_EVIDENCE.format(where="evaluation"),
                ),
                Entry("Declared levels", c.criteria_text(ev), p.format(where="validation gates")),
            ),
        ),
        Section(
            HEADINGS[4],
            (
                Entry(
                    "Risk management process",
                    None,
                    "the provider's risk management file (Art. 9); bedside supplies gate results, "
                    "subgroup analyses and monitoring as inputs",
                ),
                Entry("Tested against prior-defined thresholds", c.criteria_text(ev), c.SRC_GATES),
                Entry("Fairness risks", c.fairness_summary(ev), c.SRC_FAIRNESS),
            ),
        ),
        Section(HEADINGS[5], (c.history_table(ev),)),
        Section(
            HEADINGS[6],
            (
                Entry(
                    "Standards and specifications",
                    None,
                    "the provider's list of harmonised standards or common specifications",
                ),
            ),
        ),
        Section(
            HEADINGS[7],
            (
                Entry(
                    "Declaration of conformity",
                    None,
                    "the provider's signed EU declaration of conformity (Art. 47)",
                ),
            ),
        ),
        Section(
            HEADINGS[8],
            (
                Entry(
                    "Post-market monitoring plan",
                    c.monitoring_plan(ev),
                    p.format(where="monitoring"),
                ),
                Entry("Monitoring results", c.monitoring_results(ev), c.SRC_LOCAL),
                Entry(
                    "Logging (Art. 12)",
                    "Every prediction is written to an append-only inference log with the "
                    "model version; every governance action is a hash-chained ledger event."
                    if ev.version_events
                    else None,
                    c.SRC_LEDGER.format(where="all events"),
                ),
            ),
        ),
    )
    return Document("eu-ai-act", f"{TITLE}: {ev.ref}", STANDARD, ev, sections)
