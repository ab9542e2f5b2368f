"""Feature schemas, the record validator, deployed models, slots and providers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bedside.errors import InvalidInput, NotFound
from bedside.serving.models import DeployedModel, Role, ServedModels
from bedside.serving.schema import Feature, FeatureSchema
from tests.serving.support import SCHEMA, record


def test_schema_turns_a_record_into_a_row_in_column_order() -> None:
    row = SCHEMA.to_row(record(0, lactate=None, age=70.0, sex="other"))
    assert len(row) == len(SCHEMA)
    assert math.isnan(row[4])  # nullable null -> NaN
    assert row[5:] == [70.0, 2.0]  # a whole float for an int; a category -> its index


@pytest.mark.parametrize(
    ("value", "received"),
    [(True, "boolean"), ("1.0", "string"), (math.nan, "non-finite number"), ({}, "object")],
)
def test_schema_refuses_a_non_number_for_a_float_feature(value: Any, received: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        SCHEMA.to_row(record(0, x0=value))
    assert caught.value.details["errors"] == [
        {"field": "features.x0", "expected": "finite number", "received": received}
    ]


def test_schema_lists_missing_and_unknown_fields_together() -> None:
    rec = record(0, extra=1)
    del rec["age"]
    _, errors = SCHEMA.check_row(rec, where="records[2]")
    assert [(e.field, e.received) for e in errors] == [
        ("records[2].age", "missing"),
        ("records[2].extra", "unknown field"),
    ]


def test_schema_round_trips_through_json_descriptions() -> None:
    again = FeatureSchema.from_dicts(SCHEMA.to_dicts())
    assert again == SCHEMA
    assert FeatureSchema.numeric(["a", "b"]).names == ("a", "b")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Feature(""), "non-empty"),
        (lambda: Feature("a", "text"), "kind"),  # type: ignore[arg-type]
        (lambda: Feature("a", "category"), "allowed values"),
        (lambda: Feature("a", "category", categories=("x", "x")), "twice"),
        (lambda: Feature("a", "float", categories=("x",)), "only category"),
        (lambda: FeatureSchema([]), "at least one"),
        (lambda: FeatureSchema([Feature("a"), Feature("a")]), "unique"),
        (lambda: FeatureSchema.from_dicts([{"kind": "float"}]), "name"),
        (lambda: FeatureSchema.from_dicts([{"name": "a", "unit": "mg"}]), "unknown keys"),
    ],
)
def test_schema_definition_errors_are_clear(make: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()


class _Constant:
    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])


class _WrongShape:
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan, True, "0.5"])
def test_deployed_model_refuses_a_bad_threshold(threshold: Any) -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        DeployedModel("m", "1", _Constant(0.2), threshold, SCHEMA)


def test_deployed_model_refuses_an_object_without_predict_proba() -> None:
    with pytest.raises(InvalidInput, match="predict_proba"):
        DeployedModel("m", "1", object(), 0.5, SCHEMA)  # type: ignore[arg-type]


def test_a_model_that_cannot_score_never_takes_traffic() -> None:
    served = ServedModels.of([DeployedModel("m", "1", _Constant(0.2), 0.5, SCHEMA)])
    with pytest.raises(InvalidInput, match="shape"):
        served.deploy(DeployedModel("m", "2", _WrongShape(), 0.5, SCHEMA), role="production")
    current = served.slot("m").current
    assert current is not None and current.version == "1"


def test_slots_swap_and_report_readiness() -> None:
    served = ServedModels()
    assert not served.is_ready()
    v1 = DeployedModel("m", "1", _Constant(0.2), 0.5, SCHEMA)
    v2 = DeployedModel("m", "2", _Constant(0.7), 0.5, SCHEMA)
    assert served.deploy(v1, role="production") is None
    assert served.is_ready()
    assert served.deploy(v2, role="production") is v1
    assert served.deploy(v1, role="shadow") is None
    assert served.describe() == {"m": {"production": "2", "shadow": "1"}}
    assert served.deploy(None, role="shadow", name="m") is v1
    with pytest.raises(NotFound):
        served.slot("other")


class _Provider:
    def __init__(self, table: dict[tuple[str, str], DeployedModel | None]) -> None:
        self.table = table

    def load(self, name: str, role: Role) -> DeployedModel | None:
        return self.table.get((name, role))


def test_refresh_swaps_in_only_what_the_provider_changed() -> None:
    v1 = DeployedModel("m", "1", _Constant(0.2), 0.5, SCHEMA)
    v2 = DeployedModel("m", "2", _Constant(0.7), 0.5, SCHEMA)
    served = ServedModels.of([v1])
    provider = _Provider({("m", "production"): v1, ("m", "shadow"): v2})
    assert served.refresh(provider) == ["shadow:m@2"]
    assert served.refresh(provider) == []
    provider.table[("m", "production")] = v2
    provider.table[("m", "shadow")] = None
    assert served.refresh(provider) == ["production:m@2"]
    assert served.describe() == {"m": {"production": "2", "shadow": None}}
