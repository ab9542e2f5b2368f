"""ONC HTI-1: the 31 source attributes of a predictive decision support intervention.

45 CFR 170.315(b)(11); the attribute list and its nine categories follow REGULATORY §4.1. Each
attribute is filled from the record or marked *not recorded* with where it would come from.
"""

from __future__ import annotations

from typing import Final

from bedside.documents import common as c
from bedside.documents.document import Document, Entry, Section, fmt, join_lines
from bedside.documents.evidence import Evidence

TITLE = "ONC HTI-1 predictive DSI source attributes"
STANDARD = (
    "The 31 source attributes of a predictive decision support intervention, ONC HTI-1 "
    "(45 CFR 170.315(b)(11)), in their nine categories."
)

#: The nine categories and their attributes, numbered 1–31 (REGULATORY §4.1).
CATEGORIES: Final = (
    (
        "Details and output of the intervention",
        (
            "Name and contact information of the intervention developer",
            "Funding source of the technical implementation of the intervention's development",
            "Description of the value the intervention produces as output",
            "Whether output is a prediction, classification, recommendation, evaluation, "
            "analysis, or other type",
        ),
    ),
    (
        "Purpose of the intervention",
        (
            "Intended use",
            "Intended patient population(s)",
            "Intended user(s)",
            "Intended decision-making role (e.g., informs, augments, replaces clinical management)",
        ),
    ),
    (
        "Cautioned out-of-scope use",
        (
            "Tasks, situations or populations where users are cautioned against applying it",
            "Known risks, inappropriate settings, inappropriate uses, known limitations",
        ),
    ),
    (
        "Intervention development details and input features",
        (
            "Exclusion and inclusion criteria that shaped the training data",
            "Use of the demographic variables as input features",
            "Demographic representativeness (per the variables), at minimum for those used as "
            "inputs",
            "Relevance of training data to the intended deployed setting",
        ),
    ),
    (
        "Process used to ensure fairness in development",
        (
            "Approach taken to ensure the output is fair",
            "Approaches to manage, reduce or eliminate bias",
        ),
    ),
    (
        "External validation process",
        (
            "Data source, clinical setting or environment where validity and fairness were "
            "assessed, other than the training/testing source",
            "Party that conducted the external testing",
            "Demographic representativeness of the external data",
            "Description of the external validation process",
        ),
    ),
    (
        "Quantitative measures of performance",
        (
            "Validity in test data from the same source as the initial training data",
            "Fairness in test data from the same source as the initial training data",
            "Validity in data external to / from a different source than the training data",
            "Fairness in external / different-source data",
            "References to evaluations of the intervention's effect on outcomes (e.g., "
            "morbidity, mortality, length of stay), citations or links",
        ),
    ),
    (
        "Ongoing maintenance of intervention implementation and use",
        (
            "Process and frequency for monitoring validity over time",
            "Validity in local data",
            "Process and frequency for monitoring fairness over time",
            "Fairness in local data",
        ),
    ),
    (
        "Update and continued validation or fairness assessment schedule",
        (
            "Process and frequency for updating the intervention",
            "Frequency with which performance is corrected when validity or fairness risks are "
            "identified",
        ),
    ),
)

ATTRIBUTES: Final = tuple(a for _, attrs in CATEGORIES for a in attrs)


def _representativeness(ev: Evidence) -> str | None:
    groups = ev.fairness.get("groups") or []
    if not groups:
        return None
    lines = []
    for attribute in ev.fairness.get("attributes") or []:
        parts = [
            f"{g.get('group')} {c.n(g.get('n_patients'))}"
            for g in groups
            if g.get("attribute") == attribute
        ]
        lines.append(f"{attribute}: " + ", ".join(parts))
    return "Patients per group in the test split — " + "; ".join(lines)


def _developer(ev: Evidence) -> str | None:
    contact = ev.model_card.get("contact")
    owners = ev.pipeline.get("owners") or []
    if not contact and not owners:
        return None
    return join_lines(
        [
            f"Owners (bedside users): {', '.join(owners)}" if owners else None,
            f"Contact: {contact}" if contact else None,
        ]
    )


