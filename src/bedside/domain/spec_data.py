"""The ``data_preparation`` stage of the pipeline file: source, cohort, label, features, checks.

These keys make a pipeline runnable (issue 3 implements them); the founding example leaves them
out, and each has a safe default or is optional. See ``docs/pipeline.md``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bedside.domain.durations import format_duration, parse_duration
from bedside.domain.spec_types import (
    ConditionCode,
    Duration,
    EnvVarName,
    Identifier,
    LoincCode,
    NonEmptyText,
    Probability,
    ResourceType,
    SpecModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    UcumUnit,
    Url,
    custom_error,
    duplicate_problems,
    merge_problems,
)

# =================================================================================== data sources

DEFAULT_RESOURCE_TYPES: Final = ("Patient", "Encounter", "Observation", "Condition")
_ResourceTypes = Annotated[tuple[ResourceType, ...], Field(min_length=1)]


class NdjsonFolderSource(SpecModel):
    """A folder of FHIR NDJSON files (a Bulk Data export on disk; ``.ndjson`` or ``.ndjson.gz``)."""

    kind: Literal["ndjson_folder"]
    path: NonEmptyText = Field(examples=["data/fhir"])
    resource_types: _ResourceTypes = DEFAULT_RESOURCE_TYPES


class FhirBulkSource(SpecModel):
    """A FHIR server's Bulk Data ``$export`` (system, Patient or Group level)."""

    kind: Literal["fhir_bulk"]
    url: Url = Field(examples=["https://fhir.example.org/r4"])
    level: Literal["system", "patient", "group"] = "patient"
    group_id: Identifier | None = None
    auth_token_env: EnvVarName | None = None
    resource_types: _ResourceTypes = DEFAULT_RESOURCE_TYPES

    @model_validator(mode="after")
    def _group_needs_id(self) -> FhirBulkSource:
        if self.level == "group" and self.group_id is None:
            raise custom_error(
                "group_id",
                "level: group needs a group_id",
                expected="group_id: <the FHIR Group id> when level is group",
                fix="add group_id, or use level: patient",
            )
        return self


class FhirSearchSource(SpecModel):
    """A FHIR server's search API, read page by page (``Bundle.link[next]``)."""

    kind: Literal["fhir_search"]
    url: Url = Field(examples=["https://fhir.example.org/r4"])
    auth_token_env: EnvVarName | None = None
    resource_types: _ResourceTypes = DEFAULT_RESOURCE_TYPES
    page_size: StrictInt = Field(default=500, ge=1, le=1000)


class TableSource(SpecModel):
    """Flattened tables, one per resource type (Parquet/CSV files or a DuckDB database file)."""

    kind: Literal["table"]
    path: NonEmptyText = Field(examples=["data/tables"])
    format: Literal["parquet", "csv", "duckdb"] = "parquet"
    resource_types: _ResourceTypes = DEFAULT_RESOURCE_TYPES


Source = Annotated[
    NdjsonFolderSource | FhirBulkSource | FhirSearchSource | TableSource,
    Field(discriminator="kind"),
]


# ============================================================================ cohort and label

EncounterClass = Literal[
    "inpatient", "emergency", "ambulatory", "observation", "short_stay", "virtual", "home_health"
]


@dataclass(frozen=True, slots=True)
class PredictionTime:
    """When a prediction is made: an encounter anchor plus an offset (``admission + 4h``)."""

    anchor: Literal["admission", "discharge"]
    offset: timedelta = timedelta(0)

    def __str__(self) -> str:
        if not self.offset:
            return self.anchor
        return f"{self.anchor} + {format_duration(self.offset)}"


_PREDICTION_TIME_EXPECTED = "an anchor and an optional offset, such as admission + 4h or discharge"


def _validate_prediction_time(value: object) -> PredictionTime:
    if isinstance(value, PredictionTime):
        return value
    if not isinstance(value, str):
        raise custom_error(
            "prediction_time", "a prediction time is text", expected=_PREDICTION_TIME_EXPECTED
        )
    match = re.fullmatch(r"\s*([a-z_]+)\s*(?:\+\s*(.+?))?\s*", value)
    if match is None or match.group(1) not in ("admission", "discharge"):
        raise custom_error(
            "prediction_time",
            "the anchor must be admission or discharge",
            expected=_PREDICTION_TIME_EXPECTED,
            fix="start with admission or discharge, then optionally + a duration",
        )
    offset = timedelta(0)
    if match.group(2) is not None:
        try:
            offset = parse_duration(match.group(2))
        except ValueError:
            raise custom_error(
                "prediction_time",
                f"the offset {match.group(2)!r} is not a duration",
                expected=_PREDICTION_TIME_EXPECTED,
                fix="write the offset as a duration such as 4h or 1_day",
            ) from None
    return PredictionTime(match.group(1), offset)  # type: ignore[arg-type]


