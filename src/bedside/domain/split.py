"""Split a prepared dataset into train / validation / test by patient, and check it for leakage.

The rule (``method: temporal``, the default — train on the past, test on the future):

1. Every patient is placed by their **first prediction time** (the earliest row they have).
2. Patients are ordered by that time; ties are broken by a keyed hash of the patient id and the
   split's ``seed`` (BLAKE2b, so the order is the same on every machine and every version).
3. The first ``round(train × n)`` patients form train, the next ``round(validation × n)``
   validation, the rest test (each split gets at least one patient).
4. All rows of a patient go to that patient's split: **no patient is in more than one split**.
5. ``validation_start`` is the first prediction time of the first validation patient and
   ``test_start`` that of the first test patient. A later row of an earlier split's patient (a
   train patient readmitted after ``validation_start``, a validation patient after
   ``test_start``) would let the model learn from the period it is judged on; such rows are
   dropped (``late_rows="drop"``, the default, counted in the summary) or, on request, kept.

``method: random`` orders patients by the seeded hash alone (no time boundaries).

:func:`check_no_leakage` verifies these invariants on any table with a split column and raises
:class:`bedside.errors.IntegrityError` naming the rule and the counts — never an id or a value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from bedside.domain.spec_data import Split
from bedside.errors import IntegrityError, InvalidInput

__all__ = [
    "SPLITS",
    "SplitSummary",
    "check_no_leakage",
    "count_splits",
    "split_patients",
]

SPLITS: Final = ("train", "validation", "test")

LateRows = Literal["drop", "keep"]

_RULES: Final = {
    "temporal": (
        "temporal by patient: each patient is placed by their first prediction time, ties "
        "broken by a seeded hash of the patient id; rows of an earlier split's patient after "
        "the next split starts are {late}"
    ),
    "random": "random by patient: patients are ordered by a seeded hash of the patient id",
}


@dataclass(frozen=True, slots=True)
class SplitSummary:
    """What a split did: the rule, its parameters, the boundaries and the counts per split."""

    method: Literal["temporal", "random"]
    seed: int
    fractions: Mapping[str, float]
    patient_col: str
    time_col: str
    split_col: str
    late_rows: LateRows
    validation_start: pd.Timestamp | None
    test_start: pd.Timestamp | None
    patients: Mapping[str, int]
    rows: Mapping[str, int]
    late_row_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def dropped_rows(self) -> dict[str, int]:
        """Return the rows dropped per split (none when late rows are kept)."""
        if self.late_rows == "keep":
            return dict.fromkeys(SPLITS, 0)
        return {name: int(self.late_row_counts.get(name, 0)) for name in SPLITS}

    @property
    def rule(self) -> str:
        """Return the split rule in words."""
        late = "dropped" if self.late_rows == "drop" else "kept"
        return _RULES[self.method].format(late=late)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON values (boundaries as ISO dates, day precision)."""
        return {
            "method": self.method,
            "by": "patient",
            "rule": self.rule,
            "seed": self.seed,
            "fractions": dict(self.fractions),
            "columns": {
                "patient": self.patient_col,
                "time": self.time_col,
                "split": self.split_col,
            },
            "late_rows": self.late_rows,
            "late_row_counts": dict(self.late_row_counts),
            "validation_start": _iso_date(self.validation_start),
            "test_start": _iso_date(self.test_start),
            "patients": dict(self.patients),
            "rows": dict(self.rows),
            "dropped_rows": dict(self.dropped_rows),
        }


