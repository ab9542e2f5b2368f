"""The validation report: self-contained HTML and JSON from evidence, known fields only."""

from __future__ import annotations

import base64
import copy
import dataclasses
import html as html_lib
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.domain.evaluation import evaluate, threshold_for_sensitivity
from bedside.domain.fairness import assess_fairness
from bedside.domain.gates import judge_validation
from bedside.domain.models import Meaning, Purpose, Signature
from bedside.domain.spec_gates import ValidationStage
from bedside.errors import InvalidInput
from bedside.reports.validation import (
    NOT_RECORDED,
    SMALL_CELL,
    render_validation_html,
    suppress_small_count,
    validation_report_data,
    write_validation_report,
)

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
REF = "sepsis-prediction@3"
HEADINGS = [
    "Summary",
    "Validation gates",
    "Performance on the validation and test splits",
    "Discrimination: ROC and precision–recall curves",
    "Calibration",
    "Decision curve",
    "Subgroup performance",
    "Candidate operating thresholds",
    "Electronic signatures",
]
CANARY = "MRN-CANARY-7731-Doe"  # '-' is not base64, so it cannot hide in an embedded figure
_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class _Page(HTMLParser):
    """Check that elements nest and close; collect headings, images, tables and captions."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.h2: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.tables = self.captions = 0
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(found[name] or "")
        if tag == "img":
            self.images.append(found)
        self.tables += tag == "table"
        self.captions += tag == "caption"
        if tag == "h2":
            self.h2.append("")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "h2":
            self.h2[-1] += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    assert not page.problems, page.problems[:5]
    assert page.stack == [], f"unclosed: {page.stack}"
    return page


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def realistic_evidence(seed: int = 7, n: int = 2400, n_boot: int = 200) -> dict[str, Any]:
    """Return evidence shaped as train_stage writes it, from the real domain functions."""
    rng = np.random.default_rng(seed)
    ages = np.array(["18-44", "45-64", "65-79", "80+"], dtype=object)
    age_code = rng.choice(4, n, p=[0.3, 0.3, 0.25, 0.15])
    race = rng.choice(
        np.array(["White", "Black", "Asian", "Pacific Islander"], dtype=object),
        n,
        p=[0.6, 0.27, 0.11, 0.02],  # the last group is far below 30 patients
    )
    race[rng.random(n) < 0.03] = None  # missing values are a group of their own
    risk = -3.0 + 0.7 * age_code + rng.normal(0, 0.6, n)
    y = (rng.random(n) < _sigmoid(risk)).astype(int)
    p = _sigmoid(risk + rng.normal(0, 0.9, n))
    patients = np.array([f"P{k:05d}" for k in rng.integers(0, 2100, n)], dtype=object)
    split = rng.choice(np.array(["validation", "test"]), n)
    val, test = split == "validation", split == "test"
    threshold = threshold_for_sensitivity(y[val], p[val], 0.8)
    results = {
        name: evaluate(
            y[rows], p[rows], threshold=threshold, seed=3, patient_ids=patients[rows], n_boot=n_boot
        )
        for name, rows in (("validation", val), ("test", test))
    }
    stage = ValidationStage.model_validate(
        {
            "name": "validation",
            "gates": [
                {"statistical": {"min_auc_roc": 0.6, "max_ece": 0.2, "compare": "point_estimate"}},
                {"fairness": {"max_disparity": 0.3, "stratify_by": ["sex", "age_group", "race"]}},
                {"expression": "auroc >= 0.99"},  # fails: the report must say so
                {"clinical_review": {"required_approvers": 2, "roles": ["CMIO"]}},
            ],
        }
    )
    attributes = {
        "sex": rng.choice(np.array(["female", "male"], dtype=object), n)[test],
        "age_group": ages[age_code][test],
        "race": race[test],
    }
    fairness = assess_fairness(
        y[test],
        p[test],
        attributes,
        threshold=threshold,
        seed=3,
        patient_ids=patients[test],
        n_boot=n_boot,
    )
    outcomes = judge_validation(stage, evaluation=results["test"], fairness=fairness)
    evidence = {
        "dataset_digest": "ab12" * 16,
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"C": 0.5, "max_iter": 500},
        "seed": 42,
        "threshold": threshold,
        "threshold_rule": "provisional: highest threshold reaching min_sensitivity on the "
        "validation split (reviewers sign the operating threshold)",
        "feature_schema": [
            {"name": "lactate_max_24h", "kind": "float", "nullable": True},
            {"name": "sex", "kind": "category", "nullable": True, "categories": ["F", "M"]},
        ],
        "label": "sepsis",
        "n_train": 9000,
        "n_train_events": 640,
        "evaluation": {split: r.to_dict() for split, r in results.items()},
        "fairness": fairness.to_dict(),
        "fairness_by_gate": {"fairness": fairness.to_dict()},
        "gates": [o.to_dict() for o in outcomes],
        "mlflow_model_id": "m-0123456789abcdef",
    }
    result: dict[str, Any] = json.loads(json.dumps(evidence))  # the shape read back from disk
    return result


SIGNERS = [
    {
        "printed_name": "Grace Hopper",
        "role": "CMIO",
        "meaning": "approved",
        "signed_at": datetime(2026, 3, 2, 5, 30, 15, tzinfo=UTC),
        "purpose": "clinical_review",
        "record_sha256": "9f" * 32,
    },
    dataclasses.asdict(
        Signature(
            id=2,
            model_name="sepsis-prediction",
            version=3,
            purpose=Purpose.CLINICAL_REVIEW,
            username="aturing",
            printed_name="Alan Turing",
            role="clinical_informaticist",
            meaning=Meaning.REVIEWED,
            signed_at=datetime(2026, 3, 2, 5, 45, tzinfo=UTC),
            record_sha256="9f" * 32,
            signature_hmac="00" * 32,
            comment="looked at the threshold table",
        )
    ),
]


@pytest.fixture(scope="module")
def evidence() -> dict[str, Any]:
    return realistic_evidence()


@pytest.fixture(scope="module")
def written(
    evidence: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The realistic report, written once (the figures take a few seconds to draw)."""
    folder = tmp_path_factory.mktemp("validation") / "reports"
    return write_validation_report(
        evidence, folder, model_ref=REF, generated_at=NOW, signatures=SIGNERS
    )


