"""Hand-made, synthetic FHIR R4 resources for the engine tests, and a spec builder.

Every time is written relative to ``BASE`` (2024-03-01 08:00 UTC) in hours, so a test reads as a
timeline: ``at(3.5)`` is 11:30 UTC. Nothing here is real patient data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bedside.domain.spec_data import DataPreparationStage

BASE = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
OMB = "urn:oid:2.16.840.1.113883.6.238"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"


def moment(hours: float) -> datetime:
    """Return ``BASE`` + ``hours``."""
    return BASE + timedelta(hours=hours)


def at(hours: float) -> str:
    """Return ``BASE`` + ``hours`` as a FHIR dateTime in UTC (``2024-03-01T11:30:00Z``)."""
    return moment(hours).strftime("%Y-%m-%dT%H:%M:%SZ")


def patient(
    pid: str,
    *,
    birth: str | None = "1970-05-01",
    gender: str | None = "female",
    birth_sex: str | None = "F",
    race: Sequence[str] | None = ("2106-3",),
    ethnicity: Sequence[str] | None = ("2186-5",),
) -> dict[str, Any]:
    """Return a Patient with the US Core race, ethnicity and birth-sex extensions asked for."""
    extensions: list[dict[str, Any]] = []
    for url, codes in (("us-core-race", race), ("us-core-ethnicity", ethnicity)):
        if codes is None:
            continue
        parts: list[dict[str, Any]] = []
        for code in codes:
            system = (
                "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
                if code in ("UNK", "ASKU")
                else OMB
            )
            parts.append({"url": "ombCategory", "valueCoding": {"system": system, "code": code}})
        parts.append({"url": "text", "valueString": "as recorded"})
        extensions.append({"url": US_CORE + url, "extension": parts})
    if birth_sex is not None:
        extensions.append({"url": US_CORE + "us-core-birthsex", "valueCode": birth_sex})
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if extensions:
        resource["extension"] = extensions
    resource["name"] = [{"family": "Testperson", "given": ["Alex"]}]
    if gender is not None:
        resource["gender"] = gender
    if birth is not None:
        resource["birthDate"] = birth
    return resource


def encounter(
    eid: str,
    pid: str,
    start: float | str | None,
    end: float | str | None = 96.0,
    *,
    cls: str = "IMP",
    status: str = "finished",
) -> dict[str, Any]:
    """Return an Encounter from ``start`` to ``end`` (hours after BASE, or FHIR text)."""
    period: dict[str, str] = {}
    if start is not None:
        period["start"] = at(start) if isinstance(start, int | float) else start
    if end is not None:
        period["end"] = at(end) if isinstance(end, int | float) else end
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "subject": {"reference": f"Patient/{pid}"},
        "period": period,
    }


_COUNTER = iter(range(1, 10**9))


def observation(
    pid: str,
    code: str | Sequence[str],
    when: float | str | None,
    value: float | None,
    unit: str | None = None,
    *,
    eid: str | None = None,
    status: str = "final",
    issued: float | str | None = None,
    system: str = LOINC,
    unit_text: str | None = None,
    oid: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """Return an Observation with one value (or a ``dataAbsentReason`` when ``value`` is None).

    ``code`` may be several LOINC codes (one coding each); ``when``/``issued`` are hours after
    BASE or FHIR text; ``unit`` is the UCUM code, ``unit_text`` the human-readable unit.
    """
    codes = [code] if isinstance(code, str) else list(code)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid or f"obs-{next(_COUNTER)}",
        "status": status,
        "code": {"coding": [{"system": system, "code": c} for c in codes]},
        "subject": {"reference": subject or f"Patient/{pid}"},
    }
    if eid is not None:
        resource["encounter"] = {"reference": f"Encounter/{eid}"}
    if when is not None:
        resource["effectiveDateTime"] = at(when) if isinstance(when, int | float) else when
    if issued is not None:
        resource["issued"] = at(issued) if isinstance(issued, int | float) else issued
    if value is None:
        resource["dataAbsentReason"] = {"coding": [{"code": "not-performed"}]}
    else:
        quantity: dict[str, Any] = {"value": value}
        if unit_text is not None:
            quantity["unit"] = unit_text
        if unit is not None:
            quantity["system"] = UCUM
            quantity["code"] = unit
        resource["valueQuantity"] = quantity
    return resource


def blood_pressure(
    pid: str,
    when: float,
    systolic: float | None,
    diastolic: float | None,
    *,
    eid: str | None = None,
) -> dict[str, Any]:
    """Return an 85354-9 blood-pressure panel with 8480-6 / 8462-4 components (no own value)."""
    components = []
    for code, value in (("8480-6", systolic), ("8462-4", diastolic)):
        part: dict[str, Any] = {"code": {"coding": [{"system": LOINC, "code": code}]}}
        if value is None:
            part["dataAbsentReason"] = {"coding": [{"code": "not-performed"}]}
        else:
            part["valueQuantity"] = {
                "value": value,
                "unit": "mmHg",
                "system": UCUM,
                "code": "mm[Hg]",
            }
        components.append(part)
    resource = observation(pid, "85354-9", when, None, eid=eid)
    resource.pop("dataAbsentReason")
    resource["component"] = components
    return resource


def condition(
    pid: str,
    code: str,
    onset: float | str | None,
    *,
    eid: str | None = None,
    system: str = SNOMED,
    verification: str | None = "confirmed",
    recorded: float | None = None,
    cid: str | None = None,
) -> dict[str, Any]:
    """Return a Condition with one coding, its onset and (optionally) its encounter."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid or f"cond-{next(_COUNTER)}",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if verification is not None:
        resource["verificationStatus"] = {"coding": [{"code": verification}]}
    if eid is not None:
        resource["encounter"] = {"reference": f"Encounter/{eid}"}
    if onset is not None:
        resource["onsetDateTime"] = at(onset) if isinstance(onset, int | float) else onset
    if recorded is not None:
        resource["recordedDate"] = at(recorded)
    return resource


def write_raw(folder: Path, resources: Iterable[dict[str, Any]]) -> Path:
    """Write resources as ``<Type>.ndjson`` files in ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for resource in resources:
        by_type[resource["resourceType"]].append(orjson.dumps(resource))
    for resource_type in ("Patient", "Encounter", "Observation", "Condition"):
        lines = by_type.pop(resource_type, [])
        (folder / f"{resource_type}.ndjson").write_bytes(b"".join(line + b"\n" for line in lines))
    assert not by_type, f"unexpected resource types {sorted(by_type)}"
    return folder


def obs_feature(
    name: str, loinc: Sequence[str], aggregation: str, window: str, unit: str | None = None
) -> dict[str, Any]:
    """Return an observation feature mapping as written in a pipeline file."""
    feature: dict[str, Any] = {
        "kind": "observation",
        "name": name,
        "loinc": list(loinc),
        "aggregation": aggregation,
        "window": window,
    }
    if unit is not None:
        feature["unit"] = unit
    return feature


def stage(
    features: Sequence[dict[str, Any]] = (),
    *,
    label: dict[str, Any] | None = None,
    **cohort: Any,
) -> DataPreparationStage:
    """Return a ``data_preparation`` stage; ``cohort`` keys override the pipeline defaults."""
    data: dict[str, Any] = {"name": "data_preparation", "features": list(features)}
    data["cohort"] = {"prediction_time": "admission + 4h", **cohort}
    if label is not None:
        data["label"] = label
    return DataPreparationStage.model_validate(data)
