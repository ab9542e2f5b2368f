"""Turn a chunk's column arrays into FHIR R4 NDJSON bytes.

Patients, Encounters and Conditions are built as dicts and serialised with orjson. Observations
(about 95 % of the volume) use line templates whose constant parts were serialised once with
orjson; only ids, times and numbers are substituted per line, which keeps 50,000 admissions in
the range of a minute. All substituted values are ids, ISO timestamps and numbers produced here,
so no JSON escaping is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from bedside.ingest.synthetic import codes, names
from bedside.ingest.synthetic.cohort import HOUR, MINUTE, Cohort
from bedside.ingest.synthetic.noise import KeyedRandom, keyed_uuids
from bedside.ingest.synthetic.physiology import DBP, SBP, ObservationRows

I64 = npt.NDArray[np.int64]

HOSPITAL = "Bedside General Hospital"
MRN_SYSTEM = "https://bedside-general.example.org/fhir/sid/mrn"
VISIT_SYSTEM = "https://bedside-general.example.org/fhir/sid/visit"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"

# Keyed-random streams for ids and documentation delays (distinct from physiology's streams).
_S_PATIENT_ID, _S_ENCOUNTER_ID, _S_OBSERVATION_ID = 101, 102, 103
_S_CHRONIC_ID, _S_CONDITION_ID, _S_RECORDED = 104, 105, 106


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode("utf-8")


def iso_times(seconds: I64) -> list[str]:
    """Format seconds since epoch as FHIR dateTime strings in UTC (``...Z``)."""
    arr = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]")
    out: list[str] = np.datetime_as_string(arr, unit="s", timezone="UTC").tolist()
    return out


def iso_dates(days: I64) -> list[str]:
    """Format days since epoch as FHIR date strings."""
    arr = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    out: list[str] = np.datetime_as_string(arr).tolist()
    return out


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": display}


# --- Observation templates ----------------------------------------------------------------


def _quantity(value_fmt: str, unit: codes.UnitVariant) -> str:
    tail = _dumps({"unit": unit.display, "system": codes.UCUM, "code": unit.ucum})
    return '{"value":' + value_fmt + "," + tail[1:].replace("%", "%%")


def _observation_template(analyte: int, code_v: int, unit_v: int, absent: bool) -> str:
    spec = codes.ANALYTES[analyte]
    code = spec.codes[code_v]
    is_panel = analyte == SBP
    if is_panel:
        category = "vital-signs"
        code_json = _concept(codes.LOINC, codes.BP_PANEL_CODE, "Blood pressure panel")
    else:
        category = code.category
        code_json = _concept(codes.LOINC, code.loinc, code.display)
    cat_display = "Vital Signs" if category == "vital-signs" else "Laboratory"
    head = _dumps(
        {
            "category": [{"coding": [_coding(codes.OBSERVATION_CATEGORY, category, cat_display)]}],
            "code": code_json,
        }
    )[1:-1].replace("%", "%%")
    prefix = (
        '{"resourceType":"Observation","id":"%s","status":"final",'
        + head
        + ',"subject":{"reference":"Patient/%s"},"encounter":{"reference":"Encounter/%s"},'
        + '"effectiveDateTime":"%s",'
    )
    if absent:
        reason = (
            ("not-performed", "Not Performed") if category == "vital-signs" else ("error", "Error")
        )
        body = _dumps({"dataAbsentReason": _concept(codes.DATA_ABSENT_REASON, *reason)})[1:]
        return prefix + body.replace("%", "%%") + "%.0s%.0s"
    unit = spec.units[unit_v]
    fmt = f"%.{unit.decimals}f"
    if not is_panel:
        return prefix + '"valueQuantity":' + _quantity(fmt, unit) + "}%.0s"
    parts = []
    for a in (SBP, DBP):
        s = codes.ANALYTES[a]
        c = _dumps({"code": _concept(codes.LOINC, s.codes[0].loinc, s.codes[0].display)})[1:-1]
        parts.append("{" + c + ',"valueQuantity":' + _quantity(fmt, s.units[0]) + "}")
    return prefix + '"component":[' + ",".join(parts) + "]}"


def _build_templates() -> dict[tuple[int, int, int, bool], str]:
    out: dict[tuple[int, int, int, bool], str] = {}
    for i, spec in enumerate(codes.ANALYTES):
        if i == DBP:
            continue  # reported inside the blood-pressure panel
        for cv in range(len(spec.codes)):
            for uv in range(len(spec.units)):
                for absent in (False, True):
                    out[(i, cv, uv, absent)] = _observation_template(i, cv, uv, absent)
    return out


OBSERVATION_TEMPLATES = _build_templates()
_TEMPLATE_KEYS = list(OBSERVATION_TEMPLATES)
_TEMPLATE_LIST = [OBSERVATION_TEMPLATES[k] for k in _TEMPLATE_KEYS]
_TEMPLATE_ID = np.full((len(codes.ANALYTES), 2, 2, 2), -1, dtype=np.int64)
for _n, (_a, _cv, _uv, _ab) in enumerate(_TEMPLATE_KEYS):
    _TEMPLATE_ID[_a, _cv, _uv, int(_ab)] = _n


def render_observations(
    rows: ObservationRows,
    c: Cohort,
    r: KeyedRandom,
    patient_ids: list[str],
    encounter_ids: list[str],
) -> bytes:
    """Return the NDJSON bytes of every Observation row."""
    n = len(rows)
    if n == 0:
        return b""
    counts = np.bincount(rows.admission, minlength=c.n_admissions).astype(np.int64)
    offsets = np.zeros(c.n_admissions, dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    rank = np.arange(n, dtype=np.int64) - offsets[rows.admission]
    ids = keyed_uuids(r, _S_OBSERVATION_ID, c.a_global[rows.admission], rank)
    tid = _TEMPLATE_ID[rows.analyte, rows.code_variant, rows.unit_variant, rows.absent.astype(int)]
    pids = np.asarray(patient_ids, dtype=object)[c.a_patient[rows.admission]].tolist()
    eids = np.asarray(encounter_ids, dtype=object)[rows.admission].tolist()
    times = iso_times(rows.time)
    templates = _TEMPLATE_LIST
    lines = [
        templates[t] % (i, p, e, ts, v, v2)
        for t, i, p, e, ts, v, v2 in zip(
            tid.tolist(),
            ids,
            pids,
            eids,
            times,
            rows.value.tolist(),
            rows.value2.tolist(),
            strict=True,
        )
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- Patients -----------------------------------------------------------------------------


def _race_extension(url: str, table: tuple[tuple[str, str, str, float], ...], i: int) -> Any:
    system, code, display, _ = table[i]
    return {
        "url": url,
        "extension": [
            {"url": "ombCategory", "valueCoding": _coding(system, code, display)},
            {"url": "text", "valueString": display},
        ],
    }


_RACE_EXT = [
    _race_extension(codes.US_CORE + "/us-core-race", codes.RACES, i)
    for i in range(len(codes.RACES))
]
_ETHNICITY_EXT = [
    _race_extension(codes.US_CORE + "/us-core-ethnicity", codes.ETHNICITIES, i)
    for i in range(len(codes.ETHNICITIES))
]
_MR_TYPE = _concept(codes.IDENTIFIER_TYPE, "MR", "Medical Record Number")
_SS_TYPE = _concept(codes.IDENTIFIER_TYPE, "SS", "Social Security Number")
_VN_TYPE = _concept(codes.IDENTIFIER_TYPE, "VN", "Visit number")


def _permute(index: I64, multiplier: int, offset: int, modulus: int) -> I64:
    """Return a bijection of ``index`` onto ``[0, modulus)`` (multiplier coprime to modulus)."""
    return (index.astype(np.int64) * multiplier + offset) % modulus


def patient_identifiers(global_index: I64, seed: int) -> tuple[list[str], list[str]]:
    """Return (MRN, SSN) strings for patients; unique per patient within one seed."""
    mrn = _permute(global_index, 48271, 1_000_003 + (seed % 9973) * 7919, 10**8)
    ssn = _permute(global_index, 7_654_321, 4_242_421 + (seed % 9967) * 104_729, 10**8)
    mrns = [f"{v:08d}" for v in mrn.tolist()]
    ssns = [f"9{v // 10**6:02d}-{v // 10**4 % 100:02d}-{v % 10**4:04d}" for v in ssn.tolist()]
    return mrns, ssns


def render_patients(c: Cohort, patient_ids: list[str], seed: int) -> bytes:
    """Return the NDJSON bytes of the chunk's Patients."""
    mrns, ssns = patient_identifiers(c.p_global, seed)
    births = iso_dates(c.p_birth_day)
    deceased = iso_times(np.maximum(c.p_deceased, 0))
    lines: list[bytes] = []
    for i in range(c.n_patients):
        female = bool(c.p_female[i])
        given_list = names.GIVEN_FEMALE if female else names.GIVEN_MALE
        given = [given_list[int(c.p_given[i])]]
        if c.p_middle[i] >= 0:
            given.append(given_list[int(c.p_middle[i])])
        family = names.FAMILY[int(c.p_family[i])]
        city, state, zip3, area, _ = names.PLACES[int(c.p_place[i])]
        telecom: list[dict[str, str]] = [
            {"system": "phone", "value": f"{area}-555-01{int(c.p_phone[i]):02d}", "use": "home"}
        ]
        if c.p_email[i]:
            local = f"{given[0]}.{family}{int(c.p_house[i]) % 100}".lower().replace("'", "")
            telecom.append({"system": "email", "value": f"{local}@example.com", "use": "home"})
        street = f"{names.STREETS[int(c.p_street[i])]} {names.STREET_SUFFIXES[int(c.p_suffix[i])]}"
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": patient_ids[i],
            "meta": {"profile": [codes.US_CORE + "/us-core-patient"]},
            "extension": [
                _RACE_EXT[int(c.p_race[i])],
                _ETHNICITY_EXT[int(c.p_ethnicity[i])],
                {"url": codes.US_CORE + "/us-core-birthsex", "valueCode": "F" if female else "M"},
            ],
            "identifier": [
                {"use": "usual", "type": _MR_TYPE, "system": MRN_SYSTEM, "value": mrns[i]},
                {"use": "official", "type": _SS_TYPE, "system": SSN_SYSTEM, "value": ssns[i]},
            ],
            "active": True,
            "name": [{"use": "official", "family": family, "given": given}],
            "telecom": telecom,
            "gender": "female" if female else "male",
            "birthDate": births[i],
        }
        if c.p_deceased[i] >= 0:
            resource["deceasedDateTime"] = deceased[i]
        resource["address"] = [
            {
                "use": "home",
                "line": [f"{int(c.p_house[i])} {street}"],
                "city": city,
                "state": state,
                "postalCode": f"{zip3}{int(c.p_zip_tail[i]):02d}",
                "country": "US",
            }
        ]
        lines.append(orjson.dumps(resource))
    return b"\n".join(lines) + b"\n" if lines else b""


