"""The ``data_preparation`` stage: EHR data in; a de-identified, checked, encrypted snapshot out.

Steps, in order (each reported through ``progress``):

1. **ingest** the source named by the pipeline file (an NDJSON folder, a FHIR Bulk Data export or
   FHIR search) with line-level quarantine;
2. **features and label** with the Ibis expressions of :mod:`bedside.engines.features` (DuckDB);
3. **split** by patient in time order, on the real prediction times;
4. **data quality** on the feature table (aggregates only; blocking when the pipeline says so);
5. **de-identify** (Safe Harbor): keyed pseudonyms for encounter and patient keys, prediction
   times to the year, ages 90 and over capped as one category;
6. **PHI scan** of the de-identified table (blocking when the pipeline says so);
7. **snapshot**: encrypted Parquet, content digest, manifest; a ledger event records it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from bedside.domain.canonical import canonical_json
from bedside.domain.spec import PipelineSpec
from bedside.domain.spec_data import FhirBulkSource, FhirSearchSource
from bedside.errors import InvalidInput
from bedside.security import KeyRing

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PreparedDataset:
    """Where a prepared snapshot and its reports are, and what it holds."""

    digest: str
    folder: Path
    rows: int
    patients: int
    counts: dict[str, Any]
    quality_html: Path
    quality_json: Path
    phi_report: Path
    ingest_report: Path


@dataclass(frozen=True, slots=True)
class BlockedDataset:
    """Why a dataset was stopped (a blocking check), with the report to read."""

    check: str
    summary: str
    report: Path


def _source_folder(spec: PipelineSpec, base_dir: Path) -> Path:
    source = spec.data_preparation.source
    if source is None:
        raise InvalidInput(
            "The pipeline file has no data_preparation.source; add one (see docs/pipeline.md)."
        )
    if source.kind in ("ndjson_folder", "table"):
        path = Path(source.path)
        return path if path.is_absolute() else (base_dir / path)
    raise AssertionError(source.kind)  # pragma: no cover - remote sources are fetched first


def stratification_columns(spec: PipelineSpec) -> list[str]:
    """Return the demographic columns the fairness gates need that are not model features."""
    names = {f.name for f in spec.data_preparation.features}
    wanted: list[str] = []
    for gate in spec.validation.fairness:
        wanted.extend(a for a in gate.stratify_by if a not in names and a not in wanted)
    return wanted


def _with_stratification_columns(spec: PipelineSpec) -> Any:
    from bedside.domain.spec_data import DemographicFeature

    stage = spec.data_preparation
    extra = []
    for attribute in stratification_columns(spec):
        try:
            extra.append(DemographicFeature(kind="demographic", name=attribute))
        except ValueError:
            raise InvalidInput(
                f"validation.fairness.stratify_by names {attribute!r}, which is neither a feature "
                "nor a demographic attribute (age, age_group, sex, race, ethnicity)."
            ) from None
    return stage.model_copy(update={"features": (*stage.features, *extra)}) if extra else stage


def fetch_remote_source(
    spec: PipelineSpec, work_dir: Path, *, token: str | None, progress: Progress
) -> Path:
    """Download a FHIR Bulk Data export or search results into ``work_dir``; return the folder."""
    from bedside.ingest.fhir import FhirClient

    source = spec.data_preparation.source
    assert isinstance(source, FhirBulkSource | FhirSearchSource)
    dest = work_dir / "export"
    dest.mkdir(parents=True, exist_ok=True)
    with FhirClient(source.url, token=token) as client:
        if isinstance(source, FhirBulkSource):
            progress("downloading the FHIR bulk export")
            client.export(
                dest,
                level=source.level,
                group_id=source.group_id,
                types=list(source.resource_types),
            )
        else:
            progress("reading FHIR search results")
            for resource_type in source.resource_types:
                with (dest / f"{resource_type}.ndjson").open("w", encoding="utf-8") as fh:
                    for resource in client.search(resource_type, {"_count": str(source.page_size)}):
                        fh.write(json.dumps(resource, separators=(",", ":")) + "\n")
    return dest


def prepare(
    spec: PipelineSpec,
    *,
    pipeline_dir: Path,
    work_dir: Path,
    artifacts_root: Path,
    key_ring: KeyRing,
    as_of: date,
    created_at: Any,
    token: str | None = None,
    progress: Progress = lambda _step: None,
) -> PreparedDataset | BlockedDataset:
    """Run the data preparation stage; return the snapshot, or why it was blocked.

    Args:
        spec: the pipeline file.
        pipeline_dir: the pipeline file's folder (relative source paths start there).
        work_dir: a folder for intermediate files (ingested raw resources, reports).
        artifacts_root: the project's artifacts folder (snapshots go under ``datasets/``).
        key_ring: the project's keys (data key for encryption, pseudonym key for de-id).
        as_of: the release date (ages are computed at it).
        created_at: the server time recorded in the manifest.
        token: the bearer token for a remote FHIR source.

    Raises:
        InvalidInput: the pipeline file lacks what a run needs, or the data cannot be used.
    """
    from bedside.deid.tables import deidentify_table
    from bedside.domain.deid import DeidPolicy
    from bedside.domain.phi_scan import PhiRule, scan_table
    from bedside.domain.quality import QualityConfig, assess_quality
    from bedside.domain.split import split_patients
    from bedside.engines.features import extract_features
    from bedside.ingest.ndjson import ingest_ndjson
    from bedside.reports.quality import write_quality_report
    from bedside.stores.snapshots import write_snapshot

    missing = spec.missing_for_run()
    if missing:
        raise InvalidInput(
            "The pipeline file cannot prepare data yet; add: "
            + ", ".join(missing)
            + " (see docs/pipeline.md)."
        )
    stage = spec.data_preparation
    assert stage.source is not None and stage.label is not None
    work_dir.mkdir(parents=True, exist_ok=True)
    reports = work_dir / "reports"
    reports.mkdir(exist_ok=True)

    # 1. ingest
    if stage.source.kind in ("fhir_bulk", "fhir_search"):
        folder = fetch_remote_source(spec, work_dir, token=token, progress=progress)
    elif stage.source.kind == "table":
        raise InvalidInput(
            "data_preparation.source.kind 'table' is not supported by "
            "'bedside prepare' yet; use ndjson_folder or a FHIR source."
        )
    else:
        folder = _source_folder(spec, pipeline_dir)
        if not folder.exists():
            raise InvalidInput(
                f"data_preparation.source.path: {folder} does not exist. Point it at "
                "a FHIR bulk-export folder (bedside demo-data makes one)."
            )
    progress("ingesting FHIR NDJSON (bad lines go to quarantine)")
    ingested = work_dir / "ingest"
    report = ingest_ndjson(folder, ingested, resource_types=stage.source.resource_types)
    if report.accepted == 0:
        raise InvalidInput(
            f"No usable FHIR resources in {folder}: read {report.read}, "
            f"quarantined {report.quarantined}. See {ingested / 'ingest-report.json'}."
        )

    # 2. features and label, plus the demographic attributes the fairness gates stratify by
    # (kept as columns for subgroup evaluation; the model trains on the declared features only).
    progress("computing features and labels (DuckDB)")
    extraction_stage = _with_stratification_columns(spec)
    features = extract_features(ingested / "raw", extraction_stage)
    if features.empty:
        raise InvalidInput(
            "The cohort is empty: no encounter matches data_preparation.cohort. "
            "Check encounter_classes, min_age and the data's date range."
        )

    # 3. split on the real prediction times (before dates are generalised)
    progress("splitting by patient in time order")
    frame, split_summary = split_patients(features, stage.split)

    # 4. data quality (aggregates only)
    progress("checking data quality")
    label = stage.label.name
    feature_names = [f.name for f in stage.features]
    quality_check = stage.data_quality
    quality_config = (
        QualityConfig.from_check(
            quality_check,
            label_col=label,
            key_columns=("encounter_id",),
            completeness_exempt=tuple(quality_check.completeness_exempt),
            features=stage.features,
        )
        if quality_check is not None
        else QualityConfig(
            label_col=label, blocker=False, key_columns=("encounter_id",), features=stage.features
        )
    )
    unknown = set(quality_config.completeness_exempt) - set(feature_names)
    if unknown:
        raise InvalidInput(
            "data_quality.completeness_exempt names no feature: " + ", ".join(sorted(unknown))
        )
    quality = assess_quality(frame[[c for c in frame.columns if c != "patient_id"]], quality_config)
    quality_html, quality_json = write_quality_report(
        quality,
        reports,
        title=f"Data quality — {spec.name}",
        dataset="(before snapshot)",
        generated_at=created_at,
    )
    if quality.blocking:
        failures = "; ".join(f"{f.column or f.check}: {f.message}" for f in quality.failures)
        return BlockedDataset("data_quality", failures, quality_html)

    # 5. de-identify
    progress("de-identifying (Safe Harbor)")
    policy = DeidPolicy.from_spec(stage.deidentification, age_over_89="cap")
    mapping: dict[str, str] = {
        "encounter_id": "pseudonym",
        "patient_id": "pseudonym",
        "prediction_time": "keep",
        "split": "keep",
        label: "keep",
    }
    for feature in extraction_stage.features:
        mapping[feature.name] = "age" if feature.name == "age" else "keep"
    deid, deid_report = deidentify_table(
        frame,
        mapping,
        policy=policy,
        key=key_ring.pseudonym_key(),
        as_of=as_of,
        patient_column="patient_id",
    )
    # Dates to the year only (Safe Harbor): year starts keep the split's order checkable.
    times = pd.to_datetime(deid["prediction_time"], utc=True)
    deid["prediction_time"] = pd.to_datetime(times.dt.year.astype(str) + "-01-01", utc=True)
    # Training needs no encounter key: a keyed pseudonym of an identifier is derived from PHI
    # (164.514(c)), so the snapshot keeps only what it needs — the patient pseudonym, for the
    # patient-level split checks and bootstrap.
    deid = deid.drop(columns=["encounter_id"])

    # 6. PHI scan
    progress("scanning for PHI")
    # Waived, and so marked in the report: ages were capped at 90 by the policy above (90 *is*
    # the single "90 or older" category); patient_id is the keyed pseudonym the patient-level
    # split and bootstrap need. Being derived from an identifier, it and its key stay inside the
    # covered entity (REGULATORY §1.6): the snapshot is encrypted and never leaves the project.
    waivers: dict[str, list[PhiRule]] = {"patient_id": [PhiRule.NEAR_UNIQUE]}
    if "age" in deid.columns:
        waivers["age"] = [PhiRule.AGE_OVER_89]
    phi = scan_table(deid, waivers=waivers)
    phi_path = reports / "phi-scan.json"
    phi_path.write_text(json.dumps(phi.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    phi_check = stage.phi_scan
    if phi.blocking and (phi_check is None or phi_check.blocker):
        (reports / "phi-scan.md").write_text(phi.to_markdown(), encoding="utf-8")
        return BlockedDataset("phi_scan", phi.summary(), phi_path)

    # 7. snapshot
    progress("writing the encrypted snapshot")
    manifest = write_snapshot(
        deid,
        root=artifacts_root,
        key_ring=key_ring,
        created_at=created_at,
        source=stage.source.model_dump(mode="json"),
        extraction={
            "pipeline": spec.name,
            "pipeline_version": spec.version,
            "features": feature_names,
            "label": label,
            "stratification_columns": stratification_columns(spec),
            "cohort": stage.cohort.model_dump(mode="json"),
            "ingest": {
                "read": report.read,
                "accepted": report.accepted,
                "quarantined": report.quarantined,
            },
        },
        split=split_summary,
        label_col=label,
        deidentification=policy,
        quality=quality,
        extra={
            "phi_scan": phi.to_dict(),
            "deid_report": json.loads(canonical_json(deid_report.to_dict())),
        },
    )
    folder_out = artifacts_root / "datasets" / manifest.digest
    logger.info("prepared dataset %s: %d rows", manifest.digest[:12], manifest.rows)
    return PreparedDataset(
        digest=manifest.digest,
        folder=folder_out,
        rows=manifest.rows,
        patients=int(manifest.counts["all"].get("patients", 0)),
        counts=dict(manifest.counts),
        quality_html=quality_html,
        quality_json=quality_json,
        phi_report=phi_path,
        ingest_report=ingested / "ingest-report.json",
    )
