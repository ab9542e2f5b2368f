"""End to end: PHI planted in the source never leaves the raw data area, and nothing phones home.

Distinctive fake identifiers (tests/canary.py) are planted in one synthetic patient; the whole
pipeline runs — prepare, train (real MLflow store), validate, two signatures — under an audit hook
that records every network destination. Then every file bedside wrote outside the raw data area
(bedside's database, the MLflow database and artifacts, the snapshot, the reports, the logs) is
byte-searched for the canaries.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from bedside.domain.models import Meaning, VersionState
from bedside.ingest.synthetic import generate_hospital
from bedside.prepare import PreparedDataset
from bedside.service import Platform
from bedside.stores.tracking import Tracker
from tests.canary import CANARIES, CANARY_PATIENT, find_canaries
from tests.egress import EgressRecorder
from tests.service.test_train import DEMO, _accepting
from tests.support import PASSWORD, REPO, Team


def _plant(export: Path) -> None:
    """Give the first inpatient-heavy patient the canary identity, keeping every reference."""
    lines = (export / "Patient.ndjson").read_text(encoding="utf-8").splitlines()
    patient = json.loads(lines[0])
    old_id = patient["id"]
    patient["id"] = CANARY_PATIENT["patient_id"]
    patient["name"] = [{"use": "official", "family": "Quixwhistle", "given": ["Mary"]}]
    patient["birthDate"] = CANARY_PATIENT["birth_date"]
    patient["telecom"] = [
        {"system": "phone", "value": CANARY_PATIENT["phone"]},
        {"system": "email", "value": CANARY_PATIENT["email"]},
    ]
    patient["address"] = [
        {
            "line": [CANARY_PATIENT["address"]],
            "city": "Springfield",
            "state": "MA",
            "postalCode": "02139",
        }
    ]
    patient["identifier"] = [
        {"type": {"coding": [{"code": "MR"}]}, "value": CANARY_PATIENT["mrn"]},
        {"type": {"coding": [{"code": "SS"}]}, "value": CANARY_PATIENT["ssn"]},
    ]
    lines[0] = json.dumps(patient)
    (export / "Patient.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("Encounter", "Observation", "Condition"):
        path = export / f"{name}.ndjson"
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                f"Patient/{old_id}", f"Patient/{CANARY_PATIENT['patient_id']}"
            ),
            encoding="utf-8",
        )


@pytest.mark.slow
def test_planted_phi_never_leaves_the_raw_area_and_nothing_leaves_the_machine(
    platform: Platform, team: Team, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    platform.home, platform.artifacts_root = tmp_path, tmp_path / "artifacts"
    export = tmp_path / "data" / "fhir"
    generate_hospital(
        export, admissions=1500, start=date(2024, 1, 1), end=date(2025, 1, 1), seed=21
    )
    _plant(export)
    assert find_canaries([export]), "the canaries must be in the source for this test to mean much"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(_accepting(DEMO.read_text(encoding="utf-8")), encoding="utf-8")
    tracker = Tracker(
        f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        artifact_location=tmp_path / "artifacts" / "mlflow",
    )
    recorder = EgressRecorder.install()
    caplog.set_level(logging.DEBUG)
    with recorder.recording():
        platform.register_pipeline(team.admin, content=pipeline.read_text(encoding="utf-8"))
        prepared = platform.prepare_dataset(team.scientist, pipeline)
        assert isinstance(prepared, PreparedDataset), prepared
        version = platform.train_version(
            team.scientist,
            pipeline,
            tracker=tracker,
            repo=REPO,
            lock_file=REPO / "uv.lock",
            n_boot=50,
        )
        platform.validate_version(team.engineer, version.ref)
        platform.sign("carol", PASSWORD, version.ref, meaning=Meaning.APPROVED)
        platform.sign("ivan", PASSWORD, version.ref, meaning=Meaning.APPROVED)
    assert platform.get_version(version.ref).state is VersionState.APPROVED
    assert recorder.non_local() == [], recorder.non_local()

    # Everything bedside wrote, outside the raw data area (the source export and the ingested
    # raw resources, which are PHI by design and stay in the project's protected folder).
    (tmp_path / "bedside.log").write_text(caplog.text, encoding="utf-8")
    dump = tmp_path / "database-dump.txt"
    with platform.database.read() as conn, dump.open("w", encoding="utf-8") as out:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                out.write(f"{table}: {tuple(row)!r}\n")
    searched = [
        tmp_path / "artifacts",
        tmp_path / "mlflow",
        tmp_path / "bedside.log",
        dump,
        *(p for p in tmp_path.glob("bedside.db*")),
        *(
            p
            for p in (tmp_path / "work").rglob("*")
            if p.is_file() and "ingest" not in p.relative_to(tmp_path / "work").parts
        ),
    ]
    assert sum(1 for p in searched if p.exists()) >= 5
    assert find_canaries(searched) == []
    # The raw area does hold them: the search would have found a leak.
    assert {c.kind for _, c in find_canaries([tmp_path / "work"])} >= {"name", "ssn"}
    assert len(CANARIES) >= 8
    shutil.rmtree(tmp_path / "data")  # synthetic PHI: do not leave it lying in /tmp
