"""Temporal and random patient-level splits, and the leakage check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bedside.domain.spec import Split, SplitFractions
from bedside.domain.split import SPLITS, check_no_leakage, count_splits, split_patients
from bedside.errors import IntegrityError, InvalidInput

T0 = pd.Timestamp("2024-01-01 08:00")
CANARY_ID = "pt-ZZCANARY-4711"


def _frame(rows: list[tuple[int, int]], *, prefix: str = "p") -> pd.DataFrame:
    """One row per (patient number, hours after T0)."""
    return pd.DataFrame(
        {
            "patient_id": [f"{prefix}{p:03d}" for p, _ in rows],
            "prediction_time": [T0 + pd.Timedelta(hours=h) for _, h in rows],
            "heart_rate_max_6h": [60.0 + (p * 7 + h) % 90 for p, h in rows],
            "sepsis": [(p + h) % 9 == 0 for p, h in rows],
        }
    )


def _hospital(patients: int = 200, seed: int = 7) -> pd.DataFrame:
    """A seeded cohort: each patient has 1-4 admissions over two years."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(patients):
        first = int(rng.integers(0, 365 * 24))
        rows.append((p, first))
        for _ in range(int(rng.integers(0, 4))):
            rows.append((p, first + int(rng.integers(24, 365 * 24))))
    return _frame(rows)


def _first_times(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("patient_id").agg(
        first=("prediction_time", "min"), split=("split", "first")
    )


rows_strategy = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 2000)), min_size=3, max_size=150
)
fractions_strategy = st.sampled_from(
    [(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.34, 0.33, 0.33)]
)


def _split(method: str = "temporal", seed: int = 42, fractions=(0.7, 0.15, 0.15)) -> Split:  # type: ignore[no-untyped-def]
    train, validation, test = fractions
    return Split(
        method=method,  # type: ignore[arg-type]
        seed=seed,
        fractions=SplitFractions(train=train, validation=validation, test=test),
    )


# ------------------------------------------------------------------------------- properties


@given(rows=rows_strategy, fractions=fractions_strategy, seed=st.integers(0, 2**32 - 1))
def test_temporal_split_has_no_leakage_for_any_cohort(rows, fractions, seed) -> None:  # type: ignore[no-untyped-def]
    frame = _frame(rows)
    n = frame["patient_id"].nunique()
    assume(n >= 3)
    out, summary = split_patients(frame, _split(seed=seed, fractions=fractions))
    check_no_leakage(out)  # raises on any leak
    # One split per patient, every patient kept, every split non-empty.
    assert out.groupby("patient_id")["split"].nunique().max() == 1
    assert set(out["patient_id"]) == set(frame["patient_id"])
    assert all(summary.patients[name] >= 1 for name in SPLITS)
    assert sum(summary.patients.values()) == n
    # Rows are kept or counted as dropped; the first row of every patient is always kept.
    assert len(out) + sum(summary.dropped_rows.values()) == len(frame)
    assert summary.rows == {name: int((out["split"] == name).sum()) for name in SPLITS}
    # Earlier splits hold earlier patients, and no row crosses a boundary.
    first = _first_times(out)
    for earlier, later in (("train", "validation"), ("validation", "test")):
        assert (
            first.loc[first.split == earlier, "first"].max()
            <= first.loc[first.split == later, "first"].min()
        )
    assert out.loc[out.split == "train", "prediction_time"].max() <= summary.validation_start
    assert out.loc[out.split == "validation", "prediction_time"].max() <= summary.test_start
    # Patient counts follow the fractions (rounded, at least one per split).
    if n >= 20:
        assert abs(summary.patients["train"] - fractions[0] * n) <= 1
        assert abs(summary.patients["validation"] - fractions[1] * n) <= 1


