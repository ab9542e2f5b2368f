"""Data quality of a prepared feature table (the pipeline's ``check: data_quality``).

:func:`assess_quality` runs five kinds of check on a pandas DataFrame and returns a
:class:`QualityReport` of aggregates only — counts, shares, rounded quartiles — never a row, an
id or a single patient's value, so the report can be shown to a governance board, logged and
stored beside the dataset:

``schema``
    required columns present, expected column kinds, no mixed-type text columns, no infinite
    numbers, no duplicate column names.
``completeness``
    share of non-missing values per column against ``min_completeness``.
``plausibility``
    numbers outside a physiologic range (heart rate 20–300 /min, temperature 25–45 Cel …); the
    range of a column comes from an explicit mapping, from the feature's LOINC code and unit in
    the pipeline file, or from its name prefix (``heart_rate_max_6h`` → ``heart_rate``). Counts
    and slopes are never range-checked.
``duplicates``
    identical rows, and repeated keys (e.g. one row per encounter).
``label``
    binary, no missing values, both classes present; prevalence inside a sane band (default
    1 %–50 %) or a warning; prevalence per split when the table is split.

Each result is ``pass``, ``warn`` (worth a look, never blocking), ``fail`` or ``info``; the report
``passed`` when nothing failed, and is ``blocking`` when it failed and the check says
``blocker: true``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from bedside.domain.spec_data import DataQualityCheck, ObservationFeature
from bedside.errors import InvalidInput

__all__ = [
    "DEFAULT_RANGES",
    "LOINC_RANGES",
    "CheckResult",
    "ColumnKind",
    "ColumnProfile",
    "PlausibleRange",
    "QualityConfig",
    "QualityReport",
    "Status",
    "assess_quality",
    "ranges_for_columns",
]


class Status(enum.StrEnum):
    """The verdict of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"


ColumnKind = Literal["numeric", "integer", "boolean", "string", "datetime", "categorical"]
_KINDS: Final = ("numeric", "integer", "boolean", "string", "datetime", "categorical")


@dataclass(frozen=True, slots=True)
class PlausibleRange:
    """The physiologically possible values of a measurement, in one unit (inclusive bounds)."""

    low: float
    high: float
    unit: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        """Return the range as plain JSON values."""
        return {"low": self.low, "high": self.high, "unit": self.unit, "label": self.label}


def _r(low: float, high: float, unit: str, label: str) -> PlausibleRange:
    return PlausibleRange(low, high, unit, label)


_HEART_RATE = _r(20, 300, "/min", "Heart rate")
_RESP_RATE = _r(2, 80, "/min", "Respiratory rate")
_TEMPERATURE = _r(25, 45, "Cel", "Body temperature")
_SPO2 = _r(0, 100, "%", "Oxygen saturation")
_LACTATE = _r(0, 30, "mmol/L", "Lactate")
_WBC = _r(0, 200, "10*3/uL", "White blood cell count")
_PLATELETS = _r(0, 2000, "10*3/uL", "Platelet count")
_CREATININE = _r(0, 20, "mg/dL", "Creatinine")
_BILIRUBIN = _r(0, 50, "mg/dL", "Bilirubin")
_POTASSIUM = _r(1, 10, "mmol/L", "Potassium")
_SYSTOLIC = _r(40, 300, "mm[Hg]", "Systolic blood pressure")
_DIASTOLIC = _r(10, 200, "mm[Hg]", "Diastolic blood pressure")
_MEAN_BP = _r(20, 250, "mm[Hg]", "Mean arterial pressure")
_AGE = _r(0, 120, "a", "Age")

