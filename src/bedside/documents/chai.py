"""CHAI Applied Model Card (schema v0.2) as XML that validates against the XSD, and as HTML.

One structure feeds both renderings: each XSD element is an :class:`Entry`, so the HTML card
and the XML card say the same thing. Required elements without evidence carry the text
*not recorded — would come from …*; optional elements without evidence are left out. The XSD
(``schemas/chai-model-card-v0.2.xsd``, Copyright (c) 2024 Coalition for Health AI, Inc.; see
``schemas/README.md``) is vendored, and validation never touches the network: the XML-DSig
schema it imports is resolved from the copy shipped with ``xmlschema``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final
from xml.etree import ElementTree as ET

from bedside.documents import common as c
from bedside.documents.document import (
    NOT_RECORDED,
    Document,
    Entry,
    Section,
    Table,
    fmt,
    fmt_estimate,
    join_lines,
)
from bedside.documents.evidence import Evidence
from bedside.errors import InvalidInput

NAMESPACE: Final = "https://mc.chai.org/v0.2/schema.xsd"
SCHEMA_FILE: Final = "chai-model-card-v0.2.xsd"
TITLE = "CHAI Applied Model Card"
STANDARD = (
    "Coalition for Health AI Applied Model Card, schema v0.2 (draft); the XML form of this card "
    "validates against the vendored XSD."
)

_USEFULNESS: Final = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "net_benefit")
_SAFETY: Final = (
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
    "false_positive_rate",
)


@dataclass(frozen=True, slots=True)
class _KeyMetric:
    element: str
    title: str
    goal: Entry
    results: tuple[tuple[str, dict[str, Any]], ...]
    interpretation: Entry
    test_type: Entry
    data: Entry
    process: Entry


def _text(entry: Entry) -> str:
    if entry.recorded and entry.value is not None:
        return entry.value
    return f"{NOT_RECORDED} — would come from {entry.source}."


def _results(ev: Evidence, keys: tuple[str, ...]) -> tuple[tuple[str, dict[str, Any]], ...]:
    data = ev.evaluation.get("test") or {}
    metrics = data.get("metrics") or {}
    out = []
    for key, label in c.METRICS:
        if key in keys and key in metrics:
            out.append((label, {"split": "test", **metrics[key]}))
    return tuple(out)


def _fairness_results(ev: Evidence) -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for d in ev.fairness.get("disparities") or []:
        if d.get("kind") == "difference" and d.get("method") == "between_groups":
            label = f"{d.get('metric')} difference between {d.get('attribute')} groups"
            out.append((label, {"split": "test", **d}))
    return tuple(out)


def _structure(ev: Evidence) -> tuple[list[tuple[str, list[tuple[str, Entry]]]], list[_KeyMetric]]:
    """Return the card as (section element, [(element, entry)]) and its three key metrics."""
    p = c.SRC_PIPELINE
    promoted = next((e for e in ev.version_events if e.action == "version.promote"), None)
    statistical = ev.gate_spec("statistical")
    fairness = ev.gate_spec("fairness")
    test_data = Entry(
        "Testing data",
        join_lines([c.split_summary(ev, "test"), c.split_text(ev)]),
        c.SRC_EVAL.format(split="test"),
    )
    process = Entry(
        "Validation process and justification",
        join_lines(
            [
                "Internal validation on a held-out, later (temporal) test split of the same "
                "source; acceptance criteria pre-specified in the pipeline file and judged "
                "automatically; clinical review with e-signatures before deployment.",
                c.criteria_text(ev),
            ]
        )
        if ev.gates
        else None,
        c.SRC_GATES,
    )
    signers = sorted({f"{s.role}" for s in ev.signatures})
    sections: list[tuple[str, list[tuple[str, Entry]]]] = [
        (
            "BasicInfo",
            [
                ("ModelName", Entry("Model name", ev.model_name, "the model registry")),
                (
                    "ModelDeveloper",
                    Entry(
                        "Model developer",
                        fmt(ev.pipeline.get("owners")),
                        p.format(where="pipeline.owners"),
                    ),
                ),
                ("DeveloperContact", c.card(ev, "contact", "Developer contact")),
            ],
        ),
        (
            "ReleaseInfo",
            [
                (
                    "ReleaseStage",
                    Entry("Release stage", f"{ev.state} (bedside life cycle)", "the registry"),
                ),
                (
                    "ReleaseDate",
                    Entry(
                        "Release date",
                        promoted.occurred_at if promoted else None,
                        c.SRC_LEDGER.format(where="version.promote"),
                    ),
                ),
                (
                    "ReleaseVersion",
                    Entry(
                        "Release version",
                        f"{ev.version}"
                        + (f" (pipeline file {ev.pipeline.get('version')})" if ev.pipeline else ""),
                        "the registry",
                    ),
                ),
                (
                    "GlobalAvailability",
                    Entry(
                        "Global availability",
                        None,
                        "a model_card: field for where the model is available; none exists yet",
                    ),
                ),
            ],
        ),
        (
            "ModelSummary",
            [
                (
                    "Summary",
                    Entry(
                        "Summary",
                        join_lines([fmt(ev.pipeline.get("description")), c.output_text(ev)]),
                        p.format(where="pipeline.description") + " and the training evidence",
                    ),
                ),
            ],
        ),
        (
            "UsesAndDirections",
            [
                (
                    "IntendedUseAndWorkflow",
                    c.card(ev, "intended_use", "Intended use and workflow"),
                ),
                ("PrimaryIntendedUsers", c.card(ev, "intended_users", "Primary intended users")),
                (
                    "HowToUse",
                    Entry(
                        "How to use",
                        join_lines([c.output_text(ev), c.deployment_text(ev)]),
                        c.SRC_EVIDENCE.format(where="threshold") + " and the deployment stage",
                    ),
                ),
                (
                    "TargetedPatientPopulation",
                    Entry(
                        "Targeted patient population",
                        c.cohort_text(ev),
                        c.SRC_MANIFEST.format(where="extraction.cohort"),
                    ),
                ),
                (
                    "CautionedOutOfScopeSettings",
                    c.card(ev, "out_of_scope_uses", "Cautioned out-of-scope settings"),
                ),
            ],
        ),
        (
            "Warnings",
            [
                (
                    "KnownRisksAndLimitations",
                    c.card(ev, "limitations", "Known risks and limitations"),
                ),
                (
                    "KnownBiasesOrEthicalConsiderations",
                    Entry(
                        "Known biases or ethical considerations",
                        join_lines(
                            [
                                fmt(ev.model_card.get("ethical_considerations")),
                                c.fairness_summary(ev),
                            ]
                        ),
                        "model_card.ethical_considerations and the fairness gate",
                    ),
                ),
                (
                    "ClinicalRiskLevel",
                    Entry(
                        "Clinical risk level",
                        None,
                        "a model_card: field for the clinical risk level; none exists yet",
                    ),
                ),
            ],
        ),
        (
            "AISystemFacts",
            [
                (
                    "OutcomesAndOutputs",
                    Entry(
                        "Outcomes and outputs",
                        c.output_text(ev),
                        c.SRC_EVIDENCE.format(where="label"),
                    ),
                ),
                (
                    "ModelType",
                    Entry("Model type", c.model_type(ev), c.SRC_EVIDENCE.format(where="estimator")),
                ),
                (
                    "InputDataSource",
                    Entry(
                        "Input data source",
                        c.source_text(ev),
                        c.SRC_MANIFEST.format(where="source"),
                    ),
                ),
                (
                    "OutputAndInputDataTypes",
                    Entry(
                        "Output and input data types",
                        join_lines(
                            [
                                "Input: " + str(c.features_text(ev)).replace("\n", "; "),
                                "Output: probability of the outcome (0–1) and an alert flag.",
                            ]
                        )
                        if c.features_text(ev)
                        else None,
                        p.format(where="features"),
                    ),
                ),
                (
                    "DevelopmentDataCharacterization",
                    Entry(
                        "Development data characterisation",
                        join_lines([c.dataset_text(ev), c.deid_text(ev), c.quality_text(ev)]),
                        c.SRC_MANIFEST.format(where="counts, deidentification, quality"),
                    ),
                ),
                (
                    "BiasMitigationApproaches",
                    Entry(
                        "Bias mitigation approaches",
                        c.fairness_summary(ev),
                        p.format(where="validation.gates.fairness"),
                    ),
                ),
                (
                    "OngoingMaintenance",
                    Entry(
                        "Ongoing maintenance",
                        join_lines([c.monitoring_plan(ev), c.monitoring_results(ev)]),
                        p.format(where="monitoring") + " and monitoring.checked events",
                    ),
                ),
                (
                    "Security",
                    Entry(
                        "Security",
                        (
                            f"Model and dataset files encrypted at rest "
                            f"({ev.stage('training').get('encryption')}), bound to their record; "
                            "e-signatures HMAC-sealed; hash-chained audit ledger."
                        )
                        if ev.stage("training").get("encryption")
                        else None,
                        p.format(where="training.encryption"),
                    ),
                ),
                (
                    "Transparency",
                    Entry("Transparency", c.lineage_text(ev), "the registry and MLflow run tags"),
                ),
            ],
        ),
        (
            "TransparencyInformation",
            [
                ("FundingSource", c.card(ev, "funding", "Funding source")),
                (
                    "StakeholdersConsulted",
                    Entry(
                        "Stakeholders consulted",
                        ("Signed by the roles: " + ", ".join(signers)) if signers else None,
                        "the e-signatures on this version",
                    ),
                ),
            ],
        ),
        (
            "Resources",
            [
                (
                    "PeerReviewedPublications",
                    c.card(ev, "references", "Peer-reviewed publications"),
                ),
                (
                    "PatientConsentOrDisclosure",
                    Entry(
                        "Patient consent or disclosure",
                        None,
                        "a model_card: field for patient consent or disclosure; none exists yet",
                    ),
                ),
            ],
        ),
    ]
    metrics = [
        _KeyMetric(
            "UsefulnessUsabilityEfficacy",
            "Usefulness, usability and efficacy",
            Entry(
                "Metric goal",
                json.dumps(statistical, sort_keys=True) if isinstance(statistical, dict) else None,
                p.format(where="validation.gates.statistical"),
            ),
            _results(ev, _USEFULNESS),
            Entry(
                "Interpretation",
                next((g.get("summary") for g in ev.gates if g.get("gate") == "statistical"), None),
                c.SRC_GATES,
            ),
            Entry(
                "Test type",
                "Internal validation, temporal hold-out" if ev.gates else None,
                c.SRC_GATES,
            ),
            test_data,
            process,
        ),
        _KeyMetric(
            "FairnessEquity",
            "Fairness and equity",
            Entry(
                "Metric goal",
                json.dumps(fairness, sort_keys=True) if isinstance(fairness, dict) else None,
                p.format(where="validation.gates.fairness"),
            ),
            _fairness_results(ev),
            Entry("Interpretation", c.fairness_summary(ev), c.SRC_GATES),
            Entry(
                "Test type",
                "Subgroup analysis on the test split" if ev.fairness else None,
                c.SRC_FAIRNESS,
            ),
            test_data,
            process,
        ),
        _KeyMetric(
            "SafetyReliability",
            "Safety and reliability",
            Entry(
                "Metric goal",
                ", ".join(
                    f"{k} {v}"
                    for k, v in (statistical or {}).items()
                    if k in ("max_ece", "max_brier", "max_false_positive_rate") and v is not None
                )
                or None
                if isinstance(statistical, dict)
                else None,
                p.format(where="validation.gates.statistical (calibration limits)"),
            ),
            _results(ev, _SAFETY),
            Entry(
                "Interpretation",
                c.shadow_text(ev),
                "the shadow report recorded before promotion",
            ),
            Entry(
                "Test type",
                "Calibration on the test split" if ev.evaluation else None,
                c.SRC_EVAL.format(split="test"),
            ),
            test_data,
            process,
        ),
    ]
    return sections, metrics


def _bibliography(ev: Evidence) -> str:
    references = ev.model_card.get("references") or []
    if not references:
        return f"% {NOT_RECORDED} — would come from the pipeline file's model_card.references"
    return "\n".join(f"% {ref}" for ref in references)


def build_xml(ev: Evidence) -> str:
    """Return the CHAI Applied Model Card of ``ev`` as XML (namespace v0.2)."""
    sections, metrics = _structure(ev)
    ET.register_namespace("", NAMESPACE)

    def q(name: str) -> str:
        return f"{{{NAMESPACE}}}{name}"

    root = ET.Element(q("AppliedModelCard"))
    by_name = dict(sections)

    def add(parent: ET.Element, section: str) -> None:
        element = ET.SubElement(parent, q(section))
        for name, entry in by_name[section]:
            if name in ("Security", "Transparency") and not entry.recorded:
                continue  # optional in the schema: left out rather than padded
            ET.SubElement(element, q(name)).text = _text(entry)
        if section == "ModelSummary":
            keywords = ET.SubElement(element, q("Keywords"))
            for word in _keywords(ev):
                ET.SubElement(keywords, q("Keyword")).text = word

    for section in ("BasicInfo", "ReleaseInfo", "ModelSummary", "UsesAndDirections", "Warnings"):
        add(root, section)
    trust = ET.SubElement(root, q("TrustIngredients"))
    add(trust, "AISystemFacts")
    add(trust, "TransparencyInformation")
    key_metrics = ET.SubElement(root, q("KeyMetrics"))
    for metric in metrics:
        element = ET.SubElement(key_metrics, q(metric.element))
        ET.SubElement(element, q("MetricGoal")).text = _text(metric.goal)
        results = ET.SubElement(element, q("Results"))
        rows = metric.results or ((NOT_RECORDED, {"value": None}),)
        for label, value in rows:
            result = ET.SubElement(results, q("MetricResult"))
            ET.SubElement(result, q("Label")).text = label
            ET.SubElement(result, q("ValueJson")).text = json.dumps(value, sort_keys=True)
        ET.SubElement(element, q("Interpretation")).text = _text(metric.interpretation)
        ET.SubElement(element, q("TestType")).text = _text(metric.test_type)
        ET.SubElement(element, q("TestingDataDescription")).text = _text(metric.data)
        ET.SubElement(element, q("ValidationProcessAndJustification")).text = _text(metric.process)
    add(root, "Resources")
    ET.SubElement(root, q("Bibliography")).text = _bibliography(ev)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    comment = (
        f"<!-- Generated by bedside {ev.bedside_version} from the record of {ev.ref} at "
        f"{ev.generated_at}. Signatures: "
        + (
            "; ".join(
                f"{s.printed_name} ({s.role}), {s.meaning} for {s.purpose}, {s.signed_at}"
                for s in ev.signatures
            )
            or "none recorded"
        ).replace("--", "-")
        + " -->"
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{comment}\n{body}\n'


def _keywords(ev: Evidence) -> list[str]:
    words = [ev.model_name]
    label = ev.training.get("label")
    if label:
        words.append(str(label))
    words.append("clinical prediction model")
    return words


def build(ev: Evidence) -> Document:
    """Return the CHAI card as a document (for Markdown and HTML)."""
    sections, metrics = _structure(ev)
    titles = {
        "BasicInfo": "Basic information",
        "ReleaseInfo": "Release information",
        "ModelSummary": "Model summary",
        "UsesAndDirections": "Uses and directions",
        "Warnings": "Warnings",
        "AISystemFacts": "Trust ingredients: AI system facts",
        "TransparencyInformation": "Trust ingredients: transparency information",
        "Resources": "Resources",
    }
    out = []
    for name, entries in sections:
        items: list[Entry | Table] = [entry for _, entry in entries]
        if name == "ModelSummary":
            items.append(
                Entry("Keywords", ", ".join(_keywords(ev)), "the registry and the training label")
            )
        out.append(Section(titles[name], tuple(items)))
        if name == "TransparencyInformation":
            for metric in metrics:
                table = Table(
                    "Results",
                    ("Metric", "Estimate (CI)"),
                    tuple(
                        (
                            label,
                            fmt_estimate(
                                value, ev.evaluation.get("test", {}).get("confidence_level")
                            )
                            or "—",
                        )
                        for label, value in metric.results
                    ),
                    c.SRC_EVAL.format(split="test"),
                )
                out.append(
                    Section(
                        f"Key metrics: {metric.title}",
                        (
                            metric.goal,
                            table,
                            metric.interpretation,
                            metric.test_type,
                            metric.data,
                            metric.process,
                        ),
                    )
                )
    return Document("chai", f"{TITLE}: {ev.ref}", STANDARD, ev, tuple(out))


@cache
def schema() -> Any:
    """Return the CHAI v0.2 XSD, loaded once, resolving its imports only from local copies."""
    import xmlschema

    source = resources.files("bedside.documents").joinpath("schemas", SCHEMA_FILE)
    with resources.as_file(source) as path:
        # allow="local": the xmldsig import is served from xmlschema's bundled copy; no network.
        return xmlschema.XMLSchema(str(path), allow="local")


def validate_xml(text: str) -> None:
    """Check ``text`` against the CHAI v0.2 XSD.

    Raises:
        InvalidInput: the XML does not validate; the message names the first problem.
    """
    import xmlschema

    try:
        schema().validate(text)
    except (xmlschema.XMLSchemaException, ET.ParseError) as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        path = getattr(exc, "path", None)
        raise InvalidInput(
            f"The CHAI model card does not validate against {SCHEMA_FILE}: {reason}"
            + (f" (at {path})" if path else "")
        ) from None