@given(rows=rows_strategy, seed=st.integers(0, 1000), shuffle=st.randoms(use_true_random=False))
def test_split_ignores_row_order(rows, seed, shuffle) -> None:  # type: ignore[no-untyped-def]
    frame = _frame(rows)
    assume(frame["patient_id"].nunique() >= 3)
    order = list(range(len(frame)))
    shuffle.shuffle(order)
    a, _ = split_patients(frame, _split(seed=seed))
    b, _ = split_patients(frame.iloc[order].reset_index(drop=True), _split(seed=seed))
    assert dict(zip(a.patient_id, a.split, strict=True)) == dict(
        zip(b.patient_id, b.split, strict=True)
    )


@given(rows=rows_strategy, seed=st.integers(0, 2**32 - 1))
def test_random_split_is_patient_disjoint(rows, seed) -> None:  # type: ignore[no-untyped-def]
    frame = _frame(rows)
    assume(frame["patient_id"].nunique() >= 3)
    out, summary = split_patients(frame, _split("random", seed=seed))
    check_no_leakage(out, method="random")
    assert len(out) == len(frame)  # a random split drops nothing
    assert summary.validation_start is None and summary.test_start is None
    assert sum(summary.patients.values()) == frame["patient_id"].nunique()


# ------------------------------------------------------------------------------------ rules


def test_split_is_deterministic_and_seeded_ties_decide_equal_times() -> None:
    frame = _frame([(p, 0) for p in range(60)])  # everyone at the same moment
    a, _ = split_patients(frame, _split(seed=1))
    b, _ = split_patients(frame, _split(seed=1))
    c, _ = split_patients(frame, _split(seed=2))
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    assert (a["split"].value_counts().to_dict(), c["split"].value_counts().to_dict()) == (
        {"train": 42, "validation": 9, "test": 9},
        {"train": 42, "validation": 9, "test": 9},
    )


def test_temporal_split_trains_on_the_past() -> None:
    frame = _hospital()
    out, summary = split_patients(frame, _split())
    first = _first_times(out)
    assert summary.validation_start is not None and summary.test_start is not None
    assert first.loc[first.split == "train", "first"].max() <= summary.validation_start
    assert first.loc[first.split == "test", "first"].min() >= summary.test_start
    assert summary.validation_start < summary.test_start
    assert summary.patients == {"train": 140, "validation": 30, "test": 30}


def test_late_rows_of_a_train_patient_are_dropped_and_counted() -> None:
    # p000 is the earliest patient (train) and comes back after everyone else has arrived.
    rows = [(0, 0), (0, 5000), *[(p, p * 10) for p in range(1, 20)]]
    frame = _frame(rows)
    out, summary = split_patients(frame, _split())
    assert out.loc[out.patient_id == "p000", "split"].tolist() == ["train"]
    assert summary.dropped_rows == {"train": 1, "validation": 0, "test": 0}
    assert summary.to_dict()["dropped_rows"] == {"train": 1, "validation": 0, "test": 0}
    assert len(out) == len(frame) - 1
    check_no_leakage(out)

    kept, kept_summary = split_patients(frame, _split(), late_rows="keep")
    assert len(kept) == len(frame)
    assert kept_summary.late_row_counts == {"train": 1, "validation": 0, "test": 0}
    assert kept_summary.dropped_rows == {"train": 0, "validation": 0, "test": 0}
    check_no_leakage(kept, late_rows="keep")
    with pytest.raises(IntegrityError, match=r"1 row\(s\) of the train split are later"):
        check_no_leakage(kept)


def test_smallest_cohort_gets_one_patient_per_split() -> None:
    out, _ = split_patients(_frame([(0, 0), (1, 1), (2, 2)]), _split())
    assert out["split"].tolist() == ["train", "validation", "test"]
    _, four = split_patients(_frame([(p, p) for p in range(4)]), _split())
    assert four.patients == {"train": 2, "validation": 1, "test": 1}


