"""The prediction API against a real uvicorn server on 127.0.0.1: answers, errors, health."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.serving.inference_log import InferenceLogReader
from tests.serving.support import SCHEMA, RunningServer, record, row_of, running_server

PREDICT = "/v1/models/sepsis/predict"
OUTCOMES = "/v1/models/sepsis/outcomes"


def _expected_probability(server: RunningServer, rec: dict[str, Any]) -> float:
    production = server.models.slot("sepsis").current
    assert production is not None
    row = np.array([row_of(rec)])
    return float(production.predictor.predict_proba(row)[0, 1])


def _without(rec: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != key}


def _errors(response: Any) -> list[dict[str, str]]:
    body = response.json()
    assert body["ok"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    errors: list[dict[str, str]] = body["error"]["details"]["errors"]
    return errors


def test_predict_one_record_returns_probability_decision_version_and_request_id(
    server: RunningServer,
) -> None:
    rec = record(1)
    with server.client() as client:
        response = client.post(PREDICT, json={"features": rec})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["model"] == "sepsis"
    assert body["version"] == "1"
    assert body["threshold"] == 0.4
    assert body["probability"] == pytest.approx(_expected_probability(server, rec), abs=1e-12)
    assert body["decision"] is (body["probability"] >= 0.4)
    assert uuid.UUID(body["request_id"]).version == 4
    assert "shadow" not in response.text and '"2"' not in response.text


def test_predict_batch_returns_one_prediction_per_record_in_order(server: RunningServer) -> None:
    recs = [record(i) for i in range(5)]
    recs[2]["lactate"] = None  # nullable
    with server.client() as client:
        response = client.post(PREDICT, json={"records": recs})
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "1"
    predictions = body["predictions"]
    assert len(predictions) == 5
    assert len({p["request_id"] for p in predictions}) == 5
    for rec, prediction in zip(recs, predictions, strict=True):
        expected = _expected_probability(server, rec)
        assert prediction["probability"] == pytest.approx(expected, abs=1e-12)
        assert prediction["decision"] is (expected >= 0.4)


def test_predict_logs_the_record_before_answering(server: RunningServer) -> None:
    rec = record(7)
    with server.client() as client:
        body = client.post(PREDICT, json={"features": rec}).json()
    # The response came after the record was durable: it can be read back now.
    entries = list(InferenceLogReader(server.log_folder, key_ring=server.keys).entries())
    mine = [e for e in entries if e.get("request_id") == body["request_id"]]
    prediction = next(e for e in mine if e["kind"] == "prediction")
    assert prediction["inputs"] == rec
    assert prediction["probability"] == body["probability"]
    assert prediction["decision"] == body["decision"]
    assert prediction["version"] == "1"
    assert prediction["shadow_version"] == "2"
    assert prediction["logged"] >= prediction["received"]


@pytest.mark.parametrize(
    ("features", "field", "expected", "received"),
    [
        (_without(record(), "x0"), "features.x0", "finite number", "missing"),
        (record(x1="high"), "features.x1", "finite number", "string"),
        (record(x2=True), "features.x2", "finite number", "boolean"),
        (record(x3=[1.0]), "features.x3", "finite number", "array"),
        (record(x0=None), "features.x0", "finite number", "null"),
        (record(age=61.5), "features.age", "integer", "number (not a whole number)"),
        (record(age="61"), "features.age", "integer", "string"),
        (record(sex="unknown"), "features.sex", "one of ['female', 'male', 'other']",
         "string (not an allowed value)"),
        (record(sex=1), "features.sex", "one of ['female', 'male', 'other']", "integer"),
        (record(lactate="2.0"), "features.lactate", "finite number or null", "string"),
        ({**record(), "heart_rate": 80}, "features.heart_rate", "no such feature", "unknown field"),
    ],
)  # fmt: skip
def test_predict_bad_field_is_422_naming_field_expected_and_received(
    server: RunningServer, features: dict[str, Any], field: str, expected: str, received: str
) -> None:
    with server.client() as client:
        response = client.post(PREDICT, json={"features": features})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert {"field": field, "expected": expected, "received": received} in _errors(response)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_predict_non_finite_number_is_422_for_that_field(
    server: RunningServer, literal: str
) -> None:
    rec = record(3)
    body = (
        '{"features": {'
        + ", ".join(f'"{k}": {literal if k == "x2" else json.dumps(v)}' for k, v in rec.items())
        + "}}"
    )
    with server.client() as client:
        response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert _errors(response) == [
        {"field": "features.x2", "expected": "finite number", "received": "non-finite number"}
    ]


def test_predict_error_never_echoes_a_value(server: RunningServer) -> None:
    secret = "Jane Q. Patient 1957-03-12"
    with server.client() as client:
        response = client.post(PREDICT, json={"features": record(sex=secret, x0=secret)})
    assert response.status_code == 422
    assert secret not in response.text
    assert "Jane" not in response.text


def test_predict_lists_every_bad_field_of_every_record_with_its_index(
    server: RunningServer,
) -> None:
    recs = [record(0), record(1, x0="a"), record(2), record(3, age=None, zz=1)]
    with server.client() as client:
        response = client.post(PREDICT, json={"records": recs})
    assert response.status_code == 422
    fields = [e["field"] for e in _errors(response)]
    assert fields == ["records[1].x0", "records[3].age", "records[3].zz"]
    assert response.json()["error"]["details"]["error_count"] == 3


@pytest.mark.parametrize(
    ("body", "field", "received"),
    [
        ({"records": []}, "records", "empty array"),
        ({"records": [record()] * 1001}, "records", "array of 1001 records"),
        ({"records": {"a": 1}}, "records", "object"),
        ({"records": [record(), 5]}, "records[1]", "integer"),
        ({"features": "x"}, "features", "string"),
        ({}, "features", "missing"),
        ({"features": record(), "records": [record()]}, "records", "both"),
        ({"features": record(), "extra": 1}, "extra", "unknown field"),
        ([record()], "body", "array"),
        ("text", "body", "string"),
        (None, "body", "null"),
    ],
)
def test_predict_bad_body_shape_is_422(
    server: RunningServer, body: Any, field: str, received: str
) -> None:
    with server.client() as client:
        response = client.post(PREDICT, content=json.dumps(body))
    assert response.status_code == 422
    assert any(e["field"] == field and e["received"] == received for e in _errors(response))


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"features": }', b"\xff\xfe", b'{"features": {"x0": 1,}}', b"[" * 2000]
)
def test_predict_malformed_json_is_422(server: RunningServer, raw: bytes) -> None:
    with server.client() as client:
        response = client.post(PREDICT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert _errors(response)[0]["field"] == "body"


def test_predict_body_over_the_limit_is_422(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post(PREDICT, content=b" " * (4 * 1024 * 1024 + 1))
    assert response.status_code == 422
    assert response.json()["error"]["details"]["limit_bytes"] == 4 * 1024 * 1024


def test_predict_unknown_model_is_404(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/v1/models/nope/predict", json={"features": record()})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"] == {"model": "nope", "served": ["sepsis"]}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", PREDICT, 405),
        ("POST", "/v1/models/a/b/predict", 404),
        ("DELETE", "/healthz", 405),
    ],
)
def test_unknown_route_or_method_answers_in_the_error_shape(
    server: RunningServer, method: str, path: str, status: int
) -> None:
    with server.client() as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["ok"] is False
    assert response.json()["error"]["code"] in {"not_found", "method_not_allowed"}


def test_outcomes_attach_labels_to_request_ids(server: RunningServer) -> None:
    with server.client() as client:
        ids = [
            p["request_id"]
            for p in client.post(PREDICT, json={"records": [record(10), record(11)]}).json()[
                "predictions"
            ]
        ]
        response = client.post(
            OUTCOMES,
            json={
                "outcomes": [
                    {"request_id": ids[0], "label": 1, "time": "2026-03-12T03:00:00+00:00"},
                    {"request_id": ids[1], "label": False},
                ]
            },
        )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "recorded": 2}
    joined = {
        r.request_id: r
        for r in InferenceLogReader(server.log_folder, key_ring=server.keys).records()
    }
    first, second = joined[ids[0]].outcome, joined[ids[1]].outcome
    assert first is not None and second is not None
    assert first["label"] == 1
    assert first["time"] == 1773284400.0
    assert second["label"] == 0


def test_outcomes_with_unknown_ids_are_404_counting_them_and_record_nothing(
    server: RunningServer,
) -> None:
    with server.client() as client:
        known = client.post(PREDICT, json={"features": record(12)}).json()["request_id"]
        unknown = [str(uuid.uuid4()), str(uuid.uuid4())]
        response = client.post(
            OUTCOMES,
            json={"outcomes": [{"request_id": i, "label": 1} for i in [known, *unknown]]},
        )
    assert response.status_code == 404
    details = response.json()["error"]["details"]
    assert details["unknown_count"] == 2
    assert sorted(details["unknown"]) == sorted(unknown)
    outcomes = [
        e
        for e in InferenceLogReader(server.log_folder, key_ring=server.keys).entries()
        if e["kind"] == "outcome" and e["request_id"] == known
    ]
    assert outcomes == []


@pytest.mark.parametrize(
    ("item", "field", "received"),
    [
        ({"label": 1}, "outcomes[0].request_id", "missing"),
        ({"request_id": "abc", "label": 1}, "outcomes[0].request_id", "string (not a UUID)"),
        ({"request_id": str(uuid.UUID(int=1)), "label": 2}, "outcomes[0].label",
         "integer (not 0 or 1)"),
        ({"request_id": str(uuid.UUID(int=1))}, "outcomes[0].label", "missing"),
        ({"request_id": str(uuid.UUID(int=1)), "label": 1, "time": "yesterday"},
         "outcomes[0].time", "string (not an ISO 8601 time)"),
        ({"request_id": str(uuid.UUID(int=1)), "label": 1, "time": "2026-03-12T03:00:00"},
         "outcomes[0].time", "time without a UTC offset"),
        ({"request_id": str(uuid.UUID(int=1)), "label": 1, "note": "x"}, "outcomes[0].note",
         "unknown field"),
    ],
)  # fmt: skip
def test_outcomes_bad_item_is_422(
    server: RunningServer, item: dict[str, Any], field: str, received: str
) -> None:
    with server.client() as client:
        response = client.post(OUTCOMES, json={"outcomes": [item]})
    assert response.status_code == 422
    assert any(e["field"] == field and e["received"] == received for e in _errors(response))


def test_outcomes_for_unknown_model_is_404(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/v1/models/nope/outcomes", json={"outcomes": []})
    assert response.status_code == 404


def test_health_readiness_and_model_description(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"ok": True}
        ready = client.get("/readyz")
        described = client.get("/v1/models/sepsis").json()
    assert ready.status_code == 200
    assert ready.json()["models"] == {"sepsis": {"production": "1", "shadow": "2"}}
    assert described["version"] == "1"
    assert [f["name"] for f in described["features"]] == list(SCHEMA.names)
    assert described["features"][-1] == {
        "name": "sex",
        "kind": "category",
        "nullable": False,
        "categories": ["female", "male", "other"],
    }


def test_metrics_expose_requests_latency_batches_and_fsync(server: RunningServer) -> None:
    with server.client() as client:
        client.post(PREDICT, json={"features": record(20)})
        client.post(PREDICT, json={"features": {}})
        text = client.get("/metrics").text
    lines = text.splitlines()
    assert any(
        line.startswith('bedside_http_requests_total{route="predict",status="200"} ')
        for line in lines
    )
    assert any(
        line.startswith('bedside_http_requests_total{route="predict",status="422"} ')
        for line in lines
    )
    assert 'bedside_http_request_seconds_bucket{route="predict",le="+Inf"}' in text
    assert 'bedside_batch_rows_count{role="production"}' in text
    assert "bedside_log_fsync_seconds_count" in text
    assert "bedside_log_group_records_sum" in text
    for line in lines:
        if not line.startswith("#"):
            _, value = line.rsplit(" ", 1)
            float(value)  # every sample is a number


def test_openapi_documents_the_endpoints(server: RunningServer) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert docs.status_code == 200
    paths = spec["paths"]
    assert {
        "/v1/models/{name}/predict",
        "/v1/models/{name}/outcomes",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)
    body = paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {s["title"] for s in body["schema"]["oneOf"]} == {"One record", "A batch"}


def test_the_documented_route_answers_like_the_fast_path(
    server: RunningServer, tmp_path: Path
) -> None:
    good, bad = {"features": record(30)}, {"features": record(31, age="x", zz=1)}
    with (
        running_server(tmp_path, server.models, fast_path=False) as routed,
        routed.client() as client,
    ):
        via_router = [client.post(PREDICT, json=body) for body in (good, bad)]
    with server.client() as client:
        via_fast_path = [client.post(PREDICT, json=body) for body in (good, bad)]
    assert (
        [r.status_code for r in via_router]
        == [r.status_code for r in via_fast_path]
        == [
            200,
            422,
        ]
    )
    routed_body, fast_body = via_router[0].json(), via_fast_path[0].json()
    assert routed_body.pop("request_id") != fast_body.pop("request_id")
    assert routed_body == fast_body
    assert via_router[1].json() == via_fast_path[1].json()
