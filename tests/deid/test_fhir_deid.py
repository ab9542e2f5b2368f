"""FHIR de-identification on the Synthea sample: no PHI survives (byte search), joins survive."""

from __future__ import annotations

import copy
import re
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.deid.fhir import FhirDeidentifier, deidentify_resources
from bedside.deid.fhir_rules import SAFE_STRING_FIELDS
from bedside.domain.deid import Action, Category, DeidPolicy, pseudonym
from bedside.errors import InvalidInput

SYNTHEA = Path(__file__).resolve().parents[1] / "data" / "synthea-10-patients"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
AS_OF = date(2026, 1, 1)
YEAR_ONLY = DeidPolicy()
SHIFTED = DeidPolicy(date_shift_days=50, identifiers="pseudonymise")
POLICIES = pytest.mark.parametrize("policy", [YEAR_ONLY, SHIFTED], ids=["year-only", "shifted"])

needs_synthea = pytest.mark.skipif(
    not SYNTHEA.is_dir(), reason=f"Synthea sample not present at {SYNTHEA}"
)
_HEX64 = re.compile(rb"[0-9a-f]{64}")


def _synthea() -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted(SYNTHEA.glob("*.ndjson"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


@pytest.fixture(scope="module")
def synthea() -> list[dict[str, Any]]:
    return _synthea()


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, path + "[]")
    else:
        yield path, value


def _reference_parts(value: Any, needles: set[str]) -> None:
    """Collect Reference displays (names of people and places) and reference targets."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            needles.add(re.split(r"[/|]", value["reference"])[-1])  # the id or identifier value
            if "display" in value:
                needles.add(value["display"])
        for v in value.values():
            _reference_parts(v, needles)
    elif isinstance(value, list):
        for v in value:
            _reference_parts(v, needles)


def phi_of(resources: list[dict[str, Any]]) -> set[str]:
    """Collect every identifying string of the input: the needles for the byte search."""
    needles: set[str] = set()
    for r in resources:
        needles.add(r["id"])
        _reference_parts(r, needles)
        needles.update(ident["value"] for ident in r.get("identifier", []))
        if r["resourceType"] != "Patient":
            continue
        for ident in r["identifier"]:
            needles.add(re.sub(r"\W", "", ident["value"]))  # an SSN without its dashes…
        needles.add(r["birthDate"])
        for name in r.get("name", []):
            given = name.get("given", [])
            needles.update([*given, name["family"], " ".join([*given, name["family"]])])
        for point in r.get("telecom", []):
            needles.update([point["value"], re.sub(r"\D", "", point["value"])])
        for address in r.get("address", []):
            needles.update([*address["line"], address["city"], address["postalCode"]])
            for ext in address.get("extension", []):
                needles.update(repr(part["valueDecimal"]) for part in ext["extension"])
        for ext in r.get("extension", []):
            if ext["url"].endswith("mothersMaidenName"):
                needles.update([ext["valueString"], *ext["valueString"].split()])
            if ext["url"].endswith("birthPlace"):
                needles.add(ext["valueAddress"]["city"])
        div = r["text"]["div"]
        needles.add(div)
        needles.update(re.findall(r"\d{6,}", div))  # Synthea's person seed
    return {n for n in needles if len(n) >= 3}


def _search(output: list[dict[str, Any]], needles: set[str]) -> list[str]:
    # Pseudonyms are HMAC-SHA256 hex: by chance one can contain a short digit string such as a
    # ZIP code, so they are masked before searching (they carry no input bytes).
    blob = _HEX64.sub(b"<pseudonym>", b"\n".join(orjson.dumps(r) for r in output))
    return sorted(n for n in needles if orjson.dumps(n)[1:-1] in blob)


@needs_synthea
@POLICIES
def test_no_phi_from_the_input_survives_anywhere_in_the_output(
    synthea: list[dict[str, Any]], policy: DeidPolicy
) -> None:
    needles = phi_of(synthea)
    # The needles are real: names, SSNs, phones, streets, cities, ZIPs, birth dates, ids.
    for known in ("999-94-5397", "555-810-7203", "633 Abernathy Landing", "Emporia", "66801"):
        assert known in needles
    assert "1927-05-21" in needles and "Medhurst46" in needles and "999945397" in needles
    assert len(needles) > 2000
    output, report = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    assert len(output) == len(synthea) == sum(report.records.values())
    assert _search(output, needles) == []
    # …and the search does find them in the input (it is not blind); the rest are derived
    # forms (an id, SSN or phone without separators, a full name) the input does not spell.
    found = set(_search(synthea, needles))
    assert len(found) > 2000
    derived = needles - found
    assert all(re.fullmatch(r"[0-9a-f]+|\S+( \S+)+", n) for n in derived), sorted(derived)[:5]


@needs_synthea
@POLICIES
def test_the_report_holds_counts_only(synthea: list[dict[str, Any]], policy: DeidPolicy) -> None:
    _, report = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    blob = orjson.dumps(report.to_dict())
    assert _search([{"r": report.to_dict()}], phi_of(synthea)) == []
    assert KEY.hex().encode() not in blob
    assert report.to_dict()["policy_hash"] == policy.policy_hash
    assert report.total(Category.NAMES, Action.REMOVED) >= 20  # 13 patients, 7 maiden names…
    assert report.total(Category.SSN, Action.REMOVED) == 13
    assert report.total(Category.PHONE, Action.REMOVED) == 13
    assert report.total(Category.GEOGRAPHY, Action.GENERALISED) == 13  # one ZIP3 per patient


def _index(resources: list[dict[str, Any]]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        ids[r["resourceType"]].add(r["id"])
    return ids


def _links(resources: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Return (resource id, field, target "Type/id") for every literal reference."""
    links = []
    for r in resources:
        for name in ("subject", "patient", "encounter"):
            ref = r.get(name, {}).get("reference")
            if ref:
                links.append((r["id"], name, ref))
    return links


@needs_synthea
@POLICIES
def test_references_still_join_across_resource_types(
    synthea: list[dict[str, Any]], policy: DeidPolicy
) -> None:
    output, _ = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    ids = _index(output)
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for ids_ in ids.values() for i in ids_)
    links = _links(output)
    assert len(links) == len(_links(synthea)) > 2000
    for _, _, target in links:
        rtype, rid = target.split("/")
        assert rid in ids[rtype], f"dangling {rtype} reference"
    # The joins are the same joins: pseudonymising the input's links gives the output's.
    expected = [
        (pseudonym(KEY, rid), name, f"{t.split('/')[0]}/{pseudonym(KEY, t.split('/')[1])}")
        for rid, name, t in _links(synthea)
    ]
    assert links == expected