# --- Encounters ---------------------------------------------------------------------------

_CLASS = {
    True: _coding(codes.ACT_CODE, "IMP", "inpatient encounter"),
    False: _coding(codes.ACT_CODE, "EMER", "emergency"),
}
_TYPE = {
    True: [_concept(codes.SNOMED, "32485007", "Hospital admission (procedure)")],
    False: [_concept(codes.SNOMED, "50849002", "Emergency room admission (procedure)")],
}
_DISPOSITION = [
    {"dischargeDisposition": _concept(codes.DISCHARGE_DISPOSITION, code, display)}
    for code, display in (("home", "Home"), ("snf", "Skilled nursing facility"), ("exp", "Expired"))
]


def render_encounters(c: Cohort, patient_ids: list[str], encounter_ids: list[str]) -> bytes:
    """Return the NDJSON bytes of the chunk's Encounters."""
    starts = iso_times(c.a_start)
    ends = iso_times(c.a_end)
    lines: list[bytes] = []
    for i in range(c.n_admissions):
        imp = bool(c.a_inpatient[i])
        resource = {
            "resourceType": "Encounter",
            "id": encounter_ids[i],
            "identifier": [
                {
                    "use": "official",
                    "type": _VN_TYPE,
                    "system": VISIT_SYSTEM,
                    "value": f"V{int(c.a_global[i]) + 10_000_001:09d}",
                }
            ],
            "status": "finished",
            "class": _CLASS[imp],
            "type": _TYPE[imp],
            "subject": {"reference": f"Patient/{patient_ids[int(c.a_patient[i])]}"},
            "period": {"start": starts[i], "end": ends[i]},
            "hospitalization": _DISPOSITION[int(c.a_disposition[i])],
            "serviceProvider": {"display": HOSPITAL},
        }
        lines.append(orjson.dumps(resource))
    return b"\n".join(lines) + b"\n" if lines else b""


