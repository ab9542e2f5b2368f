"""Where data work runs: Ibis expressions on DuckDB (embedded, default) or PySpark.

- :mod:`bedside.engines.backends` — connections and the engine-specific NDJSON read.
- :mod:`bedside.engines.fhir_tables` — raw FHIR resources flattened into typed tables.
- :mod:`bedside.engines.cohort`, :mod:`bedside.engines.measurements`,
  :mod:`bedside.engines.labels` — the cohort, observation values (code sets, units), outcomes.
- :mod:`bedside.engines.features` — cohort, prediction times, features and label as one table.
"""

from __future__ import annotations

from bedside.engines.backends import BACKENDS, Backend, connect, spark_session
from bedside.engines.features import build_feature_table, extract_features

__all__ = [
    "BACKENDS",
    "Backend",
    "build_feature_table",
    "connect",
    "extract_features",
    "spark_session",
]