def build(ev: Evidence) -> Document:
    """Return the HTI-1 source-attribute document of the version ``ev`` describes."""
    p = c.SRC_PIPELINE
    monitoring = ev.stage("monitoring")
    fairness_spec = ev.gate_spec("fairness")
    values: list[tuple[str | None, str]] = [
        # 1–4 details and output
        (_developer(ev), "the pipeline file's owners and model_card.contact"),
        (fmt(ev.model_card.get("funding")), c.SRC_CARD.format(key="model_card.funding")),
        (c.output_text(ev), c.SRC_EVIDENCE.format(where="label, threshold")),
        (
            "Prediction: a probability of the outcome, turned into an alert at the operating "
            "threshold."
            if ev.training.get("label")
            else None,
            c.SRC_EVIDENCE.format(where="label"),
        ),
        # 5–8 purpose
        (fmt(ev.model_card.get("intended_use")), c.SRC_CARD.format(key="model_card.intended_use")),
        (c.cohort_text(ev), c.SRC_MANIFEST.format(where="extraction.cohort")),
        (
            fmt(ev.model_card.get("intended_users")),
            c.SRC_CARD.format(key="model_card.intended_users"),
        ),
        (
            None,
            "a model_card: field for the decision-making role (informs / augments / replaces); "
            "the pipeline file has no such key yet",
        ),
        # 9–10 cautioned out-of-scope use
        (
            fmt(ev.model_card.get("out_of_scope_uses")),
            c.SRC_CARD.format(key="model_card.out_of_scope_uses"),
        ),
        (fmt(ev.model_card.get("limitations")), c.SRC_CARD.format(key="model_card.limitations")),
        # 11–14 development details and input features
        (c.cohort_text(ev), c.SRC_MANIFEST.format(where="extraction.cohort")),
        (c.demographic_inputs(ev), c.SRC_EVIDENCE.format(where="feature_schema")),
        (_representativeness(ev), c.SRC_FAIRNESS),
        (
            join_lines([c.source_text(ev), c.dataset_text(ev)]),
            c.SRC_MANIFEST.format(where="source, counts"),
        ),
        # 15–16 fairness in development
        (c.fairness_summary(ev), p.format(where="validation.gates.fairness")),
        (
            (
                f"A pre-specified fairness gate ({fairness_spec.get('metric')}, max disparity "
                f"{fairness_spec.get('max_disparity')}) blocks release when exceeded; subgroup "
                "results are reviewed and signed by clinicians before deployment."
            )
            if isinstance(fairness_spec, dict)
            else None,
            p.format(where="validation.gates.fairness"),
        ),
        # 17–20 external validation
        (None, c.SRC_EXTERNAL),
        (None, c.SRC_EXTERNAL),
        (None, c.SRC_EXTERNAL),
        (None, c.SRC_EXTERNAL),
        # 21–25 quantitative measures
        (
            c.metric_summary(ev, "test", ("auroc", "sensitivity", "specificity", "ppv", "brier")),
            c.SRC_EVAL.format(split="test"),
        ),
        (c.fairness_summary(ev), c.SRC_FAIRNESS),
        (None, c.SRC_EXTERNAL),
        (None, c.SRC_EXTERNAL),
        (
            fmt(ev.model_card.get("references")),
            c.SRC_CARD.format(key="model_card.references") + " (outcome-impact studies)",
        ),
        # 26–29 ongoing maintenance
        (c.monitoring_plan(ev), p.format(where="monitoring")),
        (c.monitoring_results(ev), c.SRC_LOCAL),
        (
            (
                f"Subgroup metrics over {', '.join(fairness_spec.get('stratify_by') or [])} are "
                f"recomputed at each monitoring check (every "
                f"{c.duration(monitoring.get('drift_check_interval'))})."
            )
            if isinstance(fairness_spec, dict) and monitoring
            else None,
            p.format(where="monitoring, validation.gates.fairness"),
        ),
        (None, "subgroup metrics of bedside monitor on this site's inference log with outcomes"),
        # 30–31 update schedule
        (c.retraining_text(ev), p.format(where="monitoring.retraining_trigger")),
        (
            (
                f"Checked every {c.duration(monitoring.get('drift_check_interval'))}; an alert "
                f"is raised at the first check that finds a breach, and retraining when "
                f"`{monitoring.get('retraining_trigger')}` holds."
            )
            if monitoring.get("retraining_trigger")
            else None,
            p.format(where="monitoring"),
        ),
    ]
    assert len(values) == len(ATTRIBUTES) == 31
    sections = []
    number = 0
    for category, attributes in CATEGORIES:
        entries = []
        for attribute in attributes:
            value, source = values[number]
            number += 1
            entries.append(Entry(attribute, value, source, str(number)))
        sections.append(Section(category, tuple(entries)))
    return Document("hti1", f"{TITLE}: {ev.ref}", STANDARD, ev, tuple(sections))
