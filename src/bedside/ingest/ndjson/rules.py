"""Check one parsed NDJSON line against the structure bedside relies on (the fast path).

Pure functions over plain ``dict``/``list`` values as :func:`orjson.loads` returns them: no I/O
and no ``fhir.resources`` objects, so a line costs a few dictionary look-ups. Every problem is a
:class:`Problem` whose text names the field and the rule; a value from the line never appears in it
(the raw line lives only in the quarantine file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from typing import Any

# Every concrete resource type of FHIR R4 (4.0.1): the R4 ``resource-types`` value set without the
# abstract ``Resource`` and ``DomainResource``.
R4_RESOURCE_TYPES: frozenset[str] = frozenset(
    """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement
    CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse
    ClinicalImpression CodeSystem Communication CommunicationRequest CompartmentDefinition
    Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
    Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal
    GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
    ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice
    Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
    MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
    MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
    Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
    PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
    RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
    RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
    SpecimenDefinition StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid
    SubstancePolymer SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial
    SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport
    TestScript ValueSet VerificationResult VisionPrescription
    """.split()  # noqa: SIM905 - a word list reads better than 146 quoted lines
)


class ReasonCode(StrEnum):
    """Why a line was quarantined: a stable slug, in the quarantine file and the report."""

    LINE_TOO_LONG = "line_too_long"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_RESOURCE_TYPE = "missing_resource_type"
    UNKNOWN_RESOURCE_TYPE = "unknown_resource_type"
    RESOURCE_TYPE_MISMATCH = "resource_type_mismatch"
    MISSING_ID = "missing_id"
    INVALID_ID = "invalid_id"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_DATE = "invalid_date"
    INVALID_CODE = "invalid_code"
    STRICT_VALIDATION = "strict_validation_failed"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason to quarantine a line: a code and a text naming the field and the rule."""

    code: ReasonCode
    text: str


# FHIR R4 primitive regular expressions (datatypes.html), checked with fullmatch.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_MONTH_DAY = r"-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
_DATE_RE = re.compile(_YEAR + r"(" + _MONTH_DAY + r")?)?")
_DATETIME_RE = re.compile(_YEAR + r"(" + _MONTH_DAY + r"(T" + _TIME + _ZONE + r")?)?)?")
_INSTANT_RE = re.compile(_YEAR + _MONTH_DAY + r")T" + _TIME + _ZONE)
_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_GENDERS = frozenset({"male", "female", "other", "unknown"})


@cache
def _is_real_day(year_month_day: str) -> bool:
    try:
        date(int(year_month_day[0:4]), int(year_month_day[5:7]), int(year_month_day[8:10]))
    except ValueError:
        return False
    return True


def _real_calendar_day(text: str) -> bool:
    """Return whether a regex-valid date string with a day names a real calendar day."""
    # The regex already bounds month and day; only days 29-31 can fall outside their month.
    if len(text) < 10 or text[8:10] <= "28":
        return True
    return _is_real_day(text[:10])


def is_fhir_date(value: object) -> bool:
    """Return whether ``value`` is a FHIR ``date`` (YYYY, YYYY-MM or YYYY-MM-DD, a real day)."""
    return isinstance(value, str) and bool(_DATE_RE.fullmatch(value)) and _real_calendar_day(value)


def is_fhir_datetime(value: object) -> bool:
    """Return whether ``value`` is a FHIR ``dateTime`` (partial date, or date-time with a zone)."""
    if not isinstance(value, str):
        return False
    # Most values are full instants; their regex is cheaper than dateTime's nested optionals.
    if _INSTANT_RE.fullmatch(value) is None and _DATETIME_RE.fullmatch(value) is None:
        return False
    return _real_calendar_day(value)


def is_fhir_instant(value: object) -> bool:
    """Return whether ``value`` is a FHIR ``instant`` (full date-time with seconds and a zone)."""
    return (
        isinstance(value, str) and bool(_INSTANT_RE.fullmatch(value)) and _real_calendar_day(value)
    )


def _is_number(value: object) -> bool:
    # bool is a subclass of int; JSON true/false is not a number.
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, float)


# ---- problems (constant texts: field path + rule, never a value) ---------------------------------


def _missing(path: str, rule: str) -> Problem:
    return Problem(ReasonCode.MISSING_FIELD, f"{path}: {rule}")


def _wrong(path: str, rule: str) -> Problem:
    return Problem(ReasonCode.WRONG_TYPE, f"{path}: {rule}")


def _bad_date(path: str, kind: str) -> Problem:
    return Problem(ReasonCode.INVALID_DATE, f"{path}: must be a valid FHIR {kind}")