def split_patients(
    frame: pd.DataFrame,
    split: Split,
    *,
    patient_col: str = "patient_id",
    time_col: str = "prediction_time",
    split_col: str = "split",
    late_rows: LateRows = "drop",
) -> tuple[pd.DataFrame, SplitSummary]:
    """Assign every row to train / validation / test by patient, as the module docstring says.

    Args:
        frame: one row per prediction (patient, prediction time, features, label …).
        split: the pipeline file's ``split`` (method, fractions, seed).
        patient_col: the (pseudonymous) patient key.
        time_col: the prediction time (datetime64, naive or tz-aware).
        split_col: the name of the column to add (values ``train``, ``validation``, ``test``).
        late_rows: ``drop`` (default) or ``keep`` rows of an earlier split's patient that fall
            after the next split starts (temporal method only).

    Returns:
        A new frame (the input is not changed) with ``split_col`` added, rows in their original
        order minus dropped rows, and the summary.

    Raises:
        InvalidInput: a column is missing or has nulls, the time column is not a datetime, the
            split column already exists, or there are fewer than three patients.
    """
    _check_input(frame, patient_col=patient_col, time_col=time_col, split_col=split_col)
    if late_rows not in ("drop", "keep"):
        raise InvalidInput(f"late_rows is {late_rows!r}; expected 'drop' or 'keep'.")
    first = frame.groupby(patient_col, sort=False, observed=True)[time_col].min()
    n = len(first)
    if n < len(SPLITS):
        raise InvalidInput(
            f"The dataset has {n} patient(s); a split into train, validation and test needs at "
            "least 3. Widen the cohort or the date range."
        )
    ties = _tiebreak(first.index, split.seed)
    if split.method == "temporal":
        times = _nanoseconds(first)
        order = np.lexsort((ties, times))
    else:
        order = np.argsort(ties, kind="stable")
    sizes = _sizes(n, split.fractions.train, split.fractions.validation)
    labels = np.empty(n, dtype=object)
    labels[order] = np.repeat(np.array(SPLITS, dtype=object), sizes)
    by_patient = pd.Series(labels, index=first.index)
    out = frame.copy()
    out[split_col] = frame[patient_col].map(by_patient).to_numpy()

    validation_start = test_start = None
    late_counts = dict.fromkeys(SPLITS, 0)
    if split.method == "temporal":
        ordered_first = first.iloc[order]
        validation_start = ordered_first.iloc[sizes[0]]
        test_start = ordered_first.iloc[sizes[0] + sizes[1]]
        late = _late_mask(
            out,
            split_col=split_col,
            time_col=time_col,
            validation_start=validation_start,
            test_start=test_start,
        )
        for name in SPLITS:
            late_counts[name] = int((late & (out[split_col] == name)).sum())
        if late_rows == "drop" and late.any():
            out = out.loc[~late]
    summary = SplitSummary(
        method=split.method,
        seed=split.seed,
        fractions={
            "train": split.fractions.train,
            "validation": split.fractions.validation,
            "test": split.fractions.test,
        },
        patient_col=patient_col,
        time_col=time_col,
        split_col=split_col,
        late_rows=late_rows,
        validation_start=validation_start,
        test_start=test_start,
        patients=dict(zip(SPLITS, (int(s) for s in sizes), strict=True)),
        rows={name: int((out[split_col] == name).sum()) for name in SPLITS},
        late_row_counts=late_counts,
    )
    return out, summary


def check_no_leakage(
    frame: pd.DataFrame,
    *,
    method: Literal["temporal", "random"] = "temporal",
    patient_col: str = "patient_id",
    time_col: str = "prediction_time",
    split_col: str = "split",
    late_rows: LateRows = "drop",
) -> None:
    """Fail loudly if the split leaks: a patient in two splits, or the future in the past.

    Checks, on the data alone: every split value is train/validation/test; no patient appears
    in more than one split; for ``temporal``, every train patient's first prediction time is at
    or before the first time of any validation patient, and validation before test; with
    ``late_rows="drop"``, also no train row after the validation start and no validation row
    after the test start.

    Raises:
        IntegrityError: the split leaks; the message names the rule broken and how many
            patients or rows break it (never an id or a value).
        InvalidInput: a column is missing or has nulls.
    """
    for col in (patient_col, split_col, *((time_col,) if method == "temporal" else ())):
        _need_column(frame, col)
    unknown = ~frame[split_col].isin(SPLITS)
    if unknown.any():
        raise IntegrityError(
            f"Column {split_col!r} has {int(unknown.sum())} row(s) whose split is not one of "
            f"{', '.join(SPLITS)}. Re-run the split.",
            details={"rule": "split_values", "rows": int(unknown.sum())},
        )
    per_patient = frame.groupby(patient_col, sort=False, observed=True)[split_col].nunique()
    shared = int((per_patient > 1).sum())
    if shared:
        raise IntegrityError(
            f"Leakage: {shared} patient(s) appear in more than one split (column "
            f"{split_col!r}, key {patient_col!r}). Every patient must be in exactly one split; "
            "re-run the split on the whole dataset, not on parts of it.",
            details={"rule": "patient_in_two_splits", "patients": shared},
        )
    if method != "temporal":
        return
    if not pd.api.types.is_datetime64_any_dtype(frame[time_col]):
        raise InvalidInput(f"Column {time_col!r} must hold datetimes to check a temporal split.")
    first = frame.groupby(patient_col, sort=False, observed=True).agg(
        first=(time_col, "min"), split=(split_col, "first")
    )
    starts = {name: first.loc[first["split"] == name, "first"].min() for name in SPLITS}
    for earlier, later in (("train", "validation"), ("validation", "test"), ("train", "test")):
        if pd.isna(starts[later]):
            continue
        entering_late = int(((first["split"] == earlier) & (first["first"] > starts[later])).sum())
        if entering_late:
            raise IntegrityError(
                f"Leakage: {entering_late} {earlier} patient(s) first appear after the "
                f"{later} split starts. A temporal split places patients by their first "
                "prediction time, earlier splits first; re-run the split.",
                details={"rule": "patient_order", "split": earlier, "patients": entering_late},
            )
    if late_rows == "keep":
        return
    late = _late_mask(
        frame,
        split_col=split_col,
        time_col=time_col,
        validation_start=starts["validation"],
        test_start=starts["test"],
    )
    if late.any():
        counts = {name: int((late & (frame[split_col] == name)).sum()) for name in SPLITS}
        worst = next(name for name in SPLITS if counts[name])
        raise IntegrityError(
            f"Leakage: {int(late.sum())} row(s) of the {worst} split are later than the start "
            f"of the next split ({', '.join(f'{k}: {v}' for k, v in counts.items() if v)}). "
            "A model would learn from the period it is evaluated on; re-run the split with "
            "late rows dropped.",
            details={"rule": "row_after_boundary", "rows": counts},
        )


