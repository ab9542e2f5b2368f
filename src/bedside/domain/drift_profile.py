"""The reference profile: what drift monitoring keeps of a model version's training data.

Built once per model version (:func:`build_profile`) and stored as JSON or npz: per column its
kind, the distinct finite values with their counts (numerical) or the category counts
(categorical), the number of missing values and the standard deviation. No row is kept.
:mod:`bedside.domain.drift` tests each monitoring window against it.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pandas as pd

from bedside.domain import drift_stats as st
from bedside.errors import InvalidInput

__all__ = [
    "INTEGER_CARDINALITY_LIMIT",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "TEXT_UNIQUE_SHARE",
    "Category",
    "ColumnKind",
    "ColumnProfile",
    "ReferenceProfile",
    "build_profile",
    "category_counts",
    "category_key",
    "numeric_array",
]

logger = logging.getLogger(__name__)

PROFILE_FORMAT: Final = "bedside.drift.reference_profile"
PROFILE_VERSION: Final = 1
#: A string column with more distinct values than this share of its rows is free text or an
#: identifier (Evidently infers "text"); bedside refuses to profile it unless declared.
TEXT_UNIQUE_SHARE: Final = 0.5
#: An integer column with at most this many distinct values is inferred categorical (Evidently).
INTEGER_CARDINALITY_LIMIT: Final = 10

Category = str | int | float | bool


class ColumnKind(StrEnum):
    """How a column is tested: as numbers or as categories."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"