@pytest.fixture(scope="module")
def html(written: tuple[Path, Path]) -> str:
    return written[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report_json(written: tuple[Path, Path]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(written[1].read_text(encoding="utf-8"))
    return data


def _text(html: str) -> str:
    """Return the page's visible text, tags and styles stripped, whitespace collapsed."""
    body = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", html_lib.unescape(body))


# ------------------------------------------------------------------------------ the page


def test_html_is_well_formed_and_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    page = _parse(html)
    assert len(page.images) == 4  # ROC + PR, calibration, decision curve, subgroups
    for image in page.images:
        src = image.get("src") or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
        assert len(image.get("alt") or "") > 20, "every figure has a description"
    assert all(url.startswith("data:") for url in page.urls), "nothing may be fetched"
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert page.tables > 0 and page.tables == page.captions, "every table has a caption"


def test_every_section_heading_and_gate_name_is_there(evidence: dict[str, Any], html: str) -> None:
    assert _parse(html).h2 == HEADINGS
    names = [g["gate"] for g in evidence["gates"]]
    assert names == ["statistical", "fairness", "expression"]
    for name in names:
        assert f"Gate <code>{name}</code>" in html


def test_summary_and_verdicts_come_from_the_evidence(evidence: dict[str, Any], html: str) -> None:
    text = _text(html)
    assert REF in text and "2026-03-02T06:00:00+00:00" in text
    assert evidence["dataset_digest"] in text
    assert "Trained on 9,000 rows, 640 with the outcome" in text
    assert f"{evidence['threshold']:.4g}" in text and "provisional: highest threshold" in text
    assert "C=0.5" in text and "sex (category, 2 levels)" in text
    # the expression gate fails, so the banner says a gate failed, and the failing check shows
    verdicts = [g["verdict"] for g in evidence["gates"]]
    assert verdicts[2] == "fail"
    assert "A validation gate failed" in text and "Every validation gate passed" not in text
    assert "'auroc >= 0.99' is false" in text
    auroc = evidence["evaluation"]["test"]["metrics"]["auroc"]
    assert f"{auroc['value']:.3f}" in text
    assert f"{auroc['ci_lower']:.3f}–{auroc['ci_upper']:.3f}" in text
    sens = evidence["evaluation"]["validation"]["metrics"]["sensitivity"]
    assert f"{100 * sens['value']:.1f}%" in text


def test_insufficient_evidence_groups_are_shown_and_marked(
    evidence: dict[str, Any], html: str
) -> None:
    weak = [g for g in evidence["fairness"]["groups"] if g["status"] == "insufficient_evidence"]
    names = {g["group"] for g in weak}
    assert {"Pacific Islander", "(missing)"} <= names  # tiny groups, reported not hidden
    rows = re.findall(r'<tr class="weak"><th scope="row">([^<]+)</th>', html)
    assert sorted(rows) == sorted(g["group"] for g in weak)
    text = _text(html)
    assert f"{len(weak)} group(s) are marked so" in text
    for group in weak:
        for reason in group["reasons"]:
            assert suppress_small_count(reason) in text


def test_small_subgroup_counts_are_suppressed(evidence: dict[str, Any], html: str) -> None:
    small = [
        g
        for g in evidence["fairness"]["groups"]
        if 0 < g["n_patients"] < SMALL_CELL or 0 < g["n_events"] < SMALL_CELL
    ]
    assert small, "the fixture has groups with small counts"
    cells = re.findall(
        r'<th scope="row">([^<]+)</th><td class="num">([^<]+)</td><td class="num">([^<]+)</td>',
        html,
    )
    shown = {group: (patients, events) for group, patients, events in cells}
    for g in small:
        patients, events = shown[g["group"]]
        for count, cell in ((g["n_patients"], patients), (g["n_events"], events)):
            if 0 < count < SMALL_CELL:
                assert cell == f"fewer than {SMALL_CELL}"
            else:
                assert cell == f"{count:,}"
        for reason in g["reasons"]:
            if re.match(r"\d+ ", reason) and 0 < int(reason.split()[0]) < SMALL_CELL:
                assert reason not in _text(html)


def test_threshold_table_lists_every_candidate_with_the_operating_row(
    evidence: dict[str, Any], html: str
) -> None:
    for split in ("validation", "test"):
        table = evidence["evaluation"][split]["threshold_table"]
        assert f"Candidate thresholds on the {split} split" in html
        operating = [r for r in table if r["source"] == "operating"]
        assert len(operating) == 1
        row = operating[0]
        assert f'<td class="num">{row["alerts_per_100"]:.1f}</td>' in html
    assert html.count('<tr class="operating">') == 2
    rows = sum(len(evidence["evaluation"][s]["threshold_table"]) for s in ("validation", "test"))
    assert (
        len(re.findall(r"<tr(?: class=\"operating\")?><th scope=\"row\" class=\"num\">", html))
        == rows
    )


def test_signature_manifestations_are_printed(html: str) -> None:
    text = _text(html)
    assert "Grace Hopper CMIO approved 2026-03-02 05:30:15+00:00" in text
    assert "Alan Turing clinical_informaticist reviewed 2026-03-02 05:45:00+00:00" in text
    assert "9f" * 32 in text
    assert "looked at the threshold table" not in text and "aturing" not in text


def test_each_fairness_gate_gets_its_own_subgroup_block(evidence: dict[str, Any]) -> None:
    two = copy.deepcopy(evidence)
    second = copy.deepcopy(evidence["fairness"])
    second["attributes"] = ["sex"]
    second["groups"] = [g for g in second["groups"] if g["attribute"] == "sex"]
    two["fairness_by_gate"] = {"fairness_1": evidence["fairness"], "fairness_2": second}
    two["fairness_by_gate"]["unexpected"] = evidence["fairness"]  # not a gate name: ignored
    html = render_validation_html(two, model_ref=REF, generated_at=NOW)
    page = _parse(html)
    assert len(page.images) == 5  # two subgroup charts
    assert "<h3>Gate <code>fairness_1</code></h3>" in html
    assert "<h3>Gate <code>fairness_2</code></h3>" in html
    assert "unexpected" not in _text(html)
    assert html.count("<caption>Metrics per group of sex</caption>") == 2
    assert html.count("<caption>Metrics per group of race</caption>") == 1


# ------------------------------------------------------------------------------ curves


def test_curves_without_recorded_points_are_read_off_the_threshold_table(
    evidence: dict[str, Any], html: str, report_json: dict[str, Any]
) -> None:
    assert "read off the candidate-threshold table" in html
    for split in ("validation", "test"):
        table = evidence["evaluation"][split]["threshold_table"]
        roc = report_json["curves"]["roc"][split]
        pr = report_json["curves"]["pr"][split]
        assert roc["source"] == pr["source"] == "threshold_table"
        expected_roc = sorted({(1 - r["specificity"], r["sensitivity"]) for r in table})
        assert roc["points"] == [list(t) for t in expected_roc]
        expected_pr = sorted({(r["sensitivity"], r["ppv"]) for r in table if r["ppv"] is not None})
        assert pr["points"] == [list(t) for t in expected_pr]
        assert len(roc["points"]) <= len(table)  # nothing added beyond the table's rows


def test_recorded_curve_points_are_drawn_as_recorded() -> None:
    roc = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.2, "tpr": 0.7}, {"fpr": 1.0, "tpr": 1.0}]
    pr = [{"recall": 0.0, "precision": 1.0}, {"recall": 0.7, "precision": 0.4}]
    evidence = {"evaluation": {"test": {"roc_curve": roc, "pr_curve": pr}}}
    data = validation_report_data(evidence, model_ref=REF, generated_at=NOW)
    assert data["evaluation"]["test"]["roc_curve"] == [[0.0, 0.0], [0.2, 0.7], [1.0, 1.0]]
    html = render_validation_html(evidence, model_ref=REF, generated_at=NOW)
    assert "drawn from the curve points recorded in the evidence" in html
    assert "read off the candidate-threshold table" not in html
    assert len(_parse(html).images) == 1  # the curves; nothing else has data


