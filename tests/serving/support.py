"""Test support for the prediction server: seeded models, a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from bedside.security import KeyRing
from bedside.serving.app import ServingSettings, create_app
from bedside.serving.inference_log import InferenceLog
from bedside.serving.models import ServedModels
from bedside.serving.schema import Feature, FeatureSchema
from bedside.serving.server import uvicorn_config

FEATURES = [f"x{i}" for i in range(6)]
#: The schema of the test models: five numbers (one nullable), one integer, one category.
SCHEMA = FeatureSchema(
    [
        *(Feature(name, "float") for name in FEATURES[:4]),
        Feature("lactate", "float", nullable=True),
        Feature("age", "int"),
        Feature("sex", "category", categories=("female", "male", "other")),
    ]
)


def training_data(seed: int = 0, rows: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Return seeded synthetic rows in SCHEMA's column order, and labels."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=(rows, 4)),
            np.where(rng.random(rows) < 0.1, np.nan, rng.gamma(2.0, 1.0, rows)),
            rng.integers(18, 95, rows).astype(float),
            rng.integers(0, 3, rows).astype(float),
        ]
    )
    logit = X[:, 0] - X[:, 1] + 0.03 * (X[:, 5] - 60) + np.nan_to_num(X[:, 4]) * 0.3
    y = (logit + rng.normal(scale=0.5, size=rows) > 0.5).astype(int)
    return X, y


def fit_models() -> tuple[HistGradientBoostingClassifier, LogisticRegression]:
    """Return two seeded fitted models on the test schema (the second ignores NaN via 0-fill)."""
    X, y = training_data()
    first = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    second = LogisticRegression(max_iter=500).fit(np.nan_to_num(X), y)
    return first, second


class NanSafe:
    """Wrap a model that does not accept NaN (fills NaN with 0), like a pipeline's imputer."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(np.nan_to_num(X)))


def record(seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Return one valid JSON record (seeded), with ``overrides``."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        name: round(float(v), 3) for name, v in zip(FEATURES[:4], rng.normal(size=4), strict=True)
    }
    out.update(
        lactate=round(float(rng.gamma(2.0, 1.0)), 2),
        age=int(rng.integers(18, 95)),
        sex=["female", "male", "other"][int(rng.integers(0, 3))],
    )
    out.update(overrides)
    return out


def row_of(rec: dict[str, Any]) -> list[float]:
    """Return the model row of a record (as the server encodes it)."""
    return SCHEMA.to_row(rec)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A real uvicorn server in a thread, with what it serves."""

    url: str
    models: ServedModels
    log: InferenceLog
    log_folder: Path
    keys: KeyRing
    app: Any

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def running_server(
    tmp: Path,
    models: ServedModels,
    *,
    settings: ServingSettings | None = None,
    keys: KeyRing | None = None,
    log_folder: Path | None = None,
    configure: Callable[[InferenceLog], None] | None = None,
    fast_path: bool = True,
    **app_options: Any,
) -> Iterator[RunningServer]:
    """Serve ``models`` on a free 127.0.0.1 port in a thread; stop it (gracefully) afterwards.

    ``app_options`` go to :func:`create_app` (e.g. ``platform=`` for the governance endpoints).
    """
    if keys is None:
        keys = KeyRing(tmp / "keys")
        keys.create()
    folder = log_folder or tmp / "inference-log"
    log = InferenceLog.open(folder, key_ring=keys)
    if configure is not None:
        configure(log)
    app = create_app(models, log, settings or ServingSettings(), fast_path=fast_path, **app_options)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(lambda: app, port=port))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", models, log, folder, keys, app)
    finally:
        server.should_exit = True
        thread.join(30)
