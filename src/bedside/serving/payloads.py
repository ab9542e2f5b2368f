"""Parse and check request bodies of the prediction API without pydantic on the hot path.

Bodies are decoded with orjson; a body orjson refuses is decoded again with the standard library
only to tell a non-finite number (``NaN``, ``Infinity``, ``1e999``) — which then gets a field error
like any other bad value — from malformed JSON. Every problem is reported as a field error
(field, expected, received) and never echoes a value.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from bedside.errors import InvalidInput
from bedside.serving.schema import FeatureSchema, FieldError, json_type, raise_field_errors

__all__ = ["Outcome", "PredictRequest", "parse_body", "parse_outcomes", "parse_predict"]

_PREDICT_KEYS: Final = ("features", "records")
_ATTRIBUTES: Final = "attributes"
#: Most stratification attributes on one record, and the longest value.
MAX_ATTRIBUTES: Final = 8
MAX_ATTRIBUTE_CHARS: Final = 64
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_OUTCOME_KEYS: Final = frozenset({"request_id", "label", "time"})


def parse_body(body: bytes) -> Any:
    """Decode a JSON request body.

    Raises:
        InvalidInput: the body is empty or not JSON (the error says where it breaks).
    """
    if not body:
        raise_field_errors([FieldError("body", "a JSON object", "empty body")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        position = exc.pos
    try:
        # The standard library accepts NaN/Infinity and overflows to inf: such a body is JSON in
        # form, and its non-finite numbers are reported per field by the schema check.
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    raise InvalidInput(
        f"The request body is not valid JSON (it breaks at byte {position}). Send one JSON "
        "object, UTF-8 encoded.",
        details={
            "errors": [
                FieldError("body", "valid JSON", f"malformed JSON at byte {position}").to_dict()
            ],
            "error_count": 1,
        },
    )


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A checked prediction request: its rows in column order and their decoded records.

    ``attributes`` holds each record's stratification attributes (``None`` when the request sent
    none): logged for subgroup monitoring, never given to the model.
    """

    rows: list[list[float]]
    records: list[dict[str, Any]]
    is_batch: bool
    attributes: list[dict[str, str]] | None = None


def parse_predict(
    payload: Any,
    schema: FeatureSchema,
    *,
    max_records: int,
    allowed_attributes: frozenset[str] = frozenset(),
) -> PredictRequest:
    """Check a decoded predict body (``{"features": {…}}`` or ``{"records": [{…}, …]}``).

    Either form may carry stratification attributes: ``"attributes": {…}`` beside ``features``,
    or ``"attributes": [{…}, …]`` beside ``records`` (one object per record, same order).

    Args:
        allowed_attributes: the attribute names the version was assessed by (its fairness
            ``stratify_by``); empty: any name (letters, digits, ``_``), at most
            :data:`MAX_ATTRIBUTES` per record.

    Raises:
        InvalidInput: listing every bad field of every record (``records[3].age``,
            ``attributes[3].race``).
    """
    if type(payload) is not dict:
        raise_field_errors(
            [FieldError("body", "object with 'features' or 'records'", json_type(payload))]
        )
    if len(payload) == 1:
        features = payload.get("features", _ABSENT)
        if features is not _ABSENT:
            row, errors = schema.check_row(features, where="features")
            if row is None:
                raise_field_errors(errors)
            return PredictRequest(rows=[row], records=[features], is_batch=False)
    attributes = payload.get(_ATTRIBUTES, _ABSENT)
    if attributes is not _ABSENT:
        checked = parse_predict(
            {k: v for k, v in payload.items() if k != _ATTRIBUTES},
            schema,
            max_records=max_records,
            allowed_attributes=allowed_attributes,
        )
        given = _check_attributes(attributes, checked, allowed_attributes)
        return PredictRequest(checked.rows, checked.records, checked.is_batch, given)
    errors = [
        FieldError(
            key, "'features' (one record) or 'records' (a batch), and 'attributes'", "unknown field"
        )
        for key in payload
        if key not in _PREDICT_KEYS
    ]
    present = [key for key in _PREDICT_KEYS if key in payload]
    if not present:
        errors.insert(0, FieldError("features", "'features' (one record) or 'records'", "missing"))
    elif len(present) == 2:
        errors.insert(0, FieldError("records", "either 'features' or 'records', not both", "both"))
    if errors:
        raise_field_errors(errors)
    records = payload["records"]
    if type(records) is not list:
        raise_field_errors([FieldError("records", "array of feature objects", json_type(records))])
    if not records:
        raise_field_errors([FieldError("records", f"1 to {max_records} records", "empty array")])
    if len(records) > max_records:
        raise_field_errors(
            [
                FieldError(
                    "records",
                    f"1 to {max_records} records (split larger batches)",
                    f"array of {len(records)} records",
                )
            ]
        )
    rows: list[list[float]] = []
    for index, record in enumerate(records):
        row, found = schema.check_row(record, where=f"records[{index}]")
        if row is None:
            errors.extend(found)
        elif not errors:
            rows.append(row)
    if errors:
        raise_field_errors(errors)
    return PredictRequest(rows=rows, records=records, is_batch=True)