PredictionTimeField = Annotated[
    PredictionTime,
    PlainValidator(_validate_prediction_time),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["admission + 4h"]}),
]


class Cohort(SpecModel):
    """Which encounters are predicted on, and when."""

    encounter_classes: Annotated[tuple[EncounterClass, ...], Field(min_length=1)] = (
        "inpatient",
        "emergency",
    )
    min_age: StrictInt = Field(default=18, ge=0, le=120)
    max_age: StrictInt | None = Field(default=None, ge=0, le=120)
    prediction_time: PredictionTimeField = PredictionTime("admission", timedelta(hours=4))
    exclude_prior_outcome: StrictBool = True
    start: date | None = None
    end: date | None = None
    age_groups: Annotated[tuple[StrictInt, ...], Field(min_length=1)] = (18, 45, 65, 80)

    @field_validator("encounter_classes", mode="wrap")
    @classmethod
    def _unique_classes(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="encounter class")
        return merge_problems(value, handler, problems, title="Cohort")

    @model_validator(mode="after")
    def _ranges(self) -> Cohort:
        if self.max_age is not None and self.max_age < self.min_age:
            raise custom_error(
                "age_range",
                f"max_age {self.max_age} is below min_age {self.min_age}",
                expected="max_age at least min_age",
            )
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise custom_error(
                "date_range",
                f"end {self.end} is not after start {self.start}",
                expected="end after start",
            )
        edges = self.age_groups
        if any(b <= a for a, b in itertools.pairwise(edges)) or not (
            edges[0] >= 0 and edges[-1] <= 120
        ):
            raise custom_error(
                "age_groups",
                "age group edges must rise strictly, between 0 and 120",
                expected="rising lower edges of the age groups, such as [18, 45, 65, 80]",
            )
        return self


class Label(SpecModel):
    """The outcome predicted: an event within ``horizon`` after the prediction time."""

    name: Identifier = Field(examples=["sepsis"])
    definition: Literal["sepsis3", "sirs", "condition_codes"] = Field(examples=["sepsis3"])
    horizon: Duration = Field(examples=["48h"])
    codes: tuple[ConditionCode, ...] = ()

    @model_validator(mode="after")
    def _codes_match_definition(self) -> Label:
        if self.definition == "condition_codes" and not self.codes:
            raise custom_error(
                "label_codes",
                "definition condition_codes needs codes",
                expected="codes: a list of condition codes, such as [A41.9, R65.20]",
            )
        if self.definition != "condition_codes" and self.codes:
            raise custom_error(
                "label_codes",
                f"codes are used only with definition: condition_codes, not {self.definition}",
                expected="no codes for this definition",
                fix="remove codes, or set definition: condition_codes",
            )
        return self


# ====================================================================================== features

Aggregation = Literal["last", "min", "max", "mean", "count", "slope"]
DemographicAttribute = Literal["age", "age_group", "sex", "race", "ethnicity"]
_DEMOGRAPHIC_ATTRIBUTES: Final = ("age", "age_group", "sex", "race", "ethnicity")


class ObservationFeature(SpecModel):
    """A number aggregated from Observations over a look-back window before prediction time."""

    kind: Literal["observation"]
    name: Identifier = Field(examples=["heart_rate_max_6h"])
    loinc: Annotated[tuple[LoincCode, ...], Field(min_length=1)] = Field(examples=[["8867-4"]])
    unit: UcumUnit | None = None
    aggregation: Aggregation = "last"
    window: Duration = timedelta(hours=24)

    @field_validator("loinc", mode="wrap")
    @classmethod
    def _unique_codes(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, None, what="LOINC code")
        return merge_problems(value, handler, problems, title="ObservationFeature")