def count_splits(
    frame: pd.DataFrame,
    *,
    split_col: str = "split",
    patient_col: str = "patient_id",
    label_col: str | None = None,
    time_col: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Return rows, patients, events (label = 1), prevalence and date range per split and in all.

    Dates are ISO dates (day precision); values are aggregates only.
    """
    _need_column(frame, split_col)
    _need_column(frame, patient_col)
    groups: dict[str, pd.DataFrame] = {name: frame[frame[split_col] == name] for name in SPLITS}
    groups["all"] = frame
    result: dict[str, dict[str, Any]] = {}
    for name, part in groups.items():
        entry: dict[str, Any] = {
            "rows": len(part),
            "patients": int(part[patient_col].nunique()),
        }
        if label_col is not None:
            _need_column(frame, label_col)
            events = int(pd.to_numeric(part[label_col], errors="coerce").fillna(0).sum())
            entry["events"] = events
            entry["prevalence"] = round(events / len(part), 6) if len(part) else None
        if time_col is not None:
            _need_column(frame, time_col)
            entry["first_date"] = _iso_date(part[time_col].min()) if len(part) else None
            entry["last_date"] = _iso_date(part[time_col].max()) if len(part) else None
        result[name] = entry
    return result


# ----------------------------------------------------------------------------------- internals


def _need_column(frame: pd.DataFrame, col: str) -> None:
    if col not in frame.columns:
        raise InvalidInput(
            f"The dataset has no column {col!r}; its columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}{' …' if len(frame.columns) > 30 else ''}."
        )


def _check_input(frame: pd.DataFrame, *, patient_col: str, time_col: str, split_col: str) -> None:
    _need_column(frame, patient_col)
    _need_column(frame, time_col)
    if split_col in frame.columns:
        raise InvalidInput(
            f"The dataset already has a column {split_col!r}; split a table once, or name the new "
            "column differently."
        )
    if not pd.api.types.is_datetime64_any_dtype(frame[time_col]):
        raise InvalidInput(
            f"Column {time_col!r} has type {frame[time_col].dtype}; a temporal split needs "
            "datetimes (datetime64). Convert it with pandas.to_datetime first."
        )
    for col in (patient_col, time_col):
        missing = int(frame[col].isna().sum())
        if missing:
            raise InvalidInput(
                f"Column {col!r} is empty in {missing} row(s); every row needs a patient and a "
                "prediction time. Drop or fix those rows before the split."
            )


def _tiebreak(patients: pd.Index, seed: int) -> np.ndarray:
    """Return a seeded, platform-independent 64-bit hash per patient id."""
    key = seed.to_bytes(8, "big")
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(str(p).encode("utf-8"), digest_size=8, key=key).digest(), "big"
            )
            for p in patients
        ),
        dtype=np.uint64,
        count=len(patients),
    )


def _sizes(n: int, train: float, validation: float) -> np.ndarray:
    """Return patients per split: rounded shares, at least one patient in each."""
    n_train = min(max(int(np.floor(n * train + 0.5)), 1), n - 2)
    n_validation = min(max(int(np.floor(n * validation + 0.5)), 1), n - n_train - 1)
    return np.array([n_train, n_validation, n - n_train - n_validation])


def _late_mask(
    frame: pd.DataFrame,
    *,
    split_col: str,
    time_col: str,
    validation_start: Any,
    test_start: Any,
) -> pd.Series:
    late = pd.Series(False, index=frame.index)
    split = frame[split_col]
    if not pd.isna(validation_start):
        late |= (split == "train") & (frame[time_col] > validation_start)
    if not pd.isna(test_start):
        late |= (split == "validation") & (frame[time_col] > test_start)
        late |= (split == "train") & (frame[time_col] > test_start)
    return late


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """Return datetimes as int64 nanoseconds since the epoch (UTC for tz-aware values)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    values: np.ndarray = times.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return values


def _iso_date(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return str(pd.Timestamp(value).date().isoformat())