@needs_synthea
def test_conditional_references_use_the_identifier_pseudonyms(
    synthea: list[dict[str, Any]],
) -> None:
    encounter = next(r for r in synthea if r["resourceType"] == "Encounter")
    out = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF).deidentify(encounter)
    ref = encounter["participant"][0]["individual"]["reference"]
    system, value = ref.split("=", 1)[1].split("|")
    expected = pseudonym(KEY, f"{system}|{value}", namespace="identifier")
    assert out["participant"][0]["individual"] == {
        "reference": f"Practitioner?identifier={system}|{expected}"
    }


@needs_synthea
@POLICIES
def test_output_is_deterministic_order_independent_and_key_dependent(
    synthea: list[dict[str, Any]], policy: DeidPolicy
) -> None:
    first, _ = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    again, _ = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    backwards, _ = deidentify_resources(synthea[::-1], policy, key=KEY, as_of=AS_OF)
    assert orjson.dumps(first) == orjson.dumps(again)
    assert orjson.dumps(first) == orjson.dumps(backwards[::-1])
    other, _ = deidentify_resources(synthea, policy, key=OTHER_KEY, as_of=AS_OF)
    assert not _index(first)["Patient"] & _index(other)["Patient"]


@needs_synthea
@POLICIES
def test_input_is_not_modified(synthea: list[dict[str, Any]], policy: DeidPolicy) -> None:
    before = copy.deepcopy(synthea)
    deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    assert synthea == before


def _containers(value: Any) -> Iterator[int]:
    if isinstance(value, dict | list):
        yield id(value)
        for v in value.values() if isinstance(value, dict) else value:
            yield from _containers(v)


@needs_synthea
@POLICIES
def test_output_shares_no_dict_or_list_with_the_input(
    synthea: list[dict[str, Any]], policy: DeidPolicy
) -> None:
    output, _ = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    inputs = set(_containers(synthea))
    assert not inputs & set(_containers(output))  # editing the output never edits the input