def _check_attributes(
    value: Any, request: PredictRequest, allowed: frozenset[str]
) -> list[dict[str, str]]:
    """Check the ``attributes`` of a checked request; return one mapping per record."""
    count = len(request.records)
    errors: list[FieldError] = []
    if not request.is_batch:
        if type(value) is not dict:
            raise_field_errors(
                [FieldError(_ATTRIBUTES, "object of short strings", json_type(value))]
            )
        items = [(_ATTRIBUTES, value)]
    else:
        if type(value) is not list:
            raise_field_errors(
                [FieldError(_ATTRIBUTES, "array of objects, one per record", json_type(value))]
            )
        if len(value) != count:
            raise_field_errors(
                [
                    FieldError(
                        _ATTRIBUTES,
                        f"array of {count} objects (one per record)",
                        f"array of {len(value)}",
                    )
                ]
            )
        items = [(f"{_ATTRIBUTES}[{i}]", item) for i, item in enumerate(value)]
    expected_key = (
        "one of " + ", ".join(sorted(allowed))
        if allowed
        else f"a name (letters, digits, _; at most {MAX_ATTRIBUTE_CHARS} characters)"
    )
    for where, item in items:
        if type(item) is not dict:
            errors.append(FieldError(where, "object of short strings", json_type(item)))
            continue
        if len(item) > MAX_ATTRIBUTES:
            errors.append(
                FieldError(where, f"at most {MAX_ATTRIBUTES} attributes", f"{len(item)} attributes")
            )
        for key, text in item.items():
            if not _NAME.fullmatch(key):
                # The key is not echoed: it is not a name, so it may be a value.
                errors.append(FieldError(where, expected_key, "a key that is not a name"))
                continue
            field = f"{where}.{key}"
            if allowed and key not in allowed:
                errors.append(FieldError(field, expected_key, "unknown attribute"))
            if type(text) is not str:
                errors.append(
                    FieldError(
                        field, f"string of 1 to {MAX_ATTRIBUTE_CHARS} characters", json_type(text)
                    )
                )
            elif not 0 < len(text) <= MAX_ATTRIBUTE_CHARS:
                errors.append(
                    FieldError(
                        field,
                        f"string of 1 to {MAX_ATTRIBUTE_CHARS} characters",
                        f"string of {len(text)} characters",
                    )
                )
    if errors:
        raise_field_errors(errors)
    return [item for _, item in items]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One checked outcome label."""

    request_id: str
    label: int
    time: float | None  # epoch seconds; None: now


def parse_outcomes(payload: Any, *, max_records: int) -> list[Outcome]:
    """Check a decoded outcomes body: ``{"outcomes": [{"request_id", "label", "time"?}, …]}``.

    ``label`` is 0/1 (or false/true); ``time`` is an ISO 8601 time with a UTC offset.

    Raises:
        InvalidInput: listing every bad field.
    """
    if type(payload) is not dict:
        raise_field_errors([FieldError("body", "object with 'outcomes'", json_type(payload))])
    errors = [
        FieldError(key, "no such field (send 'outcomes')", "unknown field")
        for key in payload
        if key != "outcomes"
    ]
    items = payload.get("outcomes", _ABSENT)
    if items is _ABSENT:
        errors.insert(0, FieldError("outcomes", "array of outcomes", "missing"))
        raise_field_errors(errors)
    if type(items) is not list:
        errors.insert(0, FieldError("outcomes", "array of outcomes", json_type(items)))
        raise_field_errors(errors)
    if not items or len(items) > max_records:
        received = "empty array" if not items else f"array of {len(items)} outcomes"
        errors.insert(0, FieldError("outcomes", f"1 to {max_records} outcomes", received))
    out: list[Outcome] = []
    for index, item in enumerate(items[:max_records]):
        where = f"outcomes[{index}]"
        if type(item) is not dict:
            errors.append(FieldError(where, "object with request_id and label", json_type(item)))
            continue
        errors.extend(
            FieldError(f"{where}.{key}", "request_id, label or time", "unknown field")
            for key in item
            if key not in _OUTCOME_KEYS
        )
        request_id = _request_id(item.get("request_id", _ABSENT), f"{where}.request_id", errors)
        label = _label(item.get("label", _ABSENT), f"{where}.label", errors)
        when = _time(item.get("time"), f"{where}.time", errors)
        if request_id is not None and label is not None:
            out.append(Outcome(request_id, label, when))
    if errors:
        raise_field_errors(errors)
    return out


def _request_id(value: Any, field: str, errors: list[FieldError]) -> str | None:
    if value is _ABSENT:
        errors.append(FieldError(field, "a request id (UUID)", "missing"))
        return None
    if type(value) is str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            errors.append(FieldError(field, "a request id (UUID)", "string (not a UUID)"))
            return None
    errors.append(FieldError(field, "a request id (UUID)", json_type(value)))
    return None


def _label(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if value is _ABSENT:
        errors.append(FieldError(field, "0 or 1", "missing"))
    elif type(value) is bool:
        return int(value)
    elif type(value) is int and value in (0, 1):
        return value
    elif type(value) is float and value in (0.0, 1.0):
        return int(value)
    else:
        received = json_type(value)
        if type(value) in (int, float):
            received += " (not 0 or 1)" if math.isfinite(value) else " (non-finite)"
        errors.append(FieldError(field, "0 or 1", received))
    return None


def _time(value: Any, field: str, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    expected = "ISO 8601 time with a UTC offset, e.g. 2026-03-12T03:00:00+00:00"
    if type(value) is not str:
        errors.append(FieldError(field, expected, json_type(value)))
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(field, expected, "string (not an ISO 8601 time)"))
        return None
    if moment.tzinfo is None:
        errors.append(FieldError(field, expected, "time without a UTC offset"))
        return None
    return moment.timestamp()


class _Absent:
    __slots__ = ()


_ABSENT: Final = _Absent()
