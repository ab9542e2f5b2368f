"""Fairness and evaluation: bedside vs fairlearn's MetricFrame, side by side, and bootstrap times.

python bench/bench_fairness.py [--rows N] [--boot B] [--repeats R]

1. Point estimates of the same nine metrics (TPR, TNR, FPR, selection rate, PPV, NPV, AUROC,
   AUPRC, Brier) for every group of three attributes (race with missing values, sex, age group),
   plus difference/ratio between groups and to overall: fairlearn 0.15.0 ``MetricFrame`` (one per
   attribute) vs ``assess_fairness(n_boot=0, calibration=False)``. Values are checked equal.
2. Patient-level bootstrap CIs (B resamples) for every metric of every subgroup.
3. ``evaluate`` with B resamples on all rows (every metric, calibration refits included).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_score,
    roc_auc_score,
)

from bedside.domain.evaluation import evaluate
from bedside.domain.fairness import MISSING_GROUP, Kind, Method, assess_fairness

THRESHOLD = 0.3
ATTRIBUTES = ("race", "sex", "age_group")


def cohort(rows: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic admissions table: ~0.7 admissions per patient, 10 % events, 3 attributes."""
    rng = np.random.default_rng(seed)
    patients = int(rows * 0.7)
    patient = rng.integers(0, patients, rows)
    race = rng.choice(["White", "Black", "Asian", "Hispanic", "Other"], patients)[patient]
    race = race.astype(object)
    race[rng.random(rows) < 0.02] = None  # missing values
    sex = rng.choice(["F", "M"], patients)[patient]
    age = rng.choice(["18-44", "45-64", "65-79", "80+"], patients)[patient]
    y = (rng.random(rows) < 0.1).astype(np.int8)
    p = np.clip(rng.beta(2, 8, rows) + 0.25 * y, 0, 1)
    return pd.DataFrame(
        {"patient": patient, "race": race, "sex": sex, "age_group": age, "y": y, "p": p}
    )


def _at_threshold(metric: Callable[..., float]) -> Callable[[Any, Any], float]:
    def wrapped(y_true: Any, y_score: Any) -> float:
        return float(metric(y_true, (np.asarray(y_score) >= THRESHOLD).astype(int)))

    return wrapped


def _npv(y_true: Any, y_pred: Any) -> float:
    tn, _, fn, _ = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return float(tn / (tn + fn))


FAIRLEARN_METRICS = {
    "sensitivity": _at_threshold(true_positive_rate),
    "specificity": _at_threshold(true_negative_rate),
    "false_positive_rate": _at_threshold(false_positive_rate),
    "selection_rate": _at_threshold(selection_rate),
    "ppv": _at_threshold(precision_score),
    "npv": _at_threshold(_npv),
    "auroc": roc_auc_score,
    "auprc": average_precision_score,
    "brier": brier_score_loss,
}
DISPARITY_NAMES = [n for n in FAIRLEARN_METRICS if n != "brier"]
METHODS: tuple[Method, ...] = ("between_groups", "to_overall")


def run_fairlearn(frame: pd.DataFrame) -> dict[str, MetricFrame]:
    out = {}
    for attribute in ATTRIBUTES:
        labels = frame[attribute].map(lambda v: MISSING_GROUP if v is None else v)
        mf = MetricFrame(
            metrics=FAIRLEARN_METRICS,
            y_true=frame["y"],
            y_pred=frame["p"],
            sensitive_features=labels,
        )
        for method in METHODS:
            mf.difference(method=method)
            mf.ratio(method=method)
        out[attribute] = mf
    return out


def run_bedside(frame: pd.DataFrame, **kwargs: Any) -> Any:
    return assess_fairness(
        frame["y"].to_numpy(),
        frame["p"].to_numpy(),
        frame[list(ATTRIBUTES)],
        threshold=THRESHOLD,
        seed=0,
        patient_ids=frame["patient"].to_numpy(),
        min_group_size=1,
        min_group_events=0,
        **kwargs,
    )


def best_of(repeats: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def timed(action: Callable[[], Any]) -> str:
    """Run once; return wall-clock and CPU seconds (the machine is shared: CPU is steadier)."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return f"{time.perf_counter() - wall:6.2f} s (cpu {time.process_time() - cpu:5.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = cohort(args.rows)
    print(
        f"{args.rows:,} rows, {frame['patient'].nunique():,} patients, "
        f"{int(frame['y'].sum()):,} events; attributes {', '.join(ATTRIBUTES)}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    # 1. point estimates, side by side
    fl_time, fairlearn = best_of(max(1, args.repeats - 1), lambda: run_fairlearn(frame))
    bs_time, ours = best_of(args.repeats, lambda: run_bedside(frame, n_boot=0, calibration=False))
    worst = 0.0
    for attribute, mf in fairlearn.items():
        mine = {g.group: g for g in ours.groups_of(attribute)}
        for name in FAIRLEARN_METRICS:
            for group, value in mf.by_group[name].items():
                worst = max(worst, abs(mine[str(group)].metrics[name].value - value))
        for method in METHODS:
            differences, ratios = mf.difference(method=method), mf.ratio(method=method)
            for name in DISPARITY_NAMES:
                pairs: tuple[tuple[Kind, Any], ...] = (
                    ("difference", differences),
                    ("ratio", ratios),
                )
                for kind, theirs in pairs:
                    d = ours.disparity(attribute, name, kind=kind, method=method)
                    worst = max(worst, abs(d.value - theirs[name]))
    groups = sum(len(ours.groups_of(a)) for a in ATTRIBUTES)
    print(
        f"point estimates, 9 metrics x {groups} groups of 3 attributes + disparities:\n"
        f"  fairlearn MetricFrame  {fl_time:8.3f} s\n"
        f"  bedside                {bs_time:8.3f} s   ({fl_time / bs_time:5.1f}x faster; "
        f"largest difference {worst:.1e})"
    )
    full_time, _ = best_of(args.repeats, lambda: run_bedside(frame, n_boot=0))
    print(f"  bedside, + ECE, net benefit, calibration slope/intercept: {full_time:.3f} s")

    # 2. bootstrap CIs for every subgroup
    plain = timed(lambda: run_bedside(frame, n_boot=args.boot, calibration=False))
    with_calibration = timed(lambda: run_bedside(frame, n_boot=args.boot))
    print(
        f"bootstrap CIs, {args.boot} patient-level resamples, overall + {groups} subgroups:\n"
        f"  every metric but calibration   {plain}\n"
        f"  every metric with calibration  {with_calibration}"
    )

    # 3. evaluation on all rows
    evaluation = timed(
        lambda: evaluate(
            frame["y"].to_numpy(),
            frame["p"].to_numpy(),
            threshold=THRESHOLD,
            seed=0,
            patient_ids=frame["patient"].to_numpy(),
            n_boot=args.boot,
        )
    )
    print(f"evaluate(), {args.boot} resamples, every metric with its CI: {evaluation}")


if __name__ == "__main__":
    main()
