"""The data preparation stage through the Platform: snapshot, reports, ledger, blocks, no PHI."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from bedside.errors import PermissionDenied
from bedside.ingest.synthetic import generate_hospital
from bedside.prepare import BlockedDataset, PreparedDataset
from bedside.service import Platform
from bedside.stores.snapshots import read_snapshot
from tests.support import EXAMPLES, Team

FULL = EXAMPLES / "sepsis" / "pipeline.full.yaml"


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hospital")
    generate_hospital(
        folder / "data" / "fhir",
        admissions=1500,
        start=date(2024, 1, 1),
        end=date(2025, 1, 1),
        seed=11,
    )
    return folder


def _pipeline_in(tmp_path: Path, hospital: Path, *, text: str | None = None) -> Path:
    shutil.copytree(hospital / "data", tmp_path / "data")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(text or FULL.read_text(encoding="utf-8"), encoding="utf-8")
    return pipeline


def _phi_strings(export: Path, limit: int = 300) -> list[str]:
    """Names, SSNs, MRNs, phones, street lines and birth dates found in the synthetic input."""
    found: set[str] = set()
    for line in (export / "Patient.ndjson").read_text(encoding="utf-8").splitlines()[:limit]:
        patient = json.loads(line)
        found.update(n["family"] for n in patient.get("name", []) if len(n.get("family", "")) > 5)
        found.update(i["value"] for i in patient.get("identifier", []))
        found.update(t["value"] for t in patient.get("telecom", []))
        found.update(a["line"][0] for a in patient.get("address", []) if a.get("line"))
        found.add(patient["birthDate"])
        found.add(patient["id"])
    return sorted(found)


def test_prepare_writes_an_encrypted_snapshot_without_phi(
    platform: Platform, team: Team, tmp_path: Path, hospital: Path
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    pipeline = _pipeline_in(tmp_path, hospital)
    steps: list[str] = []
    result = platform.prepare_dataset(team.scientist, pipeline, progress=steps.append)
    assert isinstance(result, PreparedDataset), result
    assert steps[0].startswith("ingesting") and steps[-1].startswith("writing")
    frame, manifest = read_snapshot(result.folder, platform.keys)
    assert manifest.digest == result.digest and len(frame) == result.rows
    assert set(frame["split"]) == {"train", "validation", "test"}
    assert "encounter_id" not in frame.columns
    assert frame["age"].max() <= 90
    assert (frame["prediction_time"].dt.month == 1).all()  # dates kept to the year only
    events = platform.list_audit_events(team.auditor, action_prefix="dataset.")
    assert [(e.action, e.subject_id) for e in events] == [("dataset.prepared", result.digest)]
    # No identifier from the input appears anywhere bedside wrote outside the raw ingest area.
    phi = [s.encode() for s in _phi_strings(tmp_path / "data" / "fhir")]
    written = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    written += [
        p for p in (tmp_path / "work").rglob("*") if p.is_file() and "ingest" not in p.parts
    ]
    assert written
    leaks = [(p.name, s) for p in written for s in phi if s in p.read_bytes()]
    assert leaks == []
    # ... and the decrypted data holds none either (de-identified, not merely encrypted).
    plain = frame.to_csv(index=False).encode()
    assert [s for s in phi if s in plain] == []


def test_a_blocking_quality_check_stops_and_is_recorded(
    platform: Platform, team: Team, tmp_path: Path, hospital: Path
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    strict = FULL.read_text(encoding="utf-8").replace(
        "completeness_exempt: [heart_rate_slope_6h, lactate_max_24h,", "completeness_exempt: ["
    )
    pipeline = _pipeline_in(tmp_path, hospital, text=strict)
    result = platform.prepare_dataset(team.scientist, pipeline)
    assert isinstance(result, BlockedDataset) and result.check == "data_quality"
    assert "lactate_max_24h" in result.summary and result.report.exists()
    assert not (tmp_path / "artifacts" / "datasets").exists()
    (event,) = platform.list_audit_events(team.auditor, action_prefix="dataset.")
    assert event.action == "dataset.blocked" and "lactate_max_24h" in event.reason


def test_auditors_may_not_prepare_data(
    platform: Platform, team: Team, tmp_path: Path, hospital: Path
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    with pytest.raises(PermissionDenied, match="dataset.prepare"):
        platform.prepare_dataset(team.auditor, _pipeline_in(tmp_path, hospital))
    assert not (tmp_path / "work").exists()


def test_fairness_attributes_are_kept_as_columns(
    platform: Platform, team: Team, tmp_path: Path, hospital: Path
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    result = platform.prepare_dataset(team.scientist, _pipeline_in(tmp_path, hospital))
    assert isinstance(result, PreparedDataset)
    frame, manifest = read_snapshot(result.folder, platform.keys)
    assert {"race", "age_group", "sex"} <= set(frame.columns)
    assert manifest.extraction["stratification_columns"] == ["race", "age_group"]
    assert "race" not in manifest.extraction["features"]