# -- columns and profiles ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ColumnProfile:
    """One reference column: kind, non-missing count, distinct values with counts, std.

    ``values`` is a float64 array of sorted unique finite values for a numerical column and a
    tuple of categories (text, integers, floats or booleans) for a categorical one; ``counts``
    (int64) aligns with it. ``std`` is ``np.std`` (ddof=0) of the numerical values.
    """

    name: str
    kind: ColumnKind
    values: np.ndarray | tuple[Category, ...]
    counts: np.ndarray
    n_missing: int = 0
    std: float = 0.0
    integer: bool = False

    @property
    def n_reference(self) -> int:
        """Return the number of non-missing reference values."""
        return int(self.counts.sum())

    @property
    def n_unique(self) -> int:
        """Return the number of distinct reference values."""
        return len(self.values)

    def sample(self) -> st.SortedSample:
        """Return the numerical reference as a :class:`~drift_stats.SortedSample`."""
        assert isinstance(self.values, np.ndarray)
        return st.SortedSample(self.values, self.counts, self.integer)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (floats keep every bit through ``json``)."""
        values = self.values.tolist() if isinstance(self.values, np.ndarray) else list(self.values)
        return {
            "name": self.name,
            "kind": self.kind.value,
            "integer": self.integer,
            "n_missing": self.n_missing,
            "std": self.std,
            "values": values,
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """Rebuild a column profile from :meth:`to_dict` output."""
        kind = ColumnKind(data["kind"])
        raw = data["values"]
        values: np.ndarray | tuple[Category, ...]
        if kind is ColumnKind.NUMERICAL:
            values = np.asarray(raw, dtype=np.float64).reshape(-1)
        else:
            values = tuple(raw)
        counts = np.asarray(data["counts"], dtype=np.int64).reshape(-1)
        numeric_ok = not isinstance(values, np.ndarray) or (
            bool(np.isfinite(values).all()) and bool((values[1:] > values[:-1]).all())
        )
        if len(values) != counts.size or counts.size == 0 or (counts <= 0).any() or not numeric_ok:
            raise InvalidInput(
                f"Reference profile column {data.get('name')!r} is inconsistent (values and "
                "counts must be non-empty and of equal length, counts positive, numerical values "
                "finite and strictly increasing). Rebuild the profile from the training reference."
            )
        return cls(
            name=str(data["name"]),
            kind=kind,
            values=values,
            counts=counts,
            n_missing=int(data.get("n_missing", 0)),
            std=float(data.get("std", 0.0)),
            integer=bool(data.get("integer", False)),
        )


@dataclass(frozen=True, slots=True, eq=False)
class ReferenceProfile:
    """What drift monitoring keeps of a model version's training reference (no rows)."""

    columns: tuple[ColumnProfile, ...]
    n_rows: int
    prediction: ColumnProfile | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Return the feature column names, in profile order."""
        return tuple(c.name for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the whole profile."""
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "columns": [c.to_dict() for c in self.columns],
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            InvalidInput: the data is not a bedside reference profile of a known version.
        """
        if data.get("format") != PROFILE_FORMAT or data.get("version") != PROFILE_VERSION:
            raise InvalidInput(
                f"Not a bedside reference profile (format {data.get('format')!r}, version "
                f"{data.get('version')!r}; expected {PROFILE_FORMAT!r} version "
                f"{PROFILE_VERSION}). Rebuild it from the training reference."
            )
        prediction = data.get("prediction")
        if not data.get("columns"):
            raise InvalidInput(
                "Reference profile has no feature columns. Rebuild it from the training reference."
            )
        return cls(
            columns=tuple(ColumnProfile.from_dict(c) for c in data["columns"]),
            n_rows=int(data["n_rows"]),
            prediction=ColumnProfile.from_dict(prediction) if prediction else None,
        )

    def to_json(self) -> str:
        """Return the profile as JSON text."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_json` text."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"Reference profile is not valid JSON: {exc}.") from exc
        if not isinstance(data, dict):
            raise InvalidInput("Reference profile JSON must be an object.")
        return cls.from_dict(data)

    def to_npz(self) -> bytes:
        """Return the profile as compressed npz bytes (arrays stored natively)."""
        meta = self.to_dict()
        arrays: dict[str, np.ndarray] = {}
        everything = [*self.columns, *([self.prediction] if self.prediction else [])]
        for i, (column, entry) in enumerate(
            zip(everything, [*meta["columns"], meta["prediction"]], strict=False)
        ):
            arrays[f"counts_{i}"] = column.counts
            entry["counts"] = f"counts_{i}"
            if isinstance(column.values, np.ndarray):
                arrays[f"values_{i}"] = column.values
                entry["values"] = f"values_{i}"
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, blob: bytes) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_npz` bytes."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
                entries = [*meta["columns"], *([meta["prediction"]] if meta["prediction"] else [])]
                for entry in entries:
                    entry["counts"] = npz[entry["counts"]]
                    if isinstance(entry["values"], str):
                        entry["values"] = npz[entry["values"]]
        except (ValueError, KeyError, OSError) as exc:
            raise InvalidInput(f"Reference profile npz is unreadable: {exc}.") from exc
        return cls.from_dict(meta)


def category_key(value: Category) -> tuple[int, Any]:
    """Sort numbers (and booleans) before text, each in natural order."""
    if isinstance(value, str):
        return (1, value)
    return (0, value)


def _python_scalar(value: Any, column: str) -> Category | None:
    """Return a category as a plain Python scalar, or None for a missing/infinite value."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | bool | int | float):
        return value
    raise InvalidInput(
        f"Column {column!r} holds a {type(value).__name__} value; categorical columns may hold "
        "text, integers, floats or booleans. Convert the column or leave it out of monitoring."
    )


def _infer_kind(series: pd.Series, name: str) -> ColumnKind:
    """Infer a column's kind from its dtype, as Evidently's ``infer_column_type`` does."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return ColumnKind.CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return ColumnKind.NUMERICAL
    if pd.api.types.is_integer_dtype(dtype):
        few = series.nunique() <= INTEGER_CARDINALITY_LIMIT
        return ColumnKind.CATEGORICAL if few else ColumnKind.NUMERICAL
    if pd.api.types.is_string_dtype(dtype) or dtype == np.dtype(object):
        present = series.dropna()
        if present.empty:
            raise InvalidInput(
                f"Reference column {name!r} has no values. Leave it out of monitoring."
            )
        if not isinstance(present.iloc[0], str):
            raise InvalidInput(
                f"Cannot infer the kind of reference column {name!r} (dtype {dtype}). Declare "
                "it in kinds= as 'numerical' or 'categorical'."
            )
        if series.nunique() > present.size * TEXT_UNIQUE_SHARE:
            raise InvalidInput(
                f"Reference column {name!r} looks like free text or an identifier (most values "
                "are distinct); drift of text is not computed. Leave it out of monitoring, or "
                "declare it in kinds= as 'categorical' if it truly is a category."
            )
        return ColumnKind.CATEGORICAL
    raise InvalidInput(
        f"Reference column {name!r} has dtype {dtype}, which drift monitoring does not test. "
        "Derive a numerical or categorical feature from it, or leave it out of monitoring."
    )


def numeric_array(series: pd.Series, name: str, where: str) -> tuple[np.ndarray, bool]:
    """Return a column as float64 values (a view when it already is) and whether it is integer."""
    dtype = series.dtype
    if not pd.api.types.is_numeric_dtype(dtype):
        raise InvalidInput(
            f"Column {name!r} in the {where} data should be numerical; found dtype {dtype}. "
            "Cast it to numbers, or profile it as categorical."
        )
    integer = pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype)
    if isinstance(dtype, np.dtype):
        if dtype == np.float64:
            return series.to_numpy(copy=False), False
        return series.to_numpy().astype(np.float64), integer
    return series.to_numpy(dtype=np.float64, na_value=np.nan), integer


def category_counts(series: pd.Series, name: str) -> tuple[list[Category], np.ndarray, int]:
    """Return observed categories, their counts and the number of missing/infinite values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.array
        codes = np.asarray(cat.codes, dtype=np.int64)
        uniques: list[Any] = list(cat.categories)
    else:
        try:
            codes, index = pd.factorize(series, use_na_sentinel=True)
        except TypeError:  # unhashable values (lists, dicts)
            raise InvalidInput(
                f"Column {name!r} holds values that are not categories (lists or mappings); "
                "categorical columns may hold text, integers, floats or booleans."
            ) from None
        uniques = index.tolist()
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1)[1:]
    missing = int(codes.size - counts.sum())
    categories: list[Category] = []
    kept: list[int] = []
    for value, count in zip(uniques, counts.tolist(), strict=True):
        scalar = _python_scalar(value, name)
        if scalar is None:
            missing += count
        elif count > 0:
            categories.append(scalar)
            kept.append(count)
    return categories, np.asarray(kept, dtype=np.int64), missing


def _profile_column(series: pd.Series, name: str, kind: ColumnKind) -> ColumnProfile:
    """Summarise one reference column."""
    if kind is ColumnKind.NUMERICAL:
        values, integer = numeric_array(series, name, "reference")
        sample, missing = st.summarise(values, integer=integer)
        if sample.n == 0:
            raise InvalidInput(
                f"Reference column {name!r} has no finite values. Leave it out of monitoring."
            )
        return ColumnProfile(
            name=name,
            kind=kind,
            values=sample.values.copy(),
            counts=sample.counts,
            n_missing=missing,
            std=float(np.std(sample.expand())),
            integer=integer,
        )
    categories, counts, missing = category_counts(series, name)
    if not categories:
        raise InvalidInput(f"Reference column {name!r} has no values. Leave it out of monitoring.")
    order = sorted(range(len(categories)), key=lambda i: category_key(categories[i]))
    return ColumnProfile(
        name=name,
        kind=kind,
        values=tuple(categories[i] for i in order),
        counts=counts[order],
        n_missing=missing,
    )


def build_profile(
    reference: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, ColumnKind | str] | None = None,
    prediction_column: str | None = None,
) -> ReferenceProfile:
    """Summarise a model version's training reference for drift monitoring (once per version).

    Args:
        reference: the training reference table (features, and the score column if given).
        columns: the feature columns to monitor; default every column except the prediction.
        kinds: a column's kind (``"numerical"``/``"categorical"``); columns not named here are
            inferred from the dtype as Evidently does (float → numerical; integer →
            categorical when at most 10 distinct values; bool, category and text → categorical).
        prediction_column: the model's score column, profiled for prediction drift.

    Raises:
        InvalidInput: a named column is missing, empty, or of a kind drift cannot test.
    """
    kinds = dict(kinds or {})
    if columns is None:
        columns = [str(c) for c in reference.columns if c != prediction_column]
    wanted = [*columns, *([prediction_column] if prediction_column else [])]
    missing = [c for c in wanted if c not in reference.columns]
    if missing:
        raise InvalidInput(
            f"Reference data has no column(s) {missing}. Monitor only columns of the training "
            "reference."
        )
    if not columns:
        raise InvalidInput("No feature columns to monitor; name at least one in columns=.")
    if len(set(columns)) != len(columns) or prediction_column in columns:
        raise InvalidInput("Each monitored column may be named once (features and prediction).")
    unknown = sorted(set(kinds) - set(wanted))
    if unknown:
        raise InvalidInput(f"kinds= names column(s) {unknown} that are not monitored.")

    def kind_of(name: str) -> ColumnKind:
        if name in kinds:
            try:
                return ColumnKind(kinds[name])
            except ValueError:
                raise InvalidInput(
                    f"kinds[{name!r}] is {kinds[name]!r}; expected 'numerical' or 'categorical'."
                ) from None
        return _infer_kind(reference[name], name)

    profiles = tuple(_profile_column(reference[c], c, kind_of(c)) for c in columns)
    prediction = None
    if prediction_column is not None:
        prediction = _profile_column(
            reference[prediction_column], prediction_column, kind_of(prediction_column)
        )
    logger.debug("built reference profile: %d columns, %d rows", len(profiles), len(reference))
    return ReferenceProfile(columns=profiles, n_rows=len(reference), prediction=prediction)
