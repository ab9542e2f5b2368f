"""Benchmark NDJSON ingest: lines/s and MB/s, fast path vs strict (fhir.resources R4B) mode.

Generates a seeded synthetic file of FHIR R4 Observations (vital signs and labs, blood-pressure
panels with components, US Core-like shape), then times ``ingest_ndjson`` on it. Also times a
plain ``orjson.loads`` loop (the floor for any per-line check) and a DuckDB scan of the accepted
output, the way the feature stage reads ``dest/raw/Observation.ndjson``.

Run: ``.venv/bin/python bench/bench_ndjson.py [--observations 200000] [--strict-observations N]``
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bedside.ingest.ndjson import ingest_ndjson

SEED = 20240601
VITALS = [  # (LOINC, UCUM unit, mean, sd)
    ("8867-4", "/min", 85.0, 15.0),
    ("9279-1", "/min", 18.0, 4.0),
    ("8310-5", "Cel", 37.0, 0.7),
    ("59408-5", "%", 96.0, 2.5),
]
LABS = [
    ("2524-7", "mmol/L", 1.6, 0.8),
    ("6690-2", "10*3/uL", 9.0, 3.5),
    ("777-3", "10*3/uL", 240.0, 70.0),
    ("2160-0", "mg/dL", 1.0, 0.4),
    ("2823-3", "mmol/L", 4.2, 0.5),
    ("1975-2", "mg/dL", 0.8, 0.4),
]
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _quantity(rng: random.Random, unit: str, mean: float, sd: float) -> dict[str, Any]:
    return {
        "value": round(max(0.0, rng.gauss(mean, sd)), 2),
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    }


def make_observation(rng: random.Random, index: int, start: datetime) -> dict[str, Any]:
    """Return one synthetic Observation (deterministic given ``rng``'s state)."""
    when = (start + timedelta(minutes=rng.randrange(0, 60 * 24 * 365))).isoformat()
    patient = f"{rng.randrange(0, 20_000):08d}-synthetic-patient"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{index:09d}",
        "meta": {
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"]
        },
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "encounter": {"reference": f"Encounter/{patient}-enc-{rng.randrange(0, 5)}"},
        "effectiveDateTime": when,
        "issued": when,
    }
    kind = rng.random()
    if kind < 0.1:
        resource["category"] = [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}]
        resource["code"] = {
            "coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "BP panel"}]
        }
        resource["component"] = [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": _quantity(rng, "mm[Hg]", mean, 15.0),
            }
            for code, mean in (("8480-6", 120.0), ("8462-4", 75.0))
        ]
        return resource
    is_lab = kind < 0.4
    code, unit, mean, sd = rng.choice(LABS if is_lab else VITALS)
    category = "laboratory" if is_lab else "vital-signs"
    resource["category"] = [{"coding": [{"system": CATEGORY, "code": category}]}]
    resource["code"] = {"coding": [{"system": "http://loinc.org", "code": code}]}
    resource["valueQuantity"] = _quantity(rng, unit, mean, sd)
    return resource


def write_observations(path: Path, count: int, *, seed: int = SEED) -> int:
    """Write ``count`` Observations to ``path`` (gzip if it ends in .gz); return bytes written."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:
        batch: list[bytes] = []
        for index in range(count):
            batch.append(orjson.dumps(make_observation(rng, index, start)))
            if len(batch) == 10_000:
                fh.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch) + b"\n")
    return path.stat().st_size


def _figures(label: str, lines: int, size: int, seconds: float) -> str:
    return (
        f"{label:<34} {lines:>9,} lines {seconds:8.2f} s {lines / seconds:>12,.0f} lines/s "
        f"{size / seconds / 1e6:8.1f} MB/s"
    )


def main() -> None:
    """Generate the data, run each measurement, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument(
        "--strict-observations",
        type=int,
        default=None,
        help="lines for the strict run (default: the same file as the fast path)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ndjson-"))
    try:
        plain = work / "plain" / "Observation.000.ndjson"
        plain.parent.mkdir()
        size = write_observations(plain, args.observations)
        print(f"generated {args.observations:,} Observations, {size / 1e6:.1f} MB (seed {SEED})")

        start = time.perf_counter()
        with plain.open("rb") as fh:
            for raw in fh:
                orjson.loads(raw)
        print(
            _figures(
                "orjson.loads only (floor)", args.observations, size, time.perf_counter() - start
            )
        )

        report = ingest_ndjson(plain, work / "fast")
        assert report.accepted == args.observations and report.quarantined == 0
        print(_figures("ingest, fast path", report.read, size, report.duration_s))

        packed = work / "gz" / "Observation.000.ndjson.gz"
        packed.parent.mkdir()
        with plain.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        report = ingest_ndjson(packed, work / "gz-out")
        assert report.accepted == args.observations
        print(
            _figures("ingest, fast path, gzip input", report.read, size, report.duration_s)
            + f"  ({packed.stat().st_size / 1e6:.1f} MB on disk)"
        )

        strict_source, strict_size, strict_n = plain, size, args.observations
        if args.strict_observations is not None and args.strict_observations < args.observations:
            strict_n = args.strict_observations
            strict_source = work / "strict" / "Observation.000.ndjson"
            strict_source.parent.mkdir()
            strict_size = write_observations(strict_source, strict_n)
        report = ingest_ndjson(strict_source, work / "strict-out", strict=True)
        assert report.accepted == strict_n and report.quarantined == 0
        print(
            _figures(
                "ingest, strict (fhir.resources R4B)", report.read, strict_size, report.duration_s
            )
        )

        import duckdb

        raw_out = work / "fast" / "raw" / "Observation.ndjson"
        start = time.perf_counter()
        rows = duckdb.execute(
            "SELECT count(*), avg(CAST(valueQuantity.value AS DOUBLE)) FROM read_ndjson_auto(?)",
            [str(raw_out)],
        ).fetchall()
        seconds = time.perf_counter() - start
        assert rows[0][0] == args.observations
        print(_figures("duckdb scan of dest/raw (context)", args.observations, size, seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
