"""Feature extraction on DuckDB over hand-made FHIR: known answers for every rule.

Timeline: admission at ``BASE`` (2024-03-01 08:00 UTC) = hour 0; the prediction time is
``admission + 4h`` = hour 4 (12:00 UTC), so a 6-hour window is ``[hour -2, hour 4)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bedside.engines.backends import connect
from bedside.engines.features import build_feature_table, extract_features
from bedside.errors import InvalidInput
from tests.engines.conftest import Extract
from tests.engines.fhir_builders import (
    ICD10CM,
    at,
    blood_pressure,
    condition,
    encounter,
    moment,
    obs_feature,
    observation,
    patient,
    stage,
    write_raw,
)

HR = "8867-4"
ONE_MINUTE = 1 / 60


def _hr_features(window: str = "6h") -> list[dict[str, object]]:
    return [
        obs_feature(f"hr_{agg}", [HR], agg, window, unit="/min")
        for agg in ("last", "min", "max", "mean", "count", "slope")
    ]


# ================================================================================ aggregations


def test_features_every_aggregation_over_the_window(extract: Extract) -> None:
    points = [
        (-2 - ONE_MINUTE, 70.0),
        (-2.0, 80.0),
        (0.0, 90.0),
        (2.0, 100.0),
        (4 - ONE_MINUTE, 95.0),
    ]
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        *[observation("p1", HR, h, v, "/min", eid="e1") for h, v in points],
        observation("p1", HR, 4.0, 500.0, "/min", eid="e1"),  # exactly at t: excluded
        observation("p1", HR, 5.0, 999.0, "/min", eid="e1"),  # after t
    ]
    row = extract(resources, stage(_hr_features())).loc["e1"]

    kept = points[1:]  # 05:59 is one minute before the window opens
    hours = np.array([h - 4 for h, _ in kept])
    values = np.array([v for _, v in kept])
    assert row["hr_min"] == 80.0
    assert row["hr_max"] == 100.0
    assert row["hr_mean"] == pytest.approx(91.25)
    assert row["hr_count"] == 4
    assert row["hr_last"] == 95.0
    assert row["hr_slope"] == pytest.approx(np.polyfit(hours, values, 1)[0], rel=1e-12)
    assert row["prediction_time"] == pd.Timestamp(at(4))


def test_features_window_start_is_included_and_prediction_time_excluded(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", HR, -2.0, 61.0, "/min"),  # t - 6h exactly: in
        observation("p1", HR, 4.0, 62.0, "/min"),  # t exactly: out
        patient("p2"),
        encounter("e2", "p2", 0),
        observation("p2", HR, -2 - 1 / 3600, 63.0, "/min"),  # one second before the window
        observation("p2", HR, 4 - 1 / 3600, 64.0, "/min"),  # one second before t: in
    ]
    spec = stage([obs_feature("hr_count", [HR], "count", "6h"), *_hr_features()[:1]])
    frame = extract(resources, spec)
    assert frame.loc["e1", "hr_count"] == 1
    assert frame.loc["e1", "hr_last"] == 61.0
    assert frame.loc["e2", "hr_count"] == 1
    assert frame.loc["e2", "hr_last"] == 64.0


def test_features_last_takes_the_latest_time_and_the_largest_value_on_a_tie(
    extract: Extract,
) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", HR, 1.0, 200.0, "/min"),
        observation("p1", HR, 3.0, 97.0, "/min"),
        observation("p1", HR, 3.0, 93.0, "/min"),
    ]
    assert extract(resources, stage(_hr_features()[:1])).loc["e1", "hr_last"] == 97.0


def test_features_with_nothing_in_the_window_are_missing_and_counts_zero(
    extract: Extract,
) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", HR, 1.0, None),  # dataAbsentReason: no value
        patient("p2"),
        encounter("e2", "p2", 0),
        observation("p2", HR, 1.0, 88.0, "/min"),  # one value: no slope
    ]
    frame = extract(resources, stage(_hr_features()))
    empty = frame.loc["e1"]
    assert empty["hr_count"] == 0
    for agg in ("last", "min", "max", "mean", "slope"):
        assert math.isnan(empty[f"hr_{agg}"]), agg
    single = frame.loc["e2"]
    assert (single["hr_count"], single["hr_last"], single["hr_mean"]) == (1, 88.0, 88.0)
    assert math.isnan(single["hr_slope"])
    assert frame["hr_count"].dtype == np.int64
    assert frame["hr_mean"].dtype == np.float64


def test_features_slope_is_missing_when_all_values_share_one_time(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", HR, 2.0, 80.0, "/min"),
        observation("p1", HR, 2.0, 90.0, "/min"),
    ]
    assert math.isnan(extract(resources, stage(_hr_features()[-1:])).loc["e1", "hr_slope"])


def test_features_look_back_crosses_into_an_earlier_encounter(extract: Extract) -> None:
    """ED data before the inpatient admission is part of the look-back (patient-level)."""
    resources = [
        patient("p1"),
        encounter("ed", "p1", -3.0, -0.5, cls="EMER"),
        encounter("e1", "p1", 0),
        observation("p1", HR, -1.0, 120.0, "/min", eid="ed"),
        observation("p1", HR, 1.0, 85.0, "/min", eid="e1"),
    ]
    frame = extract(resources, stage(_hr_features()[2:3], encounter_classes=["inpatient"]))
    assert list(frame.index) == ["e1"]
    assert frame.loc["e1", "hr_max"] == 120.0


# ========================================================================================= units


def test_features_units_are_converted_to_the_feature_unit(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", "8310-5", 2.0, 100.4, "[degF]"),
        observation("p1", "8310-5", 3.0, 37.5, "Cel"),
        observation("p1", "8310-5", 1.0, 99.5, None, unit_text="°F"),  # unit text only
        observation("p1", "2524-7", 1.0, 1.5, "mmol/L"),
        observation("p1", "32693-4", 2.0, 27.0, "mg/dL"),
        observation("p1", "2524-7", 3.0, 9.0, "mg/dl"),  # lower-case litre is UCUM too
        observation("p1", "2160-0", 1.0, 176.8, "umol/L"),
        observation("p1", "1975-2", 1.0, 34.2, "umol/L"),
        observation("p1", "2823-3", 1.0, 4.4, "meq/L"),
        observation("p1", HR, 1.0, 77.0, "{beats}/min"),
        observation("p1", HR, 2.0, 70.0, "kg"),  # not a rate: left out
    ]
    lactate = ["2524-7", "32693-4"]
    spec = stage(
        [
            obs_feature("temp_max", ["8310-5"], "max", "6h", unit="Cel"),
            obs_feature("temp_last", ["8310-5"], "last", "6h", unit="Cel"),
            obs_feature("temp_min", ["8310-5"], "min", "6h", unit="Cel"),
            obs_feature("temp_f_max", ["8310-5"], "max", "6h", unit="[degF]"),
            obs_feature("lactate_max", lactate, "max", "24h", unit="mmol/L"),
            obs_feature("lactate_mg_min", lactate, "min", "24h", unit="mg/dL"),
            obs_feature("lactate_count", lactate, "count", "24h"),
            obs_feature("creatinine", ["2160-0"], "last", "24h", unit="mg/dL"),
            obs_feature("bilirubin", ["1975-2"], "last", "24h", unit="mg/dL"),
            obs_feature("potassium", ["2823-3"], "last", "24h", unit="mmol/L"),
            obs_feature("hr_count", [HR], "count", "6h", unit="/min"),
            obs_feature("hr_mean", [HR], "mean", "6h", unit="/min"),
        ]
    )
    row = extract(resources, spec).loc["e1"]
    assert row["temp_max"] == pytest.approx(38.0)
    assert row["temp_last"] == 37.5
    assert row["temp_min"] == pytest.approx(37.5)  # 99.5 °F = 37.5 °C
    assert row["temp_f_max"] == pytest.approx(100.4)
    assert row["lactate_max"] == pytest.approx(27.0 / 9.008)
    assert row["lactate_mg_min"] == pytest.approx(9.0)
    assert row["lactate_count"] == 3
    assert row["creatinine"] == pytest.approx(2.0, rel=1e-3)  # 88.4 umol/L per mg/dL
    assert row["bilirubin"] == pytest.approx(2.0, rel=1e-3)  # 17.1 umol/L per mg/dL
    assert row["potassium"] == pytest.approx(4.4)
    assert row["hr_count"] == 1
    assert row["hr_mean"] == 77.0


def test_features_without_unit_refuse_observations_in_several_units(tmp_path: Path) -> None:
    folder = write_raw(
        tmp_path / "raw",
        [
            patient("p1"),
            encounter("e1", "p1", 0),
            observation("p1", "8310-5", 2.0, 100.4, "[degF]"),
            observation("p1", "8310-5", 3.0, 37.5, "Cel"),
        ],
    )
    spec = stage([obs_feature("temperature_max_6h", ["8310-5"], "max", "6h")])
    with pytest.raises(InvalidInput, match="temperature_max_6h") as caught:
        extract_features(folder, spec)
    assert "Cel" in str(caught.value) and "[degF]" in str(caught.value)
    assert "set unit" in str(caught.value)


def test_features_without_unit_keep_values_as_recorded_in_one_unit(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", "8310-5", 2.0, 100.4, "[degF]"),
        observation("p1", "8310-5", 3.0, 99.0, "[degF]"),
    ]
    spec = stage([obs_feature("temp_max", ["8310-5"], "max", "6h")])
    assert extract(resources, spec).loc["e1", "temp_max"] == 100.4


# ====================================================================== FHIR shapes and times


def test_features_read_blood_pressure_panel_components(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        blood_pressure("p1", 1.0, 110.0, 70.0),
        blood_pressure("p1", 3.0, 95.0, 65.0),
        blood_pressure("p1", 3.5, None, 68.0),  # systolic not taken
        blood_pressure("p1", 5.0, 60.0, 40.0),  # after t
        observation("p1", "8480-6", 2.0, 105.0, "mm[Hg]"),  # systolic sent on its own
    ]
    spec = stage(
        [
            obs_feature("sbp_min", ["8480-6"], "min", "6h", unit="mm[Hg]"),
            obs_feature("sbp_count", ["8480-6"], "count", "6h", unit="mm[Hg]"),
            obs_feature("dbp_max", ["8462-4"], "max", "6h", unit="mm[Hg]"),
            obs_feature("dbp_count", ["8462-4"], "count", "6h"),
            obs_feature("panel_count", ["85354-9"], "count", "6h"),
        ]
    )
    row = extract(resources, spec).loc["e1"]
    assert (row["sbp_min"], row["sbp_count"]) == (95.0, 3)
    assert (row["dbp_max"], row["dbp_count"]) == (70.0, 3)
    assert row["panel_count"] == 0  # the panel itself carries no value


def test_features_use_results_only_once_issued_before_the_prediction_time(
    extract: Extract,
) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", "6690-2", 1.0, 8.0, "10*3/uL", issued=2.0),
        observation("p1", "6690-2", 3.0, 19.0, "10*3/uL", issued=4.5),  # resulted after t
        observation("p1", "6690-2", 3.5, 21.0, "10*3/uL", issued=4.0),  # resulted exactly at t
    ]
    spec = stage([obs_feature("wbc_last", ["6690-2"], "last", "24h", unit="10*3/uL")])
    assert extract(resources, spec).loc["e1", "wbc_last"] == 8.0


def test_features_skip_observations_whose_status_is_not_a_result(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        observation("p1", HR, 1.0, 300.0, "/min", status="entered-in-error"),
        observation("p1", HR, 1.5, 290.0, "/min", status="cancelled"),
        observation("p1", HR, 2.0, 80.0, "/min", status="final"),
        observation("p1", HR, 2.5, 84.0, "/min", status="amended"),
        observation("p1", HR, 3.0, 82.0, "/min", status="preliminary"),
    ]
    row = extract(resources, stage(_hr_features())).loc["e1"]
    assert (row["hr_count"], row["hr_max"]) == (3, 84.0)


def test_features_read_time_zones_codings_and_references(extract: Extract) -> None:
    resources = [
        patient("p1"),
        encounter("e1", "p1", 0),
        # 13:30+02:00 is 11:30 UTC, before t; 10:30-02:00 is 12:30 UTC, after t
        observation("p1", HR, "2024-03-01T13:30:00+02:00", 81.0, "/min"),
        observation("p1", HR, "2024-03-01T10:30:00-02:00", 250.0, "/min"),
        # SpO2 coded twice (2708-6 and 59408-5) counts once for a 59408-5-only feature
        observation("p1", ["2708-6", "59408-5"], 2.0, 91.0, "%"),
        # a local code that happens to look like LOINC is not LOINC
        observation("p1", HR, 2.0, 240.0, "/min", system="http://example.org/local"),
        # absolute and versioned references name the same patient
        observation("p1", HR, 2.5, 83.0, "/min", subject="https://fhir.example.org/r4/Patient/p1"),
        observation("p1", HR, 3.0, 85.0, "/min", subject="Patient/p1/_history/2"),
    ]
    spec = stage(
        [
            *_hr_features()[1:5],
            obs_feature("spo2_count", ["59408-5"], "count", "6h", unit="%"),
            obs_feature("spo2_min", ["59408-5", "2708-6"], "min", "6h", unit="%"),
        ]
    )
    row = extract(resources, spec).loc["e1"]
    assert (row["hr_count"], row["hr_min"], row["hr_max"]) == (3, 81.0, 85.0)
    assert (row["spo2_count"], row["spo2_min"]) == (1, 91.0)


# ======================================================================================= cohort


def test_cohort_selects_classes_times_status_and_ages(extract: Extract) -> None:
    resources = [
        patient("adult", birth="1980-01-01"),
        encounter("inpatient", "adult", 0),
        encounter("emergency", "adult", 100, 108, cls="EMER"),
        encounter("ambulatory", "adult", 200, 201, cls="AMB"),
        encounter("short", "adult", 300, 303),  # ends before admission + 4h
        encounter("ends-at-t", "adult", 400, 404),
        encounter("open", "adult", 500, None),
        encounter("error", "adult", 600, status="entered-in-error"),
        encounter("no-start", "adult", None),
        encounter("before-start", "adult", -30),
        patient("turns-18-today", birth="2006-03-01"),
        encounter("e18", "turns-18-today", 0),
        patient("turns-18-tomorrow", birth="2006-03-02"),
        encounter("e17", "turns-18-tomorrow", 0),
        patient("no-birth-date", birth=None),
        encounter("e-unknown-age", "no-birth-date", 0),
    ]
    spec = stage(start="2024-03-01", end="2024-04-01")
    frame = extract(resources, spec)
    assert sorted(frame.index) == ["e18", "emergency", "ends-at-t", "inpatient", "open"]
    assert list(frame.columns) == ["patient_id", "prediction_time"]
    assert frame.loc["emergency", "prediction_time"] == pd.Timestamp(at(104))

    only_inpatient = extract(resources, stage(encounter_classes=["inpatient"], min_age=0))
    assert "emergency" not in only_inpatient.index
    assert "e-unknown-age" in only_inpatient.index  # no age rule applies at min_age 0


def test_cohort_max_age_and_discharge_anchor(extract: Extract) -> None:
    resources = [
        # the prediction is at discharge, 2024-03-02 14:00: ages are taken then
        patient("eighty", birth="1943-03-03"),
        encounter("e80", "eighty", 0, 30),
        patient("eighty-one", birth="1943-03-02"),
        encounter("e81", "eighty-one", 0, 30),
    ]
    frame = extract(resources, stage(max_age=80, prediction_time="discharge"))
    assert list(frame.index) == ["e80"]
    assert frame.loc["e80", "prediction_time"] == pd.Timestamp(at(30))


# ================================================================================= demographics


def test_demographics_cap_age_at_90_and_group_90_plus(extract: Extract) -> None:
    resources = [
        patient("p90", birth="1934-03-01"),  # 90 on the day of the prediction
        encounter("e90", "p90", 0),
        patient("p89", birth="1934-03-02"),
        encounter("e89", "p89", 0),
        patient("p104", birth="1920"),
        encounter("e104", "p104", 0),
        patient("p30", birth="1993-07"),
        encounter("e30", "p30", 0),
    ]
    demographics = [
        {"kind": "demographic", "name": "age"},
        {"kind": "demographic", "name": "age_group"},
    ]
    frame = extract(resources, stage(demographics, age_groups=[18, 45, 65, 80, 90]))
    assert frame["age"].to_dict() == {"e30": 30, "e89": 89, "e90": 90, "e104": 90}
    assert frame["age_group"].to_dict() == {
        "e30": "18-44",
        "e89": "80-89",
        "e90": "90+",
        "e104": "90+",
    }
    default_groups = extract(resources, stage(demographics))
    assert default_groups.loc["e104", "age_group"] == "80+"
    assert str(frame["age"].dtype) == "Int64"


def test_demographics_sex_race_ethnicity(extract: Extract) -> None:
    resources = [
        patient("a", birth_sex="M", gender="female", race=["2054-5"], ethnicity=["2135-2"]),
        encounter("ea", "a", 0),
        patient("b", birth_sex=None, gender="female", race=["2106-3", "2028-9"], ethnicity=None),
        encounter("eb", "b", 0),
        patient("c", birth_sex="UNK", gender=None, race=["UNK"], ethnicity=["ASKU"]),
        encounter("ec", "c", 0),
        patient("d", birth_sex=None, gender=None, race=None, ethnicity=["2135-2", "2186-5"]),
        encounter("ed", "d", 0),
    ]
    spec = stage([{"kind": "demographic", "name": n} for n in ("sex", "race", "ethnicity")])
    frame = extract(resources, spec)
    assert frame["sex"].to_dict() == {"ea": "male", "eb": "female", "ec": "unknown", "ed": None}
    assert frame["race"].to_dict() == {
        "ea": "Black or African American",
        "eb": "Multiple",
        "ec": "Unknown",
        "ed": None,
    }
    assert frame["ethnicity"].to_dict() == {
        "ea": "Hispanic or Latino",
        "eb": None,
        "ec": "Unknown",
        "ed": "Unknown",
    }


# ======================================================================================= labels

SEPSIS = "91302008"
SEPSIS_LABEL = {"name": "sepsis", "definition": "sepsis3", "horizon": "48h"}


def _stay(pid: str, eid: str, *onsets: dict[str, object]) -> list[dict[str, object]]:
    return [patient(pid), encounter(eid, pid, 0, 200), *onsets]


def test_label_counts_onsets_in_the_horizon_after_the_prediction_time(extract: Extract) -> None:
    resources = [
        *_stay("p1", "at-horizon", condition("p1", SEPSIS, 52.0, eid="at-horizon")),
        *_stay("p2", "past-horizon", condition("p2", SEPSIS, 52 + ONE_MINUTE, eid="past-horizon")),
        *_stay("p3", "just-after-t", condition("p3", SEPSIS, 4 + ONE_MINUTE, eid="just-after-t")),
        *_stay("p4", "at-t", condition("p4", SEPSIS, 4.0, eid="at-t")),
        *_stay("p5", "none"),
        *_stay(
            "p6", "refuted", condition("p6", SEPSIS, 10.0, eid="refuted", verification="refuted")
        ),
        *_stay("p7", "other-code", condition("p7", "233604007", 10.0, eid="other-code")),
        *_stay("p8", "no-onset", condition("p8", SEPSIS, None, eid="no-onset", recorded=10.0)),
        *_stay("p9", "icd", condition("p9", "A41.51", 10.0, system=ICD10CM)),
        *_stay("p10", "icd-other", condition("p10", "A49.9", 10.0, system=ICD10CM)),
    ]
    frame = extract(resources, stage(label=SEPSIS_LABEL))
    assert frame["sepsis"].to_dict() == {
        "at-horizon": 1,
        "past-horizon": 0,
        "just-after-t": 1,
        "none": 0,
        "refuted": 0,
        "other-code": 0,
        "no-onset": 0,
        "icd": 1,
        "icd-other": 0,
    }  # "at-t" is excluded: its outcome happened at the prediction time


def test_label_prior_outcomes_are_excluded_or_labelled_positive(extract: Extract) -> None:
    resources = [
        *_stay("p1", "during-stay", condition("p1", SEPSIS, 2.0)),  # no encounter reference
        *_stay("p2", "before-arrival", condition("p2", SEPSIS, -3.0, eid="before-arrival")),
        patient("p3"),
        encounter("old-stay", "p3", -300, -250),
        condition("p3", SEPSIS, -299.0, eid="old-stay"),  # before its t
        encounter("new-stay", "p3", 0, 200),
    ]
    excluded = extract(resources, stage(label=SEPSIS_LABEL))
    assert excluded["sepsis"].to_dict() == {"new-stay": 0}
    kept = extract(resources, stage(label=SEPSIS_LABEL, exclude_prior_outcome=False))
    assert kept["sepsis"].to_dict() == {
        "during-stay": 1,
        "before-arrival": 1,
        "old-stay": 1,
        "new-stay": 0,
    }


def test_label_condition_codes_match_code_or_system_and_code(extract: Extract) -> None:
    resources = [
        *_stay("p1", "snomed", condition("p1", SEPSIS, 10.0)),
        *_stay("p2", "icd", condition("p2", "A41.9", 10.0, system=ICD10CM)),
        *_stay("p3", "wrong-system", condition("p3", SEPSIS, 10.0, system="http://example.org")),
    ]
    label = {
        "name": "outcome",
        "definition": "condition_codes",
        "horizon": "24h",
        "codes": ["http://snomed.info/sct|91302008", "A41.9"],
    }
    frame = extract(resources, stage(label=label))
    assert frame["outcome"].to_dict() == {"snomed": 1, "icd": 1, "wrong-system": 0}


def test_label_sirs_needs_two_criteria_within_six_hours(extract: Extract) -> None:
    temp, rr, wbc = "8310-5", "9279-1", "6690-2"
    cases: dict[str, list[tuple[str, float, float, str]]] = {
        "two-criteria": [(HR, 5, 95, "/min"), (temp, 7, 38.5, "Cel")],
        "too-far-apart": [(HR, 5, 95, "/min"), (temp, 11.5, 38.5, "Cel")],
        "boundary": [(HR, 5, 90, "/min"), (rr, 6, 21, "/min")],  # HR 90 is not > 90
        "fahrenheit": [(rr, 6, 21, "/min"), (temp, 7, 100.6, "[degF]")],  # 38.1 °C
        "leukopenia": [(wbc, 6, 3.9, "10*3/uL"), (HR, 8, 91, "/min")],
        "already": [(HR, 2, 95, "/min"), (rr, 3, 22, "/min")],  # met before t
    }
    resources: list[dict[str, object]] = []
    for n, (eid, points) in enumerate(cases.items()):
        pid = f"p{n}"
        resources += _stay(pid, eid)
        resources += [observation(pid, code, h, v, unit) for code, h, v, unit in points]
    label = {"name": "sirs", "definition": "sirs", "horizon": "24h"}
    frame = extract(resources, stage(label=label))
    assert frame["sirs"].to_dict() == {
        "two-criteria": 1,
        "too-far-apart": 0,
        "boundary": 0,
        "fahrenheit": 1,
        "leukopenia": 1,
    }  # "already" met SIRS before the prediction time and is excluded


# ==================================================================================== the spec


@pytest.mark.parametrize("name", ["encounter_id", "patient_id", "prediction_time"])
def test_features_refuse_names_of_the_key_columns(tmp_path: Path, name: str) -> None:
    folder = write_raw(tmp_path / "raw", [patient("p1"), encounter("e1", "p1", 0)])
    spec = stage([obs_feature(name, [HR], "max", "6h")])
    with pytest.raises(InvalidInput, match=f"{name}.*reserved"):
        extract_features(folder, spec)


def test_features_refuse_a_label_named_like_a_feature(tmp_path: Path) -> None:
    folder = write_raw(tmp_path / "raw", [patient("p1"), encounter("e1", "p1", 0)])
    spec = stage([obs_feature("sepsis", [HR], "max", "6h")], label=SEPSIS_LABEL)
    with pytest.raises(InvalidInput, match="same name as a feature"):
        extract_features(folder, spec)


def test_features_refuse_a_missing_folder_and_tolerate_missing_types(tmp_path: Path) -> None:
    from bedside.errors import NotFound

    with pytest.raises(NotFound, match="does not exist"):
        extract_features(tmp_path / "nowhere", stage())
    folder = write_raw(tmp_path / "raw", [patient("p1"), encounter("e1", "p1", 0)])
    for name in ("Observation.ndjson", "Condition.ndjson"):
        (folder / name).unlink()
    frame = extract_features(folder, stage(_hr_features()[:1], label=SEPSIS_LABEL))
    assert frame[["encounter_id", "sepsis"]].to_dict("records") == [
        {"encounter_id": "e1", "sepsis": 0}
    ]
    assert math.isnan(frame.loc[0, "hr_last"])


def test_features_report_unreadable_ndjson_without_echoing_it(tmp_path: Path) -> None:
    folder = write_raw(tmp_path / "raw", [patient("p1"), encounter("e1", "p1", 0)])
    secret = "SECRET-NAME-8271"
    with (folder / "Encounter.ndjson").open("a") as handle:
        handle.write('{"resourceType": "Encounter", "id": "x", "period": "' + secret + '"\n')
    with pytest.raises(InvalidInput, match="bedside ingest") as caught:
        extract_features(folder, stage())
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value.details)


def test_build_feature_table_is_lazy_ibis_with_the_columns_in_order(tmp_path: Path) -> None:
    folder = write_raw(tmp_path / "raw", [patient("p1"), encounter("e1", "p1", 0)])
    spec = stage([*_hr_features()[:2], {"kind": "demographic", "name": "sex"}], label=SEPSIS_LABEL)
    con = connect()
    table = build_feature_table(con, folder, spec)
    assert table.columns == (
        "encounter_id",
        "patient_id",
        "prediction_time",
        "hr_last",
        "hr_min",
        "sex",
        "sepsis",
    )
    assert con.execute(table)["encounter_id"].tolist() == ["e1"]
    assert moment(4) == con.execute(table)["prediction_time"][0]