NOT_AN_OBJECT = Problem(ReasonCode.NOT_AN_OBJECT, "line: must be a JSON object")
MISSING_RESOURCE_TYPE = Problem(
    ReasonCode.MISSING_RESOURCE_TYPE, "resourceType: required, must be a string"
)
UNKNOWN_RESOURCE_TYPE = Problem(
    ReasonCode.UNKNOWN_RESOURCE_TYPE, "resourceType: must name a FHIR R4 resource type"
)
MISSING_ID = Problem(ReasonCode.MISSING_ID, "id: required, must be a non-empty string")
INVALID_ID = Problem(ReasonCode.INVALID_ID, "id: must match the FHIR id rule [A-Za-z0-9-.]{1,64}")


def type_mismatch(declared: str) -> Problem:
    """Return the problem for a resource whose type differs from its file's type ``declared``."""
    return Problem(
        ReasonCode.RESOURCE_TYPE_MISMATCH,
        f"resourceType: must be {declared}, the type this file declares",
    )


_OBS_TIME_MISSING = _missing(
    "Observation.effective[x]",
    "one of effectiveDateTime, effectivePeriod.start, effectiveInstant or issued is required",
)


def _check_reference(obj: dict[str, Any], rtype: str, field: str) -> Problem | None:
    ref = obj.get(field)
    if ref is None:
        return _missing(f"{rtype}.{field}.reference", "required")
    if type(ref) is not dict:
        return _wrong(f"{rtype}.{field}", "must be an object (Reference)")
    target = ref.get("reference")
    if target is None:
        return _missing(f"{rtype}.{field}.reference", "required")
    if type(target) is not str or not target:
        return _wrong(f"{rtype}.{field}.reference", "must be a non-empty string")
    return None


def _check_codeable(obj: dict[str, Any], path: str, field: str) -> Problem | None:
    concept = obj.get(field)
    if concept is None:
        return _missing(f"{path}.{field}.coding", "required")
    if type(concept) is not dict:
        return _wrong(f"{path}.{field}", "must be an object (CodeableConcept)")
    coding = concept.get("coding")
    if coding is None:
        return _missing(f"{path}.{field}.coding", "required")
    if type(coding) is not list or not coding:
        return _wrong(f"{path}.{field}.coding", "must be a non-empty array")
    for item in coding:
        if type(item) is not dict:
            return _wrong(f"{path}.{field}.coding[]", "every entry must be an object (Coding)")
    return None


def _check_quantity(obj: dict[str, Any], path: str) -> Problem | None:
    qty = obj.get("valueQuantity")
    if qty is None:
        return None
    if type(qty) is not dict:
        return _wrong(f"{path}.valueQuantity", "must be an object (Quantity)")
    value = qty.get("value")
    if value is not None and not _is_number(value):
        return _wrong(f"{path}.valueQuantity.value", "must be a JSON number")
    return None


def _check_optional_dates(
    obj: dict[str, Any], rtype: str, fields: tuple[tuple[str, str], ...]
) -> Problem | None:
    for field, kind in fields:
        value = obj.get(field)
        if value is None:
            continue
        ok = is_fhir_date(value) if kind == "date" else is_fhir_datetime(value)
        if not ok:
            return _bad_date(f"{rtype}.{field}", kind)
    return None


def _check_period(obj: dict[str, Any], path: str, field: str) -> Problem | None:
    period = obj.get(field)
    if period is None:
        return None
    if type(period) is not dict:
        return _wrong(f"{path}.{field}", "must be an object (Period)")
    for end in ("start", "end"):
        value = period.get(end)
        if value is not None and not is_fhir_datetime(value):
            return _bad_date(f"{path}.{field}.{end}", "dateTime")
    return None


def _is_coded(concept: object) -> bool:
    """Return whether ``concept`` is a CodeableConcept with a non-empty list of Coding objects."""
    if type(concept) is not dict:
        return False
    coding = concept.get("coding")
    if type(coding) is not list or not coding:
        return False
    return all(type(item) is dict for item in coding)