#: Column-name prefix → range. A column matches the longest prefix it equals or starts with
#: followed by ``_`` (``heart_rate_max_6h`` → ``heart_rate``).
DEFAULT_RANGES: Final[Mapping[str, PlausibleRange]] = {
    "heart_rate": _HEART_RATE,
    "hr": _HEART_RATE,
    "pulse": _HEART_RATE,
    "resp_rate": _RESP_RATE,
    "respiratory_rate": _RESP_RATE,
    "rr": _RESP_RATE,
    "temperature": _TEMPERATURE,
    "temp": _TEMPERATURE,
    "spo2": _SPO2,
    "sao2": _SPO2,
    "oxygen_saturation": _SPO2,
    "lactate": _LACTATE,
    "wbc": _WBC,
    "leukocytes": _WBC,
    "white_cell_count": _WBC,
    "platelets": _PLATELETS,
    "platelet_count": _PLATELETS,
    "creatinine": _CREATININE,
    "bilirubin": _BILIRUBIN,
    "potassium": _POTASSIUM,
    "systolic_bp": _SYSTOLIC,
    "systolic": _SYSTOLIC,
    "sbp": _SYSTOLIC,
    "diastolic_bp": _DIASTOLIC,
    "diastolic": _DIASTOLIC,
    "dbp": _DIASTOLIC,
    "mean_bp": _MEAN_BP,
    "map": _MEAN_BP,
    "mean_arterial_pressure": _MEAN_BP,
    "age": _AGE,
}

#: LOINC code → range (REGULATORY §10.4), used for features declared in the pipeline file.
LOINC_RANGES: Final[Mapping[str, PlausibleRange]] = {
    "8867-4": _HEART_RATE,
    "9279-1": _RESP_RATE,
    "8310-5": _TEMPERATURE,
    "8480-6": _SYSTOLIC,
    "8462-4": _DIASTOLIC,
    "8478-0": _MEAN_BP,
    "59408-5": _SPO2,
    "2708-6": _SPO2,
    "2524-7": _LACTATE,
    "32693-4": _LACTATE,
    "6690-2": _WBC,
    "777-3": _PLATELETS,
    "2160-0": _CREATININE,
    "2823-3": _POTASSIUM,
    "1975-2": _BILIRUBIN,
}

