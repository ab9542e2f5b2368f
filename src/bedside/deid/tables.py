"""De-identify a pandas DataFrame or Arrow table, column by column, under a Safe Harbor policy.

The caller says what each column holds (:class:`ColumnKind`); the same rules as for FHIR apply,
vectorised:

=====================  ========================================================================
kind                   result
=====================  ========================================================================
``keep``, ``state``    unchanged (clinical features; a State may stay under Safe Harbor)
``pseudonym``          HMAC-SHA256 hex — the same pseudonym as the FHIR path gives the id, so
                       ``patient_id`` here joins ``Patient/<pseudonym>`` there
``zip``                3-digit ZIP, ``000`` for restricted prefixes, null when unreadable;
                       the column is renamed (``zip`` → ``zip3``, ``postal`` → ``postal_zip3``)
``birth_date``         birth year (nullable integer); null when the age at ``as_of`` is ≥ 90;
                       renamed (``birth_date`` → ``birth_year``, ``dob`` → ``birth_year``)
``date``               year (nullable integer), or shifted by the patient's keyed offset
``age``                ``"90+"`` for ages ≥ 90 (string column), or capped at 90 (``cap``)
``free_text``          removed, or scrubbed with :func:`~bedside.domain.deid.scrub_text` patterns
``mrn``, ``account``,  removed, or pseudonymised when the policy says ``pseudonymise``
``device``,
``other_id``
every other kind       column removed (names, addresses, phones, SSNs, licences, URLs, …)
=====================  ========================================================================

Removed columns are dropped from the output; the report lists what happened to every column.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, Literal, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from bedside.domain.deid import (
    AGE_TOP_BUCKET,
    ALWAYS_REMOVED,
    Action,
    Category,
    DeidPolicy,
    DeidReport,
    check_key,
    date_shift_offset,
    pseudonym,
)
from bedside.domain.phi_scan import SCRUB_PATTERNS
from bedside.errors import InvalidInput

__all__ = ["ColumnKind", "deidentify_table"]

logger = logging.getLogger(__name__)

C = Category
A = Action


class ColumnKind(enum.StrEnum):
    """What a column holds, and so what de-identification does to it."""

    KEEP = "keep"
    STATE = "state"
    PSEUDONYM = "pseudonym"
    NAME = "name"
    ADDRESS = "address"
    ZIP = "zip"
    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    SSN = "ssn"
    MRN = "mrn"
    HEALTH_PLAN = "health_plan"
    ACCOUNT = "account"
    LICENSE = "license"
    VEHICLE = "vehicle"
    DEVICE = "device"
    URL = "url"
    IP_ADDRESS = "ip_address"
    BIOMETRIC = "biometric"
    PHOTO = "photo"
    OTHER_ID = "other_id"
    BIRTH_DATE = "birth_date"
    DATE = "date"
    AGE = "age"
    FREE_TEXT = "free_text"


K = ColumnKind

#: The Safe Harbor category of each kind (``keep`` and ``state`` have none).
CATEGORY: Final[Mapping[ColumnKind, Category]] = {
    K.PSEUDONYM: C.OTHER, K.NAME: C.NAMES, K.ADDRESS: C.GEOGRAPHY, K.ZIP: C.GEOGRAPHY,
    K.PHONE: C.PHONE, K.FAX: C.FAX, K.EMAIL: C.EMAIL, K.SSN: C.SSN, K.MRN: C.MEDICAL_RECORD,
    K.HEALTH_PLAN: C.HEALTH_PLAN, K.ACCOUNT: C.ACCOUNT, K.LICENSE: C.LICENSE,
    K.VEHICLE: C.VEHICLE, K.DEVICE: C.DEVICE, K.URL: C.URL, K.IP_ADDRESS: C.IP_ADDRESS,
    K.BIOMETRIC: C.BIOMETRIC, K.PHOTO: C.PHOTO, K.OTHER_ID: C.OTHER, K.BIRTH_DATE: C.DATES,
    K.DATE: C.DATES, K.AGE: C.DATES, K.FREE_TEXT: C.OTHER,
}  # fmt: skip
_IDENTIFIER_KINDS: Final = frozenset({K.MRN, K.ACCOUNT, K.DEVICE, K.OTHER_ID})
_ZIP_RE: Final = r"^\s*(\d{3})(?:\d{2}(?:-?\d{4})?)?\s*$"

T = TypeVar("T", pd.DataFrame, pa.Table)


def deidentify_table(
    table: T,
    mapping: Mapping[str, ColumnKind | str],
    *,
    policy: DeidPolicy,
    key: bytes,
    as_of: date,
    patient_column: str | None = None,
    unmapped: Literal["error", "keep", "remove"] = "error",
) -> tuple[T, DeidReport]:
    """Return a de-identified copy of ``table`` and the report of what was done.

    Args:
        table: a pandas DataFrame or a pyarrow Table (the result has the same type).
        mapping: column → what it holds (a :class:`ColumnKind` or its value, e.g. ``"zip"``).
        policy: the de-identification policy.
        key: the secret key (bytes, ≥ 16) for pseudonyms and date shifts; from the key ring.
        as_of: the date ages are computed at (the dataset's release date).
        patient_column: the column naming each row's patient, needed to shift dates.
        unmapped: what to do with columns missing from ``mapping``: fail (default), keep them,
            or remove them.

    Raises:
        InvalidInput: a mapped column is missing, a kind is unknown, a column is unmapped (with
            ``unmapped="error"``), or dates must be shifted without ``patient_column``.
    """
    key = check_key(key)
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    kinds = _resolve(frame, mapping, unmapped)
    shifting = policy.dates == "shift" and K.DATE in kinds.values()
    if shifting and (patient_column is None or patient_column not in frame.columns):
        raise InvalidInput(
            "Shifting dates needs the patient of each row: pass patient_column= naming a column "
            f"of the table (got {patient_column!r}), or set date_shift_days to 0 (years only)."
        )
    report = DeidReport.start(policy, key)
    report.records["rows"] = len(frame)
    offsets = _offsets(frame[patient_column], key, policy) if shifting else None
    columns: dict[Any, pd.Series] = {}
    for column, kind in kinds.items():
        series = frame[column]
        result, action = _apply(series, kind, policy, key, as_of, offsets, report)
        if result is None:
            report.columns[str(column)] = action
            continue
        name = _renamed(column, kind)
        if name != column:
            if name in frame.columns or name in columns:
                raise InvalidInput(
                    f"Column {column!s} becomes {name!s} after de-identification, but the table "
                    f"already has a column {name!s}. Rename one of them."
                )
            action += f" (renamed {name!s})"
        report.columns[str(column)] = action
        columns[name] = result.rename(name)
    out = pd.DataFrame(columns, index=frame.index)
    logger.info(
        "de-identified a table: %d rows, %d columns kept of %d",
        len(frame),
        out.shape[1],
        frame.shape[1],
    )
    if isinstance(table, pa.Table):
        return pa.Table.from_pandas(out, preserve_index=False), report
    return out, report


def _renamed(column: Any, kind: ColumnKind) -> Any:
    """Return the output name of a generalised column whose name announces PHI.

    ``zip`` holding 3 digits becomes ``zip3`` (``postal_code`` → ``postal_code_zip3``) and a
    birth date holding the year becomes ``birth_year`` (``date`` → ``year`` in the name), so
    the name says what the column holds and a PHI scan does not flag it by name.
    """
    if not isinstance(column, str) or kind not in (K.ZIP, K.BIRTH_DATE):
        return column
    lowered = column.lower()
    if kind == K.ZIP:
        return column + "3" if lowered.endswith("zip") else column + "_zip3"
    if "date" in lowered:
        start = lowered.index("date")
        return column[:start] + "year" + column[start + 4 :]
    return "birth_year" if lowered in ("dob", "birthday") else column + "_birth_year"


def _resolve(
    frame: pd.DataFrame, mapping: Mapping[str, ColumnKind | str], unmapped: str
) -> dict[Any, ColumnKind]:
    missing = [str(c) for c in mapping if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"The de-identification mapping names {len(missing)} column(s) the table does not "
            f"have: {', '.join(sorted(missing))}. Fix the mapping or the table."
        )
    bad = [f"{c}={k!r}" for c, k in mapping.items() if k not in ColumnKind._value2member_map_]
    if bad:
        raise InvalidInput(
            f"Unknown column kind(s): {', '.join(bad)}; expected one of "
            f"{', '.join(k.value for k in ColumnKind)}."
        )
    rest = [c for c in frame.columns if c not in mapping]
    if rest and unmapped == "error":
        raise InvalidInput(
            f"{len(rest)} column(s) have no de-identification kind: "
            f"{', '.join(str(c) for c in rest)}. Map each one (e.g. 'keep' for a clinical "
            "feature), or pass unmapped='keep' or 'remove'."
        )
    kinds: dict[Any, ColumnKind] = {}
    for column in frame.columns:
        if column in mapping:
            kinds[column] = ColumnKind(mapping[column])
        elif unmapped == "keep":
            kinds[column] = K.KEEP
        else:
            kinds[column] = K.OTHER_ID  # removed as an unknown identifier: fail closed
    return kinds


def _apply(
    series: pd.Series,
    kind: ColumnKind,
    policy: DeidPolicy,
    key: bytes,
    as_of: date,
    offsets: np.ndarray | None,
    report: DeidReport,
) -> tuple[pd.Series | None, str]:
    """Return the new column (None when removed) and a word for what was done."""
    if kind in (K.KEEP, K.STATE):
        return series, "kept"
    category = CATEGORY[kind]
    present = int(series.notna().sum())
    if kind == K.PSEUDONYM:
        report.count(category, A.PSEUDONYMISED, present)
        return _pseudonyms(series, key, "resource"), "pseudonymised"
    pseudonymise = policy.identifiers == "pseudonymise" and category not in ALWAYS_REMOVED
    if kind in _IDENTIFIER_KINDS and pseudonymise:
        report.count(category, A.PSEUDONYMISED, present)
        return _pseudonyms(series, key, "identifier", prefix="|"), "pseudonymised"
    if kind == K.ZIP:
        return _zip3(series, policy, report), "generalised: 3-digit ZIP"
    if kind == K.BIRTH_DATE:
        return _birth_years(series, as_of, report), "generalised: birth year (none at 90+)"
    if kind == K.DATE:
        if offsets is None:
            return _years(series, report), "generalised: year"
        return _shifted(series, offsets, report), f"shifted: ±{policy.date_shift_days} days"
    if kind == K.AGE:
        return _ages(series, policy, report), "generalised: ages 90+ aggregated"
    if kind == K.FREE_TEXT and policy.free_text == "scrub":
        return _scrubbed(series, report), "scrubbed"
    report.count(category, A.REMOVED, present)
    return None, "removed"


def _pseudonyms(series: pd.Series, key: bytes, namespace: str, prefix: str = "") -> pd.Series:
    values = series
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if bool((whole == np.floor(whole)).all()):
            values = values.astype("Int64")  # ids upcast to float by a null: 12.0 means "12"
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hashed = np.array(
        [pseudonym(key, prefix + str(u), namespace=namespace) for u in uniques] + [None],
        dtype=object,
    )
    return pd.Series(hashed[codes], index=series.index, dtype="string", name=series.name)


def _offsets(patients: pd.Series, key: bytes, policy: DeidPolicy) -> np.ndarray:
    """Return each row's day offset (NaN where the patient is missing)."""
    codes, uniques = pd.factorize(patients, use_na_sentinel=True)
    days = np.array(
        [date_shift_offset(key, str(u), policy.date_shift_days) for u in uniques] + [np.nan],
        dtype=np.float64,
    )
    result: np.ndarray = days[codes]
    return result


def _zip3(series: pd.Series, policy: DeidPolicy, report: DeidReport) -> pd.Series:
    if pd.api.types.is_integer_dtype(series.dtype):
        numbers = series.astype("Int64")
        text = numbers.astype("string")
        # Leading zeros are lost in integer ZIPs (2139 is 02139): pad to 5 digits, or to 9
        # for a ZIP+4 written as one number.
        plus4 = (numbers >= 100_000).fillna(False).astype(bool)
        text = text.str.zfill(5).mask(plus4, text.str.zfill(9))
    else:
        text = series.astype("string")
    prefix = text.str.extract(_ZIP_RE, expand=False).astype("string")
    restricted = prefix.isin(policy.restricted_zip3).fillna(False).astype(bool)
    out = prefix.mask(restricted, "000")
    generalised = int(out.notna().sum())
    report.count(C.GEOGRAPHY, A.GENERALISED, generalised)
    report.count(C.GEOGRAPHY, A.REMOVED, int(series.notna().sum()) - generalised)
    return out.rename(series.name)


def _as_datetimes(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    return pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")


def _birth_years(series: pd.Series, as_of: date, report: DeidReport) -> pd.Series:
    when = _as_datetimes(series)
    year, month, day = when.dt.year, when.dt.month, when.dt.day
    before_birthday = (month > as_of.month) | ((month == as_of.month) & (day > as_of.day))
    age = as_of.year - year - before_birthday.astype("Int64")
    years = year.astype("Int64").mask(age >= 90)
    kept = int(years.notna().sum())
    report.count(C.DATES, A.GENERALISED, kept)
    report.count(C.DATES, A.REMOVED, int(series.notna().sum()) - kept)
    return years.rename(series.name)


def _years(series: pd.Series, report: DeidReport) -> pd.Series:
    years = _as_datetimes(series).dt.year.astype("Int64")
    kept = int(years.notna().sum())
    report.count(C.DATES, A.GENERALISED, kept)
    report.count(C.DATES, A.REMOVED, int(series.notna().sum()) - kept)
    return years.rename(series.name)


def _shifted(series: pd.Series, offsets: np.ndarray, report: DeidReport) -> pd.Series:
    when = _as_datetimes(series)
    shifted = when + pd.to_timedelta(offsets, unit="D")  # NaN offset (no patient) → NaT
    kept = int(shifted.notna().sum())
    report.count(C.DATES, A.SHIFTED, kept)
    report.count(C.DATES, A.REMOVED, int(series.notna().sum()) - kept)
    return pd.Series(shifted, index=series.index, name=series.name)


def _ages(series: pd.Series, policy: DeidPolicy, report: DeidReport) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    already = series.astype("string").str.strip().eq(AGE_TOP_BUCKET).fillna(False).astype(bool)
    if bool((numbers < 0).any()):
        raise InvalidInput(
            f"Column {series.name!s} (age) has negative values; ages must be 0 or more years."
        )
    top = (numbers >= 90).fillna(False).astype(bool) | already
    readable = numbers.notna() | already
    report.count(C.DATES, A.GENERALISED, int(top.sum()))
    report.count(C.DATES, A.REMOVED, int(series.notna().sum()) - int(readable.sum()))
    if policy.age_over_89 == "cap":
        capped = numbers.mask(top, 90)
        return capped.rename(series.name)
    text = numbers.astype("Float64").astype("string").str.replace(r"\.0$", "", regex=True)
    return text.mask(top, AGE_TOP_BUCKET).rename(series.name)


def _scrubbed(series: pd.Series, report: DeidReport) -> pd.Series:
    text = series.astype("string")
    total = 0
    for _, regex, tag in SCRUB_PATTERNS:
        total += int(text.str.count(regex).sum())
        text = text.str.replace(regex, tag, regex=True)
    report.count(C.OTHER, A.SCRUBBED, total)
    return text.rename(series.name)
