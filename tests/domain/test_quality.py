"""Data quality: completeness, plausibility, duplicates, schema, label — aggregates only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.domain.quality import (
    DEFAULT_RANGES,
    PlausibleRange,
    QualityConfig,
    Status,
    assess_quality,
    ranges_for_columns,
)
from bedside.domain.spec import DataQualityCheck, ObservationFeature
from bedside.errors import InvalidInput

CANARY_ID = "pt-ZZCANARY-4711"
ODD_VALUE = 287.123456


def features(n: int = 500, seed: int = 3) -> pd.DataFrame:
    """A seeded, synthetic, plausible feature table (lactate often unmeasured)."""
    rng = np.random.default_rng(seed)
    lactate = rng.gamma(2.0, 0.8, n)
    lactate[rng.random(n) < 0.3] = np.nan
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i:05d}" for i in range(n)],
            "encounter_id": [f"e{i:05d}" for i in range(n)],
            "prediction_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), "h"),
            "heart_rate_max_6h": rng.normal(88, 15, n).clip(40, 180),
            "heart_rate_slope_6h": rng.normal(0, 40, n),  # a slope: any sign, never ranged
            "resp_rate_max_6h": rng.normal(18, 4, n).clip(8, 40),
            "temperature_max_6h": rng.normal(37.2, 0.6, n).clip(34, 41),
            "systolic_bp_min_6h": rng.normal(118, 18, n).clip(60, 220),
            "spo2_min_6h": rng.normal(95, 2.5, n).clip(70, 100),
            "lactate_max_24h": lactate,
            "lactate_count_24h": rng.integers(0, 40, n),  # a count: never ranged
            "wbc_last_24h": rng.gamma(4, 2.5, n),
            "creatinine_max_24h": rng.gamma(3, 0.35, n),
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["female", "male"], n),
            "sepsis": rng.random(n) < 0.08,
            "split": rng.choice(["train", "validation", "test"], n, p=[0.7, 0.15, 0.15]),
        }
    )
    return frame


CONFIG = QualityConfig(
    label_col="sepsis",
    key_columns=("encounter_id",),
    required_columns=("patient_id", "prediction_time"),
    expected_kinds={"heart_rate_max_6h": "numeric", "prediction_time": "datetime"},
    completeness_exempt=("lactate_max_24h",),
)


def _only(report, check: str, column: str | None = None):  # type: ignore[no-untyped-def]
    found = [r for r in report.by_check(check) if column is None or r.column == column]
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------------------ whole report


def test_a_plausible_table_passes_every_check() -> None:
    report = assess_quality(features(), CONFIG)
    assert report.passed and not report.blocking, [r.message for r in report.failures]
    assert report.rows == 500 and report.columns == 17
    assert {r.check for r in report.results} == {
        "schema",
        "completeness",
        "plausibility",
        "duplicates",
        "label",
    }
    ranged = {r.column for r in report.by_check("plausibility")}
    assert ranged == {
        "heart_rate_max_6h",
        "resp_rate_max_6h",
        "temperature_max_6h",
        "systolic_bp_min_6h",
        "spo2_min_6h",
        "lactate_max_24h",
        "wbc_last_24h",
        "creatinine_max_24h",
        "age",
    }
    assert _only(report, "completeness", "lactate_max_24h").status is Status.INFO
    assert _only(report, "label").metrics["per_split"].keys() == {"train", "validation", "test"}


def test_a_failure_blocks_only_when_the_check_is_a_blocker() -> None:
    frame = features()
    frame.loc[:99, "heart_rate_max_6h"] = np.nan  # 80 % complete
    blocking = assess_quality(frame, CONFIG)
    assert not blocking.passed and blocking.blocking
    relaxed = assess_quality(frame, QualityConfig(label_col="sepsis", blocker=False))
    assert not relaxed.passed and not relaxed.blocking
    assert "completeness:heart_rate_max_6h" in relaxed.summary()["failed"]


def test_config_from_the_pipeline_check() -> None:
    check = DataQualityCheck(check="data_quality", min_completeness=0.9, blocker=False)
    config = QualityConfig.from_check(check, label_col="sepsis")
    assert (config.min_completeness, config.blocker, config.label_col) == (0.9, False, "sepsis")


def test_report_holds_aggregates_only() -> None:
    frame = features()
    frame.loc[7, "patient_id"] = CANARY_ID
    frame.loc[8, "heart_rate_max_6h"] = ODD_VALUE
    frame.loc[9, "sex"] = "ZZCANARY-RARE-CATEGORY"
    report = assess_quality(frame, CONFIG)
    text = json.dumps(report.to_dict())
    assert json.loads(text)["rows"] == 500
    for secret in (CANARY_ID, "287.12", "ZZCANARY"):
        assert secret not in text
    sex = next(p for p in report.profiles if p.name == "sex")
    assert sex.categories is not None and "(small groups)" in sex.categories
    hr = next(p for p in report.profiles if p.name == "heart_rate_max_6h")
    assert hr.quartiles is not None and hr.quartiles[0] < hr.quartiles[1] < hr.quartiles[2]


def test_small_cells_are_suppressed_in_profiles() -> None:
    frame = features(8)
    report = assess_quality(frame, QualityConfig())
    hr = next(p for p in report.profiles if p.name == "heart_rate_max_6h")
    assert hr.quartiles is None  # 8 values < min_cell_size 11
    assert next(p for p in report.profiles if p.name == "sex").categories == {"(small groups)": 1.0}


def test_an_empty_table_fails() -> None:
    report = assess_quality(features().iloc[:0], QualityConfig())
    assert not report.passed
    assert _only(report, "rows").status is Status.FAIL


# ------------------------------------------------------------------------------ completeness


def test_completeness_threshold_is_inclusive() -> None:
    frame = features(100)
    frame.loc[:4, "wbc_last_24h"] = np.nan  # exactly 95 % complete
    report = assess_quality(frame, QualityConfig(min_completeness=0.95))
    result = _only(report, "completeness", "wbc_last_24h")
    assert result.status is Status.PASS
    assert result.metrics["completeness"] == 0.95 and result.metrics["missing"] == 5
    frame.loc[5, "wbc_last_24h"] = np.nan
    result = _only(assess_quality(frame, QualityConfig()), "completeness", "wbc_last_24h")
    assert result.status is Status.FAIL
    assert "94.0% complete, below the required 95%: 6 of 100" in result.message


def test_sparse_lab_fails_unless_exempt() -> None:
    report = assess_quality(features(), QualityConfig())
    assert _only(report, "completeness", "lactate_max_24h").status is Status.FAIL
    relaxed = assess_quality(features(), QualityConfig(min_completeness=0.6))
    assert _only(relaxed, "completeness", "lactate_max_24h").status is Status.PASS


@given(mask=st.lists(st.booleans(), min_size=1, max_size=60))
def test_completeness_is_the_share_present(mask: list[bool]) -> None:
    frame = pd.DataFrame({"x": [1.0 if keep else np.nan for keep in mask]})
    result = _only(assess_quality(frame, QualityConfig(min_completeness=0.5)), "completeness")
    assert result.metrics["present"] == sum(mask)
    assert result.metrics["completeness"] == pytest.approx(sum(mask) / len(mask), abs=1e-6)
    assert (result.status is Status.PASS) == (sum(mask) / len(mask) >= 0.5)


# ------------------------------------------------------------------------------ plausibility


def test_one_implausible_heart_rate_in_500_fails_by_default_and_warns_when_tolerated() -> None:
    frame = features()
    frame.loc[3, "heart_rate_max_6h"] = 400.0
    result = _only(assess_quality(frame, CONFIG), "plausibility", "heart_rate_max_6h")
    assert result.status is Status.FAIL
    assert (result.metrics["below"], result.metrics["above"], result.metrics["checked"]) == (
        0,
        1,
        500,
    )
    assert "1 of 500 values (0.20%) are implausible (0 below and 1 above 20–300 /min)" in (
        result.message
    )
    tolerant = QualityConfig(max_implausible_share=0.01)
    assert (
        _only(assess_quality(frame, tolerant), "plausibility", "heart_rate_max_6h").status
        is Status.WARN
    )


def test_range_bounds_are_inclusive() -> None:
    frame = pd.DataFrame({"heart_rate": [20.0, 300.0], "spo2_min_6h": [0.0, 100.0]})
    report = assess_quality(frame, QualityConfig())
    assert all(r.status is Status.PASS for r in report.by_check("plausibility"))
    frame = pd.DataFrame({"heart_rate": [19.9, 300.1], "spo2_min_6h": [-0.1, 100.1]})
    report = assess_quality(frame, QualityConfig())
    for result in report.by_check("plausibility"):
        assert (result.status, result.metrics["below"], result.metrics["above"]) == (
            Status.FAIL,
            1,
            1,
        )


def test_temperature_in_fahrenheit_fails_and_says_check_units() -> None:
    frame = features()
    frame["temperature_max_6h"] = frame["temperature_max_6h"] * 9 / 5 + 32
    result = _only(assess_quality(frame, CONFIG), "plausibility", "temperature_max_6h")
    assert result.status is Status.FAIL and "check units" in result.message
    assert result.metrics["above"] == 500


def test_infinite_values_fail_the_schema_and_the_range() -> None:
    frame = features(50)
    frame.loc[0, "creatinine_max_24h"] = np.inf
    report = assess_quality(frame, QualityConfig())
    assert _only(report, "schema", "creatinine_max_24h").metrics == {"rule": "infinite", "count": 1}
    assert _only(report, "plausibility", "creatinine_max_24h").metrics["above"] == 1


def test_top_coded_ages_are_not_counted_as_implausible() -> None:
    frame = pd.DataFrame({"age": ["45", "67", "90+", "90+", None]})
    result = _only(assess_quality(frame, QualityConfig()), "plausibility", "age")
    assert result.status is Status.INFO
    assert (result.metrics["checked"], result.metrics["not_numeric"]) == (2, 2)


@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=80
    ),
    tolerance=st.sampled_from([0.0, 0.001, 0.1, 0.5]),
)
def test_plausibility_counts_match_a_direct_count(values: list[float], tolerance: float) -> None:
    frame = pd.DataFrame({"lactate_max_24h": values})
    config = QualityConfig(max_implausible_share=tolerance)
    result = _only(assess_quality(frame, config), "plausibility", "lactate_max_24h")
    known = [v for v in values if not np.isnan(v)]
    below = sum(v < 0 for v in known)
    above = sum(v > 30 for v in known)
    assert (result.metrics["checked"], result.metrics["below"], result.metrics["above"]) == (
        len(known),
        below,
        above,
    )
    share = (below + above) / len(known) if known else 0.0
    expected = (
        Status.PASS if not below + above else (Status.FAIL if share > tolerance else Status.WARN)
    )
    assert result.status is expected


def test_ranges_match_by_name_prefix_longest_first_and_skip_counts_and_slopes() -> None:
    found = ranges_for_columns(
        [
            "heart_rate_max_6h",
            "heart_rate_slope_6h",
            "lactate_count_24h",
            "systolic_bp_min_6h",
            "temp_unit",
            "temperature",
            "hrv_ms",
            "sex",
            "map_mean_1h",
            "mapping",
        ]
    )
    assert found == {
        "heart_rate_max_6h": DEFAULT_RANGES["heart_rate"],
        "systolic_bp_min_6h": DEFAULT_RANGES["systolic_bp"],
        "temp_unit": DEFAULT_RANGES["temp"],
        "temperature": DEFAULT_RANGES["temperature"],
        "map_mean_1h": DEFAULT_RANGES["map"],
    }
    assert ranges_for_columns(["heart_rate"], use_default_ranges=False) == {}


def test_ranges_follow_the_pipeline_features_by_loinc_and_unit() -> None:
    feats = (
        ObservationFeature(
            kind="observation", name="pulse_hi", loinc=("8867-4",), unit="/min", aggregation="max"
        ),
        ObservationFeature(kind="observation", name="temp_f", loinc=("8310-5",), unit="[degF]"),
        ObservationFeature(
            kind="observation", name="lac_n", loinc=("2524-7",), aggregation="count"
        ),
        ObservationFeature(kind="observation", name="heart_rate_other", loinc=("99999-5",)),
    )
    explicit = PlausibleRange(30, 110, "[degF]", "Body temperature (°F)")
    found = ranges_for_columns(
        ["pulse_hi", "temp_f", "lac_n", "heart_rate_other", "creatinine"], features=feats
    )
    # A declared feature is matched by its code only: an unknown code or another unit gets none.
    assert found == {
        "pulse_hi": DEFAULT_RANGES["heart_rate"],
        "creatinine": DEFAULT_RANGES["creatinine"],
    }
    assert ranges_for_columns(["temp_f"], features=feats, ranges={"temp_f": explicit}) == {
        "temp_f": explicit
    }


def test_the_brief_ranges_are_the_defaults() -> None:
    expected = {
        "heart_rate": (20, 300, "/min"),
        "temperature": (25, 45, "Cel"),
        "spo2": (0, 100, "%"),
        "lactate": (0, 30, "mmol/L"),
        "wbc": (0, 200, "10*3/uL"),
        "creatinine": (0, 20, "mg/dL"),
        "systolic": (40, 300, "mm[Hg]"),
        "resp_rate": (2, 80, "/min"),
    }
    for prefix, (low, high, unit) in expected.items():
        rng = DEFAULT_RANGES[prefix]
        assert (rng.low, rng.high, rng.unit) == (low, high, unit), prefix


# -------------------------------------------------------------------------------- duplicates


def test_duplicate_rows_and_keys_fail() -> None:
    frame = features(50)
    frame = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)
    frame.loc[len(frame)] = frame.iloc[10].to_dict() | {"heart_rate_max_6h": 99.0}
    report = assess_quality(frame, CONFIG)
    rows = next(r for r in report.by_check("duplicates") if r.metrics["rule"] == "rows")
    key = next(r for r in report.by_check("duplicates") if r.metrics["rule"] == "key")
    assert (rows.status, rows.metrics["duplicates"]) == (Status.FAIL, 1)
    assert (key.status, key.metrics["duplicates"], key.column) == (Status.FAIL, 2, "encounter_id")


def test_cells_holding_lists_or_dicts_fail_without_crashing_the_report() -> None:
    frame = pd.DataFrame({"x": [[1, 2], [1, 2]], "y": [{"a": 1}, {"a": 2}]})
    report = assess_quality(frame, QualityConfig())
    result = _only(report, "duplicates")
    assert result.status is Status.FAIL and "lists" in result.message
    assert next(p for p in report.profiles if p.name == "y").distinct is None


# ------------------------------------------------------------------------------------ schema


def test_schema_reports_missing_columns_wrong_kinds_and_mixed_types() -> None:
    frame = features(30).drop(columns=["prediction_time"])
    frame["heart_rate_max_6h"] = frame["heart_rate_max_6h"].astype(str)
    frame["wbc_last_24h"] = frame["wbc_last_24h"].astype(object)
    frame.loc[0, "wbc_last_24h"] = "high"
    report = assess_quality(frame, CONFIG)
    schema = {(r.column, r.metrics["rule"]) for r in report.by_check("schema")}
    assert schema == {
        ("prediction_time", "missing_column"),
        ("heart_rate_max_6h", "kind"),
        ("wbc_last_24h", "mixed_types"),
    }
    assert all(r.status is Status.FAIL for r in report.by_check("schema"))
    kind = next(r for r in report.by_check("schema") if r.metrics["rule"] == "kind")
    assert kind.message == (
        "Column 'heart_rate_max_6h' holds string values (object); expected numeric."
    )


def test_duplicate_column_names_fail_without_crashing() -> None:
    frame = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    report = assess_quality(frame, QualityConfig())
    assert [r.metrics["rule"] for r in report.failures] == ["duplicate_column"]


# ------------------------------------------------------------------------------------- label


@pytest.mark.parametrize(
    ("labels", "status", "text"),
    [
        ([0] * 90 + [1] * 10, Status.PASS, "Prevalence 10.00% (10 events in 100 rows)"),
        ([0] * 995 + [1] * 5, Status.WARN, "outside the expected 1%–50%"),
        ([0] * 40 + [1] * 60, Status.WARN, "outside the expected"),
        ([0] * 100, Status.FAIL, "only one class"),
        ([True] * 10 + [False] * 10, Status.PASS, "Prevalence 50.00%"),
    ],
)
def test_label_prevalence(labels: list[int], status: Status, text: str) -> None:
    frame = pd.DataFrame({"y": labels})
    result = _only(assess_quality(frame, QualityConfig(label_col="y")), "label")
    assert result.status is status and text in result.message


def test_label_must_be_binary_and_complete() -> None:
    bad = _only(
        assess_quality(pd.DataFrame({"y": [0, 1, 2]}), QualityConfig(label_col="y")), "label"
    )
    assert bad.status is Status.FAIL and "not binary" in bad.message
    report = assess_quality(pd.DataFrame({"y": [0, 1, None, 1]}), QualityConfig(label_col="y"))
    assert [r.metrics["rule"] for r in report.by_check("label")] == ["missing", "prevalence"]
    assert report.by_check("label")[0].status is Status.FAIL


def test_missing_label_column_is_a_schema_failure() -> None:
    report = assess_quality(pd.DataFrame({"x": [1.0]}), QualityConfig(label_col="y"))
    assert _only(report, "schema").metrics == {"rule": "missing_column"}
    assert report.by_check("label") == ()


@pytest.mark.parametrize(
    "options",
    [
        {"min_completeness": 1.5},
        {"max_implausible_share": 1.0},
        {"prevalence_band": (0.5, 0.1)},
        {"expected_kinds": {"x": "float"}},
        {"min_cell_size": 0},
    ],
)
def test_config_refuses_bad_values(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        QualityConfig(**options)  # type: ignore[arg-type]
