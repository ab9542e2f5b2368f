"""Tests of the synthetic hospital generator (bedside.ingest.synthetic)."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from bedside.errors import InvalidInput
from bedside.ingest.ndjson import ingest_ndjson
from bedside.ingest.synthetic import (
    CHUNK_ADMISSIONS,
    DriftKind,
    DriftScenario,
    GenerationSummary,
    generate_hospital,
)

START, END = date(2024, 1, 1), date(2024, 7, 1)
DRIFT_START = date(2024, 4, 1)
DRIFT_START_ISO = "2024-04-01T00:00:00Z"
DRIFT_START_TS = pd.Timestamp(DRIFT_START_ISO)
SEPSIS = "91302008"
RESOURCE_TYPES = ("Patient", "Encounter", "Observation", "Condition")

#: REGULATORY.md §10.3-10.4: LOINC code -> UCUM units the generator may use for it.
REFERENCE_UNITS: dict[str, set[str]] = {
    "8867-4": {"/min"},
    "9279-1": {"/min"},
    "8310-5": {"Cel", "[degF]"},
    "59408-5": {"%"},
    "2708-6": {"%"},
    "2524-7": {"mmol/L", "mg/dL"},
    "32693-4": {"mmol/L", "mg/dL"},
    "6690-2": {"10*3/uL"},
    "777-3": {"10*3/uL"},
    "2160-0": {"mg/dL", "umol/L"},
    "2823-3": {"mmol/L"},
    "1975-2": {"mg/dL"},
}
RESTRICTED_ZIP3 = {
    "036", "059", "063", "102", "203", "556", "692", "790", "821",
    "823", "830", "831", "878", "879", "884", "890", "893",
}  # fmt: skip
MODELS: dict[str, Any] = {"Patient": Patient, "Encounter": Encounter, "Observation": Observation,
                          "Condition": Condition}  # fmt: skip


def read_lines(folder: Path, resource_type: str) -> list[bytes]:
    """Return the NDJSON lines of one resource file."""
    return (folder / f"{resource_type}.ndjson").read_bytes().splitlines()


def read(folder: Path, resource_type: str) -> list[dict[str, Any]]:
    """Return the parsed resources of one resource file."""
    return [orjson.loads(line) for line in read_lines(folder, resource_type)]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def code_of(resource: dict[str, Any]) -> str:
    return str(resource["code"]["coding"][0]["code"])


def quantity(obs: dict[str, Any]) -> tuple[float, str] | None:
    """Return (value, UCUM code) of an Observation; the systolic value for the BP panel."""
    if "component" in obs:
        q = obs["component"][0]["valueQuantity"]
    elif "valueQuantity" in obs:
        q = obs["valueQuantity"]
    else:
        return None
    return float(q["value"]), str(q["code"])


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("hospital")
    summary = generate_hospital(out, admissions=800, start=START, end=END, seed=7)
    return out, summary


@pytest.fixture(scope="module")
def resources(hospital: tuple[Path, GenerationSummary]) -> dict[str, list[dict[str, Any]]]:
    out, _ = hospital
    return {rt: read(out, rt) for rt in RESOURCE_TYPES}


@pytest.fixture(scope="module")
def small_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    generate_hospital(out, admissions=400, start=START, end=END, seed=3)
    return out


@dataclass(frozen=True)
class Frames:
    """Column views of a generated export (pandas), for vectorised checks."""

    observations: pd.DataFrame  # encounter, subject, time, code, unit, value
    encounters: pd.DataFrame  # encounter, subject, class, start, end
    onsets: pd.Series  # sepsis onset time by encounter id


def to_frames(res: dict[str, list[dict[str, Any]]]) -> Frames:
    """Return the Observations, Encounters and sepsis onsets of parsed resources as frames."""
    rows = []
    for obs in res["Observation"]:
        q = quantity(obs)
        rows.append(
            (
                obs["encounter"]["reference"].removeprefix("Encounter/"),
                obs["subject"]["reference"],
                obs["effectiveDateTime"],
                code_of(obs),
                q[1] if q else None,
                q[0] if q else np.nan,
            )
        )
    observations = pd.DataFrame(rows, columns=["encounter", "subject", "time", "code", "unit",
                                               "value"])  # fmt: skip
    observations["time"] = pd.to_datetime(observations["time"])
    encounters = pd.DataFrame(
        [
            (
                e["id"],
                e["subject"]["reference"],
                e["class"]["code"],
                e["period"]["start"],
                e["period"]["end"],
            )
            for e in res["Encounter"]
        ],
        columns=["encounter", "subject", "class", "start", "end"],
    )
    encounters["start"] = pd.to_datetime(encounters["start"])
    encounters["end"] = pd.to_datetime(encounters["end"])
    onsets = pd.Series(
        {
            c["encounter"]["reference"].removeprefix("Encounter/"): c["onsetDateTime"]
            for c in res["Condition"]
            if code_of(c) == SEPSIS
        },
        dtype=object,
    )
    return Frames(observations, encounters, pd.to_datetime(onsets))


@pytest.fixture(scope="module")
def frames(resources: dict[str, list[dict[str, Any]]]) -> Frames:
    return to_frames(resources)


@pytest.fixture(scope="module")
def baseline_frames(small_baseline: Path) -> Frames:
    return to_frames({rt: read(small_baseline, rt) for rt in RESOURCE_TYPES})


def mean_after_drift(f: Frames, loinc: str) -> float:
    obs = f.observations
    return float(obs[(obs["code"] == loinc) & (obs["time"] >= DRIFT_START_TS)]["value"].mean())


def test_generate_hospital_manifest_counts_equal_file_lines(
    hospital: tuple[Path, GenerationSummary],
) -> None:
    out, summary = hospital
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["requiresAccessToken"] is False
    assert manifest["error"] == []
    assert manifest["request"]
    assert [o["type"] for o in manifest["output"]] == list(RESOURCE_TYPES)
    for entry in manifest["output"]:
        assert entry["url"] == f"{entry['type']}.ndjson"
        lines = read_lines(out, entry["type"])
        assert entry["count"] == len(lines) == summary.counts[entry["type"]]
    assert summary.counts["Encounter"] == summary.admissions == 800
    assert summary.counts["Patient"] == summary.patients
    assert not list(out.glob("*.part"))
    total = sum(p.stat().st_size for p in out.iterdir())
    assert summary.bytes_written == total


def test_generate_hospital_transaction_time_after_every_stay(
    hospital: tuple[Path, GenerationSummary], resources: dict[str, list[dict[str, Any]]]
) -> None:
    out, _ = hospital
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    transaction = ts(manifest["transactionTime"])
    last_end = max(ts(e["period"]["end"]) for e in resources["Encounter"])
    assert last_end < transaction


def test_generate_hospital_resources_validate_as_fhir_r4b(
    resources: dict[str, list[dict[str, Any]]],
) -> None:
    for rt in ("Patient", "Encounter", "Condition"):
        for res in resources[rt][:150]:
            MODELS[rt].model_validate(res)
    # Every Observation shape: each code x unit x value/absent combination, once.
    shapes: dict[tuple[str, str | None, bool], dict[str, Any]] = {}
    for obs in resources["Observation"]:
        q = quantity(obs)
        key = (code_of(obs), q[1] if q else None, "dataAbsentReason" in obs)
        shapes.setdefault(key, obs)
    assert len(shapes) >= 25
    for obs in shapes.values():
        Observation.model_validate(obs)
    # The validator is strict: a corrupted resource is refused.
    for corruption in ({"effectiveDateTime": "yesterday"}, {"notAnElement": 1}):
        with pytest.raises(ValidationError):
            Observation.model_validate(dict(resources["Observation"][0], **corruption))


def test_generate_hospital_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    n = CHUNK_ADMISSIONS + 50  # spans two chunks
    generate_hospital(a, admissions=n, start=START, end=END, seed=11)
    generate_hospital(b, admissions=n, start=START, end=END, seed=11)
    generate_hospital(c, admissions=n, start=START, end=END, seed=12)
    for name in [f"{rt}.ndjson" for rt in RESOURCE_TYPES] + ["manifest.json"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for rt in RESOURCE_TYPES:
        assert (a / f"{rt}.ndjson").read_bytes() != (c / f"{rt}.ndjson").read_bytes(), rt


def test_generate_hospital_rerun_in_same_folder_replaces_files(tmp_path: Path) -> None:
    first = generate_hospital(tmp_path, admissions=120, start=START, end=END, seed=5)
    before = (tmp_path / "Observation.ndjson").read_bytes()
    second = generate_hospital(tmp_path, admissions=120, start=START, end=END, seed=5)
    assert (tmp_path / "Observation.ndjson").read_bytes() == before
    assert first.counts == second.counts
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{rt}.ndjson" for rt in RESOURCE_TYPES] + ["manifest.json"]
    )


def test_generate_hospital_sepsis_prevalence_and_onsets(
    hospital: tuple[Path, GenerationSummary], resources: dict[str, list[dict[str, Any]]]
) -> None:
    _, summary = hospital
    encounters = {e["id"]: e for e in resources["Encounter"]}
    sepsis = [c for c in resources["Condition"] if code_of(c) == SEPSIS]
    assert len(sepsis) == summary.sepsis_admissions
    assert 0.05 <= len(sepsis) / len(encounters) <= 0.10
    assert len({c["encounter"]["reference"] for c in sepsis}) == len(sepsis)
    for cond in sepsis:
        assert cond["code"]["coding"][0]["system"] == "http://snomed.info/sct"
        enc = encounters[cond["encounter"]["reference"].removeprefix("Encounter/")]
        assert enc["class"]["code"] == "IMP"
        assert cond["subject"] == enc["subject"]
        onset = ts(cond["onsetDateTime"])
        assert ts(enc["period"]["start"]) < onset < ts(enc["period"]["end"])
        assert onset <= ts(cond["recordedDate"])
    # Unrelated Conditions exist too: chronic problems and admission diagnoses.
    other = Counter(code_of(c) for c in resources["Condition"] if code_of(c) != SEPSIS)
    assert len(other) >= 10


def test_generate_hospital_encounter_classes_and_periods(
    resources: dict[str, list[dict[str, Any]]],
) -> None:
    classes = Counter(e["class"]["code"] for e in resources["Encounter"])
    assert set(classes) == {"IMP", "EMER"}
    assert 0.45 < classes["IMP"] / sum(classes.values()) < 0.75
    patients = {p["id"] for p in resources["Patient"]}
    for enc in resources["Encounter"]:
        start, end = ts(enc["period"]["start"]), ts(enc["period"]["end"])
        assert start < end
        assert datetime(2024, 1, 1).date() <= start.date() < END
        assert enc["subject"]["reference"].removeprefix("Patient/") in patients
    # A patient's stays never overlap.
    by_patient: dict[str, list[tuple[datetime, datetime]]] = {}
    for enc in resources["Encounter"]:
        period = (ts(enc["period"]["start"]), ts(enc["period"]["end"]))
        by_patient.setdefault(enc["subject"]["reference"], []).append(period)
    assert any(len(v) > 1 for v in by_patient.values())
    for stays in by_patient.values():
        stays.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(stays))


def test_generate_hospital_observations_inside_their_encounter(
    resources: dict[str, list[dict[str, Any]]], frames: Frames
) -> None:
    obs, enc = frames.observations, frames.encounters.set_index("encounter")
    joined = obs.join(enc, on="encounter", rsuffix="_enc")
    assert joined["start"].notna().all()
    assert ((joined["time"] >= joined["start"]) & (joined["time"] <= joined["end"])).all()
    assert (joined["subject"] == joined["subject_enc"]).all()
    assert len({o["id"] for o in resources["Observation"]}) == len(resources["Observation"])


def test_generate_hospital_observation_codes_and_units_follow_reference(
    resources: dict[str, list[dict[str, Any]]],
) -> None:
    seen: Counter[str] = Counter()
    for obs in resources["Observation"]:
        coding = obs["code"]["coding"][0]
        assert coding["system"] == "http://loinc.org"
        category = obs["category"][0]["coding"][0]
        assert category["system"].endswith("/observation-category")
        assert category["code"] in {"vital-signs", "laboratory"}
        code = coding["code"]
        seen[code] += 1
        if code == "85354-9":
            assert "valueQuantity" not in obs
            if "dataAbsentReason" not in obs:
                comps = obs["component"]
                assert [c["code"]["coding"][0]["code"] for c in comps] == ["8480-6", "8462-4"]
                assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in comps)
                assert comps[0]["valueQuantity"]["value"] > comps[1]["valueQuantity"]["value"]
            continue
        assert code in REFERENCE_UNITS, code
        if "valueQuantity" in obs:
            q = obs["valueQuantity"]
            assert q["system"] == "http://unitsofmeasure.org"
            assert q["code"] in REFERENCE_UNITS[code]
    assert set(seen) == set(REFERENCE_UNITS) | {"85354-9"}
    # Vitals every few hours, labs about daily: vitals clearly dominate.
    assert seen["8867-4"] > 3 * seen["6690-2"]


def test_generate_hospital_alternative_units_and_missing_values(
    resources: dict[str, list[dict[str, Any]]],
) -> None:
    units: dict[str, Counter[str]] = {}
    absent = 0
    for obs in resources["Observation"]:
        q = quantity(obs)
        if q is None:
            assert "dataAbsentReason" in obs
            assert "component" not in obs
            absent += 1
            continue
        value, unit = q
        units.setdefault(code_of(obs), Counter())[unit] += 1
        if unit == "[degF]":
            assert 91.0 < value < 109.0
        if unit == "Cel":
            assert 33.0 <= value <= 42.5
    temp = units["8310-5"]
    assert 0.05 < temp["[degF]"] / sum(temp.values()) < 0.30
    lactate = units["2524-7"] + units["32693-4"]
    assert 0.05 < lactate["mg/dL"] / sum(lactate.values()) < 0.40
    assert units["2160-0"]["umol/L"] > 0
    assert 0 < absent / len(resources["Observation"]) < 0.03


def _age_years(birth: date, at: date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def test_generate_hospital_patients_carry_synthetic_phi(
    resources: dict[str, list[dict[str, Any]]],
) -> None:
    patients = resources["Patient"]
    first_stay: dict[str, date] = {}
    for enc in resources["Encounter"]:
        pid = enc["subject"]["reference"].removeprefix("Patient/")
        day = ts(enc["period"]["start"]).date()
        first_stay[pid] = min(day, first_stay.get(pid, day))
    ages = [_age_years(date.fromisoformat(p["birthDate"]), first_stay[p["id"]]) for p in patients]
    assert min(ages) >= 18
    assert 0 < sum(a >= 90 for a in ages) / len(ages) < 0.08
    zips = [p["address"][0]["postalCode"] for p in patients]
    assert all(re.fullmatch(r"\d{5}", z) for z in zips)
    assert 0 < sum(z[:3] in RESTRICTED_ZIP3 for z in zips) / len(zips) < 0.08
    mrns, ssns = [], []
    for p in patients:
        ext = {e["url"].rsplit("/", 1)[1]: e for e in p["extension"]}
        assert set(ext) == {"us-core-race", "us-core-ethnicity", "us-core-birthsex"}
        assert ext["us-core-birthsex"]["valueCode"] == {"female": "F", "male": "M"}[p["gender"]]
        omb = ext["us-core-race"]["extension"][0]
        assert omb["url"] == "ombCategory"
        assert omb["valueCoding"]["code"] in {"2106-3", "2054-5", "2028-9", "1002-5", "2076-8",
                                              "UNK"}  # fmt: skip
        name = p["name"][0]
        assert name["family"] and name["given"]
        address = p["address"][0]
        assert address["line"][0] and address["city"] and len(address["state"]) == 2
        phones = [t["value"] for t in p["telecom"] if t["system"] == "phone"]
        assert phones and all(re.fullmatch(r"\d{3}-555-01\d{2}", v) for v in phones)
        for t in p["telecom"]:
            if t["system"] == "email":
                assert t["value"].endswith("@example.com")
        ids = {i["type"]["coding"][0]["code"]: i["value"] for i in p["identifier"]}
        assert re.fullmatch(r"9\d{2}-\d{2}-\d{4}", ids["SS"])
        mrns.append(ids["MR"])
        ssns.append(ids["SS"])
    assert len(set(mrns)) == len(mrns) and len(set(ssns)) == len(ssns)
    races = Counter(
        e["extension"][0]["valueCoding"]["code"]
        for p in patients
        for e in p["extension"]
        if e["url"].endswith("us-core-race")
    )
    assert len(races) >= 4


def _window_extreme(obs: pd.DataFrame, loinc: str, times: pd.Series, how: str) -> float:
    """Return the mean over encounters of the max/min value in the 6 h before each time."""
    sel = obs[obs["code"] == loinc].join(times.rename("at"), on="encounter", how="inner")
    sel = sel[(sel["time"] < sel["at"]) & (sel["time"] >= sel["at"] - pd.Timedelta(hours=6))]
    return float(sel.groupby("encounter")["value"].agg(how).mean())


def test_generate_hospital_pre_onset_physiology_differs_from_non_sepsis(frames: Frames) -> None:
    enc = frames.encounters.set_index("encounter")
    onsets = frames.onsets
    assert len(onsets) >= 40
    others = enc[(enc["class"] == "IMP") & ~enc.index.isin(onsets.index)]
    fraction = np.random.default_rng(0).uniform(0.2, 0.8, len(others))
    reference = others["start"] + (others["end"] - others["start"]) * fraction
    obs = frames.observations
    assert _window_extreme(obs, "8867-4", onsets, "max") > (
        _window_extreme(obs, "8867-4", reference, "max") + 12
    )
    assert _window_extreme(obs, "9279-1", onsets, "max") > (
        _window_extreme(obs, "9279-1", reference, "max") + 3
    )
    # Falling blood pressure: the lowest systolic value before onset is lower.
    assert _window_extreme(obs, "85354-9", onsets, "min") < (
        _window_extreme(obs, "85354-9", reference, "min") - 10
    )


def _lines_before_drift(folder: Path, resource_type: str) -> set[bytes]:
    """Return the lines of resources whose encounter starts before the drift date."""
    starts = {e["id"]: e["period"]["start"] for e in read(folder, "Encounter")}
    before = set()
    for line in read_lines(folder, resource_type):
        ref = orjson.loads(line).get("encounter", {}).get("reference")
        if ref is not None and starts[ref.removeprefix("Encounter/")] < DRIFT_START_ISO:
            before.add(line)
    return before


def test_drift_lab_assay_change_scales_lactate_only_after_start(
    tmp_path: Path, small_baseline: Path
) -> None:
    drift = DriftScenario(kind=DriftKind.LAB_ASSAY_CHANGE, starts=DRIFT_START, magnitude=0.5)
    generate_hospital(tmp_path, admissions=400, start=START, end=END, seed=3, drift=drift)
    base_lines = read_lines(small_baseline, "Observation")
    drift_lines = read_lines(tmp_path, "Observation")
    assert drift_lines and len(drift_lines) == len(base_lines)
    ratios_after = []
    for line, base_line in zip(drift_lines, base_lines, strict=True):
        if line == base_line:
            continue
        obs, ref = orjson.loads(line), orjson.loads(base_line)
        assert obs["id"] == ref["id"]
        assert code_of(obs) in {"2524-7", "32693-4"}
        assert obs["effectiveDateTime"] >= DRIFT_START_ISO
        ratios_after.append(obs["valueQuantity"]["value"] / ref["valueQuantity"]["value"])
    lactate_after = [
        o
        for o in map(orjson.loads, (b for b in base_lines if b'"2524-7"' in b or b'"32693-4"' in b))
        if o["effectiveDateTime"] >= DRIFT_START_ISO and "valueQuantity" in o
    ]
    assert len(ratios_after) > 30
    assert len(ratios_after) >= 0.9 * len(lactate_after)
    assert 1.4 < float(np.mean(ratios_after)) < 1.6
    for rt in ("Patient", "Encounter", "Condition"):
        assert read_lines(tmp_path, rt) == read_lines(small_baseline, rt)
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert manifest["extension"]["drift"]["kind"] == "lab_assay_change"


def test_drift_population_shift_changes_only_later_admissions(
    tmp_path: Path, small_baseline: Path, baseline_frames: Frames
) -> None:
    drift = DriftScenario(kind=DriftKind.POPULATION_SHIFT, starts=DRIFT_START, magnitude=1.0)
    generate_hospital(tmp_path, admissions=400, start=START, end=END, seed=3, drift=drift)
    shifted = to_frames({rt: read(tmp_path, rt) for rt in RESOURCE_TYPES})
    assert shifted.encounters["start"].equals(baseline_frames.encounters["start"])
    for rt in ("Observation", "Condition"):
        assert _lines_before_drift(tmp_path, rt) == _lines_before_drift(small_baseline, rt), rt

    def mean_age_after(folder: Path) -> float:
        births = {p["id"]: date.fromisoformat(p["birthDate"]) for p in read(folder, "Patient")}
        ages = [
            _age_years(births[e["subject"]["reference"][8:]], ts(e["period"]["start"]).date())
            for e in read(folder, "Encounter")
            if e["period"]["start"] >= DRIFT_START_ISO
        ]
        return float(np.mean(ages))

    assert mean_age_after(tmp_path) > mean_age_after(small_baseline) + 5
    assert (shifted.onsets >= DRIFT_START_TS).sum() > (
        baseline_frames.onsets >= DRIFT_START_TS
    ).sum()


def test_drift_respiratory_pandemic_changes_only_later_admissions(
    tmp_path: Path, small_baseline: Path, baseline_frames: Frames
) -> None:
    drift = DriftScenario(kind=DriftKind.RESPIRATORY_PANDEMIC, starts=DRIFT_START, magnitude=0.5)
    generate_hospital(tmp_path, admissions=400, start=START, end=END, seed=3, drift=drift)
    assert _lines_before_drift(tmp_path, "Observation") == _lines_before_drift(
        small_baseline, "Observation"
    )
    conditions = read(tmp_path, "Condition")
    viral = [c for c in conditions if code_of(c) == "75570004"]
    assert viral
    assert all(c["onsetDateTime"] >= DRIFT_START_ISO for c in viral)
    base_conditions = read(small_baseline, "Condition")
    assert not [c for c in base_conditions if code_of(c) == "75570004"]
    # Sepsis labels are untouched: the respiratory pattern is unrelated to sepsis.
    assert {c["id"] for c in base_conditions if code_of(c) == SEPSIS} == {
        c["id"] for c in conditions if code_of(c) == SEPSIS
    }
    pandemic = to_frames({"Observation": read(tmp_path, "Observation"), "Encounter": [],
                          "Condition": []})  # fmt: skip
    assert mean_after_drift(pandemic, "9279-1") > mean_after_drift(baseline_frames, "9279-1") + 2
    assert mean_after_drift(pandemic, "59408-5") < (
        mean_after_drift(baseline_frames, "59408-5") - 1.5
    )


def test_generated_hospital_ingests_strictly_with_nothing_quarantined(tmp_path: Path) -> None:
    export = tmp_path / "export"
    summary = generate_hospital(export, admissions=100, start=START, end=END, seed=2)
    report = ingest_ndjson(export, tmp_path / "ingest", strict=True)
    assert report.quarantined == 0
    assert report.read == report.accepted == summary.resources


def test_generate_hospital_reports_progress_per_chunk(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    n = CHUNK_ADMISSIONS + 10
    generate_hospital(
        tmp_path, admissions=n, start=START, end=END, progress=lambda d, t: calls.append((d, t))
    )
    assert len(calls) == math.ceil(n / CHUNK_ADMISSIONS)
    assert calls[-1] == (n, n)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"admissions": 0}, "'admissions' must be a positive integer"),
        ({"admissions": True}, "'admissions' must be a positive integer"),
        ({"end": START}, "must be after 'start'"),
        ({"start": datetime(2024, 1, 1, 12)}, "'start' must be a date"),
        ({"seed": -1}, "'seed' must be a non-negative integer"),
        (
            {"drift": DriftScenario(kind=DriftKind.LAB_ASSAY_CHANGE, starts=date(2025, 1, 1))},
            "outside the generated range",
        ),
        ({"drift": "lab_assay_change"}, "'drift' must be a DriftScenario"),
    ],
)
def test_generate_hospital_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    args: dict[str, Any] = {"admissions": 10, "start": START, "end": END, "seed": 0}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        generate_hospital(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_generate_hospital_rejects_a_file_as_output_folder(tmp_path: Path) -> None:
    target = tmp_path / "export"
    target.write_text("not a folder")
    with pytest.raises(InvalidInput, match="is not a folder"):
        generate_hospital(target, admissions=10, start=START, end=END)


@pytest.mark.parametrize(
    ("kind", "magnitude", "fragment"),
    [
        ("heatwave", 0.3, "Unknown drift kind"),
        ("lab_assay_change", -1.0, "out of range"),
        ("lab_assay_change", 0.0, "out of range"),
        ("respiratory_pandemic", 1.5, "out of range"),
        ("population_shift", float("nan"), "finite number"),
    ],
)
def test_drift_scenario_rejects_bad_values(kind: str, magnitude: float, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        DriftScenario(kind=kind, starts=DRIFT_START, magnitude=magnitude)  # type: ignore[arg-type]


def test_drift_scenario_rejects_datetime_start() -> None:
    with pytest.raises(InvalidInput, match="must be a date"):
        DriftScenario(kind=DriftKind.POPULATION_SHIFT, starts=datetime(2024, 4, 1))
