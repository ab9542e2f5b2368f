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
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from bedside.domain.features import AGE_CAP, OUTPUT_KEYS, SIRS_CRITERIA, age_group_labels
from bedside.domain.spec_data import (
    Cohort,
    DataPreparationStage,
    DemographicFeature,
    ObservationFeature,
)
from bedside.engines.backends import Backend, backend_name, connect
from bedside.engines.cohort import cohort_table
from bedside.engines.labels import condition_events, label_counts, sirs_events
from bedside.engines.measurements import (
    USABLE_OBSERVATION_STATUSES,
    Series,
    check_single_units,
    converted,
    has_any,
    interval,
    series_for,
    usable_observations,
)
from bedside.errors import BedsideError, InvalidInput

__all__ = [
    "USABLE_OBSERVATION_STATUSES",
    "build_feature_table",
    "extract_features",
    "feature_columns",
]

logger = logging.getLogger(__name__)

_SEX_FROM_BIRTH_SEX: Final = {"F": "female", "M": "male", "UNK": "unknown", "OTH": "other"}
_SEX_FROM_GENDER: Final = {
    "female": "female",
    "male": "male",
    "other": "other",
    "unknown": "unknown",
}


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


def _observation_features(stage: DataPreparationStage) -> list[Series]:
    return [series_for(f) for f in stage.features if isinstance(f, ObservationFeature)]


# ==================================================================================== features


def _series_key(series: Series) -> tuple[tuple[str, ...], str | None]:
    return tuple(sorted(series.feature.loinc)), series.feature.unit


def _aggregates(series: Sequence[Series], rows: ir.Table) -> ir.Table:
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
            member = has_any(rows, s.feature.loinc)
            in_unit = converted(rows.value, rows.unit, s)
            columns[values[key]] = ibis.ifelse(member, in_unit, ibis.null("float64"))
        if s.feature.window not in windows:
            windows[s.feature.window] = f"_w{len(windows)}"
            start = rows.prediction_time - interval(s.feature.window)
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
            obs.effective_time >= t - interval(longest),
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
    cohort = cohort_table(con, raw, stage.cohort, extensions=extensions)
    series = _observation_features(stage)
    label = stage.label
    codes = {code for s in series for code in s.feature.loinc}
    if label is not None and label.definition == "sirs":
        codes |= {code for c in SIRS_CRITERIA for code in c.loinc}
    obs = usable_observations(con, raw, sorted(codes)) if codes else None
    if obs is not None and series:
        check_single_units(obs, series)

    if label is not None:
        events = (
            sirs_events(obs)
            if label.definition == "sirs" and obs is not None
            else condition_events(con, raw, label)
        )
        outcome = label_counts(cohort, events, label)
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
