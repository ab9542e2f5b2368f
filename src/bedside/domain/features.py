"""Feature and label rules as pure functions: units, windows, names, ages, SIRS, sepsis codes.

The engines (:mod:`bedside.engines.features`) turn these rules into Ibis expressions that run on
DuckDB or Spark; the functions here state the same rules for one value at a time, so they can be
read, tested and reused (e.g. by online serving) without an engine. ``docs/features.md`` explains
them.

- **Units** (UCUM, REGULATORY §10.3): :func:`unit_conversion` converts a value recorded in one unit
  to a feature's unit — scale changes within a dimension (``umol/L`` → ``mmol/L``), temperature
  (``[degF]`` → ``Cel``), and mass ↔ substance concentration for analytes whose molar mass is known
  (lactate, creatinine, bilirubin, potassium), e.g. lactate ``mg/dL`` → ``mmol/L``.
- **Windows**: an observation belongs to the look-back window of a prediction at ``t`` when
  ``t - window <= effective < t`` — the start is included, the prediction time itself excluded.
- **Aggregations**: ``last`` (latest value; ties at the latest time: the largest value), ``min``,
  ``max``, ``mean``, ``count`` (values present), ``slope`` (least squares, per hour).
- **Ages**: whole years at the prediction time; the numeric feature is capped at 90 and the age
  group of anyone 90 or older is ``"90+"`` (HIPAA Safe Harbor, REGULATORY §1.3).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

from bedside.errors import InvalidInput

__all__ = [
    "AGE_CAP",
    "AGE_TOP_GROUP",
    "AGGREGATIONS",
    "ENCOUNTER_CLASS_CODES",
    "ETHNICITY_CODES",
    "ICD10CM_SYSTEM",
    "LOINC_SYSTEM",
    "MOLAR_MASS_G_PER_MOL",
    "OUTPUT_KEYS",
    "RACE_CODES",
    "SEPSIS_CONDITION_CODES",
    "SEPSIS_ICD10CM_PREFIXES",
    "SIRS_CRITERIA",
    "SIRS_SPAN",
    "SNOMED_SYSTEM",
    "UCUM_SYSTEM",
    "Affine",
    "ConditionCodeMatch",
    "SirsCriterion",
    "age_feature",
    "age_group",
    "age_group_labels",
    "age_in_years",
    "aggregate_window",
    "canonical_unit",
    "convertible_units",
    "feature_name",
    "in_window",
    "label_value",
    "parse_condition_code",
    "sirs_abnormal",
    "sirs_event_times",
    "unit_conversion",
    "window_label",
    "window_start",
]

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
ICD10CM_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-10-cm"

#: The columns every feature table starts with; no feature or label may take these names.
OUTPUT_KEYS: Final = ("encounter_id", "patient_id", "prediction_time")

Aggregation = Literal["last", "min", "max", "mean", "count", "slope"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = ("last", "min", "max", "mean", "count", "slope")

# ========================================================================================= units


@dataclass(frozen=True, slots=True)
class Affine:
    """A unit conversion ``target = value * factor + offset``."""

    factor: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        """Return ``value`` converted."""
        return value * self.factor + self.offset


_IDENTITY: Final = Affine(1.0)

# Spellings seen in the wild for the UCUM codes of the units bedside converts. Matching is exact
# after this table, so a unit bedside does not know is never guessed.
_UNIT_ALIASES: Final[Mapping[str, str]] = {
    "°C": "Cel",
    "degC": "Cel",
    "cel": "Cel",
    "°F": "[degF]",
    "degF": "[degF]",
    "[degf]": "[degF]",
    "K": "K",
    "mmHg": "mm[Hg]",
    "mm Hg": "mm[Hg]",
    "mm[hg]": "mm[Hg]",
    "beats/min": "/min",
    "bpm": "/min",
    "breaths/min": "/min",
    "{beats}/min": "/min",
    "{breaths}/min": "/min",
    "1/min": "/min",
    "K/uL": "10*3/uL",
    "10^3/uL": "10*3/uL",
    "x10^3/uL": "10*3/uL",
    "10*3/mm3": "10*3/uL",
    "10^9/L": "10*9/L",
    "mEq/L": "meq/L",
    "µmol/L": "umol/L",
    "μmol/L": "umol/L",
}

# Scale to the first unit of each dimension. Litre spellings ``L`` and ``l`` are both UCUM.
_SCALES: Final[Mapping[str, tuple[str, float]]] = {
    # rates (per minute)
    "/min": ("rate", 1.0),
    "/h": ("rate", 1.0 / 60.0),
    "/s": ("rate", 60.0),
    # pressure
    "mm[Hg]": ("pressure", 1.0),
    "kPa": ("pressure", 7.500615758),
    "cm[H2O]": ("pressure", 0.7355592400),
    # fractions
    "%": ("fraction", 1.0),
    "1": ("fraction", 100.0),
    # number concentration (10*3/uL = 10*9/L = /nL)
    "10*3/uL": ("count", 1.0),
    "10*9/L": ("count", 1.0),
    "/nL": ("count", 1.0),
    "/uL": ("count", 1e-3),
    "10*6/uL": ("count", 1e3),
    "10*12/L": ("count", 1e3),
    # mass concentration (mg/dL)
    "mg/dL": ("mass", 1.0),
    "mg/L": ("mass", 0.1),
    "g/dL": ("mass", 1e3),
    "g/L": ("mass", 100.0),
    "ug/dL": ("mass", 1e-3),
    "ug/mL": ("mass", 0.1),
    # substance concentration (mmol/L)
    "mmol/L": ("substance", 1.0),
    "umol/L": ("substance", 1e-3),
    "nmol/L": ("substance", 1e-6),
    "mol/L": ("substance", 1e3),
}

_LITRE = re.compile(r"/([dmun]?)l$")

#: Molar masses (g/mol) for mass ↔ substance conversions, by LOINC code. The factors they give
#: are the clinical ones: lactate 1 mmol/L = 9.008 mg/dL, creatinine 1 mg/dL = 88.4 umol/L,
#: bilirubin 1 mg/dL = 17.1 umol/L.
MOLAR_MASS_G_PER_MOL: Final[Mapping[str, float]] = {
    "2524-7": 90.08,  # lactate, serum/plasma
    "32693-4": 90.08,  # lactate, blood
    "2160-0": 113.12,  # creatinine, serum/plasma
    "1975-2": 584.66,  # bilirubin total, serum/plasma
    "2823-3": 39.098,  # potassium, serum/plasma
}

#: Analytes whose milliequivalents equal millimoles (monovalent ions), by LOINC code.
_MONOVALENT: Final = frozenset({"2823-3"})


def canonical_unit(unit: str | None) -> str | None:
    """Return the UCUM code bedside uses for ``unit`` (``°F`` → ``[degF]``), or None for none."""
    if unit is None:
        return None
    text = unit.strip()
    if not text:
        return None
    text = _UNIT_ALIASES.get(text, text)
    return _LITRE.sub(r"/\1L", text)


def _temperature(source: str, target: str) -> Affine | None:
    to_cel = {
        "Cel": _IDENTITY,
        "[degF]": Affine(5.0 / 9.0, -32.0 * 5.0 / 9.0),
        "K": Affine(1.0, -273.15),
    }
    from_cel = {"Cel": _IDENTITY, "[degF]": Affine(9.0 / 5.0, 32.0), "K": Affine(1.0, 273.15)}
    if source not in to_cel or target not in from_cel:
        return None
    a, b = to_cel[source], from_cel[target]
    return Affine(a.factor * b.factor, a.offset * b.factor + b.offset)


def unit_conversion(source: str | None, target: str, *, loinc: str | None = None) -> Affine | None:
    """Return how to convert a value recorded in ``source`` to ``target``, or None if bedside can't.

    Args:
        source: the recorded unit (UCUM code, or a common spelling such as ``°F`` or ``mmHg``).
        target: the feature's unit.
        loinc: the analyte's LOINC code; needed for mass ↔ substance (``mg/dL`` ↔ ``mmol/L``) and
            ``meq/L`` conversions, which depend on the analyte.

    Returns:
        The conversion (identity when the units are the same), or None when the units cannot be
        converted (unknown unit, different dimensions, or an analyte without a molar mass).
    """
    src, dst = canonical_unit(source), canonical_unit(target)
    if src is None or dst is None:
        return None
    if src == dst:
        return _IDENTITY
    temperature = _temperature(src, dst)
    if temperature is not None:
        return temperature
    if loinc in _MONOVALENT:
        src = "mmol/L" if src == "meq/L" else src
        dst = "mmol/L" if dst == "meq/L" else dst
        if src == dst:
            return _IDENTITY
    if src not in _SCALES or dst not in _SCALES:
        return None
    (src_dim, src_scale), (dst_dim, dst_scale) = _SCALES[src], _SCALES[dst]
    if src_dim == dst_dim:
        return Affine(src_scale / dst_scale)
    molar_mass = MOLAR_MASS_G_PER_MOL.get(loinc or "")
    if molar_mass is None or {src_dim, dst_dim} != {"mass", "substance"}:
        return None
    # 1 mg/dL = 10 mg/L = 10 / M mmol/L
    if src_dim == "mass":
        return Affine(src_scale * 10.0 / molar_mass / dst_scale)
    return Affine(src_scale * molar_mass / 10.0 / dst_scale)


def _known_units() -> tuple[str, ...]:
    units = set(_SCALES) | {"Cel", "[degF]", "K", "meq/L"} | set(_UNIT_ALIASES)
    return tuple(sorted(units))


def convertible_units(target: str, *, loinc: str | None = None) -> dict[str, Affine]:
    """Return every recorded-unit spelling bedside converts to ``target`` for ``loinc``.

    The engines turn this mapping into one ``CASE`` per feature, so a value in a unit that is not
    listed is left out of the feature rather than guessed.
    """
    found: dict[str, Affine] = {}
    for unit in (*_known_units(), target):
        conversion = unit_conversion(unit, target, loinc=loinc)
        if conversion is not None:
            found[unit] = conversion
            # ``mmol/l``, ``mg/dl`` and friends: the lower-case litre is UCUM too
            if unit.endswith("L") and "/" in unit:
                found[unit[:-1] + "l"] = conversion
    return found


# ======================================================================================= windows


def window_start(prediction_time: datetime, window: timedelta) -> datetime:
    """Return the first instant of the look-back window ``[t - window, t)``."""
    if window <= timedelta(0):
        raise InvalidInput(f"a window must be longer than zero: found {window!r}")
    return prediction_time - window


def in_window(effective: datetime, prediction_time: datetime, window: timedelta) -> bool:
    """Return True when ``effective`` lies in ``[prediction_time - window, prediction_time)``."""
    return window_start(prediction_time, window) <= effective < prediction_time


def window_label(window: timedelta) -> str:
    """Return the short window label used in feature names: ``6h``, ``2d``, ``30min``, ``90s``."""
    seconds = window.total_seconds()
    if seconds <= 0 or window.microseconds:
        raise InvalidInput(
            f"a feature window must be a positive whole number of seconds: found {window!r}"
        )
    whole = int(seconds)
    if whole % 86400 == 0 and whole >= 3 * 86400:
        return f"{whole // 86400}d"
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}min"
    return f"{whole}s"


def feature_name(analyte: str, aggregation: Aggregation, window: timedelta) -> str:
    """Return the conventional feature name, e.g. ``heart_rate_max_6h``."""
    if aggregation not in AGGREGATIONS:
        raise InvalidInput(
            f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
        )
    if not re.fullmatch(r"[a-z][a-z0-9_]*", analyte):
        raise InvalidInput(
            f"analyte {analyte!r} is not a snake_case name; expected e.g. heart_rate"
        )
    return f"{analyte}_{aggregation}_{window_label(window)}"


def aggregate_window(
    points: Iterable[tuple[datetime, float | None]],
    aggregation: Aggregation,
    prediction_time: datetime,
    window: timedelta,
) -> float | int | None:
    """Aggregate ``(effective time, value)`` points over the look-back window, as the engines do.

    Points outside ``[t - window, t)`` and points without a value are ignored. ``count`` is 0
    when nothing is in the window; every other aggregation is None then. ``slope`` is the least
    squares slope in units per hour, None with fewer than two distinct times. ``last`` is the
    value at the latest time; several values at that time give the largest of them.
    """
    kept = [
        (t, float(v))
        for t, v in points
        if v is not None and not math.isnan(v) and in_window(t, prediction_time, window)
    ]
    if aggregation == "count":
        return len(kept)
    if not kept:
        return None
    values = [v for _, v in kept]
    if aggregation == "min":
        return min(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "mean":
        return math.fsum(values) / len(values)
    if aggregation == "last":
        return max(kept)[1]
    if aggregation == "slope":
        hours = [(t - prediction_time).total_seconds() / 3600.0 for t, _ in kept]
        mean_x = math.fsum(hours) / len(hours)
        mean_y = math.fsum(values) / len(values)
        sxx = math.fsum((x - mean_x) ** 2 for x in hours)
        if sxx <= 0:
            return None
        sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(hours, values, strict=True))
        return sxy / sxx
    raise InvalidInput(
        f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
    )


# ========================================================================================== ages

AGE_CAP: Final = 90
AGE_TOP_GROUP: Final = "90+"


def age_in_years(birth: date, at: date) -> int:
    """Return the age in whole years at ``at`` (a birthday counts from its day; 29 Feb → 1 Mar)."""
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def age_feature(age: int | None) -> int | None:
    """Return the numeric age feature: the age, capped at 90 (Safe Harbor: no age above 89)."""
    if age is None:
        return None
    if age < 0:
        raise InvalidInput("an age is negative; expected 0 or more years")
    return min(age, AGE_CAP)


def _check_edges(edges: Sequence[int]) -> None:
    if not edges or any(b <= a for a, b in itertools.pairwise(edges)) or edges[0] < 0:
        raise InvalidInput(
            "age group edges must be non-negative and rise strictly, such as [18, 45, 65, 80]"
        )


def age_group_labels(edges: Sequence[int]) -> list[tuple[int, int | None, str]]:
    """Return ``(lower, upper_exclusive, label)`` for each age group the edges define.

    Ages below the first edge form ``"<first"``; edges at or above 90 are folded into ``"90+"``
    so no group reveals an age above 89 (``[18, 85, 95]`` → ``18-84``, ``85-89``, ``90+``).
    """
    _check_edges(edges)
    has_top = edges[-1] >= AGE_CAP
    lowers = [e for e in edges if e < AGE_CAP]
    groups: list[tuple[int, int | None, str]] = []
    if edges[0] > 0:
        below = min(edges[0], AGE_CAP)
        groups.append((0, below, f"<{below}"))
    for i, lower in enumerate(lowers):
        upper: int | None = lowers[i + 1] if i + 1 < len(lowers) else None
        if upper is None and has_top:
            upper = AGE_CAP
        label = f"{lower}+" if upper is None else f"{lower}-{upper - 1}"
        groups.append((lower, upper, label))
    if has_top:
        groups.append((AGE_CAP, None, AGE_TOP_GROUP))
    return groups


def age_group(age: int | None, edges: Sequence[int]) -> str | None:
    """Return the age group label of ``age`` for the given lower edges (None for no age)."""
    if age is None:
        return None
    if age < 0:
        raise InvalidInput("an age is negative; expected 0 or more years")
    for lower, upper, label in age_group_labels(edges):
        if age >= lower and (upper is None or age < upper):
            return label
    raise AssertionError("age groups cover every non-negative age")  # pragma: no cover


# =============================================================================== demographics

#: OMB race categories (US Core ``us-core-race`` ``ombCategory``, urn:oid:2.16.840.1.113883.6.238).
RACE_CODES: Final[Mapping[str, str]] = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}

#: OMB ethnicity categories (US Core ``us-core-ethnicity`` ``ombCategory``).
ETHNICITY_CODES: Final[Mapping[str, str]] = {
    "2135-2": "Hispanic or Latino",
    "2186-5": "Not Hispanic or Latino",
}

#: v3-ActCode encounter class codes per pipeline-file encounter class.
ENCOUNTER_CLASS_CODES: Final[Mapping[str, tuple[str, ...]]] = {
    "inpatient": ("IMP", "ACUTE", "NONAC"),
    "emergency": ("EMER",),
    "ambulatory": ("AMB",),
    "observation": ("OBSENC",),
    "short_stay": ("SS",),
    "virtual": ("VR",),
    "home_health": ("HH",),
}

# ======================================================================================== labels


@dataclass(frozen=True, slots=True)
class ConditionCodeMatch:
    """A condition code to match: ``code`` in ``system`` (any system when None)."""

    code: str
    system: str | None = None


def parse_condition_code(text: str) -> ConditionCodeMatch:
    """Parse a pipeline-file condition code, ``A41.9`` or ``http://snomed.info/sct|91302008``."""
    system, bar, code = text.rpartition("|")
    if not code.strip() or (bar and not system.strip()):
        raise InvalidInput(
            f"condition code {text!r} is not 'code' or 'system|code'; expected e.g. A41.9"
        )
    return ConditionCodeMatch(code.strip(), system.strip() or None)


