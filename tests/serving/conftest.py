"""Fixtures of the serving tests: seeded fitted models and a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bedside.serving.models import DeployedModel, ServedModels
from tests.serving.support import SCHEMA, NanSafe, RunningServer, fit_models, running_server


@pytest.fixture(scope="session")
def fitted() -> tuple[Any, Any]:
    """A HistGradientBoosting model (production) and a logistic regression (shadow), seeded."""
    first, second = fit_models()
    return first, NanSafe(second)


@pytest.fixture(scope="module")
def server(
    fitted: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with production ``sepsis@1`` and shadow ``sepsis@2`` (shared by a module)."""
    production, shadow = fitted
    models = ServedModels.of(
        [DeployedModel("sepsis", "1", production, 0.4, SCHEMA)],
        [DeployedModel("sepsis", "2", shadow, 0.3, SCHEMA)],
    )
    tmp: Path = tmp_path_factory.mktemp("server")
    with running_server(tmp, models) as running:
        yield running
