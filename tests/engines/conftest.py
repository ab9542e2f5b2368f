"""Fixtures for the engine tests: extraction over hand-made FHIR, and one Spark session."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedside.domain.spec_data import DataPreparationStage
from bedside.engines.features import extract_features
from tests.engines.fhir_builders import write_raw

Extract = Callable[[Iterable[dict[str, Any]], DataPreparationStage], pd.DataFrame]


@pytest.fixture
def extract(tmp_path: Path) -> Extract:
    """Write the resources to a raw folder and return the DuckDB feature table by encounter."""
    runs = iter(range(1_000_000))

    def run(resources: Iterable[dict[str, Any]], spec: DataPreparationStage) -> pd.DataFrame:
        folder = write_raw(tmp_path / f"raw{next(runs)}", resources)
        return extract_features(folder, spec).set_index("encounter_id")

    return run


@pytest.fixture(scope="session")
def _spark_session_con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="pyspark is not installed (optional 'spark' extra)")
    from bedside.engines.backends import connect, spark_session

    session = spark_session(cores=2, scratch_dir=tmp_path_factory.mktemp("spark"))
    yield connect("pyspark", session=session)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        session.stop()
        gc.collect()


@pytest.fixture
def spark_con(_spark_session_con: Any) -> Iterator[Any]:
    """One local-mode Spark connection for the whole test run (skipped without pyspark).

    py4j hands query results over local sockets that it leaves to the garbage collector; they
    are collected here, while the Spark test still ignores ResourceWarning, so the warning never
    surfaces in an unrelated test.
    """
    yield _spark_session_con
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
