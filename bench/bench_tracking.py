"""MLflow tracking: log_model with requirements pinned from uv.lock vs MLflow's inference.

python bench/bench_tracking.py [--repeat N] [--rows N]

Prints, on a warm SQLite store: Tracker.log_model (requirements from uv.lock, skops, PHI guard,
signature), MLflow's own log_model with explicit requirements, and MLflow's log_model left to
infer requirements (it reloads the model in a subprocess). Also: importing mlflow, creating a
new store (migrations), a full run of params/metrics/dataset, and the PHI guard on 100 params.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

REPO = Path(__file__).resolve().parent.parent
TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def _times(fn: Callable[[int], object], repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


def _line(label: str, seconds: list[float]) -> None:
    median = statistics.median(seconds)
    print(
        f"{label:<58} median {median:6.3f} s  min {min(seconds):6.3f} s  "
        f"max {max(seconds):6.3f} s  (n={len(seconds)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {
            "age": rng.integers(18, 95, args.rows).astype(float),
            "heart_rate": rng.normal(88, 15, args.rows),
            "lactate": rng.gamma(2.0, 1.0, args.rows),
            "wbc": rng.normal(9, 3, args.rows),
        }
    )
    label = (features["lactate"] + rng.normal(0, 1, args.rows) > 2.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(features, label)

    started = time.perf_counter()
    from bedside.stores.tracking import Tracker, _import_mlflow

    mlflow = _import_mlflow()
    print(f"{'import mlflow (egress off)':<58} {time.perf_counter() - started:6.3f} s")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)  # MLflow's inference looks for a uv project in the current folder
        uri = f"sqlite:///{root / 'mlflow.db'}"
        tracker = Tracker(uri, artifact_location=root / "artifacts")
        started = time.perf_counter()
        experiment_id = tracker.ensure_experiment("bench")
        print(
            f"{'new SQLite store (migrations) + experiment':<58} "
            f"{time.perf_counter() - started:6.3f} s"
        )

        run_id = tracker.start_run("bench", run_name="bench")

        def run_session(i: int) -> None:
            with tracker.run("bench", run_name=f"session-{i}") as session:
                tracker.log_params(session, model.get_params())
                tracker.log_metrics(session, {"auroc": 0.8, "brier": 0.1})
                tracker.log_dataset(
                    session, features, name="train", digest="a" * 64, source=str(root / "s")
                )

        _line("run: start, 21 params, 2 metrics, dataset input, end", _times(run_session, 3))

        started = time.perf_counter()
        tracker.log_model(
            run_id, model, features=features, name="first", lock_file=REPO / "uv.lock"
        )
        print(
            f"{'Tracker.log_model, first call (uv.lock, package table)':<58} "
            f"{time.perf_counter() - started:6.3f} s"
        )
        _line(
            "Tracker.log_model (uv.lock requirements, skops, guard)",
            _times(
                lambda i: tracker.log_model(
                    run_id, model, features=features, name=f"t{i}", lock_file=REPO / "uv.lock"
                ),
                args.repeat,
            ),
        )
        requirements = list(
            tracker.log_model(
                run_id, model, features=features, name="req", lock_file=REPO / "uv.lock"
            ).requirements
        )
        mlflow.set_tracking_uri(uri)
        signature = mlflow.models.infer_signature(
            features.head(100), model.predict_proba(features.head(100))
        )

        def mlflow_log(explicit: bool) -> Callable[[int], object]:
            def log(i: int) -> object:
                with mlflow.start_run(run_id=run_id):
                    return mlflow.sklearn.log_model(
                        model,
                        name=f"m{i}{explicit}",
                        signature=signature,
                        serialization_format="skops",
                        skops_trusted_types=TRUSTED,
                        pip_requirements=requirements if explicit else None,
                    )

            return log

        _line(
            "mlflow.sklearn.log_model, explicit requirements", _times(mlflow_log(True), args.repeat)
        )
        _line(
            "mlflow.sklearn.log_model, inferred requirements",
            _times(mlflow_log(False), args.repeat),
        )
        del experiment_id

    from bedside.domain.phi_guard import Field, PhiGuard

    guard = PhiGuard()
    params = {f"param_{i}": f"value {i} text" for i in range(100)}
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        guard.check_pairs(Field.PARAM, params)
    per_call = (time.perf_counter() - started) / rounds
    print(f"{'PHI guard, 100 text params':<58} {per_call * 1000:6.2f} ms per call")


if __name__ == "__main__":
    main()
