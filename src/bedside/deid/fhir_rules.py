"""What the FHIR de-identifier keeps, and how it reads FHIR: field and extension lists, helpers.

:mod:`bedside.deid.fhir` rebuilds resources from these rules. The lists say what may *stay*;
anything not listed is removed (fail closed) and counted in the report.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import Any, Final

from bedside.domain.deid import Category

C = Category

#: Extensions that carry coded demographics needed for fairness analysis and no identifier.
SAFE_EXTENSIONS: Final = frozenset(
    {
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex",
        "http://hl7.org/fhir/StructureDefinition/patient-genderIdentity",
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    }
)
#: Extensions known to hold identifiers, with their Safe Harbor category (others count as R).
PHI_EXTENSIONS: Final[Mapping[str, Category]] = {
    "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName": C.NAMES,
    "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family": C.NAMES,
    "http://hl7.org/fhir/StructureDefinition/humanname-fathers-family": C.NAMES,
    "http://hl7.org/fhir/StructureDefinition/patient-birthPlace": C.GEOGRAPHY,
    "http://hl7.org/fhir/StructureDefinition/geolocation": C.GEOGRAPHY,
    "http://hl7.org/fhir/StructureDefinition/patient-birthTime": C.DATES,
}

#: Fields whose string values are codes, URIs or other non-identifying tokens (FHIR ``code``
#: and ``uri`` elements seen in clinical resources). Any other string field is removed.
SAFE_STRING_FIELDS: Final = frozenset(
    {
        "resourceType", "status", "code", "system", "version", "unit", "use", "gender",
        "criticality", "category", "intent", "priority", "language", "comparator", "kind",
        "mode", "type", "profile", "valueCode", "severity", "outcome", "currency",
        "periodUnit", "durationUnit", "when", "dayOfWeek", "country", "state", "timeOfDay",
        "clinicalStatus", "verificationStatus", "userSelected", "valueBoolean", "doNotPerform",
        "lifecycleStatus", "sex", "route", "method", "site",
    }
)  # fmt: skip

#: Fields holding dateTime/date values (more are recognised by their suffix).
DATE_FIELDS: Final = frozenset(
    {
        "date", "start", "end", "created", "authoredOn", "recordedDate", "onsetDateTime",
        "abatementDateTime", "effectiveDateTime", "occurrenceDateTime", "deceasedDateTime",
        "performedDateTime", "assertedDate", "dateAsserted", "expirationDate", "onset",
        "whenHandedOver", "whenPrepared", "dateWritten", "lastOccurrence", "sent", "received",
        "valueDateTime", "valueDate", "collectedDateTime", "availabilityStart",
    }
)  # fmt: skip
#: Fields holding FHIR ``instant`` values: a year alone is not a valid instant.
INSTANT_FIELDS: Final = frozenset(
    {"issued", "lastUpdated", "recorded", "valueInstant", "effectiveInstant", "timestamp"}
)
DATE_SUFFIXES: Final = ("Date", "DateTime")
#: Which reference fields name the patient a resource belongs to (its date-shift scope).
SUBJECT_FIELDS: Final = ("subject", "patient", "beneficiary", "individual")

#: Identifier type codes (HL7 v2 table 0203) and their Safe Harbor category.
IDENTIFIER_TYPES: Final[Mapping[str, Category]] = {
    "MR": C.MEDICAL_RECORD, "MRT": C.MEDICAL_RECORD, "PI": C.MEDICAL_RECORD,
    "SS": C.SSN, "SB": C.HEALTH_PLAN, "MB": C.HEALTH_PLAN, "MA": C.HEALTH_PLAN,
    "MC": C.HEALTH_PLAN, "SN": C.HEALTH_PLAN, "PN": C.HEALTH_PLAN,
    "AN": C.ACCOUNT, "AM": C.ACCOUNT, "VN": C.ACCOUNT,
    "DL": C.LICENSE, "PPN": C.LICENSE, "LN": C.LICENSE, "BCT": C.LICENSE, "DR": C.LICENSE,
    "NPI": C.OTHER, "TAX": C.OTHER, "DN": C.OTHER,
}  # fmt: skip
TELECOM_CATEGORIES: Final[Mapping[str, Category]] = {
    "phone": C.PHONE, "sms": C.PHONE, "pager": C.PHONE, "fax": C.FAX, "email": C.EMAIL,
    "url": C.URL,
}  # fmt: skip

LITERAL_REFERENCE: Final = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://[^?#\s]*?/)?([A-Z][A-Za-z]+)/([A-Za-z0-9.\-]{1,64})"
    r"(?:/_history/[A-Za-z0-9.\-]{1,64})?"
)
CONDITIONAL_REFERENCE: Final = re.compile(r"([A-Z][A-Za-z]+)\?identifier=([^|&]*)\|([^&]+)")
URN_UUID: Final = "urn:uuid:"
RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")


def scope_of(resource: Mapping[str, Any]) -> str:
    """Return the date-shift scope of a resource: its patient's id, else its own type/id."""
    rtype = resource["resourceType"]
    rid = resource.get("id")
    if rtype == "Patient" and isinstance(rid, str):
        return rid
    for name in SUBJECT_FIELDS:
        ref = resource.get(name)
        if type(ref) is dict:
            target = ref.get("reference")
            if type(target) is str:
                if target.startswith(URN_UUID):
                    return target[9:]
                m = LITERAL_REFERENCE.fullmatch(target)
                if m is not None and m.group(1) == "Patient":
                    return m.group(2)
    return f"{rtype}/{rid}"