# ------------------------------------------------------------------------------ missing fields


@pytest.mark.parametrize(
    "evidence",
    [
        {},
        {"dataset_digest": "ab12", "evaluation": {"test": {"metrics": {}}}, "gates": []},
        {
            "evaluation": {"validation": {"n_rows": 10, "metrics": {"auroc": {"value": None}}}},
            "fairness": {"groups": [{"attribute": "sex", "group": "F"}]},
            "gates": [{"gate": "statistical", "checks": [{"metric": "auroc"}]}],
            "feature_schema": "not a list",
            "params": ["not", "a", "mapping"],
        },
    ],
    ids=["empty", "sections-empty", "fields-missing"],
)
def test_missing_evidence_says_not_recorded(evidence: dict[str, Any]) -> None:
    html = render_validation_html(evidence, model_ref=REF, generated_at=NOW)
    page = _parse(html)
    assert page.h2 == HEADINGS
    text = _text(html)
    assert text.count(NOT_RECORDED) >= 10
    for field in ("Dataset digest", "Trained on", "How the threshold was chosen", "Signatures"):
        assert re.search(re.escape(field) + r"[^.]{0,40}" + NOT_RECORDED, text), field
    assert "Every validation gate passed" not in text


def test_an_undefined_metric_says_undefined_with_its_reason() -> None:
    evidence = {
        "evaluation": {
            "test": {
                "metrics": {
                    "ppv": {"value": None, "reason": "no alerts (positive predictions)"},
                    "auroc": {"value": 0.8, "ci_lower": None, "ci_reason": "too few resamples"},
                }
            }
        }
    }
    text = _text(render_validation_html(evidence, model_ref=REF, generated_at=NOW))
    assert "undefined — no alerts (positive predictions)" in text
    assert "0.800 no interval too few resamples" in text


