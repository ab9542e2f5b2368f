"""Hot swap under load: production changes several times while clients keep sending requests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bedside.serving.inference_log import InferenceLogReader
from bedside.serving.models import DeployedModel, ServedModels
from tests.serving.support import SCHEMA, record, row_of, running_server

PREDICT = "/v1/models/sepsis/predict"


class SlowModel:
    """Scores like ``model`` and takes a little longer, so swaps meet requests in flight."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        time.sleep(0.002)
        return np.asarray(self.model.predict_proba(X))


def test_hot_swap_under_load_fails_no_request(fitted: tuple[Any, Any], tmp_path: Path) -> None:
    first, second = fitted
    v1 = DeployedModel("sepsis", "1", SlowModel(first), 0.4, SCHEMA)
    v2 = DeployedModel("sepsis", "2", SlowModel(second), 0.6, SCHEMA)
    served = ServedModels.of([v1])
    results: list[tuple[int, str | None, str | None, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    swaps_done = threading.Event()

    with running_server(tmp_path, served) as server:

        def client_loop(worker: int) -> None:
            with server.client() as client:
                i = 0
                while not stop.is_set():
                    seed = worker * 10_000 + i
                    i += 1
                    payload: dict[str, Any]
                    if i % 5 == 0:
                        payload = {"records": [record(seed), record(seed + 5000)]}
                    else:
                        payload = {"features": record(seed)}
                    response = client.post(PREDICT, json=payload)
                    body = response.json()
                    rid = body.get("request_id") or (
                        body["predictions"][0]["request_id"] if "predictions" in body else None
                    )
                    with lock:
                        results.append((response.status_code, body.get("version"), rid, seed))

        threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        versions = [v2, v1, v2, v1, v2, v1, v2]
        for model in versions:
            deadline = time.monotonic() + 10
            before = len(results)
            while len(results) < before + 25 and time.monotonic() < deadline:
                time.sleep(0.005)
            served.deploy(model, role="production")
        swaps_done.set()
        time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(30)
        entries = list(InferenceLogReader(server.log_folder, key_ring=server.keys).entries())

    statuses = [status for status, *_ in results]
    assert len(results) > 150
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
    seen_versions = {version for _, version, _, _ in results}
    assert seen_versions == {"1", "2"}
    # Each answer came from the model it names: the log says the same version and probability.
    logged = {e["request_id"]: e for e in entries if e["kind"] == "prediction"}
    models = {"1": first, "2": second}
    for _, version, rid, seed in results:
        assert rid is not None and version is not None
        assert logged[rid]["version"] == version
        expected = models[version].predict_proba(np.array([row_of(record(seed))]))[0, 1]
        assert logged[rid]["probability"] == pytest.approx(float(expected), abs=1e-12)
        assert logged[rid]["threshold"] == (0.4 if version == "1" else 0.6)
    assert swaps_done.is_set()