def identifier_category(ident: Mapping[str, Any]) -> Category:
    """Return the Safe Harbor category of an Identifier from its type code or system."""
    system = ident.get("system")
    if type(system) is str:
        lowered = system.lower()
        if lowered.endswith("us-ssn") or lowered == "urn:oid:2.16.840.1.113883.4.1":
            return C.SSN
        if "passport" in lowered or lowered.startswith("urn:oid:2.16.840.1.113883.4.3."):
            return C.LICENSE  # passports and US state driver's licences
        if lowered.endswith("us-mbi") or "medicare" in lowered:
            return C.HEALTH_PLAN
    id_type = ident.get("type")
    if type(id_type) is dict:
        for coding in id_type.get("coding") or ():
            if type(coding) is dict:
                category = IDENTIFIER_TYPES.get(coding.get("code"))  # type: ignore[arg-type]
                if category is not None:
                    return category
    return C.OTHER


PLAIN_KEYS: Final = frozenset(
    {"system", "code", "display", "version", "userSelected", "value", "unit", "comparator"}
)
SCALAR_TYPES: Final = frozenset({str, int, float, bool})


def is_plain(element: dict[str, Any]) -> bool:
    """Return whether ``element`` is a Coding or Quantity that can be copied as it is.

    A shortcut for the commonest elements: only coding/quantity keys, scalar values, a numeric
    ``value`` (a string ``value`` would be an Identifier's) and no ``display`` without a ``code``
    (that would be a Reference's display).
    """
    if not PLAIN_KEYS.issuperset(element):
        return False
    if "display" in element and "code" not in element:
        return False
    for x in element.values():
        if type(x) not in SCALAR_TYPES:
            return False
    return type(element.get("value", 0)) is not str


NUMBER_TYPES: Final = frozenset({int, float, bool})


def as_json(value: Any) -> dict[str, Any] | list[Any] | str | int | float | None:
    """Return a Mapping, sequence, str or number as a plain JSON value; None for anything else."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return str(value)
    return None


def copy_json(value: Any) -> Any:
    """Return a deep copy of a JSON value (dicts, lists, scalars)."""
    t = type(value)
    if t is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if t is list:
        return [copy_json(v) for v in value]
    return value
