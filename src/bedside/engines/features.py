"""Build the feature table — cohort, prediction times, features, label — as one Ibis expression.

``build_feature_table(con, raw_dir, stage)`` reads the FHIR NDJSON in ``raw_dir`` (Patient,
Encounter, Observation, Condition) and returns a lazy Ibis table with one row per cohort
encounter::

    encounter_id, patient_id, prediction_time, <features in spec order>, <label>

The same expression runs on DuckDB and on PySpark (only the read differs, in
:mod:`bedside.engines.backends`). ``extract_features`` runs it and returns pandas with fixed
dtypes. The rules (windows, units, ages, labels) are those of :mod:`bedside.domain.features`;
``docs/features.md`` describes them, and the leakage guarantee:

* an observation is used only if its effective time is **strictly before** the prediction time,
  and, when it has an ``issued`` time, that too is strictly before it (results not yet available
  are not used);
* the label looks only *after* the prediction time, ``(t, t + horizon]``; encounters whose
  outcome happened at or before ``t`` are excluded (``exclude_prior_outcome: true``) or labelled 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from bedside.domain.features import (
    AGE_CAP,
    ENCOUNTER_CLASS_CODES,
    ICD10CM_SYSTEM,
    OUTPUT_KEYS,
    SEPSIS_CONDITION_CODES,
    SEPSIS_ICD10CM_PREFIXES,
    SIRS_CRITERIA,
    SIRS_SPAN,
    Affine,
    ConditionCodeMatch,
    age_group_labels,
    convertible_units,
    parse_condition_code,
)
from bedside.domain.spec_data import (
    Cohort,
    DataPreparationStage,
    DemographicFeature,
    Label,
    ObservationFeature,
)
from bedside.engines import fhir_tables
from bedside.engines.backends import Backend, backend_name, connect
from bedside.errors import BedsideError, InvalidInput

__all__ = [
    "USABLE_OBSERVATION_STATUSES",
    "build_feature_table",
    "extract_features",
    "feature_columns",
]

logger = logging.getLogger(__name__)

#: Observation statuses whose values are used (entered-in-error, cancelled, registered … are not).
USABLE_OBSERVATION_STATUSES: Final = ("final", "amended", "corrected", "preliminary")
_EXCLUDED_ENCOUNTER_STATUSES: Final = ("entered-in-error", "cancelled", "planned")
_EXCLUDED_VERIFICATION: Final = ("refuted", "entered-in-error")
_SEX_FROM_BIRTH_SEX: Final = {"F": "female", "M": "male", "UNK": "unknown", "OTH": "other"}
_SEX_FROM_GENDER: Final = {
    "female": "female",
    "male": "male",
    "other": "other",
    "unknown": "unknown",
}
_UTC: Final = ibis.dtype("timestamp('UTC')")


@dataclass(frozen=True, slots=True)
class _Series:
    """How one observation feature's values are selected and converted."""

    feature: ObservationFeature
    conversions: Mapping[str, Affine] | None  # None: values as recorded


# ========================================================================== checks on the spec


def _check_names(stage: DataPreparationStage) -> None:
    names = [f.name for f in stage.features]
    if stage.label is not None:
        names.append(stage.label.name)
    reserved = [n for n in names if n in OUTPUT_KEYS]
    if reserved:
        raise InvalidInput(
            f"feature or label name {reserved[0]!r} is reserved for the feature table's key "
            f"columns ({', '.join(OUTPUT_KEYS)}); rename it",
            details={"name": reserved[0], "reserved": list(OUTPUT_KEYS)},
        )
    if stage.label is not None and stage.label.name in {f.name for f in stage.features}:
        raise InvalidInput(
            f"the label {stage.label.name!r} has the same name as a feature; rename one of them",
            details={"name": stage.label.name},
        )


def _series(feature: ObservationFeature) -> _Series:
    """Work out the unit conversions of ``feature`` (the same for every code of its set)."""
    if feature.unit is None:
        return _Series(feature, None)
    per_code = [convertible_units(feature.unit, loinc=code) for code in feature.loinc]
    agreed: dict[str, Affine] = {}
    for unit in sorted(set().union(*per_code)):
        found = {table.get(unit) for table in per_code}
        only = found.pop() if len(found) == 1 else None
        if only is not None:
            agreed[unit] = only
    return _Series(feature, agreed)


