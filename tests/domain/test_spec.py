"""The founding example loads as written and every key means what it says."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bedside.domain.expressions import Expression
from bedside.domain.spec import (
    ClinicalReviewGate,
    DataQualityCheck,
    DeploymentStage,
    FairnessGate,
    NdjsonFolderSource,
    ObservationFeature,
    PhiScanCheck,
    PipelineSpec,
    PredictionTime,
    StatisticalGate,
)
from bedside.domain.spec_types import loinc_check_digit
from bedside.domain.specfile import PipelineFile, load_pipeline_bytes, load_pipeline_text
from bedside.errors import NotFound, PipelineFileError
from bedside.pipeline_file import load_pipeline_file

ROOT = Path(__file__).resolve().parents[2]
FOUNDING = ROOT / "examples" / "sepsis" / "pipeline.yaml"
FULL = ROOT / "examples" / "sepsis" / "pipeline.full.yaml"
DESIGN = ROOT.parent / "shared" / "DESIGN.md"


@pytest.fixture(scope="module")
def founding() -> PipelineFile:
    return load_pipeline_file(FOUNDING)


@pytest.fixture(scope="module")
def full() -> PipelineFile:
    return load_pipeline_file(FULL)


@pytest.mark.skipif(not DESIGN.exists(), reason="shared/DESIGN.md is not next to the checkout")
def test_founding_example_is_design_section_2_verbatim() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    start = design.index("```yaml\n") + len("```yaml\n")
    block = design[start : design.index("```", start)]
    assert FOUNDING.read_text(encoding="utf-8") == block


def test_founding_example_identity(founding: PipelineFile) -> None:
    spec = founding.spec
    assert spec.pipeline.name == "sepsis-prediction-pipeline"
    assert spec.pipeline.version == "2.3"
    assert spec.name == spec.pipeline.name and spec.version == "2.3"
    assert spec.model_name == "sepsis-prediction"
    assert spec.pipeline.owners == ()
    assert [type(stage).__name__ for stage in spec.pipeline.stages] == [
        "DataPreparationStage",
        "TrainingStage",
        "ValidationStage",
        "DeploymentStage",
        "MonitoringStage",
    ]


def test_founding_example_digest_and_source(founding: PipelineFile) -> None:
    raw = FOUNDING.read_bytes()
    assert founding.content_sha256 == hashlib.sha256(raw).hexdigest()
    assert founding.source == str(FOUNDING)
    assert founding.text == raw.decode("utf-8")


def test_founding_data_preparation_checks(founding: PipelineFile) -> None:
    stage = founding.spec.data_preparation
    assert stage.phi_scan == PhiScanCheck(
        check="phi_scan", description="Verify no PHI in training features", blocker=True
    )
    assert stage.data_quality == DataQualityCheck(check="data_quality", min_completeness=0.95)
    assert stage.data_quality is not None and stage.data_quality.blocker is True


def test_founding_training(founding: PipelineFile) -> None:
    training = founding.spec.training
    assert training.tracking == "mlflow"
    assert training.encryption == "AES-256-GCM"
    assert training.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert training.model.params == {}
    assert training.seed == 42


def test_founding_statistical_gate(founding: PipelineFile) -> None:
    gate = founding.spec.validation.statistical
    assert isinstance(gate, StatisticalGate)
    assert (gate.min_auc_roc, gate.min_sensitivity, gate.max_false_positive_rate) == (
        0.85,
        0.90,
        0.15,
    )
    assert gate.compare == "confidence_bound"
    assert gate.confidence_level == 0.95
    assert gate.split == "test"
    assert [(t.metric, t.direction, t.value) for t in gate.thresholds] == [
        ("auroc", "min", 0.85),
        ("sensitivity", "min", 0.90),
        ("false_positive_rate", "max", 0.15),
    ]


def test_founding_fairness_gate(founding: PipelineFile) -> None:
    (gate,) = founding.spec.validation.fairness
    assert gate == FairnessGate(max_disparity=0.05, stratify_by=("race", "sex", "age_group"))
    assert gate.metric == "equalized_odds"
    assert (gate.min_group_size, gate.min_group_events, gate.intersections) == (30, 10, False)


def test_founding_clinical_review(founding: PipelineFile) -> None:
    review = founding.spec.validation.clinical_review
    assert review == ClinicalReviewGate(
        required_approvers=2, roles=("CMIO", "clinical_informaticist")
    )
    assert founding.spec.validation.gate_names == ("statistical", "fairness", "clinical_review")
    assert [gate.kind for gate in founding.spec.validation.gates] == [
        "statistical",
        "fairness",
        "clinical_review",
    ]


def test_founding_deployment(founding: PipelineFile) -> None:
    deployment = founding.spec.deployment
    assert deployment.strategy == "shadow_first"
    assert deployment.shadow_duration == timedelta(days=14)
    assert deployment.auto_promote is False
    # left out, so the clinical review roles promote
    assert deployment.promotion_roles == ("CMIO", "clinical_informaticist")


def test_founding_monitoring(founding: PipelineFile) -> None:
    monitoring = founding.spec.monitoring
    assert monitoring.drift_check_interval == timedelta(hours=24)
    assert monitoring.accuracy_alert_threshold == 0.80
    assert monitoring.performance_metric == "auroc"
    assert monitoring.window == timedelta(days=7)
    trigger = monitoring.retraining_trigger
    assert isinstance(trigger, Expression)
    assert str(trigger) == "drift_score > 0.3"
    assert trigger.names == {"drift_score"}
    assert trigger.evaluate({"drift_score": 0.31}) is True
    assert trigger.evaluate({"drift_score": 0.3}) is False


def test_founding_example_is_not_yet_runnable(founding: PipelineFile) -> None:
    assert founding.spec.missing_for_run() == (
        "pipeline.stages[0].source",
        "pipeline.stages[0].label",
        "pipeline.stages[0].features",
    )


def test_founding_defaults_are_safe(founding: PipelineFile) -> None:
    stage = founding.spec.data_preparation
    assert stage.deidentification.method == "safe_harbor"
    assert stage.deidentification.pseudonym == "hmac"
    assert stage.deidentification.zip3_restricted_list == "hhs-2000-census"
    assert stage.split.by == "patient" and stage.split.method == "temporal"
    assert stage.cohort.prediction_time == PredictionTime("admission", timedelta(hours=4))
    assert stage.cohort.exclude_prior_outcome is True


def test_full_example_is_runnable(full: PipelineFile) -> None:
    spec = full.spec
    assert spec.missing_for_run() == ()
    stage = spec.data_preparation
    assert stage.source == NdjsonFolderSource(kind="ndjson_folder", path="data/fhir")
    assert stage.label is not None and stage.label.horizon == timedelta(hours=48)
    assert str(stage.cohort.prediction_time) == "admission + 6h"
    first = stage.features[0]
    assert first == ObservationFeature(
        kind="observation",
        name="heart_rate_max_6h",
        loinc=("8867-4",),
        unit="/min",
        aggregation="max",
        window=timedelta(hours=6),
    )
    assert stage.features[-1].attribute == "sex"  # type: ignore[union-attr]
    assert spec.training.model.params["class_weight"] == "balanced"
    assert spec.deployment.promotion_roles == ("CMIO",)
    assert spec.validation.gate_names == (
        "statistical",
        "fairness",
        "expression",
        "clinical_review",
    )
    trigger = spec.monitoring.retraining_trigger
    assert trigger is not None
    assert trigger.evaluate({"drift_score": 0.1, "days_since_training": 400}) is True
    assert trigger.evaluate({"drift_score": 0.1, "days_since_training": 30}) is False


def test_full_example_keeps_every_founding_value(
    founding: PipelineFile, full: PipelineFile
) -> None:
    a, b = founding.spec, full.spec
    assert (a.name, a.version) == (b.name, b.version)
    # The full example only adds exemptions for sparse-by-design labs to the founding checks.
    founding_checks = [
        c.model_dump(exclude={"completeness_exempt"}) for c in a.data_preparation.validation
    ]
    full_checks = [
        c.model_dump(exclude={"completeness_exempt"}) for c in b.data_preparation.validation
    ]
    assert founding_checks == full_checks
    assert (a.training.tracking, a.training.encryption) == (
        b.training.tracking,
        b.training.encryption,
    )
    assert a.validation.clinical_review == b.validation.clinical_review
    assert a.validation.fairness[0].stratify_by == b.validation.fairness[0].stratify_by
    assert a.deployment.shadow_duration == b.deployment.shadow_duration
    assert a.monitoring.accuracy_alert_threshold == b.monitoring.accuracy_alert_threshold


@pytest.mark.parametrize("path", [FOUNDING, FULL])
def test_spec_round_trips_through_json(path: Path) -> None:
    spec = load_pipeline_file(path).spec
    dumped = spec.model_dump(mode="json")
    assert PipelineSpec.model_validate(dumped) == spec
    assert dumped["pipeline"]["stages"][3]["shadow_duration"] == "14_days"
    assert dumped["pipeline"]["stages"][4]["retraining_trigger"].startswith("drift_score > 0.3")


def test_spec_is_immutable(founding: PipelineFile) -> None:
    with pytest.raises(ValidationError):
        founding.spec.deployment.auto_promote = True


def test_models_validate_directly() -> None:
    stage = DeploymentStage.model_validate({"name": "deployment", "shadow_duration": "PT6H"})
    assert stage.shadow_duration == timedelta(hours=6)
    assert stage.promotion_roles == ()  # filled in only inside a whole pipeline
    with pytest.raises(ValidationError):
        DeploymentStage.model_validate({"name": "deployment", "auto_promote": "yes"})
    with pytest.raises(ValidationError):
        StatisticalGate.model_validate({"min_auc_roc": True})


def test_bool_is_not_a_number() -> None:
    with pytest.raises(ValidationError):
        ClinicalReviewGate.model_validate({"required_approvers": True, "roles": ["CMIO"]})


def test_gate_kind_and_shape() -> None:
    from bedside.domain.spec import Gate

    gate = Gate.model_validate({"expression": "auroc_ci_lower >= 0.8"})
    assert gate.kind == "expression"
    assert gate.model_dump(mode="json") == {"expression": "auroc_ci_lower >= 0.8"}


def test_loinc_check_digit_matches_reference_codes() -> None:
    # REGULATORY §10.4 codes; a wrong check digit is refused in the pipeline file.
    codes = (
        "8867-4 9279-1 8310-5 8480-6 8462-4 85354-9 8478-0 59408-5 2708-6 2524-7 "
        "32693-4 6690-2 777-3 2160-0 2823-3 1975-2"
    )
    for code in codes.split():
        number, digit = code.split("-")
        assert loinc_check_digit(number) == int(digit), code


def test_model_name_defaults_from_pipeline_name() -> None:
    text = FOUNDING.read_text(encoding="utf-8")
    spec = load_pipeline_text(text.replace("sepsis-prediction-pipeline", "aki_risk")).spec
    assert spec.model_name == "aki_risk"
    spec = load_pipeline_text(
        text.replace("  version:", "  model_name: sepsis-v2\n  version:")
    ).spec
    assert spec.model_name == "sepsis-v2"


def test_yaml_booleans_are_fine_for_booleans() -> None:
    text = FOUNDING.read_text(encoding="utf-8").replace("auto_promote: false", "auto_promote: no")
    assert load_pipeline_text(text).spec.deployment.auto_promote is False


def test_load_pipeline_bytes_strips_bom_but_hashes_exact_bytes() -> None:
    raw = b"\xef\xbb\xbf" + FOUNDING.read_bytes()
    loaded = load_pipeline_bytes(raw, source="bom.yaml")
    assert loaded.content_sha256 == hashlib.sha256(raw).hexdigest()
    assert loaded.spec.name == "sepsis-prediction-pipeline"


def test_load_pipeline_text_hashes_utf8_bytes() -> None:
    text = FOUNDING.read_text(encoding="utf-8")
    assert load_pipeline_text(text).content_sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_load_pipeline_file_missing(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_pipeline_file(tmp_path / "nope.yaml")


def test_load_pipeline_file_folder(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError, match="a folder") as caught:
        load_pipeline_file(tmp_path)
    assert caught.value.issues[0].expected == "a pipeline YAML file"


def test_load_pipeline_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    data = FOUNDING.read_bytes().replace(b"Verify", "Vérify".encode("latin-1"))
    path.write_bytes(data)
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_file(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (7, 44)  # the byte after "V"
    assert issue.expected == "UTF-8 text"
    assert "0xe9" in issue.found


def test_load_pipeline_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(FOUNDING.read_bytes() + b"#" * 1_000_001)
    with pytest.raises(PipelineFileError, match="at most 1,000,000 bytes"):
        load_pipeline_file(path)


def test_judge_is_another_spelling_of_compare() -> None:
    from bedside.domain.specfile import load_pipeline_text
    from bedside.errors import PipelineFileError
    from tests.support import FOUNDING_PIPELINE

    text = FOUNDING_PIPELINE.read_text(encoding="utf-8")
    point = text.replace(
        "max_false_positive_rate: 0.15}", "max_false_positive_rate: 0.15, judge: point_estimate}"
    )
    gate = load_pipeline_text(point).spec.validation.statistical
    assert gate is not None and gate.compare == "point_estimate"
    both = text.replace(
        "max_false_positive_rate: 0.15}",
        "max_false_positive_rate: 0.15, judge: ci_bound,\n"
        "                        compare: point_estimate}",
    )
    with pytest.raises(PipelineFileError, match="judge and compare say different things"):
        load_pipeline_text(both)
