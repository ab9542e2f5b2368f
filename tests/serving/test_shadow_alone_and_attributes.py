"""A model served by its shadow version alone; stratification attributes; the bounded id index."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bedside.security import KeyRing
from bedside.serving.handlers import SHADOW_ALONE_MESSAGE
from bedside.serving.inference_log import InferenceLog, InferenceLogReader, prediction_entry
from bedside.serving.models import DeployedModel, ServedModels
from tests.serving.support import SCHEMA, RunningServer, record, running_server

PREDICT = "/v1/models/sepsis/predict"
OUTCOMES = "/v1/models/sepsis/outcomes"


def _records(server: RunningServer) -> list[Any]:
    return InferenceLogReader(server.log_folder, key_ring=server.keys).records()


def _wait_for_shadow(server: RunningServer, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = _records(server)
        if sum(r.shadow is not None for r in rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError("the shadow output was not logged in time")


def test_shadow_alone_answers_without_a_prediction_and_logs_both(
    fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    _, shadow = fitted
    served = ServedModels.of([], [DeployedModel("sepsis", "2", shadow, 0.3, SCHEMA)])
    with running_server(tmp_path, served) as server, server.client() as client:
        ready = client.get("/readyz")
        one = client.post(PREDICT, json={"features": record(1)})
        batch = client.post(PREDICT, json={"records": [record(2), record(3)]})
        bad = client.post(PREDICT, json={"features": record(4, age="old")})
        rows = _wait_for_shadow(server, 3)
        outcome = client.post(
            OUTCOMES, json={"outcomes": [{"request_id": one.json()["request_id"], "label": 1}]}
        )
        described = client.get("/v1/models/sepsis")
    assert ready.status_code == 200
    assert ready.json()["models"] == {"sepsis": {"production": None, "shadow": "2"}}
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["message"] == SHADOW_ALONE_MESSAGE
    assert (body["version"], body["probability"], body["decision"], body["threshold"]) == (
        None,
        None,
        None,
        None,
    )
    assert [p["probability"] for p in batch.json()["predictions"]] == [None, None]
    assert bad.status_code == 422 and "features.age" in bad.text
    assert outcome.status_code == 200, outcome.text
    assert described.status_code == 404  # no production version to describe
    by_id = {r.request_id: r for r in _records(server)}
    assert len(rows) == 3
    logged = by_id[body["request_id"]]
    assert (logged.version, logged.probability, logged.decision) == (None, None, None)
    assert logged.shadow_version == "2" and logged.outcome is not None
    assert logged.shadow is not None and 0.0 <= logged.shadow["probability"] <= 1.0
    expected = shadow.predict_proba([SCHEMA.to_row(record(1))])[0, 1]
    assert logged.shadow["probability"] == pytest.approx(expected, abs=1e-12)


def test_nothing_deployed_is_not_ready_and_predict_is_404(tmp_path: Path) -> None:
    with running_server(tmp_path, ServedModels()) as server, server.client() as client:
        ready = client.get("/readyz")
        predict = client.post(PREDICT, json={"features": record(1)})
    assert ready.status_code == 503
    assert "no version is deployed" in ready.json()["error"]["message"]
    assert predict.status_code == 404


@pytest.fixture
def with_attributes(fitted: tuple[Any, Any], tmp_path: Path) -> Any:
    production, _ = fitted
    model = DeployedModel("sepsis", "1", production, 0.4, SCHEMA, frozenset({"race", "age_group"}))
    with running_server(tmp_path, ServedModels.of([model])) as server:
        yield server


def test_attributes_are_logged_with_the_prediction_and_not_scored(
    with_attributes: RunningServer,
) -> None:
    server = with_attributes
    with server.client() as client:
        plain = client.post(PREDICT, json={"features": record(1)}).json()
        tagged = client.post(
            PREDICT, json={"features": record(1), "attributes": {"race": "b", "age_group": "65+"}}
        ).json()
        batch = client.post(
            PREDICT,
            json={"records": [record(2), record(3)], "attributes": [{"race": "a"}, {}]},
        ).json()
    assert tagged["probability"] == plain["probability"]  # never used for scoring
    by_id = {r.request_id: r for r in _records(server)}
    assert by_id[plain["request_id"]].attributes is None
    assert by_id[tagged["request_id"]].attributes == {"race": "b", "age_group": "65+"}
    ids = [p["request_id"] for p in batch["predictions"]]
    assert [by_id[i].attributes for i in ids] == [{"race": "a"}, {}]


@pytest.mark.parametrize(
    ("body", "field", "received"),
    [
        ({"features": record(1), "attributes": {"religion": "x"}}, "attributes.religion",
         "unknown attribute"),
        ({"features": record(1), "attributes": {"race": 3}}, "attributes.race", "integer"),
        ({"features": record(1), "attributes": {"race": "x" * 65}}, "attributes.race",
         "string of 65 characters"),
        ({"features": record(1), "attributes": {"race": ""}}, "attributes.race",
         "string of 0 characters"),
        ({"features": record(1), "attributes": ["race"]}, "attributes", "array"),
        ({"features": record(1), "attributes": {"John Smith": "a"}}, "attributes",
         "a key that is not a name"),
        ({"records": [record(1)], "attributes": [{}, {}]}, "attributes", "array of 2"),
        ({"records": [record(1)], "attributes": [{"race": None}]}, "attributes[0].race", "null"),
        ({"records": [record(1)], "attributes": {"race": "a"}}, "attributes", "object"),
    ],
)  # fmt: skip
def test_bad_attributes_are_422_naming_the_field_without_echoing_values(
    with_attributes: RunningServer, body: dict[str, Any], field: str, received: str
) -> None:
    with with_attributes.client() as client:
        response = client.post(PREDICT, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["error"]["details"]["errors"]
    assert {"field": field, "received": received} in [
        {"field": e["field"], "received": e["received"]} for e in errors
    ]
    assert "John Smith" not in response.text


def test_any_name_is_accepted_without_a_stratify_list_up_to_eight(
    fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    production, _ = fitted
    served = ServedModels.of([DeployedModel("sepsis", "1", production, 0.4, SCHEMA)])
    with running_server(tmp_path, served) as server, server.client() as client:
        ok = client.post(PREDICT, json={"features": record(1), "attributes": {"ward": "icu"}})
        many = {f"a{i}": "x" for i in range(9)}
        too_many = client.post(PREDICT, json={"features": record(1), "attributes": many})
    assert ok.status_code == 200
    assert too_many.status_code == 422 and "at most 8 attributes" in too_many.text


def test_the_request_id_index_is_bounded_and_falls_back_to_the_log(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.create()
    log = InferenceLog.open(tmp_path / "log", key_ring=keys, index_size=3)
    ids = [str(uuid.uuid4()) for _ in range(10)]
    log.append_sync(
        [
            prediction_entry(
                request_id=rid,
                received=0.0,
                model="m",
                version="1",
                threshold=0.5,
                inputs={},
                probability=0.1,
                decision=False,
                shadow_version=None,
            )
            for rid in ids
        ]
    )
    try:
        assert len(log._known["m"]) == 3  # only the newest ids stay in memory
        stranger = str(uuid.uuid4())
        assert log.unknown_ids("m", [ids[0], ids[-1], stranger]) == [stranger]
        assert log.unknown_ids("other", [ids[0]]) == [ids[0]]
    finally:
        log.close()
