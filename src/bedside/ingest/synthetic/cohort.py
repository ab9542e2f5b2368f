"""Patients and admissions of one chunk, as column arrays (one numpy array per attribute).

A chunk is a fixed number of admissions belonging to whole patients. Every draw here is made on
the chunk's own generator in a fixed order and with sizes that do not depend on the drift
scenario, so a drift only transforms values after its start date and leaves the rest unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaincinv, expit

from bedside.ingest.synthetic import codes, names
from bedside.ingest.synthetic.model import DriftKind, DriftScenario

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

MINUTE = 60
HOUR = 3600
DAY = 86400
YEAR = 365.25 * DAY

#: Share of admissions that are inpatient stays (the rest are emergency-department visits).
INPATIENT_SHARE = 0.6
#: Admissions per patient: 1, 2, 3 or 4, with these probabilities.
ADMISSIONS_PER_PATIENT_P = (0.78, 0.15, 0.05, 0.02)
#: Age model: 18 + 84 * Beta(a, b); about 3.4 % of patients are 90 or older.
AGE_LOW, AGE_SPAN, AGE_A, AGE_B = 18.0, 84.0, 2.2, 2.4
#: Sepsis risk of an inpatient stay: logistic model (see docs/demo-data.md).
SEPSIS_INTERCEPT = -2.45
SEPSIS_AGE_SLOPE = 0.03
SEPSIS_COMORBIDITY_LOG_ODDS = {"diabetes": 0.5, "ckd": 0.7, "copd": 0.5, "chf": 0.3}
#: Arrivals by hour of day (relative weights).
ARRIVAL_HOUR_WEIGHTS = np.array(
    [2, 1.5, 1.2, 1, 1, 1.2, 2, 3, 4.5, 5.5, 6, 6.2, 6, 5.8, 5.6, 5.5, 5.5, 5.4, 5.2, 4.8, 4.2,
     3.6, 3, 2.5],
    dtype=np.float64,
)  # fmt: skip
N_CHRONIC = len(codes.CHRONIC_CONDITIONS)
N_ANALYTES = len(codes.ANALYTES)


@dataclass(slots=True)
class Cohort:
    """Column arrays of one chunk: ``p_*`` per patient, ``a_*`` per admission.

    Times are integer seconds since 1970-01-01T00:00:00Z.
    """

    p_global: I64
    p_first: I64  # index of the patient's first admission in this chunk
    p_count: I64
    p_birth_day: I64  # days since epoch
    p_female: B
    p_race: I64
    p_ethnicity: I64
    p_chronic: B  # (n_patients, N_CHRONIC)
    p_chronic_onset: I64  # (n_patients, N_CHRONIC) seconds
    p_given: I64
    p_middle: I64  # -1 when none
    p_family: I64
    p_house: I64
    p_street: I64
    p_suffix: I64
    p_place: I64
    p_zip_tail: I64
    p_phone: I64
    p_email: B
    p_deceased: I64  # seconds, -1 when alive
    a_global: I64
    a_patient: I64
    a_inpatient: B
    a_start: I64
    a_end: I64
    a_age: F64
    a_sepsis: B
    a_onset: I64  # -1 when no sepsis
    a_ramp: F64  # seconds over which physiology drifts before onset
    a_severity: F64
    a_hypothermia: B
    a_leukopenia: B
    a_lactate_response: F64
    a_mimic: B
    a_mimic_start: I64
    a_mimic_length: F64
    a_mimic_size: F64
    a_viral: B
    a_viral_size: F64
    a_diagnosis_infectious: B
    a_diagnosis: I64
    a_disposition: I64  # 0 home, 1 skilled nursing facility, 2 expired
    a_baseline: F64  # (n_admissions, N_ANALYTES), canonical units

    @property
    def n_patients(self) -> int:
        """Return the number of patients in the chunk."""
        return int(self.p_global.shape[0])

    @property
    def n_admissions(self) -> int:
        """Return the number of admissions in the chunk."""
        return int(self.a_global.shape[0])


def _group_offsets(counts: I64) -> I64:
    """Return the start index of each group in a flat array grouped by ``counts``."""
    starts = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _rank_in_group(counts: I64) -> I64:
    """Return 0, 1, ... within each group of a flat array grouped by ``counts``."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(_group_offsets(counts), counts)


