"""Observation schedules and values: vital-sign rounds, lab draws, and the physiology behind them.

Each observation value is ``baseline + sepsis + mimic + viral + diurnal + noise`` in canonical
units (see docs/demo-data.md for the exact effect sizes and time courses), clipped to the
analyte's plausible range, then converted to the reported unit. All per-observation randomness
comes from :class:`~bedside.ingest.synthetic.noise.KeyedRandom`, keyed by the admission's global
index and the observation's slot, so an admission's observations do not depend on any other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from bedside.ingest.synthetic import codes
from bedside.ingest.synthetic.cohort import DAY, HOUR, MINUTE, N_ANALYTES, Cohort, _drift_seconds
from bedside.ingest.synthetic.model import DriftKind, DriftScenario
from bedside.ingest.synthetic.noise import KeyedRandom

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_IX = codes.ANALYTE_INDEX
HR, RR, TEMP, SPO2 = _IX["heart_rate"], _IX["respiratory_rate"], _IX["temperature"], _IX["spo2"]
SBP, DBP, WBC, LACT = _IX["systolic_bp"], _IX["diastolic_bp"], _IX["wbc"], _IX["lactate"]
CREAT, PLT, BILI, K = _IX["creatinine"], _IX["platelets"], _IX["bilirubin"], _IX["potassium"]
VITALS = (HR, RR, TEMP, SPO2, SBP)  # SBP stands for the blood-pressure panel (SBP + DBP)
LABS = (WBC, PLT, CREAT, K, BILI, LACT)


def _vector(values: dict[int, float]) -> F64:
    v = np.zeros(N_ANALYTES, dtype=np.float64)
    for i, x in values.items():
        v[i] = x
    return v


#: Additive effect of sepsis at full strength (ramp = 1, severity = 1), canonical units.
#: Creatinine is multiplicative (+100 % of baseline); see :func:`_values`.
SEPSIS_EFFECT = _vector(
    {HR: 32, RR: 9, TEMP: 1.7, SPO2: -4, SBP: -30, DBP: -15, WBC: 9, LACT: 2.8, PLT: -90,
     BILI: 1.3, K: 0.3}
)  # fmt: skip
SEPSIS_CREATININE_FACTOR = 1.0
HYPOTHERMIA_TEMP = -1.8
LEUKOPENIA_WBC = -4.5
#: Effect of a non-septic inflammatory episode ("mimic": post-operative fever, pain, dehydration).
MIMIC_EFFECT = _vector({HR: 22, RR: 4, TEMP: 1.1, SPO2: -1, SBP: 4, DBP: 2, WBC: 4, LACT: 0.4})
#: Effect of a viral respiratory illness (respiratory_pandemic drift).
VIRAL_EFFECT = _vector({HR: 14, RR: 8, TEMP: 1.2, SPO2: -6, WBC: -1.5, LACT: 0.2})
#: Measurement noise (standard deviation, canonical units; creatinine relative).
NOISE_SD = _vector(
    {HR: 5, RR: 1.5, TEMP: 0.2, SPO2: 1.0, SBP: 8, DBP: 6, WBC: 0.6, LACT: 0.2, CREAT: 0.05,
     PLT: 12, BILI: 0.1, K: 0.2}
)  # fmt: skip
#: Hours after onset the sepsis effect stays at its peak, then its decay time constant (hours).
SEPSIS_PLATEAU_H, SEPSIS_DECAY_H = 6.0, 36.0

# Probabilities of the measurement process.
VITAL_PRESENT = {HR: 1.0, RR: 0.97, TEMP: 0.85, SPO2: 0.95, SBP: 0.98}
VITAL_ROUND_SKIPPED = (0.06, 0.04)  # (emergency, inpatient)
VALUE_ABSENT = {"vital": 0.008, "lab": 0.01}
#: Lab panel inclusion per draw type: (CBC = WBC + platelets, BMP = creatinine + K, bili, lactate).
LAB_PANELS = {
    "ed": (0.80, 0.80, 0.30, 0.30),
    "admission": (0.95, 0.95, 0.60, 0.45),
    "daily": (0.85, 0.85, 0.25, 0.12),
    "sepsis_workup": (0.80, 0.80, 0.50, 0.95),
    "sepsis_repeat": (0.0, 0.0, 0.0, 0.70),
    "mimic_workup": (0.60, 0.60, 0.20, 0.35),
}

# Keyed-random streams (any distinct integers).
_S_FIRST, _S_JITTER, _S_SKIP, _S_PRESENT, _S_ABSENT, _S_NOISE, _S_CODE, _S_UNIT = range(1, 9)
_S_DRAW_TIME, _S_PANEL = 9, 10
# Slot numbers: vital round k -> k; post-onset round j -> 1000 + j; lab draws -> 2000 + day,
# 3000 admission/ED, 3001 sepsis work-up, 3002 sepsis repeat, 3010 mimic work-up.


@dataclass(slots=True)
class ObservationRows:
    """One row per Observation resource, sorted by admission then time then analyte."""

    admission: I64  # local admission index
    time: I64  # seconds since epoch
    analyte: I64  # index into codes.ANALYTES (SBP means the blood-pressure panel)
    code_variant: I64
    unit_variant: I64
    absent: B
    value: F64  # reported unit; NaN when absent
    value2: F64  # diastolic for the panel, else NaN

    def __len__(self) -> int:
        return int(self.admission.shape[0])


def _expand(counts: I64) -> tuple[I64, I64]:
    """Return (group index, rank within group) for a flat array grouped by ``counts``."""
    idx = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
    offsets = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    return idx, np.arange(idx.shape[0], dtype=np.int64) - offsets[idx]


def _vital_rounds(c: Cohort, r: KeyedRandom) -> tuple[I64, I64, I64]:
    """Return (admission, time, slot) of every vital-sign round."""
    g = c.a_global
    imp = c.a_inpatient
    interval = np.where(imp, 4 * HOUR, 1 * HOUR)
    u_first = r.uniform(_S_FIRST, g, 0)
    first = c.a_start + np.where(imp, 10 + 30 * u_first, 5 + 15 * u_first) * MINUTE
    n = np.maximum((c.a_end - 15 * MINUTE - first) // interval + 1, 1).astype(np.int64)
    adm, k = _expand(n)
    jitter_sd = np.where(imp, 15.0, 5.0)[adm] * MINUTE
    t = first[adm] + k * interval[adm] + r.normal(_S_JITTER, g[adm], k) * jitter_sd
    t = np.clip(t, c.a_start[adm] + MINUTE, c.a_end[adm] - MINUTE)
    skip_p = np.where(imp, VITAL_ROUND_SKIPPED[1], VITAL_ROUND_SKIPPED[0])[adm]
    kept = (r.uniform(_S_SKIP, g[adm], k) >= skip_p) | (k == 0)
    adm, t, slot = adm[kept], t[kept], k[kept]
    # Hourly rounds for six hours after a sepsis onset (closer watch once recognised).
    septic = np.flatnonzero(c.a_sepsis)
    s_adm = np.repeat(septic, 6)
    j = np.tile(np.arange(1, 7, dtype=np.int64), septic.shape[0])
    s_t = c.a_onset[s_adm] + j * HOUR + r.normal(_S_JITTER, g[s_adm], 1000 + j) * 5 * MINUTE
    ok = s_t < c.a_end[s_adm] - MINUTE
    adm = np.concatenate([adm, s_adm[ok]])
    t = np.concatenate([t, s_t[ok]])
    slot = np.concatenate([slot, 1000 + j[ok]])
    return adm, (np.floor(t / MINUTE) * MINUTE).astype(np.int64), slot


def _lab_draws(c: Cohort, r: KeyedRandom) -> tuple[I64, I64, I64, I64]:
    """Return (admission, time, slot, draw type index into LAB_PANELS order) of every draw."""
    g = c.a_global
    n_adm = c.n_admissions
    kinds = list(LAB_PANELS)
    parts: list[tuple[I64, F64, I64, I64]] = []
    all_adm = np.arange(n_adm, dtype=np.int64)
    u = r.uniform(_S_DRAW_TIME, g, 3000)
    t_first = c.a_start + np.where(c.a_inpatient, 30 + 90 * u, 20 + 40 * u) * MINUTE
    kind_first = np.where(c.a_inpatient, kinds.index("admission"), kinds.index("ed"))
    parts.append((all_adm, t_first, np.full(n_adm, 3000), kind_first.astype(np.int64)))
    # Daily morning draws (05:00-07:00) for inpatients.
    midnight = (c.a_start // DAY) * DAY
    n_days = np.where(c.a_inpatient, (c.a_end - midnight) // DAY + 1, 0).astype(np.int64)
    adm, d = _expand(n_days)
    d = d + 1
    t = midnight[adm] + d * DAY + 5 * HOUR + r.uniform(_S_DRAW_TIME, g[adm], 2000 + d) * 2 * HOUR
    ok = (t < c.a_end[adm] - 30 * MINUTE) & (t > c.a_start[adm] + 4 * HOUR)
    parts.append((adm[ok], t[ok], 2000 + d[ok], np.full(int(ok.sum()), kinds.index("daily"))))
    # Work-ups: at a sepsis onset (and a repeat lactate 3-6 h later), at a mimic episode's peak.
    sep = np.flatnonzero(c.a_sepsis)
    t = c.a_onset[sep] + r.uniform(_S_DRAW_TIME, g[sep], 3001) * 45 * MINUTE
    parts.append(
        (sep, t, np.full(sep.shape[0], 3001), np.full(sep.shape[0], kinds.index("sepsis_workup")))
    )
    t = c.a_onset[sep] + (3 + 3 * r.uniform(_S_DRAW_TIME, g[sep], 3002)) * HOUR
    parts.append(
        (sep, t, np.full(sep.shape[0], 3002), np.full(sep.shape[0], kinds.index("sepsis_repeat")))
    )
    mim = np.flatnonzero(c.a_mimic)
    peak = c.a_mimic_start[mim] + c.a_mimic_length[mim] / 2
    t = peak + r.uniform(_S_DRAW_TIME, g[mim], 3010) * HOUR
    parts.append(
        (mim, t, np.full(mim.shape[0], 3010), np.full(mim.shape[0], kinds.index("mimic_workup")))
    )
    adm = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    slot = np.concatenate([p[2] for p in parts]).astype(np.int64)
    kind = np.concatenate([p[3] for p in parts]).astype(np.int64)
    ok = (t < c.a_end[adm] - MINUTE) & (t > c.a_start[adm])
    t_min = (np.floor(t[ok] / MINUTE) * MINUTE).astype(np.int64)
    return adm[ok], t_min, slot[ok], kind[ok]


def _sepsis_weight(c: Cohort, adm: I64, t: I64) -> F64:
    """Return the sepsis ramp (0..1) at each time: rises before onset, plateaus, then decays."""
    onset = c.a_onset[adm].astype(np.float64)
    ramp = c.a_ramp[adm]
    before = np.clip((t - (onset - ramp)) / ramp, 0.0, 1.0) ** 1.5
    hours_after = (t - onset) / HOUR
    after = np.exp(-np.maximum(hours_after - SEPSIS_PLATEAU_H, 0.0) / SEPSIS_DECAY_H)
    w = np.where(t <= onset, before, after)
    return np.where(c.a_sepsis[adm], w * c.a_severity[adm], 0.0)


def _mimic_weight(c: Cohort, adm: I64, t: I64) -> F64:
    x = (t - c.a_mimic_start[adm]) / c.a_mimic_length[adm]
    w = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0.0, 1.0)), 0.0)
    return np.where(c.a_mimic[adm], w * c.a_mimic_size[adm], 0.0)


def _viral_weight(c: Cohort, adm: I64, t: I64) -> F64:
    x = (t - c.a_start[adm]) / np.maximum(c.a_end[adm] - c.a_start[adm], 1)
    w = 1.0 - 0.7 * np.clip((x - 0.6) / 0.4, 0.0, 1.0)
    return np.where(c.a_viral[adm], w * c.a_viral_size[adm], 0.0)


def _values(c: Cohort, r: KeyedRandom, adm: I64, t: I64, analyte: int, slot: I64) -> F64:
    """Return true (canonical-unit) values of one analyte at the given admissions and times."""
    ws = _sepsis_weight(c, adm, t)
    v = c.a_baseline[adm, analyte].copy()
    effect = np.full(adm.shape[0], SEPSIS_EFFECT[analyte])
    if analyte == TEMP:
        effect = np.where(c.a_hypothermia[adm], HYPOTHERMIA_TEMP, effect)
    elif analyte == WBC:
        effect = np.where(c.a_leukopenia[adm], LEUKOPENIA_WBC, effect)
    elif analyte == LACT:
        effect = effect * c.a_lactate_response[adm]
    v = v * (1.0 + SEPSIS_CREATININE_FACTOR * ws) if analyte == CREAT else v + effect * ws
    v = v + MIMIC_EFFECT[analyte] * _mimic_weight(c, adm, t)
    v = v + VIRAL_EFFECT[analyte] * _viral_weight(c, adm, t)
    if analyte in (HR, TEMP):
        hour = (t % DAY) / HOUR
        v = v + (3.0 if analyte == HR else 0.2) * np.sin(2 * np.pi * (hour - 12.0) / 24.0)
    z = r.normal(_S_NOISE, c.a_global[adm], slot * 64 + analyte)
    v = v * (1.0 + NOISE_SD[analyte] * z) if analyte == CREAT else v + NOISE_SD[analyte] * z
    spec = codes.ANALYTES[analyte]
    out: F64 = np.clip(v, spec.low, spec.high)
    return out


def _variants(r: KeyedRandom, g: I64, slot: I64, analyte: int) -> tuple[I64, I64]:
    key = codes.ANALYTES[analyte].key
    code_p = codes.ALTERNATIVE_CODE_FRACTION.get(key, 0.0)
    unit_p = codes.ALTERNATIVE_UNIT_FRACTION.get(key, 0.0)
    sub = slot * 64 + analyte
    code_v = (r.uniform(_S_CODE, g, sub) < code_p).astype(np.int64)
    unit_v = (r.uniform(_S_UNIT, g, sub) < unit_p).astype(np.int64)
    return code_v, unit_v


def _report(values: F64, analyte: int, unit_v: I64) -> F64:
    """Convert canonical values to the reported unit and round to its precision."""
    units = codes.ANALYTES[analyte].units
    out = np.empty_like(values)
    for i, u in enumerate(units):
        sel = unit_v == i
        out[sel] = np.round(values[sel] * u.scale + u.offset, u.decimals)
    return out


def observation_rows(c: Cohort, r: KeyedRandom, drift: DriftScenario | None) -> ObservationRows:
    """Return every Observation of the chunk's admissions, with reported values."""
    assay_bias = drift is not None and drift.kind is DriftKind.LAB_ASSAY_CHANGE
    drift_t = _drift_seconds(drift)
    cols: dict[str, list[npt.NDArray[np.generic]]] = {
        k: [] for k in ("adm", "t", "an", "cv", "uv", "ab", "v", "v2")
    }

    def add(adm: I64, t: I64, slot: I64, analyte: int, kind: str, value2: F64 | None) -> None:
        g = c.a_global[adm]
        true = _values(c, r, adm, t, analyte, slot)
        if analyte == LACT and assay_bias and drift is not None:
            true = np.where(t >= drift_t, true * (1.0 + drift.magnitude), true)
        code_v, unit_v = _variants(r, g, slot, analyte)
        absent = r.uniform(_S_ABSENT, g, slot * 64 + analyte) < VALUE_ABSENT[kind]
        reported = np.where(absent, np.nan, _report(true, analyte, unit_v))
        cols["adm"].append(adm)
        cols["t"].append(t)
        cols["an"].append(np.full(adm.shape[0], analyte, dtype=np.int64))
        cols["cv"].append(code_v)
        cols["uv"].append(unit_v)
        cols["ab"].append(absent)
        cols["v"].append(reported)
        v2 = np.full(adm.shape[0], np.nan) if value2 is None else np.where(absent, np.nan, value2)
        cols["v2"].append(v2)

    adm, t, slot = _vital_rounds(c, r)
    g = c.a_global[adm]
    for analyte in VITALS:
        present = r.uniform(_S_PRESENT, g, slot * 64 + analyte) < VITAL_PRESENT[analyte]
        a, tt, s = adm[present], t[present], slot[present]
        dia = None
        if analyte == SBP:
            sys_true = _values(c, r, a, tt, SBP, s)
            dia_true = np.minimum(_values(c, r, a, tt, DBP, s), sys_true - 10.0)
            dia = _report(np.clip(dia_true, codes.ANALYTES[DBP].low, None), DBP, np.zeros_like(a))
        add(a, tt, s, analyte, "vital", dia)

    adm, t, slot, kind = _lab_draws(c, r)
    g = c.a_global[adm]
    panel_p = np.array(list(LAB_PANELS.values()))[kind]  # (n, 4)
    groups = ((0, (WBC, PLT)), (1, (CREAT, K)), (2, (BILI,)), (3, (LACT,)))
    for col, analytes in groups:
        present = r.uniform(_S_PANEL, g, slot * 8 + col) < panel_p[:, col]
        for analyte in analytes:
            add(adm[present], t[present], slot[present], analyte, "lab", None)

    rows = ObservationRows(
        admission=np.concatenate(cols["adm"]).astype(np.int64),
        time=np.concatenate(cols["t"]).astype(np.int64),
        analyte=np.concatenate(cols["an"]).astype(np.int64),
        code_variant=np.concatenate(cols["cv"]).astype(np.int64),
        unit_variant=np.concatenate(cols["uv"]).astype(np.int64),
        absent=np.concatenate(cols["ab"]).astype(bool),
        value=np.concatenate(cols["v"]).astype(np.float64),
        value2=np.concatenate(cols["v2"]).astype(np.float64),
    )
    order = np.lexsort((rows.analyte, rows.time, rows.admission))
    for f in fields(ObservationRows):
        setattr(rows, f.name, getattr(rows, f.name)[order])
    return rows