#: Recorded diagnoses that mean sepsis (label ``definition: sepsis3``): SNOMED CT Sepsis and
#: Septic shock, and ICD-10-CM severe sepsis R65.20/R65.21 (plus A40.*/A41.* by prefix, below).
SEPSIS_CONDITION_CODES: Final = (
    ConditionCodeMatch("91302008", SNOMED_SYSTEM),
    ConditionCodeMatch("76571007", SNOMED_SYSTEM),
    ConditionCodeMatch("R65.20", ICD10CM_SYSTEM),
    ConditionCodeMatch("R65.21", ICD10CM_SYSTEM),
)
#: ICD-10-CM code prefixes for sepsis: streptococcal (A40) and other (A41) sepsis.
SEPSIS_ICD10CM_PREFIXES: Final = ("A40", "A41")


@dataclass(frozen=True, slots=True)
class SirsCriterion:
    """One SIRS criterion: abnormal above ``high`` or below ``low`` (values in ``unit``)."""

    name: str
    loinc: tuple[str, ...]
    unit: str
    high: float
    low: float | None = None


#: SIRS (ACCP/SCCM 1992, REGULATORY §10.5): ≥ 2 of temperature > 38 or < 36 °C, heart rate > 90,
#: respiratory rate > 20, WBC > 12 or < 4 ×10³/µL. PaCO₂ and bands are not used.
SIRS_CRITERIA: Final = (
    SirsCriterion("temperature", ("8310-5",), "Cel", high=38.0, low=36.0),
    SirsCriterion("heart_rate", ("8867-4",), "/min", high=90.0),
    SirsCriterion("respiratory_rate", ("9279-1",), "/min", high=20.0),
    SirsCriterion("wbc", ("6690-2",), "10*3/uL", high=12.0, low=4.0),
)
#: Criteria count together when their abnormal values lie within this span.
SIRS_SPAN: Final = timedelta(hours=6)