# --- Conditions ---------------------------------------------------------------------------

_ACTIVE = _concept(codes.CONDITION_CLINICAL, "active", "Active")
_CONFIRMED = _concept(codes.CONDITION_VER_STATUS, "confirmed", "Confirmed")
_PROBLEM = [_concept(codes.CONDITION_CATEGORY, "problem-list-item", "Problem List Item")]
_ENCOUNTER_DX = [_concept(codes.CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")]


def _condition(
    cid: str, concept: codes.Concept, category: Any, pid: str, onset: str, recorded: str
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _ACTIVE,
        "verificationStatus": _CONFIRMED,
        "category": category,
        "code": _concept(codes.SNOMED, concept.code, concept.display),
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
        "recordedDate": recorded,
    }


def render_conditions(
    c: Cohort, r: KeyedRandom, patient_ids: list[str], encounter_ids: list[str]
) -> tuple[bytes, int]:
    """Return the NDJSON bytes of the chunk's Conditions and how many there are.

    Per patient: chronic problem-list items. Per admission: one admission diagnosis, a
    "Viral pneumonia" under the respiratory-pandemic drift, and the Sepsis Condition whose
    ``onsetDateTime`` is the label time.
    """
    lines: list[bytes] = []
    pi, ci = np.nonzero(c.p_chronic)
    if pi.shape[0]:
        ids = keyed_uuids(r, _S_CHRONIC_ID, c.p_global[pi], ci)
        onsets = iso_times(c.p_chronic_onset[pi, ci])
        for k, (p, j) in enumerate(zip(pi.tolist(), ci.tolist(), strict=True)):
            concept = codes.CHRONIC_CONDITIONS[j][0]
            cond = _condition(ids[k], concept, _PROBLEM, patient_ids[p], onsets[k], onsets[k])
            lines.append(orjson.dumps(cond))

    g = c.a_global
    n = c.n_admissions
    # (admission, slot, concept, onset seconds, recorded seconds)
    adm_rows: list[tuple[int, int, codes.Concept, int, int]] = []
    delay_dx = r.uniform(_S_RECORDED, g, 0) * 3.5 * HOUR + 30 * MINUTE
    delay_sepsis = r.uniform(_S_RECORDED, g, 1) * 11 * HOUR + HOUR
    for i in range(n):
        start, end = int(c.a_start[i]), int(c.a_end[i])
        table = codes.INFECTIOUS_DIAGNOSES if c.a_diagnosis_infectious[i] else codes.OTHER_DIAGNOSES
        recorded = min(start + int(delay_dx[i]), end)
        adm_rows.append((i, 0, table[int(c.a_diagnosis[i])], start, recorded))
        if c.a_viral[i]:
            adm_rows.append((i, 2, codes.VIRAL_PNEUMONIA, start, recorded))
        if c.a_sepsis[i]:
            onset = int(c.a_onset[i])
            adm_rows.append((i, 1, codes.SEPSIS, onset, min(onset + int(delay_sepsis[i]), end)))
    if adm_rows:
        adm = np.array([row[0] for row in adm_rows], dtype=np.int64)
        slot = np.array([row[1] for row in adm_rows], dtype=np.int64)
        ids = keyed_uuids(r, _S_CONDITION_ID, g[adm], slot)
        onsets = iso_times(np.array([row[3] for row in adm_rows], dtype=np.int64))
        recs = iso_times(np.array([row[4] for row in adm_rows], dtype=np.int64))
        for k, (i, _, concept, _, _) in enumerate(adm_rows):
            pid = patient_ids[int(c.a_patient[i])]
            cond = _condition(ids[k], concept, _ENCOUNTER_DX, pid, onsets[k], recs[k])
            cond["encounter"] = {"reference": f"Encounter/{encounter_ids[i]}"}
            lines.append(orjson.dumps(cond))
    data = b"\n".join(lines) + b"\n" if lines else b""
    return data, len(lines)


def entity_ids(c: Cohort, r: KeyedRandom) -> tuple[list[str], list[str]]:
    """Return (patient ids, encounter ids) of the chunk."""
    pids = keyed_uuids(r, _S_PATIENT_ID, c.p_global, 0)
    eids = keyed_uuids(r, _S_ENCOUNTER_ID, c.a_global, 0)
    return pids, eids
