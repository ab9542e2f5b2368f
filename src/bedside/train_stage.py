"""The ``training`` stage and the evidence of the ``validation`` stage.

Train the pipeline's estimator on a dataset snapshot's train split (seeded), evaluate it on the
validation and test splits with patient-level bootstrap CIs, assess fairness per subgroup, judge
the pipeline's gates, track everything in MLflow (lineage tags, dataset input, the model), and
keep bedside's own copy of the model encrypted (AES-256-GCM, key id; tamper detected on load).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bedside.domain.spec import PipelineSpec
from bedside.errors import IntegrityError, InvalidInput
from bedside.security import KeyRing
from bedside.serving.schema import Feature, FeatureSchema

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops.enc"
EVIDENCE_FILE = "evidence.json"
DEFAULT_THRESHOLD = 0.5


def feature_schema(frame: pd.DataFrame, names: list[str]) -> FeatureSchema:
    """Describe the model's inputs from the training rows: numbers, or categories (sorted)."""
    features = []
    for name in names:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            features.append(Feature(name, "float", nullable=True))
        else:
            values = sorted({str(v) for v in column.dropna().unique()})
            if not values:
                raise InvalidInput(f"Feature {name!r} has no value in the training split.")
            features.append(Feature(name, "category", nullable=True, categories=tuple(values)))
    return FeatureSchema(features)


