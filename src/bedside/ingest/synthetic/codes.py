"""Code systems and reference tables of the synthetic hospital (LOINC, UCUM, SNOMED CT, OMB).

LOINC codes and UCUM units follow ``REGULATORY.md`` §10.3–10.4. Every measured quantity is an
:class:`Analyte`; an analyte has one or more :class:`ObservationCode` variants (for example
lactate in serum/plasma *or* whole blood) and one or more :class:`UnitVariant` (for example
temperature in ``Cel`` *or* ``[degF]``). The generator picks variants at fixed fractions so that
code-set mapping and unit normalisation downstream have real work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OMB = "urn:oid:2.16.840.1.113883.6.238"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"

#: HHS Safe Harbor restricted 3-digit ZIP prefixes (2000 Census; REGULATORY.md §1.4).
RESTRICTED_ZIP3: tuple[str, ...] = (
    "036", "059", "063", "102", "203", "556", "692", "790", "821",
    "823", "830", "831", "878", "879", "884", "890", "893",
)  # fmt: skip

BP_PANEL_CODE = "85354-9"
SEPSIS_SNOMED = "91302008"


@dataclass(frozen=True, slots=True)
class UnitVariant:
    """A UCUM unit an analyte may be reported in, with its conversion from the canonical unit.

    ``reported = canonical * scale + offset``; ``decimals`` is the reported precision.
    """

    ucum: str
    display: str
    scale: float
    offset: float
    decimals: int


@dataclass(frozen=True, slots=True)
class ObservationCode:
    """One LOINC coding an analyte may be reported under."""

    loinc: str
    display: str
    category: str  # "vital-signs" or "laboratory"


@dataclass(frozen=True, slots=True)
class Analyte:
    """A measured quantity: its codes, units (first = canonical) and plausible range."""

    key: str
    codes: tuple[ObservationCode, ...]
    units: tuple[UnitVariant, ...]
    low: float
    high: float


def _vital(loinc: str, display: str) -> ObservationCode:
    return ObservationCode(loinc, display, "vital-signs")


def _lab(loinc: str, display: str) -> ObservationCode:
    return ObservationCode(loinc, display, "laboratory")


_PER_MIN = UnitVariant("/min", "/min", 1.0, 0.0, 0)
_MMHG = UnitVariant("mm[Hg]", "mmHg", 1.0, 0.0, 0)

#: Every analyte the hospital measures, in a fixed order (the order is part of the output format).
ANALYTES: tuple[Analyte, ...] = (
    Analyte("heart_rate", (_vital("8867-4", "Heart rate"),), (_PER_MIN,), 30, 200),
    Analyte("respiratory_rate", (_vital("9279-1", "Respiratory rate"),), (_PER_MIN,), 6, 50),
    Analyte(
        "temperature",
        (_vital("8310-5", "Body temperature"),),
        (UnitVariant("Cel", "°C", 1.0, 0.0, 1), UnitVariant("[degF]", "°F", 1.8, 32.0, 1)),
        33.0,
        42.5,
    ),
    Analyte(
        "spo2",
        (
            _vital("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            _lab("2708-6", "Oxygen saturation in Arterial blood"),
        ),
        (UnitVariant("%", "%", 1.0, 0.0, 0),),
        60,
        100,
    ),
    Analyte("systolic_bp", (_vital("8480-6", "Systolic blood pressure"),), (_MMHG,), 50, 230),
    Analyte("diastolic_bp", (_vital("8462-4", "Diastolic blood pressure"),), (_MMHG,), 25, 140),
    Analyte(
        "wbc",
        (_lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count"),),
        (UnitVariant("10*3/uL", "10*3/uL", 1.0, 0.0, 1),),
        0.3,
        60.0,
    ),
    Analyte(
        "lactate",
        (
            _lab("2524-7", "Lactate [Moles/volume] in Serum or Plasma"),
            _lab("32693-4", "Lactate [Moles/volume] in Blood"),
        ),
        (
            UnitVariant("mmol/L", "mmol/L", 1.0, 0.0, 1),
            UnitVariant("mg/dL", "mg/dL", 9.008, 0.0, 0),
        ),
        0.3,
        20.0,
    ),
    Analyte(
        "creatinine",
        (_lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),),
        (
            UnitVariant("mg/dL", "mg/dL", 1.0, 0.0, 2),
            UnitVariant("umol/L", "µmol/L", 88.42, 0.0, 0),
        ),
        0.2,
        15.0,
    ),
    Analyte(
        "platelets",
        (_lab("777-3", "Platelets [#/volume] in Blood by Automated count"),),
        (UnitVariant("10*3/uL", "10*3/uL", 1.0, 0.0, 0),),
        5,
        900,
    ),
    Analyte(
        "bilirubin",
        (_lab("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"),),
        (UnitVariant("mg/dL", "mg/dL", 1.0, 0.0, 1),),
        0.1,
        30.0,
    ),
    Analyte(
        "potassium",
        (_lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),),
        (UnitVariant("mmol/L", "mmol/L", 1.0, 0.0, 1),),
        2.2,
        7.5,
    ),
)

ANALYTE_INDEX: dict[str, int] = {a.key: i for i, a in enumerate(ANALYTES)}

#: Fraction of results reported in the *second* (alternative) unit, per analyte key.
ALTERNATIVE_UNIT_FRACTION: dict[str, float] = {
    "temperature": 0.15,
    "lactate": 0.20,
    "creatinine": 0.10,
}
#: Fraction of results reported under the *second* code, per analyte key.
ALTERNATIVE_CODE_FRACTION: dict[str, float] = {
    "spo2": 0.08,  # arterial blood gas SaO2 instead of pulse oximetry
    "lactate": 0.30,  # whole-blood (point-of-care) lactate instead of serum/plasma
}


@dataclass(frozen=True, slots=True)
class Concept:
    """A SNOMED CT concept used as a Condition code."""

    code: str
    display: str


SEPSIS = Concept(SEPSIS_SNOMED, "Sepsis (disorder)")
VIRAL_PNEUMONIA = Concept("75570004", "Viral pneumonia (disorder)")

#: Infectious admission diagnoses (a suspected-infection proxy; see docs/demo-data.md).
INFECTIOUS_DIAGNOSES: tuple[Concept, ...] = (
    Concept("233604007", "Pneumonia (disorder)"),
    Concept("68566005", "Urinary tract infectious disease (disorder)"),
    Concept("128045006", "Cellulitis (disorder)"),
)
#: Non-infectious admission diagnoses.
OTHER_DIAGNOSES: tuple[Concept, ...] = (
    Concept("29857009", "Chest pain (finding)"),
    Concept("271594007", "Syncope (disorder)"),
    Concept("74474003", "Gastrointestinal hemorrhage (disorder)"),
    Concept("230690007", "Cerebrovascular accident (disorder)"),
    Concept("14669001", "Acute renal failure syndrome (disorder)"),
    Concept("195951007", "Acute exacerbation of chronic obstructive airways disease (disorder)"),
    Concept("5913000", "Fracture of neck of femur (disorder)"),
    Concept("21522001", "Abdominal pain (finding)"),
    Concept("84114007", "Heart failure (disorder)"),
)

#: Chronic conditions (problem-list items): concept, logistic intercept, slope per year of age.
CHRONIC_CONDITIONS: tuple[tuple[Concept, float, float], ...] = (
    (Concept("38341003", "Hypertensive disorder, systemic arterial (disorder)"), -3.0, 0.055),
    (Concept("44054006", "Diabetes mellitus type 2 (disorder)"), -3.2, 0.035),
    (Concept("709044004", "Chronic kidney disease (disorder)"), -5.2, 0.050),
    (Concept("13645005", "Chronic obstructive lung disease (disorder)"), -4.8, 0.040),
    (Concept("42343007", "Congestive heart failure (disorder)"), -6.0, 0.060),
    (Concept("49436004", "Atrial fibrillation (disorder)"), -6.5, 0.065),
    (Concept("195967001", "Asthma (disorder)"), -2.4, -0.005),
    (Concept("414916001", "Obesity (disorder)"), -1.2, 0.000),
)
CHRONIC_INDEX: dict[str, int] = {
    "hypertension": 0,
    "diabetes": 1,
    "ckd": 2,
    "copd": 3,
    "chf": 4,
    "afib": 5,
    "asthma": 6,
    "obesity": 7,
}

#: OMB race categories (US Core race ``ombCategory``) with their share of patients.
RACES: tuple[tuple[str, str, str, float], ...] = (
    (OMB, "2106-3", "White", 0.61),
    (OMB, "2054-5", "Black or African American", 0.15),
    (OMB, "2028-9", "Asian", 0.07),
    (OMB, "1002-5", "American Indian or Alaska Native", 0.015),
    (OMB, "2076-8", "Native Hawaiian or Other Pacific Islander", 0.005),
    (NULL_FLAVOR, "UNK", "Unknown", 0.15),
)
#: OMB ethnicity categories (US Core ethnicity ``ombCategory``) with their share of patients.
ETHNICITIES: tuple[tuple[str, str, str, float], ...] = (
    (OMB, "2135-2", "Hispanic or Latino", 0.17),
    (OMB, "2186-5", "Not Hispanic or Latino", 0.78),
    (NULL_FLAVOR, "UNK", "Unknown", 0.05),
)
