"""DuckDB and PySpark produce the same feature table from the same FHIR NDJSON.

Spark runs in local mode (one session for the whole test run, see ``conftest.spark_con``). Keys,
counts, categories, timestamps and labels must be equal exactly; floating-point features to 12
significant digits (the engines may sum in a different order).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedside.engines.features import extract_features
from bedside.ingest.ndjson import ingest_ndjson
from bedside.ingest.synthetic import DriftKind, DriftScenario, generate_hospital
from tests.engines.fhir_builders import (
    ICD10CM,
    blood_pressure,
    condition,
    encounter,
    obs_feature,
    observation,
    patient,
    stage,
    write_raw,
)

pytestmark = [
    pytest.mark.slow,
    # py4j leaves result sockets for the garbage collector; see the spark_con fixture
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

_ALL_AGGREGATIONS = ("last", "min", "max", "mean", "count", "slope")
_DEMOGRAPHICS = [
    {"kind": "demographic", "name": n} for n in ("age", "age_group", "sex", "race", "ethnicity")
]


def _features() -> list[dict[str, Any]]:
    features = [
        obs_feature(f"heart_rate_{agg}_6h", ["8867-4"], agg, "6h", unit="/min")
        for agg in _ALL_AGGREGATIONS
    ]
    features += [
        obs_feature(f"temperature_{agg}_12h", ["8310-5"], agg, "12h", unit="Cel")
        for agg in _ALL_AGGREGATIONS
    ]
    features += [
        obs_feature("lactate_max_24h", ["2524-7", "32693-4"], "max", "24h", unit="mmol/L"),
        obs_feature("lactate_count_24h", ["2524-7", "32693-4"], "count", "24h"),
        obs_feature("creatinine_last_24h", ["2160-0"], "last", "24h", unit="mg/dL"),
        obs_feature("systolic_bp_min_6h", ["8480-6"], "min", "6h", unit="mm[Hg]"),
        obs_feature("diastolic_bp_mean_6h", ["8462-4"], "mean", "6h", unit="mm[Hg]"),
        obs_feature("spo2_min_6h", ["59408-5", "2708-6"], "min", "6h", unit="%"),
        obs_feature("wbc_slope_24h", ["6690-2"], "slope", "24h", unit="10*3/uL"),
    ]
    return features + _DEMOGRAPHICS


def _assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(duck.columns) == list(spark.columns)
    assert duck.dtypes.equals(spark.dtypes)
    pd.testing.assert_frame_equal(duck, spark, check_exact=False, rtol=1e-12, atol=1e-12)


def test_duckdb_and_spark_agree_on_a_generated_hospital(tmp_path: Path, spark_con: Any) -> None:
    export = tmp_path / "export"
    generate_hospital(
        export,
        admissions=100,
        start=date(2024, 1, 1),
        end=date(2024, 3, 1),
        seed=11,
        drift=DriftScenario(kind=DriftKind.LAB_ASSAY_CHANGE, starts=date(2024, 2, 1)),
    )
    ingest_ndjson(export, tmp_path / "ingested")
    raw = tmp_path / "ingested" / "raw"
    spec = stage(
        _features(),
        label={"name": "sepsis", "definition": "sepsis3", "horizon": "48h"},
        prediction_time="admission + 12h",
        age_groups=[18, 45, 65, 80, 90],
    )
    duck = extract_features(raw, spec)
    spark = extract_features(raw, spec, con=spark_con)
    assert len(duck) > 50
    assert duck["sepsis"].sum() > 0
    assert duck["heart_rate_count_6h"].sum() > 0 and duck["heart_rate_slope_6h"].notna().any()
    _assert_same(duck, spark)


def test_duckdb_and_spark_agree_on_edge_cases(tmp_path: Path, spark_con: Any) -> None:
    hr = "8867-4"
    resources = [
        patient("p1", birth="1930", race=["2106-3", "2054-5"], ethnicity=["UNK"]),
        encounter("e1", "p1", 0),
        observation("p1", hr, "2024-03-01T13:30:00+02:00", 81.0, "/min"),
        observation("p1", hr, "2024-03-01T10:30:00-02:00", 250.0, "/min"),
        observation("p1", hr, 3.0, 90.0, "/min"),
        observation("p1", hr, 3.0, 95.0, "/min"),  # a tie for last
        observation("p1", hr, 2.0, 60.0, "kg"),
        observation("p1", ["2708-6", "59408-5"], 2.0, 91.0, "%"),
        observation("p1", "8310-5", 2.5, 100.9, None, unit_text="°F"),
        observation("p1", "6690-2", 1.0, 8.0, "10*3/uL", issued=2.0),
        observation("p1", "6690-2", 2.0, 14.0, "10*3/uL", issued=5.0),
        observation("p1", hr, 2.5, 83.0, "/min", subject="https://fhir.example.org/Patient/p1"),
        observation("p1", hr, 2.6, 300.0, "/min", status="entered-in-error"),
        blood_pressure("p1", 1.0, 101.0, 61.0),
        blood_pressure("p1", 2.0, None, 66.0),
        condition("p1", "A41.9", 20.0, system=ICD10CM),
        patient("p2", birth="2000-02-29", birth_sex=None, gender="male", race=None),
        encounter("e2", "p2", "2024-03-01T10:00:00+05:00", "2024-03-03"),
        observation("p2", hr, "2024-03-01", 70.0, "/min"),
        condition("p2", "91302008", "2024-03-01T10:00:00Z", eid="e2"),
        patient("p3", birth="1990-12", ethnicity=["2135-2"]),
        encounter("e3", "p3", 0, cls="EMER"),
        patient("p4"),
        encounter("e4", "p4", 0),
        condition("p4", "91302008", 3.0, eid="e4"),  # before t: excluded
    ]
    folder = write_raw(tmp_path / "raw", resources)
    spec = stage(
        _features(),
        label={"name": "sepsis", "definition": "sepsis3", "horizon": "48h"},
        age_groups=[18, 45, 65, 80, 90],
    )
    duck = extract_features(folder, spec)
    _assert_same(duck, extract_features(folder, spec, con=spark_con))
    assert duck["encounter_id"].tolist() == ["e2", "e1", "e3"]  # by prediction time
    assert duck["sepsis"].tolist() == [1, 1, 0]

    sirs = stage(
        [obs_feature("hr_count", [hr], "count", "24h")],
        label={"name": "sirs", "definition": "sirs", "horizon": "24h"},
        exclude_prior_outcome=False,
    )
    duck_sirs = extract_features(folder, sirs)
    _assert_same(duck_sirs, extract_features(folder, sirs, con=spark_con))
    assert duck_sirs["sirs"].sum() >= 1

    # a folder without Observations and Conditions reads them as empty on both engines
    for name in ("Observation.ndjson", "Condition.ndjson"):
        (folder / name).unlink()
    duck_empty = extract_features(folder, spec)
    _assert_same(duck_empty, extract_features(folder, spec, con=spark_con))
    assert duck_empty["sepsis"].tolist() == [0, 0, 0, 0]
    assert duck_empty["heart_rate_count_6h"].tolist() == [0, 0, 0, 0]
