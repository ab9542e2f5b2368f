"""Safe Harbor rules: the REGULATORY.md §1.3/§1.4 test vectors, date shifts, pseudonyms, policy."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.domain.deid import (
    AGE_TOP_BUCKET,
    HHS_2000_RESTRICTED_ZIP3,
    MSFT_SAMPLE_RESTRICTED_ZIP3,
    Action,
    Category,
    DeidPolicy,
    DeidReport,
    date_shift_offset,
    earliest_date,
    generalise_birth_date,
    key_fingerprint,
    pseudonym,
    safe_age,
    scrub_text,
    shift_date_text,
    year_of_date_text,
    zip3,
)
from bedside.domain.spec_data import Deidentification
from bedside.errors import InvalidInput

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
REF = date(2026, 1, 1)

# --- ZIP codes (§1.4) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("03603", "000"), ("02139", "021"), ("89012-1234", "000"), (None, None)],
)
def test_zip3_regulatory_vectors(value: str | None, expected: str | None) -> None:
    assert zip3(value) == expected


def test_zip3_hhs_list_has_the_17_prefixes() -> None:
    assert len(HHS_2000_RESTRICTED_ZIP3) == 17
    assert len(set(HHS_2000_RESTRICTED_ZIP3)) == 17
    for prefix in HHS_2000_RESTRICTED_ZIP3:
        assert zip3(prefix + "12") == "000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("021391234", "021"),  # ZIP+4 without the dash
        (" 66801 ", "668"),
        ("668", "668"),  # already generalised: a second pass changes nothing
        ("036", "000"),
        ("", None),
        ("6680", None),
        ("K1A 0B1", None),  # not a US ZIP: dropped, never kept
        ("66801-12", None),
    ],
)
def test_zip3_normalises_or_drops(value: str, expected: str | None) -> None:
    assert zip3(value) == expected


def test_zip3_restricted_list_is_configurable() -> None:
    # 205 is restricted in Microsoft's sample list but not in the HHS list; 063 the other way.
    assert zip3("20500") == "205"
    assert zip3("20500", MSFT_SAMPLE_RESTRICTED_ZIP3) == "000"
    assert zip3("06390", MSFT_SAMPLE_RESTRICTED_ZIP3) == "063"
    assert zip3("06390") == "000"


@given(st.text(alphabet="0123456789-", min_size=0, max_size=11))
def test_zip3_never_outputs_a_restricted_prefix_or_more_than_3_digits(value: str) -> None:
    result = zip3(value)
    assert result is None or re.fullmatch(r"\d{3}", result)
    assert result not in HHS_2000_RESTRICTED_ZIP3


# --- ages and birth dates (§1.3) --------------------------------------------------------------


def test_birth_date_at_90_plus_loses_the_year() -> None:
    result = generalise_birth_date(date(1930, 5, 1), reference=REF)
    assert result.age_bucket == "90+"
    assert result.birth_year is None


def test_birth_date_keeps_the_year_only() -> None:
    result = generalise_birth_date(date(1990, 7, 4), reference=REF)
    assert result.birth_year == 1990
    assert result.age_bucket == 35


def test_birth_date_boundary_on_the_90th_birthday() -> None:
    assert generalise_birth_date(date(1936, 1, 2), reference=REF).birth_year == 1936  # 89
    assert generalise_birth_date(date(1936, 1, 1), reference=REF).birth_year is None  # 90 today


def test_birth_date_none() -> None:
    result = generalise_birth_date(None, reference=REF)
    assert (result.birth_year, result.age_bucket) == (None, None)


@pytest.mark.parametrize(("age", "expected"), [(89, 89), (90, "90+"), (0, 0), (104, "90+")])
def test_safe_age_vectors(age: int, expected: int | str) -> None:
    assert safe_age(age) == expected


def test_safe_age_cap_and_none() -> None:
    assert safe_age(95, top="cap") == 90
    assert safe_age(89.9) == 89.9
    assert safe_age(None) is None


def test_safe_age_refuses_negative_ages() -> None:
    with pytest.raises(InvalidInput, match="negative"):
        safe_age(-1)


@given(st.floats(min_value=0, max_value=150, allow_nan=False))
def test_safe_age_never_returns_a_number_of_90_or_more(age: float) -> None:
    result = safe_age(age)
    assert result == AGE_TOP_BUCKET or (isinstance(result, float) and result < 90)


@given(st.dates(min_value=date(1880, 1, 1), max_value=REF))
def test_generalised_birth_year_never_reveals_90_plus(birth: date) -> None:
    result = generalise_birth_date(birth, reference=REF)
    if result.birth_year is None:
        assert result.age_bucket == "90+"
    else:
        assert result.birth_year == birth.year
        assert isinstance(result.age_bucket, int) and result.age_bucket <= 89


def test_earliest_date_of_partial_dates() -> None:
    assert earliest_date("1936") == date(1936, 1, 1)
    assert earliest_date("1936-07") == date(1936, 7, 1)
    assert earliest_date("1936-07-04T10:00:00Z") == date(1936, 7, 4)
    assert earliest_date("1936-13") is None
    assert earliest_date("not a date") is None


# --- date shift (§1.7) ------------------------------------------------------------------------


def test_date_shift_is_deterministic_per_key_and_patient() -> None:
    a = date_shift_offset(KEY, "patient-1", 50)
    assert a == date_shift_offset(KEY, "patient-1", 50)
    assert -50 <= a <= 50 and a != 0


def test_date_shift_differs_between_patients_and_between_keys() -> None:
    patients = [f"patient-{i}" for i in range(200)]
    offsets = [date_shift_offset(KEY, p, 50) for p in patients]
    other = [date_shift_offset(OTHER_KEY, p, 50) for p in patients]
    # 100 possible offsets: two keys agree on ~1% of patients by chance, not on most.
    assert sum(a == b for a, b in zip(offsets, other, strict=True)) < 20
    assert len(set(offsets)) > 50  # spread over the range, not a constant


def test_date_shift_refuses_a_bound_below_one_and_a_short_key() -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        date_shift_offset(KEY, "p", 0)
    with pytest.raises(InvalidInput, match="5 bytes"):
        date_shift_offset(b"short", "p", 50)


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=365))
def test_date_shift_is_bounded_and_never_zero(patient: str, bound: int) -> None:
    offset = date_shift_offset(KEY, patient, bound)
    assert 1 <= abs(offset) <= bound


_instants = st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(2099, 10, 1))


@given(_instants, _instants, st.sampled_from(["Z", "-04:00", "+05:30", ""]), st.text(max_size=20))
def test_date_shift_preserves_intervals_within_a_patient(
    first: datetime, second: datetime, zone: str, patient: str
) -> None:
    offset = date_shift_offset(KEY, patient, 50)
    a = shift_date_text(first.isoformat() + zone, offset)
    b = shift_date_text(second.isoformat() + zone, offset)
    assert a is not None and b is not None
    moved_a, moved_b = datetime.fromisoformat(a), datetime.fromisoformat(b)
    assert moved_b - moved_a == second - first
    assert moved_a - first.replace(tzinfo=moved_a.tzinfo) == timedelta(days=offset)


def test_shift_date_text_keeps_time_and_zone() -> None:
    assert shift_date_text("1989-10-04T02:25:16-04:00", 30) == "1989-11-03T02:25:16-04:00"
    assert shift_date_text("2024-12-31", 1) == "2025-01-01"
    assert shift_date_text("2024-02-28T23:59:59.123Z", 1) == "2024-02-29T23:59:59.123Z"


def test_shift_date_text_partial_dates_keep_only_the_year_and_junk_is_dropped() -> None:
    assert shift_date_text("1990-07", 40) == "1990"
    assert shift_date_text("1990", -40) == "1990"
    assert shift_date_text("2020-01-01 John Smith", 3) is None
    assert shift_date_text("2020-02-30", 3) is None
    assert shift_date_text("yesterday", 3) is None


def test_year_of_date_text() -> None:
    assert year_of_date_text("1989-10-04T02:25:16-04:00") == "1989"
    assert year_of_date_text("1989") == "1989"
    assert year_of_date_text("04/10/1989") is None


# --- pseudonyms (§1.7) ------------------------------------------------------------------------


def test_pseudonym_is_deterministic_hex_and_key_dependent() -> None:
    p = pseudonym(KEY, "129c6ac7-8d06-89de-ad63-0204a93e76c3")
    assert p == pseudonym(KEY, "129c6ac7-8d06-89de-ad63-0204a93e76c3")
    assert re.fullmatch(r"[0-9a-f]{64}", p)
    assert p != pseudonym(OTHER_KEY, "129c6ac7-8d06-89de-ad63-0204a93e76c3")
    assert p != pseudonym(KEY, "129c6ac7-8d06-89de-ad63-0204a93e76c3", namespace="identifier")


@given(st.text(max_size=50), st.text(max_size=50))
def test_pseudonyms_of_different_values_differ(a: str, b: str) -> None:
    assert (pseudonym(KEY, a) == pseudonym(KEY, b)) == (a == b)


def test_key_fingerprint_names_the_key_without_revealing_it() -> None:
    fp = key_fingerprint(KEY)
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp != key_fingerprint(OTHER_KEY)
    assert KEY.hex()[:16] not in fp


# --- free text ------------------------------------------------------------------------------


def test_scrub_text_replaces_patterns_and_known_strings() -> None:
    note = (
        "Seen by Dr House. Pt Sumiko Medhurst, SSN 999-94-5397, call 555-810-7203 or "
        "sumiko@example.com; DOB 1927-05-21, MRN 00123456, lives at 633 Abernathy Landing, "
        "Emporia KS 66801. Portal https://portal.example.org/p/42 from 10.0.0.12."
    )
    scrubbed, counts = scrub_text(
        note, known=["Sumiko", "Medhurst", "Abernathy Landing", "Emporia"]
    )
    for secret in (
        "Sumiko",
        "Medhurst",
        "999-94-5397",
        "555-810-7203",
        "@example.com",
        "1927-05-21",
        "00123456",
        "Abernathy",
        "Emporia",
        "66801",
        "portal.example.org",
        "10.0.0.12",
    ):
        assert secret not in scrubbed, secret
    assert counts["known"] == 4
    assert {"ssn", "phone", "email", "date", "zip", "url", "ip_address"} <= counts.keys()
    assert "Seen by Dr House" in scrubbed  # unknown names are not found: scrubbing is not enough


def test_scrub_text_leaves_clinical_numbers() -> None:
    text = "HR 112, temp 38.4 C, lactate 2.1 mmol/L, WBC 14.2"
    assert scrub_text(text) == (text, {})


# --- policy and report ----------------------------------------------------------------------


def test_policy_from_spec_and_hash_changes_with_rules() -> None:
    spec = Deidentification()
    policy = DeidPolicy.from_spec(spec)
    assert policy.dates == "year"
    assert policy.restricted_zip3 == frozenset(HHS_2000_RESTRICTED_ZIP3)
    assert policy.policy_hash == DeidPolicy().policy_hash
    shifted = DeidPolicy.from_spec(Deidentification(date_shift_days=50))
    assert shifted.dates == "shift" and shifted.policy_hash != policy.policy_hash
    extra = DeidPolicy.from_spec(Deidentification(zip3_restricted_extra=("668",)))
    assert zip3("66801", extra.restricted_zip3) == "000"
    assert extra.zip3_list_version == "hhs-2000-census+1-extra"
    assert extra.zip3_list_hash != policy.zip3_list_hash
    msft = DeidPolicy.from_spec(
        Deidentification(zip3_restricted_list="msft-fhir-anonymizer-sample"),
        identifiers="pseudonymise",
    )
    assert msft.restricted_zip3 == frozenset(MSFT_SAMPLE_RESTRICTED_ZIP3)
    assert msft.identifiers == "pseudonymise"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"date_shift_days": 400}, "date_shift_days"),
        ({"date_shift_days": -1}, "date_shift_days"),
        ({"zip3_list": "census-1990"}, "unknown"),
        ({"zip3_restricted_extra": ("36",)}, "3-digit"),
        ({"identifiers": "keep"}, "identifiers"),
    ],
)
def test_policy_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        DeidPolicy(**kwargs)  # type: ignore[arg-type]


def test_report_counts_merge_and_serialise() -> None:
    policy = DeidPolicy()
    a = DeidReport.start(policy, KEY)
    a.count(Category.NAMES, Action.REMOVED, 3)
    a.records["Patient"] = 1
    b = DeidReport.start(policy, KEY)
    b.count(Category.NAMES, Action.REMOVED)
    b.count(Category.DATES, Action.GENERALISED, 2)
    b.records["Patient"] = 2
    a.merge(b)
    assert a.total(Category.NAMES) == 4
    assert a.total(action=Action.GENERALISED) == 2
    data = a.to_dict()
    assert data["actions"] == {"A_names": {"removed": 4}, "C_dates": {"generalised": 2}}
    assert data["records"] == {"Patient": 3}
    assert data["policy_hash"] == policy.policy_hash
    with pytest.raises(InvalidInput, match="different"):
        a.merge(DeidReport.start(policy, OTHER_KEY))