def _structure(rng: np.random.Generator, n_needed: int, span: float) -> tuple[I64, B, F64, F64]:
    """Draw patients' admission counts, classes and stay lengths until ``n_needed`` admissions.

    Returns per patient the admission count, and per admission whether it is inpatient, its
    base length of stay and its reserved time slot (seconds).
    """
    counts: list[I64] = []
    inpatient: list[B] = []
    base: list[F64] = []
    total = 0
    while total < n_needed:
        m = max(16, int((n_needed - total) / 1.3) + 8)
        k = rng.choice(4, size=m, p=ADMISSIONS_PER_PATIENT_P).astype(np.int64) + 1
        n = int(k.sum())
        imp = rng.random(n) < INPATIENT_SHARE
        imp_los = np.clip(rng.lognormal(np.log(3.2 * DAY), 0.6, n), 1 * DAY, 21 * DAY)
        ed_los = np.clip(rng.lognormal(np.log(5 * HOUR), 0.45, n), 1.5 * HOUR, 16 * HOUR)
        los = np.where(imp, imp_los, ed_los)
        reserve = los + np.where(imp, 14 * DAY, 4 * DAY)
        before = _cumsum_before(reserve, k)
        keep = before <= 0.8 * span
        k_kept = np.add.reduceat(keep.astype(np.int64), _group_offsets(k))
        counts.append(k_kept)
        inpatient.append(imp[keep])
        base.append(los[keep])
        total += int(k_kept.sum())
    k_all = np.concatenate(counts)
    cum = np.cumsum(k_all)
    last = int(np.searchsorted(cum, n_needed))
    k_all = k_all[: last + 1].copy()
    k_all[last] -= int(cum[last]) - n_needed
    imp_all = np.concatenate(inpatient)[:n_needed]
    los_all = np.concatenate(base)[:n_needed]
    reserve_all = los_all + np.where(imp_all, 14 * DAY, 4 * DAY)
    return k_all, imp_all, los_all, reserve_all


def _cumsum_before(values: F64, counts: I64) -> F64:
    """Return, per element, the sum of the earlier elements of its group."""
    csum = np.cumsum(values)
    firsts = _group_offsets(counts)
    before_group = np.repeat(csum[firsts] - values[firsts], counts)
    out: F64 = csum - values - before_group
    return out


def _start_times(rng: np.random.Generator, counts: I64, reserve: F64, t0: int, span: float) -> I64:
    """Place admissions uniformly in ``[t0, t0 + span)`` without overlap within a patient."""
    n = int(counts.sum())
    before = _cumsum_before(reserve, counts)
    last_index = _group_offsets(counts) + counts - 1
    slack = span - before[last_index]
    pid = np.repeat(np.arange(counts.shape[0]), counts)
    u = rng.random(n) * slack[pid]
    u_sorted = u[np.lexsort((u, pid))]
    t = t0 + u_sorted + before
    # Replace the time of day with a realistic arrival hour (shifts by less than a day; the
    # reserved slots leave at least two days between stays, so stays stay apart).
    hour = rng.choice(24, size=n, p=ARRIVAL_HOUR_WEIGHTS / ARRIVAL_HOUR_WEIGHTS.sum())
    minute = rng.integers(0, 60, size=n)
    day_start = t0 + np.floor((t - t0) / DAY) * DAY
    out: I64 = (day_start + hour * HOUR + minute * MINUTE).astype(np.int64)
    return out


