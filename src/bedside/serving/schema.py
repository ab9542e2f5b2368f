"""A model version's feature schema and a lean validator for JSON records.

A :class:`FeatureSchema` lists the features a model version takes, in the order of the columns
its predictor was fitted on: each has a name, a kind (``float``, ``int`` or ``category`` with its
allowed values) and whether it may be null. :meth:`FeatureSchema.to_row` turns one decoded JSON
object into a list of floats in that order without building a DataFrame: a category becomes the
index of its value in ``categories`` (the encoding the model was trained with), a null becomes
NaN (only where the feature is nullable).

Errors list every bad field at once: its name, what was expected and what came — the JSON type,
or ``missing`` / ``unknown field`` / ``not an allowed value`` / ``non-finite number``. Values are
never echoed: a feature value may be patient data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from bedside.errors import InvalidInput

__all__ = [
    "Feature",
    "FeatureSchema",
    "FieldError",
    "json_type",
    "raise_field_errors",
]

FeatureKind = Literal["float", "int", "category"]
_KINDS: Final = ("float", "int", "category")
_MAX_LISTED: Final = 20
_NAN: Final = float("nan")


def json_type(value: object) -> str:
    """Return the JSON type name of a decoded value (never the value itself)."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return kind.__name__


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: where it is, what was expected and what came (a type, never a value)."""

    field: str
    expected: str
    received: str

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form used in error details."""
        return {"field": self.field, "expected": self.expected, "received": self.received}


@dataclass(frozen=True, slots=True)
class Feature:
    """One input feature of a model version."""

    name: str
    kind: FeatureKind = "float"
    nullable: bool = False
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput("A feature needs a non-empty text name.")
        if self.kind not in _KINDS:
            raise InvalidInput(
                f"Feature {self.name!r} has kind {self.kind!r}; expected one of {list(_KINDS)}."
            )
        if self.kind == "category":
            if not self.categories or not all(isinstance(c, str) for c in self.categories):
                raise InvalidInput(
                    f"Category feature {self.name!r} needs its allowed values (text) in "
                    "'categories', in the order of the codes the model was trained with."
                )
            if len(set(self.categories)) != len(self.categories):
                raise InvalidInput(f"Category feature {self.name!r} lists a value twice.")
        elif self.categories:
            raise InvalidInput(
                f"Feature {self.name!r} is {self.kind!r}; only category features take 'categories'."
            )

    @property
    def expected(self) -> str:
        """Describe what this feature accepts, for error messages and docs."""
        if self.kind == "float":
            text = "finite number"
        elif self.kind == "int":
            text = "integer"
        else:
            shown = ", ".join(repr(c) for c in self.categories[:_MAX_LISTED])
            more = ", …" if len(self.categories) > _MAX_LISTED else ""
            text = f"one of [{shown}{more}]"
        return f"{text} or null" if self.nullable else text

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of this feature (for the OpenAPI description and storage)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "nullable": self.nullable}
        if self.categories:
            out["categories"] = list(self.categories)
        return out


