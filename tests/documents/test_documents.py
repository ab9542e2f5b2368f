"""Regulatory documents from the record: CHAI XML, HTI-1, gaps, signatures, ledger, no PHI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import xmlschema

from bedside.documents import KINDS, issue_documents, render_document
from bedside.documents.chai import validate_xml
from bedside.domain.models import ModelVersion
from bedside.errors import InvalidInput, NotFound, PermissionDenied
from bedside.service import Platform
from tests.canary import find_canaries
from tests.documents.support import LEAK, signed_version
from tests.service.test_train import hospital, trained_to_production
from tests.support import FOUNDING_PIPELINE, PASSWORD, REPO, Clock, Team

__all__ = ["hospital"]  # the module-scoped synthetic hospital fixture, shared with test_train

XSD = REPO / "src" / "bedside" / "documents" / "schemas" / "chai-model-card-v0.2.xsd"

# REGULATORY §4.1, the 31 predictive-DSI source attributes, in order.
HTI1_ATTRIBUTES = [
    "Name and contact information of the intervention developer",
    "Funding source of the technical implementation of the intervention's development",
    "Description of the value the intervention produces as output",
    "Whether output is a prediction, classification, recommendation, evaluation, analysis, "
    "or other type",
    "Intended use",
    "Intended patient population(s)",
    "Intended user(s)",
    "Intended decision-making role (e.g., informs, augments, replaces clinical management)",
    "Tasks, situations or populations where users are cautioned against applying it",
    "Known risks, inappropriate settings, inappropriate uses, known limitations",
    "Exclusion and inclusion criteria that shaped the training data",
    "Use of the demographic variables as input features",
    "Demographic representativeness (per the variables), at minimum for those used as inputs",
    "Relevance of training data to the intended deployed setting",
    "Approach taken to ensure the output is fair",
    "Approaches to manage, reduce or eliminate bias",
    "Data source, clinical setting or environment where validity and fairness were assessed, "
    "other than the training/testing source",
    "Party that conducted the external testing",
    "Demographic representativeness of the external data",
    "Description of the external validation process",
    "Validity in test data from the same source as the initial training data",
    "Fairness in test data from the same source as the initial training data",
    "Validity in data external to / from a different source than the training data",
    "Fairness in external / different-source data",
    "References to evaluations of the intervention's effect on outcomes (e.g., morbidity, "
    "mortality, length of stay), citations or links",
    "Process and frequency for monitoring validity over time",
    "Validity in local data",
    "Process and frequency for monitoring fairness over time",
    "Fairness in local data",
    "Process and frequency for updating the intervention",
    "Frequency with which performance is corrected when validity or fairness risks are identified",
]


@pytest.fixture
def version(platform: Platform, team: Team, tmp_path: Path) -> ModelVersion:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    return signed_version(
        platform, scientist=team.scientist, engineer=team.engineer, admin=team.admin
    )


def _field(markdown: str, label: str) -> str:
    """Return the Markdown of one field: from its bold label to the next bold label."""
    start = markdown.index(f"{label}**")
    end = markdown.find("\n**", start + len(label))
    return markdown[start : end if end != -1 else None]


def test_chai_xml_validates_against_the_xsd_and_a_broken_one_does_not(
    platform: Platform, team: Team, version: ModelVersion
) -> None:
    xml = render_document(platform, team.auditor, version.ref, "chai", "xml")
    schema = xmlschema.XMLSchema(str(XSD), allow="local")
    schema.validate(xml)  # the vendored XSD, independently of bedside's own check
    assert "<ModelName>sepsis-prediction</ModelName>" in xml
    assert "Dr Carol Chief" in xml  # the signature manifestation travels with the card
    # The same card as HTML says the same thing.
    html = render_document(platform, team.auditor, version.ref, "chai", "html")
    assert "Rapid response nurses and hospitalists." in xml
    assert "Rapid response nurses and hospitalists." in html
    # A broken card does not validate: out of order (ReleaseInfo before BasicInfo), or
    # missing a required element.
    basic = re.search(r"\s*<BasicInfo>.*?</BasicInfo>", xml, re.S)
    assert basic is not None
    reordered = xml.replace(basic.group(0), "").replace(
        "</ReleaseInfo>", "</ReleaseInfo>" + basic.group(0), 1
    )
    without = re.sub(r"<ModelDeveloper>.*?</ModelDeveloper>", "", xml, flags=re.S)
    for broken in (reordered, without):
        assert not schema.is_valid(broken)
        with pytest.raises(InvalidInput, match="does not validate"):
            validate_xml(broken)


def test_hti1_has_exactly_the_31_attributes(
    platform: Platform, team: Team, version: ModelVersion
) -> None:
    markdown = render_document(platform, team.auditor, version.ref, "hti1", "md")
    found = re.findall(r"^\*\*(\d+)\. (.+?)\*\*", markdown, re.M)
    assert [int(n) for n, _ in found] == list(range(1, 32))
    assert [label for _, label in found] == HTI1_ATTRIBUTES
    html = render_document(platform, team.auditor, version.ref, "hti1", "html")
    keys = re.findall(r'<div class="field" data-key="(\d+)">', html)
    assert keys == [str(n) for n in range(1, 32)]
    # Filled from evidence where the record has it; marked where it does not.
    assert "Internal quality-improvement budget." in _field(markdown, HTI1_ATTRIBUTES[1])
    assert "AUROC: 0.513 (95% CI 0.319–0.667)" in _field(markdown, HTI1_ATTRIBUTES[20])
    assert "*not recorded*; would come from" in _field(markdown, HTI1_ATTRIBUTES[17])


def test_not_recorded_until_the_record_holds_evidence(
    platform: Platform, team: Team, tmp_path: Path
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    # The founding pipeline file has no model_card: section and no snapshot exists.
    bare = signed_version(
        platform,
        scientist=team.scientist,
        engineer=team.engineer,
        admin=team.admin,
        pipeline=FOUNDING_PIPELINE,
        with_snapshot=False,
        reviewers=(),
    )
    card = render_document(platform, team.auditor, bare.ref, "model-card", "md")
    assert "*No signatures recorded*" in card and "Dr Carol Chief" not in card
    funding = _field(card, "Funding")
    assert "*not recorded*; would come from the pipeline file's model_card:" in funding
    assert "model_card.funding" in funding
    assert "*not recorded*" in _field(card, "Size")
    # A version whose pipeline file has a model card and whose snapshot exists.
    full = signed_version(
        platform, scientist=team.scientist, engineer=team.engineer, admin=team.admin
    )
    card = render_document(platform, team.auditor, full.ref, "model-card", "md")
    funding = _field(card, "Funding")
    assert "Internal quality-improvement budget." in funding
    assert "not recorded" not in funding
    size = _field(card, "Size")
    assert "train: 8 rows" in size and "not recorded" not in size


def test_every_document_shows_the_signatures(
    platform: Platform, team: Team, version: ModelVersion
) -> None:
    for kind, fmt in ((k, f) for k in KINDS for f in ("md", "html")):
        text = render_document(platform, team.auditor, version.ref, kind, fmt)
        for name in ("Dr Carol Chief", "Ivan Informaticist"):
            line = next(line for line in text.splitlines() if name in line and "UTC" in line)
            assert "approved" in line and "clinical_review" in line and "verifies" in line
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", line)


def test_issued_documents_have_their_hash_in_the_ledger(
    platform: Platform, team: Team, version: ModelVersion, tmp_path: Path
) -> None:
    issued = issue_documents(platform, team.cmio, version.ref, "all")
    assert {(i.kind, i.format) for i in issued} == {
        *((k, f) for k in KINDS for f in ("md", "html")),
        ("chai", "xml"),
    }
    folder = tmp_path / "documents" / "sepsis-prediction" / str(version.version)
    events = {
        e.seq: e
        for e in platform.list_audit_events(
            team.auditor, subject_id=version.ref, action_prefix="document."
        )
    }
    assert len(events) == len(issued)
    for item in issued:
        assert item.path.parent == folder
        event = events[item.ledger_seq]
        assert event.action == "document.issued" and event.actor == "carol"
        assert event.after == {
            "kind": item.kind,
            "format": item.format,
            "sha256": hashlib.sha256(item.path.read_bytes()).hexdigest(),
            "path": str(item.path),
        }
    assert platform.verify_audit().ok


def test_issue_refuses_unknown_kinds_refs_and_readers(
    platform: Platform, team: Team, version: ModelVersion, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="model-card, chai, hti1, pccp, tripod-ai, eu-ai-act"):
        issue_documents(platform, team.auditor, version.ref, ["hti2"])
    with pytest.raises(NotFound):
        issue_documents(platform, team.auditor, "sepsis-prediction@99", "hti1")
    with pytest.raises(InvalidInput):
        render_document(platform, team.auditor, version.ref, "hti1", "xml")
    nobody = platform.add_user(
        team.admin, "nobody", full_name="No Body", password=PASSWORD, roles=[]
    )
    with pytest.raises(PermissionDenied):
        issue_documents(platform, nobody, version.ref, "hti1", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    refusals = platform.list_audit_events(team.auditor, action_prefix="denied.metrics.read")
    assert [e.actor for e in refusals] == ["nobody"]


def test_documents_carry_no_patient_data(
    platform: Platform, team: Team, version: ModelVersion, tmp_path: Path
) -> None:
    # Canaries were planted as patient identifiers in the snapshot and under record keys that
    # no document reads (tests/documents/support.py): none may reach any document.
    issued = issue_documents(platform, team.auditor, version.ref, "all", out_dir=tmp_path / "out")
    assert issued
    assert find_canaries([tmp_path / "out"]) == []
    assert LEAK not in "".join(i.path.read_text(encoding="utf-8") for i in issued)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # training is backend-neutral
def test_all_documents_for_a_trained_production_version(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path, hospital: Path
) -> None:
    # The acceptance path: a version trained, signed, shadowed and promoted for real.
    _, live = trained_to_production(platform, team, clock, tmp_path, hospital)
    issued = issue_documents(platform, team.auditor, live.ref, "all")
    assert len(issued) == 2 * len(KINDS) + 1
    xml = next(i for i in issued if i.format == "xml").path.read_text(encoding="utf-8")
    xmlschema.XMLSchema(str(XSD), allow="local").validate(xml)
    hti1 = next(i for i in issued if i.kind == "hti1" and i.format == "md")
    found = re.findall(r"^\*\*(\d+)\. (.+?)\*\*", hti1.path.read_text(encoding="utf-8"), re.M)
    assert [label for _, label in found] == HTI1_ATTRIBUTES
    for item in issued:
        text = item.path.read_text(encoding="utf-8")
        assert "Dr Cora Second" in text and "Dr Carol Chief" in text