def draw_cohort(
    rng: np.random.Generator,
    *,
    n_admissions: int,
    first_admission: int,
    first_patient: int,
    t0: int,
    t1: int,
    drift: DriftScenario | None,
) -> Cohort:
    """Draw the patients and admissions of one chunk.

    Args:
        rng: the chunk's generator.
        n_admissions: admissions in the chunk.
        first_admission: global index of the chunk's first admission.
        first_patient: global index of the chunk's first patient.
        t0: range start (seconds); admissions start in ``[t0, t1)``.
        t1: range end (seconds, exclusive).
        drift: the drift scenario, if any.
    """
    span = float(t1 - t0)
    counts, imp, base_los, reserve = _structure(rng, n_admissions, span)
    n_pat = int(counts.shape[0])
    start = _start_times(rng, counts, reserve, t0, span)
    a_patient = np.repeat(np.arange(n_pat, dtype=np.int64), counts)
    p_first = _group_offsets(counts)

    pop_shift = drift is not None and drift.kind is DriftKind.POPULATION_SHIFT
    drift_t = _drift_seconds(drift)
    m = drift.magnitude if drift is not None else 0.0

    # --- patients -----------------------------------------------------------------------------
    first_start = start[p_first]
    p_shifted = pop_shift & (first_start >= drift_t)
    u_age = rng.random(n_pat)
    age_a = np.where(p_shifted, AGE_A + 2.0 * m, AGE_A)
    age_first = AGE_LOW + AGE_SPAN * betaincinv(age_a, AGE_B, u_age)
    age_days = age_first * 365.25
    birth_day = np.floor(first_start / DAY - age_days).astype(np.int64)
    female = rng.random(n_pat) < 0.52
    race = _choice(rng, [r[3] for r in codes.RACES], n_pat)
    ethnicity = _choice(rng, [e[3] for e in codes.ETHNICITIES], n_pat)
    u_chronic = rng.random((n_pat, N_CHRONIC))
    u_chronic_onset = rng.random((n_pat, N_CHRONIC))
    intercept = np.array([c[1] for c in codes.CHRONIC_CONDITIONS])
    slope = np.array([c[2] for c in codes.CHRONIC_CONDITIONS])
    logit = intercept[None, :] + slope[None, :] * age_first[:, None]
    logit = logit + np.where(p_shifted, np.log1p(m) if pop_shift else 0.0, 0.0)[:, None]
    chronic = u_chronic < expit(logit)
    years_before = 1.0 + u_chronic_onset * np.maximum(age_first[:, None] - 19.0, 0.0)
    chronic_onset = (first_start[:, None] - years_before * YEAR).astype(np.int64)
    given = rng.integers(0, 1 << 30, size=n_pat)
    middle_u = rng.random(n_pat)
    middle = rng.integers(0, 1 << 30, size=n_pat)
    family = rng.integers(0, len(names.FAMILY), size=n_pat)
    house = rng.integers(1, 1000, size=n_pat)
    street = rng.integers(0, len(names.STREETS), size=n_pat)
    suffix = rng.integers(0, len(names.STREET_SUFFIXES), size=n_pat)
    place = _choice(rng, [p[4] for p in names.PLACES], n_pat)
    zip_tail = rng.integers(1, 60, size=n_pat)
    phone = rng.integers(0, 100, size=n_pat)
    email = rng.random(n_pat) < 0.4
    n_given = np.where(female, len(names.GIVEN_FEMALE), len(names.GIVEN_MALE))
    given = given % n_given
    middle = np.where(middle_u < 0.45, middle % n_given, -1)

    # --- admissions ---------------------------------------------------------------------------
    n = n_admissions
    age = (start / DAY - birth_day[a_patient]) / 365.25
    chronic_a = chronic[a_patient]
    a_shifted = pop_shift & (start >= drift_t)
    u_sepsis = rng.random(n)
    severity = rng.uniform(0.45, 1.35, n)
    ramp = rng.uniform(6 * HOUR, 24 * HOUR, n)
    onset_after = 12 * HOUR + np.minimum(rng.gamma(1.6, 20 * HOUR, n), 4.5 * DAY)
    post_onset = rng.uniform(1.5 * DAY, 6 * DAY, n)
    hypothermia = rng.random(n) < 0.12
    leukopenia = rng.random(n) < 0.15
    lactate_response = np.where(rng.random(n) < 0.2, 0.25, 1.0)
    u_mimic = rng.random(n)
    mimic_pos = rng.random(n)
    mimic_len_u = rng.random(n)
    mimic_size = rng.uniform(0.6, 1.2, n)
    u_viral = rng.random(n)
    viral_size = rng.uniform(0.7, 1.3, n)
    u_dx = rng.random(n)
    dx_pick = rng.integers(0, 1 << 30, size=n)
    u_death = rng.random(n)
    u_snf = rng.random(n)
    z = rng.standard_normal((n, N_ANALYTES))

    risk = SEPSIS_INTERCEPT + SEPSIS_AGE_SLOPE * (age - 60.0)
    for key, log_odds in SEPSIS_COMORBIDITY_LOG_ODDS.items():
        risk = risk + log_odds * chronic_a[:, codes.CHRONIC_INDEX[key]]
    if pop_shift:
        risk = risk + np.where(a_shifted, np.log1p(m), 0.0)
    sepsis = imp & (u_sepsis < expit(risk))
    onset = np.where(sepsis, start + onset_after, -1).astype(np.int64)
    los = np.where(sepsis, np.maximum(base_los, onset_after + post_onset), base_los)
    end = (start + np.floor(los / MINUTE) * MINUTE).astype(np.int64)

    mimic = ~sepsis & (u_mimic < np.where(imp, 0.15, 0.10))
    mimic_length = np.where(
        imp, 6 * HOUR + 18 * HOUR * mimic_len_u, 2 * HOUR + 4 * HOUR * mimic_len_u
    )
    mimic_start = (start + mimic_pos * np.maximum(los - mimic_length, 0.0)).astype(np.int64)
    pandemic = drift is not None and drift.kind is DriftKind.RESPIRATORY_PANDEMIC
    viral = pandemic & (start >= drift_t) & (u_viral < m)

    infectious = np.where(sepsis, u_dx < 0.85, u_dx < 0.12)
    n_dx = np.where(infectious, len(codes.INFECTIOUS_DIAGNOSES), len(codes.OTHER_DIAGNOSES))
    diagnosis = dx_pick % n_dx

    is_last = np.zeros(n, dtype=bool)
    is_last[p_first + counts - 1] = True
    p_die = np.where(sepsis, 0.15, np.where(imp, 0.02, 0.003))
    died = is_last & (u_death < p_die)
    snf = imp & (u_snf < np.clip(0.02 + 0.004 * (age - 50.0), 0.0, 0.4))
    disposition = np.where(died, 2, np.where(snf, 1, 0)).astype(np.int64)
    deceased = np.full(n_pat, -1, dtype=np.int64)
    deceased[a_patient[died]] = end[died]

    baseline = _baselines(z, age, female[a_patient], chronic_a)

    return Cohort(
        p_global=first_patient + np.arange(n_pat, dtype=np.int64),
        p_first=p_first,
        p_count=counts,
        p_birth_day=birth_day,
        p_female=female,
        p_race=race,
        p_ethnicity=ethnicity,
        p_chronic=chronic,
        p_chronic_onset=chronic_onset,
        p_given=given,
        p_middle=middle,
        p_family=family,
        p_house=house,
        p_street=street,
        p_suffix=suffix,
        p_place=place,
        p_zip_tail=zip_tail,
        p_phone=phone,
        p_email=email,
        p_deceased=deceased,
        a_global=first_admission + np.arange(n, dtype=np.int64),
        a_patient=a_patient,
        a_inpatient=imp,
        a_start=start,
        a_end=end,
        a_age=age,
        a_sepsis=sepsis,
        a_onset=onset,
        a_ramp=ramp,
        a_severity=severity,
        a_hypothermia=hypothermia,
        a_leukopenia=leukopenia,
        a_lactate_response=lactate_response,
        a_mimic=mimic,
        a_mimic_start=mimic_start,
        a_mimic_length=mimic_length,
        a_mimic_size=mimic_size,
        a_viral=viral,
        a_viral_size=viral_size,
        a_diagnosis_infectious=infectious,
        a_diagnosis=diagnosis,
        a_disposition=disposition,
        a_baseline=baseline,
    )


