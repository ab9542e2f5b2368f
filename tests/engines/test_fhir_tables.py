"""The flat FHIR tables (DuckDB): columns, panel components, codes, times, references, files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bedside.engines import fhir_tables
from bedside.engines.backends import connect, resource_files
from bedside.errors import InvalidInput, NotFound
from tests.engines.fhir_builders import (
    ICD10CM,
    at,
    blood_pressure,
    condition,
    encounter,
    observation,
    patient,
    write_raw,
)


def test_observations_table_has_a_row_per_value_and_component(tmp_path: Path) -> None:
    folder = write_raw(
        tmp_path / "raw",
        [
            blood_pressure("p1", 1.0, 120.0, 80.0, eid="e1"),
            observation("p1", ["2708-6", "59408-5"], "2024-03-01T10:00:00+01:00", 95.0, "%"),
            observation("p1", "8867-4", 2.0, None, oid="absent", subject="urn:uuid:p1"),
        ],
    )
    con = connect()
    table = con.execute(fhir_tables.observations(con, folder))
    assert list(table.columns) == [
        "observation_id",
        "patient_id",
        "encounter_id",
        "status",
        "effective_time",
        "issued_time",
        "loinc",
        "loinc_codes",
        "value",
        "unit",
    ]
    assert len(table) == 5  # panel row + 2 components + SpO2 + the value-less heart rate
    by_code = table.set_index("loinc")
    assert by_code.loc["8480-6", "value"] == 120.0
    assert by_code.loc["8462-4", "unit"] == "mm[Hg]"
    assert by_code.loc["8480-6", "encounter_id"] == "e1"
    assert pd.isna(by_code.loc["85354-9", "value"])
    assert list(by_code.loc["2708-6", "loinc_codes"]) == ["2708-6", "59408-5"]
    assert by_code.loc["2708-6", "effective_time"] == pd.Timestamp("2024-03-01T09:00:00Z")
    assert by_code.loc["8867-4", "patient_id"] == "p1"
    assert pd.isna(by_code.loc["8867-4", "value"])


def test_encounters_patients_and_conditions_tables(tmp_path: Path) -> None:
    folder = write_raw(
        tmp_path / "raw",
        [
            patient("p1", birth="1950-06", race=["2028-9"], birth_sex="F"),
            encounter("e1", "p1", 0, 30, cls="EMER"),
            condition("p1", "A41.9", 10.0, eid="e1", system=ICD10CM, verification="provisional"),
        ],
    )
    con = connect()
    enc = con.execute(fhir_tables.encounters(con, folder)).iloc[0]
    assert (enc["encounter_id"], enc["patient_id"], enc["class_code"]) == ("e1", "p1", "EMER")
    assert enc["start_time"] == pd.Timestamp(at(0)) and enc["end_time"] == pd.Timestamp(at(30))
    person = con.execute(fhir_tables.patients(con, folder)).iloc[0]
    assert str(person["birth_date"])[:10] == "1950-06-01"
    assert (person["birth_sex"], person["race"], person["ethnicity"]) == (
        "F",
        "Asian",
        "Not Hispanic or Latino",
    )
    cond = con.execute(fhir_tables.conditions(con, folder)).iloc[0]
    assert (cond["system"], cond["code"], cond["encounter_id"]) == (ICD10CM, "A41.9", "e1")
    assert cond["onset_time"] == pd.Timestamp(at(10))
    assert cond["verification_status"] == "provisional"


def test_resource_files_read_bulk_export_names_and_gzip(tmp_path: Path) -> None:
    plain = write_raw(tmp_path / "plain", [observation("p1", "8867-4", 1.0, 70.0, "/min")])
    export = tmp_path / "export"
    export.mkdir()
    packed = export / "Observation.000.ndjson.gz"
    with (plain / "Observation.ndjson").open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(plain / "Observation.ndjson", export / "Observation.001.ndjson")
    (export / "ObservationDefinition.ndjson").write_text("")  # another type: not matched
    files = resource_files(export, "Observation")
    assert [f.name for f in files] == ["Observation.000.ndjson.gz", "Observation.001.ndjson"]
    con = connect()
    values = con.execute(fhir_tables.observations(con, export))
    assert values["value"].tolist() == [70.0, 70.0]
    assert resource_files(export, "Condition") == []
    with pytest.raises(NotFound):
        resource_files(tmp_path / "missing", "Observation")


def test_connect_refuses_unknown_backends_and_mixed_options() -> None:
    with pytest.raises(InvalidInput, match="unknown backend"):
        connect("sqlite")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="memory_limit"):
        connect("pyspark", memory_limit="1GB")
    con = connect("duckdb", threads=1, memory_limit="512MB")
    assert con.raw_sql("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
