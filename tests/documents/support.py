"""Build a signed model version whose record is that of a real training run, quickly.

``data/trained-version.json`` is the evidence and gate results that ``bedside train`` recorded
for the demo pipeline on the synthetic hospital (decision curve and threshold table thinned). The
version is registered, gated, validated and signed through the real Platform, and a small
dataset snapshot (synthetic rows, written by the real snapshot store) stands for the training
data, so documents read a real manifest. Training itself is exercised by the slow test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bedside.domain.models import Meaning, ModelVersion, User
from bedside.service import Platform
from bedside.stores.snapshots import write_snapshot
from tests.canary import CANARIES
from tests.support import EXAMPLES, PASSWORD

DATA = Path(__file__).parent / "data" / "trained-version.json"
DEMO = EXAMPLES / "sepsis" / "pipeline.demo.yaml"
#: A canary planted under keys of the record that no document may read.
LEAK = CANARIES[0].value


def recorded_run() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def small_snapshot(platform: Platform) -> str:
    """Write a tiny synthetic snapshot (with canaries as identifiers); return its digest."""
    assert platform.artifacts_root is not None
    rows = 12
    frame = pd.DataFrame(
        {
            "patient_id": [CANARIES[1].value + str(i) for i in range(rows)],
            "prediction_time": pd.date_range("2024-01-01", periods=rows, freq="D", tz="UTC"),
            "heart_rate_max_6h": [80.0 + i for i in range(rows)],
            "sex": ["female", "male"] * (rows // 2),
            "sepsis": [0, 1] * (rows // 2),
            "split": ["train"] * 8 + ["validation"] * 2 + ["test"] * 2,
        }
    )
    manifest = write_snapshot(
        frame,
        root=platform.artifacts_root,
        key_ring=platform.keys,
        created_at=platform.now(),
        source={"kind": "ndjson_folder", "path": "data/fhir", "resource_types": ["Patient"]},
        extraction={
            "cohort": {
                "encounter_classes": ["inpatient"],
                "min_age": 18,
                "prediction_time": "admission + 6h",
                "exclude_prior_outcome": True,
            },
            "label": "sepsis",
        },
        label_col="sepsis",
    )
    return manifest.digest


def signed_version(
    platform: Platform,
    *,
    scientist: User,
    engineer: User,
    admin: User,
    pipeline: Path = DEMO,
    with_snapshot: bool = True,
    reviewers: tuple[str, ...] = ("carol", "ivan"),
) -> ModelVersion:
    """Register the recorded run as a version of sepsis-prediction, gate, validate and sign it."""
    platform.register_pipeline(admin, content=pipeline.read_text(encoding="utf-8"))
    run = recorded_run()
    evidence = dict(run["evidence"])
    # Keys no document may read: whatever is planted here must never reach a document.
    evidence["debug_rows"] = [{"name": LEAK}]
    evidence["fairness"] = {**evidence["fairness"], "rows": [LEAK]}
    if with_snapshot:
        evidence["dataset_digest"] = small_snapshot(platform)
    version = platform.register_version(
        scientist, "sepsis-prediction", run_id="0528f69870a24cbfb31a4570310a1f2d", evidence=evidence
    )
    from bedside.domain.specfile import load_pipeline_text

    spec = load_pipeline_text(pipeline.read_text(encoding="utf-8")).spec
    gates = {name for g in spec.validation.gates for name, v in g if v is not None}
    for gate in (g for g in run["gates"] if g["gate"] in gates):
        platform.record_gate_result(
            scientist,
            version.ref,
            gate=gate["gate"],
            passed=gate["passed"],
            details=gate["details"],
        )
    platform.validate_version(engineer, version.ref)
    for username in reviewers:
        platform.sign(username, PASSWORD, version.ref, meaning=Meaning.APPROVED)
    return platform.get_version(version.ref)