def _drift_seconds(drift: DriftScenario | None) -> int:
    """Return the drift start as seconds since epoch (a far-future value when no drift)."""
    if drift is None:
        return np.iinfo(np.int64).max
    return int((drift.starts.toordinal() - 719163) * DAY)


def _choice(rng: np.random.Generator, weights: list[float], n: int) -> I64:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(p.shape[0], size=n, p=p / p.sum()).astype(np.int64)


def _baselines(z: F64, age: F64, female: B, chronic: B) -> F64:
    """Return each admission's healthy baseline per analyte, in canonical units."""
    ix = codes.ANALYTE_INDEX
    ci = codes.CHRONIC_INDEX
    ckd = chronic[:, ci["ckd"]]
    copd = chronic[:, ci["copd"]]
    htn = chronic[:, ci["hypertension"]]
    afib = chronic[:, ci["afib"]]
    b = np.empty_like(z)
    b[:, ix["heart_rate"]] = 79.0 + 9.0 * z[:, ix["heart_rate"]] + 6.0 * afib
    b[:, ix["respiratory_rate"]] = 16.0 + 1.6 * z[:, ix["respiratory_rate"]] + 2.0 * copd
    b[:, ix["temperature"]] = 36.8 + 0.22 * z[:, ix["temperature"]]
    b[:, ix["spo2"]] = np.minimum(97.2 + 1.2 * z[:, ix["spo2"]] - 3.0 * copd, 99.5)
    b[:, ix["systolic_bp"]] = (
        120.0 + 0.35 * (age - 50.0) + 8.0 * htn + 13.0 * z[:, ix["systolic_bp"]]
    )
    b[:, ix["diastolic_bp"]] = 74.0 + 3.0 * htn + 8.0 * z[:, ix["diastolic_bp"]]
    b[:, ix["wbc"]] = np.exp(np.log(7.4) + 0.25 * z[:, ix["wbc"]])
    b[:, ix["lactate"]] = np.exp(np.log(1.1) + 0.28 * z[:, ix["lactate"]])
    creat_median = (0.8 + 0.004 * np.maximum(age - 40.0, 0.0)) * np.where(female, 0.88, 1.0)
    b[:, ix["creatinine"]] = (
        creat_median * np.where(ckd, 2.2, 1.0) * np.exp(0.18 * z[:, ix["creatinine"]])
    )
    b[:, ix["platelets"]] = 250.0 + 55.0 * z[:, ix["platelets"]]
    b[:, ix["bilirubin"]] = np.exp(np.log(0.6) + 0.35 * z[:, ix["bilirubin"]])
    b[:, ix["potassium"]] = 4.2 + 0.3 * ckd + 0.33 * z[:, ix["potassium"]]
    return b