def test_timezone_aware_times_split_like_utc() -> None:
    frame = _hospital(60)
    aware = frame.assign(
        prediction_time=frame["prediction_time"]
        .dt.tz_localize("UTC")
        .dt.tz_convert("America/Chicago")
    )
    a, _ = split_patients(frame, _split())
    b, summary = split_patients(aware, _split())
    assert a["split"].tolist() == b["split"].tolist()
    check_no_leakage(b)
    assert summary.to_dict()["validation_start"] is not None


def test_summary_to_dict_is_plain_json() -> None:
    import json

    _, summary = split_patients(_hospital(50), _split())
    data = summary.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["method"] == "temporal" and data["by"] == "patient" and data["seed"] == 42
    assert "first prediction time" in data["rule"]
    assert data["validation_start"] <= data["test_start"]  # ISO dates sort as text


def test_count_splits_counts_rows_patients_events_and_dates() -> None:
    frame = _frame([(0, 0), (0, 30), (1, 48), (2, 100), (3, 200)])
    frame["sepsis"] = [1, 0, 1, 0, 0]
    out, _ = split_patients(frame, _split(fractions=(0.5, 0.25, 0.25)))
    counts = count_splits(out, label_col="sepsis", time_col="prediction_time")
    assert counts["all"] == {
        "rows": 5,
        "patients": 4,
        "events": 2,
        "prevalence": 0.4,
        "first_date": "2024-01-01",
        "last_date": "2024-01-09",
    }
    assert counts["train"]["patients"] == 2 and counts["train"]["events"] == 2
    assert sum(counts[name]["rows"] for name in SPLITS) == 5


# ----------------------------------------------------------------------------- the leak check


def test_leak_check_catches_a_patient_in_two_splits_without_naming_them() -> None:
    frame = _hospital(40)
    frame.loc[0, "patient_id"] = CANARY_ID
    frame.loc[len(frame)] = [CANARY_ID, T0 + pd.Timedelta(days=900), 80.0, False]
    out, _ = split_patients(frame, _split(), late_rows="keep")
    (own,) = set(out.loc[out.patient_id == CANARY_ID, "split"])
    other = "validation" if own != "validation" else "train"
    out.loc[out.index[out.patient_id == CANARY_ID][-1], "split"] = other
    with pytest.raises(IntegrityError, match="1 patient") as caught:
        check_no_leakage(out, late_rows="keep")
    assert CANARY_ID not in str(caught.value)
    assert caught.value.details == {"rule": "patient_in_two_splits", "patients": 1}


def test_leak_check_catches_a_train_patient_from_the_future() -> None:
    out, _ = split_patients(_hospital(40), _split())
    first = _first_times(out)
    latest_test = first[first.split == "test"]["first"].idxmax()
    out.loc[out.patient_id == latest_test, "split"] = "train"
    with pytest.raises(IntegrityError, match="train patient.*after the validation split starts"):
        check_no_leakage(out)
    check_no_leakage(out, method="random")  # not a leak for a random split


def test_leak_check_refuses_unknown_split_values() -> None:
    out, _ = split_patients(_hospital(20), _split())
    out.loc[out.index[0], "split"] = "holdout"
    with pytest.raises(IntegrityError, match="not one of train, validation, test"):
        check_no_leakage(out)


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="patient_id"), "no column 'patient_id'"),
        (lambda f: f.assign(prediction_time=f.prediction_time.astype(str)), "datetime64"),
        (lambda f: f.assign(split="train"), "already has a column 'split'"),
        (lambda f: f.assign(patient_id=[None, *f.patient_id[1:]]), r"empty in 1 row"),
        (lambda f: f.iloc[:2], "2 patient"),
    ],
)
def test_split_refuses_bad_input_clearly(change, message) -> None:  # type: ignore[no-untyped-def]
    frame = _frame([(0, 0), (1, 1), (2, 2), (3, 3)])
    with pytest.raises(InvalidInput, match=message):
        split_patients(change(frame), _split())


def test_split_leaves_the_input_alone() -> None:
    frame = _hospital(30)
    before = frame.copy()
    split_patients(frame, _split())
    pd.testing.assert_frame_equal(frame, before)