def encode(frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    """Turn rows into the float matrix the model takes (categories → their code, as serving)."""
    columns = []
    for feature in schema.to_dicts():
        column = frame[feature["name"]]
        if feature["kind"] == "category":
            codes = {value: float(i) for i, value in enumerate(feature["categories"])}
            columns.append(
                column.map(
                    lambda v, c=codes: c.get(str(v), np.nan) if v is not None and v == v else np.nan
                ).to_numpy(dtype=float)
            )
        else:
            columns.append(pd.to_numeric(column, errors="coerce").to_numpy(dtype=float))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def provisional_threshold(y: np.ndarray, p: np.ndarray, *, min_sensitivity: float | None) -> float:
    """Pick the operating threshold to judge gates with, until reviewers sign their own.

    The highest threshold whose sensitivity on the validation split reaches the statistical
    gate's ``min_sensitivity`` (so alerts are as few as the gate allows); 0.5 without such a gate.
    """
    if min_sensitivity is None or y.sum() == 0:
        return DEFAULT_THRESHOLD
    positives = np.sort(p[y == 1])[::-1]
    needed = int(np.ceil(min_sensitivity * positives.size))
    return float(positives[max(needed - 1, 0)])


@dataclass(frozen=True, slots=True)
class TrainedVersion:
    """What training produced: the model's place, the MLflow run, and the evidence."""

    run_id: str
    model_id: str
    logged: Any  # the MLflow LoggedModelRef, to register
    profile_json: str  # the drift reference profile (aggregates of the training split)
    model_path: Path
    evidence: dict[str, Any]
    gate_outcomes: tuple[Any, ...]


def save_model(model: Any, folder: Path, *, key_ring: KeyRing, context: str) -> Path:
    """Keep bedside's copy of the model: skops bytes, encrypted with the current data key."""
    from skops import io as skio

    from bedside.stores.crypto import encrypt_bytes

    folder.mkdir(parents=True, exist_ok=True)
    blob = encrypt_bytes(
        skio.dumps(model), key_ring=key_ring, key_id=key_ring.current_data_key_id(), context=context
    )
    path = folder / MODEL_FILE
    path.write_bytes(bytes(blob))
    return path


def load_model(path: Path, *, key_ring: KeyRing, context: str) -> Any:
    """Load bedside's encrypted model copy; a tampered or swapped file is refused.

    Raises:
        IntegrityError: the file does not decrypt under this context (altered, truncated or
            belonging to another version), or it needs types bedside does not trust.
    """
    from skops import io as skio

    from bedside.stores.crypto import decrypt_bytes
    from bedside.stores.model_format import BEDSIDE_TRUSTED_TYPES

    try:
        data = decrypt_bytes(path.read_bytes(), key_ring=key_ring, context=context)
    except FileNotFoundError:
        raise IntegrityError(f"Model file {path} is missing.") from None
    return skio.load(io.BytesIO(bytes(data)), trusted=list(BEDSIDE_TRUSTED_TYPES))


def train_and_evaluate(
    spec: PipelineSpec,
    frame: pd.DataFrame,
    *,
    dataset_digest: str,
    dataset_source: str,
    model_folder: Path,
    key_ring: KeyRing,
    model_context: str,
    tracker: Any,
    pipeline_path: Path,
    repo: Path,
    lock_file: Path | None,
    user: str,
    n_boot: int = 1000,
    production: tuple[str, Any, FeatureSchema] | None = None,
    progress: Callable[[str], None] = lambda _s: None,
) -> TrainedVersion:
    """Fit on the train split, evaluate on validation and test, judge the gates, track it all.

    Raises:
        InvalidInput: the snapshot lacks a split, the label or a feature.
    """
    from bedside.domain.evaluation import evaluate
    from bedside.domain.fairness import assess_fairness
    from bedside.domain.gates import judge_validation
    from bedside.stores.lineage import lineage_tags
    from bedside.training import fit

    stage = spec.data_preparation
    assert stage.label is not None
    label = stage.label.name
    names = [f.name for f in stage.features]
    strata = [a for gate in spec.validation.fairness for a in gate.stratify_by]
    wanted = (*names, label, "split", "patient_id", *strata)
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"The dataset snapshot lacks column(s) {', '.join(missing)}; prepare "
            "it again with this pipeline file (bedside prepare)."
        )
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    schema = feature_schema(parts["train"], names)
    model_spec = spec.training.model
    seed = spec.training.seed

    progress("training")
    fitted = fit(
        encode(parts["train"], schema),
        parts["train"][label].to_numpy(),
        feature_names=names,
        estimator_path=model_spec.estimator,
        params=model_spec.params,
        seed=seed,
    )

    # The drift reference, computed once per version: the training features and scores.
    from bedside.domain.drift import build_profile

    train_frame = parts["train"][names].copy()
    train_frame["prediction"] = fitted.predict_proba(encode(parts["train"], schema))
    profile_json = build_profile(
        train_frame, columns=names, prediction_column="prediction"
    ).to_json()

    progress("evaluating (patient-level bootstrap)")
    gates_stage = spec.validation
    statistical = gates_stage.statistical
    level = statistical.confidence_level if statistical is not None else 0.95
    if statistical is not None and statistical.compare == "confidence_bound":
        # The gate says how many resamples its bounds need; never judge it on fewer.
        n_boot = max(n_boot, statistical.bootstrap_samples)
    eval_split = statistical.split if statistical is not None else "test"
    y_val = parts["validation"][label].to_numpy()
    p_val = fitted.predict_proba(encode(parts["validation"], schema))
    threshold = provisional_threshold(
        y_val, p_val, min_sensitivity=getattr(statistical, "min_sensitivity", None)
    )
    results = {}
    for split in ("validation", "test"):
        part = parts[split]
        results[split] = evaluate(
            part[label].to_numpy(),
            fitted.predict_proba(encode(part, schema)),
            threshold=threshold,
            seed=seed,
            patient_ids=part["patient_id"].to_numpy(),
            n_boot=n_boot,
            confidence_level=level,
        )
    comparison = None
    if production is not None:
        # DeLong's test against the live model, on the same patients of the test split.
        production_ref, production_model, production_schema = production
        scores = np.asarray(
            production_model.predict_proba(encode(parts["test"], production_schema))
        )[:, 1]
        comparison = {
            "production": production_ref,
            **results["test"].compare_with(scores).to_dict(),
        }
    judged = parts[eval_split]
    p_judged = fitted.predict_proba(encode(judged, schema))
    # One assessment per fairness gate: each may stratify by other attributes or minimums.
    by_gate: dict[str, Any] = {}
    for gate_spec, name in zip(gates_stage.gates, gates_stage.gate_names, strict=True):
        gate = gate_spec.fairness
        if gate is None:
            continue
        attributes = {
            a: judged[a].astype(object).where(judged[a].notna(), None).to_numpy()
            for a in gate.stratify_by
        }
        by_gate[name] = assess_fairness(
            judged[label].to_numpy(),
            p_judged,
            attributes,
            threshold=threshold,
            seed=seed,
            stratify_by=gate.stratify_by,
            intersections=gate.intersections,
            patient_ids=judged["patient_id"].to_numpy(),
            min_group_size=gate.min_group_size,
            min_group_events=gate.min_group_events,
            n_boot=n_boot,
            confidence_level=level,
        )
    fairness = next(iter(by_gate.values()), None)
    outcomes = judge_validation(gates_stage, evaluation=results[eval_split], fairness=by_gate)

    progress("tracking in MLflow")
    experiment = spec.training.experiment or spec.model_name
    tags = lineage_tags(
        repo, dataset_digest=dataset_digest, pipeline_file=pipeline_path, lock_file=lock_file
    )
    with tracker.run(
        experiment, run_name=f"{spec.model_name}-train", tags=tags, user=user
    ) as run_id:
        tracker.log_params(
            run_id,
            {
                "estimator": model_spec.estimator,
                "seed": seed,
                "threshold": round(threshold, 6),
                "n_boot": n_boot,
                **{f"param.{k}": v for k, v in model_spec.params.items()},
            },
        )
        metrics = {
            f"{split}_{k}": v
            for split, r in results.items()
            for k, v in r.metric_values().items()
            if v == v
        }
        tracker.log_metrics(run_id, metrics)
        tracker.log_dataset(
            run_id,
            parts["train"][[*names, label]],
            name=f"{spec.model_name}-train",
            digest=dataset_digest,
            source=dataset_source,
            targets=label,
        )
        with warnings.catch_warnings():
            # MLflow infers the signature by predicting on a named DataFrame; the model was
            # fitted on the encoded matrix, which sklearn reports as a feature-name mismatch.
            warnings.filterwarnings("ignore", message="X has feature names", category=UserWarning)
            logged = tracker.log_model(
                run_id,
                fitted.estimator,
                features=pd.DataFrame(encode(parts["train"].head(100), schema), columns=names),
                lock_file=lock_file,
            )
    model_path = save_model(
        fitted.estimator, model_folder, key_ring=key_ring, context=model_context
    )
    evidence = {
        "dataset_digest": dataset_digest,
        "estimator": model_spec.estimator,
        "params": model_spec.params,
        "seed": seed,
        "threshold": threshold,
        "threshold_rule": "provisional: highest threshold reaching min_sensitivity on the "
        "validation split (reviewers sign the operating threshold)",
        "feature_schema": schema.to_dicts(),
        "label": label,
        "n_train": fitted.n_train,
        "n_train_events": fitted.n_events,
        "evaluation": {split: r.to_dict() for split, r in results.items()},
        "fairness": fairness.to_dict() if fairness is not None else None,
        "fairness_by_gate": {name: r.to_dict() for name, r in by_gate.items()},
        "gates": [o.to_dict() for o in outcomes],
        "comparison_with_production": comparison,
        "mlflow_model_id": logged.model_id,
    }
    (model_folder / EVIDENCE_FILE).write_text(
        json.dumps(evidence, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )
    logger.info("trained %s on %d rows; run %s", spec.model_name, fitted.n_train, run_id)
    return TrainedVersion(
        run_id=run_id,
        model_id=logged.model_id,
        logged=logged,
        profile_json=profile_json,
        model_path=model_path,
        evidence=evidence,
        gate_outcomes=outcomes,
    )
