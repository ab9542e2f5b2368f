"""Benchmark feature extraction: FHIR NDJSON → finished feature table, in Observations per minute.

Generates a synthetic hospital once (``bedside.ingest.synthetic``, seeded) and caches it under
``bench/results/`` (git-ignored), together with its ingested copy (``ingest_ndjson`` → ``raw/``).
Then, each in a fresh process (so memory and caches of one run do not help the next), it times
``extract_features`` with the sepsis example pipeline's ``data_preparation`` stage (cohort,
12 windowed Observation features, demographics, the sepsis label) on DuckDB:

1. directly from the generator's NDJSON export (no ingest), and
2. from the ingested ``raw/`` folder.

For comparison it parses a sample of the same Observation lines one by one with
``fhir.resources`` (R4B ``Observation.model_validate_json``) and extrapolates that rate to the
whole file — the cost of merely *parsing* resource by resource, before any feature is computed.

Run: ``.venv/bin/python bench/bench_features.py [--admissions 50000] [--runs 3] [--sample 20000]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
PIPELINE = REPO / "examples" / "sepsis" / "pipeline.full.yaml"
TARGET_PER_MINUTE = 10_000_000


def _cached_hospital(admissions: int, seed: int) -> tuple[Path, Path]:
    """Return (export folder, ingested raw folder), generating and ingesting on first use."""
    from bedside.ingest.ndjson import ingest_ndjson
    from bedside.ingest.synthetic import generate_hospital

    base = RESULTS / f"features-hospital-{admissions}-seed{seed}"
    export, ingested = base / "export", base / "ingested"
    if not (export / "manifest.json").exists():
        started = time.perf_counter()
        summary = generate_hospital(
            export, admissions=admissions, start=date(2024, 1, 1), end=date(2025, 1, 1), seed=seed
        )
        print(
            f"generated {admissions:,} admissions, {summary.counts['Observation']:,} Observations "
            f"in {time.perf_counter() - started:.1f} s (cached in {base.relative_to(REPO)})"
        )
    if not (ingested / "ingest-report.json").exists():
        report = ingest_ndjson(export, ingested)
        print(f"ingested {report.accepted:,} resources in {report.duration_s:.1f} s")
    return export, ingested / "raw"


def _observations(folder: Path) -> int:
    with (folder / "Observation.ndjson").open("rb") as handle:
        return sum(1 for _ in handle)


def _extract_once(folder: str) -> None:
    """Child process: run one extraction and print its figures as JSON."""
    from bedside.engines.features import extract_features
    from bedside.pipeline_file import load_pipeline_file

    stage = load_pipeline_file(PIPELINE).spec.data_preparation
    started = time.perf_counter()
    table = extract_features(folder, stage)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": len(table),
                "columns": len(table.columns),
                "positives": int(table["sepsis"].sum()),
                "peak_rss": usage.ru_maxrss * 1024,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }
        )
    )


def _time_extraction(folder: Path, runs: int) -> list[dict[str, float]]:
    results = []
    for _ in range(runs):
        load = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, __file__, "--extract-once", str(folder)],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        results.append({**json.loads(out.stdout.strip().splitlines()[-1]), "load": load})
    return results


def _fhir_resources_rate(folder: Path, sample: int) -> tuple[int, float]:
    """Parse ``sample`` Observation lines with fhir.resources R4B; return (lines, seconds)."""
    from fhir.resources.R4B.observation import Observation

    with (folder / "Observation.ndjson").open("rb") as handle:
        lines = list(islice(handle, sample))
    started = time.perf_counter()
    for line in lines:
        Observation.model_validate_json(line)
    return len(lines), time.perf_counter() - started


def main() -> None:
    """Generate (once), extract, compare, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="extractions per source")
    parser.add_argument("--sample", type=int, default=20_000, help="lines for fhir.resources")
    parser.add_argument("--extract-once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.extract_once:
        _extract_once(args.extract_once)
        return

    export, raw = _cached_hospital(args.admissions, args.seed)
    n_obs = _observations(export)
    size_mb = (export / "Observation.ndjson").stat().st_size / 1e6
    print(f"Observations: {n_obs:,} ({size_mb:,.0f} MB of NDJSON); pipeline {PIPELINE.name}")

    rows = []
    best: dict[str, float] = {}
    for label, folder in (("generator export (no ingest)", export), ("ingested raw/", raw)):
        results = _time_extraction(folder, args.runs)
        seconds = [r["seconds"] for r in results]
        best[label] = min(seconds)
        per_minute = n_obs / min(seconds) * 60
        rows.append(
            f"| {label} | {', '.join(f'{s:.1f}' for s in seconds)} | "
            f"{per_minute / 1e6:,.1f} M | {results[0]['rows']:,} × {results[0]['columns']} | "
            f"{max(r['peak_rss'] for r in results) / 2**20:,.0f} MB |"
        )
        cpu = ", ".join(f"{r['cpu_seconds']:.1f}" for r in results)
        load = ", ".join(f"{r['load']:.1f}" for r in results)
        print(
            f"{label:<30} runs {', '.join(f'{s:.2f} s' for s in seconds)}  best "
            f"{per_minute:,.0f} Observations/min  (median {statistics.median(seconds):.2f} s; "
            f"{results[0]['rows']:,} encounters, {results[0]['positives']:,} positive; "
            f"CPU {cpu} s; 1-min load average before each run {load})"
        )

    parsed, parse_seconds = _fhir_resources_rate(export, args.sample)
    rate = parsed / parse_seconds
    extrapolated = n_obs / rate
    ratio = extrapolated / best["generator export (no ingest)"]
    print(
        f"fhir.resources R4B parse, resource by resource: {parsed:,} lines in "
        f"{parse_seconds:.2f} s = {rate:,.0f} lines/s; "
        f"extrapolated to {n_obs:,} lines: {extrapolated:,.0f} s "
        f"(sample timed, rest extrapolated) = {ratio:,.0f}× the whole feature extraction"
    )
    fastest = min(best.values())
    verdict = "meets" if n_obs / fastest * 60 >= TARGET_PER_MINUTE else "MISSES"
    print(f"target {TARGET_PER_MINUTE:,} Observations/min: {verdict}")
    print("\n| source | seconds per run | Observations/min (best) | table | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        f"| fhir.resources R4B `Observation.model_validate_json`, per line "
        f"({parsed:,}-line sample, extrapolated) | {extrapolated:,.0f} | "
        f"{rate * 60 / 1e6:,.2f} M | parse only | – |"
    )


if __name__ == "__main__":
    main()
