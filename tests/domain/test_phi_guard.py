"""The tracking PHI guard: each rule refuses, ordinary ML content passes, values never echo."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedside.domain.phi_guard import (
    KNOWN_METRICS,
    LINEAGE_KEYS,
    Field,
    GuardRule,
    PhiGuard,
    ValueFormat,
)
from bedside.domain.phi_names import FAMILY_NAMES, GIVEN_NAMES
from bedside.errors import InvalidInput

GUARD = PhiGuard()


def _rules(pairs: dict[str, object]) -> list[tuple[str, str, GuardRule]]:
    return [(v.label, v.part, v.rule) for v in GUARD.find_in_pairs(Field.PARAM, pairs)]


# --- each rule, on its own -----------------------------------------------------------------------

VALUE_CASES = [
    ("ssn", "SSN 123-45-6789 on file", GuardRule.SSN),
    ("phone", "call (555) 013-2719", GuardRule.PHONE),
    ("email", "ward.clerk@example.org", GuardRule.EMAIL),
    ("mrn_prefixed", "MRN: 00123", GuardRule.MRN_LIKE),
    ("mrn_token", "PT-0012345", GuardRule.MRN_LIKE),
    ("digit_run", "chart 12345678", GuardRule.MRN_LIKE),
    ("fhir", "Patient/abc-123", GuardRule.FHIR_REFERENCE),
    ("fhir_encounter", "see Encounter/9", GuardRule.FHIR_REFERENCE),
    ("uuid", "c4a9e7d2-0b1f-4e8a-9d3c-5f6a7b8c9d0e", GuardRule.UUID),
    ("iso_date", "1987-03-14", GuardRule.FULL_DATE),
    ("us_date", "born 3/14/1987", GuardRule.FULL_DATE),
    ("text_date", "Mar 14, 1987", GuardRule.FULL_DATE),
    ("street", "12 Elm Grove Street", GuardRule.STREET_ADDRESS),
    ("po_box", "PO Box 77", GuardRule.STREET_ADDRESS),
    ("zip_whole", "02139", GuardRule.ZIP_CODE),
    ("zip_plus4", "area 02139-4307", GuardRule.ZIP_CODE),
    ("zip_state", "Boston, MA 02139", GuardRule.ZIP_CODE),
    ("given_then_word", "Mary Quixwhistle", GuardRule.PERSON_NAME),
    ("word_then_family", "Zebulon Smith", GuardRule.PERSON_NAME),
    ("family_comma_given", "Smith, John", GuardRule.PERSON_NAME),
    ("lower_case_pair", "john smith", GuardRule.PERSON_NAME),
    ("with_initial", "Mary Q. Smith", GuardRule.PERSON_NAME),
    ("synthea", "Abe604 Frami345", GuardRule.PERSON_NAME),
]


@pytest.mark.parametrize(("case", "value", "rule"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_phi_guard_refuses_each_value_rule(case: str, value: str, rule: GuardRule) -> None:
    assert _rules({"note": value}) == [("'note'", "value", rule)]


@pytest.mark.parametrize(
    "key",
    [
        "patient_id",
        "PatientID",
        "patient",
        "mrn",
        "MRN",
        "encounter",
        "encounter_id",
        "subject_id",
        "hadm_id",
        "ssn",
        "dob",
        "date_of_birth",
        "birthDate",
        "name",
        "first_name",
        "familyName",
        "phone_number",
        "email",
        "home_address",
        "address1",
        "zip",
        "zip_code",
        "postal_code",
        "member_number",
    ],
)
def test_phi_guard_refuses_identifier_key_names(key: str) -> None:
    assert _rules({key: 1}) == [(repr(key), "key", GuardRule.KEY_NAME)]


@pytest.mark.parametrize(
    "key",
    [
        "n_patients",
        "patient_count",
        "model_name",
        "feature_names",
        "experiment_name",
        "zip3",
        "encounter_window_hours",
        "max_leaf_nodes",
        "classifier__learning_rate",
        "mlflow.runName",
        "subject_area",
    ],
)
def test_phi_guard_passes_ordinary_key_names(key: str) -> None:
    assert _rules({key: 1}) == []


def test_phi_guard_passes_ordinary_training_params_and_tags() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {
        **HistGradientBoostingClassifier(random_state=20240101).get_params(),
        **make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).get_params(),
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "method": "Cox regression",
        "estimator_name": "Nelson-Aalen",
        "race_groups": "White, Black or African American, Asian",
        "sex": "Female",
        "model_uri": "models:/m-0123456789abcdef0123456789abcdef",
        "run": "0123456789abcdef0123456789abcdef",
        "platform_text": "Linux-6.8.0-1025-aws-x86_64-with-glibc2.39",
        "vaccine": "mRNA-1273",
        "numbers": 123456789,
        "ratio": 0.123456789,
        "flag": True,
        "nothing": None,
        "split": "temporal, 70/15/15",
    }
    assert _rules(params) == []


def test_phi_guard_numbers_pass_but_dates_are_refused() -> None:
    assert _rules({"random_state": 1234567, "max_iter": np.int64(100), "lr": 0.1}) == []
    found = _rules(
        {
            "when": date(1987, 3, 14),
            "stamp": datetime(2026, 1, 1, 9, 30),
            "ts": pd.Timestamp("2026-01-01"),
        }
    )
    assert [rule for _, _, rule in found] == [GuardRule.FULL_DATE] * 3


def test_phi_guard_names_a_dirty_key_by_position_only() -> None:
    found = GUARD.find_in_pairs(Field.TAG, {"ok": "x", "123-45-6789": "y"})
    assert [(v.label, v.part, v.rule) for v in found] == [("#2", "key", GuardRule.SSN)]
    with pytest.raises(InvalidInput) as caught:
        GUARD.check_pairs(Field.TAG, {"ok": "x", "123-45-6789": "y"})
    assert "123-45-6789" not in str(caught.value)
    assert "tag #2 (key): rule 'ssn'" in str(caught.value)


def test_phi_guard_reports_every_violation_in_details() -> None:
    with pytest.raises(InvalidInput) as caught:
        GUARD.check_pairs(
            Field.PARAM, {"patient_id": "x", "note": "Smith, John", "ok": 1, "dob": "1950-01-01"}
        )
    details = caught.value.details["violations"]
    assert details == [
        {"field": "param", "part": "key", "rule": "key_name", "where": "'patient_id'"},
        {"field": "param", "part": "value", "rule": "person_name", "where": "'note'"},
        {"field": "param", "part": "key", "rule": "key_name", "where": "'dob'"},
        {"field": "param", "part": "value", "rule": "full_date", "where": "'dob'"},
    ]
    assert caught.value.code == "invalid_input"
    assert "Smith" not in str(caught.value) and "1950" not in str(caught.value)


# --- allow-list ----------------------------------------------------------------------------------


def test_phi_guard_allow_listed_keys_must_match_their_format() -> None:
    digest = "0123456789" * 6 + "0123"  # all digits: would be MRN-like anywhere else
    assert _rules({"bedside.dataset.digest": digest}) == []
    assert _rules({"free": digest}) == []  # a whole hex digest passes everywhere
    assert _rules({"free": "x " + digest[:10]}) == [("'free'", "value", GuardRule.MRN_LIKE)]
    found = _rules({"bedside.git.commit": "Mary Smith", "bedside.git.dirty": True})
    assert found == [("'bedside.git.commit'", "value", GuardRule.ALLOW_LIST_FORMAT)]


def test_phi_guard_project_can_allow_more_keys() -> None:
    guard = PhiGuard(allowed_keys={"bedside.split.train_end": ValueFormat.DATE})
    assert guard.find_in_pairs(Field.TAG, {"bedside.split.train_end": "2024-06-30"}) == []
    assert GUARD.find_in_pairs(Field.TAG, {"bedside.split.train_end": "2024-06-30"}) != []
    assert guard.find_in_pairs(Field.TAG, {"other_end": "2024-06-30"}) != []


_hex = st.binary(min_size=20, max_size=32).map(bytes.hex)


@given(
    commit=st.binary(min_size=20, max_size=20).map(bytes.hex),
    digest=st.binary(min_size=32, max_size=32).map(bytes.hex),
    version=st.from_regex(r"\A[0-9]{1,2}\.[0-9]{1,3}\.[0-9]{1,3}(\.dev[0-9]|rc[0-9]|\+local)?\Z"),
    dirty=st.booleans(),
)
def test_phi_guard_known_safe_lineage_values_pass(
    commit: str, digest: str, version: str, dirty: bool
) -> None:
    tags = {
        "bedside.git.commit": commit,
        "mlflow.source.git.commit": commit,
        "bedside.git.dirty": str(dirty).lower(),
        "bedside.dataset.digest": digest,
        "bedside.pipeline.sha256": digest,
        "bedside.lock.sha256": digest,
        "bedside.python": version,
        "bedside.version": version,
        "bedside.platform": "Linux-6.8.0-1025-aws-x86_64-with-glibc2.39",
        "free.digest": digest,
        "free.commit": commit,
    }
    assert GUARD.find_in_pairs(Field.TAG, tags) == []
    assert set(LINEAGE_KEYS) <= set(tags) | {"bedside.parent_run", "bedside.model_id"}


# --- names, metrics, tables, trees, text -------------------------------------------------------


def test_phi_guard_metric_names() -> None:
    known = [
        "auroc",
        "test.auroc.ci_low",
        "validation_sensitivity_ci_high",
        *sorted(KNOWN_METRICS),
    ]
    assert GUARD.find_in_metric_names(known) == []
    assert GUARD.find_in_metric_names(["auroc.race=White", "sensitivity.sex=F"]) == []
    found = GUARD.find_in_metric_names(["mrn_rate", "auroc_Patient/12"])
    assert [(v.label, v.rule) for v in found] == [
        ("'mrn_rate'", GuardRule.KEY_NAME),
        ("#2", GuardRule.FHIR_REFERENCE),
    ]


def test_phi_guard_single_names() -> None:
    assert GUARD.find_in_name(Field.RUN_NAME, "train-2026-hgb") == []
    assert GUARD.find_in_name(Field.EXPERIMENT_NAME, "sepsis-prediction-pipeline") == []
    found = GUARD.find_in_name(Field.RUN_NAME, "retrain for Mary Quixwhistle")
    assert [(v.field, v.part, v.rule) for v in found] == [
        (Field.RUN_NAME, "name", GuardRule.PERSON_NAME)
    ]
    with pytest.raises(InvalidInput, match="run name"):
        GUARD.check_name(Field.RUN_NAME, "MRN 12345")


def test_phi_guard_input_example_columns_and_cells() -> None:
    frame = pd.DataFrame(
        {
            "age": [45, 93],
            "heart_rate": [80.0, 130.0],
            "note": ["stable", "John Smith"],
            "admitted": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "sepsis": [True, False],
            "patient_id": [1, 2],
        }
    )
    found = GUARD.find_in_frame(Field.INPUT_EXAMPLE, frame)
    assert [(v.label, v.part, v.rule) for v in found] == [
        ("'patient_id'", "column", GuardRule.KEY_NAME),
        ("column 'age'", "cell", GuardRule.AGE_OVER_89),
        ("column 'note'", "cell", GuardRule.PERSON_NAME),
        ("column 'admitted'", "cell", GuardRule.FULL_DATE),
    ]
    clean = frame.drop(columns=["patient_id", "admitted"]).assign(age=[45, 71], note="stable")
    assert GUARD.find_in_frame(Field.INPUT_EXAMPLE, clean) == []


def test_phi_guard_profile_tree() -> None:
    profile = {
        "rows": 1000,
        "prevalence": 0.12,
        "columns": {"age": {"max": 97, "count": 1000}, "sex": {"values": ["F", "M"]}},
        "source_note": ["ok", "call 555-013-2719"],
    }
    found = GUARD.find_in_tree(Field.DATASET_PROFILE, profile)
    assert [(v.label, v.rule) for v in found] == [
        ("'columns'.'age'.'max'", GuardRule.AGE_OVER_89),
        ("'source_note'[2]", GuardRule.PHONE),
    ]
    assert GUARD.find_in_tree(Field.DATASET_PROFILE, {"columns": {"age": {"max": 89}}}) == []


def test_phi_guard_artifact_text_uses_high_confidence_rules_only() -> None:
    report = "Validation report 2026-03-01. Signed by Dr Carol Jones. AUROC 0.87 (n=12345)."
    assert GUARD.find_in_text(Field.ARTIFACT, "'report.html'", report) == []
    with pytest.raises(InvalidInput) as caught:
        GUARD.check_text(Field.ARTIFACT, "'notes.txt'", report + " Contact: 555-013-2719")
    assert "artifact 'notes.txt' (content): rule 'phone'" in str(caught.value)
    assert "555-013-2719" not in str(caught.value)


# --- the property: a refused value never reaches the message ----------------------------------

_word = st.text(alphabet=string.ascii_lowercase, min_size=0, max_size=12)
_phi = st.one_of(
    st.from_regex(r"\A[0-8]\d{2}-\d{2}-\d{4}\Z"),
    st.from_regex(r"\A\(\d{3}\) \d{3}-\d{4}\Z"),
    st.from_regex(r"\A[a-z]{3,8}\.[a-z]{3,8}@[a-z]{3,8}\.(org|com|net)\Z"),
    st.uuids().map(str),
    st.from_regex(r"\A(Patient|Encounter)/[a-z0-9]{4,12}\Z"),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)).map(date.isoformat),
    st.from_regex(r"\AMRN ?[0-9]{4,9}\Z"),
    st.from_regex(r"\A[0-9]{7,12}\Z"),
    st.from_regex(r"\A[1-9][0-9]{0,4} [A-Z][a-z]{2,9} (Street|Avenue|Road|Lane)\Z"),
    st.tuples(st.sampled_from(sorted(GIVEN_NAMES)), st.from_regex(r"\A[A-Z][a-z]{3,9}\Z")).map(
        lambda t: f"{t[0].title()} {t[1]}"
    ),
    st.tuples(st.sampled_from(sorted(FAMILY_NAMES)), st.sampled_from(sorted(GIVEN_NAMES))).map(
        lambda t: f"{t[0].title()}, {t[1].title()}"
    ),
)


@given(core=_phi, prefix=_word, suffix=_word, key=st.from_regex(r"\A[a-z]{3,10}\Z"))
def test_phi_guard_never_echoes_a_refused_value(
    core: str, prefix: str, suffix: str, key: str
) -> None:
    value = f"{prefix} {core} {suffix}"
    checks: list[Callable[[], None]] = [
        lambda: GUARD.check_pairs(Field.TAG, {key: value}),
        lambda: GUARD.check_pairs(Field.PARAM, {value: 1}),
        lambda: GUARD.check_name(Field.RUN_NAME, value),
        lambda: GUARD.check_tree(Field.DATASET_PROFILE, {"x": {key: [value]}}),
        lambda: GUARD.check_frame(Field.INPUT_EXAMPLE, pd.DataFrame({"c": ["ok", value]})),
        lambda: GUARD.check_pairs(Field.TAG, {"bedside.git.commit": value}),
    ]
    for check in checks:
        with pytest.raises(InvalidInput) as caught:
            check()
        text = str(caught.value) + repr(caught.value.details)
        assert core not in text
        assert value not in text
