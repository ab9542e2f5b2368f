"""TRIPOD+AI items the record can fill (Collins et al., BMJ 2024;385:e078378; REGULATORY §6)."""

from __future__ import annotations

from bedside.documents import common as c
from bedside.documents.document import Document, Entry, Section, fmt, join_lines
from bedside.documents.evidence import Evidence

TITLE = "TRIPOD+AI items from the record"
STANDARD = (
    "TRIPOD+AI (Collins et al., BMJ 2024;385:e078378): the checklist items a platform can fill "
    "from its record. The other items (title, abstract, introduction, discussion …) are written "
    "by the authors."
)


def build(ev: Evidence) -> Document:
    """Return the TRIPOD+AI items of the version ``ev`` describes."""
    p = c.SRC_PIPELINE
    m = c.SRC_MANIFEST
    counts = ev.dataset.get("counts") or {}
    dates = counts.get("all") if isinstance(counts, dict) else None
    prep = ev.stage("data_preparation")
    quality = prep.get("validation") or []
    methods = Section(
        "Methods",
        (
            Entry(
                "Data sources",
                join_lines([c.source_text(ev), c.dataset_text(ev)]),
                m.format(where="source, counts"),
                "5a",
            ),
            Entry(
                "Dates",
                f"{dates.get('first_date')} to {dates.get('last_date')} (prediction times)"
                if isinstance(dates, dict) and dates.get("first_date")
                else None,
                m.format(where="counts.all first/last date"),
                "5b",
            ),
            Entry(
                "Participants: setting and eligibility",
                c.cohort_text(ev),
                m.format(where="extraction.cohort"),
                "6a–c",
            ),
            Entry(
                "Data preparation",
                join_lines(
                    [
                        c.deid_text(ev),
                        c.quality_text(ev),
                        "Checks: "
                        + ", ".join(str(q.get("check")) for q in quality if isinstance(q, dict))
                        if quality
                        else None,
                        "The same preparation is applied to every patient and group."
                        if prep
                        else None,
                    ]
                ),
                p.format(where="data_preparation") + " and the dataset manifest",
                "7",
            ),
            Entry("Outcome", c.label_text(ev), p.format(where="label"), "8a–c"),
            Entry("Predictors", c.features_text(ev), p.format(where="features"), "9a–c"),
            Entry(
                "Sample size",
                join_lines(
                    [
                        c.dataset_text(ev),
                        "No sample-size calculation is recorded.",
                    ]
                )
                if c.dataset_text(ev)
                else None,
                m.format(where="counts"),
                "10",
            ),
            Entry(
                "Missing data",
                (
                    "Missing values are kept as missing and handled natively by the "
                    "estimator; features with nulls: "
                    + ", ".join(str(f.get("name")) for f in ev.feature_schema if f.get("nullable"))
                )
                if ev.feature_schema
                else None,
                c.SRC_EVIDENCE.format(where="feature_schema"),
                "11",
            ),
            Entry("Data partitioning", c.split_text(ev), p.format(where="split"), "12a"),
            Entry(
                "Predictor handling",
                "Features aggregated over fixed windows before the prediction time (see 9); "
                "no scaling is recorded."
                if prep.get("features")
                else None,
                p.format(where="features"),
                "12b",
            ),
            Entry(
                "Model type and building",
                join_lines(
                    [
                        c.model_type(ev),
                        "No hyper-parameter tuning is recorded; internal validation on a "
                        "held-out validation and test split."
                        if c.model_type(ev)
                        else None,
                    ]
                ),
                c.SRC_EVIDENCE.format(where="estimator, params"),
                "12c",
            ),
            Entry(
                "Heterogeneity across clusters (sites)",
                None,
                "a site attribute in the dataset and a per-site analysis; bedside records "
                "one source per dataset",
                "12d",
            ),
            Entry(
                "Performance measures",
                "Discrimination (AUROC, AUPRC), calibration (Brier, ECE, slope, intercept), "
                "classification at the threshold and net benefit (decision curve)."
                if ev.evaluation
                else None,
                c.SRC_EVIDENCE.format(where="evaluation"),
                "12e",
            ),
            Entry(
                "Model updating",
                c.retraining_text(ev),
                p.format(where="monitoring.retraining_trigger"),
                "12f",
            ),
            Entry(
                "How predictions are computed",
                f"The registered model artefact ({ev.ref}) served by bedside serve "
                "(HTTP API), with the input schema of the version."
                if ev.feature_schema
                else None,
                "the registry",
                "12g",
            ),
            Entry(
                "Class imbalance",
                (
                    "Training prevalence "
                    f"{fmt(ev.training['n_train_events'] / ev.training['n_train'])}; "
                    "no resampling is recorded"
                    + (
                        f"; class_weight={ev.training['params']['class_weight']}"
                        if "class_weight" in (ev.training.get("params") or {})
                        else ""
                    )
                    + "."
                )
                if ev.training.get("n_train") and ev.training.get("n_train_events") is not None
                else None,
                c.SRC_EVIDENCE.format(where="n_train, n_train_events, params"),
                "13",
            ),
            Entry("Fairness", c.fairness_summary(ev), c.SRC_GATES, "14"),
            Entry(
                "Model output",
                join_lines([c.output_text(ev), c.threshold_text(ev)]),
                c.SRC_EVIDENCE.format(where="threshold, threshold_rule"),
                "15",
            ),
            Entry(
                "Training versus evaluation",
                "Same source, eligibility, outcome and predictors; evaluation on a later "
                "period (temporal split)."
                if (prep.get("split") or {}).get("method") == "temporal"
                else None,
                p.format(where="split"),
                "16",
            ),
            Entry(
                "Data and code availability",
                join_lines(
                    [
                        c.lineage_text(ev),
                        "Data are de-identified, encrypted snapshots available on request "
                        "under the site's data-sharing rules."
                        if ev.training.get("dataset_digest")
                        else None,
                    ]
                ),
                "the registry and lineage",
                "18e–f",
            ),
        ),
    )
    results = Section(
        "Results",
        (
            Entry(
                "Participants",
                c.dataset_text(ev),
                m.format(where="counts"),
                "20a–c",
            ),
            Entry(
                "Model development",
                join_lines(
                    [
                        f"Training: {c.n(ev.training.get('n_train'))} rows, "
                        f"{c.n(ev.training.get('n_train_events'))} events."
                        if ev.training.get("n_train")
                        else None,
                        c.split_summary(ev, "validation")
                        and "Validation: " + str(c.split_summary(ev, "validation")),
                        c.split_summary(ev, "test") and "Test: " + str(c.split_summary(ev, "test")),
                    ]
                ),
                c.SRC_EVIDENCE.format(where="n_train, evaluation"),
                "21",
            ),
            Entry(
                "Model specification",
                join_lines([c.model_type(ev), c.lineage_text(ev)]),
                "the registry",
                "22",
            ),
            c.metrics_table(ev, "test"),
            c.subgroup_table(ev),
            Entry(
                "Model performance (23a–b)",
                "See the tables above: estimates with confidence intervals overall and by "
                "subgroup; cluster heterogeneity is not recorded."
                if ev.evaluation
                else None,
                c.SRC_EVAL.format(split="test"),
                "23a–b",
            ),
            Entry(
                "Model updating",
                c.comparison_text(ev),
                c.SRC_EVIDENCE.format(where="comparison_with_production"),
                "24",
            ),
            Entry(
                "Usability: poor or missing inputs at deployment",
                "Requests are checked against the version's input schema; a malformed request "
                "is refused with a message; nullable features accept missing values."
                if ev.feature_schema
                else None,
                c.SRC_EVIDENCE.format(where="feature_schema"),
                "27a",
            ),
            Entry(
                "Usability: user interaction and expertise",
                fmt(ev.model_card.get("intended_users")),
                c.SRC_CARD.format(key="model_card.intended_users"),
                "27b",
            ),
        ),
    )
    return Document("tripod-ai", f"{TITLE}: {ev.ref}", STANDARD, ev, (methods, results))