@needs_synthea
@POLICIES
def test_a_second_pass_finds_nothing_left_to_remove(
    synthea: list[dict[str, Any]], policy: DeidPolicy
) -> None:
    once, _ = deidentify_resources(synthea, policy, key=KEY, as_of=AS_OF)
    twice, report = deidentify_resources(once, policy, key=KEY, as_of=AS_OF)
    assert report.total(action=Action.REMOVED) == 0, report.to_dict()["actions"]
    assert report.total(Category.GEOGRAPHY, Action.GENERALISED) == 13  # ZIP3 stays ZIP3
    patients = [r for r in twice if r["resourceType"] == "Patient"]
    assert sorted(p["address"][0]["postalCode"] for p in patients) == sorted(
        p["address"][0]["postalCode"] for p in once if p["resourceType"] == "Patient"
    )


@needs_synthea
def test_year_only_policy_keeps_years_and_removes_instants(synthea: list[dict[str, Any]]) -> None:
    output, _ = deidentify_resources(synthea, YEAR_ONLY, key=KEY, as_of=AS_OF)
    dates = [
        (path, v)
        for r in output
        for path, v in _walk(r)
        if path.endswith(("Date", "DateTime", ".start", ".end", ".birthDate"))
    ]
    assert len(dates) > 5000
    assert all(re.fullmatch(r"\d{4}", v) for _, v in dates)
    # Patients born in 1927 are 98 at AS_OF: their birth year goes too; the others keep it.
    patients = {r["id"]: r for r in synthea if r["resourceType"] == "Patient"}
    for r in output:
        if r["resourceType"] == "Patient":
            born = next(p for k, p in patients.items() if pseudonym(KEY, k) == r["id"])
            if born["birthDate"] < "1936":
                assert "birthDate" not in r
            else:
                assert r["birthDate"] == born["birthDate"][:4]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@needs_synthea
def test_shifted_dates_move_each_patient_by_one_offset(synthea: list[dict[str, Any]]) -> None:
    output, _ = deidentify_resources(synthea, SHIFTED, key=KEY, as_of=AS_OF)
    offsets: dict[str, set[int]] = defaultdict(set)
    durations = 0
    for before, after in zip(synthea, output, strict=True):
        if before["resourceType"] != "Encounter":
            continue
        start, end = before["period"]["start"], before["period"]["end"]
        new_start, new_end = after["period"]["start"], after["period"]["end"]
        assert new_start[10:] == start[10:]  # time of day and zone kept
        offsets[before["subject"]["reference"]].add((_parse(new_start) - _parse(start)).days)
        assert _parse(new_end) - _parse(new_start) == _parse(end) - _parse(start)
        durations += 1
    assert durations == 1215
    for per_patient in offsets.values():
        assert len(per_patient) == 1  # consistent within a patient
        (offset,) = per_patient
        assert 1 <= abs(offset) <= 50
    assert len({o for s in offsets.values() for o in s}) > 1  # not one global shift
    # Conditions of a patient move by the same offset as the patient's encounters.
    for before, after in zip(synthea, output, strict=True):
        if before["resourceType"] == "Condition":
            moved = (_parse(after["onsetDateTime"]) - _parse(before["onsetDateTime"])).days
            assert offsets[before["subject"]["reference"]] == {moved}


def _patient(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "pat-1",
        "birthDate": "1990-07-04",
        "address": [{"line": ["1 Main St"], "city": "Charlestown", "postalCode": "03603"}],
    }
    base.update(extra)
    return base


def test_restricted_zip_prefix_becomes_000() -> None:
    out = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF).deidentify(_patient())
    assert out["address"] == [{"postalCode": "000"}]
    assert out["birthDate"] == "1990"


