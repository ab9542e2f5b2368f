"""Model card with the nine sections of Mitchell et al., "Model Cards for Model Reporting" (2019).

Quantitative analyses are disaggregated by the subgroups the pipeline file stratifies by, each
estimate with its bootstrap confidence interval (REGULATORY §5.2).
"""

from __future__ import annotations

from bedside.documents import common as c
from bedside.documents.document import Document, Entry, Section, fmt, join_lines
from bedside.documents.evidence import Evidence

TITLE = "Model card"
STANDARD = (
    "Nine sections of Mitchell et al., “Model Cards for Model Reporting” (FAT* 2019, "
    "arXiv 1810.03993); quantitative analyses disaggregated by subgroup with confidence intervals."
)

SECTION_TITLES = (
    "1. Model details",
    "2. Intended use",
    "3. Factors",
    "4. Metrics",
    "5. Evaluation data",
    "6. Training data",
    "7. Quantitative analyses",
    "8. Ethical considerations",
    "9. Caveats and recommendations",
)


def build(ev: Evidence) -> Document:
    """Return the model card of the version ``ev`` describes."""
    pipeline_src = c.SRC_PIPELINE
    attrs = ev.fairness.get("attributes") or []
    statistical = ev.gate_spec("statistical")
    sections = (
        Section(
            SECTION_TITLES[0],
            (
                Entry(
                    "Name and version",
                    f"{ev.model_name} version {ev.version} (state: {ev.state})",
                    "the model registry",
                ),
                Entry(
                    "Description",
                    fmt(ev.pipeline.get("description")),
                    pipeline_src.format(where="pipeline.description"),
                ),
                c.card(ev, "contact", "Developer contact"),
                Entry(
                    "Owners",
                    fmt(ev.pipeline.get("owners")),
                    pipeline_src.format(where="pipeline.owners"),
                ),
                Entry(
                    "Model type",
                    c.model_type(ev),
                    c.SRC_EVIDENCE.format(where="estimator, params"),
                ),
                Entry(
                    "Registered",
                    f"{ev.created_at} by {ev.created_by}",
                    "the model registry",
                ),
                Entry(
                    "Pipeline file",
                    join_lines(
                        [
                            f"{ev.pipeline.get('name')} version {ev.pipeline.get('version')}"
                            if ev.pipeline
                            else None,
                        ]
                    ),
                    pipeline_src.format(where="pipeline.name, pipeline.version"),
                ),
                Entry("Lineage", c.lineage_text(ev), "the registry and MLflow run tags"),
                c.card(ev, "funding", "Funding"),
                c.card(ev, "references", "References / citation"),
            ),
        ),
        Section(
            SECTION_TITLES[1],
            (
                c.card(ev, "intended_use", "Primary intended use"),
                c.card(ev, "intended_users", "Primary intended users"),
                c.card(ev, "out_of_scope_uses", "Out-of-scope uses"),
                Entry("Output", c.output_text(ev), c.SRC_EVIDENCE.format(where="label, threshold")),
            ),
        ),
        Section(
            SECTION_TITLES[2],
            (
                Entry(
                    "Relevant factors (subgroups evaluated)",
                    fmt(attrs),
                    "the fairness gate's stratify_by in the pipeline file",
                ),
                Entry(
                    "Population",
                    c.cohort_text(ev),
                    c.SRC_MANIFEST.format(where="extraction.cohort"),
                ),
            ),
        ),
        Section(
            SECTION_TITLES[3],
            (
                Entry(
                    "Performance measures",
                    "Discrimination (AUROC, AUPRC), classification at the operating threshold "
                    "(sensitivity, specificity, PPV, NPV, false-positive rate), calibration "
                    "(Brier score, ECE, slope, intercept) and net benefit."
                    if ev.evaluation
                    else None,
                    c.SRC_EVIDENCE.format(where="evaluation"),
                ),
                Entry(
                    "Decision threshold",
                    c.threshold_text(ev),
                    "the operating point set at clinical review (bedside threshold)",
                ),
                Entry(
                    "Variation approaches",
                    (
                        f"{ev.evaluation.get('test', {}).get('ci_method')}, "
                        f"{ev.evaluation.get('test', {}).get('n_boot')} resamples"
                    )
                    if ev.evaluation.get("test")
                    else None,
                    c.SRC_EVIDENCE.format(where="evaluation.test.ci_method"),
                ),
                Entry(
                    "Pre-specified acceptance criteria",
                    c.criteria_text(ev),
                    pipeline_src.format(where="validation gates"),
                ),
                Entry(
                    "Statistical gate judged on",
                    f"{statistical.get('split')} split, {statistical.get('compare')}"
                    if isinstance(statistical, dict)
                    else None,
                    pipeline_src.format(where="validation.gates.statistical"),
                ),
            ),
        ),
        Section(
            SECTION_TITLES[4],
            (
                Entry(
                    "Datasets",
                    join_lines([c.split_summary(ev, "validation"), c.split_summary(ev, "test")]),
                    c.SRC_EVAL.format(split="validation and test"),
                ),
                Entry("Split", c.split_text(ev), pipeline_src.format(where="split")),
                Entry(
                    "External evaluation data",
                    None,
                    c.SRC_EXTERNAL,
                ),
            ),
        ),
        Section(
            SECTION_TITLES[5],
            (
                Entry("Source", c.source_text(ev), c.SRC_MANIFEST.format(where="source")),
                Entry("Size", c.dataset_text(ev), c.SRC_MANIFEST.format(where="counts")),
                Entry(
                    "Dataset digest",
                    fmt(ev.training.get("dataset_digest")),
                    c.SRC_EVIDENCE.format(where="dataset_digest"),
                ),
                Entry("Outcome", c.label_text(ev), pipeline_src.format(where="label")),
                Entry("Input features", c.features_text(ev), pipeline_src.format(where="features")),
                Entry(
                    "De-identification",
                    c.deid_text(ev),
                    c.SRC_MANIFEST.format(where="deidentification"),
                ),
                Entry("Data quality", c.quality_text(ev), c.SRC_MANIFEST.format(where="quality")),
            ),
        ),
        Section(
            SECTION_TITLES[6],
            (
                c.metrics_table(ev, "test"),
                c.metrics_table(ev, "validation"),
                c.subgroup_table(ev),
                c.disparity_table(ev),
                c.gates_table(ev),
                Entry(
                    "Comparison with the production version",
                    c.comparison_text(ev),
                    c.SRC_EVIDENCE.format(where="comparison_with_production (DeLong)"),
                ),
                Entry(
                    "Shadow evaluation",
                    c.shadow_text(ev),
                    "the shadow report recorded before promotion",
                ),
            ),
        ),
        Section(
            SECTION_TITLES[7],
            (
                c.card(ev, "ethical_considerations", "Ethical considerations"),
                Entry(
                    "Sensitive attributes as inputs",
                    c.demographic_inputs(ev),
                    c.SRC_EVIDENCE.format(where="feature_schema"),
                ),
                Entry("Fairness evaluation", c.fairness_summary(ev), c.SRC_GATES),
            ),
        ),
        Section(
            SECTION_TITLES[8],
            (
                c.card(ev, "limitations", "Known limitations"),
                Entry(
                    "Monitoring and retraining",
                    c.monitoring_plan(ev),
                    pipeline_src.format(where="monitoring"),
                ),
                Entry(
                    "Monitoring results so far",
                    c.monitoring_results(ev),
                    c.SRC_LOCAL,
                ),
            ),
        ),
    )
    return Document("model-card", f"{TITLE}: {ev.ref}", STANDARD, ev, sections)