def test_evidence_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="evidence must be a mapping"):
        render_validation_html([1, 2], model_ref=REF, generated_at=NOW)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ privacy


def _plant(evidence: dict[str, Any]) -> dict[str, Any]:
    """Return the evidence with a patient-like id in every kind of place no field expects it."""
    planted = copy.deepcopy(evidence)
    row = {"patient_id": CANARY, "name": CANARY, "y_prob": 0.91}
    planted["rows"] = [row]
    planted[CANARY] = CANARY
    planted["evaluation"]["train"] = {"metrics": {"auroc": {"value": 0.9}}, "note": CANARY}
    planted["evaluation"][CANARY] = planted["evaluation"]["test"]
    for split in ("validation", "test"):
        ev = planted["evaluation"][split]
        ev["rows"] = [row]
        ev["metrics"][CANARY] = {"value": 0.5}
        ev["metrics"]["auroc"]["patient_id"] = CANARY
        ev["threshold_table"][0]["patient_id"] = CANARY
        ev["calibration_bins"][0]["patients"] = [CANARY]
        ev["decision_curve"][0]["example"] = CANARY
    fairness = planted["fairness"]
    fairness["groups"][0]["members"] = [CANARY]
    fairness["groups"][0]["metrics"][CANARY] = {"value": 0.1}
    fairness["overall"]["auroc"]["worst_patient"] = CANARY
    fairness["disparities"][0]["example"] = CANARY
    fairness["example_rows"] = [row]
    gate = planted["gates"][0]
    gate["details"]["patient_id"] = CANARY
    gate["checks"][0]["patient"] = CANARY
    planted["gates"][2]["details"]["values"][CANARY] = 1.0  # not a name the expression uses
    planted["feature_schema"][0]["example"] = CANARY
    return planted