# Name tokens of derived values whose scale is not the measurement's: never range-checked.
_UNRANGED_TOKENS: Final = frozenset({"count", "n", "slope", "delta", "change", "diff", "std", "sd"})
_UNRANGED_AGGREGATIONS: Final = frozenset({"count", "slope"})


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """What to check and how strictly.

    Args:
        min_completeness: the share of non-missing values every column needs.
        blocker: whether a failure stops the pipeline.
        label_col: the outcome column (binary); ``None`` skips the label checks.
        split_col: the split column, for prevalence per split (ignored when absent).
        key_columns: columns that identify a row (e.g. ``("encounter_id",)``); repeats fail.
        required_columns: columns that must be present.
        expected_kinds: column → kind (numeric, integer, boolean, string, datetime,
            categorical) the column must have.
        completeness_exempt: columns not held to ``min_completeness`` (reported as info),
            e.g. a lab that is often not measured, where missing is itself informative.
        ranges: explicit column → range; wins over feature and name matching.
        features: the pipeline file's features, to find ranges by LOINC code and unit.
        use_default_ranges: match remaining columns to :data:`DEFAULT_RANGES` by name.
        max_implausible_share: a ranged column fails above this share of implausible values;
            any implausible value below it is a warning.
        prevalence_band: label prevalence outside ``[low, high]`` is a warning.
        min_cell_size: quartiles and category shares are shown only for at least this many
            values (small-cell suppression).
    """

    min_completeness: float = 0.95
    blocker: bool = True
    label_col: str | None = None
    split_col: str | None = "split"
    key_columns: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()
    expected_kinds: Mapping[str, ColumnKind] = field(default_factory=dict)
    completeness_exempt: tuple[str, ...] = ()
    ranges: Mapping[str, PlausibleRange] = field(default_factory=dict)
    features: tuple[Any, ...] = ()
    use_default_ranges: bool = True
    max_implausible_share: float = 0.001
    prevalence_band: tuple[float, float] = (0.01, 0.5)
    min_cell_size: int = 11

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_completeness <= 1.0:
            raise InvalidInput(
                f"min_completeness is {self.min_completeness}; expected a share from 0 to 1."
            )
        if not 0.0 <= self.max_implausible_share < 1.0:
            raise InvalidInput(
                f"max_implausible_share is {self.max_implausible_share}; expected 0 ≤ share < 1."
            )
        low, high = self.prevalence_band
        if not 0.0 <= low < high <= 1.0:
            raise InvalidInput(
                f"prevalence_band is {self.prevalence_band}; expected (low, high) with "
                "0 ≤ low < high ≤ 1."
            )
        for column, kind in self.expected_kinds.items():
            if kind not in _KINDS:
                raise InvalidInput(
                    f"expected_kinds[{column!r}] is {kind!r}; expected one of {', '.join(_KINDS)}."
                )
        if self.min_cell_size < 1:
            raise InvalidInput(f"min_cell_size is {self.min_cell_size}; expected at least 1.")

    @classmethod
    def from_check(cls, check: DataQualityCheck, **options: Any) -> QualityConfig:
        """Build the configuration from the pipeline file's ``data_quality`` check."""
        return cls(min_completeness=check.min_completeness, blocker=check.blocker, **options)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One verdict: which check, on which column (if any), and the aggregates behind it."""

    check: str
    status: Status
    message: str
    column: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON values."""
        return {
            "check": self.check,
            "column": self.column,
            "status": str(self.status),
            "message": self.message,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """Aggregates describing one column (quartiles/categories only for large enough cells)."""

    name: str
    kind: str
    dtype: str
    completeness: float
    distinct: int | None
    quartiles: tuple[float, float, float] | None = None
    categories: Mapping[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as plain JSON values."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "completeness": self.completeness,
            "distinct": self.distinct,
            "quartiles": list(self.quartiles) if self.quartiles is not None else None,
            "categories": dict(self.categories) if self.categories is not None else None,
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The outcome of :func:`assess_quality`: every result, and a profile of every column."""

    rows: int
    columns: int
    min_completeness: float
    blocker: bool
    results: tuple[CheckResult, ...]
    profiles: tuple[ColumnProfile, ...] = ()
    label_col: str | None = None
    min_cell_size: int = 11

    @property
    def passed(self) -> bool:
        """Return whether no check failed (warnings do not fail)."""
        return not any(r.status is Status.FAIL for r in self.results)

    @property
    def blocking(self) -> bool:
        """Return whether the pipeline must stop: a check failed and it is a blocker."""
        return self.blocker and not self.passed

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """Return the failed results."""
        return tuple(r for r in self.results if r.status is Status.FAIL)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        """Return the results that warn."""
        return tuple(r for r in self.results if r.status is Status.WARN)

    def by_check(self, check: str) -> tuple[CheckResult, ...]:
        """Return the results of one kind of check (``completeness``, ``plausibility`` …)."""
        return tuple(r for r in self.results if r.check == check)

    def status_counts(self) -> dict[str, int]:
        """Return how many results have each status."""
        return {str(s): sum(1 for r in self.results if r.status is s) for s in Status}

    def summary(self) -> dict[str, Any]:
        """Return the short form kept in a dataset manifest."""
        return {
            "passed": self.passed,
            "blocking": self.blocking,
            "blocker": self.blocker,
            "min_completeness": self.min_completeness,
            "rows": self.rows,
            "columns": self.columns,
            "status_counts": self.status_counts(),
            "failed": [f"{r.check}:{r.column}" if r.column else r.check for r in self.failures],
            "warnings": [f"{r.check}:{r.column}" if r.column else r.check for r in self.warnings],
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the whole report as plain JSON values (aggregates only)."""
        return {
            "kind": "bedside-data-quality",
            "version": 1,
            **self.summary(),
            "label_col": self.label_col,
            "min_cell_size": self.min_cell_size,
            "results": [r.to_dict() for r in self.results],
            "profiles": [p.to_dict() for p in self.profiles],
        }


# -------------------------------------------------------------------------------- range matching


def ranges_for_columns(
    columns: Iterable[str],
    *,
    ranges: Mapping[str, PlausibleRange] | None = None,
    features: Sequence[Any] = (),
    use_default_ranges: bool = True,
) -> dict[str, PlausibleRange]:
    """Return the plausible range of each column that has one.

    Order of precedence: an explicit ``ranges`` entry; then a pipeline-file observation feature
    of that name, by its LOINC codes, when its unit is the range's unit (a feature declared in
    another unit, e.g. ``[degF]``, gets no default range); then the longest name prefix in
    :data:`DEFAULT_RANGES`. Count and slope features never get a range.
    """
    explicit = dict(ranges or {})
    declared = {f.name: f for f in features if isinstance(f, ObservationFeature)}
    result: dict[str, PlausibleRange] = {}
    for column in columns:
        name = str(column)
        if name in explicit:
            result[name] = explicit[name]
            continue
        feature = declared.get(name)
        if feature is not None:
            if feature.aggregation in _UNRANGED_AGGREGATIONS:
                continue
            found = next((LOINC_RANGES[c] for c in feature.loinc if c in LOINC_RANGES), None)
            if found is not None and feature.unit in (None, found.unit):
                result[name] = found
            continue
        if not use_default_ranges:
            continue
        tokens = name.lower().split("_")
        if _UNRANGED_TOKENS.intersection(tokens):
            continue
        lowered = name.lower()
        matches = [
            prefix
            for prefix in DEFAULT_RANGES
            if lowered == prefix or lowered.startswith(prefix + "_")
        ]
        if matches:
            result[name] = DEFAULT_RANGES[max(matches, key=len)]
    return result


# ---------------------------------------------------------------------------------- the checks


def assess_quality(frame: pd.DataFrame, config: QualityConfig | None = None) -> QualityReport:
    """Check ``frame`` as the module docstring describes and return the report.

    Raises:
        InvalidInput: ``frame`` is not a DataFrame.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"Data quality needs a pandas DataFrame, not {type(frame).__name__}.")
    config = config or QualityConfig()
    results: list[CheckResult] = []
    if len(frame) == 0:
        results.append(
            CheckResult("rows", Status.FAIL, "The dataset has no rows.", metrics={"rows": 0})
        )
    results += _schema(frame, config)
    unique_columns = not frame.columns.duplicated().any()
    if unique_columns:
        results += _completeness(frame, config)
        results += _plausibility(frame, config)
        results += _duplicates(frame, config)
        if config.label_col is not None:
            results += _label(frame, config)
    profiles = tuple(_profile(frame, c, config) for c in frame.columns) if unique_columns else ()
    return QualityReport(
        rows=len(frame),
        columns=len(frame.columns),
        min_completeness=config.min_completeness,
        blocker=config.blocker,
        results=tuple(results),
        profiles=profiles,
        label_col=config.label_col,
        min_cell_size=config.min_cell_size,
    )


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    return str(dtype)


def _kind_matches(actual: str, expected: str) -> bool:
    if expected == "numeric":
        return actual in ("numeric", "integer")
    return actual == expected


def _schema(frame: pd.DataFrame, config: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    for column in duplicated:
        out.append(
            CheckResult(
                "schema",
                Status.FAIL,
                f"Column {column!r} appears more than once; give every column its own name.",
                column=column,
                metrics={"rule": "duplicate_column"},
            )
        )
    wanted = [
        *config.required_columns,
        *config.key_columns,
        *config.expected_kinds,
        *([config.label_col] if config.label_col else []),
    ]
    for column in dict.fromkeys(wanted):
        if column not in frame.columns:
            out.append(
                CheckResult(
                    "schema",
                    Status.FAIL,
                    f"Required column {column!r} is missing.",
                    column=column,
                    metrics={"rule": "missing_column"},
                )
            )
    if duplicated:
        return out
    for column, expected in config.expected_kinds.items():
        if column in frame.columns:
            actual = _kind(frame[column])
            if not _kind_matches(actual, expected):
                out.append(
                    CheckResult(
                        "schema",
                        Status.FAIL,
                        f"Column {column!r} holds {actual} values ({frame[column].dtype}); "
                        f"expected {expected}.",
                        column=column,
                        metrics={"rule": "kind", "expected": expected, "actual": actual},
                    )
                )
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_object_dtype(series.dtype):
            types = sorted({type(v).__name__ for v in series.dropna()})
            if len(types) > 1:
                out.append(
                    CheckResult(
                        "schema",
                        Status.FAIL,
                        f"Column {column!r} mixes value types ({', '.join(types)}); a column "
                        "must hold one kind of value.",
                        column=str(column),
                        metrics={"rule": "mixed_types", "types": types},
                    )
                )
        elif pd.api.types.is_float_dtype(series.dtype):
            infinite = int(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)).sum())
            if infinite:
                out.append(
                    CheckResult(
                        "schema",
                        Status.FAIL,
                        f"Column {column!r} has {infinite} infinite value(s); a feature must be a "
                        "finite number or missing.",
                        column=str(column),
                        metrics={"rule": "infinite", "count": infinite},
                    )
                )
    if not out:
        out.append(
            CheckResult(
                "schema",
                Status.PASS,
                f"All {len(frame.columns)} columns are present with the expected kinds; no mixed "
                "types, no infinite numbers.",
                metrics={"columns": len(frame.columns)},
            )
        )
    return out


def _completeness(frame: pd.DataFrame, config: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    n = len(frame)
    present = frame.notna().sum()
    exempt = set(config.completeness_exempt)
    for column in frame.columns:
        count = int(present[column])
        share = count / n if n else 0.0
        metrics = {
            "completeness": round(share, 6),
            "present": count,
            "missing": n - count,
            "threshold": config.min_completeness,
        }
        pct = f"{share:.1%}"
        if column in exempt:
            status, message = Status.INFO, f"{pct} complete (exempt from the threshold)."
        elif share >= config.min_completeness and n:
            status, message = Status.PASS, f"{pct} complete."
        else:
            status = Status.FAIL
            message = (
                f"{pct} complete, below the required {config.min_completeness:.0%}: "
                f"{n - count} of {n} values are missing."
            )
        out.append(CheckResult("completeness", status, message, str(column), metrics))
    return out


def _plausibility(frame: pd.DataFrame, config: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    ranges = ranges_for_columns(
        frame.columns,
        ranges=config.ranges,
        features=config.features,
        use_default_ranges=config.use_default_ranges,
    )
    for column, rng in ranges.items():
        series = frame[column]
        if _kind(series) not in ("numeric", "integer", "string"):
            continue
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        readable = ~np.isnan(values)
        unreadable = int((series.notna().to_numpy() & ~readable).sum())
        checked = int(readable.sum())
        if checked == 0 and unreadable:
            continue  # a text column that merely shares a prefix (e.g. temp_unit)
        below = int((values[readable] < rng.low).sum())
        above = int((values[readable] > rng.high).sum())
        bad = below + above
        share = bad / checked if checked else 0.0
        metrics = {
            "range": rng.to_dict(),
            "checked": checked,
            "below": below,
            "above": above,
            "implausible_share": round(share, 6),
            "not_numeric": unreadable,
            "tolerance": config.max_implausible_share,
        }
        span = f"{rng.low:g}–{rng.high:g} {rng.unit}"
        if bad == 0:
            status, message = Status.PASS, f"All {checked} values within {span}."
        else:
            where = f"{below} below and {above} above {span}"
            if share > config.max_implausible_share:
                status = Status.FAIL
                message = (
                    f"{bad} of {checked} values ({share:.2%}) are implausible ({where}), more "
                    f"than the {config.max_implausible_share:.2%} tolerated: check units and "
                    "data entry."
                )
            else:
                status = Status.WARN
                message = f"{bad} of {checked} values ({share:.2%}) are implausible ({where})."
        if unreadable and status is Status.PASS:
            status = Status.INFO
            message += f" {unreadable} value(s) are not numbers (e.g. a top-coded age)."
        out.append(CheckResult("plausibility", status, message, str(column), metrics))
    return out


def _duplicates(frame: pd.DataFrame, config: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    try:
        rows = int(frame.duplicated().sum())
    except TypeError:
        return [
            CheckResult(
                "duplicates",
                Status.FAIL,
                "Duplicate rows cannot be checked: some cells hold lists or other unhashable "
                "values; a feature table holds one value per cell.",
                metrics={"rule": "unhashable"},
            )
        ]
    out.append(
        CheckResult(
            "duplicates",
            Status.FAIL if rows else Status.PASS,
            f"{rows} row(s) repeat an earlier row exactly." if rows else "No repeated rows.",
            metrics={"rule": "rows", "duplicates": rows},
        )
    )
    keys = [k for k in config.key_columns if k in frame.columns]
    if keys and len(keys) == len(config.key_columns):
        repeats = int(frame.duplicated(subset=keys).sum())
        label = " + ".join(keys)
        out.append(
            CheckResult(
                "duplicates",
                Status.FAIL if repeats else Status.PASS,
                (
                    f"{repeats} row(s) repeat the key ({label}) of an earlier row; the key must "
                    "identify one row."
                    if repeats
                    else f"Every row has its own key ({label})."
                ),
                column=label,
                metrics={"rule": "key", "key": keys, "duplicates": repeats},
            )
        )
    return out


def _binary(series: pd.Series) -> pd.Series | None:
    """Return the label as 0/1 integers, or None when it is not binary."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(int)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or not numeric.isin([0, 1]).all():
        return None
    return numeric.astype(int)


def _label(frame: pd.DataFrame, config: QualityConfig) -> list[CheckResult]:
    column = config.label_col
    assert column is not None
    if column not in frame.columns:
        return []  # reported by the schema check
    series = frame[column]
    missing = int(series.isna().sum())
    labels = _binary(series)
    if labels is None:
        return [
            CheckResult(
                "label",
                Status.FAIL,
                f"Label {column!r} is not binary: expected 0/1 or true/false values only.",
                column=column,
                metrics={"rule": "binary"},
            )
        ]
    out: list[CheckResult] = []
    if missing:
        out.append(
            CheckResult(
                "label",
                Status.FAIL,
                f"Label {column!r} is missing in {missing} row(s); every row needs an outcome.",
                column=column,
                metrics={"rule": "missing", "missing": missing},
            )
        )
    n = len(labels)
    events = int(labels.sum())
    prevalence = events / n if n else 0.0
    metrics: dict[str, Any] = {
        "rule": "prevalence",
        "rows": n,
        "events": events,
        "prevalence": round(prevalence, 6),
        "band": list(config.prevalence_band),
    }
    split = config.split_col
    if split is not None and split in frame.columns:
        per_split = {}
        for name, part in frame.loc[labels.index].groupby(split, sort=True, observed=True):
            part_labels = labels.loc[part.index]
            per_split[str(name)] = {
                "rows": len(part_labels),
                "events": int(part_labels.sum()),
                "prevalence": round(float(part_labels.mean()), 6) if len(part_labels) else None,
            }
        metrics["per_split"] = per_split
    low, high = config.prevalence_band
    if n == 0 or events in (0, n):
        status = Status.FAIL
        message = (
            f"Label {column!r} has only one class ({events} events in {n} rows); a model needs "
            "both outcomes to learn from."
        )
    elif not low <= prevalence <= high:
        status = Status.WARN
        message = (
            f"Prevalence {prevalence:.2%} ({events} events in {n} rows) is outside the expected "
            f"{low:.0%}–{high:.0%}: check the label definition and the cohort."
        )
    else:
        status = Status.PASS
        message = f"Prevalence {prevalence:.2%} ({events} events in {n} rows)."
    out.append(CheckResult("label", status, message, column, metrics))
    return out


def _sig(value: float, digits: int = 4) -> float:
    if value == 0 or not math.isfinite(value):
        return float(value)
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _profile(frame: pd.DataFrame, column: Any, config: QualityConfig) -> ColumnProfile:
    series = frame[column]
    n = len(series)
    present = series.dropna()
    kind = _kind(series)
    distinct: int | None
    try:
        distinct = int(present.nunique())
    except TypeError:  # cells holding dicts or sets cannot be counted
        distinct = None
    quartiles = None
    categories = None
    if kind in ("numeric", "integer") and len(present) >= config.min_cell_size:
        values = present.to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) >= config.min_cell_size:
            q = np.quantile(values, [0.25, 0.5, 0.75])
            quartiles = (_sig(float(q[0])), _sig(float(q[1])), _sig(float(q[2])))
    elif kind in ("boolean", "categorical", "string") and distinct and distinct <= 12:
        counts = present.astype(str).value_counts()
        shown = {str(k): int(v) for k, v in counts.items() if v >= config.min_cell_size}
        hidden = int(counts.sum()) - sum(shown.values())
        categories = {k: round(v / len(present), 4) for k, v in sorted(shown.items())}
        if hidden:
            categories["(small groups)"] = round(hidden / len(present), 4)
    return ColumnProfile(
        name=str(column),
        kind=kind,
        dtype=str(series.dtype),
        completeness=round(len(present) / n, 6) if n else 0.0,
        distinct=distinct,
        quartiles=quartiles,
        categories=categories,
    )