class FeatureSchema:
    """The ordered features of a model version, with a fast record validator.

    Args:
        features: the features, in the column order of the predictor.

    Raises:
        InvalidInput: no features, or a name used twice.
    """

    __slots__ = ("_codes", "_names", "_plan", "features")

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features: tuple[Feature, ...] = tuple(features)
        if not self.features:
            raise InvalidInput("A feature schema needs at least one feature.")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInput(f"Feature names must be unique; used twice: {twice}.")
        self._names = frozenset(names)
        self._codes = tuple(
            {c: float(i) for i, c in enumerate(f.categories)} if f.kind == "category" else None
            for f in self.features
        )
        self._plan = tuple(
            (f.name, f.kind, f.nullable, codes)
            for f, codes in zip(self.features, self._codes, strict=True)
        )

    @classmethod
    def from_dicts(cls, items: Sequence[Mapping[str, Any]]) -> FeatureSchema:
        """Build a schema from JSON-like feature descriptions (``name``, ``kind``, …).

        Raises:
            InvalidInput: a description is malformed.
        """
        features = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "name" not in item:
                raise InvalidInput(f"Feature description {index} needs at least a 'name'.")
            unknown = set(item) - {"name", "kind", "nullable", "categories"}
            if unknown:
                raise InvalidInput(
                    f"Feature description {index} has unknown keys {sorted(unknown)}; expected "
                    "name, kind, nullable, categories."
                )
            features.append(
                Feature(
                    name=item["name"],
                    kind=item.get("kind", "float"),
                    nullable=bool(item.get("nullable", False)),
                    categories=tuple(item.get("categories", ())),
                )
            )
        return cls(features)

    @classmethod
    def numeric(cls, names: Iterable[str], *, nullable: bool = False) -> FeatureSchema:
        """Return a schema of float features named ``names`` (in that order)."""
        return cls(Feature(name, "float", nullable) for name in names)

    @property
    def names(self) -> tuple[str, ...]:
        """Return the feature names in column order."""
        return tuple(f.name for f in self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSchema) and other.features == self.features

    def __hash__(self) -> int:
        return hash(self.features)

    def __repr__(self) -> str:
        return f"FeatureSchema({len(self.features)} features)"

    def to_dicts(self) -> list[dict[str, Any]]:
        """Return the JSON form of the schema."""
        return [f.to_dict() for f in self.features]

    def check_row(
        self, record: object, *, where: str
    ) -> tuple[list[float] | None, list[FieldError]]:
        """Validate one decoded JSON record; return ``(row, [])`` or ``(None, errors)``.

        Args:
            record: the decoded ``features`` object.
            where: the path of the record in the request, e.g. ``features`` or ``records[3]``;
                field errors are named ``<where>.<feature>``.
        """
        if not isinstance(record, dict):
            return None, [FieldError(where, "object of features", json_type(record))]
        row: list[float] = []
        errors: list[FieldError] | None = None
        seen = 0
        for name, kind, nullable, codes in self._plan:
            value = record.get(name, _MISSING)
            vtype = type(value)
            if vtype is float:
                if kind == "float":
                    if value == value and value not in _INFINITIES:
                        row.append(value)
                        seen += 1
                        continue
                elif kind == "int" and value.is_integer():
                    row.append(value)
                    seen += 1
                    continue
            elif vtype is int:
                if kind != "category":
                    row.append(float(value))
                    seen += 1
                    continue
            elif vtype is str:
                if codes is not None and value in codes:
                    row.append(codes[value])
                    seen += 1
                    continue
            elif value is None and nullable:
                row.append(_NAN)
                seen += 1
                continue
            if value is not _MISSING:
                seen += 1
            if errors is None:
                errors = []
            errors.append(self._field_error(where, name, kind, nullable, codes, value))
        if seen != len(record):
            if errors is None:
                errors = []
            for key in record:
                if key not in self._names:
                    errors.append(
                        FieldError(f"{where}.{_safe_key(key)}", "no such feature", "unknown field")
                    )
        if errors:
            return None, errors
        return row, []

    def to_row(self, record: object, *, where: str = "features") -> list[float]:
        """Validate one decoded JSON record and return its row of floats in column order.

        Raises:
            InvalidInput: listing every bad field (name, expected, received).
        """
        row, errors = self.check_row(record, where=where)
        if row is None:
            raise_field_errors(errors)
        return row

    def _field_error(
        self,
        where: str,
        name: str,
        kind: str,
        nullable: bool,
        codes: dict[str, float] | None,
        value: object,
    ) -> FieldError:
        feature = self.features[self.names.index(name)]
        field = f"{where}.{name}"
        if value is _MISSING:
            return FieldError(field, feature.expected, "missing")
        if type(value) is float and not math.isfinite(value):
            return FieldError(field, feature.expected, "non-finite number")
        if type(value) is float and kind == "int":
            return FieldError(field, feature.expected, "number (not a whole number)")
        if type(value) is str and codes is not None:
            return FieldError(field, feature.expected, "string (not an allowed value)")
        return FieldError(field, feature.expected, json_type(value))


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_INFINITIES: Final = (math.inf, -math.inf)


def _safe_key(key: object) -> str:
    """Return an unknown key for an error message, shortened (a key is a name, not a value)."""
    text = str(key)
    return text if len(text) <= 64 else text[:61] + "…"


def raise_field_errors(errors: Sequence[FieldError], *, limit: int = 100) -> NoReturn:
    """Raise :class:`InvalidInput` listing ``errors`` (at most ``limit`` of them in details).

    Raises:
        InvalidInput: always.
    """
    first = errors[0]
    count = len(errors)
    more = f" (and {count - 1} more)" if count > 1 else ""
    raise InvalidInput(
        f"Invalid request: {first.field}: expected {first.expected}, received "
        f"{first.received}{more}. Fix the listed fields and send the request again.",
        details={
            "errors": [e.to_dict() for e in errors[:limit]],
            "error_count": count,
        },
    )
