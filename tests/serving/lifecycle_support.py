"""Registered versions at each step of the lifecycle, made quickly (no training run).

A version here has the evidence the server needs (threshold, feature schema, fairness
attributes); :func:`to_production` also writes an encrypted model and drift reference where the
platform keeps them, so a real ``bedside serve`` can load and monitor it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bedside.domain.drift import build_profile
from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, ModelVersion, Purpose
from bedside.service import PROFILE_FILE, Platform, model_context
from bedside.stores.crypto import encrypt_bytes
from bedside.train_stage import save_model
from tests.serving.support import SCHEMA, fit_models, training_data
from tests.support import PASSWORD, Clock, Team

MODEL = "sepsis-prediction"
ATTRIBUTES = ("race", "sex", "age_group")


def validated(platform: Platform, team: Team) -> ModelVersion:
    """A new version of MODEL with passing gates, validated."""
    version = platform.register_version(
        team.scientist,
        MODEL,
        run_id="run-1",
        evidence={
            "threshold": 0.4,
            "feature_schema": SCHEMA.to_dicts(),
            "fairness": {"attributes": [*ATTRIBUTES, "race×sex"]},
        },
    )
    for gate in ("statistical", "fairness"):
        platform.record_gate_result(
            team.scientist, version.ref, gate=gate, passed=True, details={"checked": gate}
        )
    return platform.transition(team.engineer, version.ref, Action.VALIDATE)


def approved(platform: Platform, team: Team) -> ModelVersion:
    """A validated version both clinical reviewers approved."""
    version = validated(platform, team)
    platform.sign("carol", PASSWORD, version.ref, meaning=Meaning.APPROVED)
    platform.sign("ivan", PASSWORD, version.ref, meaning=Meaning.APPROVED)
    return platform.get_version(version.ref)


def write_artifacts(platform: Platform, version: ModelVersion) -> None:
    """Keep an encrypted fitted model and its drift reference where the platform looks."""
    assert platform.artifacts_root is not None
    folder = platform.artifacts_root / "models" / version.model_name / str(version.version)
    model, _ = fit_models()
    save_model(model, folder, key_ring=platform.keys, context=model_context(version))
    X, _ = training_data()
    frame = pd.DataFrame(X, columns=list(SCHEMA.names))
    frame["sex"] = [SCHEMA.features[-1].categories[int(v)] for v in frame["sex"]]
    frame["prediction"] = model.predict_proba(X)[:, 1]
    profile = build_profile(frame, columns=list(SCHEMA.names), prediction_column="prediction")
    (folder / PROFILE_FILE).write_bytes(
        bytes(
            encrypt_bytes(
                profile.to_json().encode("utf-8"),
                key_ring=platform.keys,
                key_id=platform.keys.current_data_key_id(),
                context=model_context(version) + ":profile",
            )
        )
    )


def to_production(platform: Platform, team: Team, clock: Clock, home: Path) -> ModelVersion:
    """An approved version, shadowed for 14 days, signed for promotion and promoted."""
    platform.home, platform.artifacts_root = home, home / "artifacts"
    version = approved(platform, team)
    write_artifacts(platform, version)
    platform.transition(team.engineer, version.ref, Action.DEPLOY_SHADOW)
    clock.advance(days=14, seconds=1)
    platform.sign(
        "cora", PASSWORD, version.ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION
    )
    return platform.transition(team.engineer, version.ref, Action.PROMOTE)
