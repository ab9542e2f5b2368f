"""Leakage: no feature uses data timestamped at or after its prediction time.

Two proofs: (1) on a generated hospital, add absurd observations at and after every prediction
time (and results issued after it) and show the feature table unchanged; (2) a property test over
random timelines, comparing the engine with the pure rules of ``bedside.domain.features`` and
checking that points after the prediction time never matter.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.domain.features import aggregate_window, unit_conversion
from bedside.engines.features import extract_features
from bedside.ingest.synthetic import generate_hospital
from bedside.pipeline_file import load_pipeline_file
from tests.engines.fhir_builders import (
    BASE,
    blood_pressure,
    encounter,
    obs_feature,
    observation,
    patient,
    stage,
    write_raw,
)
from tests.support import EXAMPLES

FULL_PIPELINE = EXAMPLES / "sepsis" / "pipeline.full.yaml"


def _fhir(moment: pd.Timestamp) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_features_ignore_absurd_data_at_and_after_the_prediction_time(tmp_path: Path) -> None:
    export = tmp_path / "export"
    generate_hospital(export, admissions=80, start=date(2024, 1, 1), end=date(2024, 2, 1), seed=7)
    spec = load_pipeline_file(FULL_PIPELINE).spec.data_preparation
    before = extract_features(export, spec)
    assert len(before) > 40 and before["sepsis"].sum() > 0

    codes = sorted({c for f in spec.features if f.kind == "observation" for c in f.loinc})
    units = {"8310-5": "Cel", "2524-7": "mmol/L", "32693-4": "mg/dL", "59408-5": "%"}
    poison: list[dict[str, Any]] = []
    for row in before.itertuples():
        t = row.prediction_time
        for offset in (timedelta(0), timedelta(minutes=1), timedelta(hours=5), timedelta(days=3)):
            when = _fhir(t + offset)
            for code in codes:
                poison.append(
                    observation(row.patient_id, code, when, 9999.0, units.get(code, "/min"))
                )
            bp = blood_pressure(row.patient_id, 0, 999.0, 999.0)
            bp["effectiveDateTime"] = when
            poison.append(bp)
        # drawn before the prediction time but resulted at or after it: not yet known
        for code in codes:
            late = observation(
                row.patient_id,
                code,
                _fhir(t - timedelta(minutes=30)),
                -9999.0,
                units.get(code, "/min"),
                issued=_fhir(t),
            )
            poison.append(late)
    with (export / "Observation.ndjson").open("ab") as handle:
        handle.writelines(orjson.dumps(r) + b"\n" for r in poison)

    after = extract_features(export, spec)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    feature_values = after.drop(columns=["encounter_id", "patient_id", "prediction_time"])
    numeric = feature_values.select_dtypes("number")
    assert not (numeric.abs() >= 9000).any().any()


# ============================================================================ property test

_AGGREGATIONS = ("last", "min", "max", "mean", "count", "slope")
_WINDOWS = {"6h": timedelta(hours=6), "24h": timedelta(hours=24)}
_TEMPERATURE = "8310-5"


@st.composite
def _timeline(draw: st.DrawFn) -> dict[str, Any]:
    """One patient's stay: admission time and temperature points around the prediction time."""
    admission_minutes = draw(st.integers(0, 3 * 24 * 60))
    points = draw(
        st.lists(
            st.tuples(
                st.integers(-30 * 60, 30 * 60),  # minutes relative to the prediction time
                st.integers(340, 420).map(lambda v: v / 10),  # °C, one decimal
                st.sampled_from(["Cel", "[degF]"]),
                st.one_of(st.none(), st.integers(0, 8 * 60)),  # result delay in minutes
            ),
            max_size=12,
        )
    )
    return {"admission": admission_minutes, "points": points}


def _write(folder: Path, stays: list[dict[str, Any]]) -> None:
    """Write each stay twice: ``e<n>`` with every point, ``past<n>`` without those at/after t."""
    resources: list[dict[str, Any]] = []
    for n, stay in enumerate(stays):
        start = BASE + timedelta(minutes=stay["admission"])
        t = start + timedelta(hours=4)
        for pid, eid, future in ((f"p{n}", f"e{n}", True), (f"q{n}", f"past{n}", False)):
            end = _fhir(t + timedelta(days=9))
            resources += [patient(pid), encounter(eid, pid, _fhir(start), end)]
            for minutes, celsius, unit, delay in stay["points"]:
                if minutes >= 0 and not future:
                    continue
                when = t + timedelta(minutes=minutes)
                value = celsius if unit == "Cel" else round(celsius * 9 / 5 + 32, 2)
                issued = None if delay is None else _fhir(when + timedelta(minutes=delay))
                resources.append(
                    observation(pid, _TEMPERATURE, _fhir(when), value, unit, issued=issued)
                )
    write_raw(folder, resources)


def _expected(stay: dict[str, Any], aggregation: str, window: timedelta) -> float | int | None:
    t = BASE + timedelta(minutes=stay["admission"]) + timedelta(hours=4)
    known = []
    for minutes, celsius, unit, delay in stay["points"]:
        when = t + timedelta(minutes=minutes)
        if delay is not None and when + timedelta(minutes=delay) >= t:
            continue  # not resulted before the prediction time
        recorded = celsius if unit == "Cel" else round(celsius * 9 / 5 + 32, 2)
        conversion = unit_conversion(unit, "Cel")
        assert conversion is not None
        known.append((when, conversion.apply(recorded)))
    return aggregate_window(known, aggregation, t, window)  # type: ignore[arg-type]


@settings(max_examples=10, deadline=None)
@given(stays=st.lists(_timeline(), min_size=1, max_size=8))
def test_features_match_the_pure_rules_and_ignore_the_future(stays: list[dict[str, Any]]) -> None:
    names = [f"temp_{agg}_{label}" for agg in _AGGREGATIONS for label in _WINDOWS]
    spec = stage(
        [
            obs_feature(f"temp_{agg}_{label}", [_TEMPERATURE], agg, label, unit="Cel")
            for agg in _AGGREGATIONS
            for label in _WINDOWS
        ],
        min_age=0,
    )
    with tempfile.TemporaryDirectory() as scratch:
        _write(Path(scratch), stays)
        seen = extract_features(Path(scratch), spec).set_index("encounter_id")
    assert len(seen) == 2 * len(stays)
    for n, stay in enumerate(stays):
        # the same stay without its points at or after t has exactly the same features
        assert seen.loc[f"e{n}", names].equals(seen.loc[f"past{n}", names])
        for agg in _AGGREGATIONS:
            for label, window in _WINDOWS.items():
                got = seen.loc[f"e{n}", f"temp_{agg}_{label}"]
                want = _expected(stay, agg, window)
                if want is None:
                    assert pd.isna(got), (n, agg, label)
                else:
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (n, agg, label)
