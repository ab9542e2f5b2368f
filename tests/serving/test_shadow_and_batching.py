"""The shadow model never delays or fails a response, and its output is logged; batching works.

No timing is asserted: a shadow that sleeps until the test releases it proves that responses do
not wait for it (they all arrive while it is still asleep).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.serving.app import ServingSettings
from bedside.serving.inference_log import InferenceLogReader
from bedside.serving.models import DeployedModel, ServedModels
from tests.serving.support import SCHEMA, RunningServer, record, row_of, running_server

PREDICT = "/v1/models/sepsis/predict"


class SleepingModel:
    """Scores like ``model`` but each call sleeps until ``wake`` is set (at most 60 s)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.wake = threading.Event()
        self.calls = 0
        self.returned = 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.wake.wait(60)
        out = np.asarray(self.model.predict_proba(X))
        self.returned += 1
        return out


class RaisingModel:
    """A model that fails on every call (its message quotes a value, as some libraries do)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 1 and X.shape == (1, len(SCHEMA)) and not X.any():
            return np.array([[0.5, 0.5]])  # the deploy-time check row
        raise RuntimeError(f"cannot score value {X[0, 0]!r}")


class RecordingModel:
    """Scores like ``model``, records each call's row count; the first call waits for ``go``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.sizes: list[int] = []
        self.entered = 0
        self.go = threading.Event()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.entered += 1
        if self.entered > 1:  # not the deploy-time check
            self.go.wait(60)
        self.sizes.append(len(X))
        return np.asarray(self.model.predict_proba(X))


def _entries(server: RunningServer) -> list[dict[str, Any]]:
    return list(InferenceLogReader(server.log_folder, key_ring=server.keys).entries())


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _served(production: Any, shadow: Any) -> ServedModels:
    return ServedModels.of(
        [DeployedModel("sepsis", "1", production, 0.4, SCHEMA)],
        [DeployedModel("sepsis", "2", shadow, 0.3, SCHEMA)],
    )


