"""The PHI scan: every rule fires where it should, not on clinical features, never shows values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.domain.phi_scan import PhiFinding, PhiRule, PhiScanReport, Severity, scan_table

N = 200
RNG_SEED = 11


def _cycle(values: list[str], n: int = N) -> list[str]:
    return [values[i % len(values)] for i in range(n)]


def findings_for(frame: pd.DataFrame, column: str) -> dict[PhiRule, PhiFinding]:
    return {f.rule: f for f in scan_table(frame).findings if f.column == column}


# --- value rules, on columns with neutral names ---------------------------------------------


@pytest.mark.parametrize(
    ("rule", "values"),
    [
        (PhiRule.SSN, ["999-12-3456", "999 65 4321"]),
        (PhiRule.PHONE, ["555-810-7203", "(617) 555-0101", "+1 617 555 0199", "+44 20 7946 0958"]),
        (PhiRule.EMAIL, ["jane.roe@example.com", "j_doe+x@mail.example.org"]),
        (PhiRule.URL, ["https://portal.example.org/p/42", "www.example.com/jane"]),
        (PhiRule.IP_ADDRESS, ["10.0.0.12", "192.168.1.254", "fe80::1ff:fe23:4567:890a"]),
        (PhiRule.FULL_DATE, ["2024-03-01", "03/01/2024", "March 1, 2024", "1 Mar 2024"]),
        (PhiRule.ZIP5, ["02139", "89012-1234", "66801"]),
        (PhiRule.MRN_LIKE, ["00123456", "MR-1234567", "A12345678"]),
    ],
)
def test_value_pattern_rules_fire_with_high_severity(rule: PhiRule, values: list[str]) -> None:
    frame = pd.DataFrame({"col_a": _cycle(values)})
    found = findings_for(frame, "col_a")
    assert rule in found
    assert found[rule].severity is Severity.HIGH
    assert found[rule].share == 1.0


def test_a_single_ssn_in_a_column_is_enough_to_block() -> None:
    values = ["normal"] * (N - 1) + ["call 999-12-3456"]
    report = scan_table(pd.DataFrame({"col_a": values}))
    (finding,) = [f for f in report.findings if f.rule is PhiRule.SSN]
    assert finding.severity is Severity.HIGH and finding.share == pytest.approx(1 / N)
    assert report.blocking


def test_share_is_the_share_of_sampled_rows_that_matched() -> None:
    values = _cycle(["999-12-3456", "x", "y"], 300)
    (finding,) = [
        f for f in scan_table(pd.DataFrame({"c": values})).findings if f.rule is PhiRule.SSN
    ]
    assert finding.share == pytest.approx(1 / 3)


def test_zip_and_mrn_like_values_are_medium_when_rare() -> None:
    values = ["a"] * (N - 10) + ["02139"] * 5 + ["00123456"] * 5
    found = findings_for(pd.DataFrame({"c": values}), "c")
    assert found[PhiRule.ZIP5].severity is Severity.MEDIUM
    assert found[PhiRule.MRN_LIKE].severity is Severity.MEDIUM


def test_datetime_columns_are_full_dates_unless_they_hold_years() -> None:
    times = pd.Series(pd.date_range("2024-01-01 08:00", periods=N, freq="37min"))
    years = pd.Series(pd.to_datetime([f"{2000 + i % 20}-01-01" for i in range(N)]))
    found = scan_table(pd.DataFrame({"event": times, "year": years})).findings
    assert [(f.column, f.rule) for f in found] == [("event", PhiRule.FULL_DATE)]


def test_free_text_fires_on_long_varied_strings_not_on_long_labels() -> None:
    rng = np.random.default_rng(RNG_SEED)
    words = ["pain", "better", "today", "called", "wife", "will", "follow", "up", "clinic", "in"]
    notes = [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(N)]
    labels = _cycle(["Emergency room admission (procedure)", "Hospital admission (procedure)"])
    frame = pd.DataFrame({"c": notes, "kind": labels})
    report = scan_table(frame)
    # Notes are also all different, so they act as identifiers too.
    assert [(f.column, f.rule, f.severity) for f in report.findings] == [
        ("c", PhiRule.FREE_TEXT, Severity.HIGH),
        ("c", PhiRule.NEAR_UNIQUE, Severity.HIGH),
    ]


def test_near_unique_text_and_integer_columns_act_as_identifiers() -> None:
    frame = pd.DataFrame(
        {
            "k1": [f"k{i:05d}x" for i in range(N)],
            "k2": np.arange(N, dtype=np.int64) * 7 + 3,
            "lactate_last": np.linspace(0.5, 9.5, N),  # distinct floats: measurements, not ids
            "count": np.arange(N) % 5,
        }
    )
    found = [(f.column, f.rule) for f in scan_table(frame).findings]
    assert found == [("k1", PhiRule.NEAR_UNIQUE), ("k2", PhiRule.NEAR_UNIQUE)]
    small = frame.head(20)
    assert not scan_table(small).findings  # too few rows to judge uniqueness


def test_ages_of_90_or_more_are_flagged_in_an_age_column() -> None:
    frame = pd.DataFrame({"age": [34, 91, 45, 60] * 50, "age_years": [34, 89, 45, 60] * 50})
    found = [(f.column, f.rule, f.share) for f in scan_table(frame).findings]
    assert found == [("age", PhiRule.AGE_OVER_89, 0.25)]


# --- column names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "category"),
    [
        ("patient_name", "A_names"),
        ("LastName", "A_names"),
        ("surname", "A_names"),
        ("home_address", "B_geography"),
        ("City", "B_geography"),
        ("zip_code", "B_geography"),
        ("postalCode", "B_geography"),
        ("latitude", "B_geography"),
        ("dob", "C_dates"),
        ("birthDate", "C_dates"),
        ("date_of_death", "C_dates"),
        ("phone_number", "D_phone"),
        ("fax", "E_fax"),
        ("e-mail", "F_email"),
        ("SSN", "G_ssn"),
        ("mrn", "H_medical_record_numbers"),
        ("medical_record_number", "H_medical_record_numbers"),
        ("insurance_id", "I_health_plan_numbers"),
        ("account_number", "J_account_numbers"),
        ("drivers_license", "K_certificate_license_numbers"),
        ("passport_no", "K_certificate_license_numbers"),
        ("license_plate", "L_vehicle_identifiers"),
        ("device_serial", "M_device_identifiers"),
        ("website", "N_urls"),
        ("ip_address", "O_ip_addresses"),
        ("fingerprint", "P_biometric_identifiers"),
        ("photo", "Q_photographs"),
        ("name_of_phone_owner", "D_phone"),  # the most severe hint wins over "name"
    ],
)
def test_identifying_column_names_fire_high(column: str, category: str) -> None:
    frame = pd.DataFrame({column: [1.5, 2.5, 3.5]})
    (finding,) = scan_table(frame).findings
    assert (finding.rule, finding.category, finding.severity) == (
        PhiRule.COLUMN_NAME,
        category,
        Severity.HIGH,
    )
    assert finding.share is None


@pytest.mark.parametrize("column", ["drug_name", "notes", "patient_id", "id", "lat", "ip"])
def test_ambiguous_column_names_are_medium(column: str) -> None:
    (finding,) = scan_table(pd.DataFrame({column: [1.5, 2.5, 3.5]})).findings
    assert finding.severity is Severity.MEDIUM


# --- clean clinical features -----------------------------------------------------------------

CLEAN = [
    "heart_rate_max_6h",
    "resp_rate_mean_24h",
    "lactate_last",
    "sbp_min_6h",
    "temp_slope_12h",
    "spo2_min_6h",
    "wbc_count_24h",
    "hour_sin",
    "hour_cos",
    "creatinine_delta",
    "label",
    "prediction_hour",
]


def test_clean_clinical_features_raise_nothing() -> None:
    rng = np.random.default_rng(RNG_SEED)
    frame = pd.DataFrame({name: rng.normal(80, 15, N) for name in CLEAN})
    frame["wbc_count_24h"] = rng.integers(0, 6, N)
    frame["label"] = rng.integers(0, 2, N).astype(bool)
    frame["age"] = rng.integers(18, 90, N)
    frame["age_group"] = _cycle(["18-44", "45-64", "65-79", "80-89", "90+"])
    frame["sex"] = _cycle(["female", "male"])
    frame["race"] = _cycle(["White", "Black or African American", "Asian"])
    frame["ethnicity"] = _cycle(["Hispanic or Latino", "Not Hispanic or Latino"])
    frame["admission_type"] = _cycle(["Emergency room admission (procedure)", "Hospital admission"])
    frame["zip3"] = _cycle(["021", "000", "668"])
    frame["birth_year"] = rng.integers(1940, 2005, N)
    frame["loinc"] = _cycle(["8867-4", "2524-7", "59408-5"])
    report = scan_table(frame)
    assert report.findings == ()
    assert not report.blocking


@given(
    st.sampled_from(CLEAN),
    st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=0, max_size=300),
)
def test_numeric_features_with_clean_names_never_raise_findings(
    name: str, values: list[float]
) -> None:
    assert scan_table(pd.DataFrame({name: pd.Series(values, dtype=float)})).findings == ()


# --- reports: blocking, waivers, no values -----------------------------------------------------


def test_blocking_needs_an_unwaived_high_finding() -> None:
    medium_only = scan_table(pd.DataFrame({"drug_name": ["a", "b"]}))
    assert medium_only.findings and not medium_only.blocking
    keys = pd.DataFrame({"patient_key": [f"{i:064x}" for i in range(N)]})
    assert scan_table(keys).blocking
    waived = scan_table(keys, waivers={"patient_key": ["near_unique"]})
    (finding,) = [f for f in waived.findings if f.rule is PhiRule.NEAR_UNIQUE]
    assert finding.waived and finding.severity is Severity.HIGH
    assert not waived.blocking and waived.blocking_findings == ()


def test_a_waiver_covers_only_the_rules_it_names() -> None:
    frame = pd.DataFrame({"patient_key": [f"999-12-{i:04d}" for i in range(N)]})
    report = scan_table(frame, waivers={"patient_key": [PhiRule.NEAR_UNIQUE]})
    assert [f.rule for f in report.blocking_findings] == [PhiRule.SSN]


def test_an_unknown_waiver_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="nearly_unique"):
        scan_table(pd.DataFrame({"a": [1]}), waivers={"a": ["nearly_unique"]})


CANARIES = ["Zqxjvb", "999-31-4159", "zqxjvb@example.com", "555-314-1592", "1931-04-15"]


def test_findings_and_renderings_never_contain_values() -> None:
    frame = pd.DataFrame(
        {
            "contact": _cycle([f"{CANARIES[0]} {CANARIES[1]}", CANARIES[2], CANARIES[3]]),
            "when": _cycle([CANARIES[4]]),
            "note": [
                f"{CANARIES[0]} said the pain is worse, see {i} and {CANARIES[3]}" for i in range(N)
            ],
        }
    )
    report = scan_table(frame)
    assert report.blocking and len(report.findings) >= 5  # the canaries were found…
    renderings = [
        json.dumps(report.to_dict()),
        report.to_markdown(),
        report.summary(),
        repr(report),
        str(report.findings),
        " ".join(str(f.to_dict()) for f in report.findings),
    ]
    for text in renderings:
        for canary in CANARIES:
            assert canary not in text  # …and none of their values is shown


def test_report_to_dict_and_markdown() -> None:
    frame = pd.DataFrame({"ssn": _cycle(["999-12-3456"]), "heart_rate_max_6h": np.ones(N)})
    report = scan_table(frame)
    data = report.to_dict()
    assert data["rows"] == N and data["columns"] == 2 and data["blocking"] is True
    assert {"column": "ssn", "rule": "ssn", "severity": "high", "share": 1.0}.items() <= data[
        "findings"
    ][1].items()
    markdown = report.to_markdown()
    assert "**Blocking**: 2 high-severity finding(s)." in markdown
    assert "| `ssn` | column_name | G_ssn | high | — | no |" in markdown
    clean = scan_table(pd.DataFrame({"heart_rate_max_6h": np.ones(3)})).to_markdown()
    assert "No findings." in clean and "**Not blocking**" in clean


def test_sampling_is_deterministic_and_bounded() -> None:
    n = 30_000
    frame = pd.DataFrame({"c": ["x"] * (n - 1) + ["999-12-3456"]})
    first = scan_table(frame, sample_rows=1_000)
    assert first.sampled_rows == 1_000 and first.rows == n
    assert first == scan_table(frame, sample_rows=1_000)
    assert [f.rule for f in first.findings] == [PhiRule.SSN]  # the last row is always sampled


def test_odd_columns_do_not_crash_the_scan() -> None:
    frame = pd.DataFrame(
        {
            "mixed": [1, "two", 3.0, None] * 20,
            "lists": [[1, 2], [3], [4, 5], [6]] * 20,
            "empty": pd.Series([None] * 80, dtype=object),
            "category": pd.Series(["02139", "66801"] * 40, dtype="category"),
        }
    )
    report = scan_table(frame)
    assert {f.rule for f in report.findings if f.column == "category"} == {PhiRule.ZIP5}
    assert isinstance(report, PhiScanReport)
    assert scan_table(pd.DataFrame()).findings == ()


def test_summary_names_blocking_columns_and_rules() -> None:
    frame = pd.DataFrame({"ssn": _cycle(["999-12-3456"]), "k": [f"k{i}" for i in range(N)]})
    summary = scan_table(frame, waivers={"k": ["near_unique"]}).summary()
    assert summary == (
        "PHI scan: 2 blocking finding(s): column 'ssn' (column_name, G_ssn); "
        "column 'ssn' (ssn, G_ssn, 100% of sampled rows)"
    )
    assert scan_table(frame[["k"]], waivers={"k": ["near_unique"]}).summary() == (
        "PHI scan: no blocking finding."
    )
    distinct = scan_table(frame[["k"]]).summary()
    assert distinct == (
        "PHI scan: 1 blocking finding(s): "
        "column 'k' (near_unique, R_other_identifying, 100% distinct)"
    )
