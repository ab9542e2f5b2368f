"""The cohort: which encounters get a prediction, when, and the patient attributes at that time.

Rules in ``docs/features.md`` ("Cohort and prediction time"); pure Ibis over
:mod:`bedside.engines.fhir_tables`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from bedside.domain.features import ENCOUNTER_CLASS_CODES
from bedside.domain.spec_data import Cohort
from bedside.engines import fhir_tables
from bedside.engines.measurements import interval

__all__ = ["age_years", "cohort_table"]

_EXCLUDED_ENCOUNTER_STATUSES: Final = ("entered-in-error", "cancelled", "planned")
_UTC: Final = ibis.dtype("timestamp('UTC')")


def _timestamp(day: date) -> ir.TimestampScalar:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return ibis.literal(moment, type=_UTC)


def age_years(birth: ir.DateValue, at: ir.TimestampValue) -> ir.IntegerValue:
    """Whole years from ``birth`` to ``at`` (UTC date), as in ``domain.features.age_in_years``."""
    at_day = at.month() * 100 + at.day()
    birth_day = birth.month() * 100 + birth.day()
    before_birthday = ibis.ifelse(at_day < birth_day, 1, 0)
    return (at.year() - birth.year() - before_birthday).cast("int64")


def cohort_table(con: BaseBackend, raw_dir: Path, cohort: Cohort, *, extensions: bool) -> ir.Table:
    """Cohort encounters with their prediction time and patient attributes."""
    enc = fhir_tables.encounters(con, raw_dir)
    classes = sorted({code for c in cohort.encounter_classes for code in ENCOUNTER_CLASS_CODES[c]})
    enc = enc.filter(
        enc.class_code.isin(classes),
        enc.status.isnull() | ~enc.status.isin(_EXCLUDED_ENCOUNTER_STATUSES),
        enc.patient_id.notnull(),
        enc.encounter_id.notnull(),
        enc.start_time.notnull(),
    )
    enc = enc.select("encounter_id", "patient_id", "start_time", "end_time").distinct()
    anchor = cohort.prediction_time
    offset = interval(anchor.offset) if anchor.offset else None
    base = enc.start_time if anchor.anchor == "admission" else enc.end_time
    enc = enc.mutate(prediction_time=base + offset if offset is not None else base)
    enc = enc.filter(enc.prediction_time.notnull())
    if anchor.anchor == "admission":
        # an encounter that ended before its prediction time has nothing to predict
        enc = enc.filter(enc.end_time.isnull() | (enc.end_time >= enc.prediction_time))
    if cohort.start is not None:
        enc = enc.filter(enc.start_time >= _timestamp(cohort.start))
    if cohort.end is not None:
        enc = enc.filter(enc.start_time < _timestamp(cohort.end))
    people = fhir_tables.patients(con, raw_dir, extensions=extensions)
    joined = enc.left_join(people, "patient_id").select(
        enc.encounter_id,
        enc.patient_id,
        enc.start_time,
        enc.prediction_time,
        people.birth_date,
        people.gender,
        people.birth_sex,
        people.race,
        people.ethnicity,
    )
    joined = joined.mutate(age_years=age_years(joined.birth_date, joined.prediction_time))
    if cohort.min_age > 0 or cohort.max_age is not None:
        joined = joined.filter(joined.age_years.notnull(), joined.age_years >= cohort.min_age)
        if cohort.max_age is not None:
            joined = joined.filter(joined.age_years <= cohort.max_age)
    return joined