def test_identifiers_removed_or_pseudonymised_per_policy() -> None:
    identifiers = [
        {"type": {"coding": [{"code": "MR"}]}, "system": "urn:mrn", "value": "00123456"},
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"},
        {"type": {"coding": [{"code": "DL"}]}, "value": "S99940903"},
        {"system": "http://example.org/passportNumber", "value": "X53631011X"},
        {"type": {"coding": [{"code": "MB"}]}, "value": "HP-77"},
    ]
    patient = _patient(identifier=identifiers)
    removed = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF)
    assert "identifier" not in removed.deidentify(patient)
    assert removed.report.total(Category.MEDICAL_RECORD, Action.REMOVED) == 1
    assert removed.report.total(Category.LICENSE, Action.REMOVED) == 2
    kept = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF)
    out = kept.deidentify(patient)
    assert out["identifier"] == [
        {
            "type": {"coding": [{"code": "MR"}]},
            "system": "urn:mrn",
            "value": pseudonym(KEY, "urn:mrn|00123456", namespace="identifier"),
        }
    ]
    assert kept.report.total(Category.SSN, Action.REMOVED) == 1
    assert kept.report.total(Category.HEALTH_PLAN, Action.REMOVED) == 1


def test_free_text_narrative_notes_and_unknown_fields_are_removed() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "obs-1",
        "text": {"status": "generated", "div": "<div>Jane Roe, 555-0101</div>"},
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "text": "HR taken by Jane Roe at home",
        },
        "subject": {"reference": "Patient/pat-1", "display": "Jane Roe"},
        "performer": [{"reference": "Practitioner/pr-9", "display": "Dr John Doe"}],
        "effectiveDateTime": "2024-03-01T10:15:00Z",
        "issued": "2024-03-01T10:20:00.000Z",
        "valueQuantity": {"value": 112, "unit": "/min", "system": "http://unitsofmeasure.org"},
        "note": [{"text": "Patient's husband Bob called from 555-0199"}],
        "component": [{"code": {"coding": [{"code": "x"}]}, "valueString": "Jane said hi"}],
        "comment": "Jane Roe",
        "lotNumber": "LOT-123-JR",
        "device": {"identifier": {"system": "urn:udi", "value": "(01)0884"}},
        "extension": [{"url": "http://example.org/secret", "valueString": "Jane"}],
    }
    out = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF).deidentify(observation)
    blob = orjson.dumps(out)
    for secret in (b"Jane", b"Roe", b"555-01", b"Bob", b"John", b"LOT-123", b"0884", b"pat-1"):
        assert secret not in blob
    assert out["code"] == {
        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
    }
    assert out["valueQuantity"] == observation["valueQuantity"]
    assert out["effectiveDateTime"] == "2024" and "issued" not in out
    assert out["subject"] == {"reference": f"Patient/{pseudonym(KEY, 'pat-1')}"}
    assert set(out) == {
        "resourceType", "id", "status", "code", "subject", "performer", "effectiveDateTime",
        "valueQuantity", "component",
    }  # fmt: skip


def test_reference_forms_are_pseudonymised_consistently() -> None:
    deid = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF)
    p = pseudonym(KEY, "abc")
    cases = {
        "Patient/abc": f"Patient/{p}",
        "https://ehr.example.org/fhir/Patient/abc": f"Patient/{p}",
        "Patient/abc/_history/3": f"Patient/{p}",
        "#contained-1": "#contained-1",
    }
    for written, expected in cases.items():
        out = deid.deidentify(
            {"resourceType": "Condition", "id": "c", "subject": {"reference": written}}
        )
        assert out["subject"] == {"reference": expected}
    urn = deid.deidentify(
        {"resourceType": "Condition", "id": "c", "subject": {"reference": "urn:uuid:abc"}}
    )
    assert urn["subject"]["reference"] == f"urn:uuid:{uuid.UUID(hex=p[:32])}"
    odd = deid.deidentify(
        {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient?name=Roe"}}
    )
    assert "subject" not in odd  # an unrecognised reference (here a name search) is removed


def test_contained_and_bundle_entries_are_de_identified() -> None:
    bundle = {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:pat-1",
                "resource": _patient(name=[{"family": "Roe", "given": ["Jane"]}]),
            },
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "mr-1",
                    "contained": [
                        {"resourceType": "Medication", "id": "med", "code": {"text": "Jane's mix"}}
                    ],
                    "medicationReference": {"reference": "#med"},
                    "subject": {"reference": "Patient/pat-1"},
                    "authoredOn": "2024-02-02",
                }
            },
        ],
    }
    out = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF).deidentify(bundle)
    blob = orjson.dumps(out)
    assert b"Jane" not in blob and b"Roe" not in blob and b"Main St" not in blob
    patient, request = (e["resource"] for e in out["entry"])
    assert request["subject"]["reference"] == f"Patient/{patient['id']}"
    assert request["contained"][0]["id"] == "med"
    assert request["medicationReference"] == {"reference": "#med"}
    assert request["authoredOn"] != "2024-02-02" and len(request["authoredOn"]) == 10


