"""Fuzzing the real server with generated bodies: a bad request is a 4xx, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.support import SCHEMA, RunningServer

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from([*SCHEMA.names, "unknown", ""])
feature_values = (
    json_values
    | st.floats()
    | st.sampled_from(["female", "male", "other", "x"])
    | st.integers(-5, 120)
)
near_valid_features = st.dictionaries(names, feature_values, max_size=len(SCHEMA) + 2)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"features": near_valid_features}),
    st.fixed_dictionaries({"records": st.lists(near_valid_features | json_values, max_size=4)}),
    st.dictionaries(st.sampled_from(["features", "records", "outcomes", "x"]), json_values),
)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _check(response: httpx.Response) -> None:
    assert response.status_code in (200, 404, 422), response.text
    body = response.json()
    if response.status_code == 200:
        assert body["ok"] is True
    else:
        assert body["ok"] is False
        assert set(body["error"]) == {"code", "message", "details"}
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def _dumps(body: Any) -> bytes:
    # allow_nan: NaN and Infinity literals are what a careless client sends.
    return json.dumps(body, allow_nan=True).encode()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies)
def test_predict_never_answers_500(client: httpx.Client, body: Any) -> None:
    _check(client.post("/v1/models/sepsis/predict", content=_dumps(body)))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.binary(max_size=200))
def test_predict_with_arbitrary_bytes_never_answers_500(client: httpx.Client, raw: bytes) -> None:
    _check(client.post("/v1/models/sepsis/predict", content=raw))


outcome_items = st.fixed_dictionaries(
    {},
    optional={
        "request_id": st.uuids().map(str) | json_values,
        "label": st.sampled_from([0, 1, True, 2, -1, 0.5, "1"]) | json_values,
        "time": st.sampled_from(["2026-03-12T03:00:00+00:00", "2026-03-12", "x"]) | json_values,
        "other": json_values,
    },
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    body=st.fixed_dictionaries({"outcomes": st.lists(outcome_items | json_values, max_size=4)})
    | json_values
)
def test_outcomes_never_answer_500(client: httpx.Client, body: Any) -> None:
    _check(client.post("/v1/models/sepsis/outcomes", content=_dumps(body)))