def test_sleeping_shadow_never_delays_responses_and_its_output_is_logged_later(
    fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    production, shadow_model = fitted
    shadow = SleepingModel(shadow_model)
    shadow.wake.set()  # the deploy-time check scores one row
    served = _served(production, shadow)
    shadow.wake.clear()
    shadow.calls = shadow.returned = 0
    with running_server(tmp_path, served) as server:
        ids = []
        with server.client() as client:
            for i in range(8):
                response = client.post(PREDICT, json={"features": record(i)})
                assert response.status_code == 200
                body = response.json()
                assert body["version"] == "1"
                assert "shadow" not in response.text
                ids.append(body["request_id"])
            batch = client.post(PREDICT, json={"records": [record(50), record(51)]})
            assert batch.status_code == 200
            ids += [p["request_id"] for p in batch.json()["predictions"]]
        # Every response arrived while the shadow was still asleep.
        _wait_for(lambda: shadow.calls >= 1, "the shadow to be called")
        assert shadow.returned == 0
        assert not any(e["kind"] == "shadow" for e in _entries(server))
        shadow.wake.set()
        _wait_for(
            lambda: (
                {e["request_id"] for e in _entries(server) if e["kind"] == "shadow"} >= set(ids)
            ),
            "the shadow outputs in the log",
        )
        entries = _entries(server)
    inputs = {e["request_id"]: e["inputs"] for e in entries if e["kind"] == "prediction"}
    shadows = [e for e in entries if e["kind"] == "shadow"]
    assert sorted(e["request_id"] for e in shadows) == sorted(ids)  # exactly one each
    for entry in shadows:
        expected = float(
            shadow_model.predict_proba(np.array([row_of(inputs[entry["request_id"]])]))[0, 1]
        )
        assert entry["version"] == "2"
        assert entry["probability"] == pytest.approx(expected, abs=1e-12)
        assert entry["decision"] is (expected >= 0.3)


def test_raising_shadow_never_fails_a_response_and_its_failure_is_logged(
    fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    production, _ = fitted
    shadow = RaisingModel()
    with running_server(tmp_path, _served(production, shadow)) as server:
        with server.client() as client:
            responses = [client.post(PREDICT, json={"features": record(i)}) for i in range(5)]
            assert [r.status_code for r in responses] == [200] * 5
            ids = {r.json()["request_id"] for r in responses}
            _wait_for(
                lambda: {e["request_id"] for e in _entries(server) if e["kind"] == "shadow"} >= ids,
                "the shadow failures in the log",
            )
            metrics = client.get("/metrics").text
        entries = [e for e in _entries(server) if e["kind"] == "shadow"]
    assert {e["error"] for e in entries} == {"RuntimeError"}
    assert all("probability" not in e for e in entries)
    assert 'bedside_shadow_failures_total{model="sepsis"}' in metrics


def test_slow_shadow_skips_work_when_its_queue_is_full_and_logs_the_skip(
    fitted: tuple[Any, Any], tmp_path: Path
) -> None:
    production, shadow_model = fitted
    shadow = SleepingModel(shadow_model)
    shadow.wake.set()
    served = _served(production, shadow)
    shadow.wake.clear()
    with running_server(
        tmp_path, served, settings=ServingSettings(shadow_queue=1, shadow_linger=0)
    ) as server:
        with server.client() as client:
            ids = [
                client.post(PREDICT, json={"features": record(i)}).json()["request_id"]
                for i in range(6)
            ]
            shadow.wake.set()
            _wait_for(
                lambda: (
                    {e["request_id"] for e in _entries(server) if e["kind"] == "shadow"} >= set(ids)
                ),
                "a shadow record per request",
            )
            metrics = client.get("/metrics").text
        shadows = [e for e in _entries(server) if e["kind"] == "shadow"]
    assert sorted(e["request_id"] for e in shadows) == sorted(ids)
    skipped = [e for e in shadows if e.get("error") == "skipped: shadow queue full"]
    assert 1 <= len(skipped) <= 4  # one asleep in the model, one queued, the rest skipped
    assert 'bedside_shadow_dropped_total{model="sepsis"}' in metrics


def test_failing_production_model_is_a_503_model_error_and_not_logged(
    tmp_path: Path,
) -> None:
    served = ServedModels()
    served.deploy(DeployedModel("sepsis", "1", RaisingModel(), 0.4, SCHEMA), role="production")
    with running_server(tmp_path, served) as server:
        with server.client() as client:
            response = client.post(PREDICT, json={"features": record(1, x0=123.25)})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_error"
        assert error["details"] == {"model": "sepsis", "version": "1"}
        assert "123.25" not in response.text
        assert not any(e["kind"] == "prediction" for e in _entries(server))


def test_concurrent_requests_share_model_calls(fitted: tuple[Any, Any], tmp_path: Path) -> None:
    production, _ = fitted
    model = RecordingModel(production)
    served = ServedModels.of([DeployedModel("sepsis", "1", model, 0.4, SCHEMA)])
    with running_server(tmp_path, served) as server:
        batcher = server.app.state.batcher
        with ThreadPoolExecutor(max_workers=21) as pool:
            first = pool.submit(_post, server, record(0))
            _wait_for(lambda: model.entered == 2, "the first request in the model")
            rest = [pool.submit(_post, server, record(i)) for i in range(1, 21)]
            _wait_for(lambda: batcher.pending_rows == 20, "20 queued requests")
            model.go.set()
            results = [first.result(), *(f.result() for f in rest)]
    assert [status for status, _ in results] == [200] * 21
    assert model.sizes[0] == 1  # the deploy-time check
    assert sum(model.sizes[1:]) == 21
    assert model.sizes[2:] == [20]  # the 20 waiting requests were scored in one call
    expected = production.predict_proba(np.array([row_of(record(i)) for i in range(21)]))[:, 1]
    assert [p for _, p in results] == pytest.approx(list(expected), abs=1e-12)


def _post(server: RunningServer, rec: dict[str, Any]) -> tuple[int, float]:
    with server.client() as client:
        response = client.post(PREDICT, json={"features": rec})
    return response.status_code, response.json().get("probability", -1.0)
