"""Generate a synthetic hospital as a FHIR R4 Bulk Data export folder."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bedside.errors import InvalidInput
from bedside.ingest.synthetic.cohort import DAY, draw_cohort
from bedside.ingest.synthetic.model import DriftScenario, GenerationSummary
from bedside.ingest.synthetic.noise import KeyedRandom
from bedside.ingest.synthetic.physiology import observation_rows
from bedside.ingest.synthetic.render import (
    entity_ids,
    iso_times,
    render_conditions,
    render_encounters,
    render_observations,
    render_patients,
)

logger = logging.getLogger(__name__)

#: Admissions per chunk. Part of the output format: the same seed gives the same bytes because
#: each chunk draws from its own generator seeded with (seed, chunk index).
CHUNK_ADMISSIONS = 500
RESOURCE_TYPES = ("Patient", "Encounter", "Observation", "Condition")
MANIFEST = "manifest.json"
EXPORT_REQUEST = "urn:bedside:demo-data/$export?_type=Patient,Encounter,Observation,Condition"


def _epoch_seconds(d: date) -> int:
    return (d.toordinal() - date(1970, 1, 1).toordinal()) * DAY


def _check_arguments(
    out_dir: Path, admissions: int, start: date, end: date, seed: int, drift: object
) -> None:
    if isinstance(admissions, bool) or not isinstance(admissions, int) or admissions < 1:
        raise InvalidInput(
            f"'admissions' must be a positive integer, got {admissions!r}. Example: 5000."
        )
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, datetime) or not isinstance(value, date):
            raise InvalidInput(f"'{name}' must be a date (YYYY-MM-DD), got {type(value).__name__}.")
    if end <= start:
        raise InvalidInput(
            f"'end' ({end.isoformat()}) must be after 'start' ({start.isoformat()}); "
            "admissions start in [start, end)."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"'seed' must be a non-negative integer, got {seed!r}.")
    if drift is not None:
        if not isinstance(drift, DriftScenario):
            raise InvalidInput(
                f"'drift' must be a DriftScenario or None, got {type(drift).__name__}."
            )
        if not (start <= drift.starts < end):
            raise InvalidInput(
                f"Drift starts on {drift.starts.isoformat()}, outside the generated range "
                f"[{start.isoformat()}, {end.isoformat()}); pick a date inside it."
            )
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(
            f"Output path {str(out_dir)!r} exists and is not a folder; choose a folder path."
        )


def generate_hospital(
    out_dir: Path,
    *,
    admissions: int = 5000,
    start: date,
    end: date,
    seed: int = 0,
    drift: DriftScenario | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Write a deterministic synthetic hospital as a FHIR R4 Bulk Data export folder.

    The folder gets ``Patient.ndjson``, ``Encounter.ndjson``, ``Observation.ndjson``,
    ``Condition.ndjson`` and a Bulk Data ``manifest.json``. The same arguments give
    byte-identical files. Files are written as ``*.part`` and renamed at the end; the manifest is
    written last, so a folder with a manifest is a complete export. Existing files of the same
    names are replaced; other files in the folder are left alone.

    Args:
        out_dir: the export folder (created if missing).
        admissions: number of Encounters (inpatient and emergency) to generate.
        start: first day admissions may start (00:00 UTC, inclusive).
        end: day admissions stop starting (00:00 UTC, exclusive); stays may run past it.
        seed: random seed.
        drift: optional change of the hospital from a date inside ``[start, end)``.
        progress: called as ``progress(admissions_done, admissions_total)`` after each chunk.

    Returns:
        What was written, with resource counts.

    Raises:
        InvalidInput: an argument is out of range, or ``out_dir`` is a file.
    """
    out_dir = Path(out_dir)
    _check_arguments(out_dir, admissions, start, end, seed, drift)
    began = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    manifest_path.unlink(missing_ok=True)
    t0, t1 = _epoch_seconds(start), _epoch_seconds(end)
    rand = KeyedRandom(seed)
    counts = dict.fromkeys(RESOURCE_TYPES, 0)
    parts = {rt: out_dir / f"{rt}.ndjson.part" for rt in RESOURCE_TYPES}
    files = {rt: parts[rt].open("wb") for rt in RESOURCE_TYPES}
    n_chunks = math.ceil(admissions / CHUNK_ADMISSIONS)
    patients = sepsis = 0
    latest = t1
    try:
        for chunk in range(n_chunks):
            first = chunk * CHUNK_ADMISSIONS
            n = min(CHUNK_ADMISSIONS, admissions - first)
            rng = np.random.default_rng([seed, chunk])
            cohort = draw_cohort(
                rng,
                n_admissions=n,
                first_admission=first,
                first_patient=patients,
                t0=t0,
                t1=t1,
                drift=drift,
            )
            pids, eids = entity_ids(cohort, rand)
            rows = observation_rows(cohort, rand, drift)
            files["Patient"].write(render_patients(cohort, pids, seed))
            files["Encounter"].write(render_encounters(cohort, pids, eids))
            files["Observation"].write(render_observations(rows, cohort, rand, pids, eids))
            condition_bytes, n_conditions = render_conditions(cohort, rand, pids, eids)
            files["Condition"].write(condition_bytes)
            counts["Patient"] += cohort.n_patients
            counts["Encounter"] += cohort.n_admissions
            counts["Observation"] += len(rows)
            counts["Condition"] += n_conditions
            patients += cohort.n_patients
            sepsis += int(cohort.a_sepsis.sum())
            latest = max(latest, int(cohort.a_end.max()))
            logger.debug("chunk %d/%d: %d observations", chunk + 1, n_chunks, len(rows))
            if progress is not None:
                progress(first + n, admissions)
    except BaseException:
        for fh in files.values():
            fh.close()
        for part in parts.values():
            part.unlink(missing_ok=True)
        raise
    for fh in files.values():
        fh.close()
    for rt in RESOURCE_TYPES:
        parts[rt].replace(out_dir / f"{rt}.ndjson")

    # The export "happened" at the first midnight after the last discharge: deterministic.
    transaction = ((latest // DAY) + 1) * DAY
    manifest: dict[str, Any] = {
        "transactionTime": iso_times(np.array([transaction]))[0],
        "request": EXPORT_REQUEST,
        "requiresAccessToken": False,
        "output": [
            {"type": rt, "url": f"{rt}.ndjson", "count": counts[rt]} for rt in RESOURCE_TYPES
        ],
        "error": [],
        "extension": {
            "generator": "bedside.ingest.synthetic",
            "seed": seed,
            "admissions": admissions,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "drift": None
            if drift is None
            else {
                "kind": drift.kind.value,
                "starts": drift.starts.isoformat(),
                "magnitude": drift.magnitude,
            },
        },
    }
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    size = manifest_path.stat().st_size + sum(
        (out_dir / f"{rt}.ndjson").stat().st_size for rt in RESOURCE_TYPES
    )
    seconds = time.perf_counter() - began
    logger.info(
        "synthetic hospital: %d admissions, %d patients, %d sepsis, %d resources in %.1f s",
        admissions, patients, sepsis, sum(counts.values()), seconds,
    )  # fmt: skip
    return GenerationSummary(
        out_dir=out_dir,
        manifest=manifest_path,
        seed=seed,
        start=start,
        end=end,
        drift=drift,
        admissions=admissions,
        patients=patients,
        sepsis_admissions=sepsis,
        counts=counts,
        bytes_written=size,
        seconds=seconds,
    )
