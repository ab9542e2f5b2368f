"""Benchmark de-identification: FHIR resources/s and table rows/s.

FHIR: seeded synthetic vital-sign/lab Observations (the bulk of a clinical export), and the
Synthea sample in ``shared/data/synthea-10-patients`` (Patients, Encounters, Conditions…, whose
Encounters are large) replicated with fresh ids, each under the year-only and the date-shift
policy. Tables: a seeded frame of patient ids, ZIP codes, birth dates, event times, ages and
numeric features through :func:`bedside.deid.tables.deidentify_table`.

Run: ``.venv/bin/python bench/bench_deid.py [--observations 100000] [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bedside.deid.fhir import FhirDeidentifier
from bedside.deid.tables import deidentify_table
from bedside.domain.deid import DeidPolicy

SEED = 20240601
KEY = bytes(range(32))
AS_OF = date(2026, 1, 1)
SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-10-patients"
CODES = [("8867-4", "/min"), ("9279-1", "/min"), ("8310-5", "Cel"), ("2524-7", "mmol/L")]


def make_observations(count: int) -> list[dict[str, Any]]:
    """Return ``count`` seeded Observations shaped like US Core vital signs and labs."""
    rng = random.Random(SEED)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        when = (start + timedelta(minutes=rng.randrange(0, 525_600))).isoformat()
        code, unit = rng.choice(CODES)
        patient = f"patient-{rng.randrange(0, 20_000):06d}"
        out.append(
            {
                "resourceType": "Observation",
                "id": f"obs-{i:09d}",
                "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "observation-category",
                                "code": "vital-signs",
                                "display": "Vital Signs",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": code, "display": code}],
                    "text": code,
                },
                "subject": {"reference": f"Patient/{patient}"},
                "encounter": {"reference": f"Encounter/{patient}-{rng.randrange(5)}"},
                "effectiveDateTime": when,
                "issued": when,
                "valueQuantity": {
                    "value": round(rng.gauss(80, 15), 1),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return out


def synthea_resources(copies: int) -> list[dict[str, Any]]:
    """Return the Synthea sample ``copies`` times; each copy's UUIDs get a suffix (new patients)."""
    lines = [
        line
        for path in sorted(SYNTHEA.glob("*.ndjson"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]
    uuid = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
    out: list[dict[str, Any]] = []
    for c in range(copies):
        suffix = f"-{c:04d}".encode()
        out.extend(orjson.loads(uuid.sub(rb"\1" + suffix, line)) for line in lines)
    return out


def _time(label: str, n: int, unit: str, run: Callable[[], object]) -> None:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<46} {n:>9,} {unit} {best:7.3f} s {n / best:>12,.0f} {unit}/s (best of 3)")


def main() -> None:
    """Build the inputs, time each path, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--synthea-copies", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    policies = {
        "year-only": DeidPolicy(),
        "shift ±50 d, pseudonymised ids": DeidPolicy(
            date_shift_days=50, identifiers="pseudonymise"
        ),
    }
    inputs = {"Observations": make_observations(args.observations)}
    if SYNTHEA.is_dir():
        inputs["Synthea mix"] = synthea_resources(args.synthea_copies)
    else:
        print(f"Synthea sample not found at {SYNTHEA}; skipped")
    # Streaming ingest holds one resource at a time; freezing the inputs keeps the garbage
    # collector from rescanning a million input objects, which a streaming run never has.
    gc.collect()
    gc.freeze()
    for label, resources in inputs.items():
        lines = [orjson.dumps(r) for r in resources]
        for name, policy in policies.items():

            def run(
                policy: DeidPolicy = policy, resources: list[dict[str, Any]] = resources
            ) -> None:
                deid = FhirDeidentifier(policy, key=KEY, as_of=AS_OF)
                for resource in resources:
                    deid.deidentify(resource)

            _time(f"FHIR {label} (dicts), {name}", len(resources), "resources", run)

            def stream(policy: DeidPolicy = policy, lines: list[bytes] = lines) -> None:
                deid = FhirDeidentifier(policy, key=KEY, as_of=AS_OF)
                for line in lines:
                    orjson.dumps(deid.deidentify(orjson.loads(line)))

            _time(f"FHIR {label} (NDJSON in/out), {name}", len(lines), "resources", stream)

        def baseline(lines: list[bytes] = lines) -> None:
            for line in lines:
                orjson.dumps(orjson.loads(line))

        _time(f"FHIR {label} (NDJSON parse+dump only)", len(lines), "resources", baseline)

    rng = np.random.default_rng(SEED)
    n = args.rows
    patients = rng.integers(0, max(n // 10, 1), n)
    frame = pd.DataFrame(
        {
            "patient_id": pd.Series([f"p{i:08d}" for i in patients]),
            "zip": pd.Series([f"{z:05d}" for z in rng.integers(0, 100_000, n)]),
            "birth_date": pd.Timestamp("1930-01-01")
            + pd.to_timedelta(rng.integers(0, 30_000, n), unit="D"),
            "admit_time": pd.Timestamp("2020-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 5 * 365 * 24 * 3600, n), unit="s"),
            "age": rng.integers(18, 105, n),
            "heart_rate_max_6h": rng.normal(90, 15, n),
        }
    )
    mapping = {
        "patient_id": "pseudonym",
        "zip": "zip",
        "birth_date": "birth_date",
        "admit_time": "date",
        "age": "age",
        "heart_rate_max_6h": "keep",
    }
    for name, policy in policies.items():

        def run_table(policy: DeidPolicy = policy) -> None:
            deidentify_table(
                frame, mapping, policy=policy, key=KEY, as_of=AS_OF, patient_column="patient_id"
            )

        _time(f"table, {name}", n, "rows", run_table)


if __name__ == "__main__":
    main()
