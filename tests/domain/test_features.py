"""Pure feature rules: unit conversion, windows, names, aggregations, ages, SIRS, labels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.domain.features import (
    AGE_TOP_GROUP,
    SIRS_CRITERIA,
    age_feature,
    age_group,
    age_group_labels,
    age_in_years,
    aggregate_window,
    canonical_unit,
    convertible_units,
    feature_name,
    in_window,
    label_value,
    parse_condition_code,
    sirs_abnormal,
    sirs_event_times,
    unit_conversion,
    window_label,
    window_start,
)
from bedside.errors import InvalidInput

T = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)

# ========================================================================================= units


@pytest.mark.parametrize(
    ("value", "source", "target", "loinc", "expected"),
    [
        (98.6, "[degF]", "Cel", None, 37.0),
        (100.4, "°F", "Cel", None, 38.0),
        (38.0, "Cel", "[degF]", None, 100.4),
        (310.15, "K", "Cel", None, 37.0),
        (18.016, "mg/dL", "mmol/L", "2524-7", 2.0),  # lactate: 1 mmol/L = 9.008 mg/dL
        (2.0, "mmol/L", "mg/dL", "32693-4", 18.016),
        (88.4, "umol/L", "mg/dL", "2160-0", 1.0),  # creatinine: 1 mg/dL = 88.4 umol/L
        (1.0, "mg/dL", "umol/L", "2160-0", 88.4),
        (17.1, "µmol/L", "mg/dL", "1975-2", 1.0),  # bilirubin: 1 mg/dL = 17.1 umol/L
        (4.2, "meq/L", "mmol/L", "2823-3", 4.2),  # potassium is monovalent
        (4.2, "mEq/L", "mmol/L", "2823-3", 4.2),
        (1500.0, "umol/L", "mmol/L", None, 1.5),
        (12.0, "mg/L", "mg/dL", None, 1.2),
        (1.2, "g/dL", "mg/dL", None, 1200.0),
        (13.3322, "kPa", "mm[Hg]", None, 100.0),
        (120.0, "mmHg", "mm[Hg]", None, 120.0),
        (0.97, "1", "%", None, 97.0),
        (8.5, "10*9/L", "10*3/uL", None, 8.5),
        (8500.0, "/uL", "10*3/uL", None, 8.5),
        (8.5, "K/uL", "10*3/uL", None, 8.5),
        (72.0, "{beats}/min", "/min", None, 72.0),
        (1.2, "/s", "/min", None, 72.0),
        (1.5, "mmol/l", "mmol/L", None, 1.5),
        (9.0, "mg/dl", "mmol/L", "2524-7", 9.0 / 9.008),
    ],
)
def test_unit_conversion_known_answers(
    value: float, source: str, target: str, loinc: str | None, expected: float
) -> None:
    conversion = unit_conversion(source, target, loinc=loinc)
    assert conversion is not None
    assert conversion.apply(value) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    ("source", "target", "loinc"),
    [
        ("mg/dL", "mmol/L", None),  # mass ↔ substance needs the analyte
        ("mg/dL", "mmol/L", "8867-4"),  # an analyte without a molar mass
        ("meq/L", "mmol/L", "2524-7"),  # lactate is not an ion bedside knows the charge of
        ("kg", "/min", None),
        ("Cel", "mm[Hg]", None),
        ("furlongs", "Cel", None),
        (None, "Cel", None),
        ("  ", "Cel", None),
    ],
)
def test_unit_conversion_refuses_what_it_cannot_know(
    source: str | None, target: str, loinc: str | None
) -> None:
    assert unit_conversion(source, target, loinc=loinc) is None


def test_unit_conversion_round_trips() -> None:
    pairs = [("Cel", "[degF]"), ("mmol/L", "mg/dL"), ("mm[Hg]", "kPa"), ("10*3/uL", "/uL")]
    for a, b in pairs:
        there = unit_conversion(a, b, loinc="2524-7")
        back = unit_conversion(b, a, loinc="2524-7")
        assert there is not None and back is not None
        assert back.apply(there.apply(3.7)) == pytest.approx(3.7, rel=1e-12)


def test_canonical_unit_and_convertible_units() -> None:
    assert canonical_unit("°F") == "[degF]"
    assert canonical_unit(" mmHg ") == "mm[Hg]"
    assert canonical_unit("mg/dl") == "mg/dL"
    assert canonical_unit("") is None
    units = convertible_units("mmol/L", loinc="2524-7")
    assert {"mmol/L", "mmol/l", "mg/dL", "mg/dl", "umol/L"} <= set(units)
    assert "/min" not in units and "Cel" not in units
    assert units["mg/dL"].apply(9.008) == pytest.approx(1.0)
    assert set(convertible_units("Cel")) >= {"Cel", "[degF]", "°F", "°C", "K"}


# ======================================================================================= windows


def test_window_edges_include_the_start_and_exclude_the_prediction_time() -> None:
    six = 6 * H
    assert window_start(T, six) == T - six
    assert in_window(T - six, T, six)
    assert not in_window(T - six - timedelta(microseconds=1), T, six)
    assert in_window(T - timedelta(microseconds=1), T, six)
    assert not in_window(T, T, six)
    assert not in_window(T + H, T, six)
    with pytest.raises(InvalidInput):
        window_start(T, timedelta(0))


@pytest.mark.parametrize(
    ("window", "label"),
    [
        (6 * H, "6h"),
        (24 * H, "24h"),
        (48 * H, "48h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=14), "14d"),
        (timedelta(minutes=30), "30min"),
        (timedelta(minutes=90), "90min"),
        (timedelta(seconds=45), "45s"),
    ],
)
def test_window_label(window: timedelta, label: str) -> None:
    assert window_label(window) == label


def test_feature_name_follows_the_convention() -> None:
    assert feature_name("heart_rate", "max", 6 * H) == "heart_rate_max_6h"
    assert feature_name("lactate", "count", timedelta(days=7)) == "lactate_count_7d"
    with pytest.raises(InvalidInput, match="aggregation"):
        feature_name("heart_rate", "median", 6 * H)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="snake_case"):
        feature_name("Heart Rate", "max", 6 * H)
    with pytest.raises(InvalidInput, match="whole number of seconds"):
        window_label(timedelta(milliseconds=1500))


def test_aggregate_window_known_answers() -> None:
    points = [
        (T - 7 * H, 500.0),  # before the window
        (T - 6 * H, 80.0),
        (T - 4 * H, None),  # no value
        (T - 4 * H, 90.0),
        (T - 2 * H, 100.0),
        (T - H / 2, 95.0),
        (T, 999.0),  # at the prediction time
    ]
    six = 6 * H
    assert aggregate_window(points, "count", T, six) == 4
    assert aggregate_window(points, "min", T, six) == 80.0
    assert aggregate_window(points, "max", T, six) == 100.0
    assert aggregate_window(points, "mean", T, six) == pytest.approx(91.25)
    assert aggregate_window(points, "last", T, six) == 95.0
    expected = np.polyfit([-6, -4, -2, -0.5], [80, 90, 100, 95], 1)[0]
    assert aggregate_window(points, "slope", T, six) == pytest.approx(expected, rel=1e-12)
    assert aggregate_window([], "count", T, six) == 0
    assert aggregate_window([], "max", T, six) is None
    assert aggregate_window([(T - H, 5.0)], "slope", T, six) is None
    assert aggregate_window([(T - H, 5.0), (T - H, 7.0)], "last", T, six) == 7.0


# ========================================================================================== ages


def test_age_in_years_counts_birthdays() -> None:
    assert age_in_years(date(1990, 7, 4), date(2024, 7, 3)) == 33
    assert age_in_years(date(1990, 7, 4), date(2024, 7, 4)) == 34
    assert age_in_years(date(2000, 2, 29), date(2023, 2, 28)) == 22
    assert age_in_years(date(2000, 2, 29), date(2023, 3, 1)) == 23


def test_age_feature_caps_at_90() -> None:
    assert [age_feature(a) for a in (0, 18, 89, 90, 91, 104)] == [0, 18, 89, 90, 90, 90]
    assert age_feature(None) is None
    with pytest.raises(InvalidInput):
        age_feature(-1)


def test_age_groups_never_reveal_an_age_above_89() -> None:
    edges = [18, 45, 65, 80]
    assert [age_group(a, edges) for a in (17, 18, 44, 45, 79, 80, 95)] == [
        "<18",
        "18-44",
        "18-44",
        "45-64",
        "65-79",
        "80+",
        "80+",
    ]
    assert age_group(89, [18, 85, 95]) == "85-89"
    assert age_group(90, [18, 85, 95]) == AGE_TOP_GROUP
    assert age_group(97, [18, 85, 95]) == AGE_TOP_GROUP
    assert [g[2] for g in age_group_labels([0, 90])] == ["0-89", "90+"]
    assert age_group(None, edges) is None
    with pytest.raises(InvalidInput, match="rise strictly"):
        age_group_labels([18, 18])


@given(
    edges=st.lists(st.integers(0, 120), min_size=1, max_size=6, unique=True).map(sorted),
    age=st.integers(0, 130),
)
def test_age_groups_partition_every_age(edges: list[int], age: int) -> None:
    groups = age_group_labels(edges)
    holding = [g for g in groups if age >= g[0] and (g[1] is None or age < g[1])]
    assert len(holding) == 1
    label = age_group(age, edges)
    assert label == holding[0][2]
    if age >= 90:
        # whatever the edges, an age of 90 or more is never distinguishable from other 90+ ages
        assert label == age_group(90, edges)
    for lower, upper, _ in groups:
        assert upper is None or upper <= 90 or lower >= 90


# ================================================================================== SIRS, labels


@pytest.mark.parametrize(
    ("name", "value", "abnormal"),
    [
        ("heart_rate", 90.0, False),
        ("heart_rate", 91.0, True),
        ("temperature", 38.0, False),
        ("temperature", 38.1, True),
        ("temperature", 36.0, False),
        ("temperature", 35.9, True),
        ("respiratory_rate", 20.0, False),
        ("respiratory_rate", 21.0, True),
        ("wbc", 12.0, False),
        ("wbc", 12.1, True),
        ("wbc", 4.0, False),
        ("wbc", 3.9, True),
    ],
)
def test_sirs_boundaries(name: str, value: float, abnormal: bool) -> None:
    criterion = next(c for c in SIRS_CRITERIA if c.name == name)
    assert sirs_abnormal(criterion, value) is abnormal


def test_sirs_event_times_need_two_criteria_within_six_hours() -> None:
    points = [
        (T, "heart_rate"),
        (T + H, "heart_rate"),
        (T + 5 * H, "temperature"),  # with the heart rate at T+1h: an event
        (T + 20 * H, "wbc"),
        (T + 26 * H, "temperature"),  # exactly 6 h after the WBC: outside (t - 6h, t]
    ]
    assert sirs_event_times(points) == [T + 5 * H]
    assert sirs_event_times([(T, "wbc"), (T, "heart_rate")]) == [T]


def test_label_value_semantics() -> None:
    horizon = 48 * H
    start = T - 4 * H

    def label(events: list[tuple[datetime, bool]], *, exclude: bool = True) -> int | None:
        return label_value(
            events,
            prediction_time=T,
            encounter_start=start,
            horizon=horizon,
            exclude_prior_outcome=exclude,
        )

    assert label([]) == 0
    assert label([(T + horizon, False)]) == 1
    assert label([(T + horizon + timedelta(seconds=1), False)]) == 0
    assert label([(T, True)]) is None
    assert label([(T, True)], exclude=False) == 1
    assert label([(start - H, True)]) is None  # linked to this stay, before arrival
    assert label([(start - H, False)]) == 0  # another stay's outcome
    assert label([(start + H, False)]) is None  # during this stay


def test_parse_condition_code() -> None:
    assert parse_condition_code("A41.9").system is None
    parsed = parse_condition_code("http://snomed.info/sct|91302008")
    assert (parsed.system, parsed.code) == ("http://snomed.info/sct", "91302008")
    for bad in ("", "|A41", "http://x|"):
        with pytest.raises(InvalidInput):
            parse_condition_code(bad)
