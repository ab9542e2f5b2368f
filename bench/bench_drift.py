"""Drift: bedside ``compute_drift`` against Evidently's ``DataDriftPreset``, side by side.

A seeded clinical feature table (vitals and labs at their recorded precision, a continuous
derived ratio and the model's risk score, demographics and unit categories; 23 columns): a
reference of 50,000 rows against a current window of 1,000,000 rows with a lab-assay change,
an older and sicker case mix and a different unit mix. Each tool runs in its own subprocess on the
same generated data; after generation the process's peak RSS is reset (``/proc/self/clear_refs``)
(after ``malloc_trim``) so the reported peak is that of the drift job, on top of the resident
data and imported libraries, which both processes hold.
The bedside run also builds the reference profile (timed apart: it is done once per model
version). Per-column methods, scores and verdicts of the two are compared at the end.

Run: ``.venv/bin/python bench/bench_drift.py [--reference 50000] [--current 1000000]``
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 20260501
HERE = Path(__file__).resolve()

NUMERICAL = [
    "age",
    "heart_rate",
    "resp_rate",
    "sbp",
    "dbp",
    "temperature",
    "spo2",
    "gcs",
    "lactate",
    "creatinine",
    "wbc",
    "platelets",
    "sodium",
    "potassium",
    "glucose",
    "bilirubin",
    "shock_index",
    "risk_score",
]
CATEGORICAL = ["sex", "race", "admission_type", "unit", "on_vasopressor"]
KINDS = {**dict.fromkeys(NUMERICAL, "numerical"), **dict.fromkeys(CATEGORICAL, "categorical")}


def clinical_table(n: int, seed: int, drifted: bool) -> pd.DataFrame:
    """Return ``n`` seeded rows of a 23-column feature table, column by column (lean on memory)."""
    rng = np.random.default_rng(seed)
    d = 1.0 if drifted else 0.0

    def rounded(mean: float, sd: float, decimals: int, low: float, high: float) -> np.ndarray:
        return np.clip(np.round(rng.normal(mean, sd, n), decimals), low, high)

    def category(values: list[str], p: list[float]) -> np.ndarray:
        # One shared str object per category, as pyarrow's to_pandas() produces.
        return np.array(values, dtype=object)[rng.choice(len(values), size=n, p=p)]

    cols: dict[str, np.ndarray] = {}
    cols["age"] = np.clip(rng.normal(64 + 3 * d, 17, n), 18, 100).astype(np.int64)
    cols["heart_rate"] = rounded(88 + 2 * d, 18, 0, 30, 200)
    cols["resp_rate"] = rounded(19, 5, 0, 6, 50)
    cols["sbp"] = rounded(124 - 2 * d, 22, 0, 50, 240)
    cols["dbp"] = rounded(70, 13, 0, 25, 140)
    cols["temperature"] = rounded(37.0 + 0.1 * d, 0.7, 1, 33, 42)
    cols["spo2"] = rounded(96, 2.5, 0, 70, 100)
    cols["gcs"] = np.clip(15 - rng.poisson(0.8 + 0.3 * d, n), 3, 15).astype(np.int64)
    lactate = np.round(rng.lognormal(0.4, 0.55, n) * (1.25 if drifted else 1.0), 1)
    lactate[rng.random(n) < 0.35] = np.nan  # not ordered for every patient
    cols["lactate"] = lactate
    creatinine = np.round(rng.lognormal(0.05, 0.45, n), 2)
    creatinine[rng.random(n) < 0.1] = np.nan
    cols["creatinine"] = creatinine
    cols["wbc"] = np.round(rng.lognormal(2.2, 0.4, n), 1)
    cols["platelets"] = np.round(rng.normal(240, 80, n).clip(5, 900))
    cols["sodium"] = rounded(138, 4, 0, 110, 170)
    cols["potassium"] = rounded(4.1, 0.55, 1, 2, 8)
    cols["glucose"] = np.round(rng.lognormal(4.85, 0.3, n))
    cols["bilirubin"] = np.round(rng.lognormal(-0.3, 0.7, n), 1)
    cols["shock_index"] = cols["heart_rate"] / cols["sbp"]  # continuous: every value distinct
    logit = -2.2 + 0.5 * d + 0.9 * np.log(np.nan_to_num(lactate, nan=1.5).clip(0.1))
    cols["risk_score"] = 1.0 / (1.0 + np.exp(-(logit + rng.normal(0, 0.8, n))))
    cols["sex"] = category(["F", "M"], [0.48, 0.52])
    cols["race"] = category(
        ["White", "Black", "Asian", "Other", "Unknown"], [0.62, 0.18, 0.07, 0.08, 0.05]
    )
    cols["admission_type"] = category(
        ["emergency", "elective", "urgent"], [0.7 + 0.1 * d, 0.2 - 0.1 * d, 0.1]
    )
    unit_p = [0.15, 0.6, 0.2, 0.05] if not drifted else [0.25, 0.45, 0.22, 0.08]
    cols["unit"] = category(["ICU", "ward", "ED", "step-down"], unit_p)
    cols["on_vasopressor"] = (rng.random(n) < 0.06 + 0.03 * d).astype(np.int64)
    frame = pd.DataFrame(cols, copy=False)
    return frame[NUMERICAL + CATEGORICAL]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _return_freed_memory() -> None:
    """Give memory freed by data generation back to the OS, so the baseline is live data only."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(tool: str, n_ref: int, n_cur: int) -> dict[str, Any]:
    """Generate the data, then run one tool and measure it (called in a subprocess)."""
    if tool == "evidently":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset
    else:
        from bedside.domain.drift import build_profile, compute_drift

    reference = clinical_table(n_ref, SEED, drifted=False)
    current = clinical_table(n_cur, SEED + 1, drifted=True)
    gc.collect()
    _return_freed_memory()
    baseline_kb = _status_kb("VmRSS")
    exact_peak = _reset_peak()
    out: dict[str, Any] = {"tool": tool}

    if tool == "evidently":
        t0 = time.perf_counter()
        definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report([DataDriftPreset()], include_tests=True).run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
            data = snapshot.dict()
        out["seconds"] = time.perf_counter() - t0
        failed = {
            t["metric_config"]["metric_id"]: t["status"].value == "FAIL" for t in data["tests"]
        }
        columns = {}
        for metric in data["metrics"]:
            config = metric["config"]
            if config["type"].endswith("ValueDrift"):
                columns[config["column"]] = {
                    "method": config["method"],
                    "score": float(metric["value"]),
                    "drifted": failed[metric["id"]],
                }
            else:
                out["drift_score"] = float(metric["value"]["share"])
                out["dataset_drift"] = failed[metric["id"]]
        out["columns"] = columns
    else:
        t0 = time.perf_counter()
        profile = build_profile(reference, kinds=KINDS)
        out["profile_seconds"] = time.perf_counter() - t0
        out["profile_json_bytes"] = len(profile.to_json())
        out["profile_npz_bytes"] = len(profile.to_npz())
        gc.collect()
        t0 = time.perf_counter()
        result = compute_drift(profile, current)
        out["seconds"] = time.perf_counter() - t0
        out["drift_score"] = result.drift_score
        out["dataset_drift"] = result.dataset_drift
        out["columns"] = {
            c.name: {"method": c.method_label, "score": c.score, "drifted": c.drifted, "psi": c.psi}
            for c in result.columns
        }
    out["baseline_mb"] = baseline_kb / 1024
    out["peak_mb"] = _status_kb("VmHWM") / 1024
    out["peak_is_job_only"] = exact_peak
    out["process_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_worker(tool: str, n_ref: int, n_cur: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "--worker",
            tool,
            "--reference",
            str(n_ref),
            "--current",
            str(n_cur),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{tool} worker failed with exit {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--current", type=int, default=1_000_000)
    parser.add_argument("--worker", choices=["bedside", "evidently"])
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.reference, args.current)))
        return 0

    print(
        f"reference {args.reference:,} rows vs current {args.current:,} rows × "
        f"{len(KINDS)} columns ({len(NUMERICAL)} numerical, {len(CATEGORICAL)} categorical)"
    )
    ours = run_worker("bedside", args.reference, args.current)
    theirs = run_worker("evidently", args.reference, args.current)

    print(
        f"\nbedside profile build (once per model version): {ours['profile_seconds']:.3f} s, "
        f"JSON {ours['profile_json_bytes'] / 1e6:.2f} MB, "
        f"npz {ours['profile_npz_bytes'] / 1e6:.2f} MB"
    )
    print(f"\n{'':32s}{'seconds':>10s}{'peak RSS MB':>14s}{'job Δ MB':>11s}{'baseline MB':>13s}")
    for label, r in (("bedside compute_drift", ours), ("Evidently DataDriftPreset", theirs)):
        delta = r["peak_mb"] - r["baseline_mb"]
        print(
            f"{label:32s}{r['seconds']:>10.2f}{r['peak_mb']:>14.0f}{delta:>11.0f}{r['baseline_mb']:>13.0f}"
        )
    speed = theirs["seconds"] / ours["seconds"]
    memory = ours["peak_mb"] / theirs["peak_mb"]
    job = (ours["peak_mb"] - ours["baseline_mb"]) / max(
        theirs["peak_mb"] - theirs["baseline_mb"], 1
    )
    print(f"\nspeed-up: {speed:.1f}× (target ≥ 10×)")
    print(
        f"peak memory: bedside / Evidently = {memory:.2f} (target ≤ 0.33); job working memory "
        f"ratio {job:.3f}"
    )
    if not (ours["peak_is_job_only"] and theirs["peak_is_job_only"]):
        print("note: /proc/self/clear_refs unavailable; peaks include data generation")

    worst = 0.0
    disagreements = []
    for name, mine in ours["columns"].items():
        ref = theirs["columns"][name]
        worst = max(worst, abs(mine["score"] - ref["score"]))
        if mine["method"] != ref["method"] or mine["drifted"] != ref["drifted"]:
            disagreements.append(name)
    drifted = sorted(n for n, c in ours["columns"].items() if c["drifted"])
    print(
        f"\nagreement: max |score difference| {worst:.2e}; verdict/method disagreements: "
        f"{disagreements or 'none'}; drift_score {ours['drift_score']:.4f} vs "
        f"{theirs['drift_score']:.4f}; dataset_drift {ours['dataset_drift']} vs "
        f"{theirs['dataset_drift']}"
    )
    print(f"drifted columns: {', '.join(drifted)}")
    ok = (
        not disagreements
        and worst <= 1e-9
        and ours["dataset_drift"] == theirs["dataset_drift"]
        and math.isclose(ours["drift_score"], theirs["drift_score"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