def test_bad_input_is_refused_without_echoing_it() -> None:
    deid = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF)
    for bad in ({"name": "Jane Roe"}, {"resourceType": "Jane Roe"}, {"resourceType": ["Jane"]}):
        with pytest.raises(InvalidInput, match="resourceType") as info:
            deid.deidentify(bad)
        assert "Jane" not in str(info.value)
    assert deid.report.records == {}
    with pytest.raises(InvalidInput, match="16"):
        FhirDeidentifier(YEAR_ONLY, key=b"short", as_of=AS_OF)


def test_mappings_and_tuples_from_other_parsers_are_filtered_too() -> None:
    patient = MappingProxyType(
        {
            "resourceType": "Patient",
            "id": "pat-1",
            "name": (OrderedDict(family="Roe", given=("Jane",)),),
            "contact": (MappingProxyType({"name": {"family": "Roe"}}),),
            "extension": (
                {"url": "http://example.org/x", "valueString": "Jane"},
                MappingProxyType(
                    {
                        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                        "valueCode": "F",
                    }
                ),
            ),
            "multipleBirthInteger": np.int64(2),
            "maritalStatus": OrderedDict(coding=(OrderedDict(code="M", display="Married"),)),
            "custom": object(),
        }
    )
    out = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF).deidentify(patient)
    assert b"Roe" not in orjson.dumps(out) and b"Jane" not in orjson.dumps(out)
    assert out["multipleBirthInteger"] == 2
    assert out["maritalStatus"] == {"coding": [{"code": "M", "display": "Married"}]}
    assert "custom" not in out


def test_malformed_dates_are_removed_and_only_a_year_is_ever_written() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c",
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": "yesterday at 5",
        "recordedDate": "2020-01-01 Jane Roe",
        "abatementDateTime": "2021-13",
    }
    year = FhirDeidentifier(YEAR_ONLY, key=KEY, as_of=AS_OF).deidentify(condition)
    assert "onsetDateTime" not in year
    assert year["recordedDate"] == "2020" and year["abatementDateTime"] == "2021"
    shifted = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF).deidentify(condition)
    assert "onsetDateTime" not in shifted and "recordedDate" not in shifted
    assert b"Jane" not in orjson.dumps(year) + orjson.dumps(shifted)


_token = st.from_regex(r"[A-Z][a-z]{3,8}[0-9]{3}", fullmatch=True)
_field = st.from_regex(r"[a-z][A-Za-z]{2,12}", fullmatch=True).filter(
    lambda k: k not in SAFE_STRING_FIELDS
)


@given(
    family=_token,
    given_name=_token,
    city=_token,
    phone=st.from_regex(r"[0-9]{3}-[0-9]{3}-[0-9]{4}", fullmatch=True),
    mrn=st.from_regex(r"[A-Z][0-9]{7}", fullmatch=True),
    secret=_token,
    field=_field,
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
)
def test_planted_phi_never_survives(
    family: str,
    given_name: str,
    city: str,
    phone: str,
    mrn: str,
    secret: str,
    field: str,
    born: date,
) -> None:
    patient = {
        "resourceType": "Patient",
        "id": mrn,
        "name": [{"family": family, "given": [given_name]}],
        "telecom": [{"system": "phone", "value": phone}],
        "address": [{"line": [f"1 {secret} St"], "city": city, "postalCode": "02139"}],
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": mrn}],
        "birthDate": born.isoformat(),
        field: secret,  # an unknown field holding a string
        "contact": [{"name": {"family": family}, "telecom": [{"value": phone}]}],
    }
    for policy in (YEAR_ONLY, SHIFTED):
        blob = orjson.dumps(FhirDeidentifier(policy, key=KEY, as_of=AS_OF).deidentify(patient))
        for planted in (family, given_name, city, phone, mrn, secret, born.isoformat()):
            assert planted.encode() not in blob
