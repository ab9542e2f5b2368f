"""The pipeline file as typed, validated, immutable values.

The founding example (DESIGN §2) is valid as it stands and every key means what it says; the keys
that make a pipeline runnable (data source, cohort, label, features, model, split, owners) have
safe defaults or are optional. ``docs/pipeline.md`` is the reference for every key; a test keeps it
in step with these models.

Read a file with :func:`bedside.domain.specfile.load_pipeline_text` (or
``bedside.pipeline_file.load_pipeline_file``), which reports problems with line numbers; the
models here can also be built directly (``PipelineSpec.model_validate(data)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    Field,
    JsonValue,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from bedside.domain.spec_data import (
    Cohort,
    DataPreparationStage,
    DataQualityCheck,
    Deidentification,
    DemographicFeature,
    FhirBulkSource,
    FhirSearchSource,
    Label,
    NdjsonFolderSource,
    ObservationFeature,
    PhiScanCheck,
    PredictionTime,
    Split,
    SplitFractions,
    TableSource,
)
from bedside.domain.spec_gates import (
    ClinicalReviewGate,
    FairnessGate,
    Gate,
    GateThreshold,
    StatisticalGate,
    ValidationStage,
)
from bedside.domain.spec_types import (
    DottedPath,
    Duration,
    Identifier,
    MonitoringExpression,
    Name,
    Probability,
    RoleName,
    SpecModel,
    StrictBool,
    StrictInt,
    Username,
    VersionText,
    custom_error,
    duplicate_problems,
    merge_problems,
)

__all__ = [
    "STAGE_NAMES",
    "ClinicalReviewGate",
    "Cohort",
    "DataPreparationStage",
    "DataQualityCheck",
    "Deidentification",
    "DemographicFeature",
    "DeploymentStage",
    "FairnessGate",
    "FhirBulkSource",
    "FhirSearchSource",
    "Gate",
    "GateThreshold",
    "Label",
    "ModelCard",
    "ModelSpec",
    "MonitoringStage",
    "NdjsonFolderSource",
    "ObservationFeature",
    "PhiScanCheck",
    "Pipeline",
    "PipelineSpec",
    "PredictionTime",
    "Split",
    "SplitFractions",
    "StatisticalGate",
    "TableSource",
    "TrainingStage",
    "ValidationStage",
]

STAGE_NAMES: Final = ("data_preparation", "training", "validation", "deployment", "monitoring")

#: The line to add for a missing stage, shown in the error.
STAGE_SNIPPETS: Final[Mapping[str, str]] = {
    "data_preparation": "- name: data_preparation",
    "training": "- {name: training, tracking: mlflow, encryption: AES-256-GCM}",
    "validation": (
        "- {name: validation, gates: [clinical_review: "
        "{required_approvers: 2, roles: [CMIO, clinical_informaticist]}]}"
    ),
    "deployment": "- {name: deployment, strategy: shadow_first, shadow_duration: 14_days}",
    "monitoring": (
        "- {name: monitoring, drift_check_interval: 24h, accuracy_alert_threshold: 0.80, "
        "retraining_trigger: drift_score > 0.3}"
    ),
}


class ModelSpec(SpecModel):
    """The estimator to train: an importable scikit-learn-compatible class and its parameters."""

    estimator: DottedPath = "sklearn.ensemble.HistGradientBoostingClassifier"
    params: dict[Identifier, JsonValue] = Field(default_factory=dict)


class TrainingStage(SpecModel):
    """Tracked, reproducible training."""

    name: Literal["training"]
    tracking: Literal["mlflow"] = "mlflow"
    encryption: Literal["AES-256-GCM", "none"] = "AES-256-GCM"
    model: ModelSpec = ModelSpec()
    seed: StrictInt = Field(default=42, ge=0, le=2**32 - 1)
    experiment: Name | None = None


class DeploymentStage(SpecModel):
    """Shadow first, then promotion by a person (unless ``auto_promote``).

    ``promotion_roles`` left out means the clinical review roles; a loaded :class:`Pipeline`
    always has it filled in.
    """

    name: Literal["deployment"]
    strategy: Literal["shadow_first"] = "shadow_first"
    shadow_duration: Duration = timedelta(days=14)
    auto_promote: StrictBool = False
    promotion_roles: tuple[RoleName, ...] = ()

    @field_validator("promotion_roles", mode="wrap")
    @classmethod
    def _roles_listed(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="role")
        if isinstance(value, list | tuple) and not value:
            problems.append(
                InitErrorDetails(
                    type=custom_error(
                        "empty_roles",
                        "the list of promotion roles is empty",
                        expected="at least one role, or leave the key out to use the "
                        "clinical review roles",
                        fix="list the roles that may approve promotion, or remove the key",
                    ),
                    loc=(),
                    input=value,
                )
            )
        return merge_problems(value, handler, problems, title="DeploymentStage")


PerformanceMetric = Literal[
    "auroc", "auprc", "accuracy", "sensitivity", "specificity", "ppv", "npv"
]


class MonitoringStage(SpecModel):
    """Drift and performance checks in production, alerts and the retraining trigger."""

    name: Literal["monitoring"]
    drift_check_interval: Duration = timedelta(hours=24)
    accuracy_alert_threshold: Probability = Field(examples=[0.80])
    performance_metric: PerformanceMetric = "auroc"
    window: Duration = timedelta(days=7)
    retraining_trigger: MonitoringExpression | None = None


Stage = Annotated[
    DataPreparationStage | TrainingStage | ValidationStage | DeploymentStage | MonitoringStage,
    Field(discriminator="name"),
]


# ===================================================================================== pipeline


class ModelCard(SpecModel):
    """Model-card text only people can write; everything else comes from evidence."""

    intended_use: str | None = None
    intended_users: str | None = None
    out_of_scope_uses: str | None = None
    limitations: str | None = None
    ethical_considerations: str | None = None
    funding: str | None = None
    contact: str | None = None
    references: tuple[str, ...] = ()


def _stage_name(item: object) -> object:
    if isinstance(item, Mapping):
        return item.get("name")
    return getattr(item, "name", None)


class Pipeline(SpecModel):
    """A model's pipeline: identity, owners and the five stages."""

    name: Name = Field(examples=["sepsis-prediction-pipeline"])
    version: VersionText = Field(examples=['"1.0"'])
    description: str | None = None
    model_name: Name = ""  # left out: derived from name when the file is loaded
    owners: tuple[Username, ...] = ()
    model_card: ModelCard | None = None
    stages: tuple[Stage, ...] = Field(examples=["[- name: data_preparation, ...]"])

    @field_validator("owners", mode="wrap")
    @classmethod
    def _unique_owners(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="owner")
        return merge_problems(value, handler, problems, title="Pipeline")

    @field_validator("stages", mode="wrap")
    @classmethod
    def _five_stages(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems: list[InitErrorDetails] = []
        if isinstance(value, list | tuple):
            problems = duplicate_problems(
                value, "name", what="stage", fix="merge the two entries into one"
            )
            names = {name for item in value if isinstance(name := _stage_name(item), str)}
            for stage in STAGE_NAMES:
                if stage not in names:
                    problems.append(
                        InitErrorDetails(
                            type=custom_error(
                                "stage_missing",
                                f"the {stage} stage is missing",
                                expected="all five stages: " + ", ".join(STAGE_NAMES),
                                fix=f"add this line under stages: {STAGE_SNIPPETS[stage]}",
                                stage=stage,
                            ),
                            loc=(),
                            input=value,
                        )
                    )
        return merge_problems(value, handler, problems, title="Pipeline")

    @model_validator(mode="after")
    def _defaults_from_other_keys(self) -> Pipeline:
        # Defaults that depend on other keys are filled once here, so readers never see a gap.
        if not self.model_name:
            derived = re.sub(r"[-_.]?pipeline$", "", self.name) or self.name
            object.__setattr__(self, "model_name", derived)
        review_roles = self.validation.clinical_review.roles
        stages = tuple(
            stage.model_copy(update={"promotion_roles": review_roles})
            if isinstance(stage, DeploymentStage) and not stage.promotion_roles
            else stage
            for stage in self.stages
        )
        object.__setattr__(self, "stages", stages)
        return self

    def _stage(self, kind: type[Any]) -> Any:
        for stage in self.stages:
            if isinstance(stage, kind):
                return stage
        raise AssertionError(f"a validated pipeline has a {kind.__name__}")  # pragma: no cover

    @property
    def data_preparation(self) -> DataPreparationStage:
        """Return the data_preparation stage."""
        return self._stage(DataPreparationStage)  # type: ignore[no-any-return]

    @property
    def training(self) -> TrainingStage:
        """Return the training stage."""
        return self._stage(TrainingStage)  # type: ignore[no-any-return]

    @property
    def validation(self) -> ValidationStage:
        """Return the validation stage."""
        return self._stage(ValidationStage)  # type: ignore[no-any-return]

    @property
    def deployment(self) -> DeploymentStage:
        """Return the deployment stage."""
        return self._stage(DeploymentStage)  # type: ignore[no-any-return]

    @property
    def monitoring(self) -> MonitoringStage:
        """Return the monitoring stage."""
        return self._stage(MonitoringStage)  # type: ignore[no-any-return]


class PipelineSpec(SpecModel):
    """The whole pipeline file: ``{pipeline: ...}``, with shortcuts to the stages."""

    pipeline: Pipeline

    @property
    def name(self) -> str:
        """Return the pipeline's name."""
        return self.pipeline.name

    @property
    def version(self) -> str:
        """Return the pipeline file's version text."""
        return self.pipeline.version

    @property
    def model_name(self) -> str:
        """Return the registered model name (given, or the pipeline name without -pipeline)."""
        return self.pipeline.model_name

    @property
    def data_preparation(self) -> DataPreparationStage:
        """Return the data_preparation stage."""
        return self.pipeline.data_preparation

    @property
    def training(self) -> TrainingStage:
        """Return the training stage."""
        return self.pipeline.training

    @property
    def validation(self) -> ValidationStage:
        """Return the validation stage."""
        return self.pipeline.validation

    @property
    def deployment(self) -> DeploymentStage:
        """Return the deployment stage."""
        return self.pipeline.deployment

    @property
    def monitoring(self) -> MonitoringStage:
        """Return the monitoring stage."""
        return self.pipeline.monitoring

    def missing_for_run(self) -> tuple[str, ...]:
        """Return the keys still needed before data can be prepared (empty when runnable).

        The founding example is a valid governance file but names no data: ``bedside check``
        accepts it and can list these keys as the next step.
        """
        index = next(
            i for i, s in enumerate(self.pipeline.stages) if isinstance(s, DataPreparationStage)
        )
        prefix = f"pipeline.stages[{index}]"
        stage = self.data_preparation
        missing = []
        if stage.source is None:
            missing.append(f"{prefix}.source")
        if stage.label is None:
            missing.append(f"{prefix}.label")
        if not stage.features:
            missing.append(f"{prefix}.features")
        return tuple(missing)