def sirs_abnormal(criterion: SirsCriterion, value: float) -> bool:
    """Return True when ``value`` (in the criterion's unit) meets the criterion."""
    return value > criterion.high or (criterion.low is not None and value < criterion.low)


def sirs_event_times(abnormal: Iterable[tuple[datetime, str]]) -> list[datetime]:
    """Return the times at which ≥ 2 SIRS criteria are met within the span ending at that time.

    Args:
        abnormal: ``(effective time, criterion name)`` of each abnormal observation of a patient.

    Returns:
        Each abnormal observation's time at which at least two distinct criteria have abnormal
        observations in ``(time - SIRS_SPAN, time]``, sorted and without repeats.
    """
    points = sorted(abnormal)
    events = set()
    for t, _ in points:
        names = {name for u, name in points if t - SIRS_SPAN < u <= t}
        if len(names) >= 2:
            events.add(t)
    return sorted(events)


def label_value(
    events: Iterable[tuple[datetime, bool]],
    *,
    prediction_time: datetime,
    encounter_start: datetime,
    horizon: timedelta,
    exclude_prior_outcome: bool,
) -> int | None:
    """Return the label of one prediction: 1, 0, or None when the encounter is excluded.

    Args:
        events: the patient's outcome events as ``(onset, belongs_to_this_encounter)``.
        prediction_time: when the prediction is made.
        encounter_start: the start of the prediction's encounter.
        horizon: how far after the prediction time an onset counts.
        exclude_prior_outcome: exclude the encounter when the outcome already happened.

    A *prior* outcome is an onset at or before the prediction time that belongs to this
    encounter or lies within it (``onset >= encounter_start``). The label is 1 when an onset lies
    in ``(t, t + horizon]``; with ``exclude_prior_outcome`` false a prior outcome also gives 1.
    """
    prior = positive = False
    for onset, same_encounter in events:
        if onset <= prediction_time and (same_encounter or onset >= encounter_start):
            prior = True
        if prediction_time < onset <= prediction_time + horizon:
            positive = True
    if prior and exclude_prior_outcome:
        return None
    return int(positive or prior)
