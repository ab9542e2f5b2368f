"""Table de-identification: the same Safe Harbor rules as FHIR, vectorised, same pseudonyms."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bedside.deid.fhir import FhirDeidentifier
from bedside.deid.tables import ColumnKind, deidentify_table
from bedside.domain.deid import (
    Action,
    Category,
    DeidPolicy,
    DeidReport,
    date_shift_offset,
    pseudonym,
)
from bedside.domain.phi_scan import PhiRule, scan_table
from bedside.errors import InvalidInput

KEY = bytes(range(32))
AS_OF = date(2026, 1, 1)
YEAR_ONLY = DeidPolicy()
SHIFTED = DeidPolicy(date_shift_days=50, identifiers="pseudonymise")


def raw_table() -> pd.DataFrame:
    """A small synthetic extract with every kind of column (no real person)."""
    return pd.DataFrame(
        {
            "patient_id": ["pat-1", "pat-1", "pat-2", "pat-3", None],
            "patient_name": ["Jane Roe", "Jane Roe", "John Doe", "Ann Poe", "Bo Li"],
            "ssn": ["999-12-3456", "999-12-3456", "999-65-4321", "999-11-2222", None],
            "mrn": ["00123456", "00123456", "00765432", "00111222", "00999888"],
            "phone": ["555-810-7203", "555-810-7203", "555-010-0199", None, "555-010-0100"],
            "zip": ["03603", "03603", "02139", "89012-1234", None],
            "birth_date": ["1930-05-01", "1930-05-01", "1990-07-04", "1936-01-02", None],
            "admit_time": [
                "2024-03-01T10:00:00Z",
                "2024-03-04T22:30:00Z",
                "2023-12-31T23:00:00Z",
                "2024-06-15T08:00:00Z",
                "2024-01-01T00:00:00Z",
            ],
            "age": [93, 93, 33, 89, 90],
            "note": [
                "Jane called from 555-810-7203 about her meds",
                None,
                "Seen 2024-01-02, SSN 999-65-4321 on file",
                "ok",
                "email bo@example.com",
            ],
            "heart_rate_max_6h": [112.0, 98.0, 77.0, 130.0, 88.0],
        }
    )


MAPPING: dict[str, ColumnKind | str] = {
    "patient_id": ColumnKind.PSEUDONYM,
    "patient_name": "name",
    "ssn": "ssn",
    "mrn": "mrn",
    "phone": "phone",
    "zip": "zip",
    "birth_date": "birth_date",
    "admit_time": "date",
    "age": "age",
    "note": "free_text",
    "heart_rate_max_6h": "keep",
}


def run(
    policy: DeidPolicy = YEAR_ONLY, table: pd.DataFrame | None = None, **kw: object
) -> tuple[pd.DataFrame, DeidReport]:
    return deidentify_table(
        raw_table() if table is None else table,
        MAPPING,
        policy=policy,
        key=KEY,
        as_of=AS_OF,
        patient_column="patient_id",
        **kw,  # type: ignore[arg-type]
    )


def test_identifying_columns_are_removed_and_values_do_not_survive() -> None:
    raw = raw_table()
    out, report = run()
    assert list(out.columns) == [
        "patient_id", "zip3", "birth_year", "admit_time", "age", "heart_rate_max_6h",
    ]  # fmt: skip
    blob = out.to_csv()
    for column in ("patient_name", "ssn", "mrn", "phone", "note"):
        for value in raw[column].dropna():
            assert str(value) not in blob
    assert report.columns["ssn"] == "removed" and report.columns["mrn"] == "removed"
    assert report.total(Category.SSN, Action.REMOVED) == 4  # non-null values
    assert report.total(Category.NAMES, Action.REMOVED) == 5
    pd.testing.assert_frame_equal(raw, raw_table())  # the input is unchanged


def test_zip_birth_date_and_age_follow_the_regulatory_vectors() -> None:
    out, _ = run()
    assert out["zip3"].tolist() == ["000", "000", "021", "000", pd.NA]
    assert out["birth_year"].tolist() == [pd.NA, pd.NA, 1990, 1936, pd.NA]  # 1930: 90+, none
    assert out["age"].tolist() == ["90+", "90+", "33", "89", "90+"]
    capped, _ = run(DeidPolicy(age_over_89="cap"))
    assert capped["age"].tolist() == [90, 90, 33, 89, 90]


def test_integer_zip_codes_regain_their_leading_zeros() -> None:
    table = pd.DataFrame({"zip": [2139, 3603, 890121234, 66801]})
    out, _ = deidentify_table(table, {"zip": "zip"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF)
    assert out["zip3"].tolist() == ["021", "000", "000", "668"]


def test_year_only_dates_become_years() -> None:
    out, report = run()
    assert out["admit_time"].tolist() == [2024, 2024, 2023, 2024, 2024]
    assert report.columns["admit_time"] == "generalised: year"


def test_shifted_dates_use_the_patients_offset_and_keep_intervals() -> None:
    raw = raw_table()
    out, report = run(SHIFTED)
    moved = out["admit_time"] - pd.to_datetime(raw["admit_time"], utc=True)
    for row in range(4):
        expected = date_shift_offset(KEY, raw["patient_id"][row], 50)
        assert moved[row] == pd.Timedelta(days=expected)
    assert moved[0] == moved[1]  # one patient, one offset: the 3.5-day interval is kept
    assert pd.isna(out["admit_time"][4])  # no patient: cannot be shifted consistently, removed
    assert report.total(Category.DATES, Action.SHIFTED) == 4


def test_shifted_table_dates_match_the_fhir_path_for_the_same_patient() -> None:
    out, _ = run(SHIFTED)
    fhir = FhirDeidentifier(SHIFTED, key=KEY, as_of=AS_OF)
    encounter = fhir.deidentify(
        {
            "resourceType": "Encounter",
            "id": "e1",
            "subject": {"reference": "Patient/pat-2"},
            "period": {"start": "2023-12-31T23:00:00Z"},
        }
    )
    assert encounter["subject"]["reference"] == f"Patient/{out['patient_id'][2]}"
    assert pd.Timestamp(encounter["period"]["start"]) == out["admit_time"][2]


def test_shifting_needs_the_patient_column() -> None:
    with pytest.raises(InvalidInput, match="patient_column"):
        deidentify_table(raw_table(), MAPPING, policy=SHIFTED, key=KEY, as_of=AS_OF)


def test_pseudonyms_match_the_fhir_ids_and_float_ids_are_read_as_integers() -> None:
    out, _ = run()
    assert out["patient_id"].tolist()[:4] == [
        pseudonym(KEY, "pat-1"),
        pseudonym(KEY, "pat-1"),
        pseudonym(KEY, "pat-2"),
        pseudonym(KEY, "pat-3"),
    ]
    assert pd.isna(out["patient_id"][4])
    floats = pd.DataFrame({"pid": [12.0, None, 7.0]})
    hashed, _ = deidentify_table(
        floats, {"pid": "pseudonym"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF
    )
    assert hashed["pid"][0] == pseudonym(KEY, "12") and hashed["pid"][2] == pseudonym(KEY, "7")


def test_identifier_policy_pseudonymises_mrns_but_never_ssns() -> None:
    out, report = run(SHIFTED)
    assert out["mrn"][0] == pseudonym(KEY, "|00123456", namespace="identifier")
    assert "ssn" not in out.columns
    assert report.columns["mrn"] == "pseudonymised"


def test_free_text_is_removed_or_scrubbed() -> None:
    out, _ = run()
    assert "note" not in out.columns
    scrubbed, report = run(DeidPolicy(free_text="scrub"))
    assert scrubbed["note"][0] == "Jane called from [PHONE] about her meds"
    assert scrubbed["note"][2] == "Seen [DATE], SSN [SSN] on file"
    assert scrubbed["note"][4] == "email [EMAIL]"
    assert report.total(Category.OTHER, Action.SCRUBBED) == 4


def test_unmapped_missing_and_unknown_columns_are_refused_by_name() -> None:
    table = raw_table()
    with pytest.raises(InvalidInput, match="heart_rate_max_6h") as info:
        deidentify_table(
            table,
            {k: v for k, v in MAPPING.items() if k != "heart_rate_max_6h"},
            policy=YEAR_ONLY,
            key=KEY,
            as_of=AS_OF,
        )
    assert "112" not in str(info.value)
    with pytest.raises(InvalidInput, match="does not have: lactate"):
        deidentify_table(
            table, {**MAPPING, "lactate": "keep"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF
        )
    with pytest.raises(InvalidInput, match="Unknown column kind"):
        deidentify_table(table, {**MAPPING, "age": "fuzzy"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF)
    kept, _ = deidentify_table(
        table, {"patient_id": "pseudonym"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF, unmapped="keep"
    )
    assert list(kept.columns) == list(table.columns)
    removed, report = deidentify_table(
        table,
        {"heart_rate_max_6h": "keep"},
        policy=YEAR_ONLY,
        key=KEY,
        as_of=AS_OF,
        unmapped="remove",
    )
    assert list(removed.columns) == ["heart_rate_max_6h"]
    assert report.columns["ssn"] == "removed"


def test_negative_ages_are_refused() -> None:
    table = pd.DataFrame({"age": [30, -2]})
    with pytest.raises(InvalidInput, match="negative"):
        deidentify_table(table, {"age": "age"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF)


def test_arrow_tables_come_back_as_arrow_tables() -> None:
    arrow = pa.Table.from_pandas(raw_table(), preserve_index=False)
    out, _ = deidentify_table(
        arrow, MAPPING, policy=SHIFTED, key=KEY, as_of=AS_OF, patient_column="patient_id"
    )
    assert isinstance(out, pa.Table)
    expected, _ = run(SHIFTED)
    pd.testing.assert_frame_equal(out.to_pandas(), expected, check_dtype=False)


def test_the_phi_scan_blocks_the_raw_table_and_passes_the_de_identified_one() -> None:
    rng = np.random.default_rng(7)
    n = 400
    raw = pd.DataFrame(
        {
            "patient_id": [f"pat-{i}" for i in range(n)],
            "ssn": [f"999-{i % 90 + 10:02d}-{i:04d}" for i in range(n)],
            "zip": [f"{z:05d}" for z in rng.integers(1000, 99999, n)],
            "birth_date": pd.to_datetime("1940-01-01")
            + pd.to_timedelta(rng.integers(0, 20_000, n), unit="D"),
            "admit_time": pd.to_datetime("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 10_000_000, n), unit="s"),
            "heart_rate_max_6h": rng.normal(90, 15, n),
        }
    )
    assert scan_table(raw).blocking
    mapping = {
        "patient_id": "pseudonym",
        "ssn": "ssn",
        "zip": "zip",
        "birth_date": "birth_date",
        "admit_time": "date",
        "heart_rate_max_6h": "keep",
    }
    out, _ = deidentify_table(raw, mapping, policy=YEAR_ONLY, key=KEY, as_of=AS_OF)
    report = scan_table(out, waivers={"patient_id": [PhiRule.NEAR_UNIQUE]})
    assert not report.blocking, report.to_markdown()
    shifted, _ = deidentify_table(
        raw, mapping, policy=SHIFTED, key=KEY, as_of=AS_OF, patient_column="patient_id"
    )
    # Shifted full dates are still full dates: the scan flags them unless the caller waives it.
    assert [f.column for f in scan_table(shifted).blocking_findings] == [
        "patient_id",
        "admit_time",
    ]


@pytest.mark.parametrize(
    ("column", "kind", "renamed"),
    [
        ("zip", "zip", "zip3"),
        ("postal_code", "zip", "postal_code_zip3"),
        ("birth_date", "birth_date", "birth_year"),
        ("date_of_birth", "birth_date", "year_of_birth"),
        ("dob", "birth_date", "birth_year"),
        ("born", "birth_date", "born_birth_year"),
    ],
)
def test_generalised_columns_are_renamed_to_say_what_they_hold(
    column: str, kind: str, renamed: str
) -> None:
    table = pd.DataFrame({column: ["02139" if kind == "zip" else "1990-07-04"]})
    out, report = deidentify_table(table, {column: kind}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF)
    assert list(out.columns) == [renamed]
    assert report.columns[column].endswith(f"(renamed {renamed})")
    assert not scan_table(out).findings


def test_a_rename_onto_an_existing_column_is_refused() -> None:
    table = pd.DataFrame({"zip": ["02139"], "zip3": ["021"]})
    with pytest.raises(InvalidInput, match="already has a column zip3"):
        deidentify_table(
            table, {"zip": "zip", "zip3": "keep"}, policy=YEAR_ONLY, key=KEY, as_of=AS_OF
        )
