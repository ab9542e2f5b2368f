"""Outcome events and labels: recorded diagnoses (Conditions) or SIRS computed from Observations.

Rules in ``docs/features.md`` ("Labels"); pure Ibis over :mod:`bedside.engines.fhir_tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from bedside.domain.features import (
    ICD10CM_SYSTEM,
    SEPSIS_CONDITION_CODES,
    SEPSIS_ICD10CM_PREFIXES,
    SIRS_CRITERIA,
    SIRS_SPAN,
    ConditionCodeMatch,
    SirsCriterion,
    convertible_units,
    parse_condition_code,
)
from bedside.domain.spec_data import Label, ObservationFeature
from bedside.engines import fhir_tables
from bedside.engines.measurements import Series, converted, has_any, interval

__all__ = ["condition_events", "label_counts", "sirs_events"]

_EXCLUDED_VERIFICATION: Final = ("refuted", "entered-in-error")


def _condition_matches(cond: ir.Table, codes: Sequence[ConditionCodeMatch]) -> ir.BooleanValue:
    clauses = []
    any_system = sorted({c.code for c in codes if c.system is None})
    if any_system:
        clauses.append(cond.code.isin(any_system))
    for system in sorted({c.system for c in codes if c.system is not None}):
        in_system = sorted({c.code for c in codes if c.system == system})
        clauses.append((cond.system == system) & cond.code.isin(in_system))
    result = clauses[0]
    for clause in clauses[1:]:
        result = result | clause
    return result


def condition_events(con: BaseBackend, raw_dir: Path, label: Label) -> ir.Table:
    """Return ``patient_id, encounter_id, onset`` of the Conditions that are ``label``'s event.

    ``sepsis3``: the recorded sepsis codes of ``domain.features``; ``condition_codes``: the
    label's codes. Refuted or entered-in-error Conditions and those without an onset are left out.
    """
    cond = fhir_tables.conditions(con, raw_dir)
    if label.definition == "sepsis3":
        matched = _condition_matches(cond, SEPSIS_CONDITION_CODES)
        for prefix in SEPSIS_ICD10CM_PREFIXES:
            matched = matched | ((cond.system == ICD10CM_SYSTEM) & cond.code.startswith(prefix))
    else:
        matched = _condition_matches(cond, [parse_condition_code(c) for c in label.codes])
    cond = cond.filter(
        matched,
        cond.onset_time.notnull(),
        cond.patient_id.notnull(),
        cond.verification_status.isnull() | ~cond.verification_status.isin(_EXCLUDED_VERIFICATION),
    )
    return cond.select("patient_id", "encounter_id", onset=cond.onset_time)


def sirs_events(obs: ir.Table) -> ir.Table:
    """Times at which ≥ 2 SIRS criteria are met within ``SIRS_SPAN`` (see domain.features)."""
    branches = []
    for criterion in SIRS_CRITERIA:
        conversions = {}
        for code in criterion.loinc:
            conversions.update(convertible_units(criterion.unit, loinc=code))
        value = converted(obs.value, obs.unit, Series(_sirs_feature(criterion), conversions))
        abnormal = value > criterion.high
        if criterion.low is not None:
            abnormal = abnormal | (value < criterion.low)
        branches.append((has_any(obs, criterion.loinc) & abnormal, ibis.literal(criterion.name)))
    flagged = obs.mutate(criterion=ibis.cases(*branches, else_=ibis.null("string")))
    flagged = flagged.filter(flagged.criterion.notnull()).select(
        "patient_id", "criterion", t=flagged.effective_time
    )
    other = flagged.view()
    pairs = flagged.join(
        other,
        [
            flagged.patient_id == other.patient_id,
            other.t > flagged.t - interval(SIRS_SPAN),
            other.t <= flagged.t,
        ],
    ).select(flagged.patient_id, flagged.t, seen=other.criterion)
    met = pairs.group_by(["patient_id", "t"]).aggregate(n=pairs.seen.nunique())
    met = met.filter(met.n >= 2)
    return met.select("patient_id", encounter_id=ibis.null("string"), onset=met.t)


def _sirs_feature(criterion: SirsCriterion) -> ObservationFeature:
    return ObservationFeature(
        kind="observation",
        name=f"sirs_{criterion.name}",
        loinc=criterion.loinc,
        unit=criterion.unit,
        aggregation="max",
        window=SIRS_SPAN,
    )


def label_counts(cohort: ir.Table, events: ir.Table, label: Label) -> ir.Table:
    """Per cohort encounter: ``prior`` (outcome at or before t) and ``positive`` (in (t, t+h])."""
    keys = cohort.select("encounter_id", "patient_id", "start_time", "prediction_time")
    joined = keys.join(events, keys.patient_id == events.patient_id).select(
        keys.encounter_id,
        keys.start_time,
        keys.prediction_time,
        events.onset,
        same=events.encounter_id.notnull() & (events.encounter_id == keys.encounter_id),
    )
    t = joined.prediction_time
    is_prior = (joined.onset <= t) & (joined.same | (joined.onset >= joined.start_time))
    is_positive = (joined.onset > t) & (joined.onset <= t + interval(label.horizon))
    return joined.group_by("encounter_id").aggregate(
        n_prior=joined.onset.count(where=is_prior),
        n_positive=joined.onset.count(where=is_positive),
    )