def _check_observation(obj: dict[str, Any]) -> Problem | None:
    # Hot path: each test accepts the common shape inline and, only when it fails, calls the
    # helper that names the field and the rule (the helpers check the same conditions).
    status = obj.get("status")
    if type(status) is not str or not status:
        return _missing("Observation.status", "required, must be a non-empty string")
    if not _is_coded(obj.get("code")):
        return _check_codeable(obj, "Observation", "code")
    subject = obj.get("subject")
    reference = subject.get("reference") if type(subject) is dict else None
    if type(reference) is not str or not reference:
        return _check_reference(obj, "Observation", "subject")
    has_time = False
    value = obj.get("effectiveDateTime")
    if value is not None:
        if not is_fhir_datetime(value):
            return _bad_date("Observation.effectiveDateTime", "dateTime")
        has_time = True
    period = obj.get("effectivePeriod")
    if period is not None:
        problem = _check_period(obj, "Observation", "effectivePeriod")
        if problem:
            return problem
        has_time = has_time or period.get("start") is not None
    value = obj.get("issued")
    if value is not None:
        if not is_fhir_instant(value):
            return _bad_date("Observation.issued", "instant")
        has_time = True
    value = obj.get("effectiveInstant")
    if value is not None:
        if not is_fhir_instant(value):
            return _bad_date("Observation.effectiveInstant", "instant")
        has_time = True
    if not has_time:
        return _OBS_TIME_MISSING
    quantity = obj.get("valueQuantity")
    if quantity is not None:
        number = quantity.get("value") if type(quantity) is dict else None
        if type(quantity) is not dict or not (number is None or _is_number(number)):
            return _check_quantity(obj, "Observation")
    components = obj.get("component")
    if components is not None:
        if type(components) is not list:
            return _wrong("Observation.component", "must be an array")
        for comp in components:
            if type(comp) is not dict:
                return _wrong("Observation.component[]", "every entry must be an object")
            problem = _check_codeable(comp, "Observation.component[]", "code") or _check_quantity(
                comp, "Observation.component[]"
            )
            if problem:
                return problem
    return None


def _check_patient(obj: dict[str, Any]) -> Problem | None:
    gender = obj.get("gender")
    if gender is not None and gender not in _GENDERS:
        return Problem(
            ReasonCode.INVALID_CODE, "Patient.gender: must be one of male, female, other, unknown"
        )
    return _check_optional_dates(
        obj, "Patient", (("birthDate", "date"), ("deceasedDateTime", "dateTime"))
    )


def _check_encounter(obj: dict[str, Any]) -> Problem | None:
    status = obj.get("status")
    if type(status) is not str or not status:
        return _missing("Encounter.status", "required, must be a non-empty string")
    klass = obj.get("class")
    if klass is None:
        return _missing("Encounter.class", "required")
    if type(klass) is not dict:
        return _wrong("Encounter.class", "must be an object (Coding)")
    return _check_reference(obj, "Encounter", "subject") or _check_period(
        obj, "Encounter", "period"
    )


def _check_condition(obj: dict[str, Any]) -> Problem | None:
    return (
        _check_codeable(obj, "Condition", "code")
        or _check_reference(obj, "Condition", "subject")
        or _check_optional_dates(
            obj,
            "Condition",
            (
                ("onsetDateTime", "dateTime"),
                ("abatementDateTime", "dateTime"),
                ("recordedDate", "dateTime"),
            ),
        )
    )


TYPE_CHECKS: dict[str, Callable[[dict[str, Any]], Problem | None]] = {
    "Observation": _check_observation,
    "Patient": _check_patient,
    "Encounter": _check_encounter,
    "Condition": _check_condition,
}
"""Per-type structure checks: the fields bedside's feature and label stages read."""


def check_envelope(obj: object, declared_type: str | None) -> tuple[str | None, Problem | None]:
    """Check what every line needs: a JSON object with a known ``resourceType`` and a valid ``id``.

    Args:
        obj: the value :func:`orjson.loads` returned for the line.
        declared_type: the type the file declares (its name or the manifest), or ``None``.

    Returns:
        ``(resource_type, None)`` for a line that passes, else ``(resource_type_or_None, problem)``.
    """
    if type(obj) is not dict:
        return None, NOT_AN_OBJECT
    rtype = obj.get("resourceType")
    if type(rtype) is not str or not rtype:
        return None, MISSING_RESOURCE_TYPE
    if rtype not in R4_RESOURCE_TYPES:
        return None, UNKNOWN_RESOURCE_TYPE
    if declared_type is not None and rtype != declared_type:
        return rtype, type_mismatch(declared_type)
    rid = obj.get("id")
    if rid is None or rid == "":
        return rtype, MISSING_ID
    if type(rid) is not str or not _ID_RE.fullmatch(rid):
        return rtype, INVALID_ID
    return rtype, None


def check_structure(rtype: str, obj: dict[str, Any]) -> Problem | None:
    """Check the fields bedside reads for ``rtype`` (Patient, Encounter, Observation, Condition).

    Other resource types have no structure rules beyond :func:`check_envelope`.
    """
    check = TYPE_CHECKS.get(rtype)
    return None if check is None else check(obj)


def check_resource(obj: object, declared_type: str | None) -> tuple[str | None, Problem | None]:
    """Run :func:`check_envelope` then :func:`check_structure`; return type and first problem."""
    rtype, problem = check_envelope(obj, declared_type)
    if problem is not None or rtype is None:
        return rtype, problem
    return rtype, check_structure(rtype, obj)  # type: ignore[arg-type]  # envelope proved a dict
