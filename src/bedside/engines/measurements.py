"""Observation values for features and labels: selection by LOINC code set, unit conversion.

Shared by :mod:`bedside.engines.features` (windowed aggregates) and :mod:`bedside.engines.labels`
(SIRS). Pure Ibis expressions over :func:`bedside.engines.fhir_tables.observation_values`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from bedside.domain.features import Affine, convertible_units
from bedside.domain.spec_data import ObservationFeature
from bedside.engines import fhir_tables
from bedside.errors import InvalidInput

__all__ = [
    "USABLE_OBSERVATION_STATUSES",
    "Series",
    "check_single_units",
    "converted",
    "has_any",
    "interval",
    "series_for",
    "usable_observations",
]

#: Observation statuses whose values are used (entered-in-error, cancelled, registered … are not).
USABLE_OBSERVATION_STATUSES: Final = ("final", "amended", "corrected", "preliminary")


@dataclass(frozen=True, slots=True)
class Series:
    """How one observation feature's values are selected and converted."""

    feature: ObservationFeature
    conversions: Mapping[str, Affine] | None  # None: values as recorded


def series_for(feature: ObservationFeature) -> Series:
    """Work out the unit conversions of ``feature`` (the same for every code of its set)."""
    if feature.unit is None:
        return Series(feature, None)
    per_code = [convertible_units(feature.unit, loinc=code) for code in feature.loinc]
    agreed: dict[str, Affine] = {}
    for unit in sorted(set().union(*per_code)):
        found = {table.get(unit) for table in per_code}
        only = found.pop() if len(found) == 1 else None
        if only is not None:
            agreed[unit] = only
    return Series(feature, agreed)


def has_any(rows: ir.Table, wanted: Sequence[str]) -> ir.BooleanValue:
    """True when any LOINC code of the row is in ``wanted``.

    Most values carry one LOINC coding and are tested with a cheap ``IN`` on ``loinc``; only
    values with several codings (``loinc_multi`` not null, e.g. SpO₂ coded 2708-6 and 59408-5)
    take the array intersection.
    """
    codes = sorted(set(wanted))
    overlap = rows.loinc_multi.intersect(ibis.literal(codes, type="array<string>")).length() > 0
    return ibis.cases((rows.loinc_multi.notnull(), overlap), else_=rows.loinc.isin(codes))


def usable_observations(con: BaseBackend, raw_dir: Path, codes: Sequence[str]) -> ir.Table:
    """Flat observation values with a value, a time, a patient and one of ``codes``."""
    values = fhir_tables.observation_value_rows(con, raw_dir)
    several = values.coding.length() > 1
    obs = values.select(
        "patient_id",
        "status",
        "effective_time",
        "issued_time",
        "value",
        "unit",
        loinc=fhir_tables.loinc_code(values.coding),
        loinc_multi=ibis.ifelse(
            several, fhir_tables.loinc_codes(values.coding), ibis.null("array<string>")
        ),
    )
    return obs.filter(
        obs.status.isin(USABLE_OBSERVATION_STATUSES),
        obs.value.notnull(),
        obs.effective_time.notnull(),
        obs.patient_id.notnull(),
        has_any(obs, codes),
    ).select("patient_id", "effective_time", "issued_time", "loinc", "loinc_multi", "value", "unit")


def converted(value: ir.FloatingValue, unit: ir.StringValue, series: Series) -> ir.FloatingValue:
    """The value in the feature's unit; null when its unit cannot be converted."""
    if series.conversions is None:
        return value
    branches = [
        (unit == source, value * conv.factor + conv.offset if conv.offset else value * conv.factor)
        for source, conv in sorted(series.conversions.items())
    ]
    return ibis.cases(*branches, else_=ibis.null("float64"))


def check_single_units(obs: ir.Table, series: Sequence[Series]) -> None:
    """Refuse a unit-less feature whose observations carry several units (it would mix them).

    One aggregate query over the observations covers every such feature; ``count`` features are
    exempt (a count does not depend on the unit).
    """
    unitless = [
        s.feature for s in series if s.conversions is None and s.feature.aggregation != "count"
    ]
    if not unitless:
        return
    stats = {}
    for i, f in enumerate(unitless):
        unit = ibis.ifelse(has_any(obs, f.loinc), obs.unit, ibis.null("string"))
        stats[f"n{i}"] = unit.nunique()
        stats[f"lo{i}"] = unit.min()
        stats[f"hi{i}"] = unit.max()
    found = obs.aggregate(**stats).execute().iloc[0]
    for i, f in enumerate(unitless):
        if int(found[f"n{i}"]) > 1:
            units = [str(found[f"lo{i}"]), str(found[f"hi{i}"])]
            raise InvalidInput(
                f"feature {f.name!r} has no unit, but its observations are recorded in "
                f"{int(found[f'n{i}'])} units (including {units[0]} and {units[1]}); "
                "set unit: to the one to convert to",
                details={"feature": f.name, "units": units},
            )


def interval(span: timedelta) -> ir.IntervalScalar:
    """Return ``span`` as an Ibis interval (whole seconds when exact, else microseconds)."""
    micros = span // timedelta(microseconds=1)
    if micros % 1_000_000 == 0:
        return ibis.interval(seconds=micros // 1_000_000)
    return ibis.interval(microseconds=micros)
