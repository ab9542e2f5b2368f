"""Parse and format the durations written in pipeline files.

Accepted spellings (units are case-insensitive; number and unit may be separated by ``_`` or a
space; several parts may be combined, e.g. ``1h30m`` or ``1_day_6h``):

* seconds: ``90s``, ``90_sec``, ``90 seconds``
* minutes: ``30m``, ``30min``, ``30_minutes``
* hours:   ``24h``, ``24hr``, ``24_hours``
* days:    ``14d``, ``1 day``, ``14_days``
* weeks:   ``2w``, ``2wk``, ``2_weeks``
* ISO 8601 durations without years or months: ``P14D``, ``PT6H``, ``P2W``, ``P1DT12H``, ``PT0.5S``

A bare number is refused ("a duration needs a unit"), as are zero and negative durations, months
and years (they have no fixed length). Fractions are allowed (``1.5h``), exact to the microsecond.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from bedside.errors import InvalidInput

__all__ = ["DURATION_EXAMPLES", "format_duration", "parse_duration"]

DURATION_EXAMPLES = "a duration such as 14_days, 24h, 30m or P14D"

_MICROS = {
    "s": 1_000_000,
    "m": 60 * 1_000_000,
    "h": 3600 * 1_000_000,
    "d": 86400 * 1_000_000,
    "w": 7 * 86400 * 1_000_000,
}
_UNIT_WORDS = {
    "s": ("s", "sec", "secs", "second", "seconds"),
    "m": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "wk", "wks", "week", "weeks"),
}
_UNIT_OF_WORD = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
_UNIT_PATTERN = "|".join(sorted(_UNIT_OF_WORD, key=len, reverse=True))
_PART = re.compile(rf"(\d+(?:\.\d+)?)[ _]?({_UNIT_PATTERN})(?![a-z])", re.IGNORECASE)
_SEPARATOR = re.compile(r"[ _,]*(?:and[ _]+)?[ _,]*", re.IGNORECASE)
_ISO = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_MONTHS_OR_YEARS = re.compile(
    r"^\d+(?:\.\d+)?[ _]?(mo|mon|mons|month|months|y|yr|yrs|year|years)$", re.IGNORECASE
)
_MAX = timedelta.max


def _fail(found: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{reason}: found {found}; expected {DURATION_EXAMPLES}",
        details={"expected": DURATION_EXAMPLES, "found": found, "reason": reason},
    )


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _to_timedelta(micros: Decimal, found: str) -> timedelta:
    if micros <= 0:
        raise _fail(found, "a duration must be longer than zero")
    whole = int(micros.to_integral_value())
    if whole == 0:
        raise _fail(found, "a duration must be at least one microsecond")
    try:
        return timedelta(microseconds=whole)
    except OverflowError:
        raise _fail(found, f"a duration must be shorter than {_MAX.days} days") from None


def _parse_iso(text: str) -> timedelta:
    match = _ISO.fullmatch(text)
    if match is None or not any(match.groupdict().values()) or text.upper().endswith("T"):
        if re.fullmatch(r"P.*\d+(?:\.\d+)?Y.*", text, re.IGNORECASE) or re.fullmatch(
            r"P[^T]*\d+(?:\.\d+)?M.*", text, re.IGNORECASE
        ):
            raise _fail(
                _short(text), "months and years have no fixed length; write the span in days"
            )
        raise _fail(_short(text), "not a valid ISO 8601 duration")
    total = Decimal(0)
    for unit, amount in match.groupdict().items():
        if amount is not None:
            total += Decimal(amount) * _MICROS[unit]
    return _to_timedelta(total, _short(text))


def parse_duration(value: object) -> timedelta:
    """Parse a pipeline-file duration into a positive :class:`~datetime.timedelta`.

    Args:
        value: the text (``"14_days"``, ``"24h"``, ``"PT6H"`` …) or a ``timedelta``.

    Returns:
        The duration, always longer than zero.

    Raises:
        InvalidInput: the value is not text, has no unit, uses an unknown unit, or is not positive.
    """
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise _fail(format_duration_or_repr(value), "a duration must be longer than zero")
        return value
    if isinstance(value, bool):
        raise _fail(f"the boolean {str(value).lower()}", "a duration is text with a unit")
    if isinstance(value, int | float):
        raise _fail(
            f"the number {value!r}",
            f"a duration needs a unit (write {value}_days, {value}h, {value}m or {value}s)",
        )
    if not isinstance(value, str):
        raise _fail(f"a {type(value).__name__}", "a duration is text with a unit")
    text = value.strip()
    if not text:
        raise _fail("an empty text", "a duration cannot be empty")
    if text.startswith("-"):
        raise _fail(_short(text), "a duration must be longer than zero")
    if text[0] in "pP":
        return _parse_iso(text)
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        raise _fail(
            _short(text),
            f"a duration needs a unit (write {text}_days, {text}h, {text}m or {text}s)",
        )
    if _MONTHS_OR_YEARS.match(text):
        raise _fail(_short(text), "months and years have no fixed length; write the span in days")
    total = Decimal(0)
    position = 0
    parts = 0
    while position < len(text):
        if parts:
            separator = _SEPARATOR.match(text, position)
            if separator is not None:
                position = separator.end()
        match = _PART.match(text, position)
        if match is None:
            raise _fail(_short(text), "not a duration")
        try:
            amount = Decimal(match.group(1))
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimal digits
            raise _fail(_short(text), "not a duration") from None
        total += amount * _MICROS[_UNIT_OF_WORD[match.group(2).lower()]]
        position = match.end()
        parts += 1
    return _to_timedelta(total, _short(text))


def format_duration_or_repr(value: timedelta) -> str:
    """Return ``format_duration(value)`` or, for a non-positive value, its ``repr``."""
    try:
        return format_duration(value)
    except InvalidInput:
        return repr(value)


def format_duration(value: timedelta) -> str:
    """Format a positive duration in the pipeline-file style; ``parse_duration`` reads it back.

    Whole days are written ``14_days`` / ``1_day``, otherwise the largest whole unit of hours
    (``6h``), minutes (``30m``) or seconds (``90s``); anything finer is written in seconds with a
    fraction (``0.5s``).

    Raises:
        InvalidInput: the duration is zero or negative.
    """
    if value <= timedelta(0):
        raise InvalidInput(
            f"a duration must be longer than zero: found {value!r}",
            details={"expected": DURATION_EXAMPLES},
        )
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros % _MICROS["d"] == 0:
        days = micros // _MICROS["d"]
        return "1_day" if days == 1 else f"{days}_days"
    for unit in ("h", "m", "s"):
        if micros % _MICROS[unit] == 0:
            return f"{micros // _MICROS[unit]}{unit}"
    seconds = (Decimal(micros) / Decimal(1_000_000)).normalize()
    return f"{seconds:f}s"