def _observation_features(stage: DataPreparationStage) -> list[_Series]:
    return [_series(f) for f in stage.features if isinstance(f, ObservationFeature)]


# ================================================================================ observations


def _has_any(rows: ir.Table, wanted: Sequence[str]) -> ir.BooleanValue:
    """True when any LOINC code of the row is in ``wanted``.

    Most values carry one LOINC coding and are tested with a cheap ``IN`` on ``loinc``; only
    values with several codings (``loinc_multi`` not null, e.g. SpO₂ coded 2708-6 and 59408-5)
    take the array intersection.
    """
    codes = sorted(set(wanted))
    overlap = rows.loinc_multi.intersect(ibis.literal(codes, type="array<string>")).length() > 0
    return ibis.cases((rows.loinc_multi.notnull(), overlap), else_=rows.loinc.isin(codes))


def _usable_observations(con: BaseBackend, raw_dir: Path, codes: Sequence[str]) -> ir.Table:
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
        _has_any(obs, codes),
    ).select("patient_id", "effective_time", "issued_time", "loinc", "loinc_multi", "value", "unit")


def _converted(value: ir.FloatingValue, unit: ir.StringValue, series: _Series) -> ir.FloatingValue:
    """The value in the feature's unit; null when its unit cannot be converted."""
    if series.conversions is None:
        return value
    branches = [
        (unit == source, value * conv.factor + conv.offset if conv.offset else value * conv.factor)
        for source, conv in sorted(series.conversions.items())
    ]
    return ibis.cases(*branches, else_=ibis.null("float64"))


def _check_single_units(obs: ir.Table, series: Sequence[_Series]) -> None:
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
        unit = ibis.ifelse(_has_any(obs, f.loinc), obs.unit, ibis.null("string"))
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


# ====================================================================================== cohort


def _timestamp(day: Any) -> ir.TimestampScalar:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return ibis.literal(moment, type=_UTC)


