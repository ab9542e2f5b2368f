"""Durations as written in pipeline files: ``14_days``, ``24h``, ``PT6H`` …"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.domain.durations import format_duration, parse_duration
from bedside.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14_days", timedelta(days=14)),
        ("24h", timedelta(hours=24)),
        ("6h", timedelta(hours=6)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("2_weeks", timedelta(weeks=2)),
        ("1 day", timedelta(days=1)),
        ("1_day", timedelta(days=1)),
        ("7days", timedelta(days=7)),
        ("12 hours", timedelta(hours=12)),
        ("45min", timedelta(minutes=45)),
        ("3 seconds", timedelta(seconds=3)),
        ("24H", timedelta(hours=24)),
        ("1.5h", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1_day_6h", timedelta(hours=30)),
        ("1 day and 6 hours", timedelta(hours=30)),
        ("P14D", timedelta(days=14)),
        ("PT6H", timedelta(hours=6)),
        ("P2W", timedelta(weeks=2)),
        ("P1DT12H", timedelta(hours=36)),
        ("PT30M", timedelta(minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("  24h  ", timedelta(hours=24)),
    ],
)
def test_parse_duration_accepts_documented_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_accepts_a_positive_timedelta() -> None:
    assert parse_duration(timedelta(hours=2)) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (14, "needs a unit"),
        (0.5, "needs a unit"),
        ("14", "needs a unit"),
        ("0h", "longer than zero"),
        ("0_days", "longer than zero"),
        ("-1h", "longer than zero"),
        (timedelta(0), "longer than zero"),
        (timedelta(hours=-1), "longer than zero"),
        ("14 fortnights", "not a duration"),
        ("3 months", "no fixed length"),
        ("1 year", "no fixed length"),
        ("P1M", "no fixed length"),
        ("P1Y2D", "no fixed length"),
        ("PT", "not a valid ISO 8601 duration"),
        ("P1DT", "not a valid ISO 8601 duration"),
        ("", "cannot be empty"),
        (True, "text with a unit"),
        (None, "text with a unit"),
        (["24h"], "text with a unit"),
        ("24h_", "not a duration"),
        ("h24", "not a duration"),
        ("1e3h", "not a duration"),
        ("99999999999999999999d", "shorter than"),
    ],
)
def test_parse_duration_refuses_bad_values(value: object, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(value)
    message = str(caught.value)
    assert reason in message
    assert "expected a duration such as 14_days" in message
    assert caught.value.details["expected"].startswith("a duration")


def test_parse_duration_bare_number_suggests_units() -> None:
    with pytest.raises(InvalidInput, match=r"write 14_days, 14h, 14m or 14s"):
        parse_duration(14)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=14), "14_days"),
        (timedelta(days=1), "1_day"),
        (timedelta(hours=24), "1_day"),
        (timedelta(hours=6), "6h"),
        (timedelta(hours=30), "30h"),
        (timedelta(minutes=30), "30m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(milliseconds=1500), "1.5s"),
        (timedelta(microseconds=1), "0.000001s"),
    ],
)
def test_format_duration_writes_pipeline_style(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-5)])
def test_format_duration_refuses_non_positive(value: timedelta) -> None:
    with pytest.raises(InvalidInput, match="longer than zero"):
        format_duration(value)


@settings(max_examples=300, deadline=None)
@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=10**6)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_duration_on_junk_returns_positive_or_refuses_cleanly(text: str) -> None:
    try:
        result = parse_duration(text)
    except InvalidInput:
        return
    assert result > timedelta(0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10_000),
    st.sampled_from(["s", "m", "h", "d", "w", "_days", " hours", "min"]),
)
def test_parse_duration_scales_by_unit(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "min": 60, "h": 3600, " hours": 3600, "d": 86400, "_days": 86400}
    per_unit = seconds.get(unit, 7 * 86400)
    assert parse_duration(f"{amount}{unit}") == timedelta(seconds=amount * per_unit)