def test_a_planted_patient_id_never_reaches_the_report(
    evidence: dict[str, Any], tmp_path: Path
) -> None:
    signers = [{**SIGNERS[0], "comment": CANARY, "patient_id": CANARY}, SIGNERS[1]]
    html_path, json_path = write_validation_report(
        _plant(evidence), tmp_path, model_ref=REF, generated_at=NOW, signatures=signers
    )
    for path in (html_path, json_path):
        content = path.read_text(encoding="utf-8")
        assert CANARY not in content, path.name
        assert "Grace Hopper" in content  # the control: the report was written in full
    assert "P0" not in json_path.read_text(encoding="utf-8")  # no patient id of the cohort


# ------------------------------------------------------------------------------ files


def test_write_gives_html_and_json_of_the_same_content(
    evidence: dict[str, Any], written: tuple[Path, Path], report_json: dict[str, Any]
) -> None:
    html_path, _ = written
    assert sorted(p.name for p in html_path.parent.iterdir()) == [
        "validation.html",
        "validation.json",
    ]
    expected = validation_report_data(evidence, model_ref=REF, generated_at=NOW, signatures=SIGNERS)
    assert {k: v for k, v in report_json.items() if k != "curves"} == json.loads(
        json.dumps(expected)
    )
    assert report_json["model"] == "sepsis-prediction" and report_json["version"] == "3"
    assert report_json["generated_at"] == NOW.isoformat()
    assert report_json["gates_verdict"] == "fail"
    test = report_json["evaluation"]["test"]
    assert (
        test["metrics"]["auroc"]["value"]
        == evidence["evaluation"]["test"]["metrics"]["auroc"]["value"]
    )
    assert len(test["threshold_table"]) == len(evidence["evaluation"]["test"]["threshold_table"])
    assert [s["printed_name"] for s in report_json["signatures"]] == ["Grace Hopper", "Alan Turing"]