def _interval(span: timedelta) -> ir.IntervalScalar:
    micros = span // timedelta(microseconds=1)
    if micros % 1_000_000 == 0:
        return ibis.interval(seconds=micros // 1_000_000)
    return ibis.interval(microseconds=micros)


def _age(birth: ir.DateValue, at: ir.TimestampValue) -> ir.IntegerValue:
    """Whole years from ``birth`` to ``at`` (UTC date), as in ``domain.features.age_in_years``."""
    at_day = at.month() * 100 + at.day()
    birth_day = birth.month() * 100 + birth.day()
    before_birthday = ibis.ifelse(at_day < birth_day, 1, 0)
    return (at.year() - birth.year() - before_birthday).cast("int64")


def _cohort(con: BaseBackend, raw_dir: Path, cohort: Cohort, *, extensions: bool) -> ir.Table:
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
    offset = _interval(anchor.offset) if anchor.offset else None
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
    joined = joined.mutate(age_years=_age(joined.birth_date, joined.prediction_time))
    if cohort.min_age > 0 or cohort.max_age is not None:
        joined = joined.filter(joined.age_years.notnull(), joined.age_years >= cohort.min_age)
        if cohort.max_age is not None:
            joined = joined.filter(joined.age_years <= cohort.max_age)
    return joined


# ======================================================================================= label


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


def _condition_events(con: BaseBackend, raw_dir: Path, label: Label) -> ir.Table:
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


def _sirs_events(obs: ir.Table) -> ir.Table:
    """Times at which ≥ 2 SIRS criteria are met within ``SIRS_SPAN`` (see domain.features)."""
    branches = []
    for criterion in SIRS_CRITERIA:
        conversions = {}
        for code in criterion.loinc:
            conversions.update(convertible_units(criterion.unit, loinc=code))
        value = _converted(obs.value, obs.unit, _Series(_sirs_feature(criterion), conversions))
        abnormal = value > criterion.high
        if criterion.low is not None:
            abnormal = abnormal | (value < criterion.low)
        branches.append((_has_any(obs, criterion.loinc) & abnormal, ibis.literal(criterion.name)))
    flagged = obs.mutate(criterion=ibis.cases(*branches, else_=ibis.null("string")))
    flagged = flagged.filter(flagged.criterion.notnull()).select(
        "patient_id", "criterion", t=flagged.effective_time
    )
    other = flagged.view()
    pairs = flagged.join(
        other,
        [
            flagged.patient_id == other.patient_id,
            other.t > flagged.t - _interval(SIRS_SPAN),
            other.t <= flagged.t,
        ],
    ).select(flagged.patient_id, flagged.t, seen=other.criterion)
    met = pairs.group_by(["patient_id", "t"]).aggregate(n=pairs.seen.nunique())
    met = met.filter(met.n >= 2)
    return met.select("patient_id", encounter_id=ibis.null("string"), onset=met.t)


def _sirs_feature(criterion: Any) -> ObservationFeature:
    return ObservationFeature(
        kind="observation",
        name=f"sirs_{criterion.name}",
        loinc=criterion.loinc,
        unit=criterion.unit,
        aggregation="max",
        window=SIRS_SPAN,
    )


def _label(cohort: ir.Table, events: ir.Table, label: Label) -> ir.Table:
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
    is_positive = (joined.onset > t) & (joined.onset <= t + _interval(label.horizon))
    return joined.group_by("encounter_id").aggregate(
        n_prior=joined.onset.count(where=is_prior),
        n_positive=joined.onset.count(where=is_positive),
    )


# ==================================================================================== features


def _series_key(series: _Series) -> tuple[tuple[str, ...], str | None]:
    return tuple(sorted(series.feature.loinc)), series.feature.unit


def _aggregates(series: Sequence[_Series], rows: ir.Table) -> ir.Table:
    """Aggregate the window rows per encounter into one column per observation feature.

    Each distinct (code set, unit) and each distinct window is computed once as a column, so
    features that share them (``hr_max_6h``, ``hr_slope_6h``) share the work.
    """
    values: dict[tuple[tuple[str, ...], str | None], str] = {}
    windows: dict[timedelta, str] = {}
    columns: dict[str, ir.Value] = {}
    for s in series:
        key = _series_key(s)
        if key not in values:
            values[key] = f"_v{len(values)}"
            member = _has_any(rows, s.feature.loinc)
            converted = _converted(rows.value, rows.unit, s)
            columns[values[key]] = ibis.ifelse(member, converted, ibis.null("float64"))
        if s.feature.window not in windows:
            windows[s.feature.window] = f"_w{len(windows)}"
            start = rows.prediction_time - _interval(s.feature.window)
            columns[windows[s.feature.window]] = rows.effective_time >= start
    if any(s.feature.aggregation == "slope" for s in series):
        seconds = rows.effective_time.epoch_seconds() - rows.prediction_time.epoch_seconds()
        columns["_hours"] = seconds.cast("float64") / 3600.0
    wide = rows.select("encounter_id", "effective_time", **columns)
    aggregates = {}
    for s in series:
        value = wide[values[_series_key(s)]]
        aggregates[s.feature.name] = _aggregate(
            s.feature.aggregation, value, wide[windows[s.feature.window]] & value.notnull(), wide
        )
    return wide.group_by("encounter_id").aggregate(**aggregates)


def _aggregate(
    aggregation: str, value: ir.FloatingValue, cond: ir.BooleanValue, rows: ir.Table
) -> ir.Value:
    if aggregation == "count":
        return value.count(where=cond)
    if aggregation == "min":
        return value.min(where=cond)
    if aggregation == "max":
        return value.max(where=cond)
    if aggregation == "mean":
        return value.mean(where=cond)
    if aggregation == "last":
        key = ibis.struct({"t": rows.effective_time, "v": value})
        return value.argmax(key, where=cond)
    covariance = value.cov(rows._hours, how="pop", where=cond)
    variance = rows._hours.var(how="pop", where=cond)
    return covariance / ibis.ifelse(variance > 0, variance, ibis.null("float64"))


def _window_rows(cohort: ir.Table, obs: ir.Table, longest: timedelta) -> ir.Table:
    """Observation values of each cohort encounter's patient in ``[t - longest, t)``."""
    keys = cohort.select("encounter_id", "patient_id", "prediction_time")
    t = keys.prediction_time
    return keys.join(
        obs,
        [
            keys.patient_id == obs.patient_id,
            obs.effective_time >= t - _interval(longest),
            obs.effective_time < t,
            obs.issued_time.isnull() | (obs.issued_time < t),
        ],
    ).select(keys.encounter_id, keys.prediction_time, *[obs[c] for c in _OBS_COLUMNS])


_OBS_COLUMNS: Final = ("effective_time", "loinc", "loinc_multi", "value", "unit")


def _demographic(feature: DemographicFeature, table: ir.Table, cohort: Cohort) -> ir.Value:
    attribute = feature.attribute
    age = table.age_years
    if attribute == "age":
        return ibis.ifelse(age >= AGE_CAP, AGE_CAP, age).cast("int64")
    if attribute == "age_group":
        branches = []
        for lower, upper, label in age_group_labels(cohort.age_groups):
            in_group = age >= lower if upper is None else (age >= lower) & (age < upper)
            branches.append((in_group, ibis.literal(label)))
        return ibis.cases(*branches, else_=ibis.null("string"))
    if attribute == "sex":
        from_birth_sex = table.birth_sex.substitute(_SEX_FROM_BIRTH_SEX, else_=ibis.null("string"))
        from_gender = table.gender.substitute(_SEX_FROM_GENDER, else_=ibis.null("string"))
        return from_birth_sex.coalesce(from_gender)
    if attribute == "race":
        return table.race
    return table.ethnicity


def feature_columns(stage: DataPreparationStage) -> list[str]:
    """Return the feature table's columns, in order: keys, features, label."""
    names = [*OUTPUT_KEYS, *(f.name for f in stage.features)]
    if stage.label is not None:
        names.append(stage.label.name)
    return names


def build_feature_table(
    con: BaseBackend, raw_dir: Path | str, stage: DataPreparationStage
) -> ir.Table:
    """Return the feature table of ``stage`` over the FHIR NDJSON in ``raw_dir``, unexecuted.

    Args:
        con: a DuckDB or PySpark Ibis connection (:func:`bedside.engines.backends.connect`).
        raw_dir: a folder of ``<Type>.ndjson`` files — ingest's ``raw/`` or a bulk export.
        stage: the pipeline file's ``data_preparation`` stage (cohort, label, features).

    Returns:
        One row per cohort encounter: ``encounter_id``, ``patient_id``, ``prediction_time``
        (UTC), the features in spec order, then the label (0/1) when the stage has one.

    Raises:
        InvalidInput: a feature or label name clashes with a key column or another name; a
            unit-less feature whose observations carry several units.
        NotFound: ``raw_dir`` is not a folder.
    """
    backend_name(con)
    raw = Path(raw_dir)
    _check_names(stage)
    extensions = any(
        isinstance(f, DemographicFeature) and f.attribute in ("sex", "race", "ethnicity")
        for f in stage.features
    )
    cohort = _cohort(con, raw, stage.cohort, extensions=extensions)
    series = _observation_features(stage)
    label = stage.label
    codes = {code for s in series for code in s.feature.loinc}
    if label is not None and label.definition == "sirs":
        codes |= {code for c in SIRS_CRITERIA for code in c.loinc}
    obs = _usable_observations(con, raw, sorted(codes)) if codes else None
    if obs is not None and series:
        _check_single_units(obs, series)

    if label is not None:
        events = (
            _sirs_events(obs)
            if label.definition == "sirs" and obs is not None
            else _condition_events(con, raw, label)
        )
        outcome = _label(cohort, events, label)
        cohort = cohort.left_join(outcome, "encounter_id").select(
            cohort, n_prior=outcome.n_prior.coalesce(0), n_positive=outcome.n_positive.coalesce(0)
        )
        if stage.cohort.exclude_prior_outcome:
            cohort = cohort.filter(cohort.n_prior == 0)

    columns: dict[str, ir.Value] = {}
    if series and obs is not None:
        rows = _window_rows(cohort, obs, max(s.feature.window for s in series))
        aggregated = _aggregates(series, rows)
        cohort = cohort.left_join(aggregated, "encounter_id").select(
            cohort, *[aggregated[s.feature.name] for s in series]
        )
    for feature in stage.features:
        if isinstance(feature, ObservationFeature):
            value = cohort[feature.name]
            if feature.aggregation == "count":
                value = value.coalesce(0).cast("int64")
            else:
                value = value.cast("float64")
            columns[feature.name] = value
        else:
            columns[feature.name] = _demographic(feature, cohort, stage.cohort)
    if label is not None:
        columns[label.name] = ibis.ifelse(
            (cohort.n_positive > 0) | (cohort.n_prior > 0), 1, 0
        ).cast("int64")
    result = cohort.select(
        "encounter_id", "patient_id", prediction_time=cohort.prediction_time, **columns
    )
    return result.order_by(["prediction_time", "encounter_id"])


# =================================================================================== execution


def _to_pandas(frame: pd.DataFrame, stage: DataPreparationStage) -> pd.DataFrame:
    """Give the result the same dtypes whichever engine produced it."""
    out = pd.DataFrame(index=range(len(frame)))
    out["encounter_id"] = frame["encounter_id"].astype(object)
    out["patient_id"] = frame["patient_id"].astype(object)
    out["prediction_time"] = pd.to_datetime(frame["prediction_time"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    for feature in stage.features:
        column = frame[feature.name]
        if isinstance(feature, ObservationFeature):
            dtype = "int64" if feature.aggregation == "count" else "float64"
            out[feature.name] = column.astype(dtype)
        elif feature.attribute == "age":
            out[feature.name] = column.astype("Int64")
        else:
            out[feature.name] = column.astype(object).where(column.notna(), None)
    if stage.label is not None:
        out[stage.label.name] = frame[stage.label.name].astype("int64")
    return out


def extract_features(
    raw_dir: Path | str,
    stage: DataPreparationStage,
    *,
    backend: Backend = "duckdb",
    con: BaseBackend | None = None,
) -> pd.DataFrame:
    """Compute the feature table of ``stage`` over ``raw_dir`` and return it as pandas.

    Args:
        raw_dir: a folder of FHIR NDJSON (``<Type>.ndjson``): ingest's ``raw/`` or an export.
        stage: the ``data_preparation`` stage of a pipeline file.
        backend: ``"duckdb"`` (default) or ``"pyspark"``; ignored when ``con`` is given.
        con: an open connection to reuse (e.g. one Spark session for many extractions).

    Returns:
        The rows of :func:`build_feature_table`, sorted by prediction time then encounter id;
        counts and the label as ``int64``, other observation features ``float64``, ``age``
        nullable ``Int64``, categories as text (``None`` when missing), ``prediction_time`` as
        UTC timestamps.

    Raises:
        InvalidInput: see :func:`build_feature_table`; or the NDJSON could not be read with the
            expected FHIR structure (the message names the folder, never the data).
        NotFound: ``raw_dir`` is not a folder.
    """
    started = time.perf_counter()
    own = con is None
    connection = connect(backend) if con is None else con
    try:
        table = build_feature_table(connection, raw_dir, stage)
        try:
            frame = connection.execute(table)
        except BedsideError:
            raise
        except Exception as exc:
            # engine messages may quote the offending line; never pass them on (PHI)
            logger.error("feature extraction failed in the engine: %s", type(exc).__name__)
            raise InvalidInput(
                f"feature extraction could not read the FHIR NDJSON in {raw_dir}: a file does "
                f"not have the expected FHIR R4 structure ({type(exc).__name__}); ingest it "
                "with bedside ingest first, which quarantines malformed lines",
                details={"folder": str(raw_dir), "engine_error": type(exc).__name__},
            ) from None
    finally:
        if own and backend_name(connection) == "duckdb":
            connection.disconnect()
    result = _to_pandas(frame, stage)
    logger.info(
        "features: %d encounters, %d columns in %.2f s",
        len(result),
        len(result.columns),
        time.perf_counter() - started,
    )
    return result