class DemographicFeature(SpecModel):
    """A patient attribute at prediction time; ``attribute`` defaults to the feature's name."""

    kind: Literal["demographic"]
    name: Identifier = Field(examples=["age"])
    attribute: DemographicAttribute | None = None

    @model_validator(mode="after")
    def _attribute_from_name(self) -> DemographicFeature:
        if self.attribute is None:
            if self.name not in _DEMOGRAPHIC_ATTRIBUTES:
                raise custom_error(
                    "attribute",
                    f"{self.name!r} is not a demographic attribute, and no attribute is given",
                    expected="attribute: one of " + ", ".join(_DEMOGRAPHIC_ATTRIBUTES),
                    fix=f"add attribute: age (or name the feature after one of "
                    f"{', '.join(_DEMOGRAPHIC_ATTRIBUTES)})",
                )
            object.__setattr__(self, "attribute", self.name)
        return self


Feature = Annotated[ObservationFeature | DemographicFeature, Field(discriminator="kind")]


# ============================================================================ de-id, split, checks

_Zip3 = Annotated[str, Field(pattern=r"^\d{3}$")]


class Deidentification(SpecModel):
    """HIPAA Safe Harbor de-identification (REGULATORY §1)."""

    method: Literal["safe_harbor"] = "safe_harbor"
    pseudonym: Literal["hmac"] = "hmac"
    date_shift_days: StrictInt = Field(default=0, ge=0, le=365)
    zip3_restricted_list: Literal["hhs-2000-census", "msft-fhir-anonymizer-sample"] = (
        "hhs-2000-census"
    )
    zip3_restricted_extra: tuple[_Zip3, ...] = ()
    free_text: Literal["remove"] = "remove"


class SplitFractions(SpecModel):
    """Shares of patients in each split; they add up to 1."""

    train: StrictFloat = Field(default=0.7, gt=0, lt=1)
    validation: StrictFloat = Field(default=0.15, gt=0, lt=1)
    test: StrictFloat = Field(default=0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise custom_error(
                "fractions_sum",
                f"train + validation + test = {self.train:g} + {self.validation:g} + "
                f"{self.test:g} = {total:g}, not 1",
                expected="fractions train, validation and test that add up to 1",
                fix="e.g. {train: 0.7, validation: 0.15, test: 0.15}",
            )
        return self


class Split(SpecModel):
    """How patients are split into train / validation / test (no patient in two splits)."""

    method: Literal["temporal", "random"] = "temporal"
    by: Literal["patient"] = "patient"
    fractions: SplitFractions = SplitFractions()
    seed: StrictInt = Field(default=42, ge=0, le=2**32 - 1)


class PhiScanCheck(SpecModel):
    """Scan the prepared dataset for PHI; with ``blocker: true`` a finding stops the pipeline."""

    check: Literal["phi_scan"]
    description: str | None = None
    blocker: StrictBool = True


class DataQualityCheck(SpecModel):
    """Check completeness (and plausibility) of the prepared dataset."""

    check: Literal["data_quality"]
    description: str | None = None
    min_completeness: Probability = 0.95
    # Sparse-by-design features (a lab drawn only when a clinician suspects something) may be
    # exempted by name; their completeness is still reported.
    completeness_exempt: tuple[Identifier, ...] = ()
    blocker: StrictBool = True


DataCheck = Annotated[PhiScanCheck | DataQualityCheck, Field(discriminator="check")]


class DataPreparationStage(SpecModel):
    """Data in: source, cohort, label, features, de-identification, checks, split."""

    name: Literal["data_preparation"]
    validation: tuple[DataCheck, ...] = (
        PhiScanCheck(check="phi_scan"),
        DataQualityCheck(check="data_quality"),
    )
    source: Source | None = None
    cohort: Cohort = Cohort()
    label: Label | None = None
    features: tuple[Feature, ...] = ()
    deidentification: Deidentification = Deidentification()
    split: Split = Split()

    @field_validator("validation", mode="wrap")
    @classmethod
    def _unique_checks(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(value, "check", what="check")
        return merge_problems(value, handler, problems, title="DataPreparationStage")

    @field_validator("features", mode="wrap")
    @classmethod
    def _unique_features(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = duplicate_problems(
            value, "name", what="feature name", fix="give each feature its own name"
        )
        return merge_problems(value, handler, problems, title="DataPreparationStage")

    @property
    def phi_scan(self) -> PhiScanCheck | None:
        """Return the ``phi_scan`` check, if the stage has one."""
        return next((c for c in self.validation if isinstance(c, PhiScanCheck)), None)

    @property
    def data_quality(self) -> DataQualityCheck | None:
        """Return the ``data_quality`` check, if the stage has one."""
        return next((c for c in self.validation if isinstance(c, DataQualityCheck)), None)
